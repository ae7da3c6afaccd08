//! A channel's outgoing frames, and the one-fd-in-flight rule (protocol.md §3.4).
//!
//! Ownership rule: every frame of a channel, fd-bearing or not, from JS or from Rust, goes
//! through this one queue, written by the one thread that runs Node's loop. After an
//! fd-bearing frame is written, every later frame waits in `held` until the worker answers
//! with `NODE_HANDLE_ACK`/`NACK` (the worker pairs fds with frames by arrival, and pipelining
//! them mis-assigns fds: §3.3). Only ACK/NACK replies of our own bypass the hold, so two sides
//! sending handles to each other cannot deadlock.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
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
  /// The sender's id for completion reports; 0 for frames nobody waits on. When later
  /// frames were merged into this one (see `MERGE_MAX`), the highest of their ids, and
  /// `first_id` the lowest: they are all written when the buffer is.
  id: u64,
  first_id: u64,
}

impl OutFrame {
  pub fn new(bytes: Vec<u8>, fd: Option<Rc<OwnedFd>>, id: u64) -> Self {
    OutFrame {
      bytes,
      written: 0,
      fd,
      id,
      first_id: id,
    }
  }

  /// The rest of a frame (without fd) whose first `written` bytes are on the socket already.
  pub fn partly_written(bytes: Vec<u8>, written: usize, id: u64) -> Self {
    OutFrame {
      bytes,
      written,
      fd: None,
      id,
      first_id: id,
    }
  }

  fn remaining(&self) -> usize {
    self.bytes.len() - self.written
  }

  /// Whether `more` bytes of a later frame (without fd) may go into this frame's buffer.
  fn can_take(&self, more: usize) -> bool {
    self.fd.is_none() && self.written == 0 && self.bytes.len() + more <= MERGE_MAX
  }

  fn take_id(&mut self, id: u64) {
    if id != 0 {
      if self.first_id == 0 {
        self.first_id = id;
      }
      self.id = self.id.max(id);
    }
  }

  /// The ids of the sends in this frame (merged ones included), ascending.
  fn ids(&self) -> impl Iterator<Item = u64> {
    let first = if self.first_id == 0 {
      self.id
    } else {
      self.first_id
    };
    (first..=self.id).filter(|&id| id != 0)
  }
}

/// Small frames without an fd queued behind another such frame go into its buffer (up to
/// this size): a burst of small messages costs one buffer and one iovec, not one each.
const MERGE_MAX: usize = 64 * 1024;

/// At most this many frames, or about this many bytes, go into one `sendmsg`.
const WRITEV_FRAMES: usize = 64;
const WRITEV_BYTES: usize = 256 * 1024;

/// Written frames' buffers are kept for the next frames (a few, not too large): a flood of
/// large messages then reuses warm memory instead of faulting fresh pages in for each, and a
/// stream of round-robin hand-offs (about 140 bytes each) allocates nothing.
const SPARE_BUFFERS: usize = 4;
const SPARE_MIN_CAPACITY: usize = 128;
const SPARE_MAX_CAPACITY: usize = 4 << 20;

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
  spare: Vec<Vec<u8>>,
  /// Never merge frames into one buffer nor write several in one call (see
  /// [`one_frame_per_write`](Self::one_frame_per_write)).
  frame_per_write: bool,
}

impl Outbox {
  /// An outbox that writes every frame with a system call of its own and never merges frames.
  /// For readers that mishandle a length prefix split across reads (Node before 20.19, 22.14
  /// and 23.7 in advanced mode: protocol.md §9): with whole frames per write, a partial write
  /// can only cut a frame after its first socket buffer's worth of bytes, never in its prefix.
  pub fn one_frame_per_write() -> Self {
    Outbox {
      frame_per_write: true,
      ..Outbox::default()
    }
  }

  /// Queues a frame. `bypass` is for handle replies only.
  pub fn push(&mut self, frame: OutFrame, bypass: bool) {
    self.queued_bytes += frame.remaining();
    if frame.fd.is_none() && frame.written == 0 {
      if let Some(tail) = self.merge_target(bypass, frame.bytes.len()) {
        tail.bytes.extend_from_slice(&frame.bytes);
        tail.take_id(frame.id);
        self.recycle(frame.bytes);
        return;
      }
    }
    if self.holds(bypass) {
      self.held.push_back(frame);
    } else {
      if frame.fd.is_some() {
        self.awaiting = Some(frame.id);
      }
      self.ready.push_back(frame);
    }
  }

  /// Queues a frame of `len` bytes without fd that `fill` appends straight into the buffer
  /// of the last queued frame, which must be able to take it (see
  /// [`can_append`](Self::can_append)). False, with nothing queued, when it cannot or when
  /// `fill` fails.
  pub fn append_with(
    &mut self,
    bypass: bool,
    id: u64,
    len: usize,
    fill: impl FnOnce(&mut Vec<u8>) -> bool,
  ) -> bool {
    let Some(tail) = self.merge_target(bypass, len) else {
      return false;
    };
    let before = tail.bytes.len();
    if !fill(&mut tail.bytes) {
      tail.bytes.truncate(before);
      return false;
    }
    tail.take_id(id);
    let added = tail.bytes.len() - before;
    self.queued_bytes += added;
    true
  }

  /// Whether [`append_with`](Self::append_with) would take a frame of `len` bytes.
  pub fn can_append(&mut self, bypass: bool, len: usize) -> bool {
    self.merge_target(bypass, len).is_some()
  }

  /// The queued frame that a frame of `len` bytes without fd, queued now, goes into instead
  /// of a buffer of its own: the last one of its queue, if it can take them. None with one
  /// frame per write, which never merges.
  fn merge_target(&mut self, bypass: bool, len: usize) -> Option<&mut OutFrame> {
    if self.frame_per_write {
      return None;
    }
    let queue = if self.holds(bypass) {
      &mut self.held
    } else {
      &mut self.ready
    };
    queue.back_mut().filter(|t| t.can_take(len))
  }

  /// Whether a frame queued now must wait behind an fd in flight.
  fn holds(&self, bypass: bool) -> bool {
    !bypass && (self.awaiting.is_some() || !self.held.is_empty())
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

  /// True when nothing is queued or held and no fd awaits its reply: a frame without an fd
  /// may be written directly (then reported with [`note_written`](Self::note_written)).
  pub fn is_idle(&self) -> bool {
    self.ready.is_empty() && self.held.is_empty() && self.awaiting.is_none()
  }

  /// Records a frame written directly, bypassing the queue (see [`is_idle`](Self::is_idle)).
  pub fn note_written(&mut self, id: u64) {
    self.last_written_id = self.last_written_id.max(id);
  }

  /// An empty buffer for the next frame, recycled when one is spare.
  pub fn take_spare(&mut self) -> Vec<u8> {
    self.spare.pop().unwrap_or_default()
  }

  /// Keeps `buf` for a later frame if it is worth keeping.
  pub fn recycle(&mut self, mut buf: Vec<u8>) {
    let cap = buf.capacity();
    if self.spare.len() < SPARE_BUFFERS && (SPARE_MIN_CAPACITY..=SPARE_MAX_CAPACITY).contains(&cap)
    {
      buf.clear();
      self.spare.push(buf);
    }
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

  /// Writes ready frames through `write(buffers, fd)` until they are all written or the
  /// socket is full. Several frames go out in one call (a batch of small messages costs one
  /// system call), but an fd-bearing frame always starts a call of its own, so its fd rides on
  /// its own first byte. Returns `Ok(true)` when `ready` is empty afterwards.
  pub fn flush(
    &mut self,
    mut write: impl FnMut(&[IoSlice<'_>], Option<RawFd>) -> io::Result<usize>,
  ) -> io::Result<bool> {
    while let Some(head) = self.ready.front() {
      // The fd rides on the frame's first byte only; a retry of the rest goes without it.
      let fd = if head.written == 0 {
        head.fd.as_ref().map(|f| f.as_raw_fd())
      } else {
        None
      };
      let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(WRITEV_FRAMES.min(self.ready.len()));
      let mut bytes = 0;
      for (i, frame) in self.ready.iter().enumerate() {
        let full = iov.len() == WRITEV_FRAMES || bytes >= WRITEV_BYTES || self.frame_per_write;
        if i > 0 && (frame.fd.is_some() || full) {
          break;
        }
        let rest = &frame.bytes[frame.written..];
        bytes += rest.len();
        iov.push(IoSlice::new(rest));
      }
      let mut n = match write(&iov, fd) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(e),
      };
      drop(iov);
      self.queued_bytes -= n;
      // Retire what the kernel took: whole frames, then part of the next one.
      while let Some(head) = self.ready.front_mut() {
        if n == 0 && head.remaining() > 0 {
          break;
        }
        let take = head.remaining().min(n);
        head.written += take;
        n -= take;
        if head.remaining() == 0 {
          let done = self.ready.pop_front().expect("head exists");
          if done.id != 0 {
            self.last_written_id = self.last_written_id.max(done.id);
          }
          // Our reference to `done.fd` drops here: the kernel holds its own now.
          self.recycle(done.bytes);
        }
      }
      if bytes > 0 && self.ready.front().is_some_and(|f| f.written > 0) {
        // A short write: the socket is full.
        return Ok(false);
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
      .flat_map(|f| f.ids())
      .collect();
    self.queued_bytes = 0;
    self.awaiting = None;
    ids
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::testutil::socket_pair;

  fn fd() -> Rc<OwnedFd> {
    Rc::new(socket_pair().0)
  }

  fn flat(iov: &[IoSlice<'_>]) -> Vec<u8> {
    iov.iter().flat_map(|s| s.iter().copied()).collect()
  }

  fn frame(s: &str, fd: Option<Rc<OwnedFd>>, id: u64) -> OutFrame {
    OutFrame::new(s.as_bytes().to_vec(), fd, id)
  }

  /// Flushes everything ready, recording (text, had_fd) per write call.
  fn drain(out: &mut Outbox) -> Vec<(String, bool)> {
    let mut seen = Vec::new();
    out
      .flush(|iov, f| {
        let b = flat(iov);
        seen.push((String::from_utf8(b.clone()).unwrap(), f.is_some()));
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
    let res = out.flush(|iov, f| {
      calls.push(f.is_some());
      let n = budget[i].min(flat(iov).len());
      i += 1;
      if n == 0 {
        Err(io::ErrorKind::WouldBlock.into())
      } else {
        Ok(n)
      }
    });
    // A short write means a full socket: no second attempt in the same flush.
    assert!(!res.unwrap());
    assert_eq!(out.queued_bytes(), 3);
    assert!(out
      .flush(|iov, f| {
        calls.push(f.is_some());
        Ok(flat(iov).len())
      })
      .unwrap());
    assert_eq!(calls, vec![true, false]);
    assert_eq!(out.last_written_id(), 1);
  }

  #[test]
  fn small_frames_share_a_buffer_but_an_fd_frame_starts_its_own() {
    let mut out = Outbox::default();
    out.push(frame("a", None, 1), false);
    out.push(frame("b", None, 2), false);
    out.push(frame("h", Some(fd()), 3), false);
    out.push(frame("c", None, 4), false);
    assert_eq!(out.queued_bytes(), 4);
    assert_eq!(
      drain(&mut out),
      vec![("ab".into(), false), ("h".into(), true)]
    );
    assert_eq!(out.last_written_id(), 3);
    out.handle_reply();
    // Frames queued behind the released one join its buffer: one write.
    for i in 0..100 {
      out.push(frame("x", None, 10 + i), false);
    }
    let writes = drain(&mut out);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].0.len(), 101);
    assert_eq!(out.last_written_id(), 109);
  }

  #[test]
  fn large_frames_go_out_several_per_write_within_bounds() {
    let mut out = Outbox::default();
    let big = "y".repeat(40 * 1024);
    for i in 1..=100 {
      out.push(frame(&big, None, i), false);
    }
    let mut calls = Vec::new();
    assert!(out
      .flush(|iov, _| {
        calls.push((iov.len(), flat(iov).len()));
        Ok(flat(iov).len())
      })
      .unwrap());
    assert!(calls.len() > 1);
    for (frames, bytes) in &calls {
      assert!(*frames <= WRITEV_FRAMES);
      assert!(*bytes <= WRITEV_BYTES + big.len());
    }
    assert_eq!(calls.iter().map(|c| c.1).sum::<usize>(), 100 * big.len());
    assert_eq!(out.last_written_id(), 100);
  }

  #[test]
  fn one_frame_per_write_neither_merges_nor_batches() {
    let mut out = Outbox::one_frame_per_write();
    for (i, s) in ["a", "bb", "ccc"].iter().enumerate() {
      out.push(frame(s, None, i as u64 + 1), false);
    }
    assert!(!out.can_append(false, 1));
    assert!(!out.append_with(false, 4, 1, |b| {
      b.push(b'd');
      true
    }));
    let mut calls = Vec::new();
    // The second write is short (one byte of "bb"): its rest goes out alone too.
    let mut budget = vec![usize::MAX, 1, usize::MAX, usize::MAX];
    budget.reverse();
    assert!(out
      .flush(|iov, _| {
        let b = flat(iov);
        let n = budget.pop().unwrap().min(b.len());
        calls.push(String::from_utf8(b[..n].to_vec()).unwrap());
        Ok(n)
      })
      .is_ok());
    while out.has_ready() {
      out
        .flush(|iov, _| {
          let b = flat(iov);
          calls.push(String::from_utf8(b.clone()).unwrap());
          Ok(b.len())
        })
        .unwrap();
    }
    assert_eq!(calls, ["a", "b", "b", "ccc"]);
    assert_eq!(out.last_written_id(), 3);
  }

  #[test]
  fn a_write_that_ends_inside_a_frame_resumes_there() {
    let mut out = Outbox::default();
    // 40 KiB each: too large to share a buffer.
    let part = |c: u8| vec![c; 40 * 1024];
    out.push(OutFrame::new(part(b'1'), None, 1), false);
    out.push(OutFrame::new(part(b'2'), None, 2), false);
    out.push(OutFrame::new(part(b'3'), None, 3), false);
    let mut got = Vec::new();
    // The kernel takes the first frame and 4 bytes of the second.
    let res = out.flush(|iov, _| {
      let n = 40 * 1024 + 4;
      got.extend_from_slice(&flat(iov)[..n]);
      Ok(n)
    });
    assert!(!res.unwrap());
    assert_eq!(out.last_written_id(), 1);
    assert_eq!(out.queued_bytes(), 80 * 1024 - 4);
    assert!(out
      .flush(|iov, _| {
        let b = flat(iov);
        got.extend_from_slice(&b);
        Ok(b.len())
      })
      .unwrap());
    let expected: Vec<u8> = [part(b'1'), part(b'2'), part(b'3')].concat();
    assert!(got == expected);
    assert_eq!(out.last_written_id(), 3);
  }

  #[test]
  fn merged_frames_keep_their_ids_for_completion_and_failure() {
    let mut out = Outbox::default();
    out.push(frame("a", None, 5), false);
    // A reply of ours (id 0) and later sends join the same buffer.
    out.push(frame("r", None, 0), true);
    out.push(frame("b", None, 6), false);
    assert!(out.can_append(false, 2));
    assert!(out.append_with(false, 7, 2, |buf| {
      buf.extend_from_slice(b"c\n");
      true
    }));
    assert!(!out.append_with(false, 8, 1, |_| false));
    assert_eq!(out.queued_bytes(), 5);
    assert_eq!(out.clear(), vec![5, 6, 7]);

    out.push(frame("a", None, 1), false);
    out.push(frame("b", None, 2), false);
    assert_eq!(drain(&mut out), vec![("ab".into(), false)]);
    assert_eq!(out.last_written_id(), 2);
    // Nothing to append to once everything is written.
    assert!(!out.can_append(false, 1));
    assert!(!out.append_with(false, 3, 1, |_| true));
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
