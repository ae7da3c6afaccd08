import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
/** The package root, cluster-rs (`require('cluster-rs')` resolves to it). */
export const PACKAGE_ROOT = path.dirname(BENCH_DIR);
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');

export function fixture(file) {
  return path.join(BENCH_DIR, 'fixtures', file);
}
