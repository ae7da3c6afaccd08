// SCHED_LEAST_CONN and SCHED_STICKY (the primary accepts; Rust's scheduler picks the worker),
// and the policy names NODE_CLUSTER_SCHED_POLICY accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

test('least-conn sends new connections to the worker with the fewest open ones', { timeout: 20000 }, async () => {
  const run = await runFixture('beyond-policies.js', ['least-conn']);
  const out = run.json;
  assert.ok(out && !out.error, describeRun(run));
  assert.deepEqual(out.first, [3, 3], 'kept-alive connections alternate');
  // Worker 0's three connections closed: it gets the next three (round-robin would alternate).
  assert.deepEqual(out.next, [0, 0, 0]);
  assert.equal(out.policy, 'least-conn');
});

test('sticky keeps every client IP on one worker, and spreads IPs', { timeout: 20000 }, async () => {
  const run = await runFixture('beyond-policies.js', ['sticky']);
  const out = run.json;
  assert.ok(out && !out.error, describeRun(run));
  assert.equal(out.consistent, true);
  assert.ok(out.workersUsed >= 2, `8 client IPs all on one of 3 workers: ${out.workersUsed}`);
  assert.equal(out.policy, 'sticky');
});

for (const [name, value] of [['reuseport', 101], ['least-conn', 102], ['sticky', 103], ['rr', 2], ['none', 1], ['bogus', 2]]) {
  test(`NODE_CLUSTER_SCHED_POLICY=${name} gives policy ${value}`, { timeout: 20000 }, async () => {
    const run = await runFixture('beyond-policies.js', ['env'], { env: { NODE_CLUSTER_SCHED_POLICY: name } });
    assert.ok(run.json, describeRun(run));
    assert.equal(run.json.policy, value);
  });
}
