'use strict';

// The primary's end of one worker's IPC channel, on top of the binding's WorkerHandle.
// Rust frames, writes and reads bytes (and holds frames behind an fd in flight); this file
// keeps Node's JS-visible channel semantics: one message event per nextTick, NODE_HANDLE
// pairing with the pending fd and the ACK/NACK duty, send callbacks, and the disconnect rules.
// It is exposed as `worker.process.channel`, whose only public methods are ref() and unref().

const ipc = require('./ipc');
const handles = require('./handles');
const errors = require('./errors');

// send() starts returning false once this much waits in Rust's queue (Node: 2 × 64 KiB reads).
const kHighWaterMark = 128 * 1024;

// The WorkerProcess side of the contract (symbols keep them off the public channel object).
const kSend = Symbol('kSend');
const kSendFd = Symbol('kSendFd');
const kDisconnect = Symbol('kDisconnect');
const kOnEvent = Symbol('kOnEvent');
const kChannelClosed = Symbol('kChannelClosed');

const EV_MESSAGES = 1;
const EV_HANDLE_REPLY = 2;
const EV_WRITTEN = 3;
const EV_DISCONNECT = 4;

const MESSAGE_TYPES = ['string', 'object', 'number', 'boolean'];

// Node treats a failed read (ECONNRESET from a worker that died with unread input, ...) like
// EOF: a plain disconnect. Only a frame Node's writer never produces (oversized, malformed)
// is worth an 'error' on the worker.
function reportable(err) {
  if (!err || typeof err.syscall === 'string') return null;
  return err;
}

class Channel {
  #proc;
  #handle;
  #encode;
  #decode;
  #mode;
  #nextId = 1;
  // Send callbacks waiting for their frame to be written, in id order.
  #writeCallbacks = [];
  // Our fd-bearing frames the worker has not answered yet: id -> { frame, sent }.
  #inFlight = new Map();
  // Received fds not yet paired (libuv's queue) and the one the next NODE_HANDLE takes.
  #fdQueue = [];
  #pendingFd = -1;
  // A local disconnect waiting for the worker to answer our handle in flight (as Node waits
  // for its handle queue to drain).
  #closeWhenSettled = false;
  #open = true;
  // Set when we stopped reading on malformed input; the teardown follows on a later tick.
  #broken = false;
  #socketLists = new Map();

  constructor(proc, handle, serialization) {
    this.#proc = proc;
    this.#handle = handle;
    this.#mode = serialization;
    this.#encode = ipc.encoder(serialization);
    this.#decode = ipc.decoder(serialization);
  }

  // Whether the open channel keeps the event loop alive (it does by default).
  ref() {
    if (this.#open) this.#handle.refChannel();
  }

  unref() {
    if (this.#open) this.#handle.unrefChannel();
  }

  // process.send() once the process is known to be connected: Node's validation, the handle
  // wrapper, then one frame to Rust. Returns the back-pressure hint.
  [kSend](message, handle, options, callback) {
    if (message === undefined) throw errors.missingArgs('message');
    if (!MESSAGE_TYPES.includes(typeof message)) {
      throw errors.invalidArgType('message', MESSAGE_TYPES, message);
    }
    let fd = -1;
    let commit = null;
    if (handle) {
      const prepared = handles.prepareSend(message, handle, options);
      message = prepared.message;
      if (prepared.commit) {
        fd = prepared.fd;
        commit = prepared.commit;
      }
    }
    // Serialisation errors (BigInt in JSON, functions in advanced mode) throw here, before
    // anything was detached, as they do from Node's send().
    const frame = this.#encode(message);
    let written;
    try {
      written = this.#write(frame, fd, false);
    } catch (err) {
      if (!options.swallowErrors) this.#report(err, callback);
      return false;
    }
    if (commit) this.#inFlight.set(written.id, { frame, sent: commit() });
    if (typeof callback === 'function') this.#writeCallbacks.push({ id: written.id, callback });
    // Nothing left in Rust: this frame and every earlier one are on the socket. (Rust reports
    // WRITTEN only from its own poll turns, so a synchronous write is settled here.)
    if (written.queued === 0) this.#onWritten(written.id);
    return written.queued < kHighWaterMark;
  }

  // A control message carrying a raw fd we keep owning (a shared listener for the worker):
  // wrapped in NODE_HANDLE of `type` ('net.Native' or 'dgram.Native'), as Node's primary
  // sends its shared handles. Write errors surface as 'error' on the process, as in Node.
  [kSendFd](message, fd, type) {
    const frame = this.#encode({ cmd: 'NODE_HANDLE', type, msg: message });
    let written;
    try {
      written = this.#write(frame, fd, false);
    } catch (err) {
      this.#report(err, undefined);
      return false;
    }
    this.#inFlight.set(written.id, { frame, sent: null });
    if (written.queued === 0) this.#onWritten(written.id);
    return written.queued < kHighWaterMark;
  }

  // A local disconnect (process.disconnect()): close now, or once our handle in flight is
  // answered, so the worker is not left with a NODE_HANDLE it cannot ACK.
  [kDisconnect]() {
    if (this.#inFlight.size > 0) {
      this.#closeWhenSettled = true;
      return;
    }
    this.#close(null, true);
  }

  // Everything the binding reports about this channel (docs/binding-api.md).
  [kOnEvent](kind, a, b) {
    if (!this.#open || this.#broken) return;
    switch (kind) {
      case EV_MESSAGES: return this.#onMessages(a, b);
      case EV_HANDLE_REPLY: return this.#onHandleReply(a, b);
      case EV_WRITTEN: return this.#onWritten(a);
      case EV_DISCONNECT: return this.#close(reportable(a), false);
      default: return undefined;
    }
  }

  #write(frame, fd, bypass) {
    const id = this.#nextId++;
    const queued = this.#handle.send(frame, fd, id, bypass);
    return { id, queued };
  }

  #report(err, callback) {
    if (typeof callback === 'function') process.nextTick(callback, err);
    else process.nextTick(() => this.#proc.emit('error', err));
  }

  #onWritten(id) {
    while (this.#writeCallbacks.length > 0 && this.#writeCallbacks[0].id <= id) {
      const { callback } = this.#writeCallbacks.shift();
      process.nextTick(callback, null);
    }
  }

  #onHandleReply(id, acked) {
    const entry = this.#inFlight.get(id);
    if (entry === undefined) return;
    this.#inFlight.delete(id);
    if (entry.sent && handles.settleSent(entry.sent, acked)) {
      // NACK: the worker did not get the fd. We still own the socket, so send it again.
      try {
        const again = this.#write(entry.frame, entry.sent.raw.fd, false);
        this.#inFlight.set(again.id, entry);
      } catch {
        handles.abandonSent(entry.sent);
      }
    }
    if (this.#closeWhenSettled && this.#inFlight.size === 0) this.#close(null, true);
  }

  #onMessages(payload, fds) {
    if (fds) {
      for (const fd of fds) this.#fdQueue.push(fd);
    }
    // Node's rule: one received fd per read becomes the pending handle, replacing (here:
    // closing) one that no NODE_HANDLE took.
    if (this.#fdQueue.length > 0) {
      if (this.#pendingFd >= 0) handles.closeFd(this.#pendingFd);
      this.#pendingFd = this.#fdQueue.shift();
    }
    let items;
    if (this.#mode === 'advanced') items = payload;
    else if (typeof payload === 'string') items = payload === '' ? [] : payload.split('\n');
    if (!Array.isArray(items)) {
      // Rust could not hand the text over (larger than V8's string limit).
      this.#close(new RangeError('IPC message too large to decode'), true);
      return;
    }
    for (const item of items) {
      let message;
      try {
        message = this.#decode(item);
      } catch (err) {
        // A worker sent something Node's own writer never produces. Drop the channel rather
        // than the primary (Node's primary would crash). Reading stops now; the teardown
        // waits for the ticks of the messages before it, which still count.
        this.#handle.closeChannel();
        this.#broken = true;
        process.nextTick(() => this.#close(err, false));
        return;
      }
      if (ipc.isInternal(message) && message.cmd === 'NODE_HANDLE') {
        const fd = this.#pendingFd;
        this.#pendingFd = -1;
        process.nextTick(() => this.#dispatchHandle(message, fd));
      } else {
        process.nextTick(() => this.#dispatch(message, undefined));
      }
    }
  }

  // Emits one message on the process, as Node does on its own tick. Messages still queued
  // when the channel closed are dropped, as in Node.
  #dispatch(message, handle) {
    if (this.#proc.channel !== this) {
      handles.discardReceived(handle);
      return;
    }
    if (ipc.isInternal(message)) {
      const list = this.#socketLists.get(message.key);
      if (list !== undefined) list.onMessage(message);
      this.#proc.emit('internalMessage', message, handle);
    } else {
      this.#proc.emit('message', message, handle);
    }
  }

  #dispatchHandle(wrapper, fd) {
    if (this.#proc.channel !== this) {
      if (fd >= 0) handles.closeFd(fd);
      return;
    }
    // Every NODE_HANDLE gets exactly one answer, or the worker's sends stall for good.
    if (fd < 0) {
      this.#sendReply({ cmd: 'NODE_HANDLE_NACK' });
      return;
    }
    this.#sendReply({ cmd: 'NODE_HANDLE_ACK' });
    handles.receive(wrapper, fd, (handle) => {
      if (handle && wrapper.type === 'net.Socket' && wrapper.key !== undefined) {
        this.#socketList(wrapper.key).add(handle);
      }
      process.nextTick(() => this.#dispatch(wrapper.msg, handle));
    });
  }

  #socketList(key) {
    let list = this.#socketLists.get(key);
    if (list === undefined) {
      list = new handles.ReceivedSockets(key, (reply) => {
        if (this.#proc.connected) this.#sendReply(reply, false);
      });
      this.#socketLists.set(key, list);
    }
    return list;
  }

  // Protocol replies nobody asked to be told about: errors are swallowed, as Node does.
  #sendReply(message, bypass = true) {
    try {
      this.#write(this.#encode(message), -1, bypass);
    } catch {
      // The worker is gone; its disconnect is on its way.
    }
  }

  // The channel is finished: `local` when we closed it, otherwise Rust already has (EOF, a
  // read error or a malformed frame, then `err`). Releases every fd and handle still held.
  #close(err, local) {
    if (!this.#open) return;
    this.#open = false;
    if (local) this.#handle.closeChannel();
    if (this.#pendingFd >= 0) handles.closeFd(this.#pendingFd);
    this.#pendingFd = -1;
    for (const fd of this.#fdQueue) handles.closeFd(fd);
    this.#fdQueue = [];
    for (const entry of this.#inFlight.values()) {
      if (entry.sent) handles.abandonSent(entry.sent);
    }
    this.#inFlight.clear();
    // Frames Rust still held are gone with the channel: their callbacks learn it.
    for (const { callback } of this.#writeCallbacks.splice(0)) {
      process.nextTick(callback, errors.ipcChannelClosed());
    }
    this.#proc[kChannelClosed](err);
  }
}

module.exports = { Channel, kSend, kSendFd, kDisconnect, kOnEvent, kChannelClosed };
