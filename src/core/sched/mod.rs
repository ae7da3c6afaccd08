//! Connection distribution policies. Each policy is a pure state machine over worker ids and
//! accepted connections; the binding feeds it events (accept, answers, workers joining and
//! leaving) and performs the hand-offs it returns. Round-robin, least-connections and sticky by
//! client address implement the same trait, with no protocol code.

pub mod least_conn;
pub mod round_robin;
pub mod sticky;
#[cfg(test)]
mod testutil;

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

/// A worker, as the binding numbers them.
pub type WorkerId = u32;

/// "Send this connection to this worker" (as `newconn`, one in flight per worker and key).
pub struct Handoff {
  pub worker: WorkerId,
}

pub trait Distributor {
  /// A worker joined the key. Returns a hand-off when connections are already waiting.
  fn add(&mut self, worker: WorkerId) -> Option<Handoff>;
  /// A worker left (closed its server, disconnected or died). Its connection in flight, if
  /// any, goes back to the head of the queue; hand-offs to other workers may follow.
  /// Returns `(hand-offs, now_empty)`.
  fn remove(&mut self, worker: WorkerId) -> (Vec<Handoff>, bool);
  /// The listener accepted a connection. Returns the hand-offs that follow.
  fn accepted(&mut self, conn: OwnedFd) -> Vec<Handoff>;
  /// Whether a connection accepted now would change anything at once: it would go straight to
  /// an idle worker, or wake workers that refused. When false, a new connection would only
  /// wait in the queue, so the binding leaves it in the kernel's accept queue (same order,
  /// no wake-up of the primary) and takes it when this turns true. A policy that must see
  /// the connection to choose its worker keeps the default: always accept.
  fn wants_connection(&self) -> bool {
    true
  }
  /// The connection in flight to `worker` (to send after a `Handoff` for it). The scheduler
  /// keeps its reference until the worker accepts.
  fn in_flight(&self, worker: WorkerId) -> Option<Rc<OwnedFd>>;
  /// The worker answered its `newconn`. Returns the hand-offs that follow.
  fn answered(&mut self, worker: WorkerId, accepted: bool) -> Vec<Handoff>;
  /// Connections waiting for a worker.
  fn pending(&self) -> usize;
  /// True when connections wait only because every worker refused its last one: the binding
  /// then calls `retry` after a back-off delay instead of asking them again at once.
  fn needs_retry(&self) -> bool;
  /// Asks the workers that refused again. Returns the hand-offs.
  fn retry(&mut self) -> Vec<Handoff>;
}

/// A worker answered its `newconn`: takes back the connection in flight to it, and rests the
/// worker if it refused (it is not asked again until something else happens). `None`: an
/// answer for nothing we sent, to ignore (the worker is confused or hostile).
fn take_answer(
  in_flight: &mut HashMap<WorkerId, Rc<OwnedFd>>,
  resting: &mut Vec<WorkerId>,
  worker: WorkerId,
  accepted: bool,
) -> Option<Rc<OwnedFd>> {
  let conn = in_flight.remove(&worker)?;
  if !accepted && !resting.contains(&worker) {
    resting.push(worker);
  }
  Some(conn)
}

/// How often least-connections looks up which connections were closed, at most.
const LEAST_CONN_REFRESH: Duration = Duration::from_millis(50);

/// The distributor for a policy name: `"least-conn"`, `"sticky"`, anything else round-robin.
/// `listener` is the listening socket: least-connections watches the connections on its port
/// and falls back to round-robin where it has no port (unix sockets).
pub fn for_policy(name: Option<&str>, listener: BorrowedFd<'_>) -> Box<dyn Distributor> {
  match name {
    Some("least-conn") => match crate::core::listen::local_addr(listener) {
      Ok(addr) => {
        let port = addr.port();
        let probe = move || crate::core::diag::open_inodes(port).ok();
        Box::new(least_conn::LeastConn::new(
          Box::new(probe),
          crate::core::diag::inode,
          LEAST_CONN_REFRESH,
        ))
      }
      Err(_) => Box::<round_robin::RoundRobin>::default(),
    },
    Some("sticky") => Box::new(sticky::Sticky::new(sticky::peer_ip)),
    _ => Box::<round_robin::RoundRobin>::default(),
  }
}
