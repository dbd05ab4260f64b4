// The Integrity view (#/integrity) and the Patient access view (#/patients).
//
// Integrity: the chain's status (GET /v1/integrity/status), a verification
// run of the whole data directory with live progress (POST, then poll
// GET /v1/integrity/verify), and a box to paste an older checkpoint note
// and check, in the browser, that the current log still extends it
// (signature with the log's vkey, then the RFC 9162 consistency proof from
// GET /v1/consistency).
//
// Patient access: GET /v1/reports/patient-access as tables, printable
// (print.css). Everything is built with DOM calls, never markup from data.

import { h } from "./dom.js";
import { api, query, ApiError } from "./api.js";
import { b64decode, nodeHash, openCheckpoint, parseVkey } from "./verify.js";
import { when, bytes } from "./format.js";

const CONSISTENCY_FORMAT = "sealtrail-consistency-proof/v1";
const MAX_PATH = 64;
const POLL_MS = 300;

function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

class Failure extends Error {}
function ensure(ok, why) {
  if (!ok) throw new Failure(why);
}

// The signature lines of a signed note: [{name, keyId (hex)}].
export function noteSigners(text) {
  const split = text.lastIndexOf("\n\n");
  if (split < 0) return [];
  return text
    .slice(split + 2)
    .split("\n")
    .filter((l) => l.startsWith("\u2014 "))
    .map((l) => {
      const [name, sig] = l.slice(2).split(" ");
      let keyId = "";
      try {
        keyId = [...b64decode(sig || "").subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
      } catch (e) {
        keyId = "?";
      }
      return { name, keyId };
    });
}

// RFC 9162 §2.1.4.2: does `path` prove the tree of `size1` with `root1` a
// prefix of the tree of `size2` with `root2`?
export async function verifyConsistency(size1, size2, root1, root2, path) {
  size1 = BigInt(size1);
  size2 = BigInt(size2);
  ensure(size1 > 0n, "the older checkpoint is of an empty log");
  ensure(size1 <= size2, "the older checkpoint is larger than the current log");
  if (size1 === size2) {
    ensure(path.length === 0, "a proof between equal sizes must be empty");
    ensure(equal(root1, root2), "same size, different roots: the log was rewritten");
    return;
  }
  ensure(path.length > 0 && path.length <= MAX_PATH, "the consistency path has the wrong length");
  const p = (size1 & (size1 - 1n)) === 0n ? [root1, ...path] : [...path];
  let fn = size1 - 1n;
  let sn = size2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = p[0];
  let sr = p[0];
  for (const c of p.slice(1)) {
    ensure(sn !== 0n, "the consistency path is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  ensure(sn === 0n, "the consistency path is too short");
  ensure(equal(fr, root1), "the path does not lead to the older checkpoint's root");
  ensure(equal(sr, root2), "the path does not lead to the current root");
}

// The pasted note against the current log: {ok, steps, error}.
export async function checkConsistency(oldText, vkeyLine, fetchProof) {
  const steps = [];
  try {
    const vkey = await parseVkey(vkeyLine);
    const text = oldText.replace(/\r\n/g, "\n").replace(/^\s+/, "").replace(/\n*$/, "\n");
    const old = await openCheckpoint(text, vkey);
    steps.push(`older checkpoint signed by ${vkey.name} (log size ${old.size})`);
    const proof = await fetchProof(old.size);
    ensure(proof && proof.format === CONSISTENCY_FORMAT, `not a ${CONSISTENCY_FORMAT}`);
    ensure(
      !proof.key_history || proof.key_history.length === 0,
      "the log's key was rotated since: check with `sealtrail verify --since`",
    );
    const cur = await openCheckpoint(proof.checkpoint, vkey);
    ensure(cur.origin === old.origin, "the older checkpoint belongs to another log");
    steps.push(`current checkpoint signed by ${vkey.name} (log size ${cur.size})`);
    ensure(BigInt(proof.old_size) === old.size, "the proof is for another older size");
    ensure(BigInt(proof.new_size) === cur.size, "the proof is for another current size");
    ensure(equal(b64decode(proof.new_root), cur.root), "the proof's current root is not the checkpoint's");
    const path = (proof.path || []).map((x) => {
      const b = b64decode(x);
      ensure(b.length === 32, "the path holds a hash that is not 32 bytes");
      return b;
    });
    await verifyConsistency(old.size, cur.size, old.root, cur.root, path);
    steps.push(`log of ${cur.size} extends the older log of ${old.size}`);
    return { ok: true, steps, oldSize: old.size, newSize: cur.size };
  } catch (e) {
    return { ok: false, steps, error: e instanceof Failure || e instanceof ApiError ? e.message : String(e) };
  }
}

// --- Integrity view -------------------------------------------------------------

function statusCard() {
  const card = h("section", { id: "chain-status", class: "card", "aria-labelledby": "chain-title" }, h("h2", { id: "chain-title" }, "Chain"));
  const body = h("div", {}, notice("Loading…"));
  card.append(body);
  (async () => {
    try {
      const s = await api("/v1/integrity/status");
      const signers = noteSigners(s.checkpoint);
      const cosigners = s.witnessed ? noteSigners(s.witnessed).filter((x) => x.name !== s.origin) : [];
      const rows = [
        ["Log", s.origin],
        ["Segments", String(s.segments)],
        ["Events", String(s.events)],
        ["Checkpoint size", String(s.segments)],
        ["Checkpoint root", s.root],
        ["Checkpoint written", when(s.checkpoint_time)],
        ["Signing key", signers.map((x) => `${x.name} (key id ${x.keyId})`).join(", ")],
        [
          "Witness cosignatures",
          s.witnessed ? cosigners.map((x) => `${x.name} (key id ${x.keyId})`).join(", ") || "none" : "no witness has cosigned yet",
        ],
      ];
      const dl = h("dl", { class: "fields" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k.toLowerCase().replace(/ /g, "-") }, v)]));
      const note = h(
        "details",
        {},
        h("summary", {}, "Checkpoint note (copy it to check consistency later)"),
        h("pre", { id: "checkpoint-note", class: "metrics" }, s.checkpoint),
      );
      body.replaceChildren(dl, note);
    } catch (e) {
      body.replaceChildren(notice(`Could not load the chain's status: ${e.message}`, "error"));
    }
  })();
  return card;
}

function runCard(canRun) {
  const button = h("button", { id: "verify-run", type: "button", disabled: !canRun }, "Verify the ledger now");
  const bar = h("progress", { id: "verify-progress", max: 1, value: 0, "aria-label": "Verification progress", hidden: true });
  const text = h("p", { id: "verify-progress-text", class: "meta", "aria-live": "polite" });
  const result = h("div", { id: "verify-result", "aria-live": "polite" });
  const card = h(
    "section",
    { class: "card", "aria-labelledby": "run-title" },
    h("h2", { id: "run-title" }, "Verification run"),
    h(
      "p",
      { class: "meta" },
      "Re-checks every sealed segment, every hash and the signed checkpoint, as `sealtrail verify` does offline. The run is recorded in the ledger.",
    ),
    button,
    bar,
    text,
    result,
  );

  let polling = false;
  function render(run) {
    if (!run || run.state === "idle") return;
    bar.hidden = false;
    const total = Number(run.bytes_total) || 0;
    bar.max = Math.max(total, 1);
    bar.value = run.state === "running" ? Math.min(Number(run.bytes_done) || 0, bar.max) : bar.max;
    text.textContent =
      `Run ${run.id} by ${run.started_by}, started ${when(run.started_at)}: ` +
      `segments ${run.segments_done}/${run.segments_total}, ${bytes(run.bytes_done)} of ${bytes(run.bytes_total)}`;
    if (run.state === "running") {
      result.replaceChildren(h("span", { class: "badge pending" }, "verifying…"));
      return;
    }
    if (run.state === "failed") {
      result.replaceChildren(h("span", { class: "badge bad" }, "could not run"), " ", run.error || "");
      return;
    }
    const r = run.report || {};
    const list = h("ul", { class: "steps" });
    for (const e of r.errors || []) list.append(h("li", { class: "bad" }, `✗ ${e.kind}: ${e.detail}`));
    if (r.errors_omitted) list.append(h("li", { class: "bad" }, `… and ${r.errors_omitted} more`));
    for (const w of r.warnings || []) list.append(h("li", {}, `! ${w}`));
    if (r.unsealed_events) list.append(h("li", {}, `${r.unsealed_events} events in the open segment are durable, not yet provable`));
    if (r.uncovered_segments) list.append(h("li", {}, `${r.uncovered_segments} sealed segments are beyond the checkpoint`));
    result.replaceChildren(
      h(
        "p",
        {},
        h("span", { id: r.ok ? "verify-ok" : "verify-bad", class: `badge ${r.ok ? "ok" : "bad"}` }, r.ok ? "verified" : "NOT verified"),
        " ",
        h("span", { id: "verify-summary" }, `${r.events} events in ${r.segments} segments` + (r.first_time ? `, ${when(r.first_time)} – ${when(r.last_time)}` : "")),
      ),
      list,
    );
  }
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      while (card.isConnected) {
        const run = await api("/v1/integrity/verify");
        render(run);
        if (run.state !== "running") break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    } catch (e) {
      result.replaceChildren(notice(`Could not read the run: ${e.message}`, "error"));
    } finally {
      polling = false;
      button.disabled = !canRun;
    }
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.replaceChildren(h("span", { class: "badge pending" }, "starting…"));
    bar.hidden = false;
    bar.removeAttribute("value"); // indeterminate until the first report
    try {
      render(await api("/v1/integrity/verify", { method: "POST", body: {} }));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409)) {
        result.replaceChildren(notice(`Could not start: ${e.message}`, "error"));
        button.disabled = !canRun;
        return;
      }
    }
    poll();
  });
  // Show the latest run, and follow one still running.
  if (canRun) poll();
  return card;
}

function consistencyCard(canCheck) {
  const area = h("textarea", { id: "old-checkpoint", rows: 7, spellcheck: "false", "aria-describedby": "old-checkpoint-help" });
  const button = h("button", { id: "consistency-check", type: "submit", disabled: !canCheck }, "Check consistency");
  const result = h("div", { id: "consistency-result", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "consistency-title" },
    h("h2", { id: "consistency-title" }, "Consistency with an older checkpoint"),
    h("label", { for: "old-checkpoint" }, "Older checkpoint note"),
    h(
      "p",
      { id: "old-checkpoint-help", class: "meta" },
      "Paste a signed checkpoint saved earlier (from this page, `GET /v1/checkpoint`, or a witness). ",
      "The browser checks its signature with the log's key and the proof that today's log extends it.",
    ),
    area,
    h("div", { class: "buttons" }, button),
    result,
  );
  if (!canCheck) form.append(notice("Checking consistency needs the auditor role."));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!area.value.trim()) return;
    result.replaceChildren(h("span", { class: "badge pending" }, "checking…"));
    let vkey;
    try {
      vkey = (await api("/v1/log/vkey")).vkey;
    } catch (e) {
      result.replaceChildren(notice(`Could not read the log's key: ${e.message}`, "error"));
      return;
    }
    const r = await checkConsistency(area.value, vkey, (size) => api(`/v1/consistency?${query({ from: String(size) })}`));
    const steps = h("ul", { class: "steps" }, r.steps.map((s) => h("li", {}, `✓ ${s}`)));
    if (!r.ok) steps.append(h("li", { class: "bad" }, `✗ ${r.error}`));
    result.replaceChildren(
      h(
        "p",
        {},
        h("span", { id: r.ok ? "consistent" : "inconsistent", class: `badge ${r.ok ? "ok" : "bad"}` }, r.ok ? "consistent" : "not consistent"),
      ),
      steps,
    );
  });
  return form;
}

export function integrityView(main, roles) {
  const canRun = roles.includes("auditor") || roles.includes("admin");
  const canCheck = roles.includes("auditor");
  main.replaceChildren(h("h1", {}, "Integrity"), statusCard(), runCard(canRun), consistencyCard(canCheck));
}

// --- Patient access view ------------------------------------------------------------

function table(id, caption, cols, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id, class: "results" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows),
    ),
  );
}

export function patientAccessView(main, params) {
  const patient = params.get("patient") || "";
  const from = params.get("from") || "";
  const to = params.get("to") || "";
  const pInput = h("input", { id: "pa-patient", name: "patient", value: patient, required: true, autocomplete: "off", spellcheck: "false" });
  const fInput = h("input", { id: "pa-from", name: "from", type: "date", value: from });
  const tInput = h("input", { id: "pa-to", name: "to", type: "date", value: to });
  const form = h(
    "form",
    { id: "pa-form", class: "search-form no-print" },
    h("div", { class: "field grow" }, h("label", { for: "pa-patient" }, "Patient id"), pInput),
    h("div", { class: "field" }, h("label", { for: "pa-from" }, "From (optional)"), fInput),
    h("div", { class: "field" }, h("label", { for: "pa-to" }, "To (optional)"), tInput),
    h("button", { id: "pa-run", type: "submit" }, "Show report"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = `#/patients?${query({ patient: pInput.value.trim(), from: fInput.value, to: tInput.value })}`;
    if (location.hash === next) load();
    else location.hash = next;
  });
  const out = h("div", { id: "pa-report", "aria-live": "polite" });
  main.replaceChildren(h("h1", { class: "no-print" }, "Patient access report"), form, out);

  async function load() {
    if (!patient) return;
    out.replaceChildren(notice("Building the report…"));
    // Dates are whole days in the reader's time zone; `to` includes its day.
    const fromTs = from ? new Date(`${from}T00:00:00`).toISOString() : undefined;
    const toTs = to ? new Date(new Date(`${to}T00:00:00`).getTime() + 86400e3).toISOString() : undefined;
    let r;
    try {
      r = await api(`/v1/reports/patient-access?${query({ patient, from: fromTs, to: toTs })}`);
    } catch (e) {
      out.replaceChildren(notice(`Could not build the report: ${e.message}`, "error"));
      return;
    }
    const print = h("button", { id: "pa-print", type: "button", class: "no-print", onclick: () => window.print() }, "Print");
    const users = (r.users || []).map((u) =>
      h(
        "tr",
        {},
        h("td", {}, u.user, u.name ? ` (${u.name})` : ""),
        h("td", {}, u.role || ""),
        h("td", {}, u.department || ""),
        h("td", {}, Object.entries(u.actions || {}).map(([a, n]) => `${a} ×${n}`).join(", ")),
        h("td", {}, (u.reasons || []).join(", ")),
        h("td", {}, when(u.first_time)),
        h("td", {}, when(u.last_time)),
        h("td", { class: "num" }, u.count),
      ),
    );
    const accesses = (r.accesses || []).map((a) =>
      h(
        "tr",
        { class: "access", "data-index": a.index },
        h("td", {}, when(a.time)),
        h("td", {}, a.user || "", a.name ? ` (${a.name})` : ""),
        h("td", {}, a.role || ""),
        h("td", {}, a.department || ""),
        h("td", {}, `${a.category}/${a.action}`),
        h("td", { class: `outcome ${a.outcome}` }, a.outcome),
        h("td", {}, a.reason || ""),
        h("td", {}, a.resource || ""),
        h("td", { class: "num" }, a.index),
      ),
    );
    const period = r.from || r.to ? `${r.from ? when(r.from) : "the beginning"} – ${r.to ? when(r.to) : "now"}` : "all time";
    out.replaceChildren(
      h(
        "section",
        { class: "report", "aria-labelledby": "pa-title" },
        h("div", { class: "report-head" }, h("h2", { id: "pa-title" }, `Access to patient ${r.patient}`), print),
        h(
          "p",
          { id: "pa-summary", class: "meta" },
          `${r.total} access${r.total === 1 ? "" : "es"} by ${(r.users || []).length} user(s); period: ${period}; generated ${when(r.generated)}.`,
        ),
        h("h3", {}, "By user"),
        users.length
          ? table("pa-users", "Accesses grouped by user", ["User", "Role", "Department", "Actions", "Reasons", "First", "Last", "Count"], users)
          : notice("No one accessed this patient's records in this period."),
        h("h3", {}, "Every access"),
        accesses.length
          ? table("pa-accesses", "Every access, oldest first", ["Time", "User", "Role", "Department", "Action", "Outcome", "Reason", "Resource", "Ledger index"], accesses)
          : null,
        h("p", { class: "meta" }, "Each row's ledger index can be proven with `sealtrail proof --index N`."),
      ),
    );
  }
  load();
}
