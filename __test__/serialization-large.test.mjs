// Large messages (1 MiB, 64 MiB) both ways and 10,000 small ones each way, in order, in
// both serialization modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

// On Node 18 in advanced mode this is also the test of the split-prefix rule (a Node 18
// worker's reader stalls on a length prefix split across reads: lib/node-line.js).
for (const mode of ['json', 'advanced']) {
  test(`${mode}: 10k small messages in order, 1 MiB and 64 MiB intact, both ways`, { timeout: 20000 }, async () => {
    const run = await runFixture('serialization-large.js', [mode], { timeout: 19000 });
    const out = run.json;
    assert.ok(out, describeRun(run));
    assert.equal(out.unexpected, undefined);
    assert.equal(out.workerSawInOrder, true, 'the worker got the 10k messages in order');
    assert.equal(out.echoedInOrder, 10000, 'all 10k echoes came back in order');
    assert.equal(out.fromWorkerInOrder, 10000, "the worker's own 10k arrived in order");
    assert.equal(out.big.length, 4);
    for (const b of out.big) {
      for (const [k, v] of Object.entries(b)) {
        if (typeof v === 'boolean') assert.equal(v, true, `${b.dir} ${b.size}: ${k}`);
      }
    }
    assert.deepEqual(out.big.map((b) => b.size), [1 << 20, 64 << 20, 1 << 20, 64 << 20]);
  });
}
