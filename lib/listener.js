'use strict';

// A listener shared by the workers that asked for one key (round-robin, shared handle or
// SCHED_REUSEPORT: lib/distribution.js, lib/reuseport.js). It settles once it is bound, with
// null (ok) or a negative errno; `whenBound` callbacks run then, or at once if it has.
class Listener {
  constructor(key) {
    this.key = key;
    this.workers = new Set();
    this.data = null;
    this.errno = null;
    this.waiting = []; // (errno) => void, for workers that asked while it was binding
    this.bound = false;
  }

  whenBound(cb) {
    if (this.bound) cb(this.errno);
    else this.waiting.push(cb);
  }

  settle(errno) {
    this.bound = true;
    this.errno = errno;
    for (const cb of this.waiting.splice(0)) cb(errno);
  }
}

module.exports = { Listener };
