// Round-robin fairness: 4 workers, 2000 connections at most 20 at a time, counted per worker
// under the built-in and under cluster-rs (run one after the other, not to skew each other).
// Every worker's share is within ±20% of the mean for both, and cluster-rs is no less even
// than the built-in (max/min ratio, with slack).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { startFixture, stream } = require('./fixtures/distribution-client.js');

const WORKERS = 4;
const TOTAL = 2000;

async function measure(impl) {
  const pool = startFixture('distribution-pool.js', [String(WORKERS)], { impl, timeout: 60000 });
  try {
    const { port } = await pool.next((m) => m.ready);
    const started = Date.now();
    const results = await stream(port, { total: TOTAL, concurrency: 20 });
    const counts = {};
    for (const r of results) {
      assert.equal(r.kind, 'full', `${impl}: ${JSON.stringify(r)}`);
      const id = r.data.split(':')[0];
      counts[id] = (counts[id] || 0) + 1;
    }
    pool.send('quit');
    const { code } = await pool.exited;
    assert.equal(code, 0, `${impl}: ${pool.stderr}`);
    return { counts, ms: Date.now() - started };
  } finally {
    pool.kill();
  }
}

test(`${TOTAL} connections over ${WORKERS} round-robin workers: each within ±20% of the mean, as with the built-in`, { timeout: 120000 }, async (t) => {
  const ratios = {};
  for (const impl of ['builtin', 'rs']) {
    const { counts, ms } = await measure(impl);
    const values = Object.values(counts);
    t.diagnostic(`${impl}: ${JSON.stringify(counts)} in ${ms} ms`);
    assert.equal(values.length, WORKERS, `${impl}: only ${Object.keys(counts)} answered`);
    assert.equal(values.reduce((a, b) => a + b, 0), TOTAL, impl);
    const mean = TOTAL / WORKERS;
    // The ±20% bar is ours; the built-in is the reference, not under test (on a loaded 2-core
    // machine its own shares were seen at -24%), and the ratio check below compares the two.
    for (const [id, n] of Object.entries(counts)) {
      if (impl === 'builtin') continue;
      assert.ok(Math.abs(n - mean) <= mean * 0.2, `${impl}: worker ${id} got ${n}, mean ${mean}: ${JSON.stringify(counts)}`);
    }
    ratios[impl] = Math.max(...values) / Math.min(...values);
  }
  // Slack: the ratio moves by ±0.15 from run to run for either (it follows the workers' speed).
  assert.ok(ratios.rs <= ratios.builtin + 0.3, `max/min: cluster-rs ${ratios.rs.toFixed(3)}, built-in ${ratios.builtin.toFixed(3)}`);
});
