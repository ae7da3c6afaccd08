//! `SCHED_REUSEPORT` sockets for `lib/reuseport.js` (see `core::reuseport`): plain functions
//! over fds that JavaScript owns and gives back with `closeFd`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::sockets::BindInetOptions;
use crate::core::{listen, reuseport};
use crate::error::js;

#[napi(object)]
pub struct ReuseportSocket {
  pub fd: i32,
  /// The address actually bound (`::` or `0.0.0.0` for "any"), and the port.
  pub address: String,
  pub port: u32,
  /// `'IPv4'` or `'IPv6'`.
  pub family: String,
}

/// A new `SO_REUSEPORT` socket; throws Node-style system errors (`errno`, `code`, `syscall`).
/// For TCP, JS passes a backlog: the primary listens itself, so it knows the group order.
#[napi]
pub fn bind_reuseport(env: Env, opts: BindInetOptions) -> Result<ReuseportSocket> {
  let fd = opts.bind(&env, true)?;
  let addr = listen::local_addr(fd.as_fd()).map_err(|e| js::throw(env.raw(), &e))?;
  let family = match addr {
    SocketAddr::V4(_) => "IPv4",
    SocketAddr::V6(_) => "IPv6",
  };
  Ok(ReuseportSocket {
    address: addr.ip().to_string(),
    port: addr.port() as u32,
    family: family.to_string(),
    fd: fd.into_raw_fd(),
  })
}

fn errno_of(e: std::io::Error) -> i32 {
  -e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// Steers the reuseport group of `fd` to the members at `targets` (indexes in listen order);
/// an empty list removes the steering. Returns 0 or a negative errno.
#[napi]
pub fn steer_reuseport(fd: i32, targets: Vec<u32>) -> i32 {
  if fd < 0 {
    return -libc::EBADF;
  }
  // SAFETY: JS passes an fd it owns and keeps open for the call.
  let fd = unsafe { BorrowedFd::borrow_raw(fd) };
  let result = if targets.is_empty() {
    reuseport::unsteer(fd)
  } else {
    reuseport::steer(fd, &targets)
  };
  result.map_or_else(errno_of, |()| 0)
}

/// The most members a steering program can name.
#[napi]
pub fn reuseport_steer_limit() -> u32 {
  reuseport::MAX_STEERED as u32
}
