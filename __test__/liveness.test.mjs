// Loop liveness matches the built-in: a connected worker keeps the primary alive, unref() on
// the process alone does not release it, unref() on process and channel does, and the
// primary exits by itself once the last worker is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

const WORKER_LIFE_MS = 800;

test('the primary exits by itself when its last worker exits', { timeout: 30000 }, async () => {
  const run = await runFixture('liveness.js', ['natural']);
  assert.ok(run.json, describeRun(run));
  assert.equal(run.code, 0);
  assert.equal(run.timedOut, false);
  assert.deepEqual(run.json.seen, ['exit']);
  assert.ok(run.json.ms >= WORKER_LIFE_MS - 100, `lived ${run.json.ms} ms`);
});

for (const scenario of ['unref-process', 'unref-channel', 'unref-both']) {
  test(`${scenario}: the primary waits (or not) as with the built-in`, { timeout: 30000 }, async () => {
    const { builtin, rs } = await runBoth('liveness.js', [scenario]);
    assert.ok(builtin.json, describeRun(builtin));
    assert.ok(rs.json, describeRun(rs));
    const waited = (r) => r.json.ms >= WORKER_LIFE_MS - 100;
    assert.equal(waited(rs), waited(builtin), `built-in ${builtin.json.ms} ms, ours ${rs.json.ms} ms`);
    assert.equal(waited(rs), scenario !== 'unref-both');
  });
}

test('a worker whose primary left without it still goes away', { timeout: 30000 }, async () => {
  const run = await runFixture('liveness.js', ['unref-both']);
  assert.ok(run.json, describeRun(run));
  const { pid } = run.json;
  const deadline = Date.now() + 5000;
  let alive = true;
  while (alive && Date.now() < deadline) {
    try {
      process.kill(pid, 0);
      await new Promise((r) => setTimeout(r, 50));
    } catch {
      alive = false;
    }
  }
  assert.equal(alive, false, `worker ${pid} outlived its primary`);
});
