// The search view's "Export evidence bundle" action (auditors): starts an
// export job of the current query and time range (POST /v1/exports), shows
// its progress (GET /v1/exports/<id>: events matched, proofs built, bytes)
// and then a download link (GET /v1/exports/<id>/bundle, once; the service
// deletes its copy when it is downloaded or after an hour). The bundle is
// checked offline with `sealtrail verify --bundle`. Built with DOM calls
// only, never markup from data.

import { h } from "./dom.js";
import { api, ApiError } from "./api.js";
import { when, bytes } from "./format.js";

const POLL_MS = 300;

// `roles`: the session's roles; `current()`: {q, from, to} of the search
// as it stands. Returns the card, or null for someone who cannot export.
export function exportCard(roles, current) {
  if (!roles.includes("auditor")) return null;
  const button = h("button", { id: "export-start", type: "button" }, "Export evidence bundle");
  const bar = h("progress", { id: "export-progress", max: 1, value: 0, "aria-label": "Export progress", hidden: true });
  const text = h("p", { id: "export-progress-text", class: "meta", "aria-live": "polite" });
  const result = h("div", { id: "export-result", "aria-live": "polite" });
  const note = h("p", { id: "export-note", class: "meta", hidden: true });
  const card = h(
    "section",
    { id: "export-card", class: "card export", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title" }, "Evidence bundle"),
    h(
      "p",
      { class: "meta" },
      "The events this query matches in this time range, each with its inclusion proof and a signed manifest, ",
      "as one file anyone can check offline with ",
      h("code", {}, "sealtrail verify --bundle"),
      ". The export is recorded in the ledger.",
    ),
    button,
    note,
    bar,
    text,
    result,
  );

  function render(job) {
    bar.hidden = false;
    const total = job.events_total;
    if (total === null || total === undefined) {
      bar.removeAttribute("value"); // indeterminate while the search runs
      text.textContent = "Finding the matching events…";
    } else {
      bar.max = Math.max(Number(total), 1);
      bar.value = job.state === "running" ? Math.min(Number(job.proofs_done) || 0, bar.max) : bar.max;
      text.textContent = `${job.proofs_done} of ${total} events proven, ${bytes(job.bytes)}`;
    }
    if (job.state === "running") {
      result.replaceChildren(h("span", { class: "badge pending" }, "exporting…"));
    } else if (job.state === "failed") {
      result.replaceChildren(h("span", { class: "badge bad" }, "export failed"), " ", job.error || "");
    } else if (job.state === "done") {
      const link = h(
        "a",
        { id: "export-download", class: "button", href: job.bundle, download: "sealtrail-evidence.tar" },
        `Download evidence bundle (${bytes(job.bytes)})`,
      );
      link.addEventListener("click", () => setTimeout(() => refresh(job.id), 1000));
      result.replaceChildren(
        h("p", {}, h("span", { id: "export-ready", class: "badge ok" }, "ready"), " ", link),
        h(
          "p",
          { class: "meta" },
          `It can be downloaded once, until ${when(job.expires_at)}. Check it with `,
          h("code", {}, "sealtrail verify --bundle sealtrail-evidence.tar --vkey LOG.vkey"),
          ".",
        ),
      );
    } else if (job.state === "downloaded") {
      result.replaceChildren(
        h("p", {}, h("span", { id: "export-downloaded", class: "badge ok" }, "downloaded"), " The service has deleted its copy."),
      );
    }
  }

  async function refresh(id) {
    try {
      render(await api(`/v1/exports/${encodeURIComponent(id)}`));
    } catch (e) {
      // Forgotten already: nothing to show.
    }
  }

  async function follow(id) {
    try {
      while (card.isConnected) {
        const job = await api(`/v1/exports/${encodeURIComponent(id)}`);
        render(job);
        if (job.state !== "running") break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    } catch (e) {
      result.replaceChildren(h("p", { class: "notice error", role: "alert" }, `Could not follow the export: ${e.message}`));
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    note.hidden = true;
    bar.hidden = false;
    bar.removeAttribute("value");
    text.textContent = "";
    result.replaceChildren(h("span", { class: "badge pending" }, "starting…"));
    const { q, from, to } = current();
    let job;
    try {
      job = await api("/v1/exports", { method: "POST", body: { q, from, to } });
    } catch (e) {
      // This person already runs an export (say, from another tab): follow it.
      const running = e instanceof ApiError && e.status === 409 && e.data && e.data.export;
      if (running && running.id) {
        note.textContent = `One export at a time: following yours of "${running.q}", started ${when(running.started_at)}.`;
        note.hidden = false;
        render(running);
        follow(running.id);
        return;
      }
      const why =
        e instanceof ApiError && e.status === 401
          ? "Exports need a recent sign-in: sign out and in again, then retry."
          : `Could not start the export: ${e.message}`;
      result.replaceChildren(h("p", { class: "notice error", role: "alert" }, why));
      bar.hidden = true;
      button.disabled = false;
      return;
    }
    render(job);
    follow(job.id);
  });
  return card;
}
