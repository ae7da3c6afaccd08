// A worker the primary disconnects while a connection is in flight to it may still take that
// connection: it must not also be given to another worker (two workers writing to one client).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnJsonLines } from './fixtures/harness.mjs';

function fetchOnce(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => { data += d; });
    socket.on('error', () => {});
    socket.on('close', () => resolve(data));
    socket.setTimeout(8000, () => socket.destroy());
  });
}

test('a connection in flight to a worker being disconnected is served exactly once', { timeout: 30000 }, async () => {
  const { child, next } = spawnJsonLines('distribution-leaving.js');
  try {
    const { port } = await next();
    // Worker 1 is stuck now: one of these connections is handed to it and waits.
    const replies = [0, 1, 2, 3].map(() => fetchOnce(port));
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.stdin.end('go\n');
    await next();
    const answers = await Promise.all(replies);
    for (const answer of answers) {
      const responses = answer.match(/worker \d+\n/g) || [];
      assert.equal(responses.length, 1, `one response per connection, got ${JSON.stringify(answer)}`);
    }
    assert.ok(answers.some((a) => a === 'worker 1\n'), 'the leaving worker served the one it took');
    const [code] = await new Promise((resolve) => child.on('exit', (...a) => resolve(a)));
    assert.equal(code, 0);
  } finally {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});
