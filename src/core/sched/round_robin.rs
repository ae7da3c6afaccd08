//! Round-robin, as Node's primary does it (protocol.md §5.3), minus its defects (§5.6):
//! the connection stays ours until a worker accepts it; a refused connection goes to another
//! worker, never straight back to the one that refused it; a connection in flight to a worker
//! that leaves goes back to the head of the queue. A worker that refused is asked again only
//! when something else happens (a new connection, another worker's answer), so a full worker
//! is never a busy loop.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::rc::Rc;

use super::{take_answer, Distributor, Handoff, WorkerId};

#[derive(Default)]
pub struct RoundRobin {
  /// Workers on this key, in joining order.
  all: Vec<WorkerId>,
  /// Idle workers, oldest first: the next connection goes to the front.
  free: VecDeque<WorkerId>,
  /// Workers that refused their last connection; retried after the next event.
  resting: Vec<WorkerId>,
  /// Accepted connections not yet handed out, oldest first.
  pending: VecDeque<Rc<OwnedFd>>,
  /// The connection each worker is deciding about.
  in_flight: HashMap<WorkerId, Rc<OwnedFd>>,
}

impl RoundRobin {
  /// Gives the next pending connection to `worker` if it is idle and something waits.
  fn handoff(&mut self, worker: WorkerId) -> Option<Handoff> {
    if !self.all.contains(&worker) || self.in_flight.contains_key(&worker) {
      return None;
    }
    match self.pending.pop_front() {
      Some(conn) => {
        self.in_flight.insert(worker, conn);
        Some(Handoff { worker })
      }
      None => {
        if !self.free.contains(&worker) {
          self.free.push_back(worker);
        }
        None
      }
    }
  }

  /// Hands pending connections to idle workers, oldest idle first.
  fn drain_to_free(&mut self, out: &mut Vec<Handoff>) {
    while !self.pending.is_empty() {
      let Some(w) = self.free.pop_front() else {
        break;
      };
      out.extend(self.handoff(w));
    }
  }

  /// Something happened: resting workers may try again.
  fn wake_resting(&mut self) {
    for w in std::mem::take(&mut self.resting) {
      if !self.free.contains(&w) {
        self.free.push_back(w);
      }
    }
  }
}

impl Distributor for RoundRobin {
  fn add(&mut self, worker: WorkerId) -> Option<Handoff> {
    if self.all.contains(&worker) {
      return None;
    }
    self.all.push(worker);
    self.handoff(worker)
  }

  fn remove(&mut self, worker: WorkerId) -> (Vec<Handoff>, bool) {
    self.all.retain(|&w| w != worker);
    self.free.retain(|&w| w != worker);
    self.resting.retain(|&w| w != worker);
    if let Some(conn) = self.in_flight.remove(&worker) {
      self.pending.push_front(conn);
    }
    let mut out = Vec::new();
    if self.all.is_empty() {
      // Nobody left to serve them: close, don't leak (§5.4).
      self.pending.clear();
      return (out, true);
    }
    self.wake_resting();
    self.drain_to_free(&mut out);
    (out, false)
  }

  fn accepted(&mut self, conn: OwnedFd) -> Vec<Handoff> {
    self.pending.push_back(Rc::new(conn));
    self.wake_resting();
    let mut out = Vec::new();
    self.drain_to_free(&mut out);
    out
  }

  fn wants_connection(&self) -> bool {
    // Idle workers exist only while nothing waits (every hand-off drains `pending` first).
    !self.free.is_empty() || !self.resting.is_empty()
  }

  fn in_flight(&self, worker: WorkerId) -> Option<Rc<OwnedFd>> {
    self.in_flight.get(&worker).cloned()
  }

  fn answered(&mut self, worker: WorkerId, accepted: bool) -> Vec<Handoff> {
    let mut out = Vec::new();
    let Some(conn) = take_answer(&mut self.in_flight, &mut self.resting, worker, accepted) else {
      return out;
    };
    if accepted {
      drop(conn); // the worker has its own copy now
      self.wake_resting();
      out.extend(self.handoff(worker));
    } else {
      self.pending.push_front(conn);
    }
    self.drain_to_free(&mut out);
    out
  }

  fn pending(&self) -> usize {
    self.pending.len()
  }

  fn needs_retry(&self) -> bool {
    !self.pending.is_empty() && self.free.is_empty() && !self.resting.is_empty()
  }

  fn retry(&mut self) -> Vec<Handoff> {
    let mut out = Vec::new();
    self.wake_resting();
    self.drain_to_free(&mut out);
    out
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::sched::testutil::{conn, workers};

  #[test]
  fn connections_go_to_idle_workers_in_turn() {
    let mut rr = RoundRobin::default();
    assert!(rr.add(1).is_none());
    assert!(rr.add(2).is_none());
    assert_eq!(workers(&rr.accepted(conn())), vec![1]);
    assert_eq!(workers(&rr.accepted(conn())), vec![2]);
    // Both busy: the third waits.
    assert!(rr.accepted(conn()).is_empty());
    assert_eq!(rr.pending(), 1);
    // Worker 1 accepts and gets the waiting one at once.
    assert_eq!(workers(&rr.answered(1, true)), vec![1]);
    assert_eq!(rr.pending(), 0);
  }

  #[test]
  fn a_refused_connection_goes_elsewhere_and_the_refuser_is_not_asked_again_at_once() {
    let mut rr = RoundRobin::default();
    rr.add(1);
    rr.add(2);
    assert_eq!(workers(&rr.accepted(conn())), vec![1]);
    // Worker 2 is idle: it gets the refused connection.
    assert_eq!(workers(&rr.answered(1, false)), vec![2]);
    // Worker 2 refuses too: nobody is idle, nothing is handed out (no ping-pong).
    assert!(rr.answered(2, false).is_empty());
    assert_eq!(rr.pending(), 1);
    // A new connection wakes them both: the two waiting connections go out, oldest first.
    assert_eq!(workers(&rr.accepted(conn())), vec![1, 2]);
    assert_eq!(rr.pending(), 0);
  }

  #[test]
  fn a_lone_full_worker_is_retried_only_when_asked() {
    let mut rr = RoundRobin::default();
    rr.add(1);
    rr.accepted(conn());
    assert!(rr.answered(1, false).is_empty(), "no immediate ping-pong");
    assert!(rr.needs_retry());
    assert_eq!(workers(&rr.retry()), vec![1]);
    assert!(!rr.needs_retry());
    assert_eq!(workers(&rr.answered(1, true)), Vec::<WorkerId>::new());
    assert_eq!(rr.pending(), 0);
  }

  #[test]
  fn a_worker_that_leaves_gives_its_connection_back() {
    let mut rr = RoundRobin::default();
    rr.add(1);
    rr.add(2);
    rr.accepted(conn());
    rr.accepted(conn());
    let (h, empty) = rr.remove(1);
    assert!(!empty);
    assert!(h.is_empty(), "worker 2 is busy");
    assert_eq!(rr.pending(), 1);
    assert_eq!(workers(&rr.answered(2, true)), vec![2]);
    let (_, empty) = rr.remove(2);
    assert!(empty);
    assert_eq!(rr.pending(), 0, "the last worker leaving closes what waits");
  }

  #[test]
  fn connections_are_wanted_only_by_an_idle_worker_or_to_wake_a_refuser() {
    let mut rr = RoundRobin::default();
    assert!(!rr.wants_connection(), "no worker yet");
    rr.add(1);
    rr.add(2);
    assert!(rr.wants_connection());
    rr.accepted(conn());
    assert!(rr.wants_connection(), "worker 2 is idle");
    rr.accepted(conn());
    assert!(!rr.wants_connection(), "both busy: a third would only wait");
    rr.answered(1, true);
    assert!(rr.wants_connection(), "worker 1 is idle again");
    rr.accepted(conn());
    rr.answered(2, false);
    // Worker 2 refused and worker 1 is busy: nobody idle, but a new connection would wake
    // worker 2 (a refuser is asked again on the next event), so it is still wanted.
    assert!(rr.wants_connection());
    rr.answered(1, false);
    assert!(rr.wants_connection());
  }

  #[test]
  fn answers_for_nothing_in_flight_are_ignored() {
    let mut rr = RoundRobin::default();
    rr.add(1);
    assert!(rr.answered(1, true).is_empty());
    assert!(rr.answered(7, false).is_empty());
  }
}
