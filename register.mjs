// node --import cluster-rs/register app.mjs
// Installs cluster-rs before the program runs (as register.js does for require()), and adds a
// module resolve hook so that `import cluster from 'node:cluster'` (or 'cluster') in the
// program resolves to cluster-rs's ESM entry: the default export is the same cluster object,
// and named imports include what cluster-rs adds (reload, shutdown, stats, SCHED_REUSEPORT...).
// Workers (NODE_UNIQUE_ID set: they inherit the flag) get neither: they use the built-in.
import { createRequire } from 'node:module';
import * as nodeModule from 'node:module';

const require = createRequire(import.meta.url);
require('./register.js');

const worker = process.env.NODE_UNIQUE_ID !== undefined && process.env.NODE_UNIQUE_ID !== '';
if (!worker) {
  const target = new URL('./index.mjs', import.meta.url).href;
  const wanted = (specifier, context) => (specifier === 'node:cluster' || specifier === 'cluster') &&
    context.parentURL !== target &&
    // ESM imports only: require() already gets the same object from the built-in.
    (context.conditions ?? []).includes('import');
  if (typeof nodeModule.registerHooks === 'function') {
    // Node >= 22.15: synchronous, in-thread hooks.
    nodeModule.registerHooks({
      resolve(specifier, context, nextResolve) {
        if (wanted(specifier, context)) return { url: target, format: 'module', shortCircuit: true };
        return nextResolve(specifier, context);
      },
    });
  } else if (typeof nodeModule.register === 'function') {
    nodeModule.register('./lib/esm-hooks.mjs', import.meta.url, { data: { target } });
  }
}
