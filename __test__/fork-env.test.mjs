// The worker's environment: parent env + fork(env) + NODE_UNIQUE_ID + the channel variables,
// each key exactly once, in Node's order; plus the cwd setting and the coverage opt-out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

const CHANNEL_VARS = ['NODE_UNIQUE_ID', 'NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE'];
const keyOf = (entry) => entry.slice(0, entry.indexOf('='));
// The harness sets CLUSTER_IMPL differently for the two runs.
const comparable = (environ) => environ.filter((e) => !e.startsWith('CLUSTER_IMPL='));

function countKeys(environ) {
  const counts = {};
  for (const e of environ) counts[keyOf(e)] = (counts[keyOf(e)] || 0) + 1;
  return counts;
}

test('fork(env) adds and overrides variables, each key once', { timeout: 30000 }, async () => {
  const run = await runFixture('env.js', ['basic']);
  assert.ok(run.json, describeRun(run));
  const { environ, leftInProcessEnv } = run.json;
  assert.ok(environ.includes('FOO=bar'));
  assert.ok(environ.includes('NUL=null'));
  assert.ok(environ.includes('NUM=1'));
  assert.ok(environ.includes('PATH=/override'));
  assert.ok(!environ.some((e) => e.startsWith('UNDEF=')));
  assert.ok(environ.includes('NODE_UNIQUE_ID=1'));
  assert.ok(environ.includes('NODE_CHANNEL_FD=3'));
  assert.ok(environ.includes('NODE_CHANNEL_SERIALIZATION_MODE=json'));
  for (const [key, n] of Object.entries(countKeys(environ))) assert.equal(n, 1, key);
  assert.deepEqual(leftInProcessEnv, [], "Node's worker code removed the channel variables");
});

test('the environment holds the same entries as with the built-in', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('env.js', ['basic']);
  assert.ok(rs.json, describeRun(rs));
  assert.deepEqual(comparable(rs.json.environ).sort(), comparable(builtin.json.environ).sort());
});

test('the environment is in the built-in order (fork env, NODE_UNIQUE_ID, channel vars last)', {
  timeout: 30000,
}, async () => {
  const { builtin, rs } = await runBoth('env.js', ['basic']);
  assert.ok(rs.json, describeRun(rs));
  assert.deepEqual(comparable(rs.json.environ), comparable(builtin.json.environ));
  assert.deepEqual(rs.json.environ.slice(-3).map(keyOf), CHANNEL_VARS);
});

test('inherited channel variables do not shadow the new ones', { timeout: 30000 }, async () => {
  // With the built-in this worker would never come online (protocol.md §1.2).
  const run = await runFixture('env.js', ['advanced'], {
    env: { NODE_CHANNEL_FD: '', NODE_CHANNEL_SERIALIZATION_MODE: 'bogus' },
  });
  assert.ok(run.json, describeRun(run));
  const counts = countKeys(run.json.environ);
  for (const key of CHANNEL_VARS) assert.equal(counts[key], 1, key);
  assert.ok(run.json.environ.includes('NODE_CHANNEL_SERIALIZATION_MODE=advanced'));
  assert.ok(run.json.environ.includes('NODE_CHANNEL_FD=3'));
});

test('settings.cwd sets the worker cwd', { timeout: 30000 }, async () => {
  const { builtin, rs } = await runBoth('env.js', ['cwd']);
  assert.ok(rs.json, describeRun(rs));
  assert.equal(rs.json.cwd, builtin.json.cwd);
  assert.notEqual(rs.json.cwd, process.cwd());
});

test('NODE_V8_COVERAGE follows the parent unless fork(env) opts out', { timeout: 30000 }, async () => {
  // The primary itself writes its coverage there too: use a directory we remove afterwards.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-rs-coverage-'));
  try {
    const env = { NODE_V8_COVERAGE: dir };
    const optOut = await runFixture('env.js', ['coverage-optout'], { env });
    assert.ok(optOut.json, describeRun(optOut));
    assert.ok(!optOut.json.environ.some((e) => e.startsWith('NODE_V8_COVERAGE=')));
    const inherit = await runFixture('env.js', ['basic'], { env });
    assert.ok(inherit.json.environ.includes(`NODE_V8_COVERAGE=${dir}`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
