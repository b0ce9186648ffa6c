// A small SVG line chart of a series of numbers, newest last, for rates over time.
import { h, s } from "./ui.js";

const W = 300, H = 80;

export function lineChart(title, format) {
  const line = s("polyline", { class: "line", points: "", fill: "none" });
  const area = s("polygon", { class: "area", points: "" });
  const maxLabel = h("span", { class: "max" }, "");
  const now = h("span", { class: "now" }, "—");
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": title },
    s("line", { class: "grid", x1: 0, y1: H / 2, x2: W, y2: H / 2 }), area, line);
  const el = h("figure", { class: "chart" },
    h("figcaption", {}, h("span", { class: "title" }, title), now),
    h("div", { class: "plot" }, svg, maxLabel));
  // update redraws from values (at most `cap` points, spaced evenly, oldest left).
  el.update = (values, cap = 120) => {
    const v = values.slice(-cap);
    const max = Math.max(1, ...v);
    const step = W / (cap - 1);
    const x0 = W - (v.length - 1) * step;
    const pts = v.map((y, i) => `${(x0 + i * step).toFixed(1)},${(H - 2 - (y / max) * (H - 6)).toFixed(1)}`);
    line.setAttribute("points", pts.join(" "));
    area.setAttribute("points", v.length ? `${x0.toFixed(1)},${H} ${pts.join(" ")} ${W},${H}` : "");
    maxLabel.textContent = "max " + format(max);
    now.textContent = v.length ? format(v[v.length - 1]) : "—";
    svg.setAttribute("aria-label", `${title}: now ${now.textContent}, ${maxLabel.textContent} over the last ${v.length} s`);
  };
  return el;
}
