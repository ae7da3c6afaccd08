// Handle passing in both serialization modes, compared with the built-in: many sockets
// each way with large messages in between (one fd in flight per direction, every fd with
// its own message), every handle kind the built-in accepts (net.Socket with and without
// keepOpen, net.Server, dgram.Socket, raw TCP and UDP handles) and both back from the
// worker, and ERR_INVALID_HANDLE_TYPE for the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

async function same(args) {
  const { builtin, rs } = await runBoth('handles-pass.js', args);
  assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
  assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
  assert.deepEqual(rs.json, builtin.json);
  return rs.json;
}

for (const mode of ['json', 'advanced']) {
  test(`${mode}: 10 sockets each way, each paired with its own 100 KB message`, { timeout: 20000 }, async () => {
    const out = await same(['many-sockets', mode]);
    assert.deepEqual(out.back, new Array(10).fill(true));
    assert.deepEqual(out.clients, Array.from({ length: 10 }, (_, j) => `w${j}:true\np${j}:true\n`));
    assert.deepEqual(out.workerOrder, Array.from({ length: 10 }, (_, j) => [`plain ${j}`, `socket ${j}`]).flat());
  });

  // A Node 18 worker's listen(handle) for the net.Server among the kinds asks the primary (v18's
  // own behaviour, protocol.md §9), which answers EINVAL: that kind cannot arrive there.
  const v18 = Number(process.versions.node.split('.')[0]) < 20 && 'Node 18 workers query the primary for listen(handle)';
  test(`${mode}: every handle kind to the worker, and sockets back`, { timeout: 20000, skip: v18 }, async () => {
    const out = await same(['kinds', mode]);
    assert.equal(out.events.length, 17, JSON.stringify(out.events));
  });
}

test('anything else is ERR_INVALID_HANDLE_TYPE, thrown as by the built-in', { timeout: 20000 }, async () => {
  const out = await same(['invalid']);
  assert.equal(out.attempts['a plain object'].code, 'ERR_INVALID_HANDLE_TYPE');
  assert.equal(out.attempts['a Duplex stream'].code, 'ERR_INVALID_HANDLE_TYPE');
  assert.deepEqual(out.attempts['null (no handle)'], { returned: true });
});
