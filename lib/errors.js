'use strict';

// Node-style errors: the right class (TypeError/RangeError/Error), a `code`, Node's message
// wording, and a stack whose first line reads `TypeError [ERR_X]: message` as Node's does.
// Programs and Node's own tests match on `code` and often on the exact message, so the
// wording below follows the messages Node documents for each code.

const { inspect } = require('node:util');

function makeError(Base, code, message) {
  const err = new Base(message);
  // V8 renders the stack header lazily from `name`; give it the `Name [CODE]` form once,
  // then drop the own property so `err.name` reads as the class name again.
  Object.defineProperty(err, 'name', {
    value: `${Base.name} [${code}]`,
    configurable: true,
    enumerable: false,
    writable: true,
  });
  err.stack; // eslint-disable-line no-unused-expressions
  delete err.name;
  err.code = code;
  return err;
}

// How Node describes a received value in argument errors.
function describeReceived(value) {
  if (value == null) return `${value}`;
  if (typeof value === 'function' && value.name) return `function ${value.name}`;
  if (typeof value === 'object') {
    if (value.constructor && value.constructor.name) {
      return `an instance of ${value.constructor.name}`;
    }
    return inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

// Names that read as "of type x" ('Object' and 'Function' too); other capitalised names read
// as "an instance of X".
const PRIMITIVES = ['string', 'function', 'number', 'object', 'Function', 'Object', 'boolean',
                    'bigint', 'symbol'];

function listOf(items, prefix) {
  if (items.length > 2) {
    return `${prefix}${items.slice(0, -1).join(', ')}, or ${items[items.length - 1]}`;
  }
  if (items.length === 2) return `${prefix}${items[0]} or ${items[1]}`;
  return `${prefix}${items[0]}`;
}

function invalidArgType(name, expected, actual) {
  const wanted = Array.isArray(expected) ? expected : [expected];
  let msg = 'The ';
  if (name.endsWith(' argument')) msg += `${name} `;
  else msg += `"${name}" ${name.includes('.') ? 'property' : 'argument'} `;
  msg += 'must be ';

  const types = [];
  const instances = [];
  const other = [];
  for (const w of wanted) {
    if (PRIMITIVES.includes(w)) types.push(w.toLowerCase());
    else if (/^([A-Z][a-z0-9]*)+$/.test(w)) instances.push(w);
    else other.push(w);
  }
  // "an instance of Object" reads better than "of type object" when classes are listed too.
  if (instances.length > 0 && types.includes('object')) {
    types.splice(types.indexOf('object'), 1);
    instances.push('Object');
  }
  const parts = [];
  if (types.length > 0) {
    parts.push(types.length > 1 ? listOf(types, 'one of type ') : `of type ${types[0]}`);
  }
  if (instances.length > 0) parts.push(listOf(instances, 'an instance of '));
  if (other.length > 0) {
    if (other.length > 1) parts.push(listOf(other, 'one of '));
    else parts.push(`${other[0].toLowerCase() !== other[0] ? 'an ' : ''}${other[0]}`);
  }
  msg += `${parts.join(' or ')}. Received ${describeReceived(actual)}`;
  return makeError(TypeError, 'ERR_INVALID_ARG_TYPE', msg);
}

function invalidArgValue(name, value, reason = 'is invalid') {
  let shown = inspect(value);
  if (shown.length > 128) shown = `${shown.slice(0, 128)}...`;
  const kind = name.includes('.') ? 'property' : 'argument';
  return makeError(TypeError, 'ERR_INVALID_ARG_VALUE',
                   `The ${kind} '${name}' ${reason}. Received ${shown}`);
}

// 1234567890123 -> 1_234_567_890_123, as Node prints large numbers in range errors.
function withSeparators(digits) {
  let out = '';
  let i = digits.length;
  const start = digits[0] === '-' ? 1 : 0;
  for (; i >= start + 4; i -= 3) out = `_${digits.slice(i - 3, i)}${out}`;
  return `${digits.slice(0, i)}${out}`;
}

function outOfRange(name, range, received) {
  let shown = inspect(received);
  if (Number.isInteger(received) && Math.abs(received) > 2 ** 32) {
    shown = withSeparators(String(received));
  } else if (typeof received === 'bigint' && (received > 2n ** 32n || received < -(2n ** 32n))) {
    shown = `${withSeparators(String(received))}n`;
  }
  return makeError(RangeError, 'ERR_OUT_OF_RANGE',
                   `The value of "${name}" is out of range. It must be ${range}. ` +
                   `Received ${shown}`);
}

function socketBadPort(name, port, allowZero = true) {
  const op = allowZero ? '>=' : '>';
  return makeError(RangeError, 'ERR_SOCKET_BAD_PORT',
                   `${name} should be ${op} 0 and < 65536. Received ${describeReceived(port)}.`);
}

const ipcChannelClosed = () => makeError(Error, 'ERR_IPC_CHANNEL_CLOSED', 'Channel closed');
const ipcDisconnected = () =>
  makeError(Error, 'ERR_IPC_DISCONNECTED', 'IPC channel is already disconnected');
const ipcOnePipe = () =>
  makeError(Error, 'ERR_IPC_ONE_PIPE', 'Child process can have only one IPC pipe');
const ipcRequired = (name) =>
  makeError(Error, 'ERR_CHILD_PROCESS_IPC_REQUIRED',
            `Forked processes must have an IPC channel, missing value 'ipc' in ${name}`);
const invalidHandleType = () =>
  makeError(TypeError, 'ERR_INVALID_HANDLE_TYPE', 'This handle type cannot be sent');
const missingArgs = (name) =>
  makeError(TypeError, 'ERR_MISSING_ARGS', `The "${name}" argument must be specified`);
const invalidSyncForkInput = (shown) =>
  makeError(TypeError, 'ERR_INVALID_SYNC_FORK_INPUT',
            `Asynchronous forks do not support Buffer, TypedArray, DataView or string input: ${shown}`);
const unknownSignal = (signal) =>
  makeError(TypeError, 'ERR_UNKNOWN_SIGNAL', `Unknown signal: ${signal}`);

// A system error the way Node builds one from a libuv errno: "<syscall> <CODE>[ <extra>]".
function errnoError(errno, code, syscall, extra) {
  const err = new Error(extra ? `${syscall} ${code} ${extra}` : `${syscall} ${code}`);
  err.errno = errno;
  err.code = code;
  err.syscall = syscall;
  return err;
}

module.exports = {
  makeError,
  describeReceived,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  socketBadPort,
  ipcChannelClosed,
  ipcDisconnected,
  ipcOnePipe,
  ipcRequired,
  invalidHandleType,
  missingArgs,
  unknownSignal,
  invalidSyncForkInput,
  errnoError,
};
