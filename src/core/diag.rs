//! Which TCP connections on a local port are still open in some process, from the kernel's
//! socket diagnostics (`NETLINK_SOCK_DIAG`, what `ss` uses; no privileges needed).
//!
//! Least-connections needs to know when a worker has closed a connection it was handed, and
//! the cluster protocol never says. A socket that no process holds any more is an orphan (its
//! inode reads 0) or gone: so a connection is open exactly while its inode is listed here.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

// TCP states that still belong to a process: ESTABLISHED, SYN_RECV, FIN_WAIT1, FIN_WAIT2,
// CLOSE_WAIT, LAST_ACK, CLOSING (an orphan in those states has inode 0 anyway).
const STATES: u32 = (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 11);

/// Offsets in `struct inet_diag_msg`: family, state, timer, retrans (4), sockid (48),
/// expires, rqueue, wqueue, uid, inode.
const MSG_INODE: usize = 4 + 48 + 16;
const NLMSG_HDR: usize = 16;

/// The inodes of the TCP sockets (IPv4 and IPv6) whose local port is `port` and that some
/// process still holds.
pub fn open_inodes(port: u16) -> io::Result<HashSet<u64>> {
  let mut out = HashSet::new();
  for family in [libc::AF_INET, libc::AF_INET6] {
    dump(family as u8, port, &mut out)?;
  }
  Ok(out)
}

fn request(family: u8, port: u16) -> Vec<u8> {
  // struct inet_diag_req_v2 (56 bytes), then the bytecode attribute: "local port == port".
  let mut req = Vec::with_capacity(56 + 12);
  req.push(family);
  req.push(libc::IPPROTO_TCP as u8);
  req.push(0); // idiag_ext
  req.push(0); // pad
  req.extend_from_slice(&STATES.to_ne_bytes());
  req.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: ignored by dumps
                                     // nlattr { len = 4 + 8, type } + two inet_diag_bc_op { code, yes, no }.
  req.extend_from_slice(&12u16.to_ne_bytes());
  req.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
  req.extend_from_slice(&[INET_DIAG_BC_S_EQ, 8]);
  req.extend_from_slice(&12u16.to_ne_bytes()); // no: past the end, reject
  req.extend_from_slice(&[0, 0]);
  req.extend_from_slice(&port.to_ne_bytes());
  let len = (NLMSG_HDR + req.len()) as u32;
  let mut msg = Vec::with_capacity(len as usize);
  msg.extend_from_slice(&len.to_ne_bytes());
  msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
  msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
  msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
  msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
  msg.extend_from_slice(&req);
  msg
}

fn dump(family: u8, port: u16, out: &mut HashSet<u64>) -> io::Result<()> {
  // SAFETY: plain socket(2) call; the fd is owned at once.
  let raw = unsafe {
    libc::socket(
      libc::AF_NETLINK,
      libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
      libc::NETLINK_SOCK_DIAG,
    )
  };
  if raw < 0 {
    return Err(io::Error::last_os_error());
  }
  // SAFETY: a new fd nobody else owns.
  let fd = unsafe { OwnedFd::from_raw_fd(raw) };
  let msg = request(family, port);
  // SAFETY: sending our buffer to the kernel (a zeroed sockaddr_nl addresses it).
  let sent = unsafe {
    let mut addr: libc::sockaddr_nl = std::mem::zeroed();
    addr.nl_family = libc::AF_NETLINK as u16;
    libc::sendto(
      fd.as_raw_fd(),
      msg.as_ptr().cast(),
      msg.len(),
      0,
      (&addr as *const libc::sockaddr_nl).cast(),
      std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
    )
  };
  if sent < 0 {
    return Err(io::Error::last_os_error());
  }
  let mut buf = vec![0u8; 32 * 1024];
  // Bounded: a dump ends with NLMSG_DONE; the bound only guards against a kernel surprise.
  for _ in 0..100_000 {
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
      let e = io::Error::last_os_error();
      if e.raw_os_error() == Some(libc::EINTR) {
        continue;
      }
      return Err(e);
    }
    let data = &buf[..n as usize];
    let mut off = 0;
    while off + NLMSG_HDR <= data.len() {
      let u32_at = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
      let len = u32_at(off) as usize;
      let ty = u16::from_ne_bytes(data[off + 4..off + 6].try_into().unwrap());
      if len < NLMSG_HDR || off + len > data.len() {
        return Err(io::Error::from_raw_os_error(libc::EPROTO));
      }
      match ty {
        NLMSG_DONE => return Ok(()),
        NLMSG_ERROR => {
          let errno = i32::from_ne_bytes(data[off + 16..off + 20].try_into().unwrap());
          return Err(io::Error::from_raw_os_error(-errno));
        }
        SOCK_DIAG_BY_FAMILY if len >= NLMSG_HDR + MSG_INODE + 4 => {
          let inode = u32_at(off + NLMSG_HDR + MSG_INODE);
          if inode != 0 {
            out.insert(inode as u64);
          }
        }
        _ => {}
      }
      off += (len + 3) & !3;
    }
  }
  Err(io::Error::from_raw_os_error(libc::EPROTO))
}

/// The inode of a socket fd (what the diagnostics list it by).
pub fn inode(fd: &OwnedFd) -> Option<u64> {
  // SAFETY: fstat into a zeroed struct on an fd the caller holds.
  let mut st: libc::stat = unsafe { std::mem::zeroed() };
  if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
    return None;
  }
  Some(st.st_ino)
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::net::{TcpListener, TcpStream};

  #[test]
  fn open_connections_are_listed_until_closed() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _c1 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let c2 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (a1, _) = l.accept().unwrap();
    let (a2, _) = l.accept().unwrap();
    let (a1, a2): (OwnedFd, OwnedFd) = (a1.into(), a2.into());
    let (i1, i2) = (inode(&a1).unwrap(), inode(&a2).unwrap());
    let open = open_inodes(port).unwrap();
    assert!(
      open.contains(&i1) && open.contains(&i2),
      "{open:?} {i1} {i2}"
    );
    drop(a2);
    drop(c2);
    // Another test of this binary may fork at any moment: its child holds a copy of every fd
    // until it execs, which keeps a closed socket listed a little longer. Wait that out.
    let mut open = open_inodes(port).unwrap();
    for _ in 0..100 {
      if !open.contains(&i2) {
        break;
      }
      std::thread::sleep(std::time::Duration::from_millis(10));
      open = open_inodes(port).unwrap();
    }
    assert!(open.contains(&i1));
    assert!(!open.contains(&i2));
    // The listener's own port filter: another port lists nothing of ours.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = open_inodes(other.local_addr().unwrap().port()).unwrap();
    assert!(!open.contains(&i1));
  }
}
