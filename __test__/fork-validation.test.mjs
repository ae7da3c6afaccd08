// Invalid settings make fork() throw the same errors as the built-in (class, code, message),
// and a failed fork still uses up its worker id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

test('invalid fork/setupPrimary settings throw what the built-in throws', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('fork-errors.js');
  assert.ok(builtin.json, describeRun(builtin));
  assert.ok(rs.json, describeRun(rs));
  for (const [title, expected] of Object.entries(builtin.json.results)) {
    assert.deepEqual(rs.json.results[title], expected, title);
  }
  assert.deepEqual(Object.keys(rs.json.results), Object.keys(builtin.json.results));
});

test('the codes are the documented ones and ids are used up', { timeout: 30000 }, async () => {
  const { rs } = await runBoth('fork-errors.js');
  const r = rs.json.results;
  // Node 26 checks uid/gid with its generic int32 validation (a RangeError for 1.5).
  const major = Number(process.versions.node.split('.')[0]);
  assert.equal(r['uid is a fraction'].code, major >= 26 ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE');
  assert.equal(r['serialization is unknown'].code, 'ERR_INVALID_ARG_VALUE');
  assert.equal(r['stdio lacks ipc'].code, 'ERR_CHILD_PROCESS_IPC_REQUIRED');
  assert.equal(r['stdio has two ipc'].code, 'ERR_IPC_ONE_PIPE');
  assert.equal(r['inspectPort is null'].name, 'RangeError');
  assert.equal(r['inspectPort is 65536'].code, 'ERR_SOCKET_BAD_PORT');
  // 21 settings cases, the env case, then fork(undefined) succeeds with the next id.
  assert.equal(rs.json.lastId, 23);
});
