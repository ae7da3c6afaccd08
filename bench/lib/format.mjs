// Number formatting and the terminal table.

export function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (x === Infinity) return '∞';
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e4) return `${(x / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

export function fmtSummary(s) {
  if (!s) return '—';
  if (s.n === 1 || s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

export function fmtRatio(s) {
  if (!s) return '—';
  const r = (x) => (x === Infinity ? '∞' : x.toFixed(2));
  if (s.n === 1 || s.min === s.max) return `${r(s.median)}×`;
  return `${r(s.median)}× (${r(s.min)}–${r(s.max)})`;
}

const width = (s) => [...s].length;
const pad = (s, n) => s + ' '.repeat(Math.max(0, n - width(s)));

/** Renders rows (arrays of strings) under headers; section rows are {section: text}. */
export function renderTable(headers, rows) {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.filter(Array.isArray).map((r) => width(r[i] ?? ''))));
  const line = (cells) => cells.map((c, i) => pad(c ?? '', widths[i])).join('  ').trimEnd();
  const out = [line(headers), widths.map((w) => '─'.repeat(w)).join('  ')];
  for (const r of rows) {
    if (Array.isArray(r)) out.push(line(r));
    else out.push('', r.section);
  }
  return out.join('\n');
}
