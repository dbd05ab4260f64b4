// Dashboards view (#/dashboards, #/dashboards/<id>) and the search
// histogram. Definitions come from GET /v1/dashboards[/id]; each panel
// carries the POST /v1/search body that answers it. DOM calls only.

import { h } from "./dom.js";
import { api, query } from "./api.js";
import { timeChart, intervalFor, formatCount } from "./charts.js";


const err = (text) => h("p", { class: "notice error", role: "alert" }, text);

const spanMs = (text) => {
  const m = /^(\d+)([mhd])$/.exec(text || "");
  return m ? Number(m[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[m[2]] : null;
};

// The Search view's ranges: a panel's range opens as the smallest that covers it.
const SEARCH_RANGES = [
  ["15m", 15 * 60e3],
  ["1h", 3600e3],
  ["24h", 86400e3],
  ["7d", 7 * 86400e3],
  ["30d", 30 * 86400e3],
];
const searchRange = (range) => {
  const ms = spanMs(range);
  const fit = SEARCH_RANGES.find(([, r]) => ms !== null && r >= ms);
  return fit ? fit[0] : "all";
};
const searchLink = (q, range) => `#/search?${query({ q, range: searchRange(range) })}`;

// --- list and dashboard ---------------------------------------------------------

export async function dashboardsView(main, id) {
  if (id) return dashboardView(main, id);
  const list = h("ul", { id: "dashboard-list", class: "dash-list" });
  main.replaceChildren(h("h1", {}, "Dashboards"), list);
  try {
    const r = await api("/v1/dashboards");
    for (const d of r.dashboards) {
      list.append(
        h(
          "li",
          { class: "card" },
          h("h2", {}, h("a", { href: `#/dashboards/${encodeURIComponent(d.id)}`, "data-id": d.id }, d.title)),
          h("p", {}, d.description),
          h("p", { class: "meta" }, `${d.panels} panels · last ${d.range}`),
        ),
      );
    }
  } catch (e) {
    main.append(err(`Could not load dashboards: ${e.message}`));
  }
}

async function dashboardView(main, id) {
  const here = location.hash;
  let d;
  try {
    d = await api(`/v1/dashboards/${encodeURIComponent(id)}`);
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Dashboard"), err(`Could not load dashboard ${id}: ${e.message}`));
    return;
  }
  if (location.hash !== here) return;
  const grid = h("div", { id: "panels", class: "panels" });
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/dashboards" }, "← Dashboards")),
    h("h1", { id: "dashboard-title" }, d.title),
    d.description ? h("p", { class: "meta" }, d.description) : null,
    grid,
  );
  for (const p of d.panels) {
    const body = h("div", { class: "panel-body", "aria-live": "polite" }, h("p", { class: "meta" }, "Loading…"));
    const titleId = `panel-${p.id}-title`;
    grid.append(
      h(
        "section",
        { class: `card panel ${p.kind}`, id: `panel-${p.id}`, "data-kind": p.kind, "aria-labelledby": titleId },
        h("h2", { id: titleId }, p.title),
        p.description ? h("p", { class: "panel-desc" }, p.description) : null,
        body,
        h(
          "p",
          { class: "panel-query" },
          h("code", {}, p.query),
          ` · last ${p.range}`,
          p.field ? ` · by ${p.field}` : "",
          " · ",
          h("a", { href: searchLink(p.query, p.range), class: "open-search" }, "Open in Search"),
        ),
      ),
    );
    runPanel(p, body);
  }
}

async function runPanel(p, body) {
  let r;
  try {
    r = await api("/v1/search", { method: "POST", body: p.request });
  } catch (e) {
    body.replaceChildren(err(`Search failed: ${e.message}`));
    body.dataset.failed = "true";
    return;
  }
  const buckets = (r.aggs && r.aggs[0] && r.aggs[0].buckets) || [];
  body.dataset.total = String(r.total);
  if (p.kind === "stat") {
    body.replaceChildren(h("p", { class: "stat" }, h("span", { class: "stat-value" }, formatCount(r.total)), " events"));
  } else if (p.kind === "timeseries") {
    const to = Date.parse(p.request.to);
    const from = Date.parse(p.request.from);
    body.replaceChildren(
      timeChart(buckets, {
        label: p.title,
        intervalMs: spanMs(p.interval),
        intervalText: p.interval,
        from,
        to,
      }),
      h("p", { class: "meta" }, `${formatCount(r.total)} events, per ${p.interval}`),
    );
  } else if (p.kind === "top") {
    const max = Math.max(1, ...buckets.map((b) => b.doc_count));
    const tbody = h("tbody");
    for (const b of buckets) {
      const q = `(${p.query}) AND ${p.field}:"${String(b.key).replace(/["\\]/g, "\\$&")}"`;
      tbody.append(
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: searchLink(q, p.range) }, String(b.key))),
          h(
            "td",
            { class: "num" },
            h("meter", { min: 0, max, value: b.doc_count, "aria-hidden": "true" }),
            " ",
            formatCount(b.doc_count),
          ),
        ),
      );
    }
    if (!buckets.length) tbody.append(h("tr", { class: "empty" }, h("td", { colspan: 2 }, "No matching events.")));
    body.replaceChildren(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "results top" },
          h("caption", { class: "visually-hidden" }, `${p.title}: top ${p.field}`),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, p.field), h("th", { scope: "col" }, "Events"))),
          tbody,
        ),
      ),
    );
  } else {
    const tbody = h("tbody");
    for (const hit of r.hits) {
      const e = hit.event || {};
      const t = e.time ? new Date(e.time).toLocaleString() : "";
      tbody.append(
        h(
          "tr",
          { "data-index": hit.index },
          h("td", {}, h("a", { href: `#/search/event/${hit.index}?${query({ q: p.query, range: searchRange(p.range) })}` }, t)),
          h("td", {}, e.action),
          h("td", { class: `outcome ${e.outcome}` }, e.outcome),
          h("td", {}, e.actor && e.actor.user),
          h("td", {}, e.patient && e.patient.id),
        ),
      );
    }
    if (!r.hits.length) tbody.append(h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No matching events.")));
    body.replaceChildren(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "results events-table" },
          h("caption", { class: "visually-hidden" }, `${p.title}: newest first`),
          h(
            "thead",
            {},
            h("tr", {}, ["Time", "Action", "Outcome", "User", "Patient"].map((c) => h("th", { scope: "col" }, c))),
          ),
          tbody,
        ),
      ),
      h("p", { class: "meta" }, `${formatCount(r.hits.length)} newest of ${formatCount(r.total)}`),
    );
  }
}

// --- search histogram -------------------------------------------------------------

let histogramRun = 0;

// Draws the matches of `q` over time into `container`, from `fromMs` to
// now (all time: per day). A newer call supersedes an older one.
export async function searchHistogram(container, q, fromMs) {
  const run = ++histogramRun;
  const to = Date.now();
  const from = fromMs ?? null;
  const [interval, intervalMs] = from === null ? ["1d", 86400e3] : intervalFor(to - from);
  const request = { q, to: new Date(to).toISOString(), limit: 0, aggs: [{ date_histogram: { interval } }] };
  if (from !== null) request.from = new Date(from).toISOString();
  container.setAttribute("aria-busy", "true");
  try {
    const r = await api("/v1/search", { method: "POST", body: request });
    if (run !== histogramRun) return;
    const buckets = (r.aggs && r.aggs[0] && r.aggs[0].buckets) || [];
    container.replaceChildren(
      timeChart(buckets, {
        label: "Matches over time",
        intervalMs,
        intervalText: interval,
        from: from ?? undefined,
        to,
      }),
    );
  } catch (e) {
    if (run !== histogramRun) return;
    container.replaceChildren(err(`Histogram unavailable: ${e.message}`));
  } finally {
    if (run === histogramRun) container.removeAttribute("aria-busy");
  }
}
