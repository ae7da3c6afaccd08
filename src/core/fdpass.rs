//! The only place that calls `sendmsg`/`recvmsg`: bytes plus at most one fd per message,
//! as Node's channel expects (protocol.md §3.2).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Writes `bytes` to a non-blocking stream socket, with `fd` attached to the first byte when
/// given. Returns how many bytes the kernel took (`WouldBlock` when none).
/// `MSG_NOSIGNAL`: a worker that died gives `EPIPE`, never a SIGPIPE in the primary.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<RawFd>) -> io::Result<usize> {
  send_vectored(sock, &[IoSlice::new(bytes)], fd)
}

/// [`send`] for several buffers written back to back in one `sendmsg` (the fd, if any, rides
/// on the first byte of the first buffer).
pub fn send_vectored(
  sock: BorrowedFd<'_>,
  iov: &[IoSlice<'_>],
  fd: Option<RawFd>,
) -> io::Result<usize> {
  let fds;
  let cmsgs: &[ControlMessage] = match fd {
    Some(f) => {
      fds = [f];
      &[ControlMessage::ScmRights(&fds)]
    }
    None => &[],
  };
  loop {
    match sendmsg::<()>(sock.as_raw_fd(), iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
      Err(Errno::EINTR) => continue,
      Err(e) => return Err(e.into()),
      Ok(n) => return Ok(n),
    }
  }
}

/// Reads into `buf`. Returns the byte count (0 = EOF) and the fds that came with it, already
/// close-on-exec (`MSG_CMSG_CLOEXEC`) so they never leak into a later child.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
  // Room for a few fds: Linux delivers the fds of at most one sendmsg per read, and Node sends one.
  let mut space = cmsg_space!([RawFd; 8]);
  let mut iov = [IoSliceMut::new(buf)];
  loop {
    let res = recvmsg::<()>(
      sock.as_raw_fd(),
      &mut iov,
      Some(&mut space),
      MsgFlags::MSG_CMSG_CLOEXEC,
    );
    match res {
      Err(Errno::EINTR) => continue,
      Err(e) => return Err(e.into()),
      Ok(msg) => {
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
          if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for f in raw {
              // SAFETY: the kernel just installed `f` in our fd table for us; nothing else owns it.
              fds.push(unsafe { OwnedFd::from_raw_fd(f) });
            }
          }
        }
        // A truncated control message means fds were dropped by the kernel: the stream can no
        // longer pair fds with frames, so treat it as a broken channel.
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
          return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control message truncated",
          ));
        }
        return Ok((msg.bytes, fds));
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::testutil::socket_pair as pair;
  use std::os::fd::AsFd;

  #[test]
  fn an_fd_travels_with_the_first_byte_and_arrives_cloexec() {
    let (a, b) = pair();
    let (x, _y) = pair();
    assert_eq!(send(a.as_fd(), b"hello\n", Some(x.as_raw_fd())).unwrap(), 6);
    let mut buf = [0u8; 64];
    let (n, fds) = recv(b.as_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello\n");
    assert_eq!(fds.len(), 1);
    let flags = nix::fcntl::fcntl(fds[0].as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
  }

  #[test]
  fn eof_reads_as_zero_bytes() {
    let (a, b) = pair();
    drop(a);
    let mut buf = [0u8; 8];
    assert_eq!(recv(b.as_fd(), &mut buf).unwrap().0, 0);
  }

  #[test]
  fn writing_to_a_closed_peer_is_epipe_not_sigpipe() {
    let (a, b) = pair();
    drop(b);
    let err = send(a.as_fd(), b"x", None).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
  }
}
