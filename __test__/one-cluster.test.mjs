// One cluster per process: a library that uses node:cluster itself, repeated requires, a
// second copy of this package and ESM imports all see the same object, workers and events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

test('a library using node:cluster directly sees our workers and events', { timeout: 30000 }, async () => {
  const run = await runFixture('one-cluster.js', [], { impl: 'rs' });
  const out = run.json;
  assert.ok(out, describeRun(run));
  assert.equal(out.sameObject, true);
  assert.equal(out.requireAgain, true);
  assert.equal(out.freshCopySameObject, true);
  assert.equal(out.notReinstalled, true, 'a second copy must not install again');
  assert.equal(out.marker, 'string');
  assert.equal(out.esmDefault, true);
  assert.equal(out.esmNamedFork, true);
  assert.equal(out.esmNamedWorkers, true);
  assert.equal(out.libSeesWorker, true);
  assert.deepEqual(out.fromWorker, { workerGetsBuiltin: true, isWorker: true });
  assert.deepEqual(out.libSeen.map((e) => e.name), ['fork', 'online', 'disconnect', 'exit']);
  assert.ok(out.libSeen.every((e) => e.id === 1));
});
