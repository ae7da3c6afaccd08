// Handles travel with messages in both directions (net.Socket, net.Server, dgram.Socket),
// with Node's detach/keepOpen rules and the socket-list replies a worker's server waits for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

const scenarios = {
  'to-worker': 'an accepted net.Socket sent to a worker is detached here and served there',
  'keep-open': 'keepOpen leaves the sent socket attached here',
  'from-worker': "a worker's net.Socket arrives here as a usable net.Socket",
  'server-key': "a worker's server.close() completes once the socket it sent us is closed",
  dgram: 'a dgram.Socket sent to a worker sends from the same port there',
  server: 'a listening net.Server sent to a worker accepts there',
  'server-from-worker': "a worker's net.Server arrives here listening",
  'dgram-from-worker': "a worker's dgram.Socket arrives here bound to the same port",
};

// A Node 18 worker routes listen(handle) through the primary (address null, port -1); our
// primary refuses that query with EINVAL, as protocol.md §9 advises.
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const skip = { server: NODE_MAJOR < 20 && "Node 18 workers query the primary for listen(handle)" };

for (const [scenario, title] of Object.entries(scenarios)) {
  test(title, { timeout: 30000, skip: skip[scenario] || false }, async () => {
    const { builtin, rs } = await runBoth('handles.js', [scenario], { timeout: 20000 });
    assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
    assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
    assert.deepEqual(rs.json, builtin.json);
    assert.ok(rs.json.events.length >= 2, JSON.stringify(rs.json));
  });
}
