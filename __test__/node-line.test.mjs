// The per-Node-line rules of lib/node-line.js, against the versions their changelogs name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const nodeLine = require('../lib/node-line.js');

test('advanced-mode readers that stall on a split length prefix: before 20.19, 22.14, 23.7', () => {
  const stalls = (v) => nodeLine.advancedReaderStallsOnSplitPrefix(v);
  for (const v of ['18.20.8', '19.9.0', '20.0.0', '20.18.3', '21.7.3', '22.13.1', '23.6.1']) {
    assert.equal(stalls(v), true, v);
  }
  for (const v of ['20.19.0', '20.20.2', '22.14.0', '22.23.3', '23.7.0', '24.0.0', '26.10.0']) {
    assert.equal(stalls(v), false, v);
  }
});

test('server keys without the per-address index for fixed ports: 22.22 and 24 on', () => {
  const omits = (v) => nodeLine.keysOmitIndexForFixedPorts(v);
  for (const v of ['18.20.8', '20.20.2', '22.21.0']) assert.equal(omits(v), false, v);
  for (const v of ['22.22.0', '24.21.0', '26.10.0']) assert.equal(omits(v), true, v);
});
