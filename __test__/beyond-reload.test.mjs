// Rolling reload under a steady HTTP load (connection per request, 127.0.0.1, bounded) drops no
// request, under round-robin and under reuseport; shutdown() drains and resolves. Bad arguments
// of the new APIs throw Node's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { runFixture, describeRun } from './fixtures/harness.mjs';

// `net` runs the app as a bare net.Server: Node 26's http.Server.close() resets connections a
// reuseport worker accepted but had not read yet (nodejs/node#63470; beyond-reuseport.test.mjs),
// which no primary can prevent; the bare server shows the reload itself drops nothing there.
const node26 = Number(process.versions.node.split('.')[0]) >= 26 &&
  'Node 26 http.Server.close() resets accepted, unread connections (nodejs/node#63470); see docs/beyond-builtin.md';
for (const [policy, app] of [['rr', 'http'], ['reuseport', 'http'], ['reuseport', 'net']]) {
  const skip = policy === 'reuseport' && app === 'http' && node26;
  test(`reload replaces every worker under load with zero failed requests (${policy}, ${app} server)`, { timeout: 25000, skip }, async () => {
    const env = app === 'net' ? { APP_RAW: '1' } : {};
    const run = await runFixture('beyond-reload.js', [policy, '2'], { env });
    const out = run.json;
    assert.ok(out && !out.error, describeRun(run));
    assert.equal(out.http.failed, 0, `failed requests: ${JSON.stringify(out.http.errors)}`);
    assert.ok(out.http.ok > 200, `load too small: ${out.http.ok}`);
    assert.deepEqual(out.initial, [1, 2]);
    assert.deepEqual(out.rounds[0].replaced, [{ old: 1, new: 3 }, { old: 2, new: 4 }]);
    assert.deepEqual(out.rounds[1].replaced, [{ old: 3, new: 5 }, { old: 4, new: 6 }]);
    assert.ok(out.rounds.every((r) => r.servedDuring > 0), 'requests were served during each reload');
    assert.deepEqual(out.final, [5, 6]);
    assert.equal(out.pidsServing, 6, 'every generation served requests');
    // Old workers were disconnected, none killed; shutdown disconnected the last two.
    assert.equal(out.exits.length, 6);
    assert.ok(out.exits.every((e) => e.code === 0 && e.ead === true), JSON.stringify(out.exits));
    assert.deepEqual(out.shutdown, { workers: 2, killed: 0 });
    assert.equal(out.workersAfter, 0);
  });
}

test('the new APIs reject bad arguments with Node error codes', async () => {
  const require = createRequire(import.meta.url);
  const cluster = require('../index.js');
  const before = cluster.settings;
  for (const [value, code] of [
    ['yes', 'ERR_INVALID_ARG_TYPE'],
    [42, 'ERR_INVALID_ARG_TYPE'],
    [{ maxRestarts: -1 }, 'ERR_INVALID_ARG_VALUE'],
    [{ windowMs: 0 }, 'ERR_INVALID_ARG_VALUE'],
    [{ backoffMs: 1.5 }, 'ERR_INVALID_ARG_VALUE'],
    [{ backoffMs: '10' }, 'ERR_INVALID_ARG_TYPE'],
  ]) {
    assert.throws(() => cluster.setupPrimary({ respawn: value }), { code }, JSON.stringify(value));
  }
  assert.equal(cluster.settings, before, 'a rejected setupPrimary changes nothing');
  await assert.rejects(cluster.reload({ timeout: -5 }), { code: 'ERR_INVALID_ARG_VALUE' });
  await assert.rejects(cluster.reload('soon'), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(cluster.reload({ readyTimeout: 0 }), { code: 'ERR_INVALID_ARG_VALUE' });
  await assert.rejects(cluster.shutdown({ timeout: '1' }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(cluster.shutdown({ timeout: NaN }), { code: 'ERR_INVALID_ARG_VALUE' });
  // With no workers both settle at once.
  assert.deepEqual(await cluster.reload(), { replaced: [] });
  assert.deepEqual(await cluster.shutdown({ timeout: Infinity }), { workers: 0, killed: 0 });
  cluster.setupPrimary({ respawn: true });
  assert.equal(cluster.settings.respawn, true);
  cluster.setupPrimary({ respawn: false });
  const stats = cluster.stats();
  assert.deepEqual(Object.keys(stats), ['policy', 'uptimeMs', 'workers', 'totals']);
  assert.equal(stats.policy, 'rr');
  assert.deepEqual(stats.workers, []);
  assert.equal(cluster.SCHED_REUSEPORT, 101);
  assert.equal(cluster.SCHED_LEAST_CONN, 102);
  assert.equal(cluster.SCHED_STICKY, 103);
});
