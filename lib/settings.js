'use strict';

// cluster.settings and what is derived from it per fork: the merge rules of setupPrimary
// (protocol.md §1.4), the worker's inspector port (§1.5) and the worker's environment (§1.2).

const errors = require('./errors');

// The four keys every settings object gets; anything else appears only if the user set it
// (tests compare `cluster.settings` with deepStrictEqual, so no `key: undefined` extras).
function defaults() {
  return {
    args: process.argv.slice(2),
    exec: process.argv[1],
    execArgv: process.execArgv,
    silent: false,
  };
}

// Defaults, then what was set before (including direct mutation of cluster.settings), then
// the new options. Returns a new object: cluster.settings is replaced on every call.
function merge(current, options) {
  const settings = { ...defaults(), ...current, ...options };
  // V8 writes one profile log per process only with a %p in the log name; without it every
  // worker would write into the same file and the logs would be unusable.
  const argv = settings.execArgv;
  if (someArg(argv, (s) => s.startsWith('--prof')) &&
      !someArg(argv, (s) => s.startsWith('--logfile='))) {
    settings.execArgv = [...argv, '--logfile=v8-%p.log'];
  }
  return settings;
}

// Array.prototype.some over whatever the user put there (a string or array-like works too,
// as it does with the built-in); only strings can match.
function someArg(list, test) {
  return Array.prototype.some.call(list, (s) => typeof s === 'string' && test(s));
}

// `--inspect`, `--inspect-brk`, `--inspect-port` and `--debug-port` anywhere in an argument.
const INSPECT_FLAG = /--inspect(?:-brk|-port)?|--debug-port/;
const MIN_PORT = 1024;
const MAX_PORT = 65535;

function usesInspector(execArgv) {
  if (someArg(execArgv, (s) => INSPECT_FLAG.test(s))) return true;
  const nodeOptions = process.env.NODE_OPTIONS;
  return typeof nodeOptions === 'string' && INSPECT_FLAG.test(nodeOptions);
}

// Node's port check: a number or numeric string in 0..65535 (whitespace-only strings and
// fractions are refused).
function validatePort(port) {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.trim().length === 0) ||
      +port !== (+port >>> 0) ||
      port > 0xFFFF) {
    throw errors.socketBadPort('Port', port, true);
  }
  return port;
}

// The worker's execArgv: a copy of cluster.settings.execArgv plus, when the inspector is in
// use, one `--inspect-port=P` (the last flag wins, so any host given earlier is kept).
// `counter` is the per-primary state { debugPortOffset } for the automatic ports.
function workerExecArgv(cluster, counter) {
  // Spelled like this so a non-iterable reads "cluster.settings.execArgv is not iterable".
  const execArgv = [...cluster.settings.execArgv];
  const { settings } = cluster;
  if (settings.inspectPort === null) throw errors.socketBadPort('Port', null, true);
  if (!usesInspector(execArgv)) return execArgv;

  let port;
  if (typeof settings.inspectPort === 'function') {
    port = settings.inspectPort();
  } else if (settings.inspectPort !== undefined) {
    port = settings.inspectPort;
  } else {
    counter.debugPortOffset += 1;
    port = process.debugPort + counter.debugPortOffset;
    // Past the top of the range, wrap into the unprivileged ports.
    if (port > MAX_PORT) port = port - MAX_PORT + MIN_PORT - 1;
  }
  validatePort(port);
  execArgv.push(`--inspect-port=${port}`);
  return execArgv;
}

// Variables the spawn appends itself; any inherited copy must go, because the worker's libc
// getenv() returns the first copy (protocol.md §1.2, the empty NODE_CHANNEL_FD hang).
const CHANNEL_VARS = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE'];

function nullCheck(value, name) {
  if (typeof value === 'string' && value.includes('\u0000')) {
    throw errors.invalidArgValue(name, value, 'must be a string without null bytes');
  }
}

// The worker's environment as 'KEY=value' strings, in Node's order: the primary's env, then
// fork(env), then NODE_UNIQUE_ID, and last the two channel variables. Each key appears once.
function workerEnv(id, env, ipcIndex, serialization) {
  const vars = { ...process.env, ...env, NODE_UNIQUE_ID: `${id}` };
  if (process.env.NODE_V8_COVERAGE !== undefined &&
      !Object.prototype.hasOwnProperty.call(vars, 'NODE_V8_COVERAGE')) {
    // Coverage collection follows the whole process tree unless the caller opted out.
    vars.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
  }
  const pairs = [];
  for (const key in vars) {
    if (CHANNEL_VARS.includes(key)) continue;
    const value = vars[key];
    if (value === undefined) continue;
    nullCheck(key, `options.env['${key}']`);
    nullCheck(value, `options.env['${key}']`);
    pairs.push(`${key}=${value}`);
  }
  pairs.push(`NODE_CHANNEL_FD=${ipcIndex}`);
  pairs.push(`NODE_CHANNEL_SERIALIZATION_MODE=${serialization}`);
  return pairs;
}

// The channel limits cluster-rs adds to the settings (protocol.md §2, §10). Both are optional:
//   maxQueuedBytes  user send()s fail (callback or 'error') instead of queueing past this many
//                   bytes to one worker; unset = unbounded, as the built-in;
//   maxFrameBytes   a larger frame from a worker closes its channel ('error' on the worker);
//                   unset = 1 GiB.
// Returns { maxQueuedBytes, maxFrameBytes }, undefined for what is unset.
function channelLimits(settings) {
  return {
    maxQueuedBytes: byteLimit(settings.maxQueuedBytes, 'options.maxQueuedBytes'),
    maxFrameBytes: byteLimit(settings.maxFrameBytes, 'options.maxFrameBytes'),
  };
}

function byteLimit(value, name) {
  if (value === undefined || value === null || value === Infinity) return undefined;
  if (typeof value !== 'number') throw errors.invalidArgType(name, 'number', value);
  if (!Number.isInteger(value) || value < 1 || value > Number.MAX_SAFE_INTEGER) {
    throw errors.outOfRange(name, 'a positive integer or Infinity', value);
  }
  return value;
}

module.exports = {
  defaults,
  merge,
  validatePort,
  usesInspector,
  workerExecArgv,
  workerEnv,
  nullCheck,
  channelLimits,
};
