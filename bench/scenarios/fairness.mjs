// Fairness: 4 workers under the module's default policy; 20,000 connections (one request each);
// the busiest worker's count over the idlest's (1.0 = perfectly even).
import { spawnPrimary, sleep } from '../lib/proc.mjs';
import { connectionsPerWorker } from '../lib/conn-client.mjs';
import { fixture } from '../lib/paths.mjs';

export const name = 'fairness';
export const title = 'Fairness (4 workers, default policy)';

const WORKERS = 4;

export function cases() {
  return [{ id: 'fairness' }];
}

export async function run(moduleSpec, opts, kase = cases()[0]) {
  const total = opts.quick ? 2000 : 20000;
  const p = spawnPrimary(fixture('http-primary.js'), {
    timeoutMs: 90000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({ workers: WORKERS, policy: null, hardTimeoutMs: 85000 }),
    },
  });
  try {
    const { port } = await p.ready;
    await sleep(100);
    const r = await connectionsPerWorker(port, { total, concurrency: 32, timeoutMs: 60000 });
    const counts = [];
    for (let i = 0; i < WORKERS; i++) counts.push(r.counts[`w${i}`] || 0);
    const max = Math.max(...counts);
    const min = Math.min(...counts);
    return {
      [`${kase.id}.maxmin`]: { value: min > 0 ? max / min : Infinity, unit: 'max/min', better: 'lower', label: `per-worker share of ${total} connections`, detail: counts },
      [`${kase.id}.rate`]: { value: total / r.seconds, unit: 'conn/s', better: 'higher', label: 'client connections/s (Node client)', info: true },
    };
  } finally {
    await p.stop(2000);
  }
}
