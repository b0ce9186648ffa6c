// Subscriptions: every consumer group (GET /subscriptions) with its consumers, in-flight,
// checkpoint, lag and parked counts; replay parked events behind a confirmation. The list
// follows changes live while shown (liveRefresh), in place (focus and open details are kept).
import { api, seg } from "../api.js";
import { h, errorBox, empty, loading, num, badge, healthTone, confirmDialog, streamHref, time, swap, liveRefresh } from "../ui.js";

export async function render({ root, signal }) {
  root.append(h("h1", {}, "Subscriptions"), h("p", { class: "muted" }, "Consumer groups (persistent subscriptions): the server keeps their checkpoints and shares their events among consumers."));
  const notice = h("div", { "aria-live": "polite" });
  const refresh = h("button", { type: "button", class: "secondary", id: "refresh", onclick: () => load() }, "Refresh");
  const out = h("div", {}, loading());
  root.append(h("div", { class: "toolbar" }, refresh, liveRefresh(signal, ["/subscriptions"], () => load())), notice, out);

  async function replay(g) {
    const ok = await confirmDialog(`Replay parked events of ${g.group}?`,
      `The ${num(g.parked)} parked event${g.parked === 1 ? "" : "s"} of group "${g.group}" on ${g.stream} go back in line, oldest first, and are delivered again before new ones.`,
      "Replay parked events", false);
    if (!ok) return;
    try {
      const r = await api(`/subscriptions/${seg(g.stream)}/${seg(g.group)}/replay-parked`, { method: "POST" });
      const n = r && (r.replayed ?? r.count);
      notice.replaceChildren(h("p", { class: "ok", role: "status" }, `Replayed ${n !== undefined ? num(n) + " " : ""}parked events of ${g.group} on ${g.stream}.`));
      load();
    } catch (e) {
      if (e.status === 401) return;
      notice.replaceChildren(errorBox(e, "Replay parked events"));
    }
  }

  async function load() {
    let res;
    try {
      res = await api("/subscriptions", { signal });
    } catch (e) {
      if (e.name === "AbortError" || e.status === 401) throw e;
      swap(out, errorBox(e, "Listing consumer groups"));
      return;
    }
    const groups = (res && res.groups) || [];
    if (!groups.length) {
      swap(out, empty("No consumer groups yet.", h("p", {}, "Create one with ", h("code", {}, "verity groups create"), " or ", h("code", {}, "PUT /subscriptions/{stream}/{group}"), ".")));
      return;
    }
    swap(out, h("div", { class: "groups" }, groups.map((g) => groupCard(g, replay))));
  }
  await load();
}

function groupCard(g, replay) {
  const stat = (label, value, tone, title) => h("div", { class: "stat" + (tone ? " " + tone : ""), title }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  // Lag counts the events past the last written checkpoint, which is written at most every
  // CheckpointAfter once enough events were acknowledged: a live group with nothing waiting
  // or in flight has handled them, and is not shown as behind.
  const behind = g.lag > 0 && (String(g.status).toLowerCase() !== "live" || g.waiting > 0 || g.inFlight > 0);
  const consumers = g.consumers || [];
  return h("article", { class: "card group", dataset: { group: g.group, stream: g.stream } },
    h("header", {},
      h("h2", {}, g.group, " ", h("span", { class: "muted" }, "on "), g.stream === "$all" ? h("span", {}, "$all") : h("a", { href: streamHref(g.stream) }, g.stream)),
      badge(g.status || "unknown", healthTone(g.status)),
      h("button", { type: "button", class: "secondary", disabled: !g.parked, onclick: () => replay(g), dataset: { key: `replay/${g.stream}/${g.group}` },
        "aria-label": `Replay parked events of ${g.group} on ${g.stream}` }, "Replay parked…")),
    h("div", { class: "stats" },
      stat("Checkpoint", g.checkpointed === false ? "none yet" : num(g.checkpoint)),
      stat("Last known", num(g.lastKnown)),
      stat("Lag", num(g.lag), behind ? "warn" : "",
        "Events past the last written checkpoint: replayed to the group after a restart. A checkpoint is written every few seconds once enough events are acknowledged, so a live group with nothing waiting or in flight shows some lag without being behind."),
      stat("In flight", num(g.inFlight)),
      stat("Waiting", num(g.waiting)),
      stat("Parked", num(g.parked), g.parked > 0 ? "bad" : ""),
      stat("Delivered", num(g.delivered)),
      stat("Acked / nacked", `${num(g.acked)} / ${num(g.nacked)}`),
      stat("Strategy", (g.settings && g.settings.strategy) || "—")),
    consumers.length
      ? h("details", { dataset: { key: `consumers/${g.stream}/${g.group}` } }, h("summary", { dataset: { key: `consumers-summary/${g.stream}/${g.group}` } }, `${consumers.length} consumer${consumers.length === 1 ? "" : "s"}`),
        h("table", {}, h("thead", {}, h("tr", {}, ["Consumer", "In flight", "Max", "Delivered", "Acked", "Nacked", "Connected"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, consumers.map((c) => h("tr", {},
            h("td", {}, c.name || c.id), h("td", { class: "num" }, num(c.inFlight)), h("td", { class: "num" }, num(c.maxInFlight)),
            h("td", { class: "num" }, num(c.delivered)), h("td", { class: "num" }, num(c.acked)), h("td", { class: "num" }, num(c.nacked)), h("td", {}, time(c.connected)))))))
      : h("p", { class: "muted" }, "No consumer connected."));
}
