// Silences in the console.
//   silenceSimilar(inc): the incident page's "Silence similar…" form,
//     prefilled from the incident (its rule and one checkbox per group
//     field), a duration or an end time and a comment; "Preview" asks
//     POST /v1/silences/preview what it would mute, and "Create silence"
//     (POST /v1/silences) is enabled only once the form as it stands has
//     been previewed.
//   silencesView(main, {canRespond}): #/silences, the active and scheduled
//     silences (GET /v1/silences) with who, when and why, and "Delete"
//     (DELETE /v1/silences/<id>) behind a confirmation.
// DOM calls only (dom.js): nothing the service returns becomes markup.

import { api } from "./api.js";
import { h } from "./dom.js";
import { when } from "./format.js";

const DURATIONS = [
  ["1h", "1 hour"],
  ["4h", "4 hours"],
  ["1d", "1 day"],
  ["7d", "7 days"],
  ["until", "Until a time…"],
];

function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function matcherText(m) {
  return m.regex !== undefined && m.regex !== null ? `${m.field} ~ ${m.regex}` : `${m.field} = ${m.value}`;
}

// --- the incident page's form ----------------------------------------------------

export function silenceSimilar(inc) {
  const open = h(
    "button",
    { id: "silence-open", type: "button", "aria-expanded": "false", "aria-controls": "silence-form" },
    "Silence similar…",
  );
  const section = h(
    "section",
    { id: "silence-similar", class: "card", "aria-labelledby": "silence-similar-title" },
    h("h2", { id: "silence-similar-title" }, "Silence"),
    h(
      "p",
      { class: "meta" },
      "Mute notifications of alerts like this one for a while. ",
      h("a", { href: "#/silences", id: "silences-from-incident" }, "Silences"),
    ),
    open,
  );
  let form = null;
  open.addEventListener("click", () => {
    if (!form) {
      form = silenceForm(inc);
      section.append(form);
    } else {
      form.hidden = !form.hidden;
    }
    open.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) form.querySelector("input, select, textarea").focus();
  });
  return section;
}

function silenceForm(inc) {
  const fields = [["rule_id", inc.rule_id], ...Object.entries(inc.group || {})];
  const boxes = fields.map(([field, value], i) =>
    h("input", { type: "checkbox", id: `silence-m-${i}`, "data-field": field, "data-value": value, checked: true }),
  );
  const duration = h(
    "select",
    { id: "silence-duration", name: "duration" },
    DURATIONS.map(([v, label]) => h("option", { value: v, selected: v === "4h" }, label)),
  );
  const until = h("input", { id: "silence-until", name: "ends_at", type: "datetime-local" });
  const untilField = h(
    "div",
    { class: "field", hidden: true },
    h("label", { for: "silence-until" }, "Ends at (your time)"),
    until,
  );
  const comment = h("textarea", { id: "silence-comment", name: "comment", rows: 2, maxlength: 4096 });
  const previewButton = h("button", { id: "silence-preview-button", type: "button" }, "Preview");
  const createButton = h("button", { id: "silence-create", type: "button", disabled: true }, "Create silence");
  const status = h("div", { id: "silence-status", "aria-live": "polite" });
  const result = h("div", { id: "silence-preview" });
  const form = h(
    "form",
    { id: "silence-form", class: "silence-form", "aria-label": "Silence similar alerts" },
    h(
      "fieldset",
      {},
      h("legend", {}, "Mute alerts where"),
      fields.map(([field, value], i) =>
        h("div", { class: "check" }, boxes[i], h("label", { for: `silence-m-${i}` }, `${field} = ${value}`)),
      ),
    ),
    h(
      "div",
      { class: "silence-when" },
      h("div", { class: "field" }, h("label", { for: "silence-duration" }, "For"), duration),
      untilField,
    ),
    h("label", { for: "silence-comment" }, "Comment"),
    comment,
    h("div", { class: "buttons" }, previewButton, createButton),
    status,
    result,
  );

  // The request the form stands for, or an error message.
  function body() {
    const matchers = boxes
      .filter((b) => b.checked)
      .map((b) => ({ field: b.dataset.field, value: b.dataset.value }));
    if (matchers.length === 0) return { error: "Choose at least one field to match." };
    const b = { matchers };
    if (duration.value === "until") {
      const end = new Date(until.value);
      if (!until.value || isNaN(end)) return { error: "Choose when the silence ends." };
      b.ends_at = end.toISOString();
    } else {
      b.duration = duration.value;
    }
    if (comment.value.trim()) b.comment = comment.value.trim();
    return { body: b };
  }

  let previewed = null;
  const changed = () => {
    untilField.hidden = duration.value !== "until";
    const now = body();
    createButton.disabled = !(now.body && previewed === JSON.stringify(now.body));
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", (ev) => ev.preventDefault());

  previewButton.addEventListener("click", async () => {
    const b = body();
    previewed = null;
    createButton.disabled = true;
    if (b.error) {
      status.replaceChildren(notice(b.error, "error"));
      return;
    }
    status.replaceChildren(notice("Previewing…"));
    try {
      const r = await api("/v1/silences/preview", { method: "POST", body: b.body });
      result.replaceChildren(...previewNodes(r.preview));
      status.replaceChildren(notice("Preview ready: check it, then create the silence."));
      previewed = JSON.stringify(b.body);
      changed();
    } catch (e) {
      result.replaceChildren();
      status.replaceChildren(notice(`Preview failed: ${e.message}`, "error"));
    }
  });

  createButton.addEventListener("click", async () => {
    const b = body();
    if (!b.body || previewed !== JSON.stringify(b.body)) return;
    createButton.disabled = true;
    status.replaceChildren(notice("Creating…"));
    try {
      const s = await api("/v1/silences", { method: "POST", body: b.body });
      previewed = null;
      status.replaceChildren(
        h(
          "p",
          { class: "notice info", role: "status", id: "silence-created", "data-id": s.id },
          `Silence ${s.id} created, until ${when(s.ends_at)}. `,
          h("a", { href: "#/silences" }, "See the silences"),
        ),
      );
    } catch (e) {
      status.replaceChildren(notice(`Could not create the silence: ${e.message}`, "error"));
      changed();
    }
  });
  return form;
}

function previewNodes(p) {
  const span = p.window ? ` (${when(p.window.from)} – ${when(p.window.to)})` : "";
  const counts = h(
    "p",
    { id: "silence-counts" },
    h("strong", { "data-open": p.open.incidents }, plural(p.open.incidents, "open incident")),
    ` (${plural(p.open.alerts, "alert")} so far): new alerts stop notifying while the silence lasts. `,
    h("strong", { "data-past": p.past.incidents }, plural(p.past.incidents, "past incident")),
    ` (${plural(p.past.alerts, "alert")}) of the ${plural(p.remembered, "incident")} remembered${span} would have been muted.`,
  );
  const out = [h("h3", {}, "What it would mute"), counts];
  if (p.warnings.length) {
    out.push(
      h(
        "ul",
        { id: "silence-warnings", class: "silence-warnings", role: "alert" },
        p.warnings.map((w) => h("li", {}, w)),
      ),
    );
  }
  if (p.overlaps.length) {
    out.push(
      h(
        "div",
        { id: "silence-overlaps" },
        h("p", {}, "It overlaps these silences:"),
        h(
          "ul",
          {},
          p.overlaps.map((o) =>
            h(
              "li",
              {},
              `${o.id} (${o.matchers.map(matcherText).join(", ")}; `,
              `${o.active ? "active" : "scheduled"} until ${when(o.ends_at)}, by ${o.created_by}; `,
              o.same_matchers ? "the same matchers)" : `${plural(o.shared_incidents, "incident")} in common)`,
            ),
          ),
        ),
      ),
    );
  }
  const rows = [...p.open.listed, ...p.past.listed];
  if (rows.length) {
    const shown = p.open.listed.length + p.past.listed.length;
    const total = p.open.incidents + p.past.incidents;
    out.push(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { id: "silence-preview-list", class: "results" },
          h("caption", {}, shown < total ? `The newest ${shown} of ${total}` : "The incidents it matches"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Incident", "State", "Alerts", "Opened", "Last alert", "Group"].map((c) => h("th", { scope: "col" }, c)),
            ),
          ),
          h(
            "tbody",
            {},
            rows.map((i) =>
              h(
                "tr",
                { class: "preview-incident", "data-id": i.id },
                h("td", {}, h("a", { href: `#/incidents/${encodeURIComponent(i.id)}` }, i.title || i.id)),
                h("td", { class: `state ${i.state}` }, i.state),
                h("td", {}, i.alerts),
                h("td", {}, when(i.opened_at)),
                h("td", {}, when(i.last_alert_at)),
                h(
                  "td",
                  {},
                  Object.entries(i.group || {})
                    .map(([k, v]) => `${k}=${v}`)
                    .join(" "),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
  return out;
}

// --- the list -------------------------------------------------------------------------

export async function silencesView(main, { canRespond }) {
  const here = location.hash;
  const status = h("div", { id: "silences-status", "aria-live": "polite" });
  const tbody = h("tbody");
  const heads = ["State", "Matchers", "Starts", "Ends", "Created by", "Comment"];
  if (canRespond) heads.push("Actions");
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/incidents" }, "← Incidents")),
    h("h1", {}, "Silences"),
    h(
      "p",
      { class: "meta" },
      "Alerts a silence matches are still recorded and join their incidents; they notify nobody. ",
      "New silences are made from an incident's page (“Silence similar…”).",
    ),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "silences", class: "results" },
        h("caption", { class: "visually-hidden" }, "Active and scheduled silences"),
        h("thead", {}, h("tr", {}, heads.map((c) => h("th", { scope: "col" }, c)))),
        tbody,
      ),
    ),
  );
  let list;
  try {
    list = await api("/v1/silences");
  } catch (e) {
    status.replaceChildren(notice(`Could not load silences: ${e.message}`, "error"));
    return;
  }
  if (location.hash !== here) return;
  const now = Date.now();
  const shown = list.silences
    .filter((s) => new Date(s.ends_at).getTime() > now)
    .sort((a, b) => String(a.starts_at).localeCompare(String(b.starts_at)));
  if (shown.length === 0) {
    tbody.append(h("tr", {}, h("td", { colspan: heads.length }, "No active or scheduled silences.")));
  }
  for (const s of shown) {
    const row = h(
      "tr",
      { class: "silence", "data-id": s.id },
      h("td", { class: "silence-state" }, s.active ? "active" : "scheduled"),
      h("td", {}, h("ul", { class: "matchers" }, s.matchers.map((m) => h("li", {}, matcherText(m))))),
      h("td", {}, when(s.starts_at)),
      h("td", {}, when(s.ends_at)),
      h("td", {}, s.created_by),
      h("td", {}, s.comment || ""),
    );
    if (canRespond) row.append(h("td", {}, deleteControl(s, main, status)));
    tbody.append(row);
  }
}

function deleteControl(s, main, status) {
  const cell = h("div", { class: "buttons" });
  const ask = h(
    "button",
    { type: "button", class: "silence-delete", "aria-label": `Delete silence ${s.id}` },
    "Delete",
  );
  ask.addEventListener("click", () => {
    const yes = h(
      "button",
      { type: "button", class: "silence-delete-confirm danger" },
      "Yes, delete",
    );
    const no = h("button", { type: "button", class: "silence-delete-cancel secondary" }, "Cancel");
    no.addEventListener("click", () => {
      cell.replaceChildren(ask);
      ask.focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api(`/v1/silences/${encodeURIComponent(s.id)}`, { method: "DELETE" });
        await silencesView(main, { canRespond: true });
        document
          .getElementById("silences-status")
          .replaceChildren(notice(`Silence ${s.id} deleted.`));
      } catch (e) {
        yes.disabled = false;
        status.replaceChildren(notice(`Could not delete ${s.id}: ${e.message}`, "error"));
      }
    });
    cell.replaceChildren(h("span", {}, `Delete ${s.id}?`), yes, no);
    yes.focus();
  });
  cell.append(ask);
  return cell;
}
