#!/usr/bin/env node
// cluster-rs benchmark runner: node bench/run.mjs [--quick] [--only <scenario>[,…]] [--rounds N]
//                                                 [--a <module>] [--b <module>] [--out <prefix>]
//        node bench/run.mjs --render <results.json>
// Every case runs the same fixture primary/worker scripts with module A (built-in `node:cluster`)
// and module B (cluster-rs, the package root), alternating A B A B over the rounds; each figure is
// the median with min–max over the rounds, plus the ratio B/A per round pair.
import os from 'node:os';
import path from 'node:path';
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { BENCH_DIR, PACKAGE_ROOT, RESULTS_DIR, fixture } from './lib/paths.mjs';
import { runToResult, killAll } from './lib/proc.mjs';
import { summarize, pairRatios } from './lib/stats.mjs';
import { fmt, fmtSummary, fmtRatio, renderTable } from './lib/format.mjs';
import { targetFor, targetText, targetMet } from './lib/targets.mjs';
import { renderSvg } from './lib/svg.mjs';
import { targetsMarkdown, fullMarkdown, spliceReadme } from './lib/markdown.mjs';
import { wrkVersion } from './lib/wrk.mjs';

import * as ipcPingpong from './scenarios/ipc-pingpong.mjs';
import * as ipcFlood from './scenarios/ipc-flood.mjs';
import * as httpKeepalive from './scenarios/http-keepalive.mjs';
import * as httpClose from './scenarios/http-close.mjs';
import * as forkLatency from './scenarios/fork-latency.mjs';
import * as fairness from './scenarios/fairness.mjs';
import * as memory from './scenarios/memory.mjs';

const SCENARIOS = [ipcPingpong, ipcFlood, httpKeepalive, httpClose, forkLatency, fairness, memory];

function usage(code) {
  process.stderr.write(`usage: node bench/run.mjs [--quick] [--only <scenario>[,…]] [--rounds N] [--a <module>] [--b <module>] [--out <prefix>]
       node bench/run.mjs --render <results.json>   (rewrite its .svg/.md with the current targets.json)
  scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}
  modules:   builtin (node:cluster), cluster-rs (the package root, default for B), or a path
`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { quick: false, only: null, rounds: null, a: 'builtin', b: 'cluster-rs', out: null, render: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(2);
      return argv[++i];
    };
    if (arg === '--quick') opts.quick = true;
    else if (arg === '--only') opts.only = val().split(',').filter(Boolean);
    else if (arg === '--rounds') opts.rounds = Number(val());
    else if (arg === '--a') opts.a = val();
    else if (arg === '--b') opts.b = val();
    else if (arg === '--out') opts.out = val();
    else if (arg === '--render') opts.render = val();
    else if (arg === '--help' || arg === '-h') usage(0);
    else usage(2);
  }
  if (opts.rounds === null) opts.rounds = opts.quick ? 1 : 3;
  if (!(opts.rounds >= 1)) usage(2);
  return opts;
}

function resolveModule(name) {
  if (name === 'builtin' || name === 'node:cluster' || name === 'cluster') return { name: 'built-in', spec: 'node:cluster' };
  if (name === 'cluster-rs') return { name: 'cluster-rs', spec: PACKAGE_ROOT };
  return { name: path.basename(path.resolve(name)), spec: path.resolve(name) };
}

async function probe(mod) {
  try {
    const r = await runToResult(fixture('probe.js'), { timeoutMs: 20000, env: { BENCH_CLUSTER_MODULE: mod.spec } });
    return { ok: true, policies: r.policies, defaultPolicy: r.defaultPolicy, implementation: r.implementation };
  } catch (err) {
    return { ok: false, reason: `module does not fork a worker: ${err.message}` };
  }
}

function shortReason(err) {
  return String(err?.message ?? err).replace(/\s+/g, ' ').slice(0, 300);
}

const log = (s) => process.stderr.write(`${s}\n`);

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.render) {
    render(opts.render);
    return;
  }
  const t0 = Date.now();
  const load0 = os.loadavg();
  const A = resolveModule(opts.a);
  const B = resolveModule(opts.b);
  if (A.name === B.name) { A.name += ' (A)'; B.name += ' (B)'; }

  const scenarios = opts.only
    ? SCENARIOS.filter((s) => opts.only.some((o) => s.name === o || s.name.startsWith(o)))
    : SCENARIOS;
  if (scenarios.length === 0) usage(2);

  log(`cluster-rs bench: A = ${A.name} (${A.spec}), B = ${B.name} (${B.spec}); ${opts.rounds} round(s)${opts.quick ? ', quick' : ''}`);
  log(`node ${process.version}, ${os.cpus().length} CPUs, load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
  if (load0[0] > 0.5 * os.cpus().length) log(`note: the load average is high (${load0[0].toFixed(2)}): other work shares the CPUs, timings are noisy`);

  const ctx = { A: await probe(A), B: await probe(B) };
  for (const [side, mod] of [['A', A], ['B', B]]) {
    if (!ctx[side].ok) log(`${side} = ${mod.name}: ${ctx[side].reason}; its scenarios are reported as failed`);
    else log(`${side} = ${mod.name}: ${ctx[side].implementation}, policies ${ctx[side].policies.join(', ')} (default ${ctx[side].defaultPolicy})`);
  }

  // metrics: id → {scenario, label, unit, better, info, a: [], b: [], errA: [], errB: []} (per round)
  const metrics = new Map();
  const caseFailures = [];
  const order = [];
  const touch = (scenario, id, meta) => {
    if (!metrics.has(id)) {
      metrics.set(id, { id, scenario: scenario.name, a: [], b: [], errA: [], errB: [], ...meta });
      order.push(id);
    }
    return metrics.get(id);
  };

  for (const scenario of scenarios) {
    const cases = scenario.cases(opts, ctx);
    for (const kase of cases) {
      const caseIds = new Set();
      for (let round = 0; round < opts.rounds; round++) {
        const line = [];
        for (const [side, mod] of [['A', A], ['B', B]]) {
          const key = side === 'A' ? 'a' : 'b';
          const errKey = side === 'A' ? 'errA' : 'errB';
          const started = Date.now();
          let figures = null;
          let error = null;
          if (!ctx[side].ok) error = ctx[side].reason;
          else {
            try {
              figures = await scenario.run(mod.spec, opts, kase, side);
            } catch (err) {
              error = shortReason(err);
            }
          }
          if (figures) {
            for (const [id, f] of Object.entries(figures)) {
              const m = touch(scenario, id, { label: f.label, unit: f.unit, better: f.better, info: !!f.info, caseId: kase.id });
              if (typeof f.value === 'number') m[key][round] = f.value;
              else m[errKey][round] = f.error || 'no number';
              if (f.detail) (m.detail ??= { a: [], b: [] })[key][round] = f.detail;
              caseIds.add(id);
            }
            line.push(`${side} ${((Date.now() - started) / 1000).toFixed(1)} s`);
          } else {
            caseFailures.push({ scenario: scenario.name, caseId: kase.id, side, round, reason: error });
            line.push(`${side} failed: ${error}`);
          }
          // Metrics seen from either side carry the failure of the other.
          if (error) {
            for (const id of caseIds) metrics.get(id)[errKey][round] = error;
          }
        }
        log(`[${scenario.name}] ${kase.id} round ${round + 1}/${opts.rounds}: ${line.join(', ')}`);
      }
      // Failures recorded before the metric ids were known (side A failed in round 0, say).
      for (const f of caseFailures.filter((x) => x.caseId === kase.id)) {
        for (const id of caseIds) {
          const m = metrics.get(id);
          const errKey = f.side === 'A' ? 'errA' : 'errB';
          if (m[errKey][f.round] === undefined) m[errKey][f.round] = f.reason;
        }
      }
      if (caseIds.size === 0) {
        const m = touch(scenario, `${kase.id}.*`, { label: kase.id, unit: '', better: 'higher', info: false, caseId: kase.id });
        for (const f of caseFailures.filter((x) => x.caseId === kase.id)) m[f.side === 'A' ? 'errA' : 'errB'][f.round] = f.reason;
      }
    }
  }

  // Summaries.
  const rows = order.map((id) => {
    const m = metrics.get(id);
    const a = summarize(m.a);
    const b = summarize(m.b);
    const ratio = summarize(pairRatios(m.a, m.b));
    const target = m.info ? null : targetFor(id);
    const firstErr = (errs) => errs.find((e) => e) ?? null;
    const out = {
      id, scenario: m.scenario, label: m.label, unit: m.unit, better: m.better, info: m.info,
      a: a && { ...a, values: m.a }, b: b && { ...b, values: m.b }, ratio,
      target: target && { ...target }, met: null,
      failed: { a: a ? null : firstErr(m.errA), b: b ? null : firstErr(m.errB) },
      failedRounds: { a: m.errA.filter(Boolean).length, b: m.errB.filter(Boolean).length },
    };
    if (m.detail) out.detail = m.detail;
    out.met = targetMet(target, out);
    return out;
  });

  // Terminal table.
  const headers = ['metric', 'unit', A.name, B.name, 'ratio B/A', 'target', 'ok'];
  const tableRows = [];
  const notes = []; // full failure reasons, numbered, when the cell has to shorten them
  const failedCell = (reason) => {
    const text = reason || 'no number';
    if (text.length <= 48) return `failed: ${text}`;
    let n = notes.indexOf(text);
    if (n < 0) n = notes.push(text) - 1;
    return `failed: ${text.slice(0, 40)}… [${n + 1}]`;
  };
  for (const scenario of scenarios) {
    tableRows.push({ section: `■ ${scenario.title}` });
    for (const r of rows.filter((x) => x.scenario === scenario.name)) {
      const cell = (s, side) => (s ? fmtSummary(s) : failedCell(r.failed[side]));
      tableRows.push([
        `${r.label}${r.info ? ' (info)' : ''}`, r.unit, cell(r.a, 'a'), cell(r.b, 'b'), fmtRatio(r.ratio),
        targetText(r.target), r.met === true ? '✓' : r.met === false ? '✗' : '',
      ]);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const load1 = os.loadavg();
  process.stdout.write(`\nA = ${A.name} (${A.spec}), B = ${B.name} (${B.spec}); median (min–max) over ${opts.rounds} round(s); ratio = B/A per round pair\n\n`);
  process.stdout.write(`${renderTable(headers, tableRows)}\n\n`);
  if (notes.length) process.stdout.write(`${notes.map((t, i) => `[${i + 1}] ${t}`).join('\n')}\n\n`);

  // Did every scenario produce numbers, for each side?
  const missing = [];
  for (const scenario of scenarios) {
    const rs = rows.filter((x) => x.scenario === scenario.name && !x.info);
    for (const side of ['a', 'b']) {
      if (!rs.some((r) => r[side])) {
        const reason = rs.map((r) => r.failed[side]).find(Boolean) || 'no number';
        missing.push(`${scenario.name} produced no numbers for ${side === 'a' ? A.name : B.name}: ${reason}`);
      }
    }
  }

  // Files.
  const git = (() => {
    try {
      return execFileSync('git', ['-C', PACKAGE_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch { return null; }
  })();
  const full = !opts.quick && !opts.only;
  const prefix = opts.out ? path.resolve(opts.out) : path.join(RESULTS_DIR, full ? 'latest' : 'last-run');
  mkdirSync(path.dirname(prefix), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    platform: `${os.platform()} ${os.release()}`,
    loadavgStart: load0,
    loadavgEnd: load1,
    quick: opts.quick,
    rounds: opts.rounds,
    only: opts.only,
    seconds,
    wrk: wrkVersion(),
    packageCommit: git,
    packageDirty: (() => {
      try {
        return execFileSync('git', ['-C', PACKAGE_ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'index.js', 'lib', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
      } catch { return null; }
    })(),
    modules: { A: { ...A, probe: ctx.A }, B: { ...B, probe: ctx.B } },
  };
  const json = { meta, scenarios: scenarios.map((s) => ({ name: s.name, title: s.title })), metrics: rows, caseFailures, missing };
  writeFileSync(`${prefix}.json`, `${JSON.stringify(json, (k, v) => (v === Infinity ? 'Infinity' : v), 2)}\n`);

  writeOutputs(json, prefix, full && !opts.out);
  log(`total time ${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s; load average at start ${load0[0].toFixed(2)}, at end ${load1[0].toFixed(2)}`);
  if (load0[0] > 0.5 * os.cpus().length) log(`note: the load average was high at start (${load0[0].toFixed(2)} on ${os.cpus().length} CPUs): figures are noisy`);
  if (missing.length) {
    for (const m of missing) log(`NO NUMBERS: ${m}`);
    if (opts.quick) process.exit(1);
  }
}


/** Writes <prefix>.svg and .md from a run's JSON (and the README's targets table when asked). */
function writeOutputs(json, prefix, updateReadme) {
  const { meta } = json;
  const groups = json.scenarios.map((s) => ({
    title: s.title,
    rows: json.metrics.filter((r) => r.scenario === s.name && !r.info).map((r) => ({
      label: `${r.label}${r.unit ? ` [${r.unit}]` : ''}`, ratio: r.ratio, target: r.target, met: r.met, better: r.better,
      failed: r.failed.b || r.failed.a,
      zero: r.a?.median === 0,
    })),
  }));
  writeFileSync(`${prefix}.svg`, renderSvg({
    title: `cluster-rs bench: ${meta.modules.B.name} / ${meta.modules.A.name}`,
    subtitle: `node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel ?? '?'}), ${meta.date.slice(0, 16).replace('T', ' ')} UTC, ${meta.rounds} round(s)${meta.quick ? ' (quick)' : ''}, ${Math.round(meta.seconds)} s, load avg at start ${meta.loadavgStart[0].toFixed(2)}${meta.packageCommit ? `, commit ${meta.packageCommit}${meta.packageDirty ? ' + work tree' : ''}` : ''}`,
    groups,
    bLabel: meta.modules.B.name,
  }));
  writeFileSync(`${prefix}.md`, `${fullMarkdown(json)}\n`);
  log(`wrote ${['json', 'svg', 'md'].map((e) => path.relative(process.cwd(), `${prefix}.${e}`)).join(', ')}`);
  if (updateReadme) {
    // The README's targets table follows the latest full run.
    const readmePath = path.join(BENCH_DIR, 'README.md');
    try {
      const updated = spliceReadme(readFileSync(readmePath, 'utf8'), targetsMarkdown(json));
      if (updated) {
        writeFileSync(readmePath, updated);
        log(`updated the targets table in ${path.relative(process.cwd(), readmePath)}`);
      }
    } catch { /* no README */ }
  }
}

/** --render <file.json>: re-reads a run, re-applies targets.json, rewrites its .svg/.md (and the
 * README's table for results/latest.json). */
function render(file) {
  const json = JSON.parse(readFileSync(file, 'utf8'), (k, v) => (v === 'Infinity' ? Infinity : v));
  for (const m of json.metrics) {
    m.target = m.info ? null : targetFor(m.id);
    m.met = targetMet(m.target, m);
  }
  const prefix = file.replace(/\.json$/, '');
  writeFileSync(`${prefix}.json`, `${JSON.stringify(json, (k, v) => (v === Infinity ? 'Infinity' : v), 2)}\n`);
  writeOutputs(json, prefix, path.resolve(file) === path.join(RESULTS_DIR, 'latest.json'));
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.stderr.write(`bench: interrupted (${sig})\n`);
    process.exit(130);
  });
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack || err}\n`);
  process.exit(2);
});
