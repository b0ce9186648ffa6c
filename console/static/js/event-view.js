// How one event reads in a list (stream page, live tail) and in full (event page).
import { h, num, time, streamHref, eventHref } from "./ui.js";

function payload(ev, key) {
  if (ev[key] !== undefined) return h("pre", { class: "json" }, JSON.stringify(ev[key], null, 2));
  if (ev[key + "Base64"] !== undefined) {
    return h("div", {}, h("p", { class: "muted" }, "Not JSON (" + (key === "data" ? ev.contentType || "binary" : "binary") + "), base64:"),
      h("pre", { class: "json" }, ev[key + "Base64"]));
  }
  return h("p", { class: "muted" }, "(empty)");
}

// eventCard is one event with its data and metadata, in a <details> so a long list stays
// scannable; open says whether the payloads show at first.
export function eventCard(ev, { open = false, showStream = true } = {}) {
  return h("article", { class: "event card", dataset: { position: String(ev.position) } },
    h("header", {},
      h("a", { class: "type", href: eventHref(ev.id) }, ev.type),
      showStream && h("a", { class: "stream", href: streamHref(ev.stream) }, ev.stream),
      h("span", { class: "rev", title: "revision in its stream" }, "rev " + num(ev.revision)),
      h("span", { class: "pos", title: "position in the log" }, "pos " + num(ev.position)),
      h("span", { class: "when" }, time(ev.created))),
    h("details", { open },
      h("summary", {}, "Data and metadata"),
      h("div", { class: "payloads" },
        h("section", {}, h("h3", {}, "Data"), payload(ev, "data")),
        h("section", {}, h("h3", {}, "Metadata"), payload(ev, "metadata")))));
}

// eventLine is the compact one-line form used for chains.
export function eventLine(ev, extra) {
  return h("span", { class: "event-line" },
    h("a", { href: eventHref(ev.id) }, ev.type),
    " in ", h("a", { href: streamHref(ev.stream), class: "stream" }, ev.stream),
    h("span", { class: "muted" }, ` rev ${num(ev.revision)} · pos ${num(ev.position)} · `), time(ev.created),
    extra);
}
