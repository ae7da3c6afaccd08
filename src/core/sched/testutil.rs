//! What the policies' unit tests share.

use std::os::fd::OwnedFd;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::{Handoff, WorkerId};

/// A stand-in for an accepted connection: one end of a socketpair (the other end is closed).
pub fn conn() -> OwnedFd {
  socketpair(
    AddressFamily::Unix,
    SockType::Stream,
    None,
    SockFlag::SOCK_CLOEXEC,
  )
  .unwrap()
  .0
}

/// The workers the hand-offs go to, in order.
pub fn workers(h: &[Handoff]) -> Vec<WorkerId> {
  h.iter().map(|h| h.worker).collect()
}
