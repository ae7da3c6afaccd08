// Gets Node's test/ tree for one Node line from Debian's `nodejs` source package, for the compat
// runner (scripts/node-compat.mjs). Nothing of Node's code is committed: the tree lives in the
// git-ignored `.cache/node-test/<version>/test`.
//
// How: derive a deb-src entry from the machine's own Debian sources (/etc/apt; no host name is
// hard-coded) for the suites that carry the Node lines we pin, run apt with a private state dir
// (the system's apt lists and sources stay untouched), `apt-get source --download-only` the
// pinned version, and extract only `test/` from the `.orig` tarball. Success is judged by the
// tarball and its checksum, not by apt's exit code: for some security uploads the .dsc and the
// Debian tarball answer 404 while the .orig tarball, all we need, downloads fine.
//
// CLI: node scripts/compat/fetch-node-tests.mjs <major>   (prints the test/ dir)

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LINES_FILE = path.join(REPO_ROOT, 'scripts', 'node-lines.json');
const CACHE_ROOT = path.join(REPO_ROOT, '.cache', 'node-test');

// Suites whose `nodejs` source packages cover the pinned lines (18: bookworm, 20: trixie,
// 22 and 24: forky/sid).
const SOURCE_SUITES = ['bookworm', 'trixie', 'forky', 'sid'];
// Suite names that identify a Debian archive entry (as opposed to -security, -updates, third
// party repositories, or Ubuntu).
const DEBIAN_SUITES = new Set([
  'buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'duke', 'sid',
  'oldoldstable', 'oldstable', 'stable', 'testing', 'unstable',
]);

export class SetupError extends Error {}

/** The pinned upstream version of Node's tests for a major, or null. */
export function pinnedTestSource(major) {
  const lines = JSON.parse(fs.readFileSync(LINES_FILE, 'utf8'));
  return lines[String(major)]?.testSource ?? null;
}

/** test/ dir of the cached tree for `version`, or null when it is not (completely) there. */
export function cachedTestDir(version) {
  const dir = path.join(CACHE_ROOT, version);
  const ok = fs.existsSync(path.join(dir, 'SOURCE.txt')) &&
    fs.existsSync(path.join(dir, 'test', 'common', 'index.js'));
  return ok ? path.join(dir, 'test') : null;
}

/**
 * Returns the test/ dir for the pinned source of `major`, fetching it when not cached.
 * Throws SetupError with a short reason when that is impossible.
 */
export function ensureNodeTests(major, { log = (m) => process.stderr.write(m + '\n') } = {}) {
  const version = pinnedTestSource(major);
  if (!version) throw new SetupError(`no Debian test source is pinned for Node ${major} in scripts/node-lines.json`);
  const cached = cachedTestDir(version);
  if (cached) return cached;

  if (process.platform !== 'linux') throw new SetupError('fetching needs Debian apt (this is not Linux)');
  for (const tool of ['apt-get', 'apt-cache', 'tar']) {
    if (!hasCommand(tool)) throw new SetupError(`fetching needs Debian apt, and \`${tool}\` is missing`);
  }
  const archives = debianArchives();
  if (archives.length === 0) {
    throw new SetupError('no Debian archive entry (bookworm, trixie, sid, ...) in /etc/apt sources to derive a deb-src entry from');
  }

  log(`node-compat: fetching Node ${version} tests from Debian's nodejs source package (once; cached in .cache/node-test)`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-rs-apt-'));
  try {
    return fetchInto(version, archives, work, log);
  } catch (err) {
    if (err instanceof SetupError) throw err;
    throw new SetupError(`fetching failed: ${err.message}`); // e.g. EACCES on the cache when not root
  } finally {
    // The temporary deb-src entry and apt state go with it.
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function fetchInto(version, archives, work, log) {
  // apt drops to the `_apt` user for downloads when run as root: keep the dirs traversable.
  fs.chmodSync(work, 0o755);
  const parts = path.join(work, 'sources.list.d');
  const lists = path.join(work, 'lists');
  const cache = path.join(work, 'cache');
  const dl = path.join(work, 'download');
  for (const dir of [parts, path.join(lists, 'partial'), path.join(cache, 'archives', 'partial'), dl]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  }
  fs.writeFileSync(path.join(work, 'empty.list'), '');
  fs.writeFileSync(path.join(parts, 'cluster-rs-node-src.sources'), archives.map((a) => [
    'Types: deb-src',
    `URIs: ${a.uri}`,
    `Suites: ${SOURCE_SUITES.join(' ')}`,
    'Components: main',
    ...(a.signedBy ? [`Signed-By: ${a.signedBy}`] : []),
  ].join('\n')).join('\n\n') + '\n');

  const opts = [
    '-o', `Dir::Etc::SourceList=${path.join(work, 'empty.list')}`,
    '-o', `Dir::Etc::SourceParts=${parts}`,
    '-o', `Dir::State::Lists=${lists}`,
    '-o', `Dir::Cache=${cache}`,
    '-o', 'Acquire::Retries=2',
  ];

  // apt-get update exits 0 when some (or all) lists fail to download: judge by what it listed.
  const update = run('apt-get', [...opts, '-q', 'update']);
  const fetchErrors = `${update.stderr}\n${update.stdout}`.split('\n')
    .filter((l) => /^(W|E): (Failed to fetch|.*(Permission denied|are you root|lock))/.test(l));
  const show = run('apt-cache', [...opts, 'showsrc', 'nodejs']);
  const listed = parseShowsrc(show.stdout);
  const candidates = listed.filter((s) => upstreamOf(s.version) === version ||
    upstreamOf(s.version).startsWith(version + '+'));
  if (candidates.length === 0) {
    if (update.status !== 0 || fetchErrors.length || listed.length === 0) {
      throw new SetupError(`apt-get update could not fetch Debian's source lists (no network?): ` +
        `${(fetchErrors[0] || lastLine(update)).replace(/\s+/g, ' ')}`);
    }
    throw new SetupError(`Debian no longer lists nodejs ${version} (suites ${SOURCE_SUITES.join(', ')}); update scripts/node-lines.json`);
  }

  let lastError = '';
  for (const src of candidates) {
    const orig = src.files.find((f) => /^nodejs_[^-]+\.orig\.tar\.(xz|gz|bz2)$/.test(f.name));
    if (!orig) continue;
    const file = path.join(dl, orig.name);
    if (!fs.existsSync(file)) {
      // Exit status ignored on purpose (see the header): the tarball decides.
      const res = run('apt-get', [...opts, '-q', 'source', '--download-only', `nodejs=${src.version}`], { cwd: dl });
      lastError = lastLine(res);
    }
    if (!fs.existsSync(file)) continue;
    const sha = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    if (sha !== orig.sha256) {
      lastError = `${orig.name}: sha256 ${sha} does not match ${orig.sha256}`;
      fs.rmSync(file);
      continue;
    }
    return extractTests(version, src.version, file, orig.sha256, log);
  }
  throw new SetupError(`could not download the .orig tarball of nodejs ${version}: ${lastError || 'no .orig tarball listed'}`);
}

function extractTests(version, debVersion, tarball, sha256, log) {
  if (tarball.endsWith('.xz') && !hasCommand('xz')) {
    if (process.getuid?.() === 0) {
      log('node-compat: installing xz-utils to unpack the tarball');
      run('apt-get', ['install', '-y', '-q', 'xz-utils']);
    }
    if (!hasCommand('xz')) throw new SetupError('unpacking the tarball needs `xz` (Debian package xz-utils)');
  }
  fs.mkdirSync(CACHE_ROOT, { recursive: true });
  const staging = fs.mkdtempSync(path.join(CACHE_ROOT, `.staging-${version}-`));
  fs.chmodSync(staging, 0o755);
  try {
    // Only the top-level test/ directory (not deps/*/test).
    const tar = run('tar', ['-xf', tarball, '-C', staging, '--strip-components=1', '--no-same-owner',
      '--wildcards', '--no-wildcards-match-slash', '*/test']);
    if (tar.status !== 0 || !fs.existsSync(path.join(staging, 'test', 'common', 'index.js'))) {
      throw new SetupError(`extracting test/ from ${path.basename(tarball)} failed: ${lastLine(tar)}`);
    }
    fs.writeFileSync(path.join(staging, 'SOURCE.txt'),
      `Debian nodejs ${debVersion}\n${path.basename(tarball)} sha256 ${sha256}\nOnly test/ was extracted.\n`);
    const dest = path.join(CACHE_ROOT, version);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(staging, dest);
    log(`node-compat: Node ${version} tests ready in ${path.relative(REPO_ROOT, dest)}/test`);
    return path.join(dest, 'test');
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** Debian archive entries (uri + signed-by) from the machine's apt sources. */
export function debianArchives(etc = '/etc/apt') {
  const entries = [];
  const listFiles = [path.join(etc, 'sources.list')];
  const partsDir = path.join(etc, 'sources.list.d');
  let names = [];
  try { names = fs.readdirSync(partsDir).sort(); } catch { /* none */ }
  for (const name of names) {
    if (name.endsWith('.list')) listFiles.push(path.join(partsDir, name));
    if (name.endsWith('.sources')) entries.push(...parseDeb822(readOr(path.join(partsDir, name))));
  }
  for (const file of listFiles) entries.push(...parseOneLine(readOr(file)));

  const seen = new Map();
  for (const e of entries) {
    if (!e.types.some((t) => t === 'deb' || t === 'deb-src')) continue;
    if (!e.components.includes('main')) continue;
    if (!e.suites.some((s) => DEBIAN_SUITES.has(s))) continue;
    for (const uri of e.uris) {
      const key = uri.replace(/\/+$/, '');
      if (!seen.has(key)) seen.set(key, { uri: key, signedBy: e.signedBy });
    }
  }
  return [...seen.values()];
}

function parseDeb822(text) {
  const out = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = {};
    let last = null;
    for (const line of para.split('\n')) {
      if (line.startsWith('#')) continue;
      if (/^\s/.test(line) && last) { fields[last] += '\n' + line; continue; }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (m) { last = m[1].toLowerCase(); fields[last] = m[2]; }
    }
    if (!fields.types || !fields.uris) continue;
    if (/^(no|false)$/i.test((fields.enabled || '').trim())) continue;
    const words = (k) => (fields[k] || '').split(/\s+/).filter(Boolean);
    out.push({
      types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components'),
      signedBy: fields['signed-by'] ? fields['signed-by'].trimEnd() : null,
    });
  }
  return out;
}

function parseOneLine(text) {
  const out = [];
  for (let line of text.split('\n')) {
    line = line.replace(/#.*/, '').trim();
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const signed = /(?:^|\s)signed-by=(\S+)/.exec(m[2] || '');
    out.push({ types: [m[1]], uris: [m[3]], suites: [m[4]], components: m[5].split(/\s+/).filter(Boolean),
      signedBy: signed ? signed[1] : null });
  }
  return out;
}

/** `apt-cache showsrc` stanzas: [{ version, files: [{ sha256, size, name }] }]. */
function parseShowsrc(text) {
  const out = [];
  for (const para of text.split(/\n\s*\n/)) {
    const version = /^Version:\s*(\S+)/m.exec(para)?.[1];
    if (!version) continue;
    const files = [];
    const block = /^Checksums-Sha256:\s*\n((?:[ \t].*\n?)*)/m.exec(para);
    for (const line of (block ? block[1] : '').split('\n')) {
      const [sha256, size, name] = line.trim().split(/\s+/);
      if (name) files.push({ sha256, size: Number(size), name });
    }
    if (!out.some((o) => o.version === version)) out.push({ version, files });
  }
  return out;
}

const upstreamOf = (debVersion) => debVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '');

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts,
    env: { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' } });
  if (res.error) return { status: -1, stdout: '', stderr: String(res.error.message) };
  return res;
}

function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function readOr(file) {
  try { return fs.readFileSync(file, 'utf8'); } catch { return ''; }
}

function lastLine(res) {
  const lines = `${res.stderr || ''}\n${res.stdout || ''}`.split('\n').map((l) => l.trim())
    .filter((l) => /^(E|W|Err):|error|fail/i.test(l));
  return lines.at(-1) || `exit status ${res.status}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const major = process.argv[2] || process.versions.node.split('.')[0];
  try {
    console.log(ensureNodeTests(major));
  } catch (err) {
    if (!(err instanceof SetupError)) throw err;
    console.error(`fetch-node-tests: error: ${err.message}`);
    process.exit(2);
  }
}
