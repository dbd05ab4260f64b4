// Small SVG charts for the console (no library): a bar chart of counts over
// time with axes, labelled ticks and a tooltip per bar. Built with DOM calls
// and presentation attributes only (the CSP allows no inline style).

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// 1, 2, 5 × 10^n at or above `x`.
function niceStep(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return Math.max(1, m * p);
  return 10 * p;
}

const pad2 = (n) => String(n).padStart(2, "0");

// A tick label: time of day for short spans, date for long ones.
function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const day = `${d.getMonth() + 1}/${d.getDate()}`;
  if (spanMs > 3 * 86400e3) return day;
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return spanMs > 86400e3 ? `${day} ${hm}` : hm;
}

export function formatCount(n) {
  return Number(n).toLocaleString();
}

// Bucket widths tried for a range, smallest first.
const INTERVALS = [
  ["1m", 60e3],
  ["5m", 300e3],
  ["15m", 900e3],
  ["1h", 3600e3],
  ["3h", 3 * 3600e3],
  ["6h", 6 * 3600e3],
  ["1d", 86400e3],
  ["7d", 7 * 86400e3],
];

// The interval giving at most `max` buckets over `spanMs`: [text, ms].
export function intervalFor(spanMs, max = 60) {
  return INTERVALS.find(([, ms]) => spanMs / ms <= max) || INTERVALS[INTERVALS.length - 1];
}

/**
 * A bar chart of counts over time.
 * buckets: [{key: ms, doc_count}], ascending; opts: {label, intervalMs, from, to}.
 * Returns an <svg class="chart"> with one <rect class="bar"> per non-empty
 * bucket, each with a <title> tooltip and an aria-label; the bars are one
 * tab stop, arrow keys (Home, End) move between them and the focused bar's
 * count shows in the corner.
 */
export function timeChart(buckets, opts = {}) {
  const W = 640;
  const H = 180;
  const m = { l: 44, r: 10, t: 10, b: 26 };
  const iw = W - m.l - m.r;
  const ih = H - m.t - m.b;
  const step = opts.intervalMs || 60e3;
  const keys = buckets.map((b) => Number(b.key));
  const x0 = opts.from ?? (keys.length ? Math.min(...keys) : Date.now() - step);
  const x1 = Math.max(opts.to ?? 0, keys.length ? Math.max(...keys) + step : x0 + step, x0 + step);
  const max = Math.max(0, ...buckets.map((b) => b.doc_count));
  const ystep = niceStep(Math.max(1, max) / 4);
  const ymax = Math.max(ystep, Math.ceil(max / ystep) * ystep);
  const X = (t) => m.l + ((t - x0) / (x1 - x0)) * iw;
  const Y = (v) => m.t + ih - (v / ymax) * ih;
  const total = buckets.reduce((a, b) => a + b.doc_count, 0);
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    // A group, not an image: its bars are reachable one by one.
    role: "group",
    "aria-label": `${opts.label || "Events over time"}: ${formatCount(total)} events, at most ${formatCount(max)} per ${opts.intervalText || "interval"}`,
    preserveAspectRatio: "xMidYMid meet",
  });
  // y axis: gridlines and labels.
  const yAxis = s("g", { class: "axis y" });
  for (let v = 0; v <= ymax; v += ystep) {
    yAxis.append(
      s("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: v === 0 ? "baseline" : "grid" }),
      s("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end", class: "tick" }, formatCount(v)),
    );
  }
  // x axis: about five labelled ticks.
  const xAxis = s("g", { class: "axis x" });
  const span = x1 - x0;
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const t = x0 + (span * i) / ticks;
    const x = X(t);
    xAxis.append(
      s("line", { x1: x, x2: x, y1: m.t + ih, y2: m.t + ih + 4, class: "tickmark" }),
      s(
        "text",
        { x, y: H - 8, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle", class: "tick" },
        timeLabel(t, span),
      ),
    );
  }
  // tabindex -1: Chromium would make the group, which listens for keys, a tab stop.
  const bars = s("g", { class: "bars", tabindex: -1 });
  const bw = Math.max(1, (step / span) * iw - 1);
  // What the focused or hovered bar says, shown in the chart's corner.
  const readout = s("text", { x: W - m.r, y: m.t + 12, "text-anchor": "end", class: "readout", "aria-hidden": "true" });
  for (const b of buckets) {
    if (!b.doc_count) continue;
    const t = Number(b.key);
    const y = Y(b.doc_count);
    const says = `${new Date(t).toLocaleString()}: ${formatCount(b.doc_count)} event${b.doc_count === 1 ? "" : "s"}`;
    const bar = s(
      "rect",
      {
        class: "bar",
        x: X(t),
        y,
        width: bw,
        height: m.t + ih - y,
        "data-count": b.doc_count,
        role: "img",
        "aria-label": says,
        // One tab stop for the chart; arrow keys move between bars.
        tabindex: bars.childElementCount === 0 ? 0 : -1,
      },
      s("title", {}, says),
    );
    const show = () => {
      readout.textContent = says;
    };
    bar.addEventListener("focus", show);
    bar.addEventListener("mouseenter", show);
    bars.append(bar);
  }
  bars.addEventListener("keydown", (ev) => {
    const all = [...bars.querySelectorAll("rect.bar")];
    const at = all.indexOf(ev.target);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 }[ev.key];
    if (at < 0 || to === undefined || !all[to]) return;
    ev.preventDefault();
    all[at].setAttribute("tabindex", "-1");
    all[to].setAttribute("tabindex", "0");
    all[to].focus();
  });
  bars.addEventListener("focusout", (ev) => {
    if (!bars.contains(ev.relatedTarget)) readout.textContent = "";
  });
  svg.append(yAxis, xAxis, bars, readout);
  return svg;
}
