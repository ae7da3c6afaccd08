// IPC flood/echo: 2 and 4 workers, 100 messages kept in flight per worker, each echoed back;
// payloads of ~10 B, 1 KiB, 100 KiB and 1 MiB in turn, json and advanced serialization.
// Echoed messages/s and the primary's CPU time per echoed message.
import { runToResult } from '../lib/proc.mjs';
import { fixture } from '../lib/paths.mjs';

export const name = 'ipc-flood';
export const title = 'IPC flood/echo (100 in flight per worker)';

export const PAYLOADS = [
  [10, '10B'],
  [1024, '1KiB'],
  [100 * 1024, '100KiB'],
  [1024 * 1024, '1MiB'],
];

// --quick: a smoke check that still touches every worker count, serialization and size once.
const QUICK = new Set(['ipc.flood.w2.json.10B', 'ipc.flood.w2.advanced.10B', 'ipc.flood.w2.advanced.1KiB',
  'ipc.flood.w4.json.100KiB', 'ipc.flood.w4.advanced.1MiB']);

export function cases(opts = {}) {
  const all = allCases();
  return opts.quick ? all.filter((c) => QUICK.has(c.id)) : all;
}

function allCases() {
  const out = [];
  for (const workers of [2, 4]) {
    for (const serialization of ['json', 'advanced']) {
      for (const [bytes, size] of PAYLOADS) {
        out.push({ id: `ipc.flood.w${workers}.${serialization}.${size}`, workers, serialization, bytes, size });
      }
    }
  }
  return out;
}

export async function run(moduleSpec, opts, kase = allCases()[0]) {
  const windowMs = opts.quick ? 300 : 1500;
  const warmupMs = opts.quick ? 150 : 300;
  const budget = windowMs + 2 * warmupMs + 15000;
  // One payload size per primary process: no draining of 100 MiB in flight between sizes.
  const res = await runToResult(fixture('ipc-primary.js'), {
    timeoutMs: budget + 5000,
    env: {
      BENCH_CLUSTER_MODULE: moduleSpec,
      BENCH_CONFIG: JSON.stringify({
        workers: kase.workers, inflight: 100, payloads: [kase.bytes], serialization: kase.serialization,
        warmupMs, windowMs, drain: false, hardTimeoutMs: budget,
      }),
    },
  });
  const r = res.results[kase.bytes];
  if (!(r && r.messages > 0)) throw new Error('no echo in the window');
  const what = `${kase.workers} workers ${kase.serialization} ${kase.size}`;
  return {
    [`${kase.id}.rate`]: { value: r.rate, unit: 'msg/s', better: 'higher', label: `${what}: msgs/s` },
    [`${kase.id}.cpu`]: { value: r.cpuPerMsgUs, unit: 'µs', better: 'lower', label: `${what}: primary CPU / msg` },
  };
}
