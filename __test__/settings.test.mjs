// setupPrimary() merge rules, 'setup' events, the scheduling-policy freeze and the inspector
// port rules, compared with the built-in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

test('settings, setup events and inspector ports match the built-in', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('settings.js');
  assert.ok(builtin.json, describeRun(builtin));
  assert.ok(rs.json, describeRun(rs));
  assert.deepEqual(rs.json, builtin.json);
});

test('settings start empty and grow by exactly the four defaults', { timeout: 30000 }, async () => {
  const run = await runFixture('settings.js');
  const out = run.json;
  assert.ok(out, describeRun(run));
  assert.deepEqual(out.initial, {});
  assert.deepEqual(Object.keys(out.afterFirst), ['args', 'exec', 'execArgv', 'silent']);
  assert.deepEqual(out.afterSecond.args, ['a', 'b'], 'cumulative');
  assert.equal(out.events[0], 'after first setupPrimary (sync)', "'setup' is asynchronous");
  // One 'setup' per setupPrimary() call and one per fork().
  assert.equal(out.events.filter((e) => e.setup).length, 5 + 3 + 8);
  assert.deepEqual(out.prof, ['--prof', '--logfile=v8-%p.log']);
  assert.deepEqual(out.profWithLogfile, ['--prof-process', '--logfile=custom.log']);
  assert.deepEqual(out.ports.map((p) => p.at(-1)), [
    '--inspect-port=9230', '--inspect-port=9231', '--inspect-port=1024', '--inspect-port=0',
    '--inspect-port=20001', '--inspect-port=20002', undefined,
  ]);
});

for (const [env, expected] of [['none', 1], ['rr', 2], ['bogus', 2]]) {
  test(`NODE_CLUSTER_SCHED_POLICY=${env} gives policy ${expected}`, { timeout: 30000 }, async () => {
    const run = await runFixture('settings.js', [], { env: { NODE_CLUSTER_SCHED_POLICY: env } });
    assert.ok(run.json, describeRun(run));
    assert.equal(run.json.policyAtLoad, expected);
  });
}

test('a bad schedulingPolicy fails the first setupPrimary only', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('settings.js', ['policy-assert']);
  assert.ok(rs.json, describeRun(rs));
  for (const key of ['name', 'code']) {
    assert.equal(rs.json.firstSetup[key], builtin.json.firstSetup[key]);
  }
  assert.equal(rs.json.firstSetup.message.split('\n')[0], 'Bad cluster.schedulingPolicy: 3');
  assert.equal(rs.json.secondSetup, 'no throw');
});
