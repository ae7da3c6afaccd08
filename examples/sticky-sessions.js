'use strict';

// Sticky sessions: every connection from one client address is served by the same worker
// (what WebSocket fallbacks and in-memory sessions need), with cluster-rs's handle passing.
//
// The primary owns the listening socket and never reads from a connection: it accepts it
// paused (`pauseOnConnect`), picks a worker from a hash of the client's address, and hands
// the socket over with `worker.send('sticky:connection', socket)`. The worker's HTTP server
// does not listen at all; it is fed the sockets it is given.
//
//   node examples/sticky-sessions.js        PORT=8000 HOST=127.0.0.1 WORKERS=<CPUs>
//   curl http://127.0.0.1:8000/             (the same worker answers every time)
//
// SIGINT/SIGTERM stop the listener, disconnect the workers and exit once they are gone.

const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const cluster = require('..');

const STICKY = 'sticky:connection';

// FNV-1a: cheap, and spreads addresses that differ in one byte.
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function primary() {
  const port = Number(process.env.PORT ?? 8000);
  const host = process.env.HOST || '127.0.0.1';
  const count = Number(process.env.WORKERS) ||
    (os.availableParallelism ? os.availableParallelism() : os.cpus().length);

  // A fixed slot per worker: a replacement takes the slot of the worker it replaces, so
  // clients keep hashing to the same slot.
  const slots = [];
  let stopping = false;
  const spawn = (slot) => {
    const worker = cluster.fork({ STICKY_SLOT: String(slot) });
    slots[slot] = worker;
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      console.log(`worker ${worker.id} (slot ${slot}) died (${signal || code}), replacing it`);
      spawn(slot);
    });
    return new Promise((resolve) => worker.once('online', resolve));
  };

  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const worker = slots[hash(socket.remoteAddress || '') % slots.length];
    if (!worker || !worker.isConnected()) {
      socket.destroy();
      return;
    }
    // The socket belongs to the worker from here on; if it cannot get there (the worker
    // died meanwhile), cluster-rs closes it and the callback says so.
    worker.send(STICKY, socket, (err) => {
      if (err) console.log(`connection lost on its way to worker ${worker.id}: ${err.code}`);
    });
  });

  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    cluster.disconnect(() => process.exit(0));
    setTimeout(() => process.exit(1), 5000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  Promise.all(Array.from({ length: count }, (_, slot) => spawn(slot))).then(() => {
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      console.log(`sticky-sessions: http://${host}:${actual}/ served by ${count} workers`);
    });
  });
}

function worker() {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({
      worker: cluster.worker.id,
      slot: Number(process.env.STICKY_SLOT),
      pid: process.pid,
      client: req.socket.remoteAddress,
    }));
  });
  process.on('message', (message, socket) => {
    if (message !== STICKY || !socket) return;
    server.emit('connection', socket);
    // Accepted paused in the primary: start reading here.
    socket.resume();
  });
}

if (cluster.isPrimary) primary();
else worker();
