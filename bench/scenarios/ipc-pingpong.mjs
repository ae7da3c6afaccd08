// IPC ping-pong: 1 worker, one ~10 B message in flight; primary and worker pinned to CPU 0
// (taskset) or left to the scheduler. Round trips/s and the primary's CPU time per round trip.
import { runToResult } from '../lib/proc.mjs';
import { fixture } from '../lib/paths.mjs';

export const name = 'ipc-pingpong';
export const title = 'IPC ping-pong (1 worker, 1 in flight, 10 B)';

export function cases() {
  const out = [];
  for (const pin of ['pinned', 'unpinned']) {
    for (const serialization of ['json', 'advanced']) {
      out.push({ id: `ipc.pingpong.${pin}.${serialization}`, pin, serialization });
    }
  }
  return out;
}

export async function run(moduleSpec, opts, kase = cases()[0]) {
  const windowMs = opts.quick ? 300 : 2000;
  const warmupMs = opts.quick ? 150 : 300;
  const res = await runToResult(fixture('ipc-primary.js'), {
    pin: kase.pin === 'pinned' ? '0' : null,
    timeoutMs: windowMs + warmupMs + 20000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({
        workers: 1, inflight: 1, payloads: [10], serialization: kase.serialization,
        warmupMs, windowMs, hardTimeoutMs: windowMs + warmupMs + 15000,
      }),
    },
  });
  const r = res.results[10];
  if (!(r.messages > 0)) throw new Error('no round trip completed in the window');
  return {
    [`${kase.id}.rate`]: { value: r.rate, unit: 'rt/s', better: 'higher', label: `${kase.pin} ${kase.serialization}: round trips/s` },
    [`${kase.id}.cpu`]: { value: r.cpuPerMsgUs, unit: 'µs', better: 'lower', label: `${kase.pin} ${kase.serialization}: primary CPU / round trip` },
  };
}
