#!/usr/bin/env node
// Runs Node's own cluster tests (test/{parallel,sequential}/*cluster*.js of the running Node line)
// against this package, swapped in for the built-in `cluster` by scripts/compat/preload.cjs.
// See docs/compat-runner.md.
//
//   node scripts/node-compat.mjs [--builtin] [--node <path>] [--filter <substr>] [-j <n>] [--list-failures]
//
// Exit: 0 when every test matched its expectation (__test__/node-compat/expected-failures-v<major>.txt),
// 1 when one did not, 2 when the run could not start (no test tree, bad arguments).

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNodeTests, SetupError } from './compat/fetch-node-tests.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PRELOAD = path.join(REPO, 'scripts', 'compat', 'preload.cjs');
const PKG_ENTRY = path.join(REPO, 'index.js');
const LEFTOVER_GRACE_MS = 2_000;
const LOG_TAIL_LINES = 30;
// These skip themselves as root (privileged ports): run them unprivileged so EACCES is exercised.
const UNPRIVILEGED_TESTS = new Set([
  'test-cluster-bind-privileged-port.js',
  'test-cluster-shared-handle-bind-privileged-port.js',
]);
const NOBODY = 65534;
// Variables a test must not inherit from whoever runs the suite.
const SCRUBBED_ENV = [
  'NODE_UNIQUE_ID', 'NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', 'NODE_CLUSTER_SCHED_POLICY',
  'NODE_TEST_DIR', 'TEST_SERIAL_ID', 'TEST_THREAD_ID', 'NODE_SKIP_FLAG_CHECK', 'NODE_COMMON_PORT',
  'CLUSTER_RS_COMPAT_PARENT',
];

const USAGE = `usage: node scripts/node-compat.mjs [--builtin] [--node <path>] [--filter <substring>] [-j <n>] [--list-failures] [--timeout <s>]
  --builtin        map cluster to the built-in module (checks the harness itself)
  --node <path>    run under another Node binary (the test tree follows its version)
  --filter <s>     run only tests whose path contains <s>
  -j <n>           parallel/ tests run at a time (default 2; sequential/ always runs alone)
  --list-failures  print the failing tests in expected-failures format at the end
  --timeout <s>    per-test timeout in seconds (default 60)
env: NODE_TEST_DIR=<node checkout>/test uses that tree instead of fetching Debian's`;

function die(message, code = 2) {
  console.error(`node-compat: error: ${message}`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { builtin: false, node: process.execPath, filter: null, jobs: 2, listFailures: false, timeout: 60 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) die(`${flag} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (flag === '--builtin') opts.builtin = true;
    else if (flag === '--node') opts.node = ((v) => (v.includes('/') ? path.resolve(v) : v))(value()); // tests run with cwd = the tree
    else if (flag === '--filter') opts.filter = value();
    else if (flag === '-j' || flag === '--jobs') opts.jobs = Number(value());
    else if (/^-j\d+$/.test(flag)) opts.jobs = Number(flag.slice(2));
    else if (flag === '--list-failures') opts.listFailures = true;
    else if (flag === '--timeout') opts.timeout = Number(value());
    else if (flag === '-h' || flag === '--help') { console.log(USAGE); process.exit(0); }
    else die(`unknown argument ${arg}\n${USAGE}`);
  }
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) die('-j needs a positive integer');
  if (!(opts.timeout > 0)) die('--timeout needs a positive number of seconds');
  return opts;
}

function nodeVersion(bin) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const res = spawnSync(bin, ['-p', 'process.version'], { encoding: 'utf8', env });
  const version = res.stdout?.trim();
  if (res.status !== 0 || !/^v\d+\.\d+\.\d+/.test(version || '')) die(`cannot run ${bin} -p process.version`);
  return version;
}

function findTestDir(major) {
  const hint = `set NODE_TEST_DIR to the test/ directory of a Node v${major}.x source checkout ` +
    `(e.g. NODE_TEST_DIR=~/node-v${major}/test npm run test:node-compat)`;
  if (process.env.NODE_TEST_DIR) {
    const dir = path.resolve(process.env.NODE_TEST_DIR);
    if (!fs.existsSync(path.join(dir, 'common', 'index.js')) || !fs.existsSync(path.join(dir, 'parallel'))) {
      die(`NODE_TEST_DIR=${dir} is not a Node test/ directory (no common/index.js and parallel/); ${hint}`);
    }
    return dir;
  }
  try {
    return ensureNodeTests(major);
  } catch (err) {
    if (!(err instanceof SetupError)) throw err;
    die(`cannot get Node's test/ tree (${err.message}); ${hint}`);
  }
}

function listTests(testDir, filter) {
  const tests = [];
  for (const kind of ['parallel', 'sequential']) {
    let names = [];
    try { names = fs.readdirSync(path.join(testDir, kind)); } catch { /* absent */ }
    for (const name of names.filter((n) => n.includes('cluster') && n.endsWith('.js')).sort()) {
      const id = `${kind}/${name}`;
      if (!filter || id.includes(filter)) tests.push({ id, kind, name, file: path.join(testDir, kind, name) });
    }
  }
  return tests;
}

function readExpectations(file) {
  const expected = new Map();
  if (!fs.existsSync(file)) return expected;
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const hash = line.indexOf('#');
    const name = (hash >= 0 ? line.slice(0, hash) : line).trim();
    expected.set(path.basename(name), hash >= 0 ? line.slice(hash + 1).trim() : '');
  }
  return expected;
}

// Same parsing as Node's test/common parseTestFlags: the first `// Flags: --...` in 1500 bytes.
function testFlags(file) {
  const head = fs.readFileSync(file, 'utf8').slice(0, 1500);
  const m = /\/\/ Flags:\s+(--[^\r\n]*)/.exec(head);
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every process a test starts carries CLUSTER_RS_COMPAT_TAG in its env, and
// the test runs in its own process group. After the test (or its timeout) anything tagged, in
// the group, or descending from those is killed.

function procTable() {
  const table = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), { state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) });
    } catch { /* gone */ }
  }
  return table;
}

function hasTag(pid, tag) {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`CLUSTER_RS_COMPAT_TAG=${tag}`);
  } catch {
    return false;
  }
}

function processesOf(tag, pgid) {
  const table = procTable();
  const found = new Set();
  for (const [pid, p] of table) {
    if (pid === process.pid || p.state === 'Z') continue;
    if (p.pgrp === pgid || hasTag(pid, tag)) found.add(pid);
  }
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of table) {
      if (!found.has(pid) && pid !== process.pid && p.state !== 'Z' && found.has(p.ppid)) { found.add(pid); grew = true; }
    }
  }
  return [...found];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits briefly for stragglers to exit by themselves, then SIGKILLs them. Returns how many. */
async function reapLeftovers(tag, pgid) {
  const deadline = Date.now() + LEFTOVER_GRACE_MS;
  let left = processesOf(tag, pgid);
  while (left.length && Date.now() < deadline) {
    await sleep(100);
    left = processesOf(tag, pgid);
  }
  for (const pid of left) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (let i = 0; i < 20 && processesOf(tag, pgid).length; i++) await sleep(50);
  return left.length;
}

// ---------------------------------------------------------------------------------------------

const running = new Map(); // tag -> pgid, for Ctrl-C

function readEvents(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { /* none */ }
  const events = [];
  for (const line of text.split('\n')) {
    try { if (line) events.push(JSON.parse(line)); } catch { /* torn line */ }
  }
  return events;
}

/** Why the preload log shows the test did not really run against the package, or null. */
function checkEvents(events, mainPid, mode) {
  const primaries = new Map(events.filter((e) => e.role === 'primary').map((e) => [e.pid, e]));
  if (!primaries.has(mainPid)) return 'the preload did not run in the test process';
  const broken = [...primaries.values()].find((e) => mode === 'package' && !e.loaded);
  if (broken) return `the package failed to load in pid ${broken.pid}: ${broken.error || 'unknown error'}`;
  for (const w of events.filter((e) => e.role === 'worker')) {
    // ppid names the primary unless the primary exited before the worker's preload ran (the
    // worker was reparented); then the env the primary's preload set names it.
    const parent = primaries.get(w.ppid) || primaries.get(w.envParent);
    if (!parent) return `worker ${w.pid} was forked by pid ${w.ppid}, which never ran the preload (the built-in cluster forked it)`;
    if (mode === 'package' && !parent.loaded) return `worker ${w.pid} was forked by pid ${parent.pid}, which never loaded the package`;
  }
  return null;
}

/**
 * A world-readable copy of what the unprivileged tests need: the package (entry, lib, loader,
 * addon), the preload at its usual place relative to the package, Node's test/common and the
 * test files, and the node binary (hard-linked when possible). Returns where things are.
 */
function stageForNobody(tmpBase, treeRoot, nodeBin) {
  const dir = path.join(tmpBase, 'stage');
  const pkg = path.join(dir, 'pkg');
  const copy = (from, to) => fs.cpSync(from, to, { recursive: true, dereference: true });
  fs.mkdirSync(path.join(pkg, 'scripts', 'compat'), { recursive: true });
  for (const entry of fs.readdirSync(REPO)) {
    if (/^(index\.js|index\.mjs|package\.json|binding\.js|register\.js|.*\.node)$/.test(entry)) {
      copy(path.join(REPO, entry), path.join(pkg, entry));
    }
  }
  copy(path.join(REPO, 'lib'), path.join(pkg, 'lib'));
  copy(PRELOAD, path.join(pkg, 'scripts', 'compat', 'preload.cjs'));
  const tree = path.join(dir, 'tree');
  copy(path.join(treeRoot, 'test', 'common'), path.join(tree, 'test', 'common'));
  for (const kind of ['parallel', 'sequential']) fs.mkdirSync(path.join(tree, 'test', kind), { recursive: true });
  const node = path.join(dir, 'node');
  try { fs.linkSync(nodeBin, node); } catch { fs.copyFileSync(nodeBin, node); }
  fs.chmodSync(node, 0o755);
  const events = path.join(dir, 'events');
  fs.mkdirSync(events);
  fs.chmodSync(events, 0o777);
  for (const d of [dir, pkg, tree]) fs.chmodSync(d, 0o755);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return {
    treeRoot: tree,
    preload: path.join(pkg, 'scripts', 'compat', 'preload.cjs'),
    node,
    events,
    testFile(test) {
      const target = path.join(tree, 'test', test.kind, path.basename(test.file));
      if (!fs.existsSync(target)) {
        fs.copyFileSync(test.file, target);
        fs.chmodSync(target, 0o644);
      }
      return target;
    },
  };
}

async function runTest(test, slot, ctx) {
  const { opts, mode, logDir, tmpRoots, runId, stage } = ctx;
  const tag = `${runId}.${test.id}`;
  const base = path.join(logDir, test.kind, test.name);
  fs.mkdirSync(path.dirname(base), { recursive: true });
  const logFile = `${base}.log`;
  const unprivileged = UNPRIVILEGED_TESTS.has(test.name) && process.getuid?.() === 0;
  // Unprivileged tests write their events where uid 65534 can reach (the stage).
  const eventsFile = unprivileged ? path.join(stage.events, `${test.name}.events`) : `${base}.events`;
  fs.writeFileSync(eventsFile, '');
  fs.chmodSync(eventsFile, 0o666);
  const treeRoot = unprivileged ? stage.treeRoot : ctx.treeRoot;
  const preload = unprivileged ? stage.preload : PRELOAD;
  const testFile = unprivileged ? stage.testFile(test) : test.file;
  const env = { ...process.env };
  for (const key of SCRUBBED_ENV) delete env[key];
  Object.assign(env, {
    TEST_THREAD_ID: String(slot),
    NODE_TEST_DIR: unprivileged ? tmpRoots.nobody : tmpRoots.root, // where test/common puts .tmp.<id>
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--require ${quoteOption(preload)}`].filter(Boolean).join(' '),
    CLUSTER_RS_COMPAT_MODE: mode,
    CLUSTER_RS_COMPAT_LOG: eventsFile,
    CLUSTER_RS_COMPAT_TAG: tag,
  });
  if (unprivileged) env.HOME = tmpRoots.nobody;

  const args = ['--require', preload, ...testFlags(test.file), testFile];
  const [cmd, argv] = unprivileged
    ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', stage.node, ...args]]
    : [opts.node, args];
  fs.writeFileSync(logFile, `# ${[cmd, ...argv].join(' ')}\n# cwd ${treeRoot}, TEST_THREAD_ID=${slot}, mode ${mode}\n`);
  const fd = fs.openSync(logFile, 'a');

  const started = Date.now();
  let timedOut = false;
  let child;
  const exit = await new Promise((resolve) => {
    try {
      child = spawn(cmd, argv, { cwd: treeRoot, env, detached: true, stdio: ['ignore', fd, fd] });
    } catch (err) {
      resolve({ error: err });
      return;
    }
    running.set(tag, child.pid);
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, opts.timeout * 1000);
    child.on('error', (error) => { clearTimeout(timer); resolve({ error }); });
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal }); });
  });
  fs.closeSync(fd);
  const seconds = (Date.now() - started) / 1000;
  const leftovers = child?.pid ? await reapLeftovers(tag, child.pid) : 0;
  running.delete(tag);

  const output = fs.readFileSync(logFile, 'utf8');
  let reason = null;
  if (exit.error) reason = `could not start: ${exit.error.message}`;
  else if (timedOut) reason = `timed out after ${opts.timeout}s, process group killed`;
  else if (exit.signal) reason = `killed by ${exit.signal}`;
  else if (exit.code !== 0) reason = `exit code ${exit.code}`;
  const skipped = !reason && /^1\.\.0 # Skipped:/m.test(output);
  const harness = exit.error || skipped ? null : checkEvents(readEvents(eventsFile), child.pid, mode);
  if (harness) reason = reason ? `${reason}; ${harness}` : harness;

  const result = { test, seconds, leftovers, logFile, status: reason ? 'fail' : skipped ? 'skip' : 'pass', reason };
  if (skipped) result.skipReason = /^1\.\.0 # Skipped:\s*(.*)$/m.exec(output)[1];
  if (leftovers) fs.appendFileSync(logFile, `\n# node-compat: killed ${leftovers} process(es) left behind\n`);
  if (!reason) {
    fs.rmSync(logFile, { force: true });
    fs.rmSync(eventsFile, { force: true });
  }
  return result;
}

function quoteOption(p) {
  return /[\s"\\]/.test(p) ? `"${p.replace(/(["\\])/g, '\\$1')}"` : p;
}

/** Runs `tests` with `jobs` slots (TEST_THREAD_ID = slot number). */
async function runPool(tests, jobs, ctx, onResult) {
  const queue = [...tests];
  const results = [];
  const worker = async (slot) => {
    while (queue.length) {
      const test = queue.shift();
      const result = await runTest(test, slot, ctx);
      results.push(result);
      onResult(result);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tests.length) }, (_, slot) => worker(slot)));
  return results;
}

function tail(file, n) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const mode = opts.builtin ? 'builtin' : 'package';
  const version = nodeVersion(opts.node);
  const major = version.slice(1).split('.')[0];
  const testDir = findTestDir(major);
  const treeRoot = path.dirname(testDir);
  const tests = listTests(testDir, opts.filter);
  if (tests.length === 0) die(`no cluster tests in ${testDir}${opts.filter ? ` match --filter ${opts.filter}` : ''}`);

  const expectFile = path.join(REPO, '__test__', 'node-compat', `expected-failures-v${major}.txt`);
  const expected = opts.builtin ? new Map() : readExpectations(expectFile);
  const logDir = path.join(REPO, '.cache', 'node-compat-logs', `${version}${opts.builtin ? '-builtin' : ''}`);
  if (!opts.filter) fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });

  // Temp roots for test/common/tmpdir (NODE_TEST_DIR): one for root, one owned by nobody.
  const tmpBase = fs.mkdtempSync(path.join(os.tmpdir(), 'ncompat-'));
  fs.chmodSync(tmpBase, 0o755);
  const tmpRoots = { root: path.join(tmpBase, 'root'), nobody: path.join(tmpBase, 'nobody') };
  fs.mkdirSync(tmpRoots.root);
  fs.mkdirSync(tmpRoots.nobody);
  if (process.getuid?.() === 0) fs.chownSync(tmpRoots.nobody, NOBODY, NOBODY);

  // The unprivileged tests run from a staged copy (see stageForNobody): the clone, its .cache
  // and the node binary may sit below a directory uid 65534 cannot enter (mktemp dirs are 0700).
  const needsStage = process.getuid?.() === 0 && tests.some((t) => UNPRIVILEGED_TESTS.has(t.name));
  const stage = needsStage ? stageForNobody(tmpBase, treeRoot, opts.node) : null;

  const cleanup = () => fs.rmSync(tmpBase, { recursive: true, force: true });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      for (const [tag, pgid] of running) {
        try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
        for (const pid of processesOf(tag, pgid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      }
      cleanup();
      process.exit(130);
    });
  }

  console.log(`node-compat: ${tests.length} tests, Node ${version} (${opts.node}), tests from ${testDir}, ` +
    `cluster = ${opts.builtin ? 'built-in' : `package (${path.relative(process.cwd(), PKG_ENTRY) || PKG_ENTRY})`}`);
  if (!opts.builtin && !fs.existsSync(PKG_ENTRY)) console.log(`node-compat: warning: ${PKG_ENTRY} does not exist; every test will fail`);
  if (process.getuid?.() !== 0) console.log('node-compat: warning: not root, so the privileged-port tests skip themselves');

  const ctx = { opts, mode, logDir, treeRoot, tmpRoots, stage, runId: `${process.pid}.${Date.now()}` };
  const started = Date.now();
  const onResult = (r) => {
    const listed = expected.has(r.test.name);
    const word = r.status === 'fail' ? (listed ? 'XFAIL' : 'FAIL') : r.status === 'skip' ? 'SKIP' : (listed ? 'XPASS' : 'PASS');
    const notes = [
      r.reason,
      r.status === 'skip' && r.skipReason,
      r.leftovers && `left ${r.leftovers} process(es) behind, killed`,
    ].filter(Boolean).join('; ');
    console.log(`${word.padEnd(5)} ${r.seconds.toFixed(1).padStart(5)}s  ${r.test.id}${notes ? `  (${notes})` : ''}`);
  };
  const results = [
    ...await runPool(tests.filter((t) => t.kind === 'parallel'), opts.jobs, ctx, onResult),
    ...await runPool(tests.filter((t) => t.kind !== 'parallel'), 1, ctx, onResult), // alone: fixed ports
  ];
  cleanup();

  const failed = results.filter((r) => r.status === 'fail');
  const unexpected = failed.filter((r) => !expected.has(r.test.name));
  const fixed = results.filter((r) => r.status !== 'fail' && expected.has(r.test.name));
  const ran = new Set(tests.map((t) => t.name));
  const stale = opts.filter ? [] : [...expected.keys()].filter((name) => !ran.has(name));

  for (const r of unexpected) {
    console.log(`\n--- FAIL ${r.test.id}: ${r.reason}\n--- log: ${path.relative(process.cwd(), r.logFile)} (last ${LOG_TAIL_LINES} lines)`);
    console.log(tail(r.logFile, LOG_TAIL_LINES));
  }
  console.log('');
  if (unexpected.length) console.log(`unexpected failures (${unexpected.length}): ${unexpected.map((r) => r.test.name).join(' ')}`);
  if (fixed.length) console.log(`now passing, remove from ${path.relative(REPO, expectFile)} (${fixed.length}): ${fixed.map((r) => r.test.name).join(' ')}`);
  if (stale.length) console.log(`listed in ${path.relative(REPO, expectFile)} but not in the test tree: ${stale.join(' ')}`);
  const behind = results.filter((r) => r.leftovers);
  if (behind.length) console.log(`left processes behind (killed): ${behind.map((r) => `${r.test.name} (${r.leftovers})`).join(', ')}`);
  if (failed.length) console.log(`failure logs: ${path.relative(process.cwd(), logDir)}`);
  if (opts.listFailures && failed.length) {
    console.log(`\n# failing tests, in ${path.basename(expectFile)} format:`);
    for (const r of failed) console.log(`${r.test.name}  # ${expected.get(r.test.name) || r.reason.slice(0, 160)}`);
  }
  const ok = unexpected.length === 0 && fixed.length === 0;
  const skippedSelf = results.filter((r) => r.status === 'skip').length;
  console.log(`${ok ? 'all tests matched their expectations' : 'MISMATCH against expectations'}` +
    ` (${failed.length - unexpected.length} expected failures, ${skippedSelf} skipped themselves and count as passed)` +
    ` in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
  process.exitCode = ok ? 0 : 1;
}

await main();
