// Fork latency: fork() → 'online' and fork() → 'listening', median of 20 sequential forks; and the
// time until 8 workers forked at once are all online.
import { runToResult } from '../lib/proc.mjs';
import { fixture } from '../lib/paths.mjs';

export const name = 'fork-latency';
export const title = 'Fork latency';

export function cases() {
  return [{ id: 'fork' }];
}

export async function run(moduleSpec, opts, kase = cases()[0]) {
  const count = opts.quick ? 5 : 20;
  const r = await runToResult(fixture('fork-primary.js'), {
    timeoutMs: 90000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({ count, burst: 8, hardTimeoutMs: 85000 }),
    },
  });
  return {
    [`${kase.id}.online`]: { value: r.onlineMs, unit: 'ms', better: 'lower', label: `fork → online (median of ${count})` },
    [`${kase.id}.listening`]: { value: r.listeningMs, error: r.listenError && r.withStderr(r.listenError), unit: 'ms', better: 'lower', label: `fork → listening (median of ${count})` },
    [`${kase.id}.online8`]: { value: r.burstOnlineMs, unit: 'ms', better: 'lower', label: '8 workers online' },
  };
}
