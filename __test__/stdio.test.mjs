// silent and custom stdio layouts: output reaches worker.process.stdout/stderr, an extra
// 'pipe' slot is worker.process.stdio[4] in both directions, and 'close' follows 'exit'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, describeRun } from './fixtures/harness.mjs';

for (const layout of ['silent', 'extra']) {
  test(`stdio layout '${layout}' behaves as with the built-in`, { timeout: 30000 }, async () => {
    const { builtin, rs } = await runBoth('stdio.js', [layout]);
    assert.ok(builtin.json, describeRun(builtin));
    assert.ok(rs.json, describeRun(rs));
    for (const key of ['shape', 'named', 'stdinReadable', 'data']) {
      assert.deepEqual(rs.json[key], builtin.json[key], key);
    }
    assert.equal(rs.json.data.stdout, 'to stdout\n');
    assert.equal(rs.json.data.stderr, 'to stderr\n');
    if (layout === 'extra') assert.equal(rs.json.data.four, 'pong:ping');
    // The pipe and the exit may close in either order; 'close' comes after both.
    const events = rs.json.events;
    assert.ok(events.indexOf('close 0 null') > events.indexOf('exit 0'));
    assert.ok(events.includes('stdout close'));
  });
}
