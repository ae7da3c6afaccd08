// One HTTP measurement: a fresh primary with `workers` workers under `policy`, wrk for `seconds`,
// the primary's CPU time over wrk's run read from /proc/<pid>/stat.
import { spawnPrimary, cpuMicros, sleep } from './proc.mjs';
import { runWrk } from './wrk.mjs';
import { fixture } from './paths.mjs';

export async function measureHttp(moduleSpec, { workers, policy = null, seconds, close, connections = 50 }) {
  const p = spawnPrimary(fixture('http-primary.js'), {
    timeoutMs: seconds * 1000 + 30000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({ workers, policy, hardTimeoutMs: seconds * 1000 + 25000 }),
    },
  });
  try {
    const { port } = await p.ready;
    await sleep(100);
    const c0 = cpuMicros(p.pid);
    const w = await runWrk(port, { seconds, connections, close });
    const c1 = cpuMicros(p.pid);
    const errors = Object.values(w.errors).reduce((a, b) => a + b, 0);
    if (!(w.requests > 0)) throw new Error(`wrk completed no request (errors ${JSON.stringify(w.errors)})`);
    return {
      rps: w.requests / (w.duration_us / 1e6),
      p99Ms: w.p99_us / 1000,
      cpuPerReqUs: (c1 - c0) / w.requests,
      requests: w.requests,
      errors,
      errorDetail: w.errors,
    };
  } finally {
    await p.stop(2000);
  }
}
