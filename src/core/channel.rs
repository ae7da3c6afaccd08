//! One worker's IPC channel: the socket, its frame decoder and its outbox. Driven by readiness
//! callbacks from Node's own loop (see `binding::uv`): no thread hop on the message path.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use nix::sys::socket::{setsockopt, sockopt};

use crate::core::fdpass;
use crate::core::framing::{as_handle_reply, Decoder, HandleReply, Serialization};
use crate::core::outbox::{OutFrame, Outbox};
use crate::core::protocol::parse_newconn_reply;
use crate::error::ClusterError;

/// One read turn reads at most this much before giving the loop back, so a flooding worker
/// cannot starve timers, other workers or accepts.
const READ_CHUNK: usize = 64 * 1024;

const READS_PER_TURN: usize = 16;

/// SO_SNDBUF for a split-sensitive reader (see [`Channel::for_split_sensitive_reader`]). The
/// kernel doubles it to 32 KiB and cuts a write into buffers of at most half that; a unix
/// stream socket stops queueing once its buffers pass the limit, so what waits for the reader
/// stays under 32 + 16 KiB, below the 64 KiB a Node reader asks for.
const SEND_BUFFER_FOR_SPLIT_SENSITIVE: usize = 16 * 1024;

/// Deferred frames are written as soon as this much has gathered, so a burst of sends cannot
/// hide a full socket from `send()`'s back-pressure figure for long.
const DEFER_LIMIT: usize = 64 * 1024;

/// What one read turn produced, in arrival order within each list.
#[derive(Default)]
pub struct ReadBatch {
  /// The complete frames for JavaScript, in the decoder's output format: JSON lines joined by
  /// `\n`, or advanced frames back to back with their length prefixes.
  pub data: Vec<u8>,
  /// How many frames `data` holds.
  pub frames: usize,
  /// Fds that arrived; the JS side pairs them with `NODE_HANDLE` frames (§3.3).
  pub fds: Vec<OwnedFd>,
  /// Ids of our fd-bearing frames that the worker answered (true = ACK).
  pub replies: Vec<(u64, bool)>,
  /// Answers to Rust's own `newconn` requests: `(seq, accepted)`.
  pub newconn_replies: Vec<(u64, bool)>,
  /// The worker closed its end.
  pub eof: bool,
}

impl ReadBatch {
  pub fn has_messages(&self) -> bool {
    self.frames > 0 || !self.fds.is_empty()
  }
}

/// Where a frame handed to [`Channel::send`] stands when the call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
  /// On the socket, with every frame before it.
  Written,
  /// Queued without a write attempt: the caller flushes the channel before it returns to the
  /// loop (see `Channel::send`).
  Deferred,
  /// Queued behind a full socket or an fd in flight; this many bytes wait in all.
  Queued(usize),
}

pub struct Channel {
  sock: OwnedFd,
  decoder: Decoder,
  outbox: Outbox,
  buf: Vec<u8>,
  /// Bytes of ready frames queued with `defer` that no write was tried for yet.
  deferred_bytes: usize,
  deferred: bool,
}

impl Channel {
  /// Wraps the primary's end of a socketpair. It must already be non-blocking.
  pub fn new(sock: OwnedFd, mode: Serialization, max_frame: usize) -> Self {
    Self::with_outbox(sock, mode, max_frame, Outbox::default())
  }

  /// A channel to a reader that stalls when a length prefix is split across its reads (Node
  /// before 20.19, 22.14 and 23.7 in advanced mode; protocol.md §9). Two things together make
  /// every read it does end at a frame boundary or deep inside a frame, never in a prefix:
  /// each frame is written by a call of its own (a short write is cut between the kernel's
  /// buffers, the first of which holds about the first 16 KiB of the frame, or all of it),
  /// and the send buffer is kept small enough that a read always takes everything queued
  /// instead of stopping at an arbitrary byte.
  pub fn for_split_sensitive_reader(
    sock: OwnedFd,
    mode: Serialization,
    max_frame: usize,
  ) -> io::Result<Self> {
    setsockopt(&sock, sockopt::SndBuf, &SEND_BUFFER_FOR_SPLIT_SENSITIVE)?;
    Ok(Self::with_outbox(
      sock,
      mode,
      max_frame,
      Outbox::one_frame_per_write(),
    ))
  }

  fn with_outbox(sock: OwnedFd, mode: Serialization, max_frame: usize, outbox: Outbox) -> Self {
    Channel {
      sock,
      decoder: Decoder::new(mode, max_frame),
      outbox,
      buf: vec![0; READ_CHUNK],
      deferred_bytes: 0,
      deferred: false,
    }
  }

  pub fn fd(&self) -> BorrowedFd<'_> {
    self.sock.as_fd()
  }

  pub fn mode(&self) -> Serialization {
    self.decoder.mode()
  }

  pub fn queued_bytes(&self) -> usize {
    self.outbox.queued_bytes()
  }

  /// True when frames wait for the socket to become writable (deferred frames do not: they
  /// are written by an explicit flush).
  pub fn wants_write(&self) -> bool {
    self.outbox.has_ready() && !self.deferred
  }

  /// True when deferred frames wait for their flush.
  pub fn has_deferred(&self) -> bool {
    self.deferred
  }

  pub fn last_written_id(&self) -> u64 {
    self.outbox.last_written_id()
  }

  /// Reads what is available (bounded per turn). Handle replies are consumed here.
  /// An error means the channel is unusable and must be closed.
  pub fn read(&mut self) -> Result<ReadBatch, ClusterError> {
    let mut batch = ReadBatch::default();
    let mode = self.decoder.mode();
    for _ in 0..READS_PER_TURN {
      let (n, fds) = match fdpass::recv(self.sock.as_fd(), &mut self.buf) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
        Err(e) => return Err(ClusterError::os("read", e)),
      };
      if n == 0 {
        batch.eof = true;
        break;
      }
      let got_fd = !fds.is_empty();
      batch.fds.extend(fds);
      let outbox = &mut self.outbox;
      let replies = &mut batch.replies;
      let newconn_replies = &mut batch.newconn_replies;
      self.decoder.push(&self.buf[..n], |frame| {
        if let Some(reply) = as_handle_reply(mode, frame) {
          if let Some(id) = outbox.handle_reply() {
            replies.push((id, reply == HandleReply::Ack));
          }
          false
        } else if let Some(answer) = parse_newconn_reply(mode, frame) {
          newconn_replies.push(answer);
          false
        } else {
          true
        }
      })?;
      // One fd per batch: the JS side pairs it with the next NODE_HANDLE frame, and a second fd
      // in the same batch could only be paired wrongly. A short read means the socket is
      // drained for now (as libuv reasons): the next readiness callback reads on.
      if got_fd || n < self.buf.len() {
        break;
      }
    }
    let (data, frames) = self.decoder.take_output();
    batch.data = data;
    batch.frames = frames;
    Ok(batch)
  }

  /// Queues a frame. The fd is shared with the caller, which may keep its own reference
  /// (nothing is duplicated, so nothing can fail for lack of fds).
  ///
  /// With `defer`, a frame that could be written now is only queued, up to `DEFER_LIMIT`
  /// bytes: the caller promises a [`flush`](Self::flush) before control returns to the loop,
  /// so a burst of sends becomes one write. Otherwise the frame is written at once when
  /// nothing is queued before it.
  pub fn send(
    &mut self,
    bytes: Vec<u8>,
    fd: Option<Rc<OwnedFd>>,
    id: u64,
    bypass: bool,
    defer: bool,
  ) -> Result<Sent, ClusterError> {
    let len = bytes.len();
    if fd.is_none() && !bypass && self.may_write_directly(len, defer) {
      let n = self.write_directly(&bytes)?;
      if n == len {
        self.outbox.note_written(id);
        self.outbox.recycle(bytes);
        return Ok(Sent::Written);
      }
      self
        .outbox
        .push(OutFrame::partly_written(bytes, n, id), false);
      return Ok(Sent::Queued(self.outbox.queued_bytes()));
    }
    // Frames waiting for the socket: the writable callback writes this one after them.
    let blocked = self.outbox.has_ready() && !self.deferred;
    self.outbox.push(OutFrame::new(bytes, fd, id), bypass);
    self.queued(len, blocked, defer)
  }

  /// [`send`](Self::send) for a frame of `len` bytes without fd that `fill` writes (a JS
  /// string encoded to UTF-8): straight into the buffer of the last queued frame when it can
  /// take it, so a burst of small messages costs no buffer each. `fill` returns false on
  /// failure (nothing is sent then).
  pub fn send_with(
    &mut self,
    len: usize,
    id: u64,
    bypass: bool,
    defer: bool,
    fill: impl FnOnce(&mut Vec<u8>) -> bool,
  ) -> Result<Sent, ClusterError> {
    if self.may_write_directly(len, defer) || !self.outbox.can_append(bypass, len) {
      // A frame of its own.
      return self.send_filled(len, id, bypass, defer, fill);
    }
    let blocked = self.outbox.has_ready() && !self.deferred;
    if self.outbox.append_with(bypass, id, len, fill) {
      self.queued(len, blocked, defer)
    } else {
      Err(bad_frame())
    }
  }

  fn send_filled(
    &mut self,
    len: usize,
    id: u64,
    bypass: bool,
    defer: bool,
    fill: impl FnOnce(&mut Vec<u8>) -> bool,
  ) -> Result<Sent, ClusterError> {
    let mut buf = self.outbox.take_spare();
    buf.reserve(len);
    if !fill(&mut buf) {
      return Err(bad_frame());
    }
    self.send(buf, None, id, bypass, defer)
  }

  /// Where a frame just queued stands (see [`Sent`]); writes it now unless it is behind
  /// others (`blocked`), held, or one to batch.
  fn queued(&mut self, len: usize, blocked: bool, defer: bool) -> Result<Sent, ClusterError> {
    if blocked || !self.outbox.has_ready() {
      // Behind a full socket, or held behind an fd in flight.
      return Ok(Sent::Queued(self.outbox.queued_bytes()));
    }
    if defer && self.deferred_bytes + len < DEFER_LIMIT {
      self.deferred_bytes += len;
      self.deferred = true;
      return Ok(Sent::Deferred);
    }
    self.flush().map_err(|e| ClusterError::os("write", e))?;
    Ok(match self.outbox.queued_bytes() {
      0 => Sent::Written,
      n => Sent::Queued(n),
    })
  }

  /// [`send`](Self::send) for bytes the caller keeps (a JS Buffer): written straight from
  /// them when the socket is free, copied (into a recycled buffer) only when they must wait.
  pub fn send_slice(
    &mut self,
    bytes: &[u8],
    fd: Option<Rc<OwnedFd>>,
    id: u64,
    bypass: bool,
    defer: bool,
  ) -> Result<Sent, ClusterError> {
    if fd.is_none() && !bypass && self.may_write_directly(bytes.len(), defer) {
      let written = self.write_directly(bytes)?;
      if written == bytes.len() {
        self.outbox.note_written(id);
        return Ok(Sent::Written);
      }
      // The socket is full: the rest waits for the writable callback.
      let mut buf = self.outbox.take_spare();
      buf.extend_from_slice(&bytes[written..]);
      self.outbox.push(OutFrame::new(buf, None, id), false);
      return Ok(Sent::Queued(self.outbox.queued_bytes()));
    }
    if fd.is_none() {
      return self.send_with(bytes.len(), id, bypass, defer, |buf| {
        buf.extend_from_slice(bytes);
        true
      });
    }
    let mut buf = self.outbox.take_spare();
    buf.extend_from_slice(bytes);
    self.send(buf, fd, id, bypass, defer)
  }

  /// An empty buffer to build a frame in (recycled from written frames when possible).
  pub fn take_buffer(&mut self) -> Vec<u8> {
    self.outbox.take_spare()
  }

  /// Gives back the data of a read batch once JS has its copy.
  pub fn recycle_read(&mut self, buf: Vec<u8>) {
    self.decoder.recycle(buf);
  }

  /// Whether a frame of `len` bytes (without fd, not a bypass reply) can skip the queue:
  /// nothing waits before it and it is not one to batch.
  fn may_write_directly(&self, len: usize, defer: bool) -> bool {
    self.outbox.is_idle() && !(defer && self.deferred_bytes + len < DEFER_LIMIT)
  }

  fn write_directly(&mut self, bytes: &[u8]) -> Result<usize, ClusterError> {
    match fdpass::send(self.sock.as_fd(), bytes, None) {
      Ok(n) => Ok(n),
      Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
      Err(e) => Err(ClusterError::os("write", e)),
    }
  }

  /// Writes ready frames (deferred ones included); `Ok(true)` when nothing ready is left.
  pub fn flush(&mut self) -> io::Result<bool> {
    self.deferred = false;
    self.deferred_bytes = 0;
    let sock = self.sock.as_fd();
    self
      .outbox
      .flush(|iov, fd| fdpass::send_vectored(sock, iov, fd))
  }

  /// Drops queued frames; returns the ids that were never written.
  pub fn discard_queue(&mut self) -> Vec<u64> {
    self.deferred = false;
    self.deferred_bytes = 0;
    self.outbox.clear()
  }

  /// Gives up the socket (for closing after the poll handle has stopped watching it).
  pub fn into_socket(self) -> OwnedFd {
    self.sock
  }
}

fn bad_frame() -> ClusterError {
  ClusterError::InvalidArg("a frame is a string or a Buffer".into())
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::framing::{encode_handle_reply, HandleReply};
  use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
  use std::io::{Read, Write};
  use std::os::unix::net::UnixStream;

  fn pair(mode: Serialization) -> (Channel, UnixStream) {
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, flags).unwrap();
    let peer = UnixStream::from(b);
    peer.set_nonblocking(false).unwrap();
    (Channel::new(a, mode, 1 << 20), peer)
  }

  #[test]
  fn reads_coalesced_json_lines_and_consumes_handle_replies() {
    let (mut ch, mut peer) = pair(Serialization::Json);
    let fd_frame = ch.send(
      b"{\"cmd\":\"NODE_HANDLE\"}\n".to_vec(),
      Some(dup(&peer)),
      7,
      false,
      false,
    );
    assert_eq!(fd_frame.unwrap(), Sent::Written);
    assert_eq!(
      ch.send(b"held\n".to_vec(), None, 8, false, true).unwrap(),
      Sent::Queued(5)
    );
    peer
      .write_all(b"{\"a\":1}\n{\"cmd\":\"NODE_HANDLE_ACK\"}\n[2]\n")
      .unwrap();
    let batch = ch.read().unwrap();
    assert_eq!(batch.data, b"{\"a\":1}\n[2]");
    assert_eq!(batch.frames, 2);
    assert_eq!(batch.replies, vec![(7, true)]);
    assert!(ch.flush().unwrap());
    // The held frame follows the fd-bearing one, in a read of its own (the fd ends a read).
    let mut seen = String::new();
    while !seen.ends_with("held\n") {
      let mut got = vec![0u8; 64];
      let n = peer.read(&mut got).unwrap();
      seen.push_str(&String::from_utf8_lossy(&got[..n]));
    }
    assert_eq!(seen, "{\"cmd\":\"NODE_HANDLE\"}\nheld\n");
  }

  #[test]
  fn eof_is_reported() {
    let (mut ch, peer) = pair(Serialization::Advanced);
    drop(peer);
    assert!(ch.read().unwrap().eof);
  }

  #[test]
  fn advanced_replies_are_consumed_too() {
    let (mut ch, mut peer) = pair(Serialization::Advanced);
    ch.send(vec![0, 0, 0, 0], Some(dup(&peer)), 3, false, false)
      .unwrap();
    peer
      .write_all(&encode_handle_reply(
        Serialization::Advanced,
        HandleReply::Nack,
      ))
      .unwrap();
    let batch = ch.read().unwrap();
    assert_eq!(batch.replies, vec![(3, false)]);
    assert_eq!(batch.frames, 0);
    assert!(batch.data.is_empty());
  }

  #[test]
  fn deferred_frames_go_out_together_on_flush() {
    let (mut ch, mut peer) = pair(Serialization::Json);
    peer.set_nonblocking(true).unwrap();
    assert_eq!(
      ch.send(b"1\n".to_vec(), None, 1, false, true).unwrap(),
      Sent::Deferred
    );
    assert_eq!(
      ch.send(b"2\n".to_vec(), None, 2, false, true).unwrap(),
      Sent::Deferred
    );
    assert!(ch.has_deferred());
    // Deferred frames do not ask for the writable callback; the flush writes them.
    assert!(!ch.wants_write());
    let mut got = [0u8; 16];
    assert!(
      peer.read(&mut got).is_err(),
      "nothing written before the flush"
    );
    assert!(ch.flush().unwrap());
    assert_eq!(ch.last_written_id(), 2);
    let n = peer.read(&mut got).unwrap();
    assert_eq!(&got[..n], b"1\n2\n");
    // Without `defer`, or once the deferred bytes reach the limit, frames go out at once.
    assert_eq!(
      ch.send(b"3\n".to_vec(), None, 3, false, false).unwrap(),
      Sent::Written
    );
    assert_eq!(
      ch.send(vec![b'x'; DEFER_LIMIT], None, 4, false, true)
        .unwrap(),
      Sent::Written
    );
  }

  #[test]
  fn a_full_socket_reports_queued_bytes_and_keeps_order() {
    let (mut ch, mut peer) = pair(Serialization::Json);
    let mut id = 0;
    let mut queued = 0;
    while queued == 0 {
      id += 1;
      match ch.send(
        vec![b'a'; 4095].into_iter().chain([b'\n']).collect(),
        None,
        id,
        false,
        false,
      ) {
        Ok(Sent::Written) => {}
        Ok(Sent::Queued(n)) => queued = n,
        other => panic!("{other:?}"),
      }
    }
    // Behind a full socket even a deferrable frame queues (and counts).
    assert_eq!(
      ch.send(b"last\n".to_vec(), None, id + 1, false, true)
        .unwrap(),
      Sent::Queued(queued + 5)
    );
    assert!(ch.wants_write());
    let mut seen = Vec::new();
    let mut got = vec![0u8; 1 << 16];
    while !seen.ends_with(b"last\n") {
      let _ = ch.flush().unwrap();
      let n = peer.read(&mut got).unwrap();
      seen.extend_from_slice(&got[..n]);
    }
    assert_eq!(seen.len(), id as usize * 4096 + 5);
  }

  fn dup(peer: &UnixStream) -> Rc<OwnedFd> {
    Rc::new(peer.as_fd().try_clone_to_owned().unwrap())
  }
}
