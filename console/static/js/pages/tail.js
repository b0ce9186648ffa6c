// Live tail of $all: the last few matching events, then every new one as it is committed
// (GET /subscribe/$all with the API's filters). Pausing buffers what arrives (bounded: when
// the buffer is full the subscription is dropped and resumed from the last buffered position
// on play, so nothing is lost), and the page keeps at most MAX_SHOWN events in the DOM.
import { api, sse } from "../api.js";
import { h, errorBox, badge, num } from "../ui.js";
import { eventCard } from "../event-view.js";

const MAX_SHOWN = 300;
const MAX_BUFFER = 5000;
const BACKLOG = 20;

export async function render({ root, query, signal, navigate }) {
  const f = {
    category: query.get("category") || "",
    eventType: query.get("eventType") || "",
    streamPrefix: query.get("streamPrefix") || "",
    excludeSystem: query.get("excludeSystem") !== "false",
  };
  root.append(h("h1", {}, "Live tail of $all"));
  const inp = (id, label, key, ph) => {
    const el = h("input", { id, name: key, value: f[key], placeholder: ph, autocomplete: "off" });
    return [el, h("div", { class: "field" }, h("label", { for: id }, label), el)];
  };
  const [cat, catF] = inp("t-category", "Category", "category", "order");
  const [typ, typF] = inp("t-type", "Event type", "eventType", "OrderPlaced");
  const [pre, preF] = inp("t-prefix", "Stream name starts with", "streamPrefix", "order-4");
  const sys = h("input", { id: "t-system", type: "checkbox", checked: f.excludeSystem });
  root.append(h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (cat.value) q.set("category", cat.value);
    if (typ.value) q.set("eventType", typ.value);
    if (pre.value) q.set("streamPrefix", pre.value);
    if (!sys.checked) q.set("excludeSystem", "false");
    navigate("#/tail" + (q.toString() ? "?" + q : ""));
  } }, catF, typF, preF,
  h("div", { class: "field check" }, sys, h("label", { for: "t-system" }, "Hide system events")),
  h("button", { type: "submit", class: "primary" }, "Apply filters")));

  const state = h("span", { class: "status", "aria-live": "polite" });
  const waiting = h("span", { class: "waiting", "aria-live": "polite" });
  const pauseBtn = h("button", { type: "button", class: "secondary", "aria-pressed": "false" }, "Pause");
  const clearBtn = h("button", { type: "button", class: "secondary" }, "Clear");
  const counter = h("span", { class: "muted" });
  const errBox = h("div");
  const list = h("div", { class: "events tail", role: "log", "aria-label": "Events, newest first" });
  root.append(h("div", { class: "toolbar tail-controls" }, pauseBtn, clearBtn, state, waiting, counter), errBox, list);

  const filter = new URLSearchParams();
  if (f.category) filter.set("category", f.category);
  if (f.eventType) filter.set("eventType", f.eventType);
  if (f.streamPrefix) filter.set("streamPrefix", f.streamPrefix);
  if (f.excludeSystem) filter.set("excludeSystem", "true");

  let paused = false;
  let buffer = [];
  let overflowed = false; // the subscription was dropped because the buffer filled up
  let lastPos = 0; // the last position received (event or checkpoint): where to resume
  let received = 0;
  let sub = null; // AbortController of the current subscription

  const showEvents = (evs) => {
    // newest first: prepend, in one fragment
    const frag = document.createDocumentFragment();
    for (let i = evs.length - 1; i >= 0; i--) frag.append(eventCard(evs[i]));
    list.prepend(frag);
    const placeholder = list.querySelector("#tail-empty");
    if (placeholder && evs.length) placeholder.remove();
    while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
    counter.textContent = `${num(received)} received · showing the newest ${num(Math.min(list.childElementCount, MAX_SHOWN))}`;
  };
  const updateWaiting = () => {
    waiting.textContent = paused
      ? `Paused: ${num(buffer.length)} event${buffer.length === 1 ? "" : "s"} waiting` + (overflowed ? ` (buffer full: the rest is fetched from position ${num(lastPos + 1)} on resume)` : "")
      : "";
  };

  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    pauseBtn.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      showEvents(buffer);
      buffer = [];
      if (overflowed) { overflowed = false; subscribe(lastPos + 1); }
    }
    updateWaiting();
  });
  clearBtn.addEventListener("click", () => { list.replaceChildren(); counter.textContent = ""; });

  function subscribe(from) {
    if (sub) sub.abort();
    sub = new AbortController();
    signal.addEventListener("abort", () => sub.abort(), { once: true });
    const q = new URLSearchParams(filter);
    q.set("from", String(from));
    sse("/subscribe/$all?" + q, {
      signal: sub.signal,
      onMessage: (m) => {
        if (m.id !== null && /^\d+$/.test(m.id)) lastPos = Math.max(lastPos, Number(m.id));
        if (m.event === "caught-up") { state.replaceChildren(badge("live", "ok")); return; }
        if (m.event !== "event") return;
        let ev;
        try { ev = JSON.parse(m.data); } catch { return; }
        received++;
        if (paused) {
          buffer.push(ev);
          if (buffer.length >= MAX_BUFFER) { overflowed = true; sub.abort(); }
          updateWaiting();
        } else showEvents([ev]);
      },
      onState: (st, err) => {
        if (st === "open") { errBox.replaceChildren(); state.replaceChildren(badge("catching up", "warn")); }
        else if (st === "connecting") state.replaceChildren(badge("connecting", "warn"));
        else if (st === "error") {
          state.replaceChildren(badge("not live", "bad"));
          errBox.replaceChildren(errorBox(err, "Live tail"));
          if (err && err.kind === "permission_denied") errBox.append(h("p", { class: "hint" }, "Only admins may follow the whole log unfiltered: filter by a category or stream prefix you may read."));
        }
      },
    });
  }

  // The last few matching events first, so the page is not blank; then live from after them.
  const q = new URLSearchParams(filter);
  q.set("direction", "backwards");
  q.set("limit", String(BACKLOG));
  try {
    const res = await api("/streams/$all?" + q, { signal });
    const evs = (res.events || []).slice().reverse();
    if (evs.length) lastPos = evs[evs.length - 1].position;
    showEvents(evs);
    received = 0;
    if (!evs.length) list.replaceChildren(h("p", { class: "empty", id: "tail-empty" }, "No matching events yet; new ones appear here as they are committed."));
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) throw e;
    if (e.status === 403) {
      state.replaceChildren(badge("not live", "bad"));
      errBox.replaceChildren(errorBox(e, "Reading $all"), h("p", { class: "hint" }, "Only admins may read the whole log unfiltered: filter by a category or stream prefix you may read."));
      return;
    }
    errBox.replaceChildren(errorBox(e, "Reading the latest events"));
  }
  subscribe(lastPos + 1);
}
