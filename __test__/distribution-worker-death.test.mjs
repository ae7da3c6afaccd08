// Workers dying under load, and a worker that cannot take more: nothing is lost, nothing
// hangs, nothing leaks, nothing spins.
//  * SIGKILL one of 3 workers in a stream of connections (20 at a time, ~3 s): every client gets
//    a full answer or a clean close/reset within 5 s; afterwards the primary holds no connection
//    fd and, with a replacement worker, is back at its fd baseline.
//  * A connection in flight to a worker that dies before taking it goes to another worker, or is
//    closed when no worker is left (the built-in leaks it: the client hangs).
//  * The only worker, at maxConnections: the primary does not busy-loop retrying it, and the
//    waiting connection is served once a slot frees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { startFixture, connectOnce, stream, fds, tcpConnectionFds, cpuTicks, sleep } =
  require('./fixtures/distribution-client.js');

const fdCount = (pid) => Object.keys(fds(pid)).length;

test('SIGKILL of a worker mid-stream: every client answered or cleanly closed, no fd left behind', { timeout: 60000 }, async (t) => {
  const pool = startFixture('distribution-pool.js', ['3'], { timeout: 50000 });
  try {
    const { port, pid, workers } = await pool.next((m) => m.ready);
    // A few connections first, so that fds Node opens lazily are in the baseline.
    await stream(port, { total: 30, concurrency: 5 });
    await sleep(200);
    const baseline = fdCount(pid);
    const victim = workers[1].id;
    const started = Date.now();
    let killedAt = null;
    const results = await stream(port, {
      concurrency: 20,
      until: () => Date.now() - started > 3000,
      onResult: () => {
        if (killedAt === null && Date.now() - started > 1000) {
          killedAt = Date.now();
          pool.send(`kill ${victim}`);
        }
      },
    });
    const { exit } = await pool.next((m) => m.exit);
    assert.deepEqual(exit, { id: victim, code: null, signal: 'SIGKILL' });
    const tally = { full: 0, reset: 0, closed: 0, hang: 0 };
    const byWorker = {};
    for (const r of results) {
      tally[r.kind] += 1;
      if (r.kind === 'full') {
        const id = r.data.split(':')[0];
        byWorker[id] = (byWorker[id] || 0) + 1;
      }
    }
    t.diagnostic(`${results.length} connections: ${JSON.stringify(tally)}; answered by ${JSON.stringify(byWorker)}`);
    assert.equal(tally.hang, 0, `connections hung: ${JSON.stringify(results.filter((r) => r.kind === 'hang'))}`);
    assert.ok(results.length >= 100, `only ${results.length} connections in 3 s`);
    // Only what the dying worker had already taken can fail: at most a handful.
    assert.ok(tally.reset + tally.closed <= 20, JSON.stringify(tally));
    assert.ok(Object.keys(byWorker).length === 3, `every worker served before the kill: ${JSON.stringify(byWorker)}`);

    // The primary holds no connection, and with a replacement worker it is back at its baseline.
    pool.send('fork');
    await pool.next((m) => m.ready);
    await sleep(300);
    assert.deepEqual(tcpConnectionFds(pid), [], 'connection fds left in the primary');
    const after = fdCount(pid);
    assert.ok(after <= baseline, `primary fds: ${baseline} before, ${after} after`);
    const served = await stream(port, { total: 20, concurrency: 4 });
    assert.ok(served.every((r) => r.kind === 'full'), JSON.stringify(served.filter((r) => r.kind !== 'full')));
    pool.send('quit');
    assert.equal((await pool.exited).code, 0, pool.stderr);
  } finally {
    pool.kill();
  }
});

test('a connection in flight to a worker that dies goes to another worker', { timeout: 30000 }, async () => {
  const pool = startFixture('distribution-pool.js', ['2'], { timeout: 25000 });
  try {
    const { port, workers } = await pool.next((m) => m.ready);
    const [stuck, other] = workers.map((w) => w.id);
    pool.send(`spin ${stuck} 20000`);
    await pool.next((m) => m.spinning === stuck);
    // Two connections: one is handed to the stuck worker (and stays in flight: it reads
    // nothing), the other is answered by the other worker.
    const pending = [connectOnce(port, { timeout: 8000 }), connectOnce(port, { timeout: 8000 })];
    await sleep(500);
    pool.send(`kill ${stuck}`);
    const results = await Promise.all(pending);
    for (const r of results) {
      assert.equal(r.kind, 'full', JSON.stringify(results));
      assert.equal(r.data.split(':')[0], String(other));
    }
    pool.send('quit');
    assert.equal((await pool.exited).code, 0, pool.stderr);
  } finally {
    pool.kill();
  }
});

test('a connection in flight to the last worker, which dies, is closed, not leaked', { timeout: 30000 }, async () => {
  const pool = startFixture('distribution-pool.js', ['1'], { timeout: 25000 });
  try {
    const { port, pid, workers } = await pool.next((m) => m.ready);
    const [stuck] = workers.map((w) => w.id);
    pool.send(`spin ${stuck} 20000`);
    await pool.next((m) => m.spinning === stuck);
    const pending = connectOnce(port, { timeout: 8000 });
    await sleep(500);
    pool.send(`kill ${stuck}`);
    const r = await pending;
    assert.ok(r.kind === 'closed' || r.kind === 'reset', JSON.stringify(r));
    assert.equal(r.data, '');
    await pool.next((m) => m.exit);
    assert.deepEqual(tcpConnectionFds(pid), [], 'connection fds left in the primary');
    pool.send('quit');
    assert.equal((await pool.exited).code, 0, pool.stderr);
  } finally {
    pool.kill();
  }
});

function holdOpen(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (d) => {
      data += d;
      if (data === 'hello') resolve(socket);
    });
  });
}

test('the only worker at maxConnections: no busy loop in the primary; served once a slot frees', { timeout: 30000 }, async (t) => {
  const pool = startFixture('distribution-pool.js', ['1'], { env: { HOLD: '1', MAX_CONNECTIONS: '1' }, timeout: 25000 });
  try {
    const { port, pid } = await pool.next((m) => m.ready);
    const first = await holdOpen(port);
    // The second connection is refused by the full worker, again and again.
    const second = net.connect(port, '127.0.0.1');
    let data = '';
    second.setEncoding('utf8').on('data', (d) => { data += d; });
    second.on('error', () => {});
    await sleep(300);
    const before = cpuTicks(pid);
    await sleep(1000);
    const ticks = cpuTicks(pid) - before;
    t.diagnostic(`primary CPU while the worker was full: ${ticks} ticks in 1 s`);
    // 100 ticks per second: a busy loop would be ~100.
    assert.ok(ticks < 30, `the primary used ${ticks}% of a core while the worker was full`);
    assert.equal(data, '', 'served while the worker was full');
    first.end();
    const waited = Date.now();
    while (data !== 'hello' && Date.now() - waited < 5000) await sleep(20);
    assert.equal(data, 'hello', 'the waiting connection was never served');
    t.diagnostic(`served ${Date.now() - waited} ms after the slot freed`);
    second.end();
    pool.send('quit');
    assert.equal((await pool.exited).code, 0, pool.stderr);
  } finally {
    pool.kill();
  }
});
