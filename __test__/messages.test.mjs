// User messages both ways, in both serialization modes: every value arrives intact in the
// worker (as Node's own worker code decodes it) and comes back intact to the primary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

for (const mode of ['json', 'advanced']) {
  test(`${mode} messages round-trip through a worker`, { timeout: 30000 }, async () => {
    const run = await runFixture('messages.js', [mode]);
    assert.ok(run.json, describeRun(run));
    const { count, callbacks, results } = run.json;
    assert.ok(count >= 10);
    assert.equal(results.length, count, 'every message came back');
    assert.equal(callbacks, count, 'every send callback ran without an error');
    for (const r of results) {
      assert.equal(r.workerSaw, true, `value #${r.i} looked different in the worker: ${r.got}`);
      assert.equal(r.roundTrip, true, `value #${r.i} changed on the way back`);
    }
  });
}

test('advanced mode carries Map, Set, Buffer, typed arrays, BigInt, Date and cycles', { timeout: 30000 }, async () => {
  const run = await runFixture('messages.js', ['advanced']);
  assert.ok(run.json, describeRun(run));
  // The advanced list is the JSON list plus ten values JSON cannot carry.
  assert.equal(run.json.count, 20);
  assert.ok(run.json.results.every((r) => r.roundTrip && r.workerSaw));
});
