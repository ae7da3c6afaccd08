// HTTP keep-alive: 2 workers, a trivial handler, wrk with 50 kept-alive connections for a fixed
// time. Requests/s and p99 latency (the primary is not on this path). Under the module's default
// policy, and under SCHED_REUSEPORT when module B has it (compared with A's default: the
// built-in's round-robin), where the kernel rather than the primary spreads the 50 connections.
import { measureHttp } from '../lib/http.mjs';

export const name = 'http-keepalive';
export const title = 'HTTP keep-alive (2 workers, wrk -c50)';

export function cases(opts, ctx) {
  const list = [{ id: 'http.keepalive', policyFor: () => null, label: '' }];
  const b = ctx?.B?.policies ?? [];
  if (b.includes('SCHED_REUSEPORT')) {
    const a = ctx?.A?.policies ?? [];
    list.push({
      id: 'http.keepalive.reuseport',
      label: 'reuseport (built-in: rr): ',
      policyFor: (side) => ((side === 'A' ? a : b).includes('SCHED_REUSEPORT') ? 'SCHED_REUSEPORT' : null),
    });
  }
  return list;
}

export async function run(moduleSpec, opts, kase = cases(opts)[0], side = 'A') {
  const policy = kase.policyFor ? kase.policyFor(side) : null;
  const r = await measureHttp(moduleSpec, { workers: 2, policy, seconds: opts.quick ? 1 : 3, close: false });
  const p = kase.label ?? '';
  return {
    [`${kase.id}.rps`]: { value: r.rps, unit: 'req/s', better: 'higher', label: `${p}requests/s` },
    [`${kase.id}.p99`]: { value: r.p99Ms, unit: 'ms', better: 'lower', label: `${p}p99 latency` },
    [`${kase.id}.errors`]: { value: r.errors, unit: 'count', better: 'lower', label: `${p}wrk socket errors`, info: true },
  };
}
