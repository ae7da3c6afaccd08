// The launcher (bin/cluster-rs.js) runs an unmodified server script on N workers, reloads on
// SIGHUP, restarts crashed workers with --respawn, and on a terminal-style Ctrl-C (SIGINT to
// its process group, which its workers are not in) drains them and exits 0. Bad arguments: one
// line on stderr, exit 2. Also: `node -r register.js` and `node --import register.mjs` swap the
// package in for the built-in in programs that do not know it, and the ESM entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fixturesDir } from './fixtures/harness.mjs';

const ROOT = path.resolve(fileURLToPath(import.meta.url), '../..');
const BIN = path.join(ROOT, 'bin', 'cluster-rs.js');
const APP = path.join(fixturesDir, 'beyond-app.js');

function pgidOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

function get(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve(body.trim()));
    }).on('error', reject);
  });
}

// Starts the launcher in a process group of its own (like a shell job); `waitFor(re)` resolves
// with the first stderr line matching re.
function launch(args) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  const waiters = [];
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d;
    for (const w of [...waiters]) {
      const m = w.re.exec(stderr.slice(w.from));
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stdout.resume();
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    exited,
    get stderr() { return stderr; },
    mark() { return stderr.length; },
    waitFor(re, from = 0, ms = 10000) {
      return new Promise((resolve, reject) => {
        const m = re.exec(stderr.slice(from));
        if (m) return resolve(m);
        const t = setTimeout(() => reject(new Error(`no ${re} in:\n${stderr}`)), ms);
        waiters.push({ re, from, resolve: (x) => { clearTimeout(t); resolve(x); } });
        return undefined;
      });
    },
  };
}

test('the launcher starts, reloads, restarts and stops an unmodified server', { timeout: 28000 }, async () => {
  const l = launch(['-w', '2', '--respawn', '--grace-ms', '3000', APP]);
  const workerPids = new Set();
  try {
    const [, port] = await l.waitFor(/listening on 127\.0\.0\.1:(\d+)[\s\S]*listening on 127\.0\.0\.1:\d+/);
    const pids = new Set();
    for (let i = 0; i < 6; i++) pids.add(await get(port));
    assert.equal(pids.size, 2, 'both workers answer');
    for (const p of pids) workerPids.add(Number(p));
    // Each worker leads its own process group; the launcher's group holds only the launcher.
    const launcherPgid = pgidOf(l.child.pid);
    for (const p of pids) {
      assert.equal(pgidOf(Number(p)), Number(p));
      assert.notEqual(pgidOf(Number(p)), launcherPgid);
    }

    let from = l.mark();
    process.kill(l.child.pid, 'SIGHUP');
    await l.waitFor(/reload done: 2 worker\(s\) replaced/, from);
    const after = new Set();
    for (let i = 0; i < 6; i++) after.add(await get(port));
    assert.equal(after.size, 2);
    for (const p of after) {
      assert.ok(!pids.has(p), 'new workers after the reload');
      workerPids.add(Number(p));
    }

    from = l.mark();
    const victim = Number([...after][0]);
    process.kill(victim, 'SIGKILL');
    const [, fresh] = await l.waitFor(/restarted as worker (\d+)/, from);
    await l.waitFor(new RegExp(`worker ${fresh} \\(pid (\\d+)\\) listening`), from);

    // Ctrl-C in a terminal signals the foreground process group: the launcher's only.
    from = l.mark();
    process.kill(-l.child.pid, 'SIGINT');
    const { code } = await l.exited;
    assert.equal(code, 0, l.stderr);
    assert.match(l.stderr.slice(from), /SIGINT: shutting down/);
    assert.match(l.stderr.slice(from), /all workers stopped/);
    // Drained (exit code 0), not interrupted by the SIGINT.
    assert.equal((l.stderr.slice(from).match(/exited with code 0/g) || []).length, 2, l.stderr);
    for (const pid of workerPids) assert.ok(!alive(pid), `worker ${pid} still running`);
  } finally {
    try { process.kill(-l.child.pid, 'SIGKILL'); } catch { /* gone */ }
    for (const pid of workerPids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
});

test('bad launcher arguments: one line on stderr, exit 2', () => {
  for (const [args, re] of [
    [['--policy', 'fastest', APP], /^cluster-rs: unknown policy 'fastest' \(expected one of: rr, none, reuseport, least-conn, sticky\)/],
    [['-w', '-1', APP], /^cluster-rs: -w must be at least 1, not -1/],
    [['--workers=0', APP], /^cluster-rs: --workers must be at least 1/],
    [['--grace-ms', 'soon', APP], /^cluster-rs: --grace-ms must be a whole number/],
    [[path.join(fixturesDir, 'no-such-app.js')], /^cluster-rs: cannot find script '.*no-such-app\.js'/],
    [[], /^cluster-rs: no script given/],
    [['--bogus', APP], /^cluster-rs: unknown option '--bogus'/],
  ]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /usage: cluster-rs \[options\] <script>/);
});

test('node -r register.js swaps cluster-rs in for require("cluster")', { timeout: 15000 }, () => {
  const r = spawnSync(process.execPath, ['-r', path.join(ROOT, 'register.js'), path.join(fixturesDir, 'beyond-register-app.js')],
                      { encoding: 'utf8', timeout: 12000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    rs: true, reload: 'function', sameAsNodeCluster: true,
    worker: { rsInWorker: false, isWorker: true }, workerExit: 0,
  });
});

test('node --import register.mjs swaps it in for import from "node:cluster"', { timeout: 15000 }, () => {
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'register.mjs')).href,
                                         path.join(fixturesDir, 'beyond-register-app.mjs')],
                      { encoding: 'utf8', timeout: 12000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    rs: true, sameAsRequire: true,
    named: { fork: true, reload: 'function', SCHED_STICKY: 103, workers: true }, workerExit: 0,
  });
});

test('the ESM entry has the default and the named exports', async () => {
  const esm = await import('../index.mjs');
  const cjs = createRequire(import.meta.url)('../index.js');
  assert.equal(esm.default, cjs);
  for (const name of ['fork', 'setupPrimary', 'setupMaster', 'disconnect', 'reload', 'shutdown', 'stats', 'Worker', 'workers']) {
    assert.equal(esm[name], cjs[name], name);
  }
  assert.equal(esm.isPrimary, true);
  assert.equal(esm.SCHED_REUSEPORT, 101);
  assert.equal(esm.schedulingPolicy, cjs.schedulingPolicy);
  assert.equal(typeof esm.on, 'function');
});
