// Streams: search by name prefix or category, newest activity first, a page at a time
// (GET /streams?prefix=&category=&limit=&before=).
import { api } from "../api.js";
import { h, errorBox, empty, loading, num, ago, streamHref, table } from "../ui.js";

const LIMIT = 50;

export async function render({ root, query, signal, navigate }) {
  const prefix = query.get("prefix") || "";
  const category = query.get("category") || "";
  const before = query.get("before") || "";
  root.append(h("h1", {}, "Streams"));

  const pf = h("input", { id: "s-prefix", name: "prefix", value: prefix, placeholder: "order-4", autocomplete: "off" });
  const cf = h("input", { id: "s-category", name: "category", value: category, placeholder: "order", autocomplete: "off" });
  const open = h("input", { id: "s-open", name: "open", placeholder: "order-42", autocomplete: "off" });
  root.append(
    h("form", { class: "toolbar", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      if (pf.value) q.set("prefix", pf.value);
      if (cf.value) q.set("category", cf.value);
      navigate("#/streams" + (q.toString() ? "?" + q : ""));
    } },
    h("div", { class: "field" }, h("label", { for: "s-prefix" }, "Name starts with"), pf),
    h("div", { class: "field" }, h("label", { for: "s-category" }, "Category"), cf),
    h("button", { type: "submit", class: "primary" }, "Search")),
    h("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      if (open.value) navigate(streamHref(open.value));
    } },
    h("div", { class: "field" }, h("label", { for: "s-open" }, "Open a stream by name"), open),
    h("button", { type: "submit", class: "secondary" }, "Open")));

  const out = h("div", { "aria-live": "polite" }, loading());
  root.append(out);
  const q = new URLSearchParams({ limit: String(LIMIT) });
  if (prefix) q.set("prefix", prefix);
  if (category) q.set("category", category);
  if (before) q.set("before", before);
  let res;
  try {
    res = await api("/streams?" + q, { signal });
  } catch (e) {
    if (e.status === 401 || e.name === "AbortError") throw e;
    out.replaceChildren(errorBox(e, "Listing streams"));
    return;
  }
  const list = (res && res.streams) || [];
  if (!list.length) {
    out.replaceChildren(empty(prefix || category ? "No stream matches this search." : "There are no streams yet.",
      h("a", { href: "#/append" }, "Append an event by hand")));
    return;
  }
  const cols = [
    { label: "Stream", cell: (r) => h("a", { href: streamHref(r.name) }, r.name) },
    { label: "Last type", cell: (r) => r.lastType || "—" },
    { label: "Revision", class: "num", cell: (r) => num(r.lastRevision) },
    { label: "Position", class: "num", cell: (r) => num(r.lastPosition) },
    { label: "Last event", cell: (r) => ago(r.lastTime) },
  ];
  const pager = h("nav", { class: "pager", "aria-label": "Pages of streams" });
  if (before) {
    const first = new URLSearchParams(query);
    first.delete("before");
    pager.append(h("a", { class: "button secondary", href: "#/streams" + (first.toString() ? "?" + first : "") }, "« First page"));
  }
  if (res.next) {
    const nq = new URLSearchParams(query);
    nq.set("before", cursor(res.next));
    pager.append(h("a", { class: "button secondary", href: "#/streams?" + nq }, "Next page »"));
  }
  out.replaceChildren(table(cols, list, "Streams"), pager);
}

// cursor takes the `before` value out of `next`, whether it is the value itself or a URL.
function cursor(next) {
  if (typeof next === "string" && next.startsWith("/")) {
    const u = new URL(next, location.origin);
    return u.searchParams.get("before") || "";
  }
  return String(next);
}
