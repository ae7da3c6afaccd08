// A connection-per-request HTTP client for fairness: exactly `total` connections to
// 127.0.0.1:<port>, `concurrency` at a time, each one GET with `Connection: close`; counts the
// worker named in each response body. Bounded by `timeoutMs`.
import net from 'node:net';

const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';

export function connectionsPerWorker(port, { total, concurrency = 32, timeoutMs = 60000 }) {
  return new Promise((resolve, reject) => {
    const counts = {};
    let started = 0;
    let finished = 0;
    let failed = 0;
    let lastError = null;
    let over = false;
    const t0 = process.hrtime.bigint();
    const timer = setTimeout(() => {
      over = true;
      reject(new Error(`fairness client: only ${finished} of ${total} connections after ${timeoutMs} ms`));
    }, timeoutMs);

    const one = () => {
      if (over || started >= total) return;
      started++;
      const s = net.connect(port, '127.0.0.1');
      let data = '';
      s.setEncoding('latin1');
      s.on('connect', () => s.write(REQUEST));
      s.on('data', (c) => { data += c; });
      s.on('error', (err) => { lastError = err; });
      s.on('close', () => {
        const m = /\r\n\r\n(w[^\n]*)\n/.exec(data);
        if (m) counts[m[1]] = (counts[m[1]] || 0) + 1;
        else failed++;
        finished++;
        if (finished === total) {
          clearTimeout(timer);
          if (over) return;
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          if (failed > total / 100) {
            reject(new Error(`fairness client: ${failed} of ${total} connections failed (${lastError?.code || lastError?.message || 'no body'})`));
          } else {
            resolve({ counts, failed, seconds });
          }
        } else {
          one();
        }
      });
    };
    for (let i = 0; i < Math.min(concurrency, total); i++) one();
  });
}
