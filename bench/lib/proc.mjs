// Spawning fixture primaries and reading their CPU time from /proc.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clkTck = null;
export function clockTicks() {
  if (clkTck === null) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime+stime of a process (all its threads), in microseconds, from /proc/<pid>/stat. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces and parentheses).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / clockTicks();
}

// Process groups of the primaries still running, so an interrupted run can end them.
const live = new Set();

/** SIGKILLs every fixture process group still running (on SIGINT/SIGTERM of the runner). */
export function killAll() {
  for (const pid of live) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Spawns `node <script>` (optionally under `taskset -c <cpus>`, which execs node in place so the
 * pid is node's) in its own process group. Lines `BENCH_READY <json>` and `BENCH_RESULT <json>`
 * on stdout resolve `ready` and `result`; `BENCH_ERROR <text>` or an early exit rejects them.
 * The whole group is SIGKILLed after `timeoutMs` or on `stop()`.
 */
export function spawnPrimary(script, { env = {}, pin = null, timeoutMs = 60000, nodeArgs = [] } = {}) {
  const cmd = pin === null ? process.execPath : 'taskset';
  const args = pin === null
    ? [...nodeArgs, script]
    : ['-c', String(pin), process.execPath, ...nodeArgs, script];
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid) live.add(child.pid);
  let stderr = '';
  let stdoutBuf = '';
  let exited = false;
  let reported = null; // a BENCH_ERROR line
  let readyRes, readyRej, resultRes, resultRej;
  const ready = new Promise((res, rej) => { readyRes = res; readyRej = rej; });
  const result = new Promise((res, rej) => { resultRes = res; resultRej = rej; });
  ready.catch(() => {});
  result.catch(() => {});
  const fail = (err) => { readyRej(err); resultRej(err); };

  const killGroup = () => {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  };
  const timer = setTimeout(() => {
    fail(new Error(withStderr(`timeout after ${Math.round(timeoutMs / 1000)} s${stderrError() ? '' : lastErr()}`)));
    killGroup();
  }, timeoutMs);

  // The last `SomethingError: …` line on stderr (a worker's or the primary's crash), if any.
  const stderrError = () => {
    const lines = stderr.split('\n').filter((l) => /^\s*(\w*Error|Error)( \[\w+\])?: /.test(l));
    const l = lines.slice(-1)[0];
    return l ? l.trim().slice(0, 160) : '';
  };
  // The informative part first: the error a crashing worker printed, then what the primary saw.
  const withStderr = (what) => {
    const e = stderrError();
    return e ? `${e} (${what})` : what;
  };
  const lastErr = () => {
    const line = stderr.trim().split('\n').filter(Boolean).slice(-1)[0];
    return line ? ` (${line.slice(0, 160)})` : '';
  };

  // A primary that already exited closes its stdin: writing `stop` then must not crash the runner.
  child.stdin.on('error', () => {});
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    stdoutBuf += chunk;
    let nl;
    while ((nl = stdoutBuf.indexOf('\n')) >= 0) {
      const line = stdoutBuf.slice(0, nl);
      stdoutBuf = stdoutBuf.slice(nl + 1);
      if (line.startsWith('BENCH_READY ')) readyRes(JSON.parse(line.slice(12)));
      else if (line.startsWith('BENCH_RESULT ')) resultRes(JSON.parse(line.slice(13)));
      else if (line.startsWith('BENCH_ERROR ')) {
        // Workers share the primary's stderr: give their last words a moment to arrive.
        reported = line.slice(12);
        setTimeout(() => fail(new Error(withStderr(reported))), 150);
      }
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (stderr.length < 20000) stderr += chunk;
  });
  const done = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = true;
      live.delete(child.pid);
      clearTimeout(timer);
      if (reported !== null) setTimeout(() => fail(new Error(withStderr(reported))), 150);
      else fail(new Error(withStderr(`primary exited (${signal ?? `code ${code}`}) before reporting${stderrError() ? '' : lastErr()}`)));
      // Strays (workers) of this group, if any, go with it.
      killGroup();
      resolve();
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
      resolve();
    });
  });

  return {
    child,
    pid: child.pid,
    ready,
    result,
    get stderr() { return stderr; },
    withStderr,
    send(line) {
      if (!exited) child.stdin.write(`${line}\n`);
    },
    /** Asks the primary to stop (a `stop` line on stdin), then kills the group after `graceMs`. */
    async stop(graceMs = 3000) {
      if (!exited) {
        try { child.stdin.end('stop\n'); } catch { /* closed */ }
        const t = setTimeout(killGroup, graceMs);
        await done;
        clearTimeout(t);
      }
      killGroup();
    },
    done,
  };
}

/** Runs a primary that reports one BENCH_RESULT and exits by itself. */
export async function runToResult(script, opts) {
  const p = spawnPrimary(script, opts);
  try {
    const res = await p.result;
    await sleep(50);
    return Object.defineProperty(res, 'withStderr', { value: p.withStderr, enumerable: false });
  } finally {
    await p.stop(2000);
  }
}
