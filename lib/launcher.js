'use strict';

// `cluster-rs [options] <script> [args...]`: runs an unmodified server script on N workers.
// The launcher is the cluster's primary; the script runs in every worker as `node script args`
// would run it (its `listen()` calls are shared through the primary as usual).
//
// It prints workers coming and going on stderr, reloads on SIGHUP (cluster.reload), and on
// SIGINT/SIGTERM shuts down gracefully (cluster.shutdown; a second signal kills at once). Each
// worker leads a process group of its own, so a terminal's Ctrl-C reaches the launcher only,
// which then drains the workers. Exit status: 0 after a shutdown, 1 when the last worker died
// on its own (and nothing restarts it), 2 for bad arguments.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const USAGE = `usage: cluster-rs [options] <script> [args...]

Runs <script> on N workers of a cluster-rs primary.

options:
  -w, --workers <n>     number of workers (default: the CPU count, ${cpuCount()} here)
  -p, --policy <name>   how connections are spread: rr (default), none, reuseport,
                        least-conn, sticky
  -r, --respawn         restart workers that exit on their own (with backoff; a worker that
                        keeps crashing is given up after 10 restarts in a minute)
      --grace-ms <ms>   how long a reload or shutdown waits for a worker to finish before
                        killing it (default 10000)
  -q, --quiet           print only errors and warnings
  -h, --help            this text
  -v, --version         the cluster-rs version

signals: SIGHUP reloads the workers one at a time; SIGINT/SIGTERM shut down gracefully
(a second one kills the workers at once).
`;

const POLICY_NAMES = ['rr', 'none', 'reuseport', 'least-conn', 'sticky'];

function cpuCount() {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

class UsageError extends Error {}

function positiveInt(flag, value, min) {
  if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
  if (!/^-?\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not '${value}'`);
  const n = Number(value);
  if (n < min) throw new UsageError(`${flag} must be at least ${min}, not ${value}`);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag} is too large: ${value}`);
  return n;
}

/** Parses the launcher's arguments; throws UsageError. */
function parseArgs(argv) {
  const opts = {
    workers: cpuCount(), policy: 'rr', respawn: false, graceMs: 10_000, quiet: false,
    help: false, version: false, script: null, args: [],
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { i += 1; break; }
    if (!arg.startsWith('-') || arg === '-') break;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = () => {
      if (eq > 0) return arg.slice(eq + 1);
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '-w': case '--workers': opts.workers = positiveInt(flag, value(), 1); break;
      case '-p': case '--policy': {
        const name = value();
        if (!POLICY_NAMES.includes(name)) {
          throw new UsageError(`unknown policy '${name}' (expected one of: ${POLICY_NAMES.join(', ')})`);
        }
        opts.policy = name;
        break;
      }
      case '-r': case '--respawn': opts.respawn = true; break;
      case '--grace-ms': opts.graceMs = positiveInt(flag, value(), 0); break;
      case '-q': case '--quiet': opts.quiet = true; break;
      case '-h': case '--help': opts.help = true; break;
      case '-v': case '--version': opts.version = true; break;
      default: throw new UsageError(`unknown option '${arg}'`);
    }
    if (eq > 0 && ['-r', '--respawn', '-q', '--quiet', '-h', '--help', '-v', '--version'].includes(flag)) {
      throw new UsageError(`${flag} takes no value`);
    }
  }
  if (opts.help || opts.version) return opts;
  if (i >= argv.length) throw new UsageError('no script given');
  opts.script = argv[i];
  opts.args = argv.slice(i + 1);
  return opts;
}

// The script as `node <script>` would find it (extensions, a directory's index), or null.
function resolveScript(script) {
  const absolute = path.resolve(script);
  try {
    const resolved = require.resolve(absolute);
    return fs.statSync(resolved).isFile() ? resolved : null;
  } catch {
    return null;
  }
}

function main(argv, { stderr = process.stderr, exit = process.exit } = {}) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`cluster-rs: ${err.message} (see cluster-rs --help)\n`);
    return exit(2);
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return exit(0);
  }
  if (opts.version) {
    process.stdout.write(`${require('../package.json').version}\n`);
    return exit(0);
  }
  const script = resolveScript(opts.script);
  if (script === null) {
    stderr.write(`cluster-rs: cannot find script '${opts.script}'\n`);
    return exit(2);
  }
  if (process.platform !== 'linux') {
    stderr.write(`cluster-rs: the launcher needs Linux (this is ${process.platform})\n`);
    return exit(2);
  }
  return run(opts, script, { stderr, exit });
}

function run(opts, script, { stderr, exit }) {
  const cluster = require('../index.js');
  const primary = require('./primary');
  const policies = require('./policy');

  const say = (line) => stderr.write(`[cluster-rs] ${line}\n`);
  const info = opts.quiet ? () => {} : say;

  primary.options.processGroup = true;
  cluster.schedulingPolicy = policies.fromName(opts.policy);
  cluster.setupPrimary({ exec: script, args: opts.args, respawn: opts.respawn || undefined });

  let stopping = false;
  const describe = (w) => `worker ${w.id} (pid ${w.process.pid})`;
  cluster.on('fork', (w) => info(`${describe(w)} started`));
  cluster.on('listening', (w, a) => {
    const where = a.addressType === -1 ? a.address : `${a.address ?? '*'}:${a.port}`;
    info(`${describe(w)} listening on ${where}${typeof a.addressType === 'string' ? ` (${a.addressType})` : ''}`);
  });
  cluster.on('exit', (w, code, signal) => {
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const planned = w.exitedAfterDisconnect || w.process.killed;
    (planned || stopping ? info : say)(`${describe(w)} ${how}`);
    setImmediate(checkEmpty);
  });
  cluster.on('respawn', (fresh, old, r) => {
    say(`worker ${old.id} restarted as worker ${fresh.id} (restart ${r.restarts}, after ${r.delayMs} ms)`);
  });
  cluster.on('crashloop', (w, r) => {
    say(`worker ${w.id} keeps crashing (${r.maxRestarts} restarts in ${r.windowMs} ms): not restarting it`);
    setImmediate(checkEmpty);
  });

  // The launcher ends with its last worker, unless a restart is on its way.
  function checkEmpty() {
    if (stopping) return;
    const internals = cluster[Symbol.for('cluster-rs.internals')];
    if (internals.liveWorkers() > 0 || internals.pendingRestarts() > 0) return;
    say('no workers left');
    exit(1);
  }

  let reloading = false;
  process.on('SIGHUP', () => {
    if (stopping) return;
    if (reloading) {
      info('reload already running: another one follows it');
    }
    reloading = true;
    info('SIGHUP: reloading workers one at a time');
    cluster.reload({ timeout: opts.graceMs }).then((r) => {
      info(`reload done: ${r.replaced.length} worker(s) replaced`);
    }, (err) => {
      say(`reload failed: ${err.message}`);
    }).finally(() => { reloading = false; });
  });

  const onStop = (signal) => {
    if (stopping) {
      say(`${signal} again: killing the workers`);
      for (const w of Object.values(cluster.workers)) w.process.kill('SIGKILL');
      cluster[Symbol.for('cluster-rs.internals')].killAll();
      return exit(1);
    }
    stopping = true;
    info(`${signal}: shutting down (grace ${opts.graceMs} ms)`);
    return cluster.shutdown({ timeout: opts.graceMs }).then((r) => {
      info(`all workers stopped${r.killed ? ` (${r.killed} killed after the grace period)` : ''}`);
      exit(0);
    });
  };
  process.on('SIGINT', onStop);
  process.on('SIGTERM', onStop);

  for (let i = 0; i < opts.workers; i++) cluster.fork();
  return undefined;
}

module.exports = { main, parseArgs, UsageError, USAGE };
