'use strict';

// Scheduling policies: Node's two and the three cluster-rs adds. Each has a constant on the
// cluster object (`cluster.SCHED_*`), a name (NODE_CLUSTER_SCHED_POLICY, the launcher's
// --policy) and decides, per server key, who accepts connections:
//   rr          the primary accepts and hands each connection to the next idle worker (Node)
//   none        every worker gets a dup of one socket and accepts itself (Node)
//   reuseport   every worker gets its own SO_REUSEPORT socket; the kernel balances (TCP, UDP)
//   least-conn  the primary accepts; the idle worker with the fewest open connections
//   sticky      the primary accepts; a hash of the client IP picks the worker, which keeps it
// The new constants are not 3, 4, 5: Node asserts on any value but 1 and 2, and code that
// assigns a stray 3 must keep failing the way it does with the built-in.

const SCHED_NONE = 1;
const SCHED_RR = 2;
const SCHED_REUSEPORT = 101;
const SCHED_LEAST_CONN = 102;
const SCHED_STICKY = 103;

const BY_NAME = new Map([
  ['rr', SCHED_RR],
  ['none', SCHED_NONE],
  ['reuseport', SCHED_REUSEPORT],
  ['least-conn', SCHED_LEAST_CONN],
  ['sticky', SCHED_STICKY],
]);
const NAMES = new Map([...BY_NAME].map(([name, value]) => [value, name]));

const CONSTANTS = {
  SCHED_NONE, SCHED_RR, SCHED_REUSEPORT, SCHED_LEAST_CONN, SCHED_STICKY,
};

function isPolicy(value) {
  return NAMES.has(value);
}

function nameOf(value) {
  return NAMES.get(value);
}

// A policy name (NODE_CLUSTER_SCHED_POLICY, --policy); undefined when unknown.
function fromName(name) {
  return BY_NAME.get(name);
}

function isUdp(m) {
  return m.addressType === 'udp4' || m.addressType === 'udp6';
}

function atLeastZero(n) {
  return typeof n === 'number' && n >= 0;
}

// Who serves a server key under `policy` (protocol.md §4.4 query fields):
//   { kind: 'shared' }                 SharedHandle: one socket, dup'd to every worker
//   { kind: 'rr', distributor }        the primary accepts; Rust's distributor picks the worker
//   { kind: 'reuseport' }              one SO_REUSEPORT socket per worker
// UDP is shared except under reuseport; reuseport needs an IP address and port (a unix socket
// or a worker's `listen({fd})` keeps round-robin).
function kindFor(policy, m) {
  const udp = isUdp(m);
  if (policy === SCHED_REUSEPORT) {
    if (udp) return m.fd > 0 ? { kind: 'shared' } : { kind: 'reuseport' };
    if (!atLeastZero(m.fd) && atLeastZero(m.port)) return { kind: 'reuseport' };
    return { kind: 'rr', distributor: null };
  }
  if (udp || policy === SCHED_NONE) return { kind: 'shared' };
  if (policy === SCHED_LEAST_CONN) return { kind: 'rr', distributor: 'least-conn' };
  if (policy === SCHED_STICKY) return { kind: 'rr', distributor: 'sticky' };
  return { kind: 'rr', distributor: null };
}

module.exports = {
  ...CONSTANTS,
  CONSTANTS,
  NAMES: [...BY_NAME.keys()],
  isPolicy,
  nameOf,
  fromName,
  kindFor,
};
