// Bytes a Node worker never writes (not JSON, an absurd frame length) cost the worker its
// channel, not the primary its life: 'error' on the worker, then disconnect and exit.
// A NODE_HANDLE that arrives without an fd is NACKed and dropped, as the built-in does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

test('a line that is not JSON drops the channel, not the primary', { timeout: 30000 }, async () => {
  const run = await runFixture('malformed.js', ['json-garbage']);
  assert.ok(run.json, describeRun(run));
  assert.equal(run.code, 0);
  assert.deepEqual(run.json.events, [
    { message: 'before the garbage' },
    { error: 'SyntaxError' },
    'disconnect',
    { exit: [0, null] },
  ]);
});

test('an oversized advanced frame drops the channel with ERR_IPC_FRAME_TOO_LARGE', { timeout: 30000 }, async () => {
  const run = await runFixture('malformed.js', ['oversized']);
  assert.ok(run.json, describeRun(run));
  assert.deepEqual(run.json.events, [
    { error: 'Error', code: 'ERR_IPC_FRAME_TOO_LARGE' },
    'disconnect',
    { exit: [0, null] },
  ]);
});

test('a NODE_HANDLE without an fd is NACKed and its message dropped', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('malformed.js', ['nack']);
  assert.ok(rs.json, describeRun(rs));
  assert.deepEqual(rs.json, builtin.json);
  // Node's worker code cannot handle a NACK it did not expect: it exits 1. No 'message'.
  assert.deepEqual(rs.json.events, ['disconnect', { exit: [1, null] }]);
});
