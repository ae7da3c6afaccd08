//! Creating the sockets the primary shares with workers (protocol.md §5.1, §6): bound TCP and
//! UDP sockets (for `SCHED_REUSEPORT`, one `SO_REUSEPORT` socket per worker: `core::reuseport`),
//! and unix stream sockets, each close-on-exec and non-blocking (as libuv makes them: a worker
//! adopts a shared socket's file status as it is, a blocking listener leaves every worker but
//! the first blocked in `accept` after each wake-up, and the primary accepts on a reuseport
//! socket when it drains it). TCP gets `SO_REUSEADDR`, as libuv gives every TCP server; with
//! no address, `::` dual-stack is tried before `0.0.0.0`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
  bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
  SockaddrStorage, UnixAddr,
};

use crate::error::ClusterError;

const SOCK_FLAGS: SockFlag = SockFlag::SOCK_CLOEXEC.union(SockFlag::SOCK_NONBLOCK);

fn os(syscall: &'static str, e: Errno) -> ClusterError {
  ClusterError::os(syscall, e.into())
}

fn do_listen(fd: &OwnedFd, backlog: i32) -> Result<(), ClusterError> {
  let backlog = Backlog::new(backlog.clamp(1, i32::MAX)).map_err(|e| os("listen", e))?;
  listen(fd, backlog).map_err(|e| os("listen", e))
}

/// An inet socket to create: TCP or UDP, bound to `address:port`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inet<'a> {
  /// An IP literal; `None` = any (`::` dual-stack when possible, else `0.0.0.0`).
  pub address: Option<&'a str>,
  pub port: u16,
  pub datagram: bool,
  pub ipv6_only: bool,
  /// `SO_REUSEADDR` on a UDP socket too (TCP always gets it).
  pub reuse_addr: bool,
  /// `SO_REUSEPORT`, for `SCHED_REUSEPORT`'s one socket per worker on one address.
  pub reuse_port: bool,
  /// TCP: listen with this backlog; otherwise bound only, for workers to listen on.
  pub backlog: Option<i32>,
}

/// Creates and binds the socket `opts` describes (listening, for TCP with a backlog).
pub fn bind_inet(opts: &Inet<'_>) -> Result<OwnedFd, ClusterError> {
  match opts.address {
    Some(a) => {
      let ip: IpAddr = a.parse().map_err(|_| os("bind", Errno::EINVAL))?;
      bind_one(SocketAddr::new(ip, opts.port), opts.ipv6_only, opts)
    }
    None => {
      let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), opts.port);
      match bind_one(any6, false, opts) {
        Err(e)
          if e.errno() == Some(-libc::EAFNOSUPPORT) || e.errno() == Some(-libc::EADDRNOTAVAIL) =>
        {
          let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), opts.port);
          bind_one(any4, false, opts)
        }
        other => other,
      }
    }
  }
}

/// Binds one address; `ipv6_only` is `opts.ipv6_only` for an explicit address, and off for
/// the "any" address, which is dual-stack.
fn bind_one(addr: SocketAddr, ipv6_only: bool, opts: &Inet<'_>) -> Result<OwnedFd, ClusterError> {
  let family = if addr.is_ipv6() {
    AddressFamily::Inet6
  } else {
    AddressFamily::Inet
  };
  let ty = if opts.datagram {
    SockType::Datagram
  } else {
    SockType::Stream
  };
  let fd = socket(family, ty, SOCK_FLAGS, None).map_err(|e| os("socket", e))?;
  if !opts.datagram || opts.reuse_addr {
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| os("setsockopt", e))?;
  }
  if opts.reuse_port {
    setsockopt(&fd, sockopt::ReusePort, &true).map_err(|e| os("setsockopt", e))?;
  }
  if addr.is_ipv6() {
    setsockopt(&fd, sockopt::Ipv6V6Only, &ipv6_only).map_err(|e| os("setsockopt", e))?;
  }
  bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| os("bind", e))?;
  if let (Some(b), false) = (opts.backlog, opts.datagram) {
    do_listen(&fd, b)?;
  }
  Ok(fd)
}

/// A unix stream socket bound at `path` (a leading NUL makes it abstract). `add_mode` bits are
/// added to the socket file's mode (`readableAll` = 0o444, `writableAll` = 0o222), as libuv's
/// `uv_pipe_chmod` does.
pub fn bind_unix(
  path: &str,
  backlog: Option<i32>,
  mode: Option<u32>,
) -> Result<OwnedFd, ClusterError> {
  let fd =
    socket(AddressFamily::Unix, SockType::Stream, SOCK_FLAGS, None).map_err(|e| os("socket", e))?;
  let addr = match path.strip_prefix('\0') {
    Some(name) => UnixAddr::new_abstract(name.as_bytes()),
    None => UnixAddr::new(path),
  }
  .map_err(|e| os("bind", e))?;
  bind(fd.as_raw_fd(), &addr).map_err(|e| os("bind", e))?;
  if let (Some(m), false) = (mode, path.starts_with('\0')) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))
      .map_err(|e| ClusterError::os("chmod", e))?;
  }
  if let Some(b) = backlog {
    do_listen(&fd, b)?;
  }
  Ok(fd)
}

/// The address and port a socket is bound to.
pub fn local_addr(fd: BorrowedFd<'_>) -> Result<SocketAddr, ClusterError> {
  let addr: SockaddrStorage =
    nix::sys::socket::getsockname(fd.as_raw_fd()).map_err(|e| os("getsockname", e))?;
  if let Some(a) = addr.as_sockaddr_in() {
    return Ok(SocketAddr::new(IpAddr::V4(a.ip()), a.port()));
  }
  if let Some(a) = addr.as_sockaddr_in6() {
    return Ok(SocketAddr::new(IpAddr::V6(a.ip()), a.port()));
  }
  Err(os("getsockname", Errno::EAFNOSUPPORT))
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::os::fd::AsFd;

  fn tcp(port: u16, backlog: Option<i32>) -> Result<OwnedFd, ClusterError> {
    bind_inet(&Inet {
      address: Some("127.0.0.1"),
      port,
      reuse_addr: true,
      backlog,
      ..Inet::default()
    })
  }

  fn udp(port: u16, reuse_addr: bool) -> Result<OwnedFd, ClusterError> {
    bind_inet(&Inet {
      address: Some("127.0.0.1"),
      port,
      datagram: true,
      reuse_addr,
      ..Inet::default()
    })
  }

  fn port_of(fd: &OwnedFd) -> u16 {
    local_addr(fd.as_fd()).unwrap().port()
  }

  #[test]
  fn port_zero_gets_a_real_port_and_a_taken_port_is_eaddrinuse() {
    let a = tcp(0, Some(16)).unwrap();
    let port = port_of(&a);
    assert_ne!(port, 0);
    let err = tcp(port, Some(16)).unwrap_err();
    assert_eq!(err.code(), "EADDRINUSE");
    assert_eq!(err.errno(), Some(-libc::EADDRINUSE));
  }

  #[test]
  fn reuse_port_lets_listeners_share_a_port() {
    let shared = |port| {
      bind_inet(&Inet {
        address: Some("127.0.0.1"),
        port,
        reuse_port: true,
        backlog: Some(16),
        ..Inet::default()
      })
    };
    let a = shared(0).unwrap();
    let b = shared(port_of(&a)).unwrap();
    assert_eq!(port_of(&b), port_of(&a));
  }

  #[test]
  fn sockets_are_nonblocking_and_cloexec() {
    let tcp = tcp(0, None).unwrap();
    let udp = udp(0, false).unwrap();
    for fd in [&tcp, &udp] {
      // SAFETY: reading the flags of an fd we own.
      let status = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
      assert_ne!(status & libc::O_NONBLOCK, 0);
      // SAFETY: as above.
      let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
      assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
  }

  #[test]
  fn no_address_binds_dual_stack() {
    let fd = bind_inet(&Inet {
      reuse_addr: true,
      ..Inet::default()
    })
    .unwrap();
    assert_ne!(port_of(&fd), 0);
  }

  #[test]
  fn udp_sockets_share_a_port_with_reuse_addr() {
    let a = udp(0, true).unwrap();
    assert!(udp(port_of(&a), true).is_ok());
  }

  #[test]
  fn unix_sockets_get_the_requested_mode() {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("cluster-rs-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap();
    let _fd = bind_unix(p, Some(8), Some(0o777)).unwrap();
    assert_eq!(
      std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
      0o777
    );
    assert_eq!(
      bind_unix(p, Some(8), None).unwrap_err().code(),
      "EADDRINUSE"
    );
    std::fs::remove_file(&path).unwrap();
  }
}
