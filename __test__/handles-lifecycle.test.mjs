// Handles when the other side goes away, and the socket-list sub-protocol.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

for (const kind of ['socket', 'keep-open', 'server', 'dgram']) {
  test(`${kind}: a worker that dies before its ACK: callback error, nothing leaked`, { timeout: 20000 }, async () => {
    const run = await runFixture('handles-lifecycle.js', ['dies-before-ack', kind]);
    const out = run.json;
    assert.ok(out, describeRun(run));
    // (EPIPE when the worker was already gone before the frame could be written.)
    if (out.callbackError === 'EPIPE') assert.equal(out.returned, false);
    else assert.equal(out.callbackError, 'ERR_IPC_CHANNEL_CLOSED');
    assert.equal(out.fdsLeaked, 0, 'every fd the send held is closed');
    // A socket given away is closed by the primary: its client sees the close. (The
    // built-in keeps it open forever.)
    if (kind === 'socket') assert.deepEqual(out.events.at(-1), { clientClosed: true });
  });
}

test("socket list: a worker's getConnections() and close() count the sockets it gave us", { timeout: 20000 }, async () => {
  const { builtin, rs } = await runBoth('handles-lifecycle.js', ['socket-list']);
  assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
  assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
  assert.deepEqual(rs.json, builtin.json);
  assert.deepEqual(rs.json.events, [
    { accepted: 'Socket' },
    { accepted: 'Socket' },
    { what: 'count', connections: 2 },
    { what: 'count', connections: 1 },
    'close called',
    'primary closes the last socket',
    'server closed',
  ]);
});
