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

// shortStream writes the UUIDs in a stream name short (order-ebaa55a9…), for lists where
// the same long id repeats on every line; the full name stays in the link's title.
export function shortStream(name) {
  return String(name).replace(/([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "$1…");
}

// since says how long after t0 (ms since the epoch) time t was, for a chain's events:
// "+3.2 ms", "+1.4 s", "+2m 5s"; the exact time is in the title.
export function since(t, t0) {
  const d = new Date(t).getTime() - t0;
  if (!(d >= 0) && !(d < 0)) return time(t);
  const sign = d < 0 ? "−" : "+";
  const a = Math.abs(d);
  let text;
  if (a < 1) text = "+0 ms";
  else if (a < 1000) text = sign + (a < 10 ? a.toFixed(1) : Math.round(a)) + " ms";
  else if (a < 60000) text = sign + (a / 1000).toFixed(a < 10000 ? 2 : 1) + " s";
  else text = sign + Math.floor(a / 60000) + "m " + Math.round((a % 60000) / 1000) + "s";
  return h("time", { datetime: t, title: new Date(t).toLocaleString() + " (" + t + ")", class: "since" }, text);
}

// chainLine is one event of a causation chain: its type, its stream (short), its position
// and how long after the chain's first event it was committed.
export function chainLine(ev, t0) {
  return h("span", { class: "event-line chain-line" },
    h("a", { href: eventHref(ev.id), class: "etype" }, ev.type),
    h("a", { href: streamHref(ev.stream), class: "stream", title: ev.stream }, shortStream(ev.stream)),
    h("span", { class: "muted pos", title: `revision ${ev.revision} in its stream, position ${ev.position} in the log` }, `rev ${num(ev.revision)} · pos ${num(ev.position)}`),
    since(ev.created, t0));
}
