'use strict';

// Entry point. Exports Node's own `cluster` object in every case:
//  - in a cluster worker, untouched (workers run Node's worker code unchanged);
//  - off Linux, untouched, with a one-time warning;
//  - in a primary on Linux, with our primary installed onto it, once per process. Keeping
//    the object (and its EventEmitter) means listeners registered before we loaded keep
//    working and every require('node:cluster') in the process shares one cluster.

const major = Number(process.versions.node.split('.')[0]);
if (major < 18) {
  throw new Error(`cluster-rs requires Node.js 18 or newer; this is Node.js ${process.version}`);
}

const cluster = require('node:cluster');

// Shared by every copy of this package loaded in the process.
const kInstalled = Symbol.for('cluster-rs.installed');
const kWarned = Symbol.for('cluster-rs.platform-warning');

function installPrimary() {
  if (cluster[kInstalled]) return;
  const { install } = require('./lib/primary');
  install(cluster);
  Object.defineProperty(cluster, 'clusterRs', {
    value: Object.freeze({ version: require('./package.json').version }),
    enumerable: false,
  });
  Object.defineProperty(cluster, kInstalled, { value: true });
  // `import { fork } from 'node:cluster'` must see our functions too.
  require('node:module').syncBuiltinESMExports();
}

if (cluster.isWorker) {
  // Nothing to do: Node's worker side talks to our primary as it would to its own.
} else if (process.platform !== 'linux') {
  if (!process[kWarned]) {
    Object.defineProperty(process, kWarned, { value: true });
    process.emitWarning(`cluster-rs supports Linux only; using the built-in node:cluster on ${process.platform}`,
                        'ClusterRsWarning');
  }
  // cluster-rs's own policies fall back to round-robin here (the warning above says why), so
  // code that names them still runs.
  for (const name of ['SCHED_REUSEPORT', 'SCHED_LEAST_CONN', 'SCHED_STICKY']) {
    if (cluster[name] === undefined) cluster[name] = cluster.SCHED_RR;
  }
} else {
  installPrimary();
}

module.exports = cluster;
