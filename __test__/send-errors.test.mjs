// send()/kill()/disconnect() errors: same class, code and message as the built-in, and a
// closed channel reports ERR_IPC_CHANNEL_CLOSED through the callback or the 'error' event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

test('send, kill and disconnect errors match the built-in', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('send-errors.js');
  assert.ok(builtin.json, describeRun(builtin));
  assert.ok(rs.json, describeRun(rs));
  assert.deepEqual(rs.json, builtin.json);
});

test('a send on a closed channel fails with ERR_IPC_CHANNEL_CLOSED', { timeout: 30000 }, async () => {
  const { rs } = await runBoth('send-errors.js');
  const out = rs.json;
  assert.ok(out, describeRun(rs));
  assert.equal(out['send on a closed channel with a callback'].returned, false);
  assert.equal(out.callbackError.code, 'ERR_IPC_CHANNEL_CLOSED');
  assert.equal(out.callbackError.message, 'Channel closed');
  // Without a callback it is an 'error' on the worker, after the synchronous
  // ERR_IPC_DISCONNECTED from the second process.disconnect().
  assert.deepEqual(out.syncErrors.map((e) => e.code), ['ERR_IPC_DISCONNECTED']);
  assert.deepEqual(out.errors.map((e) => e.code), ['ERR_IPC_DISCONNECTED', 'ERR_IPC_CHANNEL_CLOSED']);
  assert.equal(out['send(symbol)'].stackHead.startsWith('TypeError [ERR_INVALID_ARG_TYPE]: '), true);
});
