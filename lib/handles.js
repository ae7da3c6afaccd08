'use strict';

// Handles that travel with messages (protocol.md §3): what a `worker.send(msg, handle)` puts
// on the wire, what the primary does with the original afterwards, and how an fd received
// from a worker becomes a JS object again. Node's sender and receiver run in the worker
// unchanged, so the wrapper shapes and the ACK/NACK duties here are fixed by them.

const fs = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');
const errors = require('./errors');

// How often a net.Socket is resent after the worker NACKs it before we give up (Node's rule).
const MAX_RETRANSMISSIONS = 3;

function closeFd(fd) {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

function isRawHandle(handle, names) {
  return handle !== null && typeof handle === 'object' &&
    handle.constructor !== undefined && names.includes(handle.constructor.name) &&
    typeof handle.fd === 'number';
}

// dgram keeps its UDP handle behind a module-private symbol; find it by its description.
function dgramRawHandle(socket) {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const state = socket[sym];
    if (state && typeof state === 'object' && state.handle && sym.description === 'state symbol') {
      return state.handle;
    }
  }
  return null;
}

const noop = () => {};

// What to write for `send(message, handle, options)`, without touching the handle yet:
//   { message }                 the handle has nothing left to send (a socket sent before):
//                               the message goes out alone, as Node does;
//   { message: wrapper, fd, commit }
//                               a NODE_HANDLE wrapper and the fd to pass; call `commit()` once
//                               the frame is handed to the channel: it detaches the original
//                               where Node does and returns what to do when the worker
//                               answers (or null when the original stays as it is).
// Throws ERR_INVALID_HANDLE_TYPE for anything that is not a socket, server or raw handle.
function prepareSend(message, handle, options) {
  const wrapper = { cmd: 'NODE_HANDLE', type: null, msg: message };
  const keep = () => null;
  if (handle instanceof net.Socket) {
    wrapper.type = 'net.Socket';
    const raw = handle._handle;
    if (!raw) return { message };
    if (handle.server) {
      // Lets the receiver count the sockets of this server (the NODE_SOCKET_* replies).
      wrapper.key = handle.server._connectionKey;
    }
    if (options.keepOpen) return { message: wrapper, fd: raw.fd, commit: keep };
    const commit = () => {
      // The socket now belongs to the worker: stop reading here (Node only drops what it
      // reads, which loses bytes that arrive before the ACK) and forget the handle.
      if (handle.server) handle.server._connections--;
      if (typeof raw.readStop === 'function') raw.readStop();
      raw.onread = noop;
      handle._handle = null;
      handle.setTimeout(0);
      return { raw, retransmissions: 0 };
    };
    return { message: wrapper, fd: raw.fd, commit };
  }
  if (handle instanceof net.Server) {
    wrapper.type = 'net.Server';
    const raw = handle._handle;
    if (!raw) return { message };
    return { message: wrapper, fd: raw.fd, commit: keep };
  }
  if (isRawHandle(handle, ['TCP', 'Pipe'])) {
    wrapper.type = 'net.Native';
    return { message: wrapper, fd: handle.fd, commit: keep };
  }
  if (handle instanceof dgram.Socket) {
    wrapper.type = 'dgram.Socket';
    wrapper.dgramType = handle.type;
    const raw = dgramRawHandle(handle);
    if (!raw || typeof raw.fd !== 'number' || raw.fd < 0) return { message };
    return { message: wrapper, fd: raw.fd, commit: keep };
  }
  if (isRawHandle(handle, ['UDP'])) {
    wrapper.type = 'dgram.Native';
    return { message: wrapper, fd: handle.fd, commit: keep };
  }
  throw errors.invalidHandleType();
}

// The worker answered a net.Socket we sent. Returns true when the frame should be resent
// (NACK with tries left); otherwise the original handle is released.
function settleSent(sent, acked) {
  if (!acked && sent.retransmissions < MAX_RETRANSMISSIONS) {
    sent.retransmissions += 1;
    return true;
  }
  if (!acked) {
    process.emitWarning('Handle did not reach the receiving process correctly',
                        'SentHandleNotReceivedWarning');
  }
  sent.raw.close();
  return false;
}

// The channel went away before the worker answered: the handle will never be delivered.
function abandonSent(sent) {
  sent.raw.close();
}

// What the callback of a handle send gets when the worker answered NACK for good.
function notReceived() {
  const err = new Error('The handle did not reach the worker (NODE_HANDLE_NACK)');
  err.code = 'ERR_IPC_HANDLE_NOT_RECEIVED';
  return err;
}

// Builds the JS object for a received fd. `done(handle)` gets it (undefined if the fd could
// not be used, in which case the fd is closed here): no fd is left without an owner.
function receive(wrapper, fd, done) {
  try {
    switch (wrapper.type) {
      case 'net.Native': {
        const raw = net._createServerHandle(null, null, null, fd);
        if (typeof raw === 'number') break;
        return done(raw);
      }
      case 'dgram.Native': {
        const raw = dgram._createSocketHandle(null, 0, 'udp4', fd, 0);
        if (typeof raw === 'number') break;
        return done(raw);
      }
      case 'net.Socket':
        return done(new net.Socket({ fd, readable: true, writable: true }));
      case 'net.Server': {
        const server = net.createServer();
        const failed = () => done(undefined);
        server.once('error', failed);
        return server.listen({ fd }, () => {
          server.removeListener('error', failed);
          done(server);
        });
      }
      case 'dgram.Socket': {
        const socket = dgram.createSocket(wrapper.dgramType === 'udp6' ? 'udp6' : 'udp4');
        return socket.bind({ fd }, () => done(socket));
      }
      default:
        break;
    }
  } catch {
    // Fall through: an fd we cannot wrap is closed rather than leaked.
  }
  closeFd(fd);
  return done(undefined);
}

// Releases whatever `receive` produced when nobody will get it (the channel went away).
function discardReceived(handle) {
  if (!handle) return;
  if (typeof handle.destroy === 'function') handle.destroy();
  else if (typeof handle.close === 'function') handle.close();
}

// The receiving half of Node's socket-list protocol (§3.5), for net.Sockets a worker sent us
// that came from one of its servers: the worker's server.close()/getConnections() wait for
// these counts. One instance per (worker process, key).
class ReceivedSockets {
  #count = 0;
  #notify = false;
  #reply;

  constructor(key, reply) {
    this.key = key;
    this.#reply = reply;
  }

  add(socket) {
    this.#count += 1;
    socket.once('close', () => {
      this.#count -= 1;
      this.#maybeAllClosed();
    });
  }

  onMessage(message) {
    if (message.cmd === 'NODE_SOCKET_GET_COUNT') {
      this.#reply({ cmd: 'NODE_SOCKET_COUNT', key: this.key, count: this.#count });
    } else if (message.cmd === 'NODE_SOCKET_NOTIFY_CLOSE') {
      this.#notify = true;
      this.#maybeAllClosed();
    }
  }

  #maybeAllClosed() {
    if (this.#notify && this.#count === 0) {
      this.#notify = false;
      this.#reply({ cmd: 'NODE_SOCKET_ALL_CLOSED', key: this.key });
    }
  }
}

module.exports = {
  prepareSend,
  settleSent,
  abandonSent,
  notReceived,
  receive,
  discardReceived,
  closeFd,
  ReceivedSockets,
};
