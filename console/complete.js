// Query completion for the search box (an ARIA combobox with a listbox).
// Field names come from GET /v1/search/fields (the index's own list); after
// `field:` the most frequent values of a countable field in the chosen time
// range come from a terms count (POST /v1/search, recorded like any search).
// Arrow keys move, Enter or Tab accept, Escape closes.

import { api } from "./api.js";
import { h } from "./dom.js";

let fieldsOnce = null;
function fields() {
  if (!fieldsOnce) {
    fieldsOnce = api("/v1/search/fields")
      .then((r) => r.fields || [])
      .catch(() => {
        fieldsOnce = null;
        return [];
      });
  }
  return fieldsOnce;
}

// The word being typed: from the last space or parenthesis before the caret.
function currentWord(input) {
  const caret = input.selectionStart ?? input.value.length;
  const before = input.value.slice(0, caret);
  const start = Math.max(before.lastIndexOf(" "), before.lastIndexOf("("), before.lastIndexOf(")")) + 1;
  return { start, end: caret, word: before.slice(start) };
}

// A value as the query grammar needs it: quoted unless a plain word.
const asTerm = (v) => (/^[A-Za-z0-9_.@-]+$/.test(v) ? v : `"${v.replace(/["\\]/g, "\\$&")}"`);

const MAX_SHOWN = 12;

/**
 * Adds completion to `input`. `fromMs()` gives the start of the chosen
 * time range (or null for all time), so suggested values are the range's.
 */
export function attachCompletion(input, fromMs) {
  const list = h("ul", { id: `${input.id}-suggestions`, class: "suggestions", role: "listbox", hidden: true });
  const status = h("p", { class: "visually-hidden", "aria-live": "polite" });
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", list.id);
  input.after(list, status);
  const values = new Map(); // "field|from" -> Promise<[key, count][]>
  let options = []; // [{label, hint, insert}]
  let active = -1;
  let run = 0;

  function close() {
    list.hidden = true;
    list.replaceChildren();
    options = [];
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function highlight(i) {
    active = i;
    list.querySelectorAll("li").forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    if (i >= 0) input.setAttribute("aria-activedescendant", `${list.id}-${i}`);
    else input.removeAttribute("aria-activedescendant");
  }

  function accept(i) {
    const o = options[i];
    if (!o) return;
    const { start, end } = currentWord(input);
    const v = input.value;
    input.value = v.slice(0, start) + o.insert + v.slice(end);
    const caret = start + o.insert.length;
    input.setSelectionRange(caret, caret);
    close();
    // A field was chosen: offer its values straight away.
    if (o.insert.endsWith(":")) update();
  }

  function render(found) {
    options = found.slice(0, MAX_SHOWN);
    if (!options.length) return close();
    list.replaceChildren(
      ...options.map((o, i) =>
        h(
          "li",
          {
            id: `${list.id}-${i}`,
            role: "option",
            "aria-selected": "false",
            // mousedown, not click: the input must keep focus.
            onmousedown: (ev) => {
              ev.preventDefault();
              accept(i);
            },
          },
          h("code", {}, o.label),
          o.hint ? h("span", { class: "hint" }, o.hint) : null,
        ),
      ),
    );
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(-1);
    status.textContent = `${options.length} suggestion${options.length === 1 ? "" : "s"}`;
  }

  function topValues(field) {
    const from = fromMs();
    const key = `${field}|${from ?? ""}`;
    if (!values.has(key)) {
      const body = { q: "*", limit: 0, aggs: [{ terms: { field, size: 50 } }] };
      if (from !== null) body.from = new Date(from).toISOString();
      values.set(
        key,
        api("/v1/search", { method: "POST", body })
          .then((r) => ((r.aggs && r.aggs[0] && r.aggs[0].buckets) || []).map((b) => [String(b.key), b.doc_count]))
          .catch(() => {
            values.delete(key);
            return [];
          }),
      );
    }
    return values.get(key);
  }

  async function update() {
    const mine = ++run;
    const { word } = currentWord(input);
    const colon = word.indexOf(":");
    const known = await fields();
    if (mine !== run) return;
    if (colon < 0) {
      const w = word.toLowerCase();
      if (!w) return close();
      const found = known
        .filter((f) => f.name.toLowerCase().startsWith(w) || (w.length > 1 && f.name.toLowerCase().includes(w)))
        .filter((f) => f.name !== w)
        .map((f) => ({
          label: f.name,
          hint: f.kind,
          insert: f.name === "attrs.*" ? "attrs." : `${f.name}:`,
        }));
      return render(found);
    }
    const field = word.slice(0, colon);
    const typed = word.slice(colon + 1).replace(/^"/, "").toLowerCase();
    const f = known.find((k) => k.name === field);
    if (!f || !f.countable || f.kind === "number") return close();
    const top = await topValues(field);
    if (mine !== run) return;
    const found = top
      .filter(([v]) => v.toLowerCase().startsWith(typed) && `${field}:${asTerm(v)}` !== word)
      .map(([v, n]) => ({ label: v, hint: `${n.toLocaleString()} events`, insert: `${field}:${asTerm(v)}` }));
    render(found);
  }

  input.addEventListener("input", update);
  input.addEventListener("blur", () => setTimeout(close, 0));
  input.addEventListener("keydown", (ev) => {
    if (list.hidden) {
      if (ev.key === "ArrowDown" && input.value) {
        ev.preventDefault();
        update();
      }
      return;
    }
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const n = options.length;
      highlight(ev.key === "ArrowDown" ? (active + 1) % n : (active - 1 + n) % n);
    } else if ((ev.key === "Enter" || ev.key === "Tab") && active >= 0) {
      ev.preventDefault();
      accept(active);
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      close();
    }
  });
}
