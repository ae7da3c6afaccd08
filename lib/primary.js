'use strict';

// The primary side of the cluster API, installed onto Node's own `cluster` object so that
// every `require('node:cluster')` in the process (ours, the user's, other libraries') sees
// one cluster: the same workers, the same events. Event order and tick behaviour follow
// protocol.md §7; the one deliberate difference is cluster.disconnect(cb) (see below).

const { makeError } = require('./errors');
const Worker = require('./worker');
const settingsLib = require('./settings');
const spawnOptions = require('./spawn-options');
const { spawnWorkerProcess } = require('./worker-process');
const control = require('./control');
const { createServers } = require('./servers');
const policies = require('./policy');
const supervisorLib = require('./supervisor');
const { createLifecycle } = require('./reload');
const statsLib = require('./stats');
const meta = require('./meta');

const { SCHED_NONE, SCHED_RR } = policies;

// Set by the launcher (lib/launcher.js) before it forks: each worker then leads a process group
// of its own, so a terminal's Ctrl-C reaches the launcher only. The plain API keeps the
// built-in's behaviour (workers stay in the primary's group).
const launcherOptions = { processGroup: false };

const kDisconnectSent = Symbol('kDisconnectSent');
const kDisconnected = Symbol('kDisconnected');
const kExited = Symbol('kExited');

// Read once when the primary is set up; the user may still assign cluster.schedulingPolicy
// until the first setupPrimary().
function policyFromEnv() {
  const value = process.env.NODE_CLUSTER_SCHED_POLICY;
  if (value === 'rr') return SCHED_RR;
  if (value === 'none') return SCHED_NONE;
  // cluster-rs's own names (lib/policy.js): reuseport, least-conn, sticky.
  const extra = policies.fromName(value);
  if (extra !== undefined) return extra;
  return process.platform === 'win32' ? SCHED_NONE : SCHED_RR;
}

// Node checks these invariants with its internal assert; same code, our own wording.
function internalAssert(ok, message) {
  if (!ok) throw makeError(Error, 'ERR_INTERNAL_ASSERTION', message);
}

function install(cluster) {
  const state = {
    ids: 0,
    initialized: false,
    policy: undefined,
    ports: { debugPortOffset: 0 },
    // cluster.disconnect(cb) calls still waiting: { pending: Set<Worker>, cb }.
    waiters: [],
    // Supervision settings (setupPrimary's `respawn`), normalized; null = off.
    respawn: null,
    // What workers that have exited contributed to cluster.stats() totals.
    gone: { connections: 0, messagesIn: 0, messagesOut: 0, restarts: 0 },
  };
  const servers = createServers(() => state.policy);
  const supervisor = supervisorLib.createSupervisor({
    cluster,
    config: () => state.respawn,
    fork: (env, lineage) => {
      state.gone.restarts += 1;
      return forkWith(env, lineage, false);
    },
    paused: () => lifecycle.shuttingDown(),
  });
  const lifecycle = createLifecycle({ cluster, fork: forkWith, supervisor });

  function removeWorker(worker) {
    delete cluster.workers[worker.id];
    // Node asserts here; a warning keeps a registry bug from taking the primary down.
    if (Object.keys(cluster.workers).length === 0 && servers.inUse() > 0) {
      process.emitWarning('Resource leak detected: listeners remain after the last worker left',
                          'ClusterRsWarning');
    }
  }

  // A worker is finished once it has both disconnected and exited (or never started).
  function isFinished(worker) {
    if (worker.process === undefined || worker.process.pid === undefined) return true;
    return Boolean(worker[kDisconnected] && worker[kExited]);
  }

  function settleWaiters(worker) {
    for (const waiter of [...state.waiters]) {
      if (waiter.pending.has(worker) && isFinished(worker)) waiter.pending.delete(worker);
      if (waiter.pending.size === 0) {
        state.waiters.splice(state.waiters.indexOf(waiter), 1);
        process.nextTick(waiter.cb);
      }
    }
  }

  function onAct(message) {
    const worker = this;
    switch (message.act) {
      case 'online':
        worker.state = 'online';
        worker.emit('online');
        cluster.emit('online', worker);
        break;
      case 'queryServer':
        // A worker that is on its way out gets no new listeners (and no reply), as in Node.
        if (worker.exitedAfterDisconnect) return;
        servers.queryServer(worker, message);
        break;
      case 'listening': {
        const m = meta.of(worker);
        if (m) m.listening += 1;
        const info = {
          addressType: message.addressType,
          address: message.address,
          port: message.port,
          fd: message.fd,
        };
        worker.state = 'listening';
        worker.emit('listening', info);
        cluster.emit('listening', worker, info);
        break;
      }
      case 'exitedAfterDisconnect':
        // The worker closes its channel only after this ack.
        worker.exitedAfterDisconnect = true;
        control.reply(worker, message, {});
        break;
      case 'close': {
        const m = meta.of(worker);
        if (m && m.listening > 0) m.listening -= 1;
        servers.close(worker, message);
        break;
      }
      default:
        // Unknown acts (and stray acks such as {ack:-1}) are ignored, as Node does.
        break;
    }
  }

  function onDisconnect(worker) {
    worker[kDisconnected] = true;
    servers.removeWorker(worker);
    // Keep it in cluster.workers while its process lives: it may still be inspected.
    if (worker.isDead()) removeWorker(worker);
    worker.exitedAfterDisconnect = Boolean(worker.exitedAfterDisconnect);
    worker.state = 'disconnected';
    worker.emit('disconnect');
    cluster.emit('disconnect', worker);
    settleWaiters(worker);
  }

  function onExit(worker, exitCode, signalCode) {
    worker[kExited] = true;
    if (!worker.isConnected()) {
      servers.removeWorker(worker);
      removeWorker(worker);
    }
    worker.exitedAfterDisconnect = Boolean(worker.exitedAfterDisconnect);
    worker.state = 'dead';
    worker.emit('exit', exitCode, signalCode);
    cluster.emit('exit', worker, exitCode, signalCode);
    settleWaiters(worker);
    forget(worker);
    supervisor.onExit(worker, exitCode, signalCode);
  }

  // The worker is gone: its traffic moves to the stats totals.
  function forget(worker) {
    if (!meta.live.delete(worker)) return;
    const figures = statsLib.workerStats(worker);
    state.gone.connections += figures.connections;
    state.gone.messagesIn += figures.messagesIn;
    state.gone.messagesOut += figures.messagesOut;
  }

  function setupPrimary(options) {
    // cluster-rs's own setting, checked before anything changes (the rest is Node's).
    let respawn = state.respawn;
    if (options !== null && typeof options === 'object' && 'respawn' in options) {
      respawn = supervisorLib.normalize(options.respawn);
    }
    const settings = settingsLib.merge(cluster.settings, options);
    state.respawn = respawn;
    cluster.settings = settings;
    if (!state.initialized) {
      state.initialized = true;
      // The policy is frozen here; later assignments change the property only.
      const policy = cluster.schedulingPolicy;
      internalAssert(policies.isPolicy(policy), `Bad cluster.schedulingPolicy: ${policy}`);
      state.policy = policy;
      listenForDebugRequests(cluster);
    }
    process.nextTick(() => cluster.emit('setup', settings));
  }

  function fork(env) {
    return forkWith(env, null, false);
  }

  // fork(), and the same for a restart (into the old worker's lineage) or a reload's
  // replacement (`replacing`: not supervised until it is ready).
  function forkWith(env, lineage, replacing) {
    cluster.setupPrimary();
    // The id is used up even when the fork throws below.
    const id = ++state.ids;
    const plan = spawnOptions.build(cluster, id, env, state.ports);
    if (launcherOptions.processGroup) plan.options.processGroup = 0;
    const proc = spawnWorkerProcess(plan);
    const worker = new Worker({ id, process: proc });
    const m = meta.create(worker, env, lineage);
    m.replacing = replacing;

    // Registered before any user listener, so cluster 'message' comes first.
    worker.on('message', function onMessage(message, handle) {
      m.messagesIn += 1;
      cluster.emit('message', this, message, handle);
    });
    proc.once('exit', (exitCode, signalCode) => onExit(worker, exitCode, signalCode));
    proc.once('disconnect', () => onDisconnect(worker));
    const onInternal = control.listener(worker, onAct);
    proc.on('internalMessage', function onInternalMessage(message, handle) {
      m.messagesIn += 1;
      onInternal(message, handle);
    });
    // A spawn that failed never exits: it leaves when its (never opened) channel closes.
    if (proc.pid === undefined) proc.once('close', () => forget(worker));

    process.nextTick(() => cluster.emit('fork', worker));
    cluster.workers[worker.id] = worker;
    return worker;
  }

  // Follows the documentation rather than the built-in: `cb` runs once every worker that
  // was in cluster.workers at the call has disconnected and exited (the built-in calls it
  // when the first of them finishes). With no workers, on the next tick.
  function disconnect(cb) {
    // Restarts that were due no longer are (respawn), and a reload under way stops before its
    // next replacement; nothing to cancel otherwise.
    supervisor.cancelAll();
    lifecycle.abortReloads();
    const workers = Object.values(cluster.workers);
    for (const worker of workers) {
      if (worker.isConnected()) worker.disconnect();
    }
    if (typeof cb !== 'function') return;
    const pending = new Set(workers.filter((w) => !isFinished(w)));
    if (pending.size === 0) process.nextTick(cb);
    else state.waiters.push({ pending, cb });
  }

  // Primary-side Worker methods (they need the cluster's state).
  Worker.prototype.disconnect = function disconnectWorker() {
    this.exitedAfterDisconnect = true;
    // A second 'disconnect' can crash a worker that is still closing its servers (§2.4).
    if (!this[kDisconnectSent]) {
      this[kDisconnectSent] = true;
      control.send(this, { act: 'disconnect' });
    }
    servers.removeWorker(this);
    removeWorker(this);
    return this;
  };

  // Only a signal: no disconnect message, and exitedAfterDisconnect is left alone.
  Worker.prototype.destroy = function destroy(signo) {
    this.process.kill(signo || 'SIGTERM');
  };

  // Keep the existing objects (code may hold references to them); only fill in what is
  // missing.
  if (cluster.workers === null || typeof cluster.workers !== 'object') cluster.workers = {};
  if (cluster.settings === null || typeof cluster.settings !== 'object') cluster.settings = {};
  if (Object.keys(cluster.workers).length > 0) {
    process.emitWarning('cluster-rs was loaded after node:cluster had forked workers; ' +
                        'those workers stay with the built-in primary',
                        'ClusterRsWarning');
  }
  cluster.Worker = Worker;
  cluster.SCHED_NONE = SCHED_NONE;
  cluster.SCHED_RR = SCHED_RR;
  // A value assigned before we loaded wins, as it would have with the built-in.
  if (cluster.schedulingPolicy === undefined) cluster.schedulingPolicy = policyFromEnv();
  // The built-in read NODE_CLUSTER_SCHED_POLICY before us and does not know cluster-rs's names
  // (it chose its default): take the one the environment names.
  const named = policies.fromName(process.env.NODE_CLUSTER_SCHED_POLICY);
  if (named !== undefined && !state.initialized && cluster.schedulingPolicy === SCHED_RR &&
      named !== SCHED_NONE) {
    cluster.schedulingPolicy = named;
  }
  cluster.setupPrimary = setupPrimary;
  cluster.setupMaster = setupPrimary;
  cluster.fork = fork;
  cluster.disconnect = disconnect;

  // cluster-rs additions (opt-in: nothing runs unless called). See lib/policy.js,
  // lib/reload.js, lib/stats.js, lib/supervisor.js.
  cluster.SCHED_REUSEPORT = policies.SCHED_REUSEPORT;
  cluster.SCHED_LEAST_CONN = policies.SCHED_LEAST_CONN;
  cluster.SCHED_STICKY = policies.SCHED_STICKY;
  cluster.reload = lifecycle.reload;
  cluster.shutdown = lifecycle.shutdown;
  cluster.stats = function stats() {
    const policy = state.policy ?? cluster.schedulingPolicy;
    return statsLib.clusterStats(policies.nameOf(policy) ?? null, state.gone);
  };
  Worker.prototype.stats = function stats() {
    return statsLib.workerStats(this);
  };
  // For the launcher (lib/launcher.js): not part of the API.
  Object.defineProperty(cluster, Symbol.for('cluster-rs.internals'), {
    value: Object.freeze({
      liveWorkers: () => meta.live.size,
      pendingRestarts: () => supervisor.pendingCount(),
      killAll() {
        for (const w of meta.live) {
          try { w.process.kill('SIGKILL'); } catch { /* gone */ }
        }
      },
    }),
  });
  return cluster;
}

// Legacy: a parent of this primary may ask it to start the debugger in every worker.
function listenForDebugRequests(cluster) {
  process.on('internalMessage', (message) => {
    if (message === null || typeof message !== 'object' || message.cmd !== 'NODE_DEBUG_ENABLED') {
      return;
    }
    for (const worker of Object.values(cluster.workers)) {
      if (worker.state === 'online' || worker.state === 'listening') {
        process._debugProcess(worker.process.pid);
      } else {
        worker.once('online', function onOnline() {
          process._debugProcess(this.process.pid);
        });
      }
    }
  });
}

module.exports = { install, SCHED_NONE, SCHED_RR, policyFromEnv, options: launcherOptions };
