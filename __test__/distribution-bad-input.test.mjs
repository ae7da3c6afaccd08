// Workers that misuse the NODE_CLUSTER protocol cost themselves, never the primary or the other
// workers (the built-in primary crashes on the first two: an uncaught RangeError or assertion).
//  * queryServer with nonsense fields gets an error reply (errno < 0), and the primary goes on
//    serving a normal worker.
//  * Answers for newconns a worker never received (and handle ACK/NACKs for handles it never
//    got) change nothing: every connection is still answered, by both workers.
//  * A worker stuck in JavaScript (it reads and acks nothing) holds at most the one connection
//    in flight to it; the others go to the other workers meanwhile, and it gets its one after.
//  * With every worker stuck, the connections that arrive meanwhile all wait and are all served
//    once the workers read again: none is lost or reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

test('nonsense queryServer fields get an error reply, and the primary goes on', { timeout: 60000 }, async () => {
  const run = await runFixture('distribution-bad-input.js', ['queries'], { timeout: 30000 });
  const out = run.json;
  assert.ok(out && out.primaryAlive && !out.error, describeRun(run));
  assert.equal(out.missing, 0, `queries without a reply: ${JSON.stringify(out.replies)}`);
  const labels = Object.keys(out.replies);
  assert.equal(labels.length, 11, JSON.stringify(out.replies));
  for (const [label, reply] of Object.entries(out.replies)) {
    assert.ok(Number.isInteger(reply.errno) && reply.errno < 0, `${label}: ${JSON.stringify(reply)}`);
    assert.equal(reply.hasHandle, false, label);
    assert.equal(reply.hasSockname, false, label);
  }
  // Real errors keep their errno: ENOENT, ENAMETOOLONG.
  assert.equal(out.replies['unix path in a missing directory'].errno, -2);
  assert.equal(out.replies['unix path of 300 bytes'].errno, -36);
  assert.equal(out.querierConnected, true, 'the misbehaving worker is still connected');
  assert.deepEqual(out.answers, Array(5).fill(String(out.normalId)));
  assert.deepEqual(out.workerErrors, undefined);
});

test('acks for newconns (and handles) a worker never got do not break distribution', { timeout: 60000 }, async () => {
  const run = await runFixture('distribution-bad-input.js', ['acks'], { timeout: 30000 });
  const out = run.json;
  assert.ok(out && out.primaryAlive && !out.error, describeRun(run));
  assert.equal(out.answers.length, 40);
  const counts = {};
  for (const a of out.answers) counts[a] = (counts[a] || 0) + 1;
  assert.deepEqual(Object.keys(counts).sort(), [String(out.ids.liar), String(out.ids.honest)].sort(),
    `answers: ${out.answers}`);
  for (const n of Object.values(counts)) assert.ok(n >= 10, JSON.stringify(counts));
  assert.equal(out.liarConnected, true);
});

test('a worker that never acks holds at most one connection; the others are served meanwhile', { timeout: 60000 }, async () => {
  const run = await runFixture('distribution-bad-input.js', ['stuck'], { timeout: 30000 });
  const out = run.json;
  assert.ok(out && out.primaryAlive && !out.error, describeRun(run));
  assert.equal(out.spun, true, describeRun(run));
  assert.equal(out.answers.length, 30);
  assert.ok(out.answers.every((a) => /^[123]$/.test(a)), `unanswered: ${out.answers}`);
  const fromStuck = out.answers.filter((a) => a === String(out.stuckId)).length;
  assert.ok(fromStuck <= 1, `the stuck worker answered ${fromStuck}`);
  assert.ok(out.beforeUnstuck >= 29, `only ${out.beforeUnstuck} answered while a worker was stuck`);
});

test('every worker stuck while 40 clients connect: all 40 are served afterwards, none lost', { timeout: 60000 }, async () => {
  const run = await runFixture('distribution-bad-input.js', ['allstuck'], { timeout: 30000 });
  const out = run.json;
  assert.ok(out && out.primaryAlive && !out.error, describeRun(run));
  assert.equal(out.spun, true, describeRun(run));
  assert.equal(out.answers.length, 40);
  const ids = out.ids.map(String);
  assert.ok(out.answers.every((a) => ids.includes(a)), `unanswered: ${out.answers}`);
  for (const id of ids) assert.ok(out.answers.includes(id), `worker ${id} served none: ${out.answers}`);
});
