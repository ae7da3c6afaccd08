// 200 listen/close cycles in one worker leave the primary's fd count where it was, under
// round-robin and SCHED_NONE, and the fds do not pile up meanwhile either (a per-listener fd
// released only when the garbage collector gets to the listener object would). The built-in
// runs alongside as the reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

for (const policy of ['rr', 'none']) {
  test(`200 listen(0)/close cycles: no fd growth in the primary (${policy})`, { timeout: 60000 }, async (t) => {
    const both = await runBoth('distribution-cycles.js', ['200'], {
      env: { NODE_CLUSTER_SCHED_POLICY: policy },
      timeout: 45000,
    });
    for (const impl of ['builtin', 'rs']) {
      const r = both[impl];
      const out = r.json;
      assert.ok(out && out.done, `${impl}: ${describeRun(r)}`);
      t.diagnostic(`${impl}: fds ${out.fdsBefore} -> peak ${out.fdsPeak} -> ${out.fdsAfter} in ${out.ms} ms`);
      assert.equal(out.served, 4, `${impl}: every probed server answered`);
      assert.ok(out.fdsAfter <= out.fdsBefore + 3, `${impl}: fds ${out.fdsBefore} -> ${out.fdsAfter}: ${out.newFds}`);
      assert.ok(out.fdsPeak <= out.fdsBefore + 5, `${impl}: fds peaked at ${out.fdsPeak} (from ${out.fdsBefore})`);
    }
  });
}
