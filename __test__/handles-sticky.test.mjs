// The sticky-session pattern end to end (examples/sticky-sessions.js): the primary accepts
// paused connections, hashes the client's address to a worker and passes the socket with
// worker.send(); the worker's HTTP server answers. Clients from 127.0.0.1 and 127.0.0.2 each
// always reach the same worker, and not the same one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const EXAMPLE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'sticky-sessions.js');

function startExample() {
  const child = spawn(process.execPath, [EXAMPLE], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', WORKERS: '2' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { output += d; });
  const url = new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      output += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(output);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code, signal) => reject(new Error(`example exited (${code}, ${signal}):\n${output}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, port: url, exited, output: () => output };
}

function get(port, localAddress) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
  });
}

test('sticky sessions: one client address, one worker', { timeout: 20000 }, async () => {
  const ex = startExample();
  const killer = setTimeout(() => {
    try { process.kill(-ex.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }, 18000);
  try {
    const port = await ex.port;
    const addresses = ['127.0.0.1', '127.0.0.2'];
    const seen = { '127.0.0.1': [], '127.0.0.2': [] };
    // Sequential rounds, then bursts of concurrent connections from both addresses.
    for (let round = 0; round < 3; round++) {
      for (const a of addresses) seen[a].push(await get(port, a));
    }
    for (let burst = 0; burst < 3; burst++) {
      const replies = await Promise.all(addresses.flatMap((a) => Array.from({ length: 8 }, () => get(port, a))));
      replies.forEach((r) => seen[r.client].push(r));
    }
    for (const a of addresses) {
      assert.equal(seen[a].length, 3 + 3 * 8, `every request from ${a} was answered`);
      const workers = new Set(seen[a].map((r) => r.worker));
      assert.equal(workers.size, 1, `${a} always reaches the same worker: ${[...workers]}`);
      assert.ok(seen[a].every((r) => r.client === a), 'the worker sees the client\'s own address');
    }
    assert.notEqual(seen['127.0.0.1'][0].worker, seen['127.0.0.2'][0].worker,
                    'the two addresses hash to different workers');

    // A clean stop: the listener closes, the workers disconnect, the primary exits 0.
    process.kill(ex.child.pid, 'SIGTERM');
    const { code, signal } = await ex.exited;
    assert.equal(signal, null, ex.output());
    assert.equal(code, 0, ex.output());
  } finally {
    clearTimeout(killer);
    try { process.kill(-ex.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});
