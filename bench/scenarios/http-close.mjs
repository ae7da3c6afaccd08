// HTTP connection-per-request (`Connection: close`): 2 workers, wrk with 50 connections, under
// each scheduling policy: requests(=connections)/s, p99, and the primary's CPU time per connection
// read from /proc/<pid>/stat. A policy that only cluster-rs has is compared with the built-in's
// round-robin.
import { measureHttp } from '../lib/http.mjs';

export const name = 'http-close';
export const title = 'HTTP connection-per-request (2 workers, wrk -c50, Connection: close)';

const SHORT = { SCHED_RR: 'rr', SCHED_NONE: 'none' };

export function cases(opts, ctx) {
  const a = ctx?.A?.policies ?? ['SCHED_NONE', 'SCHED_RR'];
  const b = ctx?.B?.policies ?? a;
  const all = ['SCHED_RR', 'SCHED_NONE', ...[...new Set([...a, ...b])].filter((p) => !SHORT[p]).sort()];
  return all.map((policy) => {
    const short = SHORT[policy] ?? policy.replace(/^SCHED_/, '').toLowerCase();
    return {
      id: `http.close.${short}`,
      // A module without this policy runs its round-robin instead (labelled so).
      policyFor: (side) => ((side === 'A' ? a : b).includes(policy) ? policy : 'SCHED_RR'),
      policy,
    };
  });
}

export async function run(moduleSpec, opts, kase = cases(opts)[0], side = 'A') {
  const policy = kase.policyFor ? kase.policyFor(side) : kase.policy;
  const r = await measureHttp(moduleSpec, { workers: 2, policy, seconds: opts.quick ? 1 : 3, close: true });
  const p = SHORT[kase.policy] ?? kase.policy;
  const note = policy !== kase.policy ? ` (ran ${SHORT[policy] ?? policy})` : '';
  return {
    [`${kase.id}.rps`]: { value: r.rps, unit: 'conn/s', better: 'higher', label: `${p}: connections/s${note}` },
    [`${kase.id}.p99`]: { value: r.p99Ms, unit: 'ms', better: 'lower', label: `${p}: p99 latency${note}` },
    [`${kase.id}.cpu`]: { value: r.cpuPerReqUs, unit: 'µs', better: 'lower', label: `${p}: primary CPU / connection${note}` },
    [`${kase.id}.errors`]: { value: r.errors, unit: 'count', better: 'lower', label: `${p}: wrk socket errors`, info: true },
  };
}
