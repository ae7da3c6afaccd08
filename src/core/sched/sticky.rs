//! Sticky by client address: every connection from one IP goes to the same worker for as long
//! as that worker is on the key (what socket.io's long-polling needs). A client seen for the
//! first time gets the worker chosen by rendezvous hashing of its IP over the workers present,
//! and keeps it (a bounded table) even when workers join later; when its worker leaves, it is
//! hashed again over the others. IPv4-mapped IPv6 addresses count as the IPv4 address.
//!
//! Each worker has its own queue (a connection waits for *its* worker). A connection its
//! worker refuses (at `maxConnections`) goes to another worker rather than waiting; the
//! client's assignment does not change. Connections without an IP (unix sockets) go round-robin.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use super::{take_answer, Distributor, Handoff, WorkerId};

/// The client address of a connection, if it has one.
pub type PeerOf = fn(&OwnedFd) -> Option<IpAddr>;

/// Assignments remembered, at most (two generations of half this size).
const TABLE_MAX: usize = 1 << 16;

pub struct Sticky {
  all: Vec<WorkerId>,
  resting: Vec<WorkerId>,
  queues: HashMap<WorkerId, VecDeque<Rc<OwnedFd>>>,
  in_flight: HashMap<WorkerId, Rc<OwnedFd>>,
  current: HashMap<IpAddr, WorkerId>,
  previous: HashMap<IpAddr, WorkerId>,
  peer_of: PeerOf,
  /// Round-robin position for connections without an address.
  next: usize,
}

/// The IP of a connected socket (IPv4-mapped addresses as IPv4).
pub fn peer_ip(fd: &OwnedFd) -> Option<IpAddr> {
  use nix::sys::socket::{getpeername, SockaddrStorage};
  use std::os::fd::AsRawFd;
  let addr: SockaddrStorage = getpeername(fd.as_raw_fd()).ok()?;
  if let Some(a) = addr.as_sockaddr_in() {
    return Some(IpAddr::V4(a.ip()));
  }
  let a = addr.as_sockaddr_in6()?;
  let ip = a.ip();
  Some(match ip.to_ipv4_mapped() {
    Some(v4) => IpAddr::V4(v4),
    None => IpAddr::V6(ip),
  })
}

fn score(ip: &IpAddr, worker: WorkerId) -> u64 {
  // SipHash with fixed keys: the same answer in every run, which is what hashing needs here.
  #[allow(deprecated)]
  let mut h = std::hash::SipHasher::new();
  ip.hash(&mut h);
  worker.hash(&mut h);
  h.finish()
}

impl Sticky {
  pub fn new(peer_of: PeerOf) -> Self {
    Sticky {
      all: Vec::new(),
      resting: Vec::new(),
      queues: HashMap::new(),
      in_flight: HashMap::new(),
      current: HashMap::new(),
      previous: HashMap::new(),
      peer_of,
      next: 0,
    }
  }

  /// The worker a client is assigned to (assigning it now if needed).
  pub fn worker_for(&mut self, ip: IpAddr) -> Option<WorkerId> {
    if let Some(&w) = self.current.get(&ip) {
      if self.all.contains(&w) {
        return Some(w);
      }
    }
    let w = match self.previous.get(&ip) {
      Some(&w) if self.all.contains(&w) => w,
      _ => self.all.iter().copied().max_by_key(|w| score(&ip, *w))?,
    };
    if self.current.len() >= TABLE_MAX / 2 {
      self.previous = std::mem::take(&mut self.current);
    }
    self.current.insert(ip, w);
    Some(w)
  }

  fn target(&mut self, conn: &OwnedFd) -> Option<WorkerId> {
    match (self.peer_of)(conn) {
      Some(ip) => self.worker_for(ip),
      None => {
        if self.all.is_empty() {
          return None;
        }
        self.next = (self.next + 1) % self.all.len();
        Some(self.all[self.next])
      }
    }
  }

  /// Another worker for a connection its own worker refused: the first idle one that is not
  /// resting, in joining order after `refuser`.
  fn other_than(&self, refuser: WorkerId) -> Option<WorkerId> {
    let start = self.all.iter().position(|&w| w == refuser).unwrap_or(0);
    (1..self.all.len())
      .map(|i| self.all[(start + i) % self.all.len()])
      .find(|w| !self.in_flight.contains_key(w) && !self.resting.contains(w))
  }

  fn enqueue(&mut self, worker: WorkerId, conn: Rc<OwnedFd>, front: bool) {
    let q = self.queues.entry(worker).or_default();
    if front {
      q.push_front(conn);
    } else {
      q.push_back(conn);
    }
  }

  /// Sends the head of each idle, non-resting worker's queue.
  fn drain(&mut self) -> Vec<Handoff> {
    let mut out = Vec::new();
    for &w in &self.all {
      if self.in_flight.contains_key(&w) || self.resting.contains(&w) {
        continue;
      }
      if let Some(conn) = self.queues.get_mut(&w).and_then(VecDeque::pop_front) {
        self.in_flight.insert(w, conn);
        out.push(Handoff { worker: w });
      }
    }
    out
  }

  /// Re-targets connections that waited for (or were in flight to) a worker that left.
  fn rehome(&mut self, conns: impl IntoIterator<Item = Rc<OwnedFd>>) {
    for conn in conns {
      if let Some(w) = self.target(&conn) {
        self.enqueue(w, conn, false);
      }
    }
  }
}

impl Distributor for Sticky {
  fn add(&mut self, worker: WorkerId) -> Option<Handoff> {
    if self.all.contains(&worker) {
      return None;
    }
    self.all.push(worker);
    None
  }

  fn remove(&mut self, worker: WorkerId) -> (Vec<Handoff>, bool) {
    self.all.retain(|&w| w != worker);
    self.resting.retain(|&w| w != worker);
    let mut orphans: Vec<Rc<OwnedFd>> = self.in_flight.remove(&worker).into_iter().collect();
    orphans.extend(self.queues.remove(&worker).unwrap_or_default());
    if self.all.is_empty() {
      self.queues.clear();
      self.current.clear();
      self.previous.clear();
      return (Vec::new(), true);
    }
    self.current.retain(|_, w| *w != worker);
    self.previous.retain(|_, w| *w != worker);
    self.rehome(orphans);
    self.resting.clear();
    (self.drain(), false)
  }

  fn accepted(&mut self, conn: OwnedFd) -> Vec<Handoff> {
    let conn = Rc::new(conn);
    if let Some(w) = self.target(&conn) {
      self.enqueue(w, conn, false);
    }
    self.resting.clear();
    self.drain()
  }

  fn in_flight(&self, worker: WorkerId) -> Option<Rc<OwnedFd>> {
    self.in_flight.get(&worker).cloned()
  }

  fn answered(&mut self, worker: WorkerId, accepted: bool) -> Vec<Handoff> {
    let Some(conn) = take_answer(&mut self.in_flight, &mut self.resting, worker, accepted) else {
      return Vec::new();
    };
    if !accepted {
      match self.other_than(worker) {
        Some(w) => self.enqueue(w, conn, true),
        None => self.enqueue(worker, conn, true),
      }
    } else {
      drop(conn);
    }
    self.drain()
  }

  fn pending(&self) -> usize {
    self.queues.values().map(VecDeque::len).sum()
  }

  fn needs_retry(&self) -> bool {
    !self.resting.is_empty()
      && self.resting.iter().any(|w| {
        !self.in_flight.contains_key(w) && self.queues.get(w).is_some_and(|q| !q.is_empty())
      })
  }

  fn retry(&mut self) -> Vec<Handoff> {
    self.resting.clear();
    self.drain()
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::sched::testutil::{conn, workers};
  use std::cell::Cell;
  use std::net::Ipv4Addr;

  thread_local! {
    /// The "peer" of every test connection, whenever `fake_peer` is asked.
    static NEXT_IP: Cell<u8> = const { Cell::new(1) };
  }

  fn fake_peer(_: &OwnedFd) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, NEXT_IP.with(Cell::get))))
  }

  fn from(ip: u8) -> OwnedFd {
    NEXT_IP.with(|c| c.set(ip));
    conn()
  }

  #[test]
  fn one_client_always_reaches_the_same_worker() {
    let mut s = Sticky::new(fake_peer);
    for w in 1..=4 {
      s.add(w);
    }
    let c = from(7);
    let w = workers(&s.accepted(c))[0];
    for _ in 0..5 {
      NEXT_IP.with(|c| c.set(7));
      s.answered(w, true);
      assert_eq!(workers(&s.accepted(conn())), vec![w]);
    }
    // A worker joining later does not take it away.
    s.add(5);
    s.answered(w, true);
    NEXT_IP.with(|c| c.set(7));
    assert_eq!(workers(&s.accepted(conn())), vec![w]);
  }

  #[test]
  fn clients_spread_over_workers() {
    let mut s = Sticky::new(fake_peer);
    for w in 1..=4 {
      s.add(w);
    }
    let mut seen = std::collections::HashSet::new();
    for ip in 1..=64u8 {
      NEXT_IP.with(|c| c.set(ip));
      let w = s.worker_for(fake_peer(&conn()).unwrap()).unwrap();
      seen.insert(w);
    }
    assert_eq!(seen.len(), 4);
  }

  #[test]
  fn a_busy_worker_queues_its_own_clients() {
    let mut s = Sticky::new(fake_peer);
    s.add(1);
    s.add(2);
    let w = workers(&s.accepted(from(9)))[0];
    assert!(s.accepted(from(9)).is_empty(), "waits for its worker");
    assert_eq!(s.pending(), 1);
    assert_eq!(workers(&s.answered(w, true)), vec![w]);
  }

  #[test]
  fn when_its_worker_leaves_a_client_moves_and_stays() {
    let mut s = Sticky::new(fake_peer);
    s.add(1);
    s.add(2);
    let w = workers(&s.accepted(from(3)))[0];
    s.accepted(from(3));
    let (h, empty) = s.remove(w);
    assert!(!empty);
    let other = 3 - w;
    assert_eq!(workers(&h), vec![other], "the one in flight moves");
    assert_eq!(s.pending(), 1);
    assert_eq!(workers(&s.answered(other, true)), vec![other]);
  }

  #[test]
  fn a_refused_connection_goes_to_another_worker() {
    let mut s = Sticky::new(fake_peer);
    s.add(1);
    s.add(2);
    let w = workers(&s.accepted(from(4)))[0];
    assert_eq!(workers(&s.answered(w, false)), vec![3 - w]);
    assert!(s.answered(3 - w, false).is_empty());
    assert!(s.needs_retry());
    assert_eq!(s.retry().len(), 1);
  }
}
