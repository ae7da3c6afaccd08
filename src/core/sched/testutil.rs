//! What the policies' unit tests share.

use std::os::fd::OwnedFd;

use super::{Handoff, WorkerId};

/// A stand-in for an accepted connection: one end of a socketpair (the other end is closed).
pub fn conn() -> OwnedFd {
  crate::core::testutil::socket_pair().0
}

/// The workers the hand-offs go to, in order.
pub fn workers(h: &[Handoff]) -> Vec<WorkerId> {
  h.iter().map(|h| h.worker).collect()
}
