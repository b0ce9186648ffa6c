// Event detail: the event (GET /events/{id}) and its causation chain
// (GET /events/{id}/chain): the events that caused it above, those it caused as a tree
// below, and the rest of its correlation, each linking to its own page.
import { api, seg } from "../api.js";
import { h, set, errorBox, empty, loading, num, time, streamHref, eventHref } from "../ui.js";
import { eventCard, chainLine, since } from "../event-view.js";

export async function renderLookup({ root, navigate }) {
  root.append(h("h1", {}, "Find an event"));
  const id = h("input", { id: "e-id", name: "id", placeholder: "5b0f2c1e-8d2a-4c6e-9f51-3a7d2e4b5c60", autocomplete: "off", required: true, size: 40 });
  root.append(h("form", { class: "toolbar", role: "search", onsubmit: (e) => { e.preventDefault(); navigate(eventHref(id.value.trim())); } },
    h("div", { class: "field" }, h("label", { for: "e-id" }, "Event id"), id),
    h("button", { type: "submit", class: "primary" }, "Open")),
  h("p", { class: "muted" }, "Or open one from a stream or the live tail."));
  id.focus();
}

// causeOf is the id an event names as its cause, in any of the spellings the SDK and
// KurrentDB clients use.
function causeOf(ev) {
  const m = ev && ev.metadata;
  if (!m || typeof m !== "object") return ev && ev.causationId;
  return ev.causationId ?? m.$causationId ?? m.causationId;
}
function correlationOf(ev) {
  const m = ev && ev.metadata;
  if (!m || typeof m !== "object") return null;
  return m.$correlationId ?? m.correlationId ?? null;
}

export async function render({ root, params, signal }) {
  const id = params[0];
  root.append(h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/events" }, "Events"), " / "));
  const head = h("div", {}, loading());
  const chainBox = h("section", { class: "card chain", "aria-labelledby": "chain-h" }, h("h2", { id: "chain-h" }, "Causation chain"), loading());
  root.append(head, chainBox);

  let ev;
  try {
    ev = await api("/events/" + seg(id), { signal });
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) throw e;
    set(head, h("h1", {}, "Event ", h("code", {}, id)),
      e.status === 404 && e.kind === "not_found" && /event/i.test(e.message)
        ? empty("No event with this id (or you may not read its stream).") : null,
      errorBox(e, "Looking up the event"));
    chainBox.remove();
    return;
  }
  const corr = correlationOf(ev);
  // The cause by id at first; by type and stream once the chain has been read.
  const causedBy = h("dd", {}, causeOf(ev) ? h("a", { href: eventHref(causeOf(ev)) }, h("code", {}, causeOf(ev))) : "nothing recorded");
  head.replaceChildren(
    h("h1", {}, ev.type, " ", h("span", { class: "muted" }, "in "), h("a", { href: streamHref(ev.stream) }, ev.stream)),
    h("dl", { class: "facts" },
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, ev.id)),
      h("dt", {}, "Stream"), h("dd", {}, h("a", { href: streamHref(ev.stream) }, ev.stream)),
      h("dt", {}, "Revision"), h("dd", {}, num(ev.revision)),
      h("dt", {}, "Position"), h("dd", {}, num(ev.position)),
      h("dt", {}, "Committed"), h("dd", {}, time(ev.created)),
      h("dt", {}, "Content type"), h("dd", {}, ev.contentType || "—"),
      h("dt", {}, "Caused by"), causedBy,
      h("dt", {}, "Correlation"), h("dd", {}, corr ? h("code", {}, corr) : "none")),
    eventCard(ev, { open: true, showStream: false }));

  let chain;
  try {
    chain = await api("/events/" + seg(id) + "/chain?limit=" + LIMIT, { signal });
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) throw e;
    chainBox.replaceChildren(h("h2", { id: "chain-h" }, "Causation chain"), errorBox(e, "Following the chain"));
    return;
  }
  const direct = (chain.causes || []).find((c) => c.id === causeOf(ev));
  if (direct) set(causedBy, h("a", { href: eventHref(direct.id) }, direct.type), " in ", h("a", { href: streamHref(direct.stream) }, direct.stream), h("span", { class: "muted" }, " (", h("code", {}, direct.id), ")"));
  chainBox.replaceChildren(h("h2", { id: "chain-h" }, "Causation chain"), chainView(chain.event || ev, chain));
}

// GROUP is how many effects of one type under one cause make a group, folded into one line
// that opens to the list (an order of many lines reserves stock once per product).
const GROUP = 3;
const LIMIT = 200;

function chainView(ev, chain) {
  // Causes, root-most first down to the direct cause. The server may list them either way:
  // the direct cause is the one this event names.
  let causes = (chain.causes || []).slice();
  if (causes.length > 1 && causes[0].id === causeOf(ev)) causes.reverse();
  const effects = (chain.effects || []).slice().sort((a, b) => a.position - b.position);
  const kids = new Map();
  for (const e of effects) {
    const c = causeOf(e);
    if (!kids.has(c)) kids.set(c, []);
    kids.get(c).push(e);
  }
  // Times are shown from the chain's first event: "+3 ms" reads better than the same date
  // and second on every line.
  const t0 = new Date((causes[0] || ev).created).getTime();
  const line = (e) => chainLine(e, t0);
  const seen = new Set([ev.id]);
  const item = (e) => { seen.add(e.id); return h("li", {}, line(e), tree(e.id)); };
  const tree = (parentId) => {
    const list = (kids.get(parentId) || []).filter((e) => !seen.has(e.id));
    if (!list.length) return null;
    const byType = new Map();
    for (const e of list) {
      if (!byType.has(e.type)) byType.set(e.type, []);
      byType.get(e.type).push(e);
    }
    const out = [];
    for (const e of list) {
      if (seen.has(e.id)) continue;
      const same = byType.get(e.type);
      if (same.length < GROUP) { out.push(item(e)); continue; }
      const streams = new Set(same.map((x) => x.stream));
      out.push(h("li", { class: "group-of" }, h("details", {},
        h("summary", {}, h("span", { class: "etype" }, e.type), h("span", { class: "count" }, " × " + num(same.length)),
          h("span", { class: "muted" }, ` in ${num(streams.size)} stream${streams.size === 1 ? "" : "s"}, pos ${num(same[0].position)}–${num(same[same.length - 1].position)}`)),
        h("ul", { class: "tree" }, same.map(item)))));
    }
    return h("ul", { class: "tree" }, out);
  };
  const effectsTree = tree(ev.id);
  // Effects whose cause is not in the tree (the server cut the chain short) are still shown.
  const orphans = effects.filter((e) => !seen.has(e.id));
  const corr = (chain.correlation || []).filter((e) => e.id !== ev.id && !causes.some((c) => c.id === e.id) && !effects.some((c) => c.id === e.id))
    .sort((a, b) => a.position - b.position);
  const streams = new Set(effects.map((e) => e.stream));
  const lastT = effects.reduce((m, e) => Math.max(m, new Date(e.created).getTime()), t0);

  return h("div", {},
    h("h3", {}, "Caused by"),
    causes.length
      ? h("ol", { class: "causes" }, causes.map((c) => h("li", {}, line(c))))
      : h("p", { class: "muted" }, "Nothing: this event starts its chain."),
    h("div", { class: "this-event" }, h("strong", {}, "This event: "), line(ev)),
    h("h3", {}, "Led to"),
    effects.length
      ? h("p", { class: "muted chain-summary" }, `${num(effects.length)} event${effects.length === 1 ? "" : "s"} in ${num(streams.size)} stream${streams.size === 1 ? "" : "s"}, the last `,
        since(new Date(lastT).toISOString(), t0), causes.length ? " after the chain's first event." : " after this one.",
        effects.length >= LIMIT ? ` Only the first ${num(LIMIT)} are shown.` : "")
      : null,
    effectsTree || (orphans.length ? null : h("p", { class: "muted" }, "Nothing yet: no event names this one as its cause.")),
    orphans.length ? h("ul", { class: "tree" }, orphans.map((e) => h("li", {}, line(e)))) : null,
    corr.length ? [h("h3", {}, "Also in this correlation"), h("ul", { class: "plain" }, corr.map((e) => h("li", {}, line(e))))] : null);
}
