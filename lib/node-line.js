'use strict';

// What differs between the Node lines cluster-rs supports, in one place, keyed by the running
// Node's version. Workers run the same `node` binary as the primary, so the primary's own
// version is the workers' version too.

function versionAtLeast(version, [major, minor]) {
  const [a, b] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

// Node PR #60141 ("cluster: fix port reuse between cluster workers") changed the primary's
// server key: the worker's per-address `index` is part of it only for port 0, and a worker
// that asks again for a key it already holds gets a fresh listener instead of the shared one.
// Shipped in 22.22 (whose test suite has test-cluster-port-reuse-between-workers) and in 24
// and later lines; 24's first release with it was not checked here (the pinned 24.21 has it).
function keysOmitIndexForFixedPorts(version = process.versions.node) {
  const major = Number(version.split('.')[0]);
  if (major === 22) return versionAtLeast(version, [22, 22]);
  return major >= 24;
}

// Node PR #56106 ("child_process: fix parsing messages with splitted length field"): before
// it, a worker's advanced-mode reader whose read ended inside the next frame's 4-byte length
// prefix never looked past that piece again, and its channel stalled for good (protocol.md
// §9). Shipped in 20.19.0, 22.14.0 and 23.7.0 (their changelogs), so in every 24 and later.
// Workers on older lines get frames written so that no read ends inside a prefix.
function advancedReaderStallsOnSplitPrefix(version = process.versions.node) {
  const major = Number(version.split('.')[0]);
  if (major === 20) return !versionAtLeast(version, [20, 19]);
  if (major === 22) return !versionAtLeast(version, [22, 14]);
  if (major === 23) return !versionAtLeast(version, [23, 7]);
  return major < 24;
}

module.exports = { keysOmitIndexForFixedPorts, advancedReaderStallsOnSplitPrefix, versionAtLeast };
