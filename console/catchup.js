// "Index catching up: N of M events": a bar above every view while the
// search index is well behind the ledger (after a restart, or while it is
// rebuilt after `sealtrail reindex`), from GET /v1/catch-up. Searches,
// dashboards and exports then miss the newest events, and the banner says
// so. Polled every 2 s while catching up, every 15 s otherwise; stops when
// the session ends. Built with DOM calls only.

import { h } from "./dom.js";
import { api, ApiError } from "./api.js";

const FAST_MS = 2000;
const SLOW_MS = 15000;
let started = false;

// Puts the banner before `main` (once) and keeps it current.
export function startCatchUp(main) {
  if (started) return;
  started = true;
  const bar = h("progress", { id: "catch-up-progress", max: 1, value: 0, "aria-label": "Search index catching up" });
  const text = h("span", { id: "catch-up-text" });
  const banner = h(
    "div",
    { id: "catch-up", class: "notice info catch-up", role: "status", hidden: true },
    text,
    " ",
    bar,
  );
  main.before(banner);
  async function poll() {
    let wait = SLOW_MS;
    try {
      const s = await api("/v1/catch-up");
      const lag = s.index;
      banner.hidden = !lag.catching_up;
      if (lag.catching_up) {
        bar.max = Math.max(Number(lag.of), 1);
        bar.value = Number(lag.events);
        text.textContent =
          `Index catching up: ${lag.events} of ${lag.of} events. ` +
          "Searches, dashboards and exports miss the newest events until it has.";
        wait = FAST_MS;
      }
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
