'use strict';

// An HTTP server clustered over every CPU with cluster-rs.
//   node examples/demo-server.js          (PORT=8000 by default)
// Prints its URL and each worker as it comes online; Ctrl-C (SIGINT) disconnects every
// worker, waits for them to exit, then exits (workers that hang are killed after 5 s).

const http = require('node:http');
const os = require('node:os');
const cluster = require('..');

const port = Number(process.env.PORT || 8000);

if (cluster.isPrimary) {
  const count = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  console.log(`primary ${process.pid}: starting ${count} workers (cluster-rs ${cluster.clusterRs ? cluster.clusterRs.version : 'off: built-in cluster'})`);

  let announced = false;
  cluster.on('online', (worker) => console.log(`worker ${worker.id} (pid ${worker.process.pid}) online`));
  cluster.on('listening', (worker, address) => {
    if (announced) return;
    announced = true;
    console.log(`listening on http://127.0.0.1:${address.port}/`);
  });
  cluster.on('exit', (worker, code, signal) => {
    console.log(`worker ${worker.id} exited (${signal || code})`);
  });

  for (let i = 0; i < count; i++) cluster.fork();

  let stopping = false;
  process.on('SIGINT', () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping: disconnecting every worker');
    // Workers that do not finish their open connections in time are killed.
    const timer = setTimeout(() => {
      for (const worker of Object.values(cluster.workers)) worker.kill('SIGKILL');
    }, 5000);
    timer.unref();
    cluster.disconnect(() => {
      console.log('all workers gone');
      clearTimeout(timer);
    });
  });
} else {
  // Ctrl-C reaches the whole process group; the primary decides how workers stop.
  process.on('SIGINT', () => {});
  const server = http.createServer((req, res) => {
    res.end(`hello from worker ${cluster.worker.id} (pid ${process.pid})\n`);
  });
  server.on('error', (err) => {
    console.error(`worker ${cluster.worker.id}: cannot listen: ${err.message}`);
    process.exit(1);
  });
  server.listen(port);
}
