// cluster.disconnect(cb) follows the documentation: cb runs once every worker has
// disconnected and exited (the built-in runs it when the first one finishes), and
// asynchronously when there are no workers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

test('cluster.disconnect(cb) calls back after every worker has exited', { timeout: 30000 }, async () => {
  const run = await runFixture('cluster-disconnect.js');
  const out = run.json;
  assert.ok(out, describeRun(run));
  assert.deepEqual(out.events[0], { noWorkersCallback: true, sync: false });
  assert.deepEqual(out.events.slice(1), ['exit 1', 'exit 2', 'exit 3', 'callback']);
  assert.equal(out.workersRightAfterCall, 0, 'worker.disconnect() removes workers at once');
  assert.equal(out.workersAtCallback, 0);
});
