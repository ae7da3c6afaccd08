// When the primary cannot accept a connection for lack of fds, the client is closed and the
// worker never sees it (the behaviour test-cluster-accept-fail checks by patching the
// built-in's private round-robin class); and the primary neither spins nor stops serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { spawnJsonLines } from './fixtures/harness.mjs';

function connect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => { data += d; });
    socket.on('error', (err) => resolve({ data, error: err.code }));
    socket.on('close', () => resolve({ data, error: null }));
  });
}

test('an accept failure in the primary closes the client and leaves the worker untouched', { timeout: 30000 }, async () => {
  const { child, next } = spawnJsonLines('accept-failure.js');
  try {
    const { port, pid } = await next();
    child.stdin.write('fill\n');
    await next();
    // The fd limit bounds fd *numbers*: a limit at the lowest free number leaves no slot at all,
    // so the primary's accept fails with EMFILE (until it gives up its reserve fd).
    const used = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
    let lowestFree = 0;
    while (used.has(lowestFree)) lowestFree += 1;
    const limit = (column) => execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--noheadings', '--output', column])
      .toString().trim();
    const [soft, hard] = [limit('SOFT'), limit('HARD')];
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${lowestFree}:${hard}`]);
    const starved = await connect(port);
    assert.equal(starved.data, '', 'the worker never answered the starved connection');
    // fds again: the next connection is served (after the paused listener resumes).
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
    child.stdin.write('unfill\n');
    await next();
    const served = await connect(port);
    assert.equal(served.data, 'hello');
    child.stdin.write('count\n');
    const { count } = await next();
    assert.equal(count, 1, 'only the served connection reached the worker');
    const [code] = await new Promise((resolve) => child.on('exit', (...a) => resolve(a)));
    assert.equal(code, 0);
  } finally {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});
