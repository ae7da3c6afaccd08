//! `SCHED_REUSEPORT`: one `SO_REUSEPORT` socket per worker on the same address, so that the
//! kernel spreads connections (TCP) or flows (UDP) over the workers with no primary on the path.
//!
//! The kernel keeps the listening TCP sockets of one address in a *reuseport group*, in the
//! order they started listening; a socket leaves the group only when its last fd is closed, and
//! the last member then moves into its place. The primary listens on every worker's socket
//! itself, in order, and keeps a copy of each for as long as the key lives: so it knows every
//! socket's index in the group, and a socket whose worker left stays in the group, still
//! listening (its queued connections are not reset). A classic-BPF program attached to the
//! group (`SO_ATTACH_REUSEPORT_CBPF`) then steers new connections to the sockets of live
//! workers only ([`steer`]), while the primary accepts what was already queued on the others
//! and hands it over. The sockets themselves come from `core::listen` (`reuse_port`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;
const SO_DETACH_REUSEPORT_BPF: libc::c_int = 68;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_MOD_K: u16 = 0x04 | 0x90; // BPF_ALU | BPF_MOD | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_RXHASH: u32 = 32;
const SKF_AD_RANDOM: u32 = 56;
/// BPF_MAXINSNS is 4096; each target costs two instructions.
pub const MAX_STEERED: usize = 2000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
  libc::sock_filter { code, jt, jf, k }
}

/// The steering program: the packet's flow hash (or a random number when the packet has
/// none) modulo the number of targets picks one of `targets`, an index into the group.
pub fn program(targets: &[u32]) -> Vec<libc::sock_filter> {
  assert!(!targets.is_empty() && targets.len() <= MAX_STEERED);
  let n = targets.len();
  let mut p = Vec::with_capacity(5 + 2 * n);
  p.push(insn(
    BPF_LD_W_ABS,
    0,
    0,
    SKF_AD_OFF.wrapping_add(SKF_AD_RXHASH),
  ));
  p.push(insn(BPF_JEQ_K, 0, 1, 0));
  p.push(insn(
    BPF_LD_W_ABS,
    0,
    0,
    SKF_AD_OFF.wrapping_add(SKF_AD_RANDOM),
  ));
  p.push(insn(BPF_MOD_K, 0, 0, n as u32));
  for (i, &t) in targets.iter().enumerate().take(n - 1) {
    p.push(insn(BPF_JEQ_K, 0, 1, i as u32));
    p.push(insn(BPF_RET_K, 0, 0, t));
  }
  p.push(insn(BPF_RET_K, 0, 0, targets[n - 1]));
  p
}

/// Attaches a program to the reuseport group of `fd` that sends every new connection (or
/// datagram flow) to one of the group members at the indexes `targets`. It replaces any
/// program attached before.
pub fn steer(fd: BorrowedFd<'_>, targets: &[u32]) -> io::Result<()> {
  if targets.is_empty() || targets.len() > MAX_STEERED {
    return Err(io::Error::from_raw_os_error(libc::EINVAL));
  }
  let filter = program(targets);
  let prog = libc::sock_fprog {
    len: filter.len() as u16,
    filter: filter.as_ptr() as *mut libc::sock_filter,
  };
  // SAFETY: `prog` points to `filter`, alive for the call; the kernel copies the program.
  let rc = unsafe {
    libc::setsockopt(
      fd.as_raw_fd(),
      libc::SOL_SOCKET,
      SO_ATTACH_REUSEPORT_CBPF,
      (&prog as *const libc::sock_fprog).cast(),
      std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
    )
  };
  if rc < 0 {
    return Err(io::Error::last_os_error());
  }
  Ok(())
}

/// Removes the group's program: the kernel's own flow hash picks the socket again.
pub fn unsteer(fd: BorrowedFd<'_>) -> io::Result<()> {
  let zero: libc::c_int = 0;
  // SAFETY: an int option value on the stack.
  let rc = unsafe {
    libc::setsockopt(
      fd.as_raw_fd(),
      libc::SOL_SOCKET,
      SO_DETACH_REUSEPORT_BPF,
      (&zero as *const libc::c_int).cast(),
      std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    )
  };
  if rc < 0 {
    let e = io::Error::last_os_error();
    // ENOENT: no program was attached.
    if e.raw_os_error() != Some(libc::ENOENT) {
      return Err(e);
    }
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::listen::{bind_inet, local_addr, Inet};
  use std::net::TcpStream;
  use std::os::fd::{AsFd, OwnedFd};

  /// A socket of the reuseport group on `127.0.0.1:port`, as `lib/reuseport.js` asks for it.
  fn member(port: u16, datagram: bool) -> OwnedFd {
    bind_inet(&Inet {
      address: Some("127.0.0.1"),
      port,
      datagram,
      reuse_addr: !datagram,
      reuse_port: true,
      backlog: (!datagram).then_some(128),
      ..Inet::default()
    })
    .unwrap()
  }

  fn accepted(fd: &OwnedFd) -> usize {
    let mut n = 0;
    loop {
      // SAFETY: accept4 on a listening socket, null address pointers.
      let c = unsafe {
        libc::accept4(
          fd.as_raw_fd(),
          std::ptr::null_mut(),
          std::ptr::null_mut(),
          libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
      };
      if c < 0 {
        return n;
      }
      // SAFETY: closing the fd accept4 just returned.
      unsafe { libc::close(c) };
      n += 1;
    }
  }

  fn is_nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: reading the file status flags of an fd we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK != 0 }
  }

  fn group(n: usize) -> (Vec<OwnedFd>, u16) {
    let first = member(0, false);
    let port = local_addr(first.as_fd()).unwrap().port();
    let mut all = vec![first];
    for _ in 1..n {
      all.push(member(port, false));
    }
    assert!(all.iter().all(is_nonblocking));
    (all, port)
  }

  fn connect(port: u16, n: usize) -> Vec<TcpStream> {
    let v: Vec<_> = (0..n)
      .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
      .collect();
    std::thread::sleep(std::time::Duration::from_millis(30));
    v
  }

  #[test]
  fn the_kernel_spreads_connections_over_the_group() {
    let (socks, port) = group(3);
    let _c = connect(port, 60);
    let counts: Vec<usize> = socks.iter().map(accepted).collect();
    assert_eq!(counts.iter().sum::<usize>(), 60);
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
  }

  #[test]
  fn steering_follows_the_listen_order_and_can_be_removed() {
    let (socks, port) = group(3);
    steer(socks[0].as_fd(), &[2]).unwrap();
    let _c = connect(port, 20);
    let counts: Vec<usize> = socks.iter().map(accepted).collect();
    assert_eq!(counts, vec![0, 0, 20]);
    steer(socks[2].as_fd(), &[0, 1]).unwrap();
    let _d = connect(port, 40);
    let counts: Vec<usize> = socks.iter().map(accepted).collect();
    assert_eq!(counts[2], 0, "{counts:?}");
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    unsteer(socks[1].as_fd()).unwrap();
    unsteer(socks[1].as_fd()).unwrap();
    let _e = connect(port, 60);
    let counts: Vec<usize> = socks.iter().map(accepted).collect();
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
  }

  #[test]
  fn a_socket_whose_copy_is_still_open_keeps_its_queue() {
    let (mut socks, port) = group(2);
    // A "worker" copy closes; the primary's copy keeps the socket in the group, queue intact.
    let copy = socks[1].try_clone().unwrap();
    let _c = connect(port, 40);
    drop(copy);
    let counts: Vec<usize> = socks.iter().map(accepted).collect();
    assert_eq!(counts.iter().sum::<usize>(), 40);
    socks.truncate(1);
  }

  #[test]
  fn udp_sockets_share_the_port() {
    let a = member(0, true);
    let port = local_addr(a.as_fd()).unwrap().port();
    let b = member(port, true);
    assert_eq!(local_addr(b.as_fd()).unwrap().port(), port);
  }

  #[test]
  fn programs_are_bounded() {
    assert_eq!(program(&[7]).len(), 5);
    assert_eq!(program(&[1, 2, 3]).len(), 9);
    let (socks, _) = group(1);
    assert!(steer(socks[0].as_fd(), &[]).is_err());
  }
}
