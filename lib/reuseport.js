'use strict';

// SCHED_REUSEPORT listeners (lib/policy.js): every worker that asks for a server key gets its
// own socket bound with SO_REUSEPORT to the key's address and port, sent as a shared handle
// (NODE_HANDLE net.Native / dgram.Native with the fd attached; the worker listens or receives
// by itself), so the kernel spreads connections (or UDP flows) with no primary on the path.
//
// TCP sockets are *slots*. The primary binds and listens on each itself, in order, and keeps a
// copy for as long as the key lives: the kernel's reuseport group then lists the slots in that
// order, and a slot whose worker left (closed its server, disconnected, crashed) stays in the
// group, still listening, its queue intact. When a worker leaves:
//   1. a steering program (classic BPF, SO_ATTACH_REUSEPORT_CBPF) sends new connections only
//      to the slots of workers still on the key;
//   2. the primary drains the slot: Rust accepts what was queued on it (and anything that
//      still arrives) and hands it to the remaining workers with `newconn`, which Node's worker
//      accepts on a shared handle as on a round-robin one.
// No connection queued on a closing worker's socket is reset. A drained slot is given to the
// next worker that joins (its old worker must have closed its copy), so the group never grows
// past the largest number of workers the key had at once. The slots close with the key.
//
// UDP sockets get no slots: each worker's socket is the only copy (datagrams in a closing
// socket's buffer are lost, as with any UDP socket), and the kernel hashes flows across them.

const binding = require('../binding.js');
const { Listener } = require('./listener');

const UV_EADDRINUSE = -98;
const UV_EINVAL = -22;
const UV_TCP_IPV6ONLY = 1;
const UV_UDP_IPV6ONLY = 1;
const UV_UDP_REUSEADDR = 4;
// setsockopt(SO_REUSEPORT) refused: the kernel lacks it.
const UNSUPPORTED = new Set(['ENOPROTOOPT', 'EOPNOTSUPP', 'ENOTSUP']);

// `address:port` -> listener: two keys on one address must not share a reuseport group (the
// built-in answers the second with EADDRINUSE; a group would silently split the traffic).
const inUse = new Map();

let warnedSteering = false;

function warnOnce(message) {
  if (warnedSteering) return;
  warnedSteering = true;
  process.emitWarning(message, 'ClusterRsWarning');
}

function errnoOf(err) {
  return typeof err?.errno === 'number' && err.errno < 0 ? err.errno : UV_EINVAL;
}

function isUdp(m) {
  return m.addressType === 'udp4' || m.addressType === 'udp6';
}

class ReuseportUnsupported extends Error {}

class ReuseportListener extends Listener {
  /**
   * @param {string} key
   * @param {object} m the first queryServer message
   * @param {(worker) => object} handleOf the worker's binding WorkerHandle
   * Throws ReuseportUnsupported when the kernel has no SO_REUSEPORT.
   */
  constructor(key, m, handleOf) {
    super(key);
    this.handleOf = handleOf;
    this.udp = isUdp(m);
    this.handleType = this.udp ? 'dgram.Native' : 'net.Native';
    this.slots = []; // TCP: { fd, index, owner, leftBy, ownerClosed, drain }
    this.byWorker = new Map(); // worker -> slot
    this.spare = -1; // UDP: the first socket, until a worker takes it
    this.steered = false;
    this.where = null; // `address:port` in `inUse`

    const first = this.#bindFirst(m);
    if (first === null) return;
    const where = `${this.udp ? 'udp' : 'tcp'}:${this.address}:${this.port}`;
    if (inUse.has(where)) {
      binding.closeFd(first);
      process.nextTick(() => this.settle(UV_EADDRINUSE));
      return;
    }
    inUse.set(where, this);
    this.where = where;
    if (this.udp) this.spare = first;
    else this.slots.push(this.#slot(first));
    process.nextTick(() => this.settle(null));
  }

  #bindFirst(m) {
    const udp = this.udp;
    let address = m.address ?? undefined;
    if (udp && !address) address = m.addressType === 'udp6' ? '::' : '0.0.0.0';
    const ipv6Only = Boolean(m.flags & (udp ? UV_UDP_IPV6ONLY : UV_TCP_IPV6ONLY));
    this.options = {
      datagram: udp,
      ipv6Only,
      reuseAddr: udp ? Boolean(m.flags & UV_UDP_REUSEADDR) : true,
      backlog: udp ? undefined : (m.backlog || 511),
    };
    try {
      const s = binding.bindReuseport({ ...this.options, address, port: udp ? (m.port || 0) : m.port });
      // Later sockets bind exactly where the first one landed (a random port is chosen once).
      this.address = s.address;
      this.port = s.port;
      return s.fd;
    } catch (err) {
      if (UNSUPPORTED.has(err?.code)) throw new ReuseportUnsupported(err.message);
      process.nextTick(() => this.settle(errnoOf(err)));
      return null;
    }
  }

  #bind() {
    return binding.bindReuseport({ ...this.options, address: this.address, port: this.port }).fd;
  }

  #slot(fd) {
    return { fd, index: this.slots.length, owner: null, leftBy: null, ownerClosed: false, drain: null };
  }

  // A key that failed to bind gives its `address:port` back.
  settle(errno) {
    if (errno && this.where !== null) this.#release();
    super.settle(errno);
  }

  // A socket for `worker`: { fd, handleType } to send (kept by us for TCP, released after the
  // send for UDP through `release`), or { errno }.
  reply(worker) {
    try {
      if (this.udp) {
        let fd = this.spare;
        this.spare = -1;
        if (fd < 0) fd = this.#bind();
        return { fd, handleType: this.handleType, release: () => binding.closeFd(fd) };
      }
      const slot = this.#freeSlot() ?? this.#slot(this.#bind());
      if (slot.index === this.slots.length) this.slots.push(slot);
      if (slot.drain) {
        // What still waits on the slot is the new owner's to accept.
        slot.drain.close(true);
        slot.drain = null;
      }
      slot.owner = worker;
      slot.leftBy = null;
      slot.ownerClosed = false;
      this.byWorker.set(worker, slot);
      return { fd: slot.fd, handleType: this.handleType };
    } catch (err) {
      return { errno: errnoOf(err) };
    }
  }

  // A slot nobody holds any more: never handed out, or left by a worker that has closed its
  // copy (its `close` act, or its exit) and fully drained.
  #freeSlot() {
    return this.slots.find((s) => s.owner === null && (
      s.leftBy === null ||
      ((s.ownerClosed || s.leftBy.isDead()) && (s.drain === null || s.drain.settled))));
  }

  join(worker, handle) {
    this.workers.add(worker);
    if (this.udp) return;
    if (handle) {
      for (const s of this.slots) if (s.drain) s.drain.add(handle);
    }
    this.#steer();
  }

  leave(worker, handle) {
    this.workers.delete(worker);
    const slot = this.byWorker.get(worker);
    this.byWorker.delete(worker);
    if (this.udp) return this.workers.size === 0;
    for (const s of this.slots) {
      if (s.drain && handle) s.drain.remove(handle);
    }
    if (slot !== undefined) {
      slot.owner = null;
      slot.leftBy = worker;
    }
    if (this.workers.size === 0) return true;
    if (slot !== undefined) {
      this.#steer();
      this.#drain(slot);
    }
    return false;
  }

  // The worker closed its server for this key (it may have left the key already, when the
  // primary disconnected it): its copy of the slot is closed.
  closedBy(worker) {
    for (const s of this.slots) {
      if (s.leftBy === worker) s.ownerClosed = true;
    }
  }

  // Rust accepts what is left on the slot and hands it to the workers still on the key.
  #drain(slot) {
    if (slot.drain) return;
    try {
      slot.drain = binding.createRoundRobin(slot.fd, this.key, null, null);
    } catch {
      return; // out of fds: the slot stays listening; its queue waits for a new owner
    }
    for (const w of this.workers) {
      const handle = this.handleOf(w);
      if (handle) slot.drain.add(handle);
    }
  }

  // New connections go to slots with a worker only. With every slot owned, the kernel's own
  // hash does the same and no program is needed.
  #steer() {
    if (this.slots.length === 0) return;
    const owned = this.slots.filter((s) => s.owner !== null).map((s) => s.index);
    if (owned.length === 0) return;
    const all = owned.length === this.slots.length;
    if (all && !this.steered) return;
    if (owned.length > binding.reuseportSteerLimit()) {
      warnOnce('SCHED_REUSEPORT: too many workers on one key to steer connections; ' +
               'connections to workers that left are handed over by the primary');
      return;
    }
    let rc = binding.steerReuseport(this.slots[0].fd, all ? [] : owned);
    // Kernels before 5.8 cannot detach a program: steer to every slot instead.
    if (rc < 0 && all) rc = binding.steerReuseport(this.slots[0].fd, owned);
    if (rc < 0) {
      warnOnce(`SCHED_REUSEPORT: cannot steer connections (errno ${rc}); ` +
               'connections to workers that left are handed over by the primary');
      return;
    }
    this.steered = !all;
  }

  #release() {
    if (this.where !== null && inUse.get(this.where) === this) inUse.delete(this.where);
    this.where = null;
  }

  // The key is gone (no worker left): what still waits has nowhere to go, as in Node.
  close() {
    this.#release();
    for (const s of this.slots) {
      if (s.drain) s.drain.close();
      s.drain = null;
      binding.closeFd(s.fd);
      s.fd = -1;
    }
    this.slots = [];
    this.byWorker.clear();
    if (this.spare >= 0) binding.closeFd(this.spare);
    this.spare = -1;
  }

  // For stats and tests.
  describe() {
    return {
      slots: this.slots.length,
      owned: this.slots.filter((s) => s.owner !== null).length,
      draining: this.slots.filter((s) => s.drain !== null).length,
      steered: this.steered,
    };
  }
}

module.exports = { ReuseportListener, ReuseportUnsupported };
