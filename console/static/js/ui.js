// Small DOM helpers shared by the pages. Everything user- or server-supplied goes in as text
// (textContent, attributes), never as HTML.
import { sse } from "./api.js";

// h builds an element: h("a", {href: "#/"}, "text", child, [children]). Attributes starting
// with "on" are listeners; false/null attributes and children are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

// set replaces el's children, skipping null/false and flattening arrays (which
// replaceChildren would turn into text).
export function set(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

const SVGNS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

// errorBox shows an API error with its kind, for a person to act on.
export function errorBox(err, what) {
  const kind = err && err.kind ? err.kind : "error";
  let hint = null;
  if (kind === "permission_denied") hint = "Your user may not do this; ask an admin for access.";
  else if (kind === "unauthenticated") hint = "Sign in to continue.";
  else if (kind === "network") hint = "Check that the server is running.";
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, what ? what + ": " : "", h("span", { class: "kind" }, kind)),
    h("p", { class: "message" }, err && err.message ? err.message : String(err)),
    hint && h("p", { class: "hint" }, hint));
}

export function empty(text, ...more) {
  return h("div", { class: "empty" }, h("p", {}, text), ...more);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", "aria-live": "polite" }, text);
}

export function pretty(v) {
  return h("pre", { class: "json" }, JSON.stringify(v, null, 2));
}

// fmt helpers
export const num = (n) => (n === undefined || n === null ? "—" : Number(n).toLocaleString("en-US"));
export function bytes(n) {
  if (n === undefined || n === null) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + " " + u[i];
}
export function duration(sec) {
  if (sec === undefined || sec === null) return "—";
  sec = Math.floor(sec);
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), ss = sec % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${ss}s`;
  return `${ss}s`;
}
export function time(t) {
  if (!t) return "—";
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return h("time", { datetime: t, title: t }, d.toLocaleString());
}
// ago is a time as "5s ago"; every such time on the page is brought up to date every 5 s
// (from the clock alone: nothing is fetched), so a table that did not change since it was
// loaded does not show a stale age.
export function ago(t) {
  if (!t) return "—";
  const sec = (Date.now() - new Date(t).getTime()) / 1000;
  if (!(sec >= 0)) return time(t);
  return h("time", { class: "ago", datetime: t, title: new Date(t).toLocaleString() }, duration(sec) + " ago");
}

setInterval(() => {
  if (document.hidden) return;
  for (const el of document.querySelectorAll("time.ago")) {
    const sec = (Date.now() - new Date(el.dateTime).getTime()) / 1000;
    if (sec >= 0) el.textContent = duration(sec) + " ago";
  }
}, 5000);

export const streamHref = (name) => "#/streams/" + encodeURIComponent(name);
export const eventHref = (id) => "#/events/" + encodeURIComponent(id);

// confirmDialog asks a yes/no question in a modal <dialog>; resolves true on confirm.
// The confirm button is not focused first, so Enter alone cannot do damage.
export function confirmDialog(title, text, confirmLabel, danger = true) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { class: "confirm", "aria-labelledby": "dlg-title" });
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    dlg.append(
      h("h2", { id: "dlg-title" }, title),
      h("p", {}, text),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => done(false), autofocus: true }, "Cancel"),
        h("button", { type: "button", class: danger ? "danger" : "primary", onclick: () => done(true) }, confirmLabel)));
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// table builds a table from column specs {label, cell(row) -> node|string, class?}.
export function table(cols, rows, caption) {
  return h("table", {},
    caption && h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", { class: c.class }, c.cell(r)))))));
}

export function badge(text, tone) {
  return h("span", { class: "badge " + (tone || "") }, text);
}

export function healthTone(v) {
  const t = String(v || "").toLowerCase();
  if (t === "off") return "";
  if (["healthy", "ok", "up", "ready", "closed", "running", "live", "serving"].includes(t)) return "ok";
  if (["degraded", "half-open", "half_open", "rebuilding", "catchingup", "catching-up", "starting", "idle"].includes(t)) return "warn";
  return "bad";
}

// swap replaces box's children with nodes the way a refresh should: what has focus keeps it
// (matched by id or data-key, so give refreshed controls one), <details> stay open or shut
// (matched by data-key), and boxes that scroll sideways keep their scroll. The page keeps its
// own scroll because nothing shrinks in between (no "Loading…" on a refresh).
export function swap(box, ...nodes) {
  const keyOf = (el) => (el && el.id ? "#" + el.id : el && el.dataset && el.dataset.key ? "k:" + el.dataset.key : null);
  const active = box.contains(document.activeElement) ? keyOf(document.activeElement) : null;
  const open = new Map();
  for (const d of box.querySelectorAll("details[data-key]")) open.set(d.dataset.key, d.open);
  const scrolls = new Map();
  for (const el of box.querySelectorAll("[data-key].scroll")) scrolls.set(el.dataset.key, el.scrollLeft);
  set(box, ...nodes);
  for (const d of box.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = open.get(d.dataset.key);
  for (const el of box.querySelectorAll("[data-key].scroll")) if (scrolls.has(el.dataset.key)) el.scrollLeft = scrolls.get(el.dataset.key);
  if (active) {
    const sel = active.startsWith("#") ? "#" + CSS.escape(active.slice(1)) : `[data-key="${CSS.escape(active.slice(2))}"]`;
    const el = box.querySelector(sel);
    if (el) el.focus({ preventScroll: true });
  }
  return box;
}

// liveRefresh keeps a page up to date without polling from the browser: the server says,
// over server-sent events (GET /ui/live), when the answer to one of paths has changed, and
// load runs then, one at a time (a change during a load runs it once more after). It
// follows while the page is shown and the tab visible, and stops when signal aborts (the
// page was left). It answers a control for the toolbar: a checkbox that turns following
// off and on, with when the page last loaded and whether the connection is up.
export function liveRefresh(signal, paths, load, { label = "Live" } = {}) {
  const box = h("input", { type: "checkbox", id: "live-refresh", checked: true });
  const when = h("span", { class: "muted updated", "aria-live": "off" });
  let following = null; // the AbortController of the open stream
  let busy = false;
  let again = false;
  async function run() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        if (signal.aborted) return;
        await load();
        when.textContent = "updated " + new Date().toLocaleTimeString();
        when.dataset.loads = String(Number(when.dataset.loads || 0) + 1); // for tests: loads so far
      } while (again);
    } catch (e) {
      if (e.name === "AbortError" || e.status === 401) return; // left, or the sign-in form took over
      when.textContent = "last refresh failed: " + (e.message || e);
    } finally {
      busy = false;
      if (again && !signal.aborted) run(); // a change told of while a load failed
    }
  }
  const query = paths.map((p) => "path=" + encodeURIComponent(p)).join("&");
  const start = () => {
    if (following || signal.aborted || !box.checked || document.hidden) return;
    const ctl = new AbortController();
    following = ctl;
    sse("/ui/live?" + query, {
      signal: AbortSignal.any([signal, ctl.signal]),
      resume: false,
      onMessage: (m) => { if (m.event === "changed") run(); },
      onState: (state, err) => {
        if (state === "error" && err) when.textContent = "not live: " + (err.message || err);
      },
    }).finally(() => { if (following === ctl) following = null; }); // gave up (a 4xx): start() may try again
  };
  const stop = () => { if (following) following.abort(); following = null; };
  const onVisibility = () => { if (document.hidden) stop(); else start(); };
  document.addEventListener("visibilitychange", onVisibility);
  signal.addEventListener("abort", () => { stop(); document.removeEventListener("visibilitychange", onVisibility); }, { once: true });
  box.addEventListener("change", () => { if (box.checked) start(); else stop(); });
  start();
  return h("div", { class: "field check auto" }, box, h("label", { for: "live-refresh" }, label), when);
}
