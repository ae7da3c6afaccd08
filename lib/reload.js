'use strict';

// Rolling reload and graceful shutdown (opt-in APIs; nothing here runs unless called).
//
// cluster.reload([{ timeout, readyTimeout }]) -> Promise<{ replaced: [{ old, new }] }>
//   Replaces the workers alive at the call, one at a time: fork the replacement (same
//   fork(env), current cluster.settings: a changed `exec` or code on disk takes effect), wait
//   until it listens on as many servers as the old one had open ('online' for a worker with no
//   server; at most `readyTimeout` ms), then old.disconnect() and wait for its exit, SIGKILL
//   after `timeout` ms. The old worker's servers stop getting connections the moment it is
//   disconnected, and it finishes the requests it has, so a server under load drops none.
//   If a replacement dies or is not ready in time, it is killed, the remaining old workers
//   keep running and the promise rejects (ERR_CLUSTER_RELOAD_FAILED). Calls made during a
//   reload run after it, one after the other.
//
// cluster.shutdown([{ timeout }]) -> Promise<{ workers, killed }>
//   Cancels pending restarts, disconnects every worker, SIGKILLs what is still alive after
//   `timeout` ms (default 10 s; Infinity waits), resolves once every worker has exited.
//   Restarts (respawn) stay off until it resolves; a second call returns the same promise.

const { makeError } = require('./errors');
const validate = require('./validate');
const meta = require('./meta');

const DEFAULT_TIMEOUT = 10_000;
const DEFAULT_READY_TIMEOUT = 30_000;

function failed(message) {
  return makeError(Error, 'ERR_CLUSTER_RELOAD_FAILED', message);
}

function alive(worker) {
  return worker.process !== undefined && worker.process.pid !== undefined && !worker.isDead();
}

// Resolves once `worker` listens on `servers` servers (or is online, for 0).
function whenReady(worker, servers, ms) {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const listeners = {
      online() { if (servers === 0) done(null); },
      listening() { if (++seen >= servers && servers > 0) done(null); },
      exit(code, signal) {
        done(failed(`replacement worker ${worker.id} exited (${signal || `code ${code}`}) before it was ready`));
      },
      disconnect() { done(failed(`replacement worker ${worker.id} disconnected before it was ready`)); },
    };
    const timer = setTimeout(() => done(failed(`replacement worker ${worker.id} was not ready after ${ms} ms`)), ms);
    function done(err) {
      clearTimeout(timer);
      for (const [event, fn] of Object.entries(listeners)) worker.removeListener(event, fn);
      if (err) reject(err);
      else resolve();
    }
    for (const [event, fn] of Object.entries(listeners)) worker.on(event, fn);
  });
}

// Disconnects `worker` and resolves when it has exited (SIGKILL after `ms`): { killed }.
function retire(worker, ms) {
  return new Promise((resolve) => {
    if (!alive(worker)) {
      resolve({ killed: false });
      return;
    }
    let killed = false;
    const timer = ms === Infinity ? null : setTimeout(() => {
      killed = true;
      try { worker.process.kill('SIGKILL'); } catch { /* already gone */ }
    }, ms);
    worker.once('exit', () => {
      if (timer) clearTimeout(timer);
      resolve({ killed });
    });
    if (worker.isConnected()) worker.disconnect();
  });
}

/**
 * @param {object} io
 * @param {object} io.cluster
 * @param {(env, lineage, replacing) => object} io.fork
 * @param {{ cancelAll(): void }} io.supervisor
 */
function createLifecycle({ cluster, fork, supervisor }) {
  let reloadChain = Promise.resolve();
  let shutdownPromise = null;
  // Bumped by cluster.disconnect(): reloads under way stop before their next replacement.
  let generation = 0;

  async function replaceAll(timeout, readyTimeout) {
    const started = generation;
    const replaced = [];
    const olds = Object.values(cluster.workers)
      .filter((w) => w && alive(w) && w.isConnected() && !w.exitedAfterDisconnect);
    for (const old of olds) {
      if (shutdownPromise !== null) throw makeError(Error, 'ERR_CLUSTER_SHUTTING_DOWN', 'cluster is shutting down');
      if (generation !== started) {
        throw Object.assign(failed('reload interrupted by cluster.disconnect()'), { replaced });
      }
      if (!alive(old) || !old.isConnected() || old.exitedAfterDisconnect) continue;
      const m = meta.of(old);
      const fresh = fork(m?.env, m?.lineage, true);
      try {
        await whenReady(fresh, m ? m.listening : 0, readyTimeout);
      } catch (err) {
        if (alive(fresh)) fresh.process.kill('SIGKILL');
        err.replaced = replaced;
        throw err;
      }
      const fm = meta.of(fresh);
      fm.replacing = false;
      // A reload is a fresh start for the lineage's crash-loop accounting.
      fm.lineage.history = [];
      fm.lineage.gaveUp = false;
      await retire(old, timeout);
      replaced.push({ old: old.id, new: fresh.id });
    }
    return { replaced };
  }

  function reload(options) {
    try {
      options = validate.object(options, 'options');
      const timeout = validate.count(options.timeout, 'options.timeout', DEFAULT_TIMEOUT, { infinite: true });
      const readyTimeout = validate.count(options.readyTimeout, 'options.readyTimeout',
                                          DEFAULT_READY_TIMEOUT, { min: 1 });
      if (shutdownPromise !== null) {
        throw makeError(Error, 'ERR_CLUSTER_SHUTTING_DOWN', 'cluster is shutting down');
      }
      const run = reloadChain.catch(() => {}).then(() => replaceAll(timeout, readyTimeout));
      reloadChain = run;
      return run;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  function shutdown(options) {
    let timeout;
    try {
      options = validate.object(options, 'options');
      timeout = validate.count(options.timeout, 'options.timeout', DEFAULT_TIMEOUT, { infinite: true });
    } catch (err) {
      return Promise.reject(err);
    }
    if (shutdownPromise !== null) return shutdownPromise;
    supervisor.cancelAll();
    const workers = [...meta.live].filter(alive);
    shutdownPromise = Promise.all(workers.map((w) => retire(w, timeout))).then((results) => {
      shutdownPromise = null;
      return { workers: workers.length, killed: results.filter((r) => r.killed).length };
    });
    return shutdownPromise;
  }

  return {
    reload,
    shutdown,
    shuttingDown: () => shutdownPromise !== null,
    abortReloads() { generation += 1; },
  };
}

module.exports = { createLifecycle, DEFAULT_TIMEOUT, DEFAULT_READY_TIMEOUT };
