'use strict';

// The primary's half of server sharing (protocol.md §4.4–§6): answering a worker's
// `queryServer`, one listener per server key, and leaving keys on `close`, disconnect or exit.
//
// Round-robin (the default for TCP and unix sockets): the listening socket lives here and Rust
// accepts and hands each connection to a worker (`RoundRobinHandle`); no JavaScript runs per
// connection. Shared (SCHED_NONE, and always for UDP): a bound socket is handed to every worker,
// which accepts or receives by itself.

const net = require('node:net');
const path = require('node:path');
const binding = require('../binding.js');
const { keysOmitIndexForFixedPorts } = require('./node-line');
const { Listener } = require('./listener');
const policies = require('./policy');
const { ReuseportListener, ReuseportUnsupported } = require('./reuseport');

const UV_EINVAL = -22;
const UV_TCP_IPV6ONLY = 1;
const UV_UDP_IPV6ONLY = 1;
const UV_UDP_REUSEADDR = 4;
const PIPE_READABLE = 0o444;
const PIPE_WRITABLE = 0o222;

// JS string conversion of each part, so absent fields read `undefined` as in Node's keys.
// Lines with Node's port-reuse fix leave the index out for fixed ports (see ./node-line.js).
const OMIT_INDEX = keysOmitIndexForFixedPorts();
function serverKey(m) {
  const base = `${m.address}:${m.port}:${m.addressType}:${m.fd}`;
  return OMIT_INDEX && m.port !== 0 ? base : `${base}:${m.index}`;
}

function errnoOf(err) {
  return typeof err?.errno === 'number' && err.errno < 0 ? err.errno : UV_EINVAL;
}

// `null >= 0` is true in JS: fields must really be numbers to count.
function atLeastZero(n) {
  return typeof n === 'number' && n >= 0;
}

function isUdp(m) {
  return m.addressType === 'udp4' || m.addressType === 'udp6';
}

// Unix socket paths are limited to ~107 bytes: bind the shorter of the absolute path the worker
// sent and the path relative to our own cwd.
function shortestPath(address) {
  const relative = path.relative(process.cwd(), address);
  return relative.length < address.length ? relative : address;
}

class RoundRobinListener extends Listener {
  // `distributor`: Rust's policy for picking the worker (lib/policy.js), null for round-robin.
  constructor(key, m, distributor = null) {
    super(key);
    this.distributor = distributor;
    this.rr = null;
    this.sockname = null;
    this.unlinkPath = null;
    if (atLeastZero(m.fd) || atLeastZero(m.port)) this.listenInet(m);
    else if (isAbstract(m)) this.listenInet(m, { path: shortestPath(m.address), backlog: m.backlog });
    else this.listenUnix(m);
  }

  // TCP (and abstract unix names, which no file ties to the net.Server) goes through
  // net.Server.listen, for the built-in's exact bind semantics (dual-stack fallback, errors).
  // Once it listens, Rust takes a duplicate of the fd and the net.Server is closed before the
  // loop ever polls it, so libuv never accepts on it.
  listenInet(m, pathOptions) {
    const server = net.createServer();
    server.once('error', (err) => this.settle(errnoOf(err)));
    server.once('listening', () => {
      try {
        const addr = server.address();
        if (typeof addr === 'object' && addr !== null) {
          this.sockname = { address: addr.address, family: addr.family, port: addr.port };
        }
        this.rr = binding.createRoundRobin(server._handle.fd, this.key, null, this.distributor);
        server.close();
        this.settle(null);
      } catch (err) {
        server.close();
        this.settle(errnoOf(err));
      }
    });
    // A worker's nonsense (port 'abc' or 1e6, address 42) makes listen() throw: an errno
    // reply for that worker, not an exception that takes the primary down.
    try {
      if (pathOptions) {
        server.listen(pathOptions);
      } else if (atLeastZero(m.fd)) {
        server.listen({ fd: m.fd, backlog: m.backlog });
      } else {
        server.listen({
          port: m.port,
          host: m.address ?? undefined,
          ipv6Only: Boolean(m.flags & UV_TCP_IPV6ONLY),
          backlog: m.backlog,
        });
      }
    } catch (err) {
      process.nextTick(() => this.settle(errnoOf(err)));
    }
  }

  // Unix sockets are bound in Rust: closing a net.Server would unlink the path under us.
  listenUnix(m) {
    if (typeof m.address !== 'string' || m.address === '') {
      process.nextTick(() => this.settle(UV_EINVAL));
      return;
    }
    const where = shortestPath(m.address);
    const addMode = (m.readableAll ? PIPE_READABLE : 0) | (m.writableAll ? PIPE_WRITABLE : 0);
    let fd = -1;
    try {
      fd = binding.bindUnix(where, m.backlog || 511, addMode || null);
      this.unlinkPath = where.startsWith('\0') ? null : where;
      this.rr = binding.createRoundRobin(fd, this.key, this.unlinkPath, this.distributor);
      process.nextTick(() => this.settle(null));
    } catch (err) {
      process.nextTick(() => this.settle(errnoOf(err)));
    } finally {
      binding.closeFd(fd);
    }
  }

  reply() {
    return this.sockname ? { sockname: this.sockname } : {};
  }

  join(worker, handle) {
    this.workers.add(worker);
    this.rr.add(handle);
  }

  leave(worker, handle) {
    this.workers.delete(worker);
    if (this.rr && handle) this.rr.remove(handle);
    return this.workers.size === 0;
  }

  close() {
    if (this.rr) this.rr.close();
    this.rr = null;
  }
}

class SharedListener extends Listener {
  constructor(key, m) {
    super(key);
    this.fd = -1;
    this.handleType = isUdp(m) ? 'dgram.Native' : 'net.Native';
    this.ownsPath = null; // a unix socket path we bound, removed on close
    try {
      this.fd = this.bind(m);
      process.nextTick(() => this.settle(null));
    } catch (err) {
      process.nextTick(() => this.settle(errnoOf(err)));
    }
  }

  bind(m) {
    if (isUdp(m)) {
      if (m.fd > 0) return dupOf(m.fd);
      const bound = binding.bindInet({
        address: m.address || (m.addressType === 'udp6' ? '::' : '0.0.0.0'),
        port: m.port || 0,
        datagram: true,
        ipv6Only: Boolean(m.flags & UV_UDP_IPV6ONLY),
        reuseAddr: Boolean(m.flags & UV_UDP_REUSEADDR),
      });
      return bound.fd;
    }
    if (atLeastZero(m.fd)) return dupOf(m.fd);
    if (atLeastZero(m.port)) {
      return binding.bindInet({
        address: m.address ?? undefined, // napi-rs object fields take undefined, not null
        port: m.port,
        datagram: false,
        ipv6Only: Boolean(m.flags & UV_TCP_IPV6ONLY),
        reuseAddr: true,
      }).fd;
    }
    if (typeof m.address !== 'string' || m.address === '') {
      throw Object.assign(new Error('invalid address'), { errno: UV_EINVAL });
    }
    const where = shortestPath(m.address);
    if (where.startsWith('\0')) return bindAbstract(where);
    const fd = binding.bindUnix(where, null, null);
    this.ownsPath = where;
    return fd;
  }

  reply() {
    return { fd: this.fd, handleType: this.handleType };
  }

  join(worker) {
    this.workers.add(worker);
  }

  leave(worker) {
    this.workers.delete(worker);
    return this.workers.size === 0;
  }

  // Workers keep their own duplicates alive; the primary only lets go of its copy.
  close() {
    binding.closeFd(this.fd);
    this.fd = -1;
    if (this.ownsPath) {
      try { require('node:fs').unlinkSync(this.ownsPath); } catch { /* already gone */ }
    }
  }
}

// Abstract names are bound by Node's own pipe code, as the built-in binds them: libuv lines
// differ on the address length they bind and connect with (libuv 1.46, Node 20, pads the name
// to the whole sun_path; later lines do not), and clients of this Node line use its convention.
function isAbstract(m) {
  return typeof m.address === 'string' && shortestPath(m.address).startsWith('\0');
}

function bindAbstract(name) {
  const handle = net._createServerHandle(name, -1, -1);
  if (typeof handle === 'number') throw Object.assign(new Error('bind'), { errno: handle });
  try {
    return dupOf(handle.fd);
  } finally {
    handle.close();
  }
}

// The primary's fd N, as a worker's `listen({fd: N})` means it (§4.4).
function dupOf(fd) {
  const bound = binding.dupFd(fd);
  if (bound < 0) throw Object.assign(new Error('bad fd'), { errno: bound });
  return bound;
}

/**
 * @param {object} io
 * @param {() => number} io.policy  the frozen scheduling policy (lib/policy.js)
 * @param {(worker, fields: object, fd?: number, handleType?: string) => void} io.reply
 *   sends `{cmd:'NODE_CLUSTER', ...fields, seq}` to the worker, wrapped in NODE_HANDLE with
 *   the fd when one is given
 * @param {(worker) => object} io.handleOf  the worker's binding WorkerHandle
 */
function createDistribution({ policy, reply, handleOf }) {
  // The listener new workers on a key join. A worker that asks again for a key it already
  // holds (possible only where keys omit the index) gets a listener of its own, which takes
  // over the key if it binds; `all` tracks every live listener, whichever holds the key.
  const listeners = new Map(); // key -> Listener
  const all = new Set();
  let reuseportMissing = false;

  function queryServer(worker, m) {
    if (worker.exitedAfterDisconnect) return; // it is leaving: no reply, as in Node
    const key = serverKey(m);
    let listener = listeners.get(key);
    if (listener === undefined || listener.workers.has(worker)) {
      listener = createListener(key, m);
      all.add(listener);
      if (!listeners.has(key)) listeners.set(key, listener);
    }
    // The first worker's data (TLS session ticket keys) is what every worker on the key gets.
    if (!listener.data) listener.data = m.data ?? null;
    listener.whenBound((errno) => {
      const fields = { errno, key, ack: m.seq, data: listener.data };
      if (errno) {
        // Forget the failed listener so a later query can try again.
        all.delete(listener);
        if (listeners.get(key) === listener) listeners.delete(key);
        reply(worker, { ...fields, errno });
        return;
      }
      listeners.set(key, listener);
      if (!worker.isConnected()) return;
      const extra = listener.reply(worker);
      if (extra.errno) {
        reply(worker, { ...fields, errno: extra.errno }); // this worker's socket only (reuseport)
      } else if (extra.fd !== undefined) {
        listener.join(worker, handleOf(worker));
        reply(worker, { ...fields, errno: 0 }, extra.fd, extra.handleType);
        if (extra.release) extra.release();
      } else {
        reply(worker, { ...fields, ...extra });
        listener.join(worker, handleOf(worker));
      }
    });
  }

  // Per policy (lib/policy.js). Reuseport falls back to round-robin, once warned, on a kernel
  // without SO_REUSEPORT.
  function createListener(key, m) {
    const { kind, distributor } = policies.kindFor(policy(), m);
    if (kind === 'reuseport' && !reuseportMissing) {
      try {
        return new ReuseportListener(key, m, handleOf);
      } catch (err) {
        if (!(err instanceof ReuseportUnsupported)) throw err;
        reuseportMissing = true;
        process.emitWarning('SO_REUSEPORT is not available: SCHED_REUSEPORT falls back to round-robin',
                            'ClusterRsWarning');
      }
    }
    if (kind === 'shared' || (kind === 'reuseport' && isUdp(m))) return new SharedListener(key, m);
    return new RoundRobinListener(key, m, distributor ?? null);
  }

  function leave(listener, worker) {
    if (!listener.workers.has(worker)) return;
    if (listener.leave(worker, handleOf(worker))) {
      listener.close();
      all.delete(listener);
      if (listeners.get(listener.key) === listener) listeners.delete(listener.key);
    }
  }

  // The worker closed its server for `m.key`.
  function close(worker, m) {
    // A reuseport slot is free for another worker once its old worker closed its copy.
    for (const listener of all) {
      if (listener.key === m.key && listener.closedBy) listener.closedBy(worker);
    }
    for (const listener of [...all]) {
      if (listener.key === m.key && listener.workers.has(worker)) return leave(listener, worker);
    }
    return undefined;
  }

  // The worker disconnected, died, or is being disconnected: it leaves every key.
  function removeWorker(worker) {
    for (const listener of [...all]) leave(listener, worker);
  }

  return { queryServer, close, removeWorker, listeners: all };
}

module.exports = { createDistribution, serverKey };
