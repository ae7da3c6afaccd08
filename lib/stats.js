'use strict';

// cluster.stats() and worker.stats(): figures the primary has anyway, plus RSS and CPU time
// per worker from /proc (read on each call; nothing is sampled in the background).
//
// worker.stats() -> {
//   id, pid, state,
//   uptimeMs,        since fork()
//   connections,     connections the primary handed to this worker and it accepted (round-
//                    robin, least-conn, sticky, and those drained from a reuseport socket whose
//                    worker left; under SCHED_NONE/SCHED_REUSEPORT the kernel hands the rest)
//   messagesIn,      messages received from the worker (user and cluster protocol)
//   messagesOut,     messages written to the worker (user, protocol, handle acks)
//   restarts,        how many times this worker's lineage was restarted (respawn)
//   rss,             resident memory, bytes (null once it has exited)
//   cpu: { user, system }   CPU time, microseconds (null once it has exited)
// }
// cluster.stats() -> { policy, uptimeMs, workers: [worker.stats()...], totals: { workers,
//   connections, messagesIn, messagesOut, restarts, rss } }; totals count the workers still
//   alive, plus the restarts and traffic of those that are gone.

const binding = require('../binding.js');
const meta = require('./meta');
const { bindingHandle } = require('./worker-process');

function workerStats(worker) {
  const m = meta.of(worker);
  const proc = worker.process;
  const pid = proc?.pid;
  const running = pid !== undefined && !worker.isDead();
  const figures = running ? binding.procStats(pid) : null;
  const handle = proc ? bindingHandle(proc) : null;
  return {
    id: worker.id,
    pid: pid ?? null,
    state: worker.state,
    uptimeMs: m ? Math.round(performance.now() - m.forkedHr) : 0,
    connections: handle ? handle.connectionsHandedOut : 0,
    messagesIn: m ? m.messagesIn : 0,
    messagesOut: handle ? handle.framesOut : 0,
    restarts: m ? m.lineage.restarts : 0,
    rss: figures ? figures.rss : null,
    cpu: figures ? { user: figures.userMicros, system: figures.systemMicros } : null,
  };
}

/**
 * @param {object} gone  running totals of workers that exited: { connections, messagesIn,
 *   messagesOut, restarts }
 */
function clusterStats(policyName, gone) {
  const workers = [...meta.live].filter((w) => w.process?.pid !== undefined).map(workerStats);
  const sum = (key) => workers.reduce((n, w) => n + (w[key] || 0), 0);
  return {
    policy: policyName,
    uptimeMs: Math.round(process.uptime() * 1000),
    workers,
    totals: {
      workers: workers.length,
      connections: sum('connections') + gone.connections,
      messagesIn: sum('messagesIn') + gone.messagesIn,
      messagesOut: sum('messagesOut') + gone.messagesOut,
      restarts: gone.restarts,
      rss: sum('rss'),
    },
  };
}

module.exports = { workerStats, clusterStats };
