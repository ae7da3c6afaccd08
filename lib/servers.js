'use strict';

// Glue between the primary (lib/primary.js) and the listener registry (lib/distribution.js):
// the registry decides which listener answers a worker's queryServer and when listeners close;
// this file gives it the frozen scheduling policy, a way to reply (with or without an fd),
// and each worker's binding handle (Rust's round-robin hands connections to it).

const { createDistribution } = require('./distribution');
const control = require('./control');
const { bindingHandle } = require('./worker-process');

function createServers(policy) {
  const distribution = createDistribution({
    policy,
    reply(worker, fields, fd, handleType) {
      if (fd === undefined) return control.send(worker, fields);
      return control.sendWithFd(worker, fields, fd, handleType);
    },
    handleOf: (worker) => bindingHandle(worker.process),
  });

  return {
    queryServer: distribution.queryServer,
    close: distribution.close,
    removeWorker: distribution.removeWorker,
    // Listeners some worker still uses; 0 once every worker has left (else a leak).
    inUse() {
      let n = 0;
      for (const listener of distribution.listeners.values()) {
        if (listener.workers.size > 0) n += 1;
      }
      return n;
    },
  };
}

module.exports = { createServers };
