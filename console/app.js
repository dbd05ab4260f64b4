// The analyst console: hash routes over the role-checked /v1 API.
//   #/signin, #/search, #/incidents, #/incidents/<id>, #/silences, #/integrity, #/patients, #/admin
// Every view is built with DOM calls (no innerHTML of data), so nothing the
// service returns can become markup or script.

import { api, query, ApiError } from "./api.js";
import { h } from "./dom.js";
import { verifyProof } from "./verify.js";
import { integrityView, patientAccessView } from "./integrity.js";
import { dashboardsView, searchHistogram } from "./dashboards.js";
import { attachCompletion } from "./complete.js";
import { silenceSimilar, silencesView } from "./silences.js";
import { exportCard } from "./exports.js";
import { startCatchUp } from "./catchup.js";
import { when } from "./format.js";

const main = document.getElementById("main");
let session = null; // {user, roles}
let vkeyLine = null;

function show(...nodes) {
  main.replaceChildren(...nodes);
}

const has = (role) => !!session && session.roles.includes(role);
const canSearch = () => has("analyst");
const canSeeIncidents = () => has("analyst") || has("responder");
const canRespond = () => has("responder");

function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// --- session ------------------------------------------------------------------

async function loadSession() {
  try {
    session = await api("/v1/session");
  } catch (e) {
    session = null;
  }
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.hidden = !session;
  who.hidden = !session;
  if (session) {
    document.getElementById("who-text").textContent =
      `signed in as ${session.user} (${session.roles.join(", ")})`;
    for (const a of nav.querySelectorAll("a[data-view]")) {
      const view = a.dataset.view;
      const allowed =
        view === "search" || view === "patients" || view === "dashboards"
          ? canSearch()
          : view === "incidents"
            ? canSeeIncidents()
            : view === "integrity"
              ? has("auditor") || has("admin")
              : has("admin");
      a.hidden = !allowed;
    }
  }
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await api("/v1/session", { method: "DELETE" });
  } catch (e) {
    // Signed out already.
  }
  session = null;
  // One render: through hashchange, or here when the hash stays the same.
  if (location.hash !== "#/signin") location.hash = "#/signin";
  else await route();
});

function signInView() {
  const status = h("div", { id: "signin-status", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "signin", class: "card narrow" },
    h("h1", {}, "Sign in"),
    h("label", { for: "signin-user" }, "User"),
    h("input", { id: "signin-user", name: "user", autocomplete: "username", required: true }),
    h("label", { for: "signin-password" }, "Password"),
    h("input", {
      id: "signin-password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    }),
    h("label", { for: "signin-totp" }, "Authenticator code"),
    h("input", {
      id: "signin-totp",
      name: "totp",
      inputmode: "numeric",
      autocomplete: "one-time-code",
      pattern: "[0-9]{6}",
      required: true,
    }),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    status.replaceChildren(notice("Signing in…"));
    try {
      await api("/v1/session", {
        method: "POST",
        body: { user: f.get("user"), password: f.get("password"), totp: f.get("totp") },
      });
      await loadSession();
      location.hash = canSearch() ? "#/search" : "#/incidents";
    } catch (e) {
      status.replaceChildren(notice("Sign-in failed.", "error"));
    }
  });
  show(form);
  document.getElementById("signin-user").focus();
}

// --- search -------------------------------------------------------------------

const RANGES = [
  ["15m", "Last 15 minutes", 15 * 60e3],
  ["1h", "Last hour", 3600e3],
  ["24h", "Last 24 hours", 86400e3],
  ["7d", "Last 7 days", 7 * 86400e3],
  ["30d", "Last 30 days", 30 * 86400e3],
  ["all", "All time", null],
];

const SEARCH_HELP = [
  ["actor.user:u0042", "one user"],
  ["action:export AND outcome:success", "both must hold"],
  ["category:auth AND NOT outcome:success", "failed or unknown sign-ins"],
  ['patient.id:"MRN-0012345"', "one patient (quote values with symbols)"],
  ["message:chart", "words in the message"],
  ["*", "everything"],
];

function searchView(params) {
  const q = params.get("q") ?? "*";
  const range = params.get("range") ?? "24h";
  const input = h("input", {
    id: "q",
    name: "q",
    type: "search",
    value: q,
    "aria-describedby": "q-help",
    autocomplete: "off",
    spellcheck: "false",
  });
  const select = h(
    "select",
    { id: "range", name: "range" },
    RANGES.map(([v, label]) => h("option", { value: v, selected: v === range }, label)),
  );
  const form = h(
    "form",
    { id: "search-form", class: "search-form", role: "search" },
    h("div", { class: "field grow" }, h("label", { for: "q" }, "Query"), input),
    h("div", { class: "field" }, h("label", { for: "range" }, "Time range"), select),
    h("button", { id: "search-button", type: "submit" }, "Search"),
  );
  attachCompletion(input, () => {
    const span = RANGES.find(([v]) => v === select.value);
    return span && span[2] ? Date.now() - span[2] : null;
  });
  const help = h(
    "details",
    { id: "q-help", class: "help" },
    h("summary", {}, "Query syntax"),
    h(
      "p",
      {},
      "Lucene-style: field:value, AND, OR, NOT, parentheses, quotes for exact values. ",
      "Start typing a field name for suggestions, then its values (arrow keys, Enter or Tab). ",
      "Fields: category, action, outcome, actor.user, actor.role, actor.ip, patient.id, ",
      "resource.type, resource.id, source.system, reason, message, attrs.<name>.",
    ),
    h(
      "dl",
      {},
      SEARCH_HELP.map(([ex, what]) => [h("dt", {}, h("code", {}, ex)), h("dd", {}, what)]),
    ),
  );
  const histogram = h("div", { id: "search-histogram", class: "histogram" });
  const summary = h("p", { id: "search-summary", class: "summary", "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { id: "results", class: "results" },
    h("caption", { class: "visually-hidden" }, "Matching events, newest first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Time", "Category", "Action", "Outcome", "User", "Patient", "Message"].map((c) =>
          h("th", { scope: "col" }, c),
        ),
      ),
    ),
    tbody,
  );
  const more = h("button", { id: "load-more", type: "button", hidden: true }, "Load more");
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = `#/search?${query({ q: input.value || "*", range: select.value })}`;
    if (location.hash === next) runSearch();
    else location.hash = next;
  });
  const exporter = exportCard(session.roles, () => {
    const span = RANGES.find(([v]) => v === select.value);
    const from = span && span[2] ? new Date(Date.now() - span[2]).toISOString() : undefined;
    return { q: input.value || "*", from };
  });
  show(h("h1", {}, "Search"), form, help, ...(exporter ? [exporter] : []), histogram, summary, h("div", { class: "table-wrap" }, table), more, sentinel);

  let cursor = null;
  let loading = false;
  let shown = 0;
  async function page(first) {
    if (loading) return;
    loading = true;
    more.hidden = true;
    const span = RANGES.find(([v]) => v === select.value);
    const from = span && span[2] ? new Date(Date.now() - span[2]).toISOString() : undefined;
    try {
      const r = await api(
        `/v1/search?${query({ q: input.value || "*", from, limit: 50, cursor: first ? undefined : cursor })}`,
      );
      if (first) {
        tbody.replaceChildren();
        shown = 0;
      }
      for (const hit of r.hits) tbody.append(resultRow(hit));
      shown += r.hits.length;
      cursor = r.cursor ?? null;
      summary.textContent = `${r.total} matching events, ${shown} shown`;
      more.hidden = cursor === null;
    } catch (e) {
      summary.replaceChildren(notice(`Search failed: ${e.message}`, "error"));
    } finally {
      loading = false;
    }
  }
  function runSearch() {
    cursor = null;
    page(true);
    const span = RANGES.find(([v]) => v === select.value);
    searchHistogram(histogram, input.value || "*", span && span[2] ? Date.now() - span[2] : null);
  }
  more.addEventListener("click", () => page(false));
  const io = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && cursor !== null) page(false);
  });
  io.observe(sentinel);
  runSearch();
}

function resultRow(hit) {
  const e = hit.event || {};
  const open = () => openDrawer(hit.index);
  const link = h(
    "a",
    { href: `#/search/event/${hit.index}`, class: "event-link", "data-index": hit.index },
    when(e.time),
  );
  link.addEventListener("click", (ev) => {
    ev.preventDefault();
    open();
  });
  return h(
    "tr",
    { "data-index": hit.index },
    h("td", {}, link),
    h("td", {}, e.category),
    h("td", {}, e.action),
    h("td", { class: `outcome ${e.outcome}` }, e.outcome),
    h("td", {}, e.actor && e.actor.user),
    h("td", {}, e.patient && e.patient.id),
    h("td", { class: "message" }, e.message),
  );
}

// --- event drawer with in-browser verification ------------------------------------

function flatten(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, Array.isArray(v) ? JSON.stringify(v) : String(v)]);
  }
  return out;
}

let lastFocus = null;

// The event's inclusion proof; a 409 means its segment is not sealed yet
// (about a second after it arrived): wait and ask again, a few times.
async function proofOf(index, badge) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api(`/v1/events/${index}/proof`);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 409 || attempt >= 10) throw e;
      badge.textContent = "checking… (waiting for the seal)";
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function closeDrawer() {
  const d = document.getElementById("drawer");
  if (d) d.remove();
  if (lastFocus) lastFocus.focus();
}

async function openDrawer(index) {
  closeDrawer();
  lastFocus = document.activeElement;
  const badge = h("span", { id: "verify-status", class: "badge pending", role: "status" }, "checking…");
  const steps = h("ul", { id: "verify-steps", class: "steps" });
  const fields = h("dl", { id: "event-fields", class: "fields" });
  const download = h("a", { id: "proof-download", class: "button", hidden: true }, "Download proof");
  const close = h("button", { type: "button", id: "drawer-close", onclick: closeDrawer }, "Close");
  const drawer = h(
    "aside",
    { id: "drawer", class: "drawer", role: "dialog", "aria-modal": "true", "aria-labelledby": "drawer-title" },
    h("div", { class: "drawer-head" }, h("h2", { id: "drawer-title" }, `Event ${index}`), close),
    h("p", {}, "Integrity: ", badge),
    steps,
    download,
    fields,
  );
  drawer.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") closeDrawer();
  });
  document.body.append(drawer);
  close.focus();
  try {
    const hit = await api(`/v1/events/${index}`);
    for (const [k, v] of flatten(hit)) fields.append(h("dt", {}, k), h("dd", {}, v));
  } catch (e) {
    fields.replaceChildren(notice(`Could not load the event: ${e.message}`, "error"));
  }
  try {
    if (!vkeyLine) vkeyLine = (await api("/v1/log/vkey")).vkey;
    const proof = await proofOf(index, badge);
    const result = await verifyProof(proof, vkeyLine);
    for (const s of result.steps) steps.append(h("li", {}, `✓ ${s}`));
    if (result.ok) {
      badge.textContent = "verified";
      badge.className = "badge ok";
      badge.id = "verified";
    } else {
      badge.textContent = "not verified";
      badge.className = "badge bad";
      steps.append(h("li", { class: "bad" }, `✗ ${result.error}`));
    }
    const blob = new Blob([JSON.stringify(proof, null, 2)], { type: "application/json" });
    download.href = URL.createObjectURL(blob);
    download.download = `proof-${index}.json`;
    download.hidden = false;
  } catch (e) {
    badge.textContent = "not verified";
    badge.className = "badge bad";
    steps.append(h("li", { class: "bad" }, `✗ ${e.message}`));
  }
}

// --- incidents -----------------------------------------------------------------

async function incidentsView() {
  const tbody = h("tbody");
  show(
    h("h1", {}, "Incidents"),
    h("p", {}, h("a", { href: "#/silences", id: "silences-link" }, "Silences")),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "incidents", class: "results" },
        h("caption", { class: "visually-hidden" }, "Incidents, newest first"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Severity", "Incident", "State", "Alerts", "Opened", "Last alert"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        tbody,
      ),
    ),
  );
  try {
    const r = await api("/v1/incidents?limit=200");
    if (r.incidents.length === 0) tbody.append(h("tr", {}, h("td", { colspan: 6 }, "No incidents yet.")));
    for (const i of r.incidents) {
      tbody.append(
        h(
          "tr",
          { class: "incident", "data-id": i.id },
          h("td", {}, h("span", { class: `sev ${i.severity}` }, i.severity)),
          h("td", {}, h("a", { href: `#/incidents/${encodeURIComponent(i.id)}` }, i.title || i.id)),
          h("td", { class: `state ${i.state}` }, i.state),
          h("td", {}, i.alerts),
          h("td", {}, when(i.opened_at)),
          h("td", {}, when(i.last_alert_at)),
        ),
      );
    }
  } catch (e) {
    main.append(notice(`Could not load incidents: ${e.message}`, "error"));
  }
}

async function incidentView(id, flash) {
  const here = location.hash;
  let inc;
  try {
    inc = await api(`/v1/incidents/${encodeURIComponent(id)}`);
  } catch (e) {
    show(h("h1", {}, "Incident"), notice(`Could not load incident ${id}: ${e.message}`, "error"));
    return;
  }
  // The reader moved on while this loaded: leave their page alone.
  if (location.hash !== here) return;
  const status = h("div", { id: "action-status", "aria-live": "polite" }, flash ? notice(flash) : null);
  const noteInput = h("textarea", { id: "note-text", rows: 2 });
  const act = (what, body) => async () => {
    status.replaceChildren(notice("Working…"));
    try {
      await api(`/v1/incidents/${encodeURIComponent(id)}/${what}`, { method: "POST", body });
      await incidentView(id, `Done: ${what}.`);
    } catch (e) {
      status.replaceChildren(notice(`${what} failed: ${e.message}`, "error"));
    }
  };
  const actions = canRespond()
    ? h(
        "section",
        { class: "card actions", "aria-label": "Respond" },
        h(
          "div",
          { class: "buttons" },
          h(
            "button",
            { id: "ack-button", type: "button", disabled: inc.state !== "open", onclick: act("ack", {}) },
            "Acknowledge",
          ),
          h(
            "button",
            { id: "resolve-button", type: "button", disabled: inc.state === "resolved" },
            "Resolve",
          ),
        ),
        h("label", { for: "note-text" }, "Note"),
        noteInput,
        h("button", { id: "note-button", type: "button" }, "Add note"),
        status,
      )
    : notice("You can read this incident; acknowledging needs the responder role.");
  if (canRespond()) {
    actions.querySelector("#resolve-button").addEventListener("click", () =>
      act("resolve", noteInput.value.trim() ? { note: noteInput.value.trim() } : {})(),
    );
    actions.querySelector("#note-button").addEventListener("click", () => {
      if (noteInput.value.trim()) act("note", { note: noteInput.value.trim() })();
    });
  }
  const timeline = h("ol", { id: "timeline", class: "timeline" });
  const items = [[inc.opened_at, `opened (${inc.alerts} alert${inc.alerts === 1 ? "" : "s"})`]];
  if (inc.last_alert_at && inc.last_alert_at !== inc.opened_at) items.push([inc.last_alert_at, "last alert"]);
  if (inc.acknowledged_at) items.push([inc.acknowledged_at, `acknowledged by ${inc.acknowledged_by}`]);
  for (const n of inc.notes || []) items.push([n.at, `note by ${n.by}: ${n.note}`]);
  if (inc.resolved_at) items.push([inc.resolved_at, `resolved by ${inc.resolved_by} (${inc.resolve_reason})`]);
  items.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  for (const [t, what] of items) timeline.append(h("li", {}, h("time", { datetime: t }, when(t)), " ", what));
  const group = h(
    "dl",
    { class: "fields" },
    Object.entries(inc.group || {}).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
  const linked = h("section", { id: "linked", class: "card" }, h("h2", {}, "Alerts and linked events"));
  show(
    h("p", {}, h("a", { href: "#/incidents" }, "← Incidents")),
    h("h1", {}, inc.title || inc.id),
    h(
      "p",
      { class: "meta" },
      h("span", { class: `sev ${inc.severity}` }, inc.severity),
      " · state ",
      h("strong", { id: "incident-state", class: `state ${inc.state}` }, inc.state),
      ` · rule ${inc.rule_id} · playbook ${inc.playbook}`,
    ),
    actions,
    canRespond() ? silenceSimilar(inc) : null,
    h("section", { class: "card" }, h("h2", {}, "Group"), group),
    h("section", { class: "card" }, h("h2", {}, "Timeline"), timeline),
    linked,
  );
  try {
    const wanted = new Set(inc.recent_alerts || []);
    let alerts = [];
    // An incident can open a moment before its alert is searchable: ask again.
    for (let attempt = 0; attempt < 10 && linked.isConnected; attempt++) {
      const r = await api(`/v1/alerts?${query({ rule: inc.rule_id, limit: 200 })}`);
      alerts = r.alerts.filter((a) => wanted.has(a.id));
      if (alerts.length > 0 || wanted.size === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (alerts.length === 0) linked.append(h("p", {}, "No alert details available."));
    for (const a of alerts) {
      const block = h(
        "div",
        { class: "alert-block" },
        h("p", {}, `${when(a.first_time)} – ${when(a.last_time)}: ${a.count} event(s)`),
      );
      if (a.explanations_tried && a.explanations_tried.length) {
        block.append(
          h(
            "p",
            { class: "privacy" },
            "Privacy check: looked for ",
            a.explanations_tried.join(", "),
            " and found none.",
          ),
        );
      }
      const list = h("ul", { class: "events" });
      for (const i of a.event_indices.slice(0, 50)) {
        const link = h("a", { href: `#/search/event/${i}`, class: "event-link", "data-index": i }, `event ${i}`);
        link.addEventListener("click", (ev) => {
          ev.preventDefault();
          openDrawer(i);
        });
        list.append(h("li", {}, link));
      }
      block.append(list);
      linked.append(block);
    }
  } catch (e) {
    linked.append(notice(`Alert details are not available to you (${e.message}).`));
  }
}

// --- admin -----------------------------------------------------------------------

async function adminView() {
  // Focusable, so a keyboard can scroll it; labelled for screen readers.
  const pre = h("pre", { id: "metrics", class: "metrics", tabindex: 0, "aria-label": "Service metrics" }, "Loading…");
  const filter = h("input", { id: "metrics-filter", type: "search", autocomplete: "off", spellcheck: "false" });
  const count = h("p", { id: "metrics-count", class: "summary", "aria-live": "polite" });
  show(
    h("h1", {}, "Administration"),
    h("h2", {}, "Service metrics"),
    h("div", { class: "field" }, h("label", { for: "metrics-filter" }, "Show metrics whose line contains"), filter),
    count,
    pre,
  );
  let lines = [];
  const render = () => {
    const want = filter.value.trim().toLowerCase();
    const shown = lines.filter((l) => !want || l.toLowerCase().includes(want));
    pre.textContent = shown.slice(0, 500).join("\n");
    count.textContent = `${shown.length} of ${lines.length} series${shown.length > 500 ? " (first 500 shown)" : ""}`;
  };
  filter.addEventListener("input", render);
  try {
    const text = await api("/metrics");
    lines = String(text)
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    render();
  } catch (e) {
    pre.replaceWith(notice(`Could not load metrics: ${e.message}`, "error"));
  }
}

function forbidden() {
  show(
    h("h1", {}, "Not available"),
    h("p", { id: "forbidden", role: "alert" }, "You do not have access to this page."),
  );
}

// --- router ----------------------------------------------------------------------

async function route() {
  const hash = location.hash || "#/";
  const [path, qs] = hash.slice(1).split("?");
  const params = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  if (!session) {
    await loadSession();
  }
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.dataset.view === parts[0]);
  }
  if (!session) {
    signInView();
    return;
  }
  startCatchUp(main);
  closeDrawer();
  const view = parts[0] || (canSearch() ? "search" : "incidents");
  if (view === "signin") {
    location.hash = canSearch() ? "#/search" : "#/incidents";
    return;
  }
  if (view === "search") {
    if (!canSearch()) return forbidden();
    searchView(params);
    if (parts[1] === "event" && parts[2]) openDrawer(Number(parts[2]));
    return;
  }
  if (view === "dashboards") {
    if (!canSearch()) return forbidden();
    return dashboardsView(main, parts[1] && decodeURIComponent(parts[1]));
  }
  if (view === "incidents") {
    if (!canSeeIncidents()) return forbidden();
    if (parts[1]) return incidentView(decodeURIComponent(parts[1]));
    return incidentsView();
  }
  if (view === "silences") {
    if (!canSeeIncidents()) return forbidden();
    return silencesView(main, { canRespond: canRespond() });
  }
  if (view === "integrity") {
    if (!(has("auditor") || has("admin"))) return forbidden();
    return integrityView(main, session.roles);
  }
  if (view === "patients") {
    if (!canSearch()) return forbidden();
    return patientAccessView(main, params);
  }
  if (view === "admin") {
    if (!has("admin")) return forbidden();
    return adminView();
  }
  show(h("h1", {}, "Not found"), h("p", {}, "There is no such page."));
}

window.addEventListener("hashchange", () => {
  route().catch((e) => show(notice(String(e), "error")));
});
route().catch((e) => {
  if (e instanceof ApiError && e.status === 401) signInView();
  else show(notice(String(e), "error"));
});
