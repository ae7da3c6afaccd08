// The ratio chart: one horizontal bar per metric (cluster-rs / built-in, log scale), grouped by
// scenario, drawn from 1.0 (marked) to the median ratio, with the min–max of the pair ratios as a
// whisker and the target as a tick. Hand-written SVG, no dependency.

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

import { targetText } from './targets.mjs';

const truncate = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function renderSvg({ title, subtitle, groups, bLabel }) {
  // groups: [{title, rows: [{label, ratio: {median,min,max}|null, target, met, better, failed}]}]
  const rowH = 18;
  const left = 360;
  const plotW = 460;
  const right = 190;
  const W = left + plotW + right;
  const top = 84;
  let ratios = [];
  for (const g of groups) for (const r of g.rows) if (r.ratio) ratios.push(r.ratio.min, r.ratio.max);
  for (const g of groups) for (const r of g.rows) if (r.target?.min) ratios.push(r.target.min); else if (r.target?.max) ratios.push(r.target.max);
  ratios = ratios.filter((x) => Number.isFinite(x) && x > 0);
  const lo = Math.max(0.01, Math.min(0.25, ...ratios.map((x) => x / 1.15)));
  const hi = Math.min(100, Math.max(4, ...ratios.map((x) => x * 1.15)));
  const x = (v) => left + ((Math.log(Math.min(hi, Math.max(lo, v))) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))) * plotW;

  const body = [];
  let y = top;
  for (const g of groups) {
    y += 8;
    body.push(`<text x="8" y="${y + 12}" class="group">${esc(g.title)}</text>`);
    y += rowH + 2;
    for (const r of g.rows) {
      const cy = y + rowH / 2;
      body.push(`<text x="16" y="${cy + 4}" class="label">${esc(r.label)}</text>`);
      if (!r.ratio) {
        body.push(`<text x="${left + 4}" y="${cy + 4}" class="fail">${esc(r.failed ? truncate(`failed: ${r.failed}`, 100) : r.zero ? 'no ratio: the built-in\'s figure is 0' : 'no ratio')}</text>`);
      } else {
        const v = r.ratio.median;
        const good = r.better === 'higher' ? v >= 1 : v <= 1;
        const cls = r.met === true ? 'ok' : r.met === false ? 'bad' : good ? 'info-good' : 'info-bad';
        const x0 = Math.min(x(1), x(v));
        const w = Math.max(1, Math.abs(x(v) - x(1)));
        body.push(`<rect x="${x0.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" class="${cls}"/>`);
        if (r.ratio.min !== r.ratio.max) {
          body.push(`<line x1="${x(r.ratio.min).toFixed(1)}" x2="${x(r.ratio.max).toFixed(1)}" y1="${cy}" y2="${cy}" class="whisker"/>`);
        }
        const t = r.target && (r.target.min ?? r.target.max);
        if (t) body.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${y + 1}" y2="${y + rowH - 1}" class="target"/>`);
        const note = r.met === true ? ' ✓' : r.met === false ? ' ✗' : '';
        const tt = r.target ? ` (target ${targetText(r.target)})` : '';
        body.push(`<text x="${left + plotW + 8}" y="${cy + 4}" class="value">${esc(`${v.toFixed(2)}×${tt}${note}`)}</text>`);
      }
      y += rowH;
    }
  }
  const H = y + 40;
  // Axis: gridlines at nice ratios.
  const ticks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100].filter((t) => t >= lo && t <= hi);
  const grid = ticks.map((t) => `<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${top}" y2="${y}" class="${t === 1 ? 'one' : 'grid'}"/>`
    + `<text x="${x(t).toFixed(1)}" y="${top - 4}" class="tick">${t}×</text>`
    + `<text x="${x(t).toFixed(1)}" y="${y + 14}" class="tick">${t}×</text>`).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<style>
  .title { font-size: 15px; font-weight: bold; }
  .sub { font-size: 11px; fill: #555; }
  .group { font-size: 12px; font-weight: bold; }
  .label { font-size: 11px; fill: #222; }
  .value { font-size: 11px; fill: #222; }
  .fail { font-size: 11px; fill: #b00; font-style: italic; }
  .tick { font-size: 10px; fill: #666; text-anchor: middle; }
  .grid { stroke: #e4e4e4; stroke-width: 1; }
  .one { stroke: #000; stroke-width: 1.5; }
  .ok { fill: #3a9a4a; }
  .bad { fill: #d04a3a; }
  .info-good { fill: #8fb8d8; }
  .info-bad { fill: #d8b88f; }
  .whisker { stroke: #333; stroke-width: 1; }
  .target { stroke: #000; stroke-width: 2; stroke-dasharray: 2 1; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="20" class="title">${esc(title)}</text>
<text x="8" y="36" class="sub">${esc(subtitle)}</text>
<text x="8" y="50" class="sub">${esc(`Bar: ${bLabel} / built-in, median of the per-round pair ratios (log scale, from 1.0); whisker: min–max of the pair ratios; dashed tick: target.`)}</text>
<text x="8" y="62" class="sub">${esc('Green: target met; red: target missed; blue/tan: no target, on the better/worse side of 1.0 (higher is better for rates, lower for CPU, latency, memory).')}</text>
${grid}
${body.join('\n')}
</svg>
`;
}
