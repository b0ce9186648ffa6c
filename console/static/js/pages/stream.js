// One stream: its events newest first, a page at a time (a backwards read with a limit,
// never the whole stream), its metadata, and delete/tombstone behind a confirmation.
import { api, seg } from "../api.js";
import { h, set, errorBox, empty, loading, pretty, confirmDialog, streamHref } from "../ui.js";
import { eventCard } from "../event-view.js";

const LIMIT = 20;

export async function render({ root, params, query, signal }) {
  const name = params[0];
  const from = query.get("from") || "";
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/streams" }, "Streams"), " / "),
    h("h1", { class: "stream-title" }, name));
  const actions = h("div", { class: "toolbar" },
    h("a", { class: "button secondary", href: "#/append?stream=" + encodeURIComponent(name) }, "Append an event"),
    name !== "$all" && h("button", { type: "button", class: "danger", onclick: () => del(false) }, "Soft delete…"),
    name !== "$all" && h("button", { type: "button", class: "danger", onclick: () => del(true) }, "Tombstone…"));
  const notice = h("div", { "aria-live": "polite" });
  const meta = h("section", { class: "card meta" }, h("h2", {}, "Metadata"), loading());
  const list = h("section", { class: "events" }, loading());
  root.append(actions, notice, meta, h("h2", {}, "Events, newest first"), list);

  async function del(tombstone) {
    const ok = await confirmDialog(
      tombstone ? `Tombstone ${name}?` : `Delete ${name}?`,
      tombstone
        ? `A tombstone deletes "${name}" for good: every later read or write of it will fail with 410. This cannot be undone.`
        : `A soft delete hides "${name}": reads answer 404 until it is written again, and its space is reclaimed by scavenging.`,
      tombstone ? "Tombstone for good" : "Delete");
    if (!ok) return;
    try {
      const r = await api("/streams/" + seg(name) + (tombstone ? "?tombstone=true" : ""), { method: "DELETE" });
      notice.replaceChildren(h("p", { class: "ok", role: "status" }, `${tombstone ? "Tombstoned" : "Deleted"} at log position ${r && r.position}.`));
      load();
    } catch (e) {
      if (e.status === 401) return;
      notice.replaceChildren(errorBox(e, tombstone ? "Tombstone" : "Delete"));
    }
  }

  api("/streams/" + seg(name) + "/metadata", { signal }).then(
    (m) => meta.replaceChildren(h("h2", {}, "Metadata ", h("span", { class: "muted" }, "revision " + m.revision)), pretty(m.metadata)),
    (e) => {
      if (e.name === "AbortError") return;
      if (e.status === 404) meta.replaceChildren(h("h2", {}, "Metadata"), h("p", { class: "muted" }, "This stream has no metadata (no limits, no access list)."));
      else meta.replaceChildren(h("h2", {}, "Metadata"), errorBox(e, "Reading metadata"));
    });

  async function load() {
    const q = new URLSearchParams({ direction: "backwards", limit: String(LIMIT) });
    if (from) q.set("from", from);
    let res;
    try {
      res = await api("/streams/" + seg(name) + "?" + q, { signal });
    } catch (e) {
      if (e.name === "AbortError" || e.status === 401) return;
      if (e.status === 404) list.replaceChildren(empty(`"${name}" has no events: it was never written, or it was deleted.`), errorBox(e, "Reading the stream"));
      else if (e.status === 410) list.replaceChildren(empty(`"${name}" was tombstoned: it is gone for good.`), errorBox(e, "Reading the stream"));
      else list.replaceChildren(errorBox(e, "Reading the stream"));
      return;
    }
    const events = res.events || [];
    const pager = h("nav", { class: "pager", "aria-label": "Pages of events" });
    if (from) pager.append(h("a", { class: "button secondary", href: streamHref(name) }, "« Newest"));
    if (res.next) {
      const n = new URL(res.next, location.origin).searchParams.get("from");
      if (n !== null) pager.append(h("a", { class: "button secondary", href: streamHref(name) + "?from=" + encodeURIComponent(n) }, "Older »"));
    }
    set(list,
      events.length ? events.map((ev) => eventCard(ev, { open: events.length <= 5, showStream: name === "$all" })) : empty("No events on this page."),
      pager);
  }
  await load();
}
