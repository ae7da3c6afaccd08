'use strict';

// Argument checks for the APIs cluster-rs adds (respawn, reload, shutdown), with Node's codes:
// ERR_INVALID_ARG_TYPE for a wrong type, ERR_INVALID_ARG_VALUE for a number out of bounds.

const errors = require('./errors');

function object(value, name) {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw errors.invalidArgType(name, 'Object', value);
  }
  return value;
}

// A count or duration: an integer >= min (Infinity too when `infinite`), or `fallback` when
// undefined.
function count(value, name, fallback, { min = 0, infinite = false } = {}) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw errors.invalidArgType(name, 'number', value);
  if (value === Infinity && infinite) return value;
  if (!Number.isInteger(value) || value < min) {
    throw errors.invalidArgValue(name, value,
                                 `must be an integer >= ${min}${infinite ? ' or Infinity' : ''}`);
  }
  return value;
}

module.exports = { object, count };
