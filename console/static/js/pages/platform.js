// Platform pages: read models (the consolidator's admin API at /ui/platform/views), and
// services (the registry, and the gateway's routes at /ui/platform/admin/routes). The
// consolidator and gateway run under `verity dev`; a plain server answers 404 for them.
// Both pages follow changes live while shown (liveRefresh: the server says what changed over
// server-sent events), swapping tables in place so that focus, open details and scroll
// survive.
import { api, seg } from "../api.js";
import { h, errorBox, empty, loading, num, badge, healthTone, confirmDialog, ago, time, table, swap, liveRefresh } from "../ui.js";

const NOT_RUN = "Not run by this server (verity dev runs them).";

// section loads path into box under title: show(answer) on success, an empty state when
// the part is not run here (404 with notRunWhat), or the error. It never shows "Loading…"
// over a table already there, so a refresh does not make the page jump.
async function section(box, title, path, signal, show, notRunWhat) {
  const heading = () => h("h2", {}, title);
  if (!box.childElementCount) box.replaceChildren(heading(), loading());
  try {
    const res = await api(path, { signal });
    swap(box, heading(), show(res));
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) throw e;
    if (e.status === 404 && notRunWhat) swap(box, heading(), empty(notRunWhat + " " + NOT_RUN));
    else swap(box, heading(), errorBox(e, "GET " + path));
  }
}

const seconds = (s) => (s === undefined || s === null ? "—" : s < 10 ? s.toFixed(1) : num(Math.round(s)));

export async function renderViews({ root, signal }) {
  root.append(h("h1", {}, "Projections and views"),
    h("p", { class: "muted" }, "SQL read models the consolidator keeps off the log: how far each has applied it, its lag, and its errors."));
  const notice = h("div", { "aria-live": "polite" });
  const box = h("section", { class: "card views" });
  // rebuilds started here and not seen done yet: name -> generation before
  const pending = new Map();
  let last = null; // the last answer, to render again when a rebuild is watched

  const show = (res) => {
    last = res;
    const views = (res && res.views) || [];
    for (const v of views) {
      const from = pending.get(v.name);
      if (from !== undefined && v.state !== "rebuilding" && v.generation > from) {
        pending.delete(v.name);
        notice.replaceChildren(h("p", { class: "ok", role: "status" },
          `Rebuild of ${v.name} done: generation ${num(v.generation)} swapped in at position ${num(v.position)}.`));
      }
    }
    if (!views.length) return empty("The consolidator runs no read models.");
    return h("div", { class: "scroll", dataset: { key: "views-scroll" } }, table([
      { label: "View", cell: (v) => h("strong", {}, v.name) },
      { label: "State", cell: (v) => stateCell(v, pending.has(v.name)) },
      { label: "Position", class: "num", cell: (v) => num(v.position) },
      { label: "Lag (events)", class: "num", cell: (v) => num(v.lagEvents) },
      { label: "Lag (s)", class: "num", cell: (v) => seconds(v.lagSeconds) },
      { label: "Generation", class: "num", cell: (v) => num(v.generation) },
      { label: "Errors", cell: (v) => v.errors
        ? h("span", {}, h("strong", { class: "bad-text" }, num(v.errors)), " — ", v.lastError || "", v.lastErrorAt ? h("span", { class: "muted" }, " (", ago(v.lastErrorAt), ")") : "")
        : h("span", { class: "muted" }, "none") },
      { label: "Tables", cell: (v) => (v.tables || []).map((t, i) => [i ? ", " : "", h("code", {}, t)]) },
      { label: "", cell: (v) => h("button", {
        type: "button", class: "secondary small", dataset: { key: "rebuild-" + v.name },
        disabled: v.state === "rebuilding", onclick: () => rebuild(v), "aria-label": "Rebuild " + v.name,
      }, v.state === "rebuilding" ? "Rebuilding…" : "Rebuild…") },
    ], views, "Read models"));
  };
  const load = () => section(box, "Read models", "/ui/platform/views", signal, show, "The consolidator is not running here.");

  // watch polls a started rebuild twice a second until it is seen done, whether or not the
  // page follows changes live: a person who asked for it is waiting for the answer.
  async function watch(name) {
    const deadline = Date.now() + 10 * 60 * 1000;
    while (pending.has(name) && !signal.aborted && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (signal.aborted) return;
      try {
        await load();
      } catch {
        return;
      }
    }
  }

  async function rebuild(v) {
    if (!(await confirmDialog(`Rebuild ${v.name}?`,
      `The log is replayed into a new generation of ${v.name}'s tables (${(v.tables || []).join(", ")}) while the current ones keep serving; they are swapped in when it is done.`,
      "Rebuild", false))) return;
    try {
      const st = await api(`/ui/platform/views/${seg(v.name)}/rebuild`, { method: "POST", signal });
      // The generation before the click: a small rebuild may be swapped in before the
      // POST's answer is written, which then already shows the new generation.
      const before = st && st.generation !== undefined && st.state === "rebuilding" ? Math.min(st.generation, v.generation) : v.generation;
      pending.set(v.name, before);
      notice.replaceChildren(h("p", { class: "ok", role: "status" }, `Rebuilding ${v.name}…`));
      if (last) swap(box, h("h2", {}, "Read models"), show(last));
      await load();
      watch(v.name);
    } catch (e) {
      if (e.name === "AbortError") return;
      if (e.status !== 401) notice.replaceChildren(errorBox(e, "Rebuild " + v.name));
    }
  }

  root.append(h("div", { class: "toolbar" },
    h("button", { type: "button", class: "secondary", id: "refresh", onclick: () => load() }, "Refresh"),
    liveRefresh(signal, ["/ui/platform/views"], load)), notice, box);
  await load();
}

// stateCell is a view's state with what goes with it: caught up or not, a rebuild's
// progress, when a failed one is retried.
function stateCell(v, watched) {
  const extra = [];
  if (v.state === "rebuilding") {
    extra.push(h("span", { class: "progress" }, v.rebuildPosition ? `replayed to position ${num(v.rebuildPosition)}` : "starting"));
  } else if (v.state === "failed" && v.retryAt) {
    extra.push(h("span", { class: "progress" }, "retried ", time(v.retryAt)));
  } else if (v.state === "running") {
    extra.push(h("span", { class: "progress" }, v.caughtUp ? "caught up" : "catching up"));
  }
  if (watched && v.state !== "rebuilding") extra.push(h("span", { class: "progress" }, "rebuild queued"));
  return h("div", { class: "state", dataset: { state: v.state } }, badge(v.state || "unknown", healthTone(v.state)), extra);
}

const pct = (x) => (x === undefined || x === null ? "—" : (x * 100).toFixed(x > 0 && x < 0.001 ? 2 : 1) + " %");

export async function renderServices({ root, signal }) {
  root.append(h("h1", {}, "Services"), h("p", { class: "muted" }, "Instances in the service registry, and the gateway's routes with their circuit breakers."));
  const inst = h("section", { class: "card instances" });
  const routes = h("section", { class: "card routes" });
  const load = () => Promise.all([
    loadInstances(inst, signal),
    section(routes, "Gateway routes", "/ui/platform/admin/routes", signal, (res) => {
      const l = (res && res.routes) || [];
      if (!l.length) return empty("The gateway has no routes.");
      return h("div", { class: "scroll", dataset: { key: "routes-scroll" } }, table([
        { label: "Route", cell: (r) => h("strong", {}, r.name) },
        { label: "Match", cell: (r) => h("code", {}, r.match || "") },
        { label: "Kind", cell: (r) => r.kind || "—" },
        { label: "Requests", class: "num", cell: (r) => num(r.requests) },
        { label: "Errors", class: "num", cell: (r) => h("span", { class: r.errors ? "bad-text" : "" }, num(r.errors), " · ", pct(r.errorRate)) },
        { label: "Shed", class: "num", cell: (r) => num(r.shed) },
        { label: "In flight", class: "num", cell: (r) => num(r.inFlight) },
        { label: "Upstreams: breaker, requests, errors", cell: (r) => (r.upstreams || []).length
          ? h("ul", { class: "upstreams" }, r.upstreams.map((u) => h("li", { dataset: { service: u.service } },
            h("span", { class: "svc" }, u.service), badge(u.breaker, healthTone(u.breaker)),
            h("span", { class: "muted" }, `${num(u.requests)} req · ${pct(u.errorRate)} errors`))))
          : h("span", { class: "muted" }, r.kind === "command" ? "none: appends the command to the log" : "none") },
      ], l, "Gateway routes"),
      h("p", { class: "muted note" }, "A breaker, and the requests and errors beside it, belong to the upstream service: every route to that service shares them."));
    }, "The gateway is not running here."),
  ]);
  root.append(h("div", { class: "toolbar" },
    h("button", { type: "button", class: "secondary", id: "refresh", onclick: () => load() }, "Refresh"),
    liveRefresh(signal, ["/registry/services", "/registry/instances", "/ui/platform/admin/routes"], load)), inst, routes);
  await load();
}

// loadInstances shows the registry's services, each with its instances and their health.
async function loadInstances(box, signal) {
  const heading = () => h("h2", {}, "Registry");
  if (!box.childElementCount) box.replaceChildren(heading(), loading());
  let services, instances;
  try {
    [services, instances] = await Promise.all([api("/registry/services", { signal }), api("/registry/instances", { signal })]);
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) throw e;
    swap(box, heading(), errorBox(e, "Reading the registry"));
    return;
  }
  const svcs = (services && services.services) || [];
  const list = (instances && instances.instances) || [];
  if (!svcs.length && !list.length) {
    swap(box, heading(), empty("No service is registered."));
    return;
  }
  const healthy = svcs.reduce((n, s) => n + (s.healthy === s.instances && s.instances > 0 ? 1 : 0), 0);
  const summary = h("p", { class: "summary" }, `${num(svcs.length)} service${svcs.length === 1 ? "" : "s"}, ${num(healthy)} with every instance healthy; ${num(list.length)} instance${list.length === 1 ? "" : "s"}.`);
  const bySvc = new Map(svcs.map((s) => [s.name, s]));
  const rows = list.slice().sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
  swap(box, heading(), summary, h("div", { class: "scroll", dataset: { key: "instances-scroll" } }, table([
    { label: "Service", cell: (i) => { const s = bySvc.get(i.service); return h("span", {}, h("strong", {}, i.service), s ? h("span", { class: "muted" }, ` ${num(s.healthy)}/${num(s.instances)} healthy`) : null); } },
    { label: "Instance", cell: (i) => h("code", {}, i.id) },
    { label: "Address", cell: (i) => h("code", {}, i.address) },
    { label: "Version", cell: (i) => i.version || "—" },
    { label: "Health", cell: (i) => h("span", {}, badge(i.health || "unknown", healthTone(i.health)), i.healthReason ? " " + i.healthReason : "") },
    { label: "Registered", cell: (i) => ago(i.registered) },
  ], rows, "Registry instances")));
}
