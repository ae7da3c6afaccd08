'use strict';

// Supervision (opt-in): cluster.setupPrimary({ respawn: true | { maxRestarts, windowMs,
// backoffMs, maxBackoffMs } }) restarts a worker that exits on its own, i.e. without the
// primary's worker.disconnect()/kill()/destroy()/process.kill(), the worker's own
// cluster.worker.disconnect(), a rolling reload or cluster.shutdown().
//
// Each worker belongs to a lineage: the worker fork() started and its successive
// replacements. A lineage that has to be restarted more than `maxRestarts` times within
// `windowMs` is in a crash loop: instead of a restart, the cluster emits
//   'crashloop' (worker, { restarts, maxRestarts, windowMs, exitCode, signalCode })
// and the lineage stays down (a warning is printed when nobody listens). Otherwise the
// replacement is forked after `backoffMs`, doubled for every other restart in the window (at
// most `maxBackoffMs`), with the old worker's fork(env), and the cluster emits
//   'respawn' (newWorker, oldWorker, { restarts, delayMs, exitCode, signalCode })
// after the usual 'fork'. A worker that stays up for `windowMs` resets its lineage's backoff.

const validate = require('./validate');
const meta = require('./meta');

const DEFAULTS = Object.freeze({ maxRestarts: 10, windowMs: 60_000, backoffMs: 100, maxBackoffMs: 30_000 });

// setupPrimary's `respawn`: null (off) or the full settings. Throws Node-style errors.
function normalize(value) {
  if (value === undefined || value === null || value === false) return null;
  if (value === true) return { ...DEFAULTS };
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw require('./errors').invalidArgType('options.respawn', ['boolean', 'Object'], value);
  }
  return {
    maxRestarts: validate.count(value.maxRestarts, 'options.respawn.maxRestarts', DEFAULTS.maxRestarts,
                                { infinite: true }),
    windowMs: validate.count(value.windowMs, 'options.respawn.windowMs', DEFAULTS.windowMs, { min: 1 }),
    backoffMs: validate.count(value.backoffMs, 'options.respawn.backoffMs', DEFAULTS.backoffMs),
    maxBackoffMs: validate.count(value.maxBackoffMs, 'options.respawn.maxBackoffMs',
                                 DEFAULTS.maxBackoffMs),
  };
}

/**
 * @param {object} io
 * @param {object} io.cluster
 * @param {() => object|null} io.config   the current normalized `respawn` settings
 * @param {(env, lineage) => object} io.fork  forks a worker into a lineage
 * @param {() => boolean} io.paused       true while shutting down: nothing restarts
 */
function createSupervisor({ cluster, config, fork, paused }) {
  const timers = new Map(); // timer -> lineage

  // Exits the primary asked for, or the worker announced, are not crashes.
  function intended(worker) {
    const m = meta.of(worker);
    return Boolean(worker.exitedAfterDisconnect) || Boolean(worker.process?.killed) ||
      m === undefined || m.replacing;
  }

  function onExit(worker, exitCode, signalCode) {
    const settings = config();
    if (settings === null || paused() || intended(worker)) return;
    const { lineage, env } = meta.of(worker);
    if (lineage.gaveUp || lineage.timer !== null) return;
    const now = Date.now();
    lineage.history = lineage.history.filter((t) => now - t < settings.windowMs);
    if (lineage.history.length >= settings.maxRestarts) {
      lineage.gaveUp = true;
      const info = {
        restarts: lineage.restarts,
        maxRestarts: settings.maxRestarts,
        windowMs: settings.windowMs,
        exitCode,
        signalCode,
      };
      if (cluster.listenerCount('crashloop') > 0) {
        cluster.emit('crashloop', worker, info);
      } else {
        process.emitWarning(`worker ${worker.id} is crash-looping (${lineage.history.length} restarts ` +
                            `in ${settings.windowMs} ms): not restarted`, 'ClusterRsWarning');
      }
      return;
    }
    lineage.history.push(now);
    const delayMs = Math.min(settings.backoffMs * 2 ** (lineage.history.length - 1), settings.maxBackoffMs);
    const timer = setTimeout(() => {
      timers.delete(timer);
      lineage.timer = null;
      if (paused() || config() === null) return;
      lineage.restarts += 1;
      let fresh;
      try {
        fresh = fork(env, lineage);
      } catch (err) {
        process.emitWarning(`could not restart worker ${worker.id}: ${err.message}`, 'ClusterRsWarning');
        return;
      }
      cluster.emit('respawn', fresh, worker, { restarts: lineage.restarts, delayMs, exitCode, signalCode });
    }, delayMs);
    lineage.timer = timer;
    timers.set(timer, lineage);
  }

  // Restarts not yet due are dropped (cluster.disconnect(), shutdown()).
  function cancelAll() {
    for (const [timer, lineage] of timers) {
      clearTimeout(timer);
      lineage.timer = null;
    }
    timers.clear();
  }

  return { onExit, cancelAll, pendingCount: () => timers.size };
}

module.exports = { normalize, createSupervisor, DEFAULTS };
