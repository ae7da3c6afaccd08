//! Watching a child through a pidfd: no SIGCHLD handler (libuv owns SIGCHLD), no pid reuse
//! races, and exactly our own child is reaped.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// How a child ended: an exit code, or the signal that killed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
  Code(i32),
  Signal(i32),
}

/// `pidfd_open(2)`; the fd is close-on-exec by definition.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
  // SAFETY: a plain syscall with integer arguments; on success it returns a new fd we own.
  let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
  if fd < 0 {
    return Err(io::Error::last_os_error());
  }
  // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
  Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for the child to exit and reaps it (blocking: for a thread of its own). The pidfd is
/// non-blocking (our loop polls it), so this sleeps in `poll` until it turns readable, which
/// it does when the child exits.
pub fn reap(pidfd: BorrowedFd<'_>) -> io::Result<ExitStatus> {
  loop {
    let mut pfd = libc::pollfd {
      fd: pidfd.as_raw_fd(),
      events: libc::POLLIN,
      revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
      let err = io::Error::last_os_error();
      if err.raw_os_error() != Some(libc::EINTR) {
        return Err(err);
      }
      continue;
    }
    if let Some(status) = try_reap(pidfd)? {
      return Ok(status);
    }
  }
}

/// Reaps the child if it has exited (`waitid(P_PIDFD, WNOHANG)`); `None` while it runs.
pub fn try_reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
  // SAFETY: zeroed siginfo_t is a valid value for waitid to fill in.
  let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
  loop {
    // SAFETY: `info` is a valid out-pointer; P_PIDFD takes the fd as the id.
    let rc = unsafe {
      libc::waitid(
        libc::P_PIDFD,
        pidfd.as_raw_fd() as libc::id_t,
        &mut info,
        libc::WEXITED | libc::WNOHANG,
      )
    };
    if rc == 0 {
      break;
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINTR) {
      return Err(err);
    }
  }
  // SAFETY: waitid filled `info` for a child state change (or left si_pid 0 for none).
  let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
  if pid == 0 {
    return Ok(None);
  }
  Ok(Some(match info.si_code {
    libc::CLD_EXITED => ExitStatus::Code(status),
    _ => ExitStatus::Signal(status),
  }))
}

/// `pidfd_send_signal(2)`: signals exactly our child, never a recycled pid.
pub fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
  // SAFETY: integer arguments and a null siginfo, as the man page allows.
  let rc = unsafe {
    libc::syscall(
      libc::SYS_pidfd_send_signal,
      pidfd.as_raw_fd(),
      signal,
      std::ptr::null::<libc::siginfo_t>(),
      0,
    )
  };
  if rc < 0 {
    return Err(io::Error::last_os_error());
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::os::fd::AsFd;
  use std::process::Command;

  #[test]
  #[allow(
    clippy::zombie_processes,
    reason = "reaped through the pidfd, which is what is tested"
  )]
  fn exit_codes_and_signals_are_told_apart() {
    let child = Command::new("sh").args(["-c", "exit 42"]).spawn().unwrap();
    let pidfd = pidfd_open(child.id() as i32).unwrap();
    assert_eq!(reap(pidfd.as_fd()).unwrap(), ExitStatus::Code(42));

    let child = Command::new("sleep").arg("10").spawn().unwrap();
    let pidfd = pidfd_open(child.id() as i32).unwrap();
    assert_eq!(try_reap(pidfd.as_fd()).unwrap(), None);
    send_signal(pidfd.as_fd(), libc::SIGKILL).unwrap();
    assert_eq!(
      reap(pidfd.as_fd()).unwrap(),
      ExitStatus::Signal(libc::SIGKILL)
    );
    // Reaped: signalling again is ESRCH, not a stranger's process.
    assert_eq!(
      send_signal(pidfd.as_fd(), libc::SIGTERM)
        .unwrap_err()
        .raw_os_error(),
      Some(libc::ESRCH)
    );
  }

  #[test]
  #[allow(
    clippy::zombie_processes,
    reason = "reaped through the pidfd, which is what is tested"
  )]
  fn reap_blocks_until_the_child_exits() {
    let child = Command::new("sh")
      .args(["-c", "sleep 0.1; exit 7"])
      .spawn()
      .unwrap();
    let pidfd = pidfd_open(child.id() as i32).unwrap();
    assert_eq!(reap(pidfd.as_fd()).unwrap(), ExitStatus::Code(7));
    // Nothing left to wait for.
    assert!(try_reap(pidfd.as_fd()).is_err());
  }
}
