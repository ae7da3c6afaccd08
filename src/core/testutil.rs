//! What the unit tests of several `core` modules share.

use std::os::fd::OwnedFd;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// A connected pair of unix stream sockets (close-on-exec): a channel's two ends, or a stand-in
/// for a connection.
pub fn socket_pair() -> (OwnedFd, OwnedFd) {
  socketpair(
    AddressFamily::Unix,
    SockType::Stream,
    None,
    SockFlag::SOCK_CLOEXEC,
  )
  .unwrap()
}
