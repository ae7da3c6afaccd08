// One worker's life, recorded event by event (name, args, state, exitedAfterDisconnect,
// membership in cluster.workers), must be identical under node:cluster and cluster-rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

const scenarios = {
  wexit: 'a worker that calls process.exit(3)',
  wdisconnect: 'a worker that calls cluster.worker.disconnect()',
  wkill: 'a worker that calls cluster.worker.kill()',
  pdisconnect: 'the primary calling worker.disconnect()',
  pkill: 'the primary calling worker.kill()',
  psigkill: "the primary calling worker.process.kill('SIGKILL')",
  pprocdisconnect: 'the primary calling worker.process.disconnect()',
  wlistening: 'a listening act from the worker',
  wlisten: 'a worker whose server listens, then disconnects',
  wmessage: 'user messages from the worker, then process.disconnect()',
};

for (const [scenario, title] of Object.entries(scenarios)) {
  test(`events and states match the built-in for ${title}`, { timeout: 30000 }, async () => {
    const { builtin, rs } = await runBoth('lifecycle.js', [scenario]);
    assert.ok(builtin.json, `built-in run failed: ${describeRun(builtin)}`);
    assert.ok(rs.json, `cluster-rs run failed: ${describeRun(rs)}`);
    assert.equal(rs.code, 0, describeRun(rs));
    assert.deepEqual(rs.json, builtin.json);
  });
}

test('the recorded sequences say what protocol.md §7.3 says', { timeout: 30000 }, async () => {
  const rs = await runFixture('lifecycle.js', ['pkill']);
  const names = rs.json.events.map((e) => `${e.source}:${e.name}`);
  assert.deepEqual(names, [
    'primary:after fork()', 'cluster:setup', 'process:spawn', 'cluster:fork',
    // The kill happens in the worker's 'online' listener, which runs before the cluster's.
    'worker:online', 'primary:after kill()', 'cluster:online',
    'worker:disconnect', 'cluster:disconnect', 'process:disconnect',
    'worker:exit', 'cluster:exit', 'process:exit',
  ]);
  const exit = rs.json.events.find((e) => e.source === 'cluster' && e.name === 'exit');
  assert.deepEqual(exit.args, [null, 'SIGTERM']);
  assert.equal(exit.ead, false);
  assert.equal(exit.inWorkers, false);
});

test('a listening act gives exactly {addressType, address, port, fd}', { timeout: 30000 }, async () => {
  const rs = await runFixture('lifecycle.js', ['wlistening']);
  const ev = rs.json.events.filter((e) => e.name === 'listening');
  assert.deepEqual(ev.map((e) => e.source), ['worker', 'cluster']);
  for (const e of ev) {
    assert.deepEqual(e.infoKeys, ['addressType', 'address', 'port', 'fd']);
    assert.equal(e.state, 'listening');
  }
});
