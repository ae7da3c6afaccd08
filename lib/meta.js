'use strict';

// What cluster-rs records about each worker beside Node's fields (for supervision, rolling
// reloads and stats), kept off the Worker object so that nothing user-visible changes.

const records = new WeakMap();

// Workers forked and not yet exited, in fork order (cluster.workers drops a worker as soon as
// the primary disconnects it; shutdown() must still wait for it).
const live = new Set();

let nextLineage = 1;

/**
 * @typedef {object} Meta
 * @property {object|undefined} env      fork(env), to start a replacement with
 * @property {number} forkedAt           Date.now() at fork
 * @property {number} forkedHr           performance.now() at fork (uptime)
 * @property {object} lineage            { id, restarts, history: number[], timer, gaveUp }
 * @property {number} listening          servers listening (listening acts minus close acts)
 * @property {number} messagesIn         messages received from the worker
 * @property {boolean} replacing         a reload's replacement not yet ready: not supervised
 */

function newLineage() {
  return { id: nextLineage++, restarts: 0, history: [], timer: null, gaveUp: false };
}

function create(worker, env, lineage) {
  const meta = {
    env,
    forkedAt: Date.now(),
    forkedHr: performance.now(),
    lineage: lineage || newLineage(),
    listening: 0,
    messagesIn: 0,
    replacing: false,
  };
  records.set(worker, meta);
  live.add(worker);
  return meta;
}

function of(worker) {
  return records.get(worker);
}

module.exports = { create, of, live, newLineage };
