// Append an event by hand (POST /streams/{stream}), for testing: the result, or the API's
// error (a wrong expected revision answers 409 naming the actual one).
import { api, seg } from "../api.js";
import { h, errorBox, num, streamHref, eventHref } from "../ui.js";

export async function render({ root, query }) {
  root.append(h("h1", {}, "Append an event"));
  const field = (id, label, el, help) => h("div", { class: "field" }, h("label", { for: id }, label), el, help && h("p", { class: "help", id: id + "-help" }, help));
  const stream = h("input", { id: "a-stream", name: "stream", required: true, value: query.get("stream") || "", placeholder: "order-42", autocomplete: "off" });
  const type = h("input", { id: "a-type", name: "type", required: true, placeholder: "OrderPlaced", autocomplete: "off" });
  const data = h("textarea", { id: "a-data", name: "data", rows: 8, spellcheck: "false", "aria-describedby": "a-data-help" }, "{}");
  const meta = h("textarea", { id: "a-meta", name: "metadata", rows: 4, spellcheck: "false", "aria-describedby": "a-meta-help" }, "");
  const expKind = h("select", { id: "a-expected", name: "expected" },
    h("option", { value: "any" }, "any (no check)"),
    h("option", { value: "no-stream" }, "no stream (must not exist)"),
    h("option", { value: "stream-exists" }, "stream exists"),
    h("option", { value: "exact" }, "exactly revision…"));
  const expRev = h("input", { id: "a-revision", name: "revision", type: "number", min: "0", step: "1", disabled: true, "aria-label": "Expected revision number" });
  expKind.addEventListener("change", () => { expRev.disabled = expKind.value !== "exact"; if (!expRev.disabled) expRev.focus(); });
  const out = h("div", { "aria-live": "polite", id: "append-result" });
  const btn = h("button", { type: "submit", class: "primary" }, "Append");

  const parse = (label, text) => {
    if (!text.trim()) return undefined;
    try { return JSON.parse(text); } catch (e) { throw Object.assign(new Error(`${label} is not valid JSON: ${e.message}`), { kind: "invalid" }); }
  };

  root.append(h("form", { class: "card form", onsubmit: async (e) => {
    e.preventDefault();
    out.replaceChildren();
    let body;
    const id = crypto.randomUUID();
    try {
      const ev = { id, type: type.value };
      const d = parse("Data", data.value);
      const m = parse("Metadata", meta.value);
      if (d !== undefined) ev.data = d;
      if (m !== undefined) ev.metadata = m;
      body = { events: [ev] };
      if (expKind.value === "exact") {
        if (expRev.value === "") throw Object.assign(new Error("Give the expected revision, a whole number."), { kind: "invalid" });
        body.expectedRevision = Number(expRev.value);
      } else if (expKind.value !== "any") body.expectedRevision = expKind.value;
    } catch (ex) {
      out.replaceChildren(errorBox(ex, "Not sent"));
      return;
    }
    btn.disabled = true;
    try {
      const r = await api("/streams/" + seg(stream.value), { method: "POST", body });
      out.replaceChildren(h("div", { class: "ok", role: "status" },
        h("p", {}, `Appended to ${stream.value}: revision ${num(r.revision)}, log position ${num(r.position)}.`),
        h("p", {}, h("a", { href: eventHref(id) }, "Open the event"), " · ", h("a", { href: streamHref(stream.value) }, "Open the stream"))));
    } catch (ex) {
      if (ex.status !== 401) out.replaceChildren(errorBox(ex, "Append refused"));
    } finally {
      btn.disabled = false;
    }
  } },
  field("a-stream", "Stream", stream),
  field("a-type", "Event type", type),
  field("a-data", "Data (JSON)", data, "Any JSON value."),
  field("a-meta", "Metadata (JSON, optional)", meta, 'e.g. {"$correlationId": "…", "$causationId": "…"}'),
  h("div", { class: "field" }, h("label", { for: "a-expected" }, "Expected revision"), h("div", { class: "inline" }, expKind, expRev)),
  h("div", { class: "actions" }, btn)), out);
  (stream.value ? type : stream).focus();
}
