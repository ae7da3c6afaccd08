// Supervision: setupPrimary({ respawn }) restarts a worker killed from outside (not one the
// primary stopped), backs off, and gives up with 'crashloop'. Workers die with the primary:
// a kill -9 of the primary leaves none behind, even workers too busy to notice their channel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runFixture, describeRun, fixturesDir } from './fixtures/harness.mjs';

test('a worker killed with SIGKILL is restarted; primary-side kill and disconnect are not', { timeout: 20000 }, async () => {
  const run = await runFixture('beyond-respawn.js', ['kill9']);
  const out = run.json;
  assert.ok(out && !out.error, describeRun(run));
  assert.deepEqual(out.settingsRespawn, { backoffMs: 50 });
  assert.equal(out.respawns, 1, JSON.stringify(out.events));
  const respawn = out.events.find((e) => e.respawn);
  assert.equal(respawn.signalCode, 'SIGKILL');
  assert.equal(respawn.delayMs, 50);
  assert.equal(out.freshStats.restarts, 1);
  assert.equal(out.freshStats.state, 'listening');
  assert.equal(typeof out.freshStats.rss, 'number');
  assert.equal(out.workersAfterRespawn, 2);
  assert.equal(out.workersAtEnd, 0);
  assert.equal(out.totals.restarts, 1);
});

test('a crash loop backs off exponentially, then stops with a crashloop event', { timeout: 20000 }, async () => {
  const run = await runFixture('beyond-respawn.js', ['crashloop']);
  const out = run.json;
  assert.ok(out && !out.error, describeRun(run));
  const respawns = out.events.filter((e) => e.respawn);
  assert.deepEqual(respawns.map((e) => e.delayMs), [40, 80, 160]);
  assert.deepEqual(respawns.map((e) => e.restarts), [1, 2, 3]);
  const loop = out.events.find((e) => e.crashloop);
  assert.ok(loop, JSON.stringify(out.events));
  assert.equal(loop.maxRestarts, 3);
  assert.equal(loop.exitCode, 1);
  assert.equal(out.respawns, 3, 'no restart after the cutoff');
  assert.equal(out.workersAtEnd, 0);
});

function gone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z'); // a zombie is dead too
  } catch {
    return true;
  }
}

test('kill -9 of the primary leaves no worker behind', { timeout: 20000 }, async () => {
  const child = spawn(process.execPath, [path.join(fixturesDir, 'beyond-orphans.js')], {
    stdio: ['ignore', 'pipe', 'inherit'], detached: true,
  });
  let pids = null;
  try {
    const line = await new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.setEncoding('utf8').on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf.split('\n')[0]);
      });
      child.on('exit', (code) => reject(new Error(`primary exited early (${code})`)));
      setTimeout(() => reject(new Error('no pids after 10 s')), 10000);
    });
    pids = JSON.parse(line);
    assert.equal(pids.workers.length, 2);
    assert.ok(pids.workers.every((p) => !gone(p)), 'workers are running');
    process.kill(pids.primary, 'SIGKILL');
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !pids.workers.every(gone)) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(pids.workers.filter((p) => !gone(p)), [], 'orphaned workers');
  } finally {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    for (const p of pids?.workers ?? []) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
  }
});
