// cluster-rs used from a worker thread: the thread's end closes what the addon holds on that
// thread's loop (otherwise Node aborts the process), its workers leave, and the rest of the
// process, including the main thread's cluster, goes on, as with the built-in; and they are
// reaped, where the built-in leaves them as zombies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

test('a primary in a worker thread that ends: no abort, its workers leave and are reaped', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('worker-thread.js', [], { timeout: 25000 });
  assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
  assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
  assert.equal(rs.code, 0, describeRun(rs));
  assert.deepEqual(rs.json.threadWorker, { status: 200 });
  assert.equal(rs.json.threadError, undefined);
  assert.equal(rs.json.workerLeft, true, 'the thread\'s worker left with its channel');
  assert.equal(rs.json.workerReaped, true, 'and was reaped, not left a zombie');
  assert.equal(rs.json.mainThreadWorker, 'listening');
  assert.equal(rs.json.mainThreadWorkerExit, 0);
  assert.equal(builtin.json.workerLeft, true);
  // The same story as the built-in's, but for the reaping the built-in never does.
  const { pid: _b, workerReaped: _bz, ...b } = builtin.json;
  const { pid: _r, workerReaped: _rz, ...r } = rs.json;
  assert.deepEqual(r, b);
});
