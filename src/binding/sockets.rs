//! Socket creation for shared listeners (`core::listen`), as plain functions returning fds that
//! JavaScript owns until it gives them back with `closeFd`.

use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::core::listen;
use crate::error::js;

/// What `bindInet` and `bindReuseport` take.
#[napi(object)]
pub struct BindInetOptions {
  /// An IP literal, or none for "any" (dual-stack `::`, else `0.0.0.0`).
  pub address: Option<String>,
  pub port: u32,
  pub datagram: bool,
  pub ipv6_only: bool,
  /// `SO_REUSEADDR` on a UDP socket too (TCP always gets it).
  pub reuse_addr: bool,
  /// Listen with this backlog (TCP); bound only when absent.
  pub backlog: Option<i32>,
}

impl BindInetOptions {
  /// Creates the socket these options describe, `SO_REUSEPORT` or not; throws Node-style
  /// system errors (`errno`, `code`, `syscall`).
  pub(crate) fn bind(&self, env: &Env, reuse_port: bool) -> Result<OwnedFd> {
    listen::bind_inet(&listen::Inet {
      address: self.address.as_deref(),
      port: self.port as u16,
      datagram: self.datagram,
      ipv6_only: self.ipv6_only,
      reuse_addr: self.reuse_addr,
      reuse_port,
      backlog: self.backlog,
    })
    .map_err(|e| js::throw(env.raw(), &e))
  }
}

#[napi(object)]
pub struct BoundSocket {
  pub fd: i32,
  pub port: u32,
}

/// Creates and binds a TCP or UDP socket. Throws Node-style system errors (`errno`, `code`).
#[napi]
pub fn bind_inet(env: Env, opts: BindInetOptions) -> Result<BoundSocket> {
  let fd = opts.bind(&env, false)?;
  let port = listen::local_addr(fd.as_fd())
    .map_err(|e| js::throw(env.raw(), &e))?
    .port();
  Ok(BoundSocket {
    fd: fd.into_raw_fd(),
    port: port as u32,
  })
}

/// Creates a unix stream socket bound at `path`; listening when `backlog` is given; `addMode`
/// bits are added to the socket file's mode.
#[napi]
pub fn bind_unix(
  env: Env,
  path: String,
  backlog: Option<i32>,
  add_mode: Option<u32>,
) -> Result<i32> {
  let fd = listen::bind_unix(&path, backlog, add_mode).map_err(|e| js::throw(env.raw(), &e))?;
  Ok(fd.into_raw_fd())
}

/// Closes an fd that a binding function handed to JavaScript.
#[napi]
pub fn close_fd(fd: i32) {
  if fd >= 0 {
    // SAFETY: JS gives back an fd it received from this addon and no longer uses.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
  }
}

/// Duplicates one of the primary's own fds (close-on-exec); a negative errno on failure.
#[napi]
pub fn dup_fd(fd: i32) -> i32 {
  // SAFETY: F_DUPFD_CLOEXEC only reads the fd table; a bad fd is an error, not UB.
  let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
  if new < 0 {
    -std::io::Error::last_os_error()
      .raw_os_error()
      .unwrap_or(libc::EBADF)
  } else {
    new
  }
}
