import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BENCH_DIR } from './paths.mjs';

let list = null;
function load() {
  if (!list) list = JSON.parse(readFileSync(path.join(BENCH_DIR, 'targets.json'), 'utf8')).targets;
  return list;
}

function toRegExp(glob) {
  const parts = glob.split('.').map((p) => (p === '*' ? '[^.]+' : p.replace(/[-/\\^$+?()|[\]{}]/g, '\\$&')));
  return new RegExp(`^${parts.join('\\.')}$`);
}

/** The first target whose pattern matches the metric id, or null. */
export function targetFor(id) {
  return load().find((t) => toRegExp(t.match).test(id)) ?? null;
}

export function targetText(t) {
  if (!t) return '';
  if (t.withinBuiltin) return `≤ built-in worst${t.tolerance ? ` +${Math.round(t.tolerance * 100)}%` : ''}`;
  if (t.min !== undefined) return `≥ ${t.min}×`;
  if (t.max !== undefined) return `≤ ${t.max}×`;
  return '';
}

/** true/false when the target applies and both sides have numbers; null otherwise. */
export function targetMet(t, m) {
  if (!t || !m.ratio) return null;
  if (t.withinBuiltin) return m.a && m.b ? m.b.median <= m.a.max * (1 + (t.tolerance ?? 0)) : null;
  if (t.min !== undefined) return m.ratio.median >= t.min;
  if (t.max !== undefined) return m.ratio.median <= t.max;
  return null;
}
