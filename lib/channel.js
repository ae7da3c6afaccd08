'use strict';

// The primary's end of one worker's IPC channel, on top of the binding's WorkerHandle.
// Rust frames, writes and reads bytes (and holds frames behind an fd in flight); this file
// keeps Node's JS-visible channel semantics: the messages of a read emitted in order from the
// nextTick queue, NODE_HANDLE pairing with the pending fd and the ACK/NACK duty, send
// callbacks, back-pressure, and the disconnect rules.
// It is exposed as `worker.process.channel`, whose only public methods are ref() and unref().

const binding = require('../binding.js');
const ipc = require('./ipc');
const handles = require('./handles');
const errors = require('./errors');

// The per-message send: the worker named by number (a class method call costs napi-rs more
// than the send itself for a small message).
const { sendFrame } = binding;

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
const EV_WRITE_FAILED = 6;

// What the binding's send() returns besides a byte count, and its flags (docs/binding-api.md).
const SENT_WRITTEN = 0;
const SEND_BYPASS = 1;
const SEND_NOTIFY = 2;

// In a batch of received messages, the fd slot of a message that is not a NODE_HANDLE.
const PLAIN = -2;

// Rust batches the writes made while our callbacks run (docs/binding-api.md); whatever is
// still batched when the process exits is written before it goes, as Node's direct writes
// would have been.
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => binding.flushDeferred());
}

function queueFull(queued, bytes, limit) {
  const err = new Error(`IPC send queue is full: ${queued} bytes queued, ${bytes} more would ` +
                        `exceed maxQueuedBytes (${limit})`);
  err.code = 'ERR_IPC_QUEUE_FULL';
  return err;
}

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
  #worker;
  #encode;
  #json;
  #maxQueuedBytes;
  #nextId = 1;
  // Send callbacks waiting for their frame to be written, in id order.
  #writeCallbacks = [];
  // Our fd-bearing frames the worker has not answered yet: id -> { frame, sent, callback }.
  // Their callbacks wait for the answer, not only for the write.
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

  // `maxQueuedBytes` (optional): user sends fail instead of queueing past this many bytes.
  constructor(proc, handle, serialization, maxQueuedBytes) {
    this.#proc = proc;
    this.#handle = handle;
    this.#worker = handle.workerId;
    this.#json = serialization !== 'advanced';
    this.#encode = ipc.encoder(serialization);
    this.#maxQueuedBytes = maxQueuedBytes;
    installExitHook();
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
    if (this.#maxQueuedBytes !== undefined && !ipc.isInternal(message)) {
      const err = this.#checkQueueLimit(frame);
      if (err !== null) {
        this.#report(err, callback);
        return false;
      }
    }
    const hasCallback = typeof callback === 'function';
    // An id names the send in Rust's reports; one that reports nothing needs none.
    const id = commit !== null || hasCallback || !options.swallowErrors ? this.#nextId++ : 0;
    // WRITTEN is only wanted for a callback waiting on the write (a handle's waits on the ACK).
    const flags = commit === null && hasCallback ? SEND_NOTIFY : 0;
    let queued;
    try {
      queued = sendFrame(this.#worker, frame, fd, id, flags);
    } catch (err) {
      if (!options.swallowErrors) this.#report(err, callback);
      return false;
    }
    if (commit) {
      // The callback of a handle send waits for the worker's answer: an error if the worker
      // goes away first (the handle is closed here then).
      this.#inFlight.set(id, { frame, sent: commit(), callback });
    } else if (hasCallback) {
      this.#writeCallbacks.push({ id, callback });
    }
    // This frame and every earlier one are on the socket. (Rust reports WRITTEN only from
    // its own poll turns, so a synchronous write is settled here.)
    if (queued === SENT_WRITTEN && id !== 0) this.#onWritten(id);
    // -1 (written when the current callback returns) counts as nothing queued.
    return queued < kHighWaterMark;
  }

  // maxQueuedBytes: null when `frame` fits, else the error to report.
  #checkQueueLimit(frame) {
    const limit = this.#maxQueuedBytes;
    // (A JSON text gets its newline in Rust.)
    const bytes = typeof frame === 'string' ? Buffer.byteLength(frame) + 1 : frame.length;
    let queued = this.#handle.writeQueueSize;
    if (queued + bytes > limit && queued > 0) {
      // Frames batched for the end of this callback count only once the socket refused them.
      this.#handle.flush();
      queued = this.#handle.writeQueueSize;
    }
    return queued + bytes > limit ? queueFull(queued, bytes, limit) : null;
  }

  // A control message carrying a raw fd we keep owning (a shared listener for the worker):
  // wrapped in NODE_HANDLE of `type` ('net.Native' or 'dgram.Native'), as Node's primary
  // sends its shared handles. Write errors surface as 'error' on the process, as in Node.
  [kSendFd](message, fd, type) {
    const frame = this.#encode({ cmd: 'NODE_HANDLE', type, msg: message });
    const id = this.#nextId++;
    let queued;
    try {
      queued = sendFrame(this.#worker, frame, fd, id, 0);
    } catch (err) {
      this.#report(err, undefined);
      return false;
    }
    this.#inFlight.set(id, { frame, sent: null, callback: undefined });
    if (queued === SENT_WRITTEN) this.#onWritten(id);
    return queued < kHighWaterMark;
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
      case EV_WRITE_FAILED: return this.#onWriteFailed(a, b);
      default: return undefined;
    }
  }

  #report(err, callback) {
    if (typeof callback === 'function') process.nextTick(callback, err);
    else process.nextTick(() => this.#proc.emit('error', err));
  }

  #onWritten(id) {
    const callbacks = this.#writeCallbacks;
    let n = 0;
    while (n < callbacks.length && callbacks[n].id <= id) {
      process.nextTick(callbacks[n].callback, null);
      n += 1;
    }
    if (n > 0) callbacks.splice(0, n);
  }

  // Frames batched by Rust could not be written (the worker is gone): each send learns it as
  // it would have from a direct write, through its callback or an 'error' on the process.
  #onWriteFailed(err, ids) {
    for (const id of ids) {
      const i = this.#writeCallbacks.findIndex((entry) => entry.id === id);
      if (i >= 0) {
        const [{ callback }] = this.#writeCallbacks.splice(i, 1);
        process.nextTick(callback, err);
        continue;
      }
      const entry = this.#inFlight.get(id);
      if (entry !== undefined) {
        this.#inFlight.delete(id);
        if (entry.sent) handles.abandonSent(entry.sent);
        this.#report(err, entry.callback);
        continue;
      }
      this.#report(err, undefined);
    }
  }

  #onHandleReply(id, acked) {
    const entry = this.#inFlight.get(id);
    if (entry === undefined) return;
    this.#inFlight.delete(id);
    if (entry.sent && handles.settleSent(entry.sent, acked)) {
      // NACK: the worker did not get the fd. We still own the socket, so send it again.
      try {
        const again = this.#nextId++;
        sendFrame(this.#worker, entry.frame, entry.sent.raw.fd, again, 0);
        this.#inFlight.set(again, entry);
        entry.retried = true;
      } catch (err) {
        handles.abandonSent(entry.sent);
        this.#settleCallback(entry, err);
      }
    } else {
      this.#settleCallback(entry, acked ? null : handles.notReceived());
    }
    if (this.#closeWhenSettled && this.#inFlight.size === 0) this.#close(null, true);
  }

  #settleCallback(entry, err) {
    if (typeof entry.callback === 'function') {
      process.nextTick(entry.callback, err);
      entry.callback = undefined;
    }
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
    if (payload === undefined) return;
    if (payload === null) {
      // Rust could not hand the frames over (larger than V8's string limit).
      this.#close(new RangeError('IPC message too large to decode'), true);
      return;
    }
    // Decoded now, in order, emitted from one nextTick: Node queues one tick per message of
    // a read, all at once, so nothing else can run between them either (ticks queued by the
    // listeners, and promise jobs, come after the last one in both cases).
    const batch = [];
    let failure = null;
    try {
      if (this.#json) {
        // One string of lines, or (a large batch) an array of such strings.
        const parts = typeof payload === 'string' ? [payload] : payload;
        for (let p = 0; p < parts.length; p++) {
          const lines = parts[p].split('\n');
          for (let i = 0; i < lines.length; i++) this.#collect(batch, JSON.parse(lines[i]));
        }
      } else if (Array.isArray(payload)) {
        // Primitives Rust decoded already.
        for (let i = 0; i < payload.length; i++) this.#collect(batch, payload[i]);
      } else {
        const end = payload.length;
        let off = 0;
        while (off < end) {
          const start = off + 4;
          off = start + payload.readUInt32BE(off);
          this.#collect(batch, ipc.decodeAdvancedAt(payload, start, off));
        }
      }
    } catch (err) {
      failure = err;
    }
    if (batch.length > 0) process.nextTick(this.#runBatch, this, batch, 0);
    if (failure !== null) {
      // A worker sent something Node's own writer never produces. Drop the channel rather
      // than the primary (Node's primary would crash). Reading stops now; the teardown
      // waits for the messages before it, which still count.
      this.#handle.closeChannel();
      this.#broken = true;
      process.nextTick(() => this.#close(failure, false));
    }
  }

  // Adds one decoded message to a batch: [message, fd] pairs, where a NODE_HANDLE wrapper
  // takes the pending fd (-1 for none) and any other message has PLAIN.
  #collect(batch, message) {
    if (ipc.isInternal(message) && message.cmd === 'NODE_HANDLE') {
      batch.push(message, this.#pendingFd);
      this.#pendingFd = -1;
    } else {
      batch.push(message, PLAIN);
    }
  }

  // Emits the messages of a batch from `i` on. If a listener throws, the exception goes its
  // usual way and the rest of the batch follows on a new tick, as Node's separate ticks would
  // go on (the one difference: ticks that listeners queued before the throw now run before
  // the rest of the batch, where Node runs them after it).
  #runBatch(self, batch, i) {
    try {
      for (; i < batch.length; i += 2) {
        const fd = batch[i + 1];
        if (fd === PLAIN) self.#dispatch(batch[i], undefined);
        else self.#dispatchHandle(batch[i], fd);
      }
    } finally {
      if (i < batch.length) process.nextTick(self.#runBatch, self, batch, i + 2);
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
      sendFrame(this.#worker, this.#encode(message), -1, 0, bypass ? SEND_BYPASS : 0);
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
    // Handles the worker never answered: closed here, and their senders told.
    for (const entry of this.#inFlight.values()) {
      if (entry.sent) handles.abandonSent(entry.sent);
      this.#settleCallback(entry, errors.ipcChannelClosed());
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
