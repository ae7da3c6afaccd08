// Fairness: 4 workers; 20,000 connections (one request each); the busiest worker's count over the
// idlest's (1.0 = perfectly even). Under each module's default policy, and, when module B has
// SCHED_REUSEPORT, B's reuseport against A's SCHED_NONE (the other policy where the kernel, not
// the primary, picks the worker): below 1.0× means fairer than the shared socket.
import { spawnPrimary, sleep } from '../lib/proc.mjs';
import { connectionsPerWorker } from '../lib/conn-client.mjs';
import { fixture } from '../lib/paths.mjs';

export const name = 'fairness';
export const title = 'Fairness (4 workers)';

const WORKERS = 4;

export function cases(opts, ctx) {
  const list = [{ id: 'fairness', policyFor: () => null, label: '' }];
  const b = ctx?.B?.policies ?? [];
  if (b.includes('SCHED_REUSEPORT')) {
    list.push({
      id: 'fairness.reuseport',
      label: 'B reuseport vs A none: ',
      policyFor: (side) => (side === 'A' ? 'SCHED_NONE' : 'SCHED_REUSEPORT'),
    });
  }
  return list;
}

export async function run(moduleSpec, opts, kase = cases(opts)[0], side = 'A') {
  const total = opts.quick ? 2000 : 20000;
  const policy = kase.policyFor ? kase.policyFor(side) : null;
  const p = spawnPrimary(fixture('http-primary.js'), {
    timeoutMs: 90000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({ workers: WORKERS, policy, hardTimeoutMs: 85000 }),
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
    const l = kase.label ?? '';
    return {
      [`${kase.id}.maxmin`]: { value: min > 0 ? max / min : Infinity, unit: 'max/min', better: 'lower', label: `${l}per-worker share of ${total} connections`, detail: counts },
      [`${kase.id}.rate`]: { value: total / r.seconds, unit: 'conn/s', better: 'higher', label: `${l}client connections/s (Node client)`, info: true },
    };
  } finally {
    await p.stop(2000);
  }
}
