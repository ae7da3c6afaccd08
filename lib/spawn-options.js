'use strict';

// Turns cluster.settings + fork(env) into the options of binding.spawnWorker, validating
// them the way child_process.fork/spawn would (same codes, same order where it matters), so
// that a bad setting throws from cluster.fork() exactly as it does with the built-in.

const { inspect } = require('node:util');
const { fileURLToPath } = require('node:url');
const errors = require('./errors');
const settingsLib = require('./settings');
const nodeLine = require('./node-line');

// Some messages changed between Node lines; we say what the running Node would say.
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

function isInt32(value) {
  return value === (value | 0);
}

// stdio given as one word: three copies of it, plus the channel.
function expandStdioWord(word) {
  switch (word) {
    case 'ignore':
    case 'overlapped':
    case 'pipe':
      return [word, word, word, 'ipc'];
    case 'inherit':
      // 'inherit' rather than 0/1/2: a closed stdio fd in the primary must not fail the spawn.
      return ['inherit', 'inherit', 'inherit', 'ipc'];
    default:
      throw errors.invalidArgValue('stdio', word);
  }
}

function stdioLayout(settings) {
  const { stdio } = settings;
  if (typeof stdio === 'string') return expandStdioWord(stdio);
  if (!Array.isArray(stdio)) return expandStdioWord(settings.silent ? 'pipe' : 'inherit');
  if (!stdio.includes('ipc')) throw errors.ipcRequired('options.stdio');
  return stdio;
}

// The fd of a raw handle object (TCP/Pipe/TTY/UDP wrap), if `value` is one.
function rawHandleFd(value) {
  if (value === null || typeof value !== 'object') return undefined;
  const name = value.constructor && value.constructor.name;
  if (!['TCP', 'Pipe', 'TTY', 'UDP'].includes(name)) return undefined;
  return typeof value.fd === 'number' && value.fd >= 0 ? value.fd : undefined;
}

// One slot of the layout as the binding wants it: 'pipe' | 'ignore' | 'ipc' | 'inherit' |
// <parent fd>, with child_process's rules and errors for everything else.
function bindingSlot(entry, index) {
  if (entry == null) return index < 3 ? 'pipe' : 'ignore';
  if (entry === 'ignore' || entry === 'ipc' || entry === 'inherit') return entry;
  if (entry === 'pipe' || entry === 'overlapped' || (typeof entry === 'number' && entry < 0)) {
    return 'pipe';
  }
  if (typeof entry === 'number') return entry;
  if (typeof entry.fd === 'number') return entry.fd;
  const fd = rawHandleFd(entry) ?? rawHandleFd(entry.handle) ?? rawHandleFd(entry._handle);
  if (fd !== undefined) return fd;
  if (ArrayBuffer.isView(entry) || typeof entry === 'string') {
    throw errors.invalidSyncForkInput(inspect(entry));
  }
  throw errors.invalidArgValue('stdio', inspect(entry));
}

function bindingStdio(layout) {
  const slots = [];
  let ipcIndex = -1;
  for (let i = 0; i < layout.length; i++) {
    const slot = bindingSlot(layout[i], i);
    if (slot === 'ipc') {
      if (ipcIndex !== -1) throw errors.ipcOnePipe();
      ipcIndex = i;
    }
    slots.push(slot);
  }
  return { slots, ipcIndex };
}

// A path given as a string, Buffer or file: URL, as fs and child_process accept it.
function validatedPath(value, name) {
  let path = value;
  if (value instanceof URL) path = fileURLToPath(value);
  else if (Buffer.isBuffer(value)) path = value.toString();
  else if (typeof value !== 'string') {
    throw errors.invalidArgType(name, ['string', 'Buffer', 'URL'], value);
  }
  if (path.includes('\u0000')) {
    throw errors.invalidArgValue(name, value, NODE_MAJOR < 20
      ? 'must be a string or Uint8Array without null bytes'
      : 'must be a string, Uint8Array, or URL without null bytes');
  }
  return path;
}

function validatedId(value, name) {
  if (value == null) return undefined;
  if (isInt32(value)) return value;
  // Newer lines (26; 24 still has the old check) use the generic int32 validation.
  if (NODE_MAJOR < 25) throw errors.invalidArgType(name, 'int32', value);
  if (typeof value !== 'number') throw errors.invalidArgType(name, 'number', value);
  if (!Number.isInteger(value)) throw errors.outOfRange(name, 'an integer', value);
  throw errors.outOfRange(name, '>= -2147483648 && <= 2147483647', value);
}

// Everything needed to spawn worker `id` from `cluster.settings`. Throws synchronously on
// invalid settings.
// `counter` carries the per-primary inspector port offset (settings.workerExecArgv).
function build(cluster, id, env, counter) {
  const execArgv = settingsLib.workerExecArgv(cluster, counter);
  const { settings } = cluster;
  const exec = validatedPath(settings.exec, 'modulePath');

  let args = settings.args;
  if (args == null) args = [];
  else if (!Array.isArray(args)) throw errors.invalidArgType('args', 'Array', args);
  execArgv.forEach((a, i) => settingsLib.nullCheck(a, `options.execArgv[${i}]`));

  const layout = stdioLayout(settings);
  const file = process.execPath;
  const argv = [file, ...execArgv, exec, ...args];
  argv.forEach((a, i) => settingsLib.nullCheck(a, `args[${i}]`));
  const cwd = settings.cwd == null ? undefined : validatedPath(settings.cwd, 'options.cwd');
  const uid = validatedId(settings.uid, 'options.uid');
  const gid = validatedId(settings.gid, 'options.gid');

  const { slots, ipcIndex } = bindingStdio(layout);
  const { serialization } = settings;
  if (serialization !== undefined && serialization !== 'json' && serialization !== 'advanced') {
    throw errors.invalidArgValue('options.serialization', serialization,
                                 "must be one of: undefined, 'json', 'advanced'");
  }
  const mode = serialization || 'json';
  const envPairs = settingsLib.workerEnv(id, env, ipcIndex, mode);

  const limits = settingsLib.channelLimits(settings);
  const options = { file, args: argv, env: envPairs, stdio: slots, serialization: mode };
  if (limits.maxFrameBytes !== undefined) options.maxFrameBytes = limits.maxFrameBytes;
  if (mode === 'advanced' && nodeLine.advancedReaderStallsOnSplitPrefix()) {
    options.splitSensitiveReader = true;
  }
  if (cwd !== undefined) options.cwd = cwd;
  if (uid !== undefined) options.uid = uid;
  if (gid !== undefined) options.gid = gid;
  return { options, layout, serialization: mode, spawnfile: file, spawnargs: argv,
           maxQueuedBytes: limits.maxQueuedBytes };
}

module.exports = { build, stdioLayout, bindingStdio };
