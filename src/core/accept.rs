//! Accepting connections on a listening socket, with libuv's answer to fd exhaustion: when
//! `accept` fails for lack of fds (EMFILE/ENFILE), the pending connection would stay in the
//! kernel queue and the level-triggered poll would fire again at once, forever. Instead a
//! spare fd is given up, the connection accepted and closed (the client sees it closed, no
//! worker sees it), and the spare taken back.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub enum Accepted {
  /// A new connection, close-on-exec and non-blocking.
  Conn(OwnedFd),
  /// Nothing (more) to accept now.
  Empty,
  /// A connection arrived while we were out of fds: it was closed.
  Shed,
  /// Out of fds and the spare could not help: stop accepting for a while, or the
  /// level-triggered poll fires again at once, forever.
  Exhausted,
}

/// The spare fd kept for shedding connections when out of fds.
pub struct Reserve(Option<File>);

impl Reserve {
  pub fn new() -> Self {
    Reserve(File::open("/dev/null").ok())
  }

  /// Gives the spare fd back for good (the listener closed). Not left to the owner's drop:
  /// that waits for the JavaScript object's garbage collection, and fds pile up meanwhile.
  pub fn release(&mut self) {
    self.0 = None;
  }
}

impl Default for Reserve {
  fn default() -> Self {
    Self::new()
  }
}

fn accept4(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
  loop {
    // SAFETY: accept4 on a listening fd with null address out-pointers.
    let c = unsafe {
      libc::accept4(
        listener.as_raw_fd(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        // Non-blocking, as libuv accepts: the worker's libuv adopts the fd as it is, and a
        // blocking connection stalls its whole loop on the first write the peer does not read.
        libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
      )
    };
    if c >= 0 {
      // SAFETY: accept4 returned a new fd that nobody else owns.
      return Ok(unsafe { OwnedFd::from_raw_fd(c) });
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINTR) {
      return Err(err);
    }
  }
}

/// Accepts one connection. Errors other than running out of fds (e.g. ECONNABORTED) are
/// skipped, as Node skips them; the caller's per-turn bound keeps that from spinning.
pub fn accept(listener: BorrowedFd<'_>, reserve: &mut Reserve) -> Accepted {
  match accept4(listener) {
    Ok(conn) => Accepted::Conn(conn),
    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
    Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
      let Some(spare) = reserve.0.take() else {
        return Accepted::Empty;
      };
      drop(spare);
      let shed = accept4(listener).is_ok(); // dropped at once: the client sees the close
      reserve.0 = File::open("/dev/null").ok();
      if shed {
        Accepted::Shed
      } else {
        Accepted::Empty
      }
    }
    Err(_) => Accepted::Shed,
  }
}

/// Accepts and closes what waits in the listener's queue (at most `max`), so that closing the
/// listener closes those connections cleanly instead of resetting them.
pub fn close_queued(listener: BorrowedFd<'_>, reserve: &mut Reserve, max: usize) {
  for _ in 0..max {
    match accept(listener, reserve) {
      Accepted::Conn(conn) => drop(conn),
      Accepted::Shed => {}
      Accepted::Empty | Accepted::Exhausted => return,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::net::{TcpListener, TcpStream};
  use std::os::fd::AsFd;

  #[test]
  fn connections_are_accepted_cloexec_nonblocking_and_an_empty_queue_is_empty() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let mut reserve = Reserve::new();
    assert!(matches!(accept(l.as_fd(), &mut reserve), Accepted::Empty));
    let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    match accept(l.as_fd(), &mut reserve) {
      Accepted::Conn(fd) => {
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let status = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(
          status & libc::O_NONBLOCK,
          0,
          "workers get non-blocking connections"
        );
      }
      _ => panic!("expected a connection"),
    }
  }
  #[test]
  fn queued_connections_are_closed_not_left_to_be_reset() {
    use std::io::Read;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let mut clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    close_queued(l.as_fd(), &mut Reserve::new(), 16);
    assert!(matches!(
      accept(l.as_fd(), &mut Reserve::new()),
      Accepted::Empty
    ));
    drop(l);
    for c in &mut clients {
      let mut buf = [0u8; 1];
      assert_eq!(c.read(&mut buf).unwrap(), 0, "a clean end of stream");
    }
  }

  // Shedding under fd exhaustion changes the process-wide fd limit, which would race the other
  // test threads here: __test__/accept-failure.test.mjs covers it on a real primary instead.
}
