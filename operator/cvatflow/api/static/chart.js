// Line charts drawn as inline SVG: a few dozen points per run need no chart library.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560; // when the figure is not laid out yet
const PAD = {left: 52, right: 16, top: 14, bottom: 36};
const COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989"];

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** About `count` round tick values between lo and hi. */
function ticks(lo, hi, count = 5) {
  if (hi === lo) return [lo];
  const raw = (hi - lo) / count;
  const step = [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function label(value) {
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 0.01 || abs >= 1e5) ? value.toExponential(1) : String(+value.toPrecision(3));
}

/**
 * Draw `series` ([{name, points: [[x, y], ...]}]) into `figure` (a <figure> with a <figcaption>), with axes,
 * a legend, and a text summary for screen readers.
 */
export function drawChart(figure, series, {xLabel = "epoch", empty = "No data yet."} = {}) {
  // Drawn at the figure's own width, so labels keep their size on a phone instead of shrinking with it.
  const inner = figure.clientWidth - 24;
  const width = inner > 0 ? Math.max(260, Math.floor(inner)) : WIDTH;
  const height = width < 420 ? 200 : 260;
  figure.dataset.width = String(width);
  figure.querySelector("svg")?.remove();
  figure.querySelector(".legend")?.remove();
  const drawn = series.filter((s) => s.points.length);
  figure.dataset.points = String(drawn.reduce((n, s) => n + s.points.length, 0));
  const caption = figure.querySelector("figcaption");
  const summary = drawn.map((s) => `${s.name} ${label(s.points.at(-1)[1])} at ${xLabel} ${label(s.points.at(-1)[0])}`);
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
                            "aria-label": `${caption?.textContent || "chart"}: ${summary.join("; ") || empty}`});
  figure.insertBefore(chart, caption?.nextSibling || null);
  if (!drawn.length) {
    chart.append(svg("text", {x: width / 2, y: height / 2, "text-anchor": "middle", class: "muted"}, empty));
    return;
  }
  const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1]));
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const margin = (y1 - y0) * 0.05;
  y0 -= margin; y1 += margin;
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (width - PAD.left - PAD.right);
  const sy = (y) => height - PAD.bottom - ((y - y0) / (y1 - y0)) * (height - PAD.top - PAD.bottom);

  const axes = svg("g", {class: "axes"});
  for (const y of ticks(y0, y1)) {
    axes.append(svg("line", {x1: PAD.left, x2: width - PAD.right, y1: sy(y), y2: sy(y), class: "grid"}));
    axes.append(svg("text", {x: PAD.left - 6, y: sy(y) + 4, "text-anchor": "end"}, label(y)));
  }
  for (const x of ticks(x0, x1, width < 420 ? 4 : 6)) {
    axes.append(svg("text", {x: sx(x), y: height - PAD.bottom + 16, "text-anchor": "middle"}, label(x)));
  }
  axes.append(svg("line", {x1: PAD.left, x2: width - PAD.right, y1: height - PAD.bottom, y2: height - PAD.bottom,
                           class: "axis"}));
  axes.append(svg("text", {x: (PAD.left + width - PAD.right) / 2, y: height - 4, "text-anchor": "middle"}, xLabel));
  chart.append(axes);

  const legend = document.createElement("ul");
  legend.className = "legend";
  drawn.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const line = svg("polyline", {points, fill: "none", stroke: colour, "stroke-width": 2, class: "series"});
    line.dataset.series = s.name;
    chart.append(line);
    for (const [x, y] of s.points) chart.append(svg("circle", {cx: sx(x), cy: sy(y), r: 2.5, fill: colour}));
    const swatch = svg("svg", {viewBox: "0 0 10 10", width: 10, height: 10, "aria-hidden": "true"});
    swatch.append(svg("rect", {width: 10, height: 10, fill: colour}));
    const item = document.createElement("li");
    item.append(swatch, ` ${s.name}`);
    legend.append(item);
  });
  figure.append(legend);
}
