//! A channel's outgoing frames, and the one-fd-in-flight rule (protocol.md §3.4).
//!
//! Ownership rule: every frame of a channel, fd-bearing or not, from JS or from Rust, goes
//! through this one queue, written by the one thread that runs Node's loop. After an
//! fd-bearing frame is written, every later frame waits in `held` until the worker answers
//! with `NODE_HANDLE_ACK`/`NACK` (the worker pairs fds with frames by arrival, and pipelining
//! them mis-assigns fds: §3.3). Only ACK/NACK replies of our own bypass the hold, so two sides
//! sending handles to each other cannot deadlock.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// One frame waiting to be written.
pub struct OutFrame {
  bytes: Vec<u8>,
  /// How much of `bytes` the kernel has taken already.
  written: usize,
  /// The fd to attach to the first byte. Shared, not duplicated: a scheduler keeps the same
  /// connection until the worker accepts it, and duplicating could fail when fds run out.
  fd: Option<Rc<OwnedFd>>,
  /// The sender's id for completion reports; 0 for frames nobody waits on.
  id: u64,
}

impl OutFrame {
  pub fn new(bytes: Vec<u8>, fd: Option<Rc<OwnedFd>>, id: u64) -> Self {
    OutFrame {
      bytes,
      written: 0,
      fd,
      id,
    }
  }

  fn remaining(&self) -> usize {
    self.bytes.len() - self.written
  }
}

#[derive(Default)]
pub struct Outbox {
  /// Frames to write, in order; the head may be partly written.
  ready: VecDeque<OutFrame>,
  /// Frames waiting for the handle reply to the fd-bearing frame in flight.
  held: VecDeque<OutFrame>,
  /// The id of the fd-bearing frame the worker has not answered yet.
  awaiting: Option<u64>,
  queued_bytes: usize,
  /// The highest id whose frame is completely written.
  last_written_id: u64,
}

impl Outbox {
  /// Queues a frame. `bypass` is for handle replies only.
  pub fn push(&mut self, frame: OutFrame, bypass: bool) {
    self.queued_bytes += frame.remaining();
    if bypass {
      self.ready.push_back(frame);
    } else if self.awaiting.is_some() || !self.held.is_empty() {
      self.held.push_back(frame);
    } else {
      if frame.fd.is_some() {
        self.awaiting = Some(frame.id);
      }
      self.ready.push_back(frame);
    }
  }

  /// The worker answered the fd-bearing frame in flight. Releases held frames up to and
  /// including the next fd-bearing one, and returns the id of the answered frame, or `None`
  /// for a reply nobody asked for (a confused or hostile worker; ignored).
  pub fn handle_reply(&mut self) -> Option<u64> {
    let answered = self.awaiting.take()?;
    while let Some(frame) = self.held.pop_front() {
      let carries_fd = frame.fd.is_some();
      let id = frame.id;
      self.ready.push_back(frame);
      if carries_fd {
        self.awaiting = Some(id);
        break;
      }
    }
    Some(answered)
  }

  /// True when an fd-bearing frame awaits its reply.
  pub fn awaiting_reply(&self) -> bool {
    self.awaiting.is_some()
  }

  /// Bytes not yet written, held frames included.
  pub fn queued_bytes(&self) -> usize {
    self.queued_bytes
  }

  /// True when something can be written now.
  pub fn has_ready(&self) -> bool {
    !self.ready.is_empty()
  }

  pub fn last_written_id(&self) -> u64 {
    self.last_written_id
  }

  /// Writes ready frames through `write(bytes, fd)` until they are all written or the socket
  /// is full. Returns `Ok(true)` when `ready` is empty afterwards.
  pub fn flush(
    &mut self,
    mut write: impl FnMut(&[u8], Option<RawFd>) -> io::Result<usize>,
  ) -> io::Result<bool> {
    while let Some(head) = self.ready.front_mut() {
      // The fd rides on the frame's first byte only; a retry of the rest goes without it.
      let fd = if head.written == 0 {
        head.fd.as_ref().map(|f| f.as_raw_fd())
      } else {
        None
      };
      match write(&head.bytes[head.written..], fd) {
        Ok(n) => {
          head.written += n;
          self.queued_bytes -= n;
          if head.remaining() == 0 {
            let done = self.ready.pop_front().expect("head exists");
            if done.id != 0 {
              self.last_written_id = self.last_written_id.max(done.id);
            }
            // Our reference to `done.fd` drops here: the kernel holds its own now.
          }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(e),
      }
    }
    Ok(true)
  }

  /// Drops everything queued (the channel closed); fds held for the frames are closed.
  /// Returns the ids of frames that will never be written.
  pub fn clear(&mut self) -> Vec<u64> {
    let ids = self
      .ready
      .drain(..)
      .chain(self.held.drain(..))
      .map(|f| f.id)
      .filter(|&id| id != 0)
      .collect();
    self.queued_bytes = 0;
    self.awaiting = None;
    ids
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

  fn fd() -> Rc<OwnedFd> {
    Rc::new(
      socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
      )
      .unwrap()
      .0,
    )
  }

  fn frame(s: &str, fd: Option<Rc<OwnedFd>>, id: u64) -> OutFrame {
    OutFrame::new(s.as_bytes().to_vec(), fd, id)
  }

  /// Flushes everything ready, recording (text, had_fd) per write call.
  fn drain(out: &mut Outbox) -> Vec<(String, bool)> {
    let mut seen = Vec::new();
    out
      .flush(|b, f| {
        seen.push((String::from_utf8(b.to_vec()).unwrap(), f.is_some()));
        Ok(b.len())
      })
      .unwrap();
    seen
  }

  #[test]
  fn frames_after_an_fd_frame_wait_for_the_reply() {
    let mut out = Outbox::default();
    out.push(frame("a", None, 1), false);
    out.push(frame("h1", Some(fd()), 2), false);
    out.push(frame("b", None, 3), false);
    out.push(frame("h2", Some(fd()), 4), false);
    out.push(frame("c", None, 5), false);
    assert_eq!(
      drain(&mut out),
      vec![("a".into(), false), ("h1".into(), true)]
    );
    assert!(out.awaiting_reply());
    // An ACK of ours to the worker goes out even while we wait.
    out.push(frame("ack", None, 0), true);
    assert_eq!(drain(&mut out), vec![("ack".into(), false)]);
    assert_eq!(out.handle_reply(), Some(2));
    assert_eq!(
      drain(&mut out),
      vec![("b".into(), false), ("h2".into(), true)]
    );
    assert_eq!(out.handle_reply(), Some(4));
    assert_eq!(drain(&mut out), vec![("c".into(), false)]);
    assert_eq!(out.last_written_id(), 5);
    assert_eq!(out.queued_bytes(), 0);
  }

  #[test]
  fn a_reply_nobody_asked_for_changes_nothing() {
    let mut out = Outbox::default();
    assert_eq!(out.handle_reply(), None);
    out.push(frame("x", None, 1), false);
    assert_eq!(drain(&mut out).len(), 1);
  }

  #[test]
  fn partial_writes_resume_without_the_fd() {
    let mut out = Outbox::default();
    out.push(frame("hello", Some(fd()), 1), false);
    let mut calls = Vec::new();
    let budget = [2usize, 0, 3];
    let mut i = 0;
    let res = out.flush(|b, f| {
      calls.push(f.is_some());
      let n = budget[i].min(b.len());
      i += 1;
      if n == 0 {
        Err(io::ErrorKind::WouldBlock.into())
      } else {
        Ok(n)
      }
    });
    assert!(!res.unwrap());
    assert_eq!(out.queued_bytes(), 3);
    assert!(out
      .flush(|b, f| {
        calls.push(f.is_some());
        Ok(b.len())
      })
      .unwrap());
    assert_eq!(calls, vec![true, false, false]);
    assert_eq!(out.last_written_id(), 1);
  }

  #[test]
  fn clearing_reports_the_frames_that_were_never_written() {
    let mut out = Outbox::default();
    out.push(frame("h", Some(fd()), 1), false);
    out.push(frame("x", None, 2), false);
    out.push(frame("y", None, 0), false);
    assert_eq!(out.clear(), vec![1, 2]);
    assert_eq!(out.queued_bytes(), 0);
  }
}
