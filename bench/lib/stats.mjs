// Small statistics helpers: every figure is reported as median with min–max.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** {median, min, max, n} of the numeric values, or null when there are none. */
export function summarize(values) {
  const v = values.filter((x) => typeof x === 'number' && !Number.isNaN(x));
  if (v.length === 0) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** Ratios b/a of the rounds where both sides produced a finite, non-zero-denominator number. */
export function pairRatios(as, bs) {
  const out = [];
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const a = as[i];
    const b = bs[i];
    if (typeof a !== 'number' || typeof b !== 'number') continue;
    if (!Number.isFinite(a) || !Number.isFinite(b) || a === 0) continue;
    out.push(b / a);
  }
  return out;
}
