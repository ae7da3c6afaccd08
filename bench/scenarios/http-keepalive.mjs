// HTTP keep-alive: 2 workers, a trivial handler, wrk with 50 kept-alive connections for a fixed
// time. Requests/s and p99 latency (the primary is not on this path).
import { measureHttp } from '../lib/http.mjs';

export const name = 'http-keepalive';
export const title = 'HTTP keep-alive (2 workers, wrk -c50)';

export function cases() {
  return [{ id: 'http.keepalive' }];
}

export async function run(moduleSpec, opts, kase = cases()[0]) {
  const r = await measureHttp(moduleSpec, { workers: 2, seconds: opts.quick ? 1 : 3, close: false });
  return {
    [`${kase.id}.rps`]: { value: r.rps, unit: 'req/s', better: 'higher', label: 'requests/s' },
    [`${kase.id}.p99`]: { value: r.p99Ms, unit: 'ms', better: 'lower', label: 'p99 latency' },
    [`${kase.id}.errors`]: { value: r.errors, unit: 'count', better: 'lower', label: 'wrk socket errors', info: true },
  };
}
