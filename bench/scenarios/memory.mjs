// Memory: the primary's RSS with 2 and then 8 idle workers.
import { runToResult } from '../lib/proc.mjs';
import { fixture } from '../lib/paths.mjs';

export const name = 'memory';
export const title = 'Primary memory (idle workers)';

export function cases() {
  return [{ id: 'memory' }];
}

const MiB = 1024 * 1024;

export async function run(moduleSpec, opts, kase = cases()[0]) {
  const r = await runToResult(fixture('memory-primary.js'), {
    timeoutMs: 60000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({ settleMs: opts.quick ? 200 : 500, hardTimeoutMs: 55000 }),
    },
  });
  return {
    [`${kase.id}.rss0`]: { value: r.rss0 / MiB, unit: 'MiB', better: 'lower', label: 'primary RSS, no worker', info: true },
    [`${kase.id}.rss2`]: { value: r.rss2 / MiB, unit: 'MiB', better: 'lower', label: 'primary RSS, 2 idle workers' },
    [`${kase.id}.rss8`]: { value: r.rss8 / MiB, unit: 'MiB', better: 'lower', label: 'primary RSS, 8 idle workers' },
  };
}
