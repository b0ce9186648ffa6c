// Overview: the server's figures from GET /stats, then live from GET /stats/stream (one
// `stats` message a second); rates are the deltas between consecutive messages.
import { api, sse } from "../api.js";
import { h, errorBox, num, bytes, duration, badge, healthTone, loading } from "../ui.js";
import { lineChart } from "../chart.js";

const CAP = 120; // seconds of history in the charts

export async function render({ root, signal }) {
  root.append(h("h1", {}, "Overview"));
  const status = h("div", { class: "status", "aria-live": "polite" }, loading());
  const charts = {
    appends: lineChart("Appends / s", (v) => num(round(v))),
    events: lineChart("Events appended / s", (v) => num(round(v))),
    bytes: lineChart("Bytes appended / s", (v) => bytes(v) + "/s"),
  };
  const figures = h("div", { class: "figures" });
  const health = h("section", { class: "card" }, h("h2", {}, "Health"), loading());
  const errBox = h("div");
  root.append(status, errBox,
    h("section", { class: "charts" }, charts.appends, charts.events, charts.bytes),
    figures, health);

  const series = { appends: [], events: [], bytes: [] };
  let prev = null;
  const show = (st) => {
    // Rates from the deltas: by the server's own clock (time), else by its uptime.
    const clock = (x) => (x.time ? Date.parse(x.time) / 1000 : x.uptimeSeconds);
    if (prev && st.uptimeSeconds >= prev.uptimeSeconds && clock(st) > clock(prev)) {
      const dt = clock(st) - clock(prev);
      const rate = (k) => Math.max(0, ((st[k] || 0) - (prev[k] || 0)) / dt);
      push(series.appends, rate("appends"));
      push(series.events, rate("appendedEvents"));
      push(series.bytes, rate("appendedBytes"));
    }
    const recent = prev ? {
      fsyncs: (st.fsyncs || 0) - (prev.fsyncs || 0),
      fsyncSeconds: (st.fsyncSeconds || 0) - (prev.fsyncSeconds || 0),
      gc: (st.groupCommits || 0) - (prev.groupCommits || 0),
      gce: (st.groupCommitEvents || 0) - (prev.groupCommitEvents || 0),
    } : null;
    prev = st;
    charts.appends.update(series.appends, CAP);
    charts.events.update(series.events, CAP);
    charts.bytes.update(series.bytes, CAP);
    figures.replaceChildren(
      fig("Last position", num(st.lastPosition), "events in the log ($all)"),
      fig("Streams", st.streams === undefined || st.streams === null ? "—" : num(st.streams), st.streams === undefined || st.streams === null ? "not counted by this store" : null),
      fig("Disk", bytes(st.diskBytes), num(st.segments) + " segment" + (st.segments === 1 ? "" : "s")),
      fig("Appends", num(st.appends), num(st.appendedEvents) + " events, " + bytes(st.appendedBytes) + " since start"),
      fig("Fsyncs", num(st.fsyncs), "mean " + ms(st.fsyncs ? st.fsyncSeconds / st.fsyncs : null) +
        (recent && recent.fsyncs ? ", last second " + ms(recent.fsyncSeconds / recent.fsyncs) : "")),
      fig("Group commit", st.groupCommits ? (st.groupCommitEvents / st.groupCommits).toFixed(1) : "—",
        "events per commit (one fsync each), " + num(st.groupCommits) + " commits" +
        (recent && recent.gc ? "; last second " + (recent.gce / recent.gc).toFixed(1) : "")),
      fig("Subscriptions", num(st.subscriptions), num(st.groups) + " consumer group" + (st.groups === 1 ? "" : "s")),
      st.eventIndexPosition === undefined || st.eventIndexPosition === null
        ? fig("Event index", "off", "no lookup by id or causation chain")
        : fig("Event index", num(st.eventIndexPosition), st.eventIndexPosition >= st.lastPosition ? "up to date" : num(st.lastPosition - st.eventIndexPosition) + " events behind"),
      fig("Uptime", duration(st.uptimeSeconds)));
    health.replaceChildren(h("h2", {}, "Health"), healthList(st.health));
  };

  try {
    show(await api("/stats", { signal }));
  } catch (e) {
    if (e.name === "AbortError") return;
    status.replaceChildren();
    errBox.replaceChildren(errorBox(e, "GET /stats"));
    if (e.status === 401) throw e;
    if (e.status === 404) errBox.append(h("p", {}, "This server does not serve statistics yet."));
    return;
  }
  sse("/stats/stream", {
    signal,
    resume: false,
    onMessage: (m) => {
      if (m.event !== "stats") return;
      try { show(JSON.parse(m.data)); } catch { /* a malformed message: wait for the next */ }
    },
    onState: (state, err) => {
      if (state === "open") { status.replaceChildren(badge("live", "ok"), " updating every second"); errBox.replaceChildren(); }
      else if (state === "connecting") status.replaceChildren(badge("connecting", "warn"));
      else if (state === "error") { status.replaceChildren(badge("not live", "bad")); errBox.replaceChildren(errorBox(err, "Live statistics")); }
    },
  });
}

function push(a, v) {
  a.push(v);
  if (a.length > CAP) a.shift();
}
const round = (v) => (v >= 10 ? Math.round(v) : Math.round(v * 10) / 10);
function ms(sec) {
  if (sec === null || sec === undefined || !isFinite(sec)) return "—";
  return sec * 1000 >= 10 ? (sec * 1000).toFixed(0) + " ms" : (sec * 1000).toFixed(2) + " ms";
}
function fig(label, value, sub) {
  return h("div", { class: "figure card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub && h("div", { class: "sub" }, sub));
}

// healthList shows each part's health, whatever shape the server gives it: a status string,
// or an object with a status/state field and details.
function healthList(hl) {
  if (!hl || typeof hl !== "object" || !Object.keys(hl).length) return h("p", { class: "muted" }, "The server reports no health details.");
  return h("ul", { class: "health" }, Object.entries(hl).map(([part, v]) => {
    let state = v, detail = null;
    if (v && typeof v === "object") {
      state = v.status ?? v.state ?? v.health ?? (v.ok === true ? "ok" : v.ok === false ? "failing" : "");
      const rest = Object.entries(v).filter(([k]) => !["status", "state", "health", "ok"].includes(k));
      if (rest.length) detail = rest.map(([k, x]) => `${k}: ${typeof x === "object" ? JSON.stringify(x) : x}`).join(", ");
    } else if (typeof v === "boolean") state = v ? "ok" : "failing";
    return h("li", {}, h("span", { class: "part" }, part), badge(String(state || "unknown"), healthTone(state)), detail && h("span", { class: "muted" }, " " + detail));
  }));
}
