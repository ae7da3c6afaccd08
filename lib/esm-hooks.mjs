// Module resolve hook for register.mjs on Node lines without module.registerHooks (it runs on
// the loader thread): `import ... from 'node:cluster'` (or 'cluster') resolves to cluster-rs's
// ESM entry (the entry itself loads the cluster object with require(), never through here).
let target = null;

export function initialize(data) {
  target = data.target;
}

export async function resolve(specifier, context, nextResolve) {
  if ((specifier === 'node:cluster' || specifier === 'cluster') && target !== null &&
      context.parentURL !== target) {
    return { url: target, format: 'module', shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
