// Advanced serialization both ways: Map, Set, Date, BigInt, Buffer, every typed array,
// DataView, cycles and shared references, sparse arrays, RegExp, boxed primitives, lone
// surrogates... sent by the primary and by the worker, each echoed by the other side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

test('advanced values arrive intact in both directions, as with the built-in', { timeout: 20000 }, async () => {
  const { builtin, rs } = await runBoth('serialization-values.js', []);
  assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
  assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
  const out = rs.json;
  for (const list of ['toWorker', 'echoedToWorker', 'echoedToPrimary', 'fromWorker']) {
    assert.ok(out[list].length >= 35, list);
    out[list].forEach((ok, i) => assert.equal(ok, true, `${list}[${i}]: ${ok}`));
  }
  for (const ids of ['identities', 'identitiesFromWorker', 'workerIdentities']) {
    assert.deepEqual(out[ids], { cyclicSelf: true, sharedRefs: true }, ids);
  }
  assert.deepEqual(rs.json, builtin.json);
});
