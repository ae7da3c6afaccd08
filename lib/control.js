'use strict';

// The NODE_CLUSTER control envelope (protocol.md §4.1): one seq counter for the whole primary,
// `ack` only on replies, and a table of callbacks for the replies we wait for. Rust will write
// some control messages itself later (newconn); it keeps its own seq space, which is fine:
// the worker only echoes seqs back, it never compares them.

const ipc = require('./ipc');
const { sendRawFd } = require('./worker-process');

let seq = 0;
const callbacks = new Map();

// Sends `{cmd:'NODE_CLUSTER', ...message, seq}`. Control messages to a worker that is no
// longer connected are dropped silently, as Node's cluster does. `handle` is optional.
function send(worker, message, handle, callback) {
  const proc = worker.process;
  if (!proc || !proc.connected) return false;
  const envelope = { cmd: 'NODE_CLUSTER', ...message, seq };
  if (typeof callback === 'function') callbacks.set(seq, callback);
  seq += 1;
  return proc.send(envelope, handle);
}

// The same, with a raw fd (which stays ours) wrapped as a NODE_HANDLE of `type`.
function sendWithFd(worker, message, fd, type) {
  const proc = worker.process;
  if (!proc || !proc.connected) return false;
  const envelope = { cmd: 'NODE_CLUSTER', ...message, seq };
  seq += 1;
  return sendRawFd(proc, envelope, fd, type);
}

// A reply to the worker's request `request` (echoes its seq as `ack`).
function reply(worker, request, fields, handle) {
  return send(worker, { ...fields, ack: request.seq }, handle);
}

// Wraps an act handler for a worker's 'internalMessage' events: replies to our requests go
// to the callback registered for their `ack`, everything else NODE_CLUSTER to `onAct`.
function listener(worker, onAct) {
  return function onInternalMessage(message, handle) {
    if (!ipc.isInternal(message) || message.cmd !== 'NODE_CLUSTER') return;
    let fn = onAct;
    if (message.ack !== undefined) {
      const callback = callbacks.get(message.ack);
      if (callback !== undefined) {
        callbacks.delete(message.ack);
        fn = callback;
      }
    }
    fn.call(worker, message, handle);
  };
}

module.exports = { send, sendWithFd, reply, listener };
