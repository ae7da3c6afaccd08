// A spawn that fails after fork (missing cwd) is an async 'error' on the worker, shaped and
// sequenced as with the built-in, and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

test('a missing cwd gives an async ENOENT error and no exit, as with the built-in', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('spawn-error.js');
  assert.ok(rs.json, describeRun(rs));
  assert.deepEqual(rs.json, builtin.json);
  assert.equal(rs.json.error.code, 'ENOENT');
  assert.equal(rs.json.error.sync, false);
  assert.ok(!rs.json.events.includes('exit'));
  assert.equal(rs.code, 0);
});
