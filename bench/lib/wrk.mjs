// The HTTP load generator: wrk (Debian package `wrk`), bounded by its -d duration and a kill timer.
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPORT = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));

let version;
export function wrkVersion() {
  if (version === undefined) {
    try {
      execFileSync('wrk', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      version = null;
    } catch (err) {
      // wrk --version prints its banner and exits 1.
      const text = `${err.stdout || ''}${err.stderr || ''}`;
      const m = /wrk (\S+)/.exec(text);
      version = m ? m[1] : err.code === 'ENOENT' ? null : 'unknown';
    }
  }
  return version;
}

/**
 * Runs wrk against 127.0.0.1:<port> for `seconds` (whole seconds) and resolves its summary:
 * {requests, duration_us, errors, p50_us, p99_us, max_us}.
 */
export function runWrk(port, { seconds, connections = 50, threads = 1, close = false }) {
  if (!wrkVersion()) return Promise.reject(new Error('wrk is not installed (apt-get install -y wrk)'));
  const args = [
    `-t${threads}`, `-c${connections}`, `-d${Math.max(1, Math.round(seconds))}s`,
    '--timeout', '2s', '-s', REPORT,
  ];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${port}/`);
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (seconds + 15) * 1000, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const m = /WRK_JSON (\{.*\})/.exec(stdout || '');
      if (!m) {
        reject(new Error(`wrk failed: ${(err && err.message) || ''} ${String(stderr).trim().slice(0, 200)}`));
        return;
      }
      resolve(JSON.parse(m[1]));
    });
  });
}
