// 200 forks (in batches of 10, stdio piped) leave no child process, zombie or fd behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFixture, describeRun } from './fixtures/harness.mjs';

test('200 forks leave no zombies and no fd growth', { timeout: 60000 }, async () => {
  const run = await runFixture('no-leaks.js', ['200', '10'], { timeout: 55000 });
  const out = run.json;
  assert.ok(out, describeRun(run));
  assert.equal(out.forked, 200);
  assert.equal(out.exits, 200);
  assert.equal(out.workersLeft, 0);
  assert.deepEqual(out.children, [], 'no child process (zombie or not) is left');
  assert.ok(out.fdsAfter <= out.fdsBefore, `fds went from ${out.fdsBefore} to ${out.fdsAfter}`);
});
