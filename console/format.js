// How the console writes times and sizes, one way in every view.

// An RFC 3339 time in the reader's locale ("" for none; unparsable text as is).
export function when(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

// A byte count in binary units: 512 B, 1.5 KiB, 3.2 MiB.
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n) || 0;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
