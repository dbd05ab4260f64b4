// "Index catching up: N of M events" (and "Detection catching up: ..."):
// a banner with a bar above every view while the search index or the
// rules consumer is well behind the ledger (after a restart, or while the
// index is rebuilt after `sealtrail reindex`), from GET /v1/catch-up.
// Searches, dashboards and exports then miss the newest events, and alerts
// come late; the banner says so. Polled every 2 s while catching up, every
// 15 s otherwise; stops when the session ends. Built with DOM calls only.

import { h } from "./dom.js";
import { api, ApiError } from "./api.js";

const FAST_MS = 2000;
const SLOW_MS = 15000;
const PARTS = [
  ["index", "Index catching up", "Searches, dashboards and exports miss the newest events until it has."],
  ["detection", "Detection catching up", "Alerts for these events come once it has."],
];
let started = false;

function row(key, label) {
  const text = h("span", { id: `catch-up-${key}-text` });
  const bar = h("progress", { id: `catch-up-${key}-progress`, class: "catch-up-bar", max: 1, value: 0, "aria-label": label });
  return { el: h("p", { id: `catch-up-${key}`, hidden: true }, text, " ", bar), text, bar };
}

// Puts the banner before `main` (once) and keeps it current.
export function startCatchUp(main) {
  if (started) return;
  started = true;
  const rows = Object.fromEntries(PARTS.map(([key, label]) => [key, row(key, label)]));
  const banner = h(
    "div",
    { id: "catch-up", class: "notice info catch-up", role: "status", hidden: true },
    PARTS.map(([key]) => rows[key].el),
  );
  main.before(banner);
  async function poll() {
    let wait = SLOW_MS;
    try {
      const s = await api("/v1/catch-up");
      let any = false;
      for (const [key, label, consequence] of PARTS) {
        const lag = s[key];
        const r = rows[key];
        r.el.hidden = !(lag && lag.catching_up);
        if (!lag || !lag.catching_up) continue;
        any = true;
        r.bar.max = Math.max(Number(lag.of), 1);
        r.bar.value = Number(lag.events);
        r.text.textContent = `${label}: ${lag.events} of ${lag.of} events. ${consequence}`;
      }
      banner.hidden = !any;
      if (any) wait = FAST_MS;
    } catch (e) {
      banner.hidden = true;
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        started = false; // signed out or not allowed: stop until the next sign-in
        banner.remove();
        return;
      }
    }
    setTimeout(poll, wait);
  }
  poll();
}
