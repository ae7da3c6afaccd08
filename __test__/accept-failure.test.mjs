// When the primary cannot accept a connection for lack of fds, the client is closed and the
// worker never sees it (the behaviour test-cluster-accept-fail checks by patching the
// built-in's private round-robin class); and the primary neither spins nor stops serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fixturesDir } from './fixtures/harness.mjs';

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

function nextJson(lines) {
  return new Promise((resolve) => lines.once('json', resolve));
}

test('an accept failure in the primary closes the client and leaves the worker untouched', { timeout: 30000 }, async () => {
  const child = spawn(process.execPath, [path.join(fixturesDir, 'accept-failure.js')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
  });
  const lines = new (await import('node:events')).EventEmitter();
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.emit('json', JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  try {
    const { port, pid } = await nextJson(lines);
    child.stdin.write('fill\n');
    await nextJson(lines);
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
    await nextJson(lines);
    const served = await connect(port);
    assert.equal(served.data, 'hello');
    child.stdin.write('count\n');
    const { count } = await nextJson(lines);
    assert.equal(count, 1, 'only the served connection reached the worker');
    const [code] = await new Promise((resolve) => child.on('exit', (...a) => resolve(a)));
    assert.equal(code, 0);
  } finally {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});
