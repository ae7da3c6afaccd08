// Back-pressure: send() turns false past the same high-water mark as the built-in when the
// worker does not read (the message is still queued), and the opt-in
// setupPrimary({ maxQueuedBytes }) makes sends past it fail instead of queueing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

const splitSensitive = createRequire(import.meta.url)('../lib/node-line.js').advancedReaderStallsOnSplitPrefix();

test('send() returns false where the built-in does, and nothing is lost', { timeout: 20000 }, async () => {
  for (const mode of ['json', 'advanced']) {
    const { builtin, rs } = await runBoth('serialization-backpressure.js', ['hwm', mode]);
    assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
    assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
    const b = builtin.json;
    const r = rs.json;
    // The kernel's socket buffer, then 128 KiB queued: within one 64 KiB batch of the built-in.
    assert.ok(r.sentUntilFalse < 5000, `${mode}: send() never returned false`);
    const what = `${mode}: false after ${r.sentUntilFalse} sends, the built-in after ${b.sentUntilFalse}`;
    if (mode === 'advanced' && splitSensitive) {
      // The worker's reader stalls on split length prefixes, so the primary keeps its socket
      // buffer small for it (README, "Differences"): false comes sooner, never later, and
      // not before our own queue has taken 64 KiB (32 of these 2 KiB messages).
      assert.ok(r.sentUntilFalse <= b.sentUntilFalse + 32 && r.sentUntilFalse >= 32, what);
    } else {
      assert.ok(Math.abs(r.sentUntilFalse - b.sentUntilFalse) <= 32, what);
    }
    assert.equal(r.callbacks, r.sent, `${mode}: every send callback ran`);
    assert.deepEqual(r.worker, { count: r.sent, inOrder: true, first: 0, last: r.sent - 1 });
  }
});

for (const mode of ['json', 'advanced']) {
  test(`${mode}: maxQueuedBytes fails sends past the limit through the callback or 'error'`, { timeout: 20000 }, async () => {
    const run = await runFixture('serialization-backpressure.js', ['limit', mode]);
    const out = run.json;
    assert.ok(out, describeRun(run));
    const ok = out.callbackResults.ok;
    // The socket's buffer takes some, 64 KiB more may wait: then the sends fail.
    assert.ok(ok > 10 && ok < 300, `accepted ${ok}`);
    assert.equal(out.callbackResults.ERR_IPC_QUEUE_FULL, 300 - ok);
    assert.equal(out.okAfterFirstFailure, 0, 'once full, full until the worker reads');
    assert.equal(out.errorEvents, 60, "sends without a callback fail with 'error' on the worker");
    assert.deepEqual(out.errorCodes, ['ERR_IPC_QUEUE_FULL']);
    assert.ok(out.returnedFalse >= 280);
    assert.equal(out.afterDrain, 'ok', 'sends work again once the worker read its backlog');
    // Exactly the accepted messages arrived, in order (plus the one after the drain).
    assert.deepEqual(out.worker, { count: ok + 1, inOrder: true, first: 0, last: 1000 });
  });
}

test('maxQueuedBytes and maxFrameBytes are validated by fork()', { timeout: 20000 }, async () => {
  const run = await runFixture('serialization-backpressure.js', ['settings']);
  assert.ok(run.json, describeRun(run));
  assert.deepEqual(run.json.results, {
    'maxQueuedBytes=-1': 'ERR_OUT_OF_RANGE',
    'maxQueuedBytes=1.5': 'ERR_OUT_OF_RANGE',
    'maxQueuedBytes=1': 'ERR_INVALID_ARG_TYPE',
    'maxFrameBytes=0': 'ERR_OUT_OF_RANGE',
    'maxFrameBytes=big': 'ERR_INVALID_ARG_TYPE',
    'maxQueuedBytes=Infinity': 'forked',
    'maxFrameBytes=1048576': 'forked',
  });
});
