//! One worker's IPC channel: the socket, its frame decoder and its outbox. Driven by readiness
//! callbacks from Node's own loop (see `binding::uv`): no thread hop on the message path.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use crate::core::fdpass;
use crate::core::framing::{as_handle_reply, Decoder, HandleReply, Serialization};
use crate::core::outbox::{OutFrame, Outbox};
use crate::core::protocol::parse_newconn_reply;
use crate::error::ClusterError;

/// One read turn reads at most this much before giving the loop back, so a flooding worker
/// cannot starve timers, other workers or accepts.
const READ_CHUNK: usize = 64 * 1024;
const READS_PER_TURN: usize = 16;

/// What one read turn produced, in arrival order within each list.
#[derive(Default)]
pub struct ReadBatch {
  /// JSON mode: the complete lines, joined by `\n` (no trailing newline).
  pub json: Vec<u8>,
  /// Advanced mode: the complete V8 payloads.
  pub frames: Vec<Vec<u8>>,
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
    !self.json.is_empty() || !self.frames.is_empty() || !self.fds.is_empty()
  }
}

pub struct Channel {
  sock: OwnedFd,
  decoder: Decoder,
  outbox: Outbox,
  buf: Vec<u8>,
}

impl Channel {
  /// Wraps the primary's end of a socketpair. It must already be non-blocking.
  pub fn new(sock: OwnedFd, mode: Serialization, max_frame: usize) -> Self {
    Channel {
      sock,
      decoder: Decoder::new(mode, max_frame),
      outbox: Outbox::default(),
      buf: vec![0; READ_CHUNK],
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

  pub fn wants_write(&self) -> bool {
    self.outbox.has_ready()
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
      let json = &mut batch.json;
      let frames = &mut batch.frames;
      let replies = &mut batch.replies;
      let newconn_replies = &mut batch.newconn_replies;
      self.decoder.push(&self.buf[..n], |frame| {
        if let Some(reply) = as_handle_reply(mode, frame) {
          if let Some(id) = outbox.handle_reply() {
            replies.push((id, reply == HandleReply::Ack));
          }
        } else if let Some(answer) = parse_newconn_reply(mode, frame) {
          newconn_replies.push(answer);
        } else if mode == Serialization::Json {
          if !json.is_empty() {
            json.push(b'\n');
          }
          json.extend_from_slice(frame);
        } else {
          frames.push(frame.to_vec());
        }
      })?;
      // One fd per batch: the JS side pairs it with the next NODE_HANDLE frame, and a second fd
      // in the same batch could only be paired wrongly.
      if got_fd {
        break;
      }
    }
    Ok(batch)
  }

  /// Queues a frame and writes what it can now. The fd is shared with the caller, which may
  /// keep its own reference (nothing is duplicated, so nothing can fail for lack of fds).
  /// Returns the bytes still queued afterwards.
  pub fn send(
    &mut self,
    bytes: Vec<u8>,
    fd: Option<Rc<OwnedFd>>,
    id: u64,
    bypass: bool,
  ) -> Result<usize, ClusterError> {
    let owned = fd;
    let was_idle = !self.outbox.has_ready();
    self.outbox.push(OutFrame::new(bytes, owned, id), bypass);
    // When frames were already waiting, the writable callback is armed and keeps order.
    if was_idle {
      self.flush().map_err(|e| ClusterError::os("write", e))?;
    }
    Ok(self.outbox.queued_bytes())
  }

  /// Writes ready frames; `Ok(true)` when nothing ready is left.
  pub fn flush(&mut self) -> io::Result<bool> {
    let sock = self.sock.as_fd();
    self.outbox.flush(|bytes, fd| fdpass::send(sock, bytes, fd))
  }

  /// Drops queued frames; returns the ids that were never written.
  pub fn discard_queue(&mut self) -> Vec<u64> {
    self.outbox.clear()
  }

  /// Gives up the socket (for closing after the poll handle has stopped watching it).
  pub fn into_socket(self) -> OwnedFd {
    self.sock
  }
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
    );
    assert_eq!(fd_frame.unwrap(), 0);
    assert_eq!(ch.send(b"held\n".to_vec(), None, 8, false).unwrap(), 5);
    peer
      .write_all(b"{\"a\":1}\n{\"cmd\":\"NODE_HANDLE_ACK\"}\n[2]\n")
      .unwrap();
    let batch = ch.read().unwrap();
    assert_eq!(batch.json, b"{\"a\":1}\n[2]");
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
    ch.send(vec![0, 0, 0, 0], Some(dup(&peer)), 3, false)
      .unwrap();
    peer
      .write_all(&encode_handle_reply(
        Serialization::Advanced,
        HandleReply::Nack,
      ))
      .unwrap();
    let batch = ch.read().unwrap();
    assert_eq!(batch.replies, vec![(3, false)]);
    assert!(batch.frames.is_empty());
  }

  fn dup(peer: &UnixStream) -> Rc<OwnedFd> {
    Rc::new(peer.as_fd().try_clone_to_owned().unwrap())
  }
}
