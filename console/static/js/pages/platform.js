// Platform pages: read models (the consolidator's admin API at /ui/platform/views), and
// services (the registry, and the gateway's routes at /ui/platform/admin/routes). The
// consolidator and gateway run under `verity dev`; a plain server answers 404 for them.
import { api, seg } from "../api.js";
import { h, errorBox, empty, loading, num, badge, healthTone, confirmDialog, time, ago, table } from "../ui.js";

const NOT_RUN = "Not run by this server (verity dev runs them).";

async function section(box, title, path, signal, show, notRunWhat) {
  box.replaceChildren(h("h2", {}, title), loading());
  try {
    const res = await api(path, { signal });
    box.replaceChildren(h("h2", {}, title), show(res));
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) throw e;
    if (e.status === 404 && notRunWhat) box.replaceChildren(h("h2", {}, title), empty(notRunWhat + " " + NOT_RUN));
    else box.replaceChildren(h("h2", {}, title), errorBox(e, "GET " + path));
  }
}

export async function renderViews({ root, signal }) {
  root.append(h("h1", {}, "Projections and views"),
    h("p", { class: "muted" }, "SQL read models the consolidator keeps off the log: how far each has applied it, its lag, and its errors."));
  const notice = h("div", { "aria-live": "polite" });
  const box = h("section", { class: "card" });
  root.append(h("div", { class: "toolbar" }, h("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh")), notice, box);
  const rebuild = async (v) => {
    if (!(await confirmDialog(`Rebuild ${v.name}?`, `The log is replayed into a new generation of ${v.name}'s tables while the current ones keep serving; they are swapped in when it is done.`, "Rebuild", false))) return;
    try {
      await api(`/ui/platform/views/${seg(v.name)}/rebuild`, { method: "POST" });
      notice.replaceChildren(h("p", { class: "ok", role: "status" }, `Rebuild of ${v.name} started.`));
      load();
    } catch (e) {
      if (e.status !== 401) notice.replaceChildren(errorBox(e, "Rebuild " + v.name));
    }
  };
  const load = () => section(box, "Read models", "/ui/platform/views", signal, (res) => {
    const views = (res && res.views) || [];
    if (!views.length) return empty("The consolidator runs no read models.");
    return table([
      { label: "View", cell: (v) => h("strong", {}, v.name) },
      { label: "State", cell: (v) => badge(v.state, healthTone(v.state)) },
      { label: "Position", class: "num", cell: (v) => num(v.position) },
      { label: "Lag (events)", class: "num", cell: (v) => num(v.lagEvents) },
      { label: "Lag (s)", class: "num", cell: (v) => (v.lagSeconds || 0).toFixed(1) },
      { label: "Generation", class: "num", cell: (v) => num(v.generation) },
      { label: "Errors", cell: (v) => v.errors ? h("span", {}, num(v.errors) + " — ", h("span", { class: "bad-text" }, v.lastError || ""), " ", v.lastErrorAt ? ago(v.lastErrorAt) : "") : "none" },
      { label: "Tables", cell: (v) => (v.tables || []).join(", ") },
      { label: "", cell: (v) => h("button", { type: "button", class: "secondary small", onclick: () => rebuild(v), "aria-label": "Rebuild " + v.name }, "Rebuild…") },
    ], views, "Read models");
  }, "The consolidator is not running here.");
  await load();
}

export async function renderServices({ root, signal }) {
  root.append(h("h1", {}, "Services"), h("p", { class: "muted" }, "Instances in the service registry, and the gateway's routes with their circuit breakers."));
  const svc = h("section", { class: "card" });
  const inst = h("section", { class: "card" });
  const routes = h("section", { class: "card" });
  root.append(h("div", { class: "toolbar" }, h("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh")), svc, inst, routes);
  const load = () => Promise.all([
    section(svc, "Services", "/registry/services", signal, (res) => {
      const l = (res && res.services) || [];
      if (!l.length) return empty("No service is registered.");
      return table([
        { label: "Service", cell: (s) => h("strong", {}, s.name) },
        { label: "Instances", class: "num", cell: (s) => num(s.instances) },
        { label: "Healthy", class: "num", cell: (s) => badge(`${num(s.healthy)} of ${num(s.instances)}`, s.healthy === s.instances ? "ok" : s.healthy ? "warn" : "bad") },
      ], l, "Services");
    }, null),
    section(inst, "Instances", "/registry/instances", signal, (res) => {
      const l = (res && res.instances) || [];
      if (!l.length) return empty("No instance is registered.");
      return table([
        { label: "Service", cell: (i) => i.service },
        { label: "Instance", cell: (i) => h("code", {}, i.id) },
        { label: "Address", cell: (i) => i.address },
        { label: "Version", cell: (i) => i.version || "—" },
        { label: "Health", cell: (i) => h("span", {}, badge(i.health || "unknown", healthTone(i.health)), i.healthReason ? " " + i.healthReason : "") },
        { label: "Registered", cell: (i) => time(i.registered) },
      ], l, "Instances");
    }, null),
    section(routes, "Gateway routes", "/ui/platform/admin/routes", signal, (res) => {
      const l = (res && res.routes) || [];
      if (!l.length) return empty("The gateway has no routes.");
      const pct = (x) => (x === undefined || x === null ? "—" : (x * 100).toFixed(1) + " %");
      return table([
        { label: "Route", cell: (r) => h("strong", {}, r.name) },
        { label: "Match", cell: (r) => h("code", {}, r.match || "") },
        { label: "Kind", cell: (r) => r.kind || "—" },
        { label: "Requests", class: "num", cell: (r) => num(r.requests) },
        { label: "Error rate", class: "num", cell: (r) => pct(r.errorRate) },
        { label: "Shed", class: "num", cell: (r) => num(r.shed) },
        { label: "In flight", class: "num", cell: (r) => num(r.inFlight) },
        { label: "Upstreams", cell: (r) => h("ul", { class: "plain" }, (r.upstreams || []).map((u) =>
          h("li", {}, u.service, " ", badge("breaker " + u.breaker, healthTone(u.breaker)), ` ${num(u.requests)} req, ${pct(u.errorRate)} errors`))) },
      ], l, "Gateway routes");
    }, "The gateway is not running here."),
  ]);
  await load();
}
