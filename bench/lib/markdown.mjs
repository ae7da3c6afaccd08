// Markdown renderings of a run: the targets table (spliced into bench/README.md between markers
// after a full run) and the full table (results/latest.md).
import { fmtSummary, fmtRatio } from './format.mjs';
import { targetText } from './targets.mjs';

const cell = (s) => String(s).replace(/\|/g, '\\|');
const mark = (met) => (met === true ? '✓' : met === false ? '✗' : '');

export function targetsMarkdown(json) {
  const { meta } = json;
  const lines = [
    `Measured ${meta.date.slice(0, 10)}, node ${meta.node}, ${meta.cpus} CPUs, ${meta.rounds} rounds, ${meta.modules.B.probe?.implementation ?? meta.modules.B.name} vs ${meta.modules.A.name} (node:cluster)${meta.packageCommit ? ` at ${meta.packageCommit}${meta.packageDirty ? ' + uncommitted work' : ''}` : ''}; load average at start ${meta.loadavgStart[0].toFixed(2)}.`,
    '',
    '| scenario | metric | target (cluster-rs / built-in) | measured ratio, median (min–max) | met |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const m of json.metrics) {
    if (!m.target) continue;
    const measured = m.ratio ? fmtRatio(m.ratio) : `failed: ${m.failed.b || m.failed.a || 'no number'}`;
    lines.push(`| ${cell(m.scenario)} | ${cell(m.label)} | ${cell(targetText(m.target))} | ${cell(measured)} | ${mark(m.met)} |`);
  }
  return lines.join('\n');
}

export function fullMarkdown(json) {
  const { meta } = json;
  const A = meta.modules.A.name;
  const B = meta.modules.B.name;
  const lines = [
    `# Latest bench run`,
    '',
    `${meta.date}, node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel}), ${meta.rounds} round(s)${meta.quick ? ' (quick)' : ''}, ${Math.round(meta.seconds)} s; load average at start ${meta.loadavgStart.map((x) => x.toFixed(2)).join(' ')}, at end ${meta.loadavgEnd.map((x) => x.toFixed(2)).join(' ')}.`,
    `A = ${A} (\`${meta.modules.A.spec}\`), B = ${B} (\`${meta.modules.B.spec}\`, ${meta.modules.B.probe?.implementation ?? 'not loadable'}). Figures: median (min–max) over the rounds; ratio: B/A per round pair.`,
    '',
  ];
  for (const s of json.scenarios) {
    lines.push(`## ${s.title}`, '', `| metric | unit | ${A} | ${B} | ratio | target | met |`, '| --- | --- | --- | --- | --- | --- | --- |');
    for (const m of json.metrics.filter((x) => x.scenario === s.name)) {
      const v = (x, side) => (x ? fmtSummary(x) : `failed: ${m.failed[side] || 'no number'}`);
      lines.push(`| ${cell(m.label)}${m.info ? ' (info)' : ''} | ${m.unit} | ${cell(v(m.a, 'a'))} | ${cell(v(m.b, 'b'))} | ${fmtRatio(m.ratio)} | ${cell(targetText(m.target))} | ${mark(m.met)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** Replaces the text between `<!-- begin:targets -->` and `<!-- end:targets -->`. */
export function spliceReadme(readme, table) {
  const re = /(<!-- begin:targets -->\n)[\s\S]*?(\n<!-- end:targets -->)/;
  return re.test(readme) ? readme.replace(re, `$1${table}$2`) : null;
}
