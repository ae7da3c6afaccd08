//! Creating the sockets the primary shares with workers (protocol.md §5.1, §6): bound TCP and
//! UDP sockets, and unix stream sockets, each close-on-exec and non-blocking (as libuv makes
//! them: a worker adopts a shared socket's file status as it is, and a blocking listener leaves
//! every worker but the first blocked in `accept` after each wake-up). TCP gets `SO_REUSEADDR`,
//! as libuv gives every TCP server; with no address, `::` dual-stack is tried before `0.0.0.0`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

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

/// A TCP or UDP socket bound to `address:port` (`None` = any, dual-stack when possible).
/// Listens (TCP) when `backlog` is given; otherwise bound only, for workers to listen on.
pub fn bind_inet(
  address: Option<&str>,
  port: u16,
  datagram: bool,
  ipv6_only: bool,
  reuse_addr: bool,
  backlog: Option<i32>,
) -> Result<OwnedFd, ClusterError> {
  match address {
    Some(a) => {
      let ip: IpAddr = a.parse().map_err(|_| os("bind", Errno::EINVAL))?;
      bind_one(
        SocketAddr::new(ip, port),
        datagram,
        ipv6_only,
        reuse_addr,
        backlog,
      )
    }
    None => {
      let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
      match bind_one(any6, datagram, false, reuse_addr, backlog) {
        Err(e)
          if e.errno() == Some(-libc::EAFNOSUPPORT) || e.errno() == Some(-libc::EADDRNOTAVAIL) =>
        {
          let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
          bind_one(any4, datagram, false, reuse_addr, backlog)
        }
        other => other,
      }
    }
  }
}

fn bind_one(
  addr: SocketAddr,
  datagram: bool,
  ipv6_only: bool,
  reuse_addr: bool,
  backlog: Option<i32>,
) -> Result<OwnedFd, ClusterError> {
  let family = if addr.is_ipv6() {
    AddressFamily::Inet6
  } else {
    AddressFamily::Inet
  };
  let ty = if datagram {
    SockType::Datagram
  } else {
    SockType::Stream
  };
  let fd = socket(family, ty, SOCK_FLAGS, None).map_err(|e| os("socket", e))?;
  if !datagram || reuse_addr {
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| os("setsockopt", e))?;
  }
  if addr.is_ipv6() {
    setsockopt(&fd, sockopt::Ipv6V6Only, &ipv6_only).map_err(|e| os("setsockopt", e))?;
  }
  bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| os("bind", e))?;
  if let Some(b) = backlog {
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

/// The local port a socket is bound to.
pub fn local_port(fd: &OwnedFd) -> Result<u16, ClusterError> {
  let addr: SockaddrStorage =
    nix::sys::socket::getsockname(fd.as_raw_fd()).map_err(|e| os("getsockname", e))?;
  if let Some(a) = addr.as_sockaddr_in() {
    return Ok(a.port());
  }
  if let Some(a) = addr.as_sockaddr_in6() {
    return Ok(a.port());
  }
  Err(os("getsockname", Errno::EAFNOSUPPORT))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn port_zero_gets_a_real_port_and_a_taken_port_is_eaddrinuse() {
    let a = bind_inet(Some("127.0.0.1"), 0, false, false, true, Some(16)).unwrap();
    let port = local_port(&a).unwrap();
    assert_ne!(port, 0);
    let err = bind_inet(Some("127.0.0.1"), port, false, false, true, Some(16)).unwrap_err();
    assert_eq!(err.code(), "EADDRINUSE");
    assert_eq!(err.errno(), Some(-libc::EADDRINUSE));
  }

  #[test]
  fn sockets_are_nonblocking_and_cloexec() {
    let tcp = bind_inet(Some("127.0.0.1"), 0, false, false, true, None).unwrap();
    let udp = bind_inet(Some("127.0.0.1"), 0, true, false, false, None).unwrap();
    for fd in [&tcp, &udp] {
      let status = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
      assert_ne!(status & libc::O_NONBLOCK, 0);
      let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
      assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
  }

  #[test]
  fn no_address_binds_dual_stack() {
    let fd = bind_inet(None, 0, false, false, true, None).unwrap();
    assert_ne!(local_port(&fd).unwrap(), 0);
  }

  #[test]
  fn udp_sockets_share_a_port_with_reuse_addr() {
    let a = bind_inet(Some("127.0.0.1"), 0, true, false, true, None).unwrap();
    let port = local_port(&a).unwrap();
    assert!(bind_inet(Some("127.0.0.1"), port, true, false, true, None).is_ok());
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
