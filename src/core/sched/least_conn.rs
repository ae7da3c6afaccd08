//! Least-connections: each connection goes to the idle worker (no `newconn` in flight) with the
//! fewest open connections, ties to the one that got a connection least recently.
//!
//! A worker's count goes up when it accepts a connection (its `{accepted: true}` answer) and
//! down when the connection is seen closed. The protocol never reports closes, so the counts
//! are refreshed from a probe that lists the connections still open (`core::diag`: socket
//! inodes held by some process). The probe walks the kernel's whole TCP hash table, which can
//! take milliseconds on a busy host, so it runs only when a choice is due (two or more idle
//! workers) and at most every `refresh_every` or every 40 times its own last duration,
//! whichever is longer (at most 1 s): it never takes more than about 2.5% of a core.
//! A refused connection never goes straight back to the worker that refused it, as in
//! round-robin.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{take_answer, Distributor, Handoff, WorkerId};

/// Lists the inodes of the connections still open (`None`: cannot tell now).
pub type Probe = Box<dyn FnMut() -> Option<HashSet<u64>>>;
/// The inode of a connection, to recognise it in the probe's answer.
pub type InodeOf = fn(&OwnedFd) -> Option<u64>;

pub struct LeastConn {
  all: Vec<WorkerId>,
  resting: Vec<WorkerId>,
  pending: VecDeque<Rc<OwnedFd>>,
  in_flight: HashMap<WorkerId, Rc<OwnedFd>>,
  /// Open connections per worker, by inode.
  open: HashMap<WorkerId, HashSet<u64>>,
  /// When each worker last got a connection (a counter), for ties.
  last_given: HashMap<WorkerId, u64>,
  tick: u64,
  probe: Probe,
  inode_of: InodeOf,
  refresh_every: Duration,
  refreshed: Option<Instant>,
  /// How long the last probe took.
  probe_cost: Duration,
  /// Whether the refresh interval grows with what the probe costs (always, but in tests).
  adaptive: bool,
}

/// The probe runs at most every this many times its own duration.
const PROBE_DUTY: u32 = 40;
const REFRESH_MAX: Duration = Duration::from_secs(1);

impl LeastConn {
  pub fn new(probe: Probe, inode_of: InodeOf, refresh_every: Duration) -> Self {
    LeastConn {
      all: Vec::new(),
      resting: Vec::new(),
      pending: VecDeque::new(),
      in_flight: HashMap::new(),
      open: HashMap::new(),
      last_given: HashMap::new(),
      tick: 0,
      probe,
      inode_of,
      refresh_every,
      refreshed: None,
      probe_cost: Duration::ZERO,
      adaptive: true,
    }
  }

  /// Refreshes exactly every `refresh_every`, whatever the probe costs: the counting logic,
  /// tested without the machine's speed deciding which refreshes happen.
  #[cfg(test)]
  fn with_fixed_refresh(mut self) -> Self {
    self.adaptive = false;
    self
  }

  /// Open connections the scheduler counts for `worker`.
  pub fn open_count(&self, worker: WorkerId) -> usize {
    self.open.get(&worker).map_or(0, HashSet::len)
  }

  /// Forgets the connections that were closed since the last look (rate-limited).
  fn refresh(&mut self) {
    if self.open.values().all(HashSet::is_empty) {
      return;
    }
    let now = Instant::now();
    let every = if self.adaptive {
      self
        .refresh_every
        .max((self.probe_cost * PROBE_DUTY).min(REFRESH_MAX))
    } else {
      self.refresh_every
    };
    if self
      .refreshed
      .is_some_and(|t| now.duration_since(t) < every)
    {
      return;
    }
    let live = (self.probe)();
    let done = Instant::now();
    self.probe_cost = done.duration_since(now);
    self.refreshed = Some(done);
    if let Some(live) = live {
      for set in self.open.values_mut() {
        set.retain(|ino| live.contains(ino));
      }
    }
  }

  fn idle(&self) -> impl Iterator<Item = WorkerId> + '_ {
    self
      .all
      .iter()
      .copied()
      .filter(|w| !self.in_flight.contains_key(w) && !self.resting.contains(w))
  }

  /// The idle worker that should get the next connection.
  fn pick(&self) -> Option<WorkerId> {
    self.idle().min_by_key(|w| {
      (
        self.open_count(*w),
        self.last_given.get(w).copied().unwrap_or(0),
      )
    })
  }

  fn distribute(&mut self) -> Vec<Handoff> {
    let mut out = Vec::new();
    if self.pending.is_empty() {
      return out;
    }
    // Only a choice between idle workers needs fresh counts.
    if self.idle().nth(1).is_some() {
      self.refresh();
    }
    while !self.pending.is_empty() {
      let Some(w) = self.pick() else { break };
      let conn = self.pending.pop_front().expect("not empty");
      self.in_flight.insert(w, conn);
      self.tick += 1;
      self.last_given.insert(w, self.tick);
      out.push(Handoff { worker: w });
    }
    out
  }
}

impl Distributor for LeastConn {
  fn add(&mut self, worker: WorkerId) -> Option<Handoff> {
    if self.all.contains(&worker) {
      return None;
    }
    self.all.push(worker);
    self.open.entry(worker).or_default();
    self.distribute().pop()
  }

  fn remove(&mut self, worker: WorkerId) -> (Vec<Handoff>, bool) {
    self.all.retain(|&w| w != worker);
    self.resting.retain(|&w| w != worker);
    self.open.remove(&worker);
    self.last_given.remove(&worker);
    if let Some(conn) = self.in_flight.remove(&worker) {
      self.pending.push_front(conn);
    }
    if self.all.is_empty() {
      self.pending.clear();
      return (Vec::new(), true);
    }
    self.resting.clear();
    (self.distribute(), false)
  }

  fn accepted(&mut self, conn: OwnedFd) -> Vec<Handoff> {
    self.pending.push_back(Rc::new(conn));
    self.resting.clear();
    self.distribute()
  }

  fn wants_connection(&self) -> bool {
    self.pick().is_some() || !self.resting.is_empty()
  }

  fn in_flight(&self, worker: WorkerId) -> Option<Rc<OwnedFd>> {
    self.in_flight.get(&worker).cloned()
  }

  fn answered(&mut self, worker: WorkerId, accepted: bool) -> Vec<Handoff> {
    let Some(conn) = take_answer(&mut self.in_flight, &mut self.resting, worker, accepted) else {
      return Vec::new();
    };
    if accepted {
      if let Some(ino) = (self.inode_of)(&conn) {
        self.open.entry(worker).or_default().insert(ino);
      }
      drop(conn);
      self.resting.clear();
    } else {
      self.pending.push_front(conn);
    }
    self.distribute()
  }

  fn pending(&self) -> usize {
    self.pending.len()
  }

  fn needs_retry(&self) -> bool {
    !self.pending.is_empty() && !self.resting.is_empty() && self.pick().is_none()
  }

  fn retry(&mut self) -> Vec<Handoff> {
    self.resting.clear();
    self.distribute()
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::sched::testutil::{conn, workers};
  use std::cell::RefCell;

  /// A scheduler whose probe reports the inodes in `live` (shared with the test).
  fn sched(live: Rc<RefCell<HashSet<u64>>>) -> LeastConn {
    LeastConn::new(
      Box::new(move || Some(live.borrow().clone())),
      crate::core::diag::inode,
      Duration::ZERO,
    )
    .with_fixed_refresh()
  }

  #[test]
  fn the_worker_with_fewest_open_connections_gets_the_next() {
    let live = Rc::new(RefCell::new(HashSet::new()));
    let mut lc = sched(live.clone());
    lc.add(1);
    lc.add(2);
    // Copies keep the inodes from being reused while the test runs.
    let mut keep = Vec::new();
    let given = RefCell::new(Vec::new());
    let mut hand = |lc: &mut LeastConn| {
      let c = conn();
      let ino = crate::core::diag::inode(&c).unwrap();
      live.borrow_mut().insert(ino);
      keep.push(c.try_clone().unwrap());
      let w = workers(&lc.accepted(c))[0];
      lc.answered(w, true);
      given.borrow_mut().push((w, ino));
      w
    };
    // Ties go to whoever waited longest: 1, 2, then 1 again.
    assert_eq!(hand(&mut lc), 1);
    assert_eq!(hand(&mut lc), 2);
    assert_eq!(hand(&mut lc), 1);
    assert_eq!((lc.open_count(1), lc.open_count(2)), (2, 1));
    assert_eq!(hand(&mut lc), 2);
    assert_eq!(hand(&mut lc), 1);
    // Worker 1's connections close: it gets the next ones until it catches up.
    for (w, ino) in given.borrow().iter() {
      if *w == 1 {
        live.borrow_mut().remove(ino);
      }
    }
    assert_eq!(hand(&mut lc), 1);
    assert_eq!(hand(&mut lc), 1);
    assert_eq!((lc.open_count(1), lc.open_count(2)), (2, 2));
  }

  #[test]
  fn closed_connections_stop_counting() {
    let live = Rc::new(RefCell::new(HashSet::new()));
    let mut lc = sched(live.clone());
    lc.add(1);
    let c = conn();
    let ino = crate::core::diag::inode(&c).unwrap();
    lc.accepted(c);
    lc.answered(1, true);
    assert_eq!(lc.open_count(1), 1);
    lc.add(2);
    // Nothing is live any more: worker 1 is back to 0 at the next decision.
    let h = lc.accepted(conn());
    assert_eq!(lc.open_count(1), 0);
    assert_eq!(h.len(), 1);
    let _ = ino;
  }

  #[test]
  fn a_busy_worker_is_skipped_and_connections_wait_for_an_idle_one() {
    let live = Rc::new(RefCell::new(HashSet::new()));
    let mut lc = sched(live);
    lc.add(1);
    assert_eq!(workers(&lc.accepted(conn())), vec![1]);
    assert!(lc.accepted(conn()).is_empty());
    assert_eq!(lc.pending(), 1);
    assert_eq!(workers(&lc.answered(1, true)), vec![1]);
  }

  #[test]
  fn refusals_rest_the_worker_and_leaving_returns_the_connection() {
    let live = Rc::new(RefCell::new(HashSet::new()));
    let mut lc = sched(live);
    lc.add(1);
    lc.add(2);
    let first = workers(&lc.accepted(conn()))[0];
    let other = 3 - first;
    assert_eq!(workers(&lc.answered(first, false)), vec![other]);
    assert!(lc.answered(other, false).is_empty());
    assert!(lc.needs_retry());
    assert_eq!(lc.retry().len(), 1);
    let busy = if lc.in_flight(1).is_some() { 1 } else { 2 };
    let (h, empty) = lc.remove(busy);
    assert!(!empty);
    assert_eq!(workers(&h), vec![3 - busy]);
    let (_, empty) = lc.remove(3 - busy);
    assert!(empty);
    assert_eq!(lc.pending(), 0);
  }
}
