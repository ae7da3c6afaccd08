// Bad input. Values send() cannot serialise throw synchronously, exactly as from the
// built-in, and leave the channel usable. Bad frames from a worker (corrupt V8 data, a bad
// or oversized length, a frame over maxFrameBytes, lines that are not JSON) cost that
// worker its channel: 'error', 'disconnect', 'exit' on it; the other worker and the primary
// carry on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBoth, runFixture, describeRun } from './fixtures/harness.mjs';

for (const mode of ['json', 'advanced']) {
  test(`${mode}: unserialisable values throw synchronously, as from the built-in`, { timeout: 20000 }, async () => {
    const { builtin, rs } = await runBoth('serialization-errors.js', ['throws', mode]);
    assert.ok(builtin.json, `built-in: ${describeRun(builtin)}`);
    assert.ok(rs.json, `cluster-rs: ${describeRun(rs)}`);
    assert.deepEqual(rs.json, builtin.json);
    const { attempts } = rs.json;
    assert.ok(Object.keys(attempts).length >= 7);
    for (const [what, result] of Object.entries(attempts)) {
      assert.equal(result.isError, true, `${what} should throw: ${JSON.stringify(result)}`);
    }
    assert.equal(rs.json.afterwards, true);
    assert.deepEqual(rs.json.workerGot, ['still fine'], 'nothing of the failed sends reached the worker');
  });
}

const KINDS = {
  'v8-garbage': 'Error',
  'v8-empty': 'Error',
  'v8-no-header': 'Error',
  'v8-truncated-string': 'Error',
  oversized: 'ERR_IPC_FRAME_TOO_LARGE',
  'limit-advanced': 'ERR_IPC_FRAME_TOO_LARGE',
  'limit-json': 'ERR_IPC_FRAME_TOO_LARGE',
  'json-garbage': 'SyntaxError',
  'json-empty-line': 'SyntaxError',
  'json-unterminated-huge': 'ERR_IPC_FRAME_TOO_LARGE',
};

test('a bad frame closes that worker\'s channel with an error; the others go on', { timeout: 20000 }, async () => {
  const kinds = Object.keys(KINDS);
  // Two at a time: each run takes well under a second.
  const runs = {};
  for (let i = 0; i < kinds.length; i += 2) {
    const pair = kinds.slice(i, i + 2);
    const results = await Promise.all(pair.map((k) => runFixture('serialization-errors.js', ['bad-frame', k])));
    pair.forEach((k, j) => { runs[k] = results[j]; });
  }
  for (const [kind, expected] of Object.entries(KINDS)) {
    const run = runs[kind];
    const out = run.json;
    assert.ok(out, `${kind}: ${describeRun(run)}`);
    const errorAt = out.bad.findIndex((e) => e.error);
    assert.ok(errorAt >= 1, `${kind}: ${JSON.stringify(out.bad)}`);
    const err = out.bad[errorAt];
    assert.equal(err.code || err.error, expected, `${kind}: ${JSON.stringify(err)}`);
    // What came before the bad bytes was delivered; then the channel ended.
    assert.deepEqual(out.bad[0], { message: 'before' }, kind);
    assert.deepEqual(out.bad.slice(errorAt + 1), ['disconnect', { exit: [0, null] }], kind);
    assert.equal(out.good.pongsAfterBadExit, 20, `${kind}: the other worker kept talking`);
    assert.equal(out.goodConnected, true, kind);
    assert.equal(out.primaryExit, 0, kind);
  }
});
