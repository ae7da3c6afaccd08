// Server sharing across 2 workers for every kind of server (HTTP, HTTPS with shared session
// tickets, TCP echo, UDP, unix path and abstract sockets, port 0), under round-robin and
// SCHED_NONE, with the built-in run alongside as the reference. The primary of the fixture is
// the client: it reports which worker answered each request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBoth, describeRun } from './fixtures/harness.mjs';

let tls = null; // { key, cert } paths, or null when openssl is missing
let tlsSkip = false;
let tmp;
// libuv before 1.46 (Node 18) copies a pipe name up to its first NUL: every "abstract" name
// becomes the same all-zero address.
const [uvMajor, uvMinor] = process.versions.uv.split('.').map(Number);
const abstractNames = uvMajor > 1 || uvMinor >= 46;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crs-dist-tls-'));
  const key = path.join(tmp, 'key.pem');
  const cert = path.join(tmp, 'cert.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
      '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore', timeout: 20000 });
    tls = { key, cert };
  } catch (err) {
    tlsSkip = `no self-signed certificate (openssl: ${err.code || err.message})`;
  }
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function run(mode, policy) {
  const env = { NODE_CLUSTER_SCHED_POLICY: policy };
  if (tls) Object.assign(env, { TLS_KEY: tls.key, TLS_CERT: tls.cert });
  const both = await runBoth('distribution-protocols.js', [mode], { env, timeout: 30000 });
  for (const impl of ['builtin', 'rs']) {
    const r = both[impl];
    assert.ok(r.json, `${impl}: ${describeRun(r)}`);
    assert.equal(r.code, 0, `${impl}: ${describeRun(r)}`);
    assert.deepEqual(r.json.errors, [], `${impl}: ${describeRun(r)}`);
    assert.equal(r.json.policy, policy, impl);
    // Every worker got the same port (or path) for the shared server.
    const first = r.json.ports.map((p) => p[0]);
    assert.equal(new Set(first).size, 1, `${impl}: workers got ${JSON.stringify(r.json.ports)}`);
    for (const a of r.json.answers) {
      assert.match(String(a), /^[12](:|$)/, `${impl}: answer ${JSON.stringify(a)} in ${JSON.stringify(r.json.answers)}`);
    }
  }
  return both;
}

// Round-robin spreads sequential connections over both workers (the kernel may not).
function assertBothAnswered(r, label) {
  const counts = r.json.counts;
  assert.deepEqual(Object.keys(counts).sort(), ['1', '2'], `${label}: ${JSON.stringify(counts)}`);
  const total = counts[1] + counts[2];
  for (const id of ['1', '2']) {
    assert.ok(counts[id] >= total / 4, `${label}: worker ${id} got ${counts[id]} of ${total}`);
  }
}

for (const policy of ['rr', 'none']) {
  test(`HTTP, 2 workers, 40 requests with Connection: close (${policy})`, { timeout: 60000 }, async () => {
    const { builtin, rs } = await run('http', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      assert.equal(r.json.answers.length, 40, impl);
      if (policy === 'rr') assertBothAnswered(r, impl);
    }
  });

  test(`HTTPS: TLS sessions resume across workers (shared ticket keys) (${policy})`, { timeout: 60000 }, async (t) => {
    if (tlsSkip) return t.skip(tlsSkip);
    const { builtin, rs } = await run('https', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      const { answers, reused } = r.json;
      assert.equal(answers.length, 10, impl);
      const n = reused.filter(Boolean).length;
      assert.ok(n >= answers.length - 1, `${impl}: ${n} of ${answers.length} resumed: ${JSON.stringify(reused)}`);
      if (policy === 'rr') {
        assertBothAnswered(r, impl);
        // A ticket issued by one worker was accepted by the other.
        const resumedBy = new Set(answers.filter((_, i) => reused[i]));
        assert.equal(resumedBy.size, 2, `${impl}: resumed only on ${[...resumedBy]}`);
      }
    }
    return undefined;
  });

  test(`TCP echo, 2 workers (${policy})`, { timeout: 60000 }, async () => {
    const { builtin, rs } = await run('tcp', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      assert.equal(r.json.answers.length, 20, impl);
      assert.equal(r.json.echoOk, true, `${impl}: ${JSON.stringify(r.json.answers)}`);
      if (policy === 'rr') assertBothAnswered(r, impl);
    }
  });

  test(`unix socket path, 2 workers; the socket file is gone afterwards (${policy})`, { timeout: 60000 }, async () => {
    const { builtin, rs } = await run('unix', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      assert.equal(r.json.answers.length, 20, impl);
      if (policy === 'rr') assertBothAnswered(r, impl);
      assert.equal(r.json.socketFileLeft, false, impl);
    }
  });

  test(`abstract unix socket, 2 workers (${policy})`, { timeout: 60000 }, async (t) => {
    if (!abstractNames) return t.skip(`libuv ${process.versions.uv} binds no abstract socket names`);
    const { builtin, rs } = await run('abstract', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      assert.equal(r.json.answers.length, 20, impl);
      if (policy === 'rr') assertBothAnswered(r, impl);
    }
    return undefined;
  });

  test(`port 0: one port for every worker, another for each worker's second server (${policy})`, { timeout: 60000 }, async () => {
    const { builtin, rs } = await run('port0', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      const [a, b] = [r.json.ports.map((p) => p[0]), r.json.ports.map((p) => p[1])];
      assert.equal(new Set(b).size, 1, `${impl}: second servers on ${b}`);
      assert.notEqual(a[0], b[0], `${impl}: both servers on ${a[0]}`);
      assert.ok(r.json.answers.every((x) => /^[12]:a$/.test(x)), `${impl}: ${r.json.answers}`);
      assert.ok(r.json.answersB.every((x) => /^[12]:b$/.test(x)), `${impl}: ${r.json.answersB}`);
      if (policy === 'rr') {
        assertBothAnswered(r, impl);
        assert.deepEqual(Object.keys(r.json.countsB).sort(), ['1', '2'], impl);
      }
    }
  });

  test(`workers get non-blocking sockets: a client that does not read stalls no worker (${policy})`, { timeout: 60000 }, async () => {
    const { builtin, rs } = await run('nonblock', policy);
    for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
      assert.equal(r.json.connNonblock, true, `${impl}: the connection fd is blocking`);
      assert.equal(r.json.listenNonblock, policy === 'rr' ? null : true, `${impl}: the shared listening fd`);
      // The worker answers IPC while 16 MiB wait for a reader (a blocking write would hold
      // its loop until the client reads, 1.5 s later).
      assert.ok(r.json.pongMs !== null && r.json.pongMs < 1000, `${impl}: pong after ${r.json.pongMs} ms`);
      assert.equal(r.json.received, 16 * 1024 * 1024, impl);
    }
  });
}

test('UDP: 2 workers bind(0) share one port; every datagram is answered', { timeout: 60000 }, async () => {
  const { builtin, rs } = await run('udp', 'rr');
  for (const [impl, r] of [['builtin', builtin], ['rs', rs]]) {
    assert.equal(r.json.answers.length, 20, impl);
    assert.ok(r.json.answers.every((a, i) => a.endsWith(`:ping${i}`)), `${impl}: ${r.json.answers}`);
  }
});
