'use strict';

// `worker.process`: a ChildProcess look-alike over the binding's WorkerHandle. It carries the
// parts of child_process's contract that cluster code and users rely on: fields (pid,
// exitCode, signalCode, killed, connected, spawnfile, spawnargs, stdio), kill/send/disconnect,
// ref/unref, and the events spawn, exit, close, disconnect, error, message, internalMessage.

const EventEmitter = require('node:events');
const net = require('node:net');
const os = require('node:os');
const util = require('node:util');
const binding = require('../binding.js');
const errors = require('./errors');
const { Channel, kSend, kSendFd, kDisconnect, kOnEvent, kChannelClosed } = require('./channel');

const EV_EXIT = 5;

// Spawn failures that Node reports as an async 'error' event (no 'exit'); any other failure
// throws from fork().
const ASYNC_SPAWN_ERRORS = new Set(['EACCES', 'EAGAIN', 'EMFILE', 'ENFILE', 'ENOENT']);

const { signals } = os.constants;
// Number -> name; the first name listed wins (SIGABRT before SIGIOT), as in Node.
const signalNames = new Map();
for (const [name, number] of Object.entries(signals)) {
  if (!signalNames.has(number)) signalNames.set(number, name);
}

function toSignalNumber(signal) {
  if (typeof signal === 'number' && signalNames.has(signal)) return signal;
  if (typeof signal === 'string') {
    const number = signals[signal.toUpperCase()];
    if (number !== undefined) return number;
  }
  throw errors.unknownSignal(signal);
}

function systemError(errno, syscall, extra) {
  return errors.errnoError(errno, util.getSystemErrorName(errno), syscall, extra);
}

function validateSendOptions(options) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw errors.invalidArgType('options', 'Object', options);
  }
}

const kDefaultSendOptions = Object.freeze({ swallowErrors: false });

const kHandle = Symbol('kHandle');
const kClosesNeeded = Symbol('kClosesNeeded');
const kAttach = Symbol('kAttach');
const kSpawnFailed = Symbol('kSpawnFailed');
const kOnBindingEvent = Symbol('kOnBindingEvent');

class WorkerProcess extends EventEmitter {
  constructor(plan) {
    super();
    this.pid = undefined;
    this.exitCode = null;
    this.signalCode = null;
    this.killed = false;
    this.connected = false;
    this.channel = null;
    this.spawnfile = plan.spawnfile;
    this.spawnargs = plan.spawnargs;
    this.stdin = null;
    this.stdout = null;
    this.stderr = null;
    this.stdio = [];
    this[kHandle] = null;
    // 'close' waits for the exit, the channel and every readable stdio socket.
    this[kClosesNeeded] = 1;
  }

  kill(sig) {
    const signal = sig === 0 ? 0 : toSignalNumber(sig === undefined ? 'SIGTERM' : sig);
    const handle = this[kHandle];
    if (handle !== null) {
      const err = handle.kill(signal);
      if (err === 0) {
        this.killed = true;
        return true;
      }
      const code = util.getSystemErrorName(err);
      if (code === 'EINVAL' || code === 'ENOSYS') throw systemError(err, 'kill');
      // ESRCH: it is gone already. Anything else (EPERM) is reported, not thrown.
      if (code !== 'ESRCH') this.emit('error', systemError(err, 'kill'));
    }
    return false;
  }

  send(message, handle, options, callback) {
    if (typeof handle === 'function') {
      callback = handle;
      handle = undefined;
      options = undefined;
    } else if (typeof options === 'function') {
      callback = options;
      options = undefined;
    } else if (options !== undefined) {
      validateSendOptions(options);
    }
    // (Read only downstream: the common case shares one object instead of a copy per send.)
    options = options === undefined ? kDefaultSendOptions : { swallowErrors: false, ...options };
    if (this.connected && this.channel !== null) {
      return this.channel[kSend](message, handle, options, callback);
    }
    const err = errors.ipcChannelClosed();
    if (typeof callback === 'function') process.nextTick(callback, err);
    else process.nextTick(() => this.emit('error', err));
    return false;
  }

  disconnect() {
    if (!this.connected || this.channel === null) {
      this.emit('error', errors.ipcDisconnected());
      return;
    }
    this.connected = false;
    this.channel[kDisconnect]();
  }

  // Only the process: a connected channel still keeps the loop alive, as in Node.
  ref() {
    if (this[kHandle] !== null) this[kHandle].refProcess();
  }

  unref() {
    if (this[kHandle] !== null) this[kHandle].unrefProcess();
  }

  // Called by the channel once it is closed for good (locally or by the worker).
  [kChannelClosed](err) {
    this.connected = false;
    this.channel = null;
    if (err) process.nextTick(() => this.emit('error', err));
    process.nextTick(() => {
      this.emit('disconnect');
      this.#maybeClose();
    });
  }

  [kAttach](handle, plan) {
    this[kHandle] = handle;
    this.pid = handle.pid;
    this.#openStdio(handle.stdioFds, plan.options.stdio);
    const channel = new Channel(this, handle, plan.serialization, plan.maxQueuedBytes);
    this.channel = channel;
    this.connected = true;
    this[kClosesNeeded] += 1;
    process.nextTick(() => this.emit('spawn'));
  }

  // The spawn failed after fork (ENOENT for a missing cwd, EACCES, ...). Node reports it the
  // way it would report a process that never ran: exitCode = the negative errno, an 'error'
  // (no 'exit'), then 'close' and 'disconnect' for the channel that never opened.
  [kSpawnFailed](err) {
    const error = errors.errnoError(err.errno, err.code, `spawn ${this.spawnfile}`, undefined);
    error.path = this.spawnfile;
    error.spawnargs = this.spawnargs.slice(1);
    this.connected = true;
    process.nextTick(() => {
      this.exitCode = err.errno;
      this.emit('error', error);
      process.nextTick(() => {
        this.connected = false;
        this.emit('close', this.exitCode, this.signalCode);
        this.emit('disconnect');
      });
    });
  }

  [kOnBindingEvent](kind, a, b) {
    if (kind === EV_EXIT) return this.#onExit(a, b);
    if (this.channel !== null) return this.channel[kOnEvent](kind, a, b);
    return undefined;
  }

  // The primary's end of each 'pipe' slot as a net.Socket, laid out like ChildProcess.stdio.
  #openStdio(fds, slots) {
    const stdio = [];
    for (let i = 0; i < slots.length; i++) {
      const fd = fds[i];
      if (slots[i] !== 'pipe' || fd == null) {
        stdio.push(null);
        continue;
      }
      // As with child_process: stdin is write-only, the others are duplex.
      const socket = new net.Socket({ fd, readable: i > 0 });
      if (i > 0) {
        this[kClosesNeeded] += 1;
        socket.once('close', () => this.#maybeClose());
      }
      stdio.push(socket);
    }
    this.stdio = stdio;
    this.stdin = stdio[0] || null;
    this.stdout = stdio[1] || null;
    this.stderr = stdio[2] || null;
  }

  #onExit(code, signo) {
    const signal = signo == null ? null : (signalNames.get(signo) || null);
    if (signal !== null) this.signalCode = signal;
    else this.exitCode = code;
    if (this.stdin) this.stdin.destroy();
    this.emit('exit', this.exitCode, this.signalCode);
    // Output nobody reads is drained so that the pipes can close and 'close' can come.
    process.nextTick(() => {
      for (const stream of this.stdio) {
        if (stream && stream.readable && stream.readableFlowing === null) stream.resume();
      }
    });
    this.#maybeClose();
  }

  #maybeClose() {
    this[kClosesNeeded] -= 1;
    if (this[kClosesNeeded] === 0) this.emit('close', this.exitCode, this.signalCode);
  }
}

// For the primary's own protocol code (lib/servers.js): the binding's WorkerHandle, which
// Rust's round-robin hands connections to, and a way to send a raw fd we keep owning.
function bindingHandle(proc) {
  return proc[kHandle];
}

function sendRawFd(proc, message, fd, type) {
  if (!proc.connected || proc.channel === null) return false;
  return proc.channel[kSendFd](message, fd, type);
}

// Spawns one worker per a plan from spawn-options.build(). Throws what fork() must throw;
// failures Node reports asynchronously come as an 'error' event on the returned object.
function spawnWorkerProcess(plan) {
  const proc = new WorkerProcess(plan);
  let handle;
  try {
    handle = binding.spawnWorker(plan.options, (kind, a, b) => proc[kOnBindingEvent](kind, a, b));
  } catch (err) {
    if (ASYNC_SPAWN_ERRORS.has(err.code) && typeof err.errno === 'number') {
      proc[kSpawnFailed](err);
      return proc;
    }
    if (err.syscall === 'spawn' && typeof err.errno === 'number') {
      throw errors.errnoError(err.errno, err.code, 'spawn', undefined);
    }
    throw err;
  }
  proc[kAttach](handle, plan);
  return proc;
}

module.exports = { WorkerProcess, spawnWorkerProcess, toSignalNumber, bindingHandle, sendRawFd };
