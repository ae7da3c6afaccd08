'use strict';
// Preload for the Node compat runner (scripts/node-compat.mjs). Not part of the package.
//
// Loaded with `--require` and through NODE_OPTIONS in every Node process a compat test starts.
// It makes `require('cluster')` and `require('node:cluster')` return this package instead of the
// built-in, except for requires made from the package's own files (the package builds on the
// built-in in workers and must not load itself). With CLUSTER_RS_COMPAT_MODE=builtin it leaves
// resolution alone, so the same harness can be run against the built-in.
//
// Each process appends one JSON line to $CLUSTER_RS_COMPAT_LOG:
//   {"pid","ppid","role":"worker"|"primary","mode","argv1","loaded"(primary),"error"?,"envParent"(worker)}
// The runner fails a test when a worker's parent did not log `primary` with `loaded: true`
// (package mode), so a test cannot pass against the built-in without anyone noticing.

const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { isMainThread } = require('node:worker_threads');

const KEY = Symbol.for('cluster-rs.compat-preload');

if (!globalThis[KEY]) {
  globalThis[KEY] = true;
  install();
}

function install() {
  const mode = process.env.CLUSTER_RS_COMPAT_MODE === 'builtin' ? 'builtin' : 'package';
  const pkgDir = path.resolve(__dirname, '..', '..');
  const pkgEntry = path.join(pkgDir, 'index.js');
  const logPath = process.env.CLUSTER_RS_COMPAT_LOG;

  // The built-in, fetched before the hook exists. In a cluster worker it was loaded during
  // bootstrap (NODE_UNIQUE_ID is already gone from the env by now), so this is the child flavour.
  const builtin = require('node:cluster');
  const role = builtin.isWorker ? 'worker' : 'primary';

  // Files whose `require('cluster')` must get the built-in: the package itself.
  const ownFiles = new Set(['index.js', 'binding.js', 'register.js'].map((f) => path.join(pkgDir, f)));
  const ownDirs = [path.join(pkgDir, 'lib') + path.sep, __dirname + path.sep];
  const isOwn = (parent) => {
    const file = parent && parent.filename;
    if (typeof file !== 'string') return false;
    return ownFiles.has(file) || ownDirs.some((dir) => file.startsWith(dir));
  };

  if (mode === 'package') {
    // Module._load rather than _resolveFilename: `node:`-prefixed requests never reach
    // _resolveFilename.
    const load = Module._load;
    Module._load = function compatLoad(request, parent, isMain) {
      if ((request === 'cluster' || request === 'node:cluster') && !isOwn(parent)) {
        return load.call(this, pkgEntry, parent, false);
      }
      return load.apply(this, arguments);
    };
  }

  // Worker threads share the pid of their process: log and load only in the main thread.
  if (!isMainThread) return;

  const entry = { pid: process.pid, ppid: process.ppid, role, mode, argv1: process.argv[1] };
  let failure;
  if (role === 'worker') {
    // The primary may already be gone (ppid 1) when a worker gets here: name it from the env too.
    entry.envParent = Number(process.env.CLUSTER_RS_COMPAT_PARENT) || null;
  } else {
    entry.loaded = false;
    process.env.CLUSTER_RS_COMPAT_PARENT = String(process.pid);
  }
  if (mode === 'package' && role === 'primary') {
    // Load eagerly so that the package is in place (and can patch the built-in object) even for
    // code that reaches cluster through Node internals.
    try {
      require(pkgEntry);
      entry.loaded = true;
    } catch (err) {
      failure = err;
      entry.error = String((err && err.message) || err).split('\n')[0].slice(0, 200);
    }
  }

  if (logPath) {
    try {
      fs.appendFileSync(logPath, JSON.stringify(entry) + '\n');
    } catch {
      // An unwritable log is caught by the runner (the test process is missing from it).
    }
  }

  if (failure) {
    // Never fall back to the built-in silently: the process fails, and so does the test.
    process._rawDebug(`cluster-rs compat preload: cannot load ${pkgEntry}`);
    throw failure;
  }
}
