// ESM entry: `import cluster from 'cluster-rs'` gives the same object as require('cluster-rs')
// (Node's own cluster object with the cluster-rs primary installed), and the named exports
// mirror node:cluster's plus what cluster-rs adds. `settings` and `schedulingPolicy` follow the
// object after each 'setup' event; assign the policy on the default export
// (`cluster.schedulingPolicy = cluster.SCHED_REUSEPORT`), as named imports are read-only.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cluster = require('./index.js');

export default cluster;

export const {
  isPrimary, isMaster, isWorker, Worker, workers, worker,
  SCHED_NONE, SCHED_RR, SCHED_REUSEPORT, SCHED_LEAST_CONN, SCHED_STICKY,
  fork, setupPrimary, setupMaster, disconnect, reload, shutdown, stats,
} = cluster;

export let settings = cluster.settings;
export let schedulingPolicy = cluster.schedulingPolicy;

if (cluster.isPrimary && typeof cluster.on === 'function') {
  cluster.on('setup', () => {
    settings = cluster.settings;
    schedulingPolicy = cluster.schedulingPolicy;
  });
}

// EventEmitter methods, bound so that `import { on } from 'cluster-rs'` works.
export const on = cluster.on.bind(cluster);
export const once = cluster.once.bind(cluster);
export const off = cluster.off.bind(cluster);
export const emit = cluster.emit.bind(cluster);
export const addListener = cluster.addListener.bind(cluster);
export const removeListener = cluster.removeListener.bind(cluster);
export const removeAllListeners = cluster.removeAllListeners.bind(cluster);
export const listeners = cluster.listeners.bind(cluster);
export const listenerCount = cluster.listenerCount.bind(cluster);
