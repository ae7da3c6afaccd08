// The exported object and the Worker class, checked in this process (no workers forked).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import EventEmitter from 'node:events';

const require = createRequire(import.meta.url);
const builtin = require('node:cluster');
const builtinFork = builtin.fork;
const earlyListener = () => {};
builtin.on('fork', earlyListener);
const cluster = require('../index.js');

test('the package exports the built-in cluster object, installed once', () => {
  assert.equal(cluster, builtin);
  assert.notEqual(cluster.fork, builtinFork, 'our fork replaced the built-in one');
  assert.equal(require('../index.js'), cluster);
  assert.ok(cluster.listeners('fork').includes(earlyListener), 'earlier listeners are kept');
  assert.equal(typeof cluster.clusterRs.version, 'string');
  assert.equal(cluster.isPrimary, true);
  assert.equal(cluster.isMaster, true);
  assert.equal(cluster.isWorker, false);
  assert.equal(cluster.setupMaster, cluster.setupPrimary);
  assert.equal(cluster.SCHED_NONE, 1);
  assert.equal(cluster.SCHED_RR, 2);
  assert.ok(cluster instanceof EventEmitter);
});

test('ESM named exports see our functions', async () => {
  const esm = await import('node:cluster');
  assert.equal(esm.default, cluster);
  assert.equal(esm.fork, cluster.fork);
  assert.equal(esm.setupPrimary, cluster.setupPrimary);
  assert.equal(esm.Worker, cluster.Worker);
});

test('cluster.Worker has Node defaults and works without new', () => {
  const { Worker } = cluster;
  const plain = new Worker();
  assert.equal(plain.state, 'none');
  assert.equal(plain.id, 0);
  assert.equal(plain.process, undefined);
  assert.equal(plain.exitedAfterDisconnect, undefined);
  assert.ok(plain instanceof EventEmitter);

  const called = Worker({ id: 3, state: 'online' });
  assert.ok(called instanceof Worker);
  assert.equal(called.id, 3);
  assert.equal(called.state, 'online');

  const fakeProcess = new EventEmitter();
  const withProcess = new Worker({ id: 4, process: fakeProcess });
  const got = [];
  withProcess.on('message', (m, h) => got.push(['message', m, h]));
  withProcess.on('error', (e) => got.push(['error', e.message]));
  fakeProcess.emit('message', 'hi', undefined);
  fakeProcess.emit('error', new Error('boom'));
  assert.deepEqual(got, [['message', 'hi', undefined], ['error', 'boom']]);
});

test('cluster.disconnect(cb) with no workers calls back asynchronously', async () => {
  let sync = true;
  const called = new Promise((resolve) => cluster.disconnect(() => resolve(sync)));
  sync = false;
  assert.equal(await called, false);
});
