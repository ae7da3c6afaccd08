//! Splitting the byte stream of a channel into frames (protocol.md §2).
//!
//! JSON mode: one `JSON.stringify` text per line, `\n`-terminated. Advanced mode: a 4-byte
//! big-endian length, then that many bytes of V8 serializer output. Reads may split or
//! coalesce frames anywhere, including inside the length prefix (Node 18's own reader stalls
//! on that; this one does not).

use crate::error::ClusterError;

/// The two wire formats a channel can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serialization {
  Json,
  Advanced,
}

/// The handle-reply frames a worker sends for each fd-bearing frame it received (§3.4).
/// Node writes them as exactly these objects, so they can be recognised without a parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleReply {
  Ack,
  Nack,
}

const JSON_ACK: &[u8] = br#"{"cmd":"NODE_HANDLE_ACK"}"#;
const JSON_NACK: &[u8] = br#"{"cmd":"NODE_HANDLE_NACK"}"#;
// V8 after the version header: object, one-byte string "cmd", one-byte string value, end with 1 property.
const V8_ACK_BODY: &[u8] = b"o\"\x03cmd\"\x0fNODE_HANDLE_ACK{\x01";
const V8_NACK_BODY: &[u8] = b"o\"\x03cmd\"\x10NODE_HANDLE_NACK{\x01";

/// The encoded ACK/NACK frame to send to a worker, in the channel's format.
pub fn encode_handle_reply(mode: Serialization, reply: HandleReply) -> Vec<u8> {
  let (json, body) = match reply {
    HandleReply::Ack => (JSON_ACK, V8_ACK_BODY),
    HandleReply::Nack => (JSON_NACK, V8_NACK_BODY),
  };
  match mode {
    Serialization::Json => {
      let mut v = json.to_vec();
      v.push(b'\n');
      v
    }
    Serialization::Advanced => {
      let mut payload = vec![0xff, 0x0f];
      payload.extend_from_slice(body);
      let mut v = (payload.len() as u32).to_be_bytes().to_vec();
      v.extend_from_slice(&payload);
      v
    }
  }
}

/// Recognises a frame (without its terminator or length prefix) as an ACK or NACK.
pub fn as_handle_reply(mode: Serialization, frame: &[u8]) -> Option<HandleReply> {
  let body = match mode {
    Serialization::Json => {
      return match frame {
        f if f == JSON_ACK => Some(HandleReply::Ack),
        f if f == JSON_NACK => Some(HandleReply::Nack),
        _ => None,
      }
    }
    Serialization::Advanced => skip_v8_header(frame)?,
  };
  match body {
    b if b == V8_ACK_BODY => Some(HandleReply::Ack),
    b if b == V8_NACK_BODY => Some(HandleReply::Nack),
    _ => None,
  }
}

/// Skips `0xFF <varint version>`; any version a Node line writes is accepted.
fn skip_v8_header(frame: &[u8]) -> Option<&[u8]> {
  let rest = frame.strip_prefix(&[0xff])?;
  let n = rest.iter().position(|b| b & 0x80 == 0)?;
  Some(&rest[n + 1..])
}

/// A V8-serialized primitive, decoded without V8 (the common case of a message that is a
/// string or a number gets to JS without a Buffer and a deserializer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Primitive<'a> {
  /// Latin-1 bytes (V8's one-byte string).
  OneByte(&'a [u8]),
  /// UTF-16LE bytes (V8's two-byte string; an even length).
  TwoByte(&'a [u8]),
  Utf8(&'a [u8]),
  Int32(i32),
  Uint32(u32),
  Double(f64),
  True,
  False,
  Null,
  Undefined,
}

/// Decodes a V8 payload (header included, length prefix not) whose value is a primitive;
/// `None` for anything else or anything malformed (V8's deserializer then decides). Bytes
/// after the value are ignored, as V8 ignores them.
pub fn decode_primitive(payload: &[u8]) -> Option<Primitive<'_>> {
  let rest = skip_v8_header(payload)?;
  let start = rest.iter().position(|&b| b != 0)?; // padding
  let (&tag, rest) = rest[start..].split_first()?;
  fn string(rest: &[u8]) -> Option<&[u8]> {
    let (len, rest) = read_varint(rest)?;
    rest.get(..usize::try_from(len).ok()?)
  }
  Some(match tag {
    b'"' => Primitive::OneByte(string(rest)?),
    b'c' => {
      let bytes = string(rest)?;
      if bytes.len() % 2 != 0 {
        return None;
      }
      Primitive::TwoByte(bytes)
    }
    b'S' => Primitive::Utf8(string(rest)?),
    b'I' => {
      let zigzag = u32::try_from(read_varint(rest)?.0).ok()?;
      Primitive::Int32(((zigzag >> 1) as i32) ^ -((zigzag & 1) as i32))
    }
    b'U' => Primitive::Uint32(u32::try_from(read_varint(rest)?.0).ok()?),
    b'N' => Primitive::Double(f64::from_le_bytes(rest.get(..8)?.try_into().ok()?)),
    b'T' => Primitive::True,
    b'F' => Primitive::False,
    b'0' => Primitive::Null,
    b'_' => Primitive::Undefined,
    _ => return None,
  })
}

/// An unsigned LEB128 varint (at most 64 bits) and what follows it.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
  let mut value = 0u64;
  for (i, &b) in bytes.iter().enumerate().take(10) {
    value |= u64::from(b & 0x7f) << (7 * i);
    if b & 0x80 == 0 {
      return Some((value, &bytes[i + 1..]));
    }
  }
  None
}

/// Incremental decoder: feed it every chunk read from the socket; it hands each complete frame
/// to a filter, and gathers the frames the filter keeps into one output buffer, ready to be
/// handed to JavaScript in one piece:
///
/// * JSON: the kept lines joined by `\n` (no trailing newline);
/// * advanced: the kept frames back to back, each with its 4-byte length prefix.
///
/// A frame that completes in the carry-over buffer moves into an empty output without a copy,
/// so a large message is copied once on its way from the socket to JavaScript.
pub struct Decoder {
  mode: Serialization,
  max_frame: usize,
  /// Bytes of the frame not yet complete (JSON: the partial line; advanced: the partial frame,
  /// prefix included).
  partial: Vec<u8>,
  out: Vec<u8>,
  out_frames: usize,
}

impl Decoder {
  pub fn new(mode: Serialization, max_frame: usize) -> Self {
    Decoder {
      mode,
      max_frame,
      partial: Vec::new(),
      out: Vec::new(),
      out_frames: 0,
    }
  }

  pub fn mode(&self) -> Serialization {
    self.mode
  }

  /// True when bytes of an unfinished frame are buffered.
  pub fn has_partial(&self) -> bool {
    !self.partial.is_empty()
  }

  /// How many frames the output holds.
  pub fn output_frames(&self) -> usize {
    self.out_frames
  }

  /// Takes the gathered output (see the type's documentation) and its frame count.
  pub fn take_output(&mut self) -> (Vec<u8>, usize) {
    let frames = std::mem::replace(&mut self.out_frames, 0);
    (std::mem::take(&mut self.out), frames)
  }

  /// Gives back an output buffer once its bytes are consumed: its memory serves the next
  /// output or the next partial frame, so a flood of large frames reuses warm memory.
  pub fn recycle(&mut self, mut buf: Vec<u8>) {
    if buf.capacity() > RECYCLE_MAX {
      return;
    }
    buf.clear();
    if self.out_frames == 0 && self.out.capacity() < buf.capacity() {
      self.out = buf;
    } else if self.partial.is_empty() && self.partial.capacity() < buf.capacity() {
      self.partial = buf;
    }
  }

  /// Appends `chunk` and calls `keep` with every frame it completes (without its newline or
  /// length prefix), in order; the frames `keep` returns true for go to the output.
  /// A frame over the limit is an error; the decoder is then unusable (the channel ends).
  pub fn push(
    &mut self,
    chunk: &[u8],
    mut keep: impl FnMut(&[u8]) -> bool,
  ) -> Result<(), ClusterError> {
    match self.mode {
      Serialization::Json => self.push_json(chunk, &mut keep),
      Serialization::Advanced => self.push_advanced(chunk, &mut keep),
    }
  }

  fn push_json(
    &mut self,
    chunk: &[u8],
    keep: &mut dyn FnMut(&[u8]) -> bool,
  ) -> Result<(), ClusterError> {
    let mut rest = chunk;
    while let Some(nl) = find_newline(rest) {
      if self.partial.is_empty() {
        self.check_len(nl)?;
        let line = &rest[..nl];
        if keep(line) {
          if self.out_frames > 0 {
            self.out.push(b'\n');
          }
          self.out.extend_from_slice(line);
          self.out_frames += 1;
        }
      } else {
        self.partial.extend_from_slice(&rest[..nl]);
        self.check_len(self.partial.len())?;
        if keep(&self.partial) {
          if self.out_frames == 0 {
            std::mem::swap(&mut self.out, &mut self.partial);
          } else {
            self.out.push(b'\n');
            self.out.extend_from_slice(&self.partial);
          }
          self.out_frames += 1;
        }
        self.partial.clear();
      }
      rest = &rest[nl + 1..];
    }
    self.partial.extend_from_slice(rest);
    self.check_len(self.partial.len())
  }

  fn push_advanced(
    &mut self,
    chunk: &[u8],
    keep: &mut dyn FnMut(&[u8]) -> bool,
  ) -> Result<(), ClusterError> {
    let mut rest = chunk;
    // Finish a frame begun in an earlier chunk first.
    if !self.partial.is_empty() {
      let need = match frame_len(&self.partial) {
        Some(len) => 4 + len,
        None => {
          let take = (4 - self.partial.len()).min(rest.len());
          self.partial.extend_from_slice(&rest[..take]);
          rest = &rest[take..];
          match frame_len(&self.partial) {
            Some(len) => {
              self.check_len(len)?;
              self.partial.reserve(len.min(PREALLOCATE));
              4 + len
            }
            None => return Ok(()),
          }
        }
      };
      let take = (need - self.partial.len()).min(rest.len());
      self.partial.extend_from_slice(&rest[..take]);
      rest = &rest[take..];
      if self.partial.len() < need {
        return Ok(());
      }
      if keep(&self.partial[4..]) {
        if self.out_frames == 0 {
          std::mem::swap(&mut self.out, &mut self.partial);
        } else {
          self.out.extend_from_slice(&self.partial);
        }
        self.out_frames += 1;
      }
      self.partial.clear();
    }
    // Whole frames straight from the chunk.
    while let Some(len) = frame_len(rest) {
      self.check_len(len)?;
      if rest.len() < 4 + len {
        break;
      }
      if keep(&rest[4..4 + len]) {
        self.out.extend_from_slice(&rest[..4 + len]);
        self.out_frames += 1;
      }
      rest = &rest[4 + len..];
    }
    if !rest.is_empty() {
      if let Some(len) = frame_len(rest) {
        self.partial.reserve(4 + len.min(PREALLOCATE));
      }
      self.partial.extend_from_slice(rest);
    }
    Ok(())
  }

  fn check_len(&self, len: usize) -> Result<(), ClusterError> {
    if len > self.max_frame {
      return Err(ClusterError::FrameTooLarge {
        len: len as u64,
        limit: self.max_frame as u64,
      });
    }
    Ok(())
  }
}

/// A frame's announced length is trusted for preallocation only up to this much: a peer
/// announcing 1 GiB and sending nothing costs no more than this.
const PREALLOCATE: usize = 16 << 20;

/// Output buffers larger than this are freed rather than kept for reuse.
const RECYCLE_MAX: usize = 16 << 20;

fn find_newline(bytes: &[u8]) -> Option<usize> {
  // SAFETY: the pointer and length describe `bytes`; memchr reads only within them.
  let p = unsafe { libc::memchr(bytes.as_ptr().cast(), b'\n' as i32, bytes.len()) };
  if p.is_null() {
    None
  } else {
    Some(p as usize - bytes.as_ptr() as usize)
  }
}

fn frame_len(bytes: &[u8]) -> Option<usize> {
  let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
  Some(u32::from_be_bytes(head) as usize)
}

#[cfg(test)]
mod tests {
  use super::*;

  /// Splits a decoder's output back into frames.
  fn split_output(mode: Serialization, out: &[u8], frames: usize) -> Vec<Vec<u8>> {
    match mode {
      Serialization::Json if frames == 0 => Vec::new(),
      Serialization::Json => out.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect(),
      Serialization::Advanced => {
        let mut v = Vec::new();
        let mut rest = out;
        while let Some(len) = frame_len(rest) {
          v.push(rest[4..4 + len].to_vec());
          rest = &rest[4 + len..];
        }
        assert!(rest.is_empty());
        v
      }
    }
  }

  /// Decodes `chunks`, taking the output after every chunk (as a channel does after each
  /// read turn); checks that the output holds exactly the frames `keep` saw.
  fn decode_all(mode: Serialization, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut d = Decoder::new(mode, 1 << 20);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
      d.push(c, |f| {
        seen.push(f.to_vec());
        true
      })
      .unwrap();
      let (bytes, n) = d.take_output();
      let frames = split_output(mode, &bytes, n);
      assert_eq!(frames.len(), n);
      out.extend(frames);
    }
    assert_eq!(out, seen);
    out
  }

  /// `frames` as a sender writes them in `mode`.
  fn stream_of(mode: Serialization, frames: &[Vec<u8>]) -> Vec<u8> {
    match mode {
      Serialization::Json => frames
        .iter()
        .flat_map(|f| f.iter().copied().chain([b'\n']))
        .collect(),
      Serialization::Advanced => frames.iter().flat_map(|f| adv(f)).collect(),
    }
  }

  fn adv(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
  }

  /// A small xorshift generator: the fuzz tests are deterministic and need no crate.
  struct Rng(u64);

  impl Rng {
    fn next(&mut self) -> u64 {
      self.0 ^= self.0 << 13;
      self.0 ^= self.0 >> 7;
      self.0 ^= self.0 << 17;
      self.0
    }

    fn below(&mut self, n: usize) -> usize {
      (self.next() % n as u64) as usize
    }
  }

  /// Cuts `stream` into chunks at random points: mostly small ones (splits inside prefixes
  /// and multi-byte characters), sometimes large ones (many frames per chunk).
  fn random_chunks<'a>(rng: &mut Rng, stream: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
      let max = match rng.below(4) {
        0 => 3,
        1 => 17,
        2 => 700,
        _ => 70_000,
      };
      let n = (1 + rng.below(max)).min(rest.len());
      chunks.push(&rest[..n]);
      rest = &rest[n..];
    }
    chunks
  }

  /// Feeds `stream` split at every position, at pseudo-random positions, and byte by byte.
  fn every_split(mode: Serialization, stream: &[u8], expected: &[Vec<u8>]) {
    for cut in 0..=stream.len() {
      let (a, b) = stream.split_at(cut);
      assert_eq!(decode_all(mode, &[a, b]), expected, "split at {cut}");
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..200 {
      let chunks = random_chunks(&mut rng, stream);
      assert_eq!(decode_all(mode, &chunks), expected);
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode_all(mode, &bytes), expected, "byte by byte");
  }

  #[test]
  fn json_lines_survive_any_split_and_coalescing() {
    let stream = b"{\"a\":1}\n\"x\\u00e9\"\n[1,2,3]\n{\"cmd\":\"NODE_CLUSTER\"}\n";
    let expected: Vec<Vec<u8>> = vec![
      b"{\"a\":1}".to_vec(),
      b"\"x\\u00e9\"".to_vec(),
      b"[1,2,3]".to_vec(),
      b"{\"cmd\":\"NODE_CLUSTER\"}".to_vec(),
    ];
    every_split(Serialization::Json, stream, &expected);
  }

  #[test]
  fn json_keeps_multibyte_utf8_split_across_reads_intact() {
    let stream = "\"héllo — ✓\"\n".as_bytes();
    every_split(
      Serialization::Json,
      stream,
      &[stream[..stream.len() - 1].to_vec()],
    );
  }

  #[test]
  fn advanced_frames_survive_splits_inside_the_length_prefix() {
    let payloads: Vec<Vec<u8>> = vec![
      vec![0xff, 0x0f, b'T'],
      vec![],
      vec![7u8; 300],
      vec![0xff, 0x0f, b'_'],
    ];
    let stream: Vec<u8> = payloads.iter().flat_map(|p| adv(p)).collect();
    every_split(Serialization::Advanced, &stream, &payloads);
  }

  /// Random frame sequences in both modes (sizes from empty to several reads' worth, with
  /// newlines and length-like bytes inside advanced payloads), cut at random points.
  #[test]
  fn fuzzed_frame_sequences_decode_exactly_under_random_splits() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
      for mode in [Serialization::Json, Serialization::Advanced] {
        let count = 1 + rng.below(40);
        let mut frames = Vec::new();
        for _ in 0..count {
          let len = match rng.below(10) {
            0 => 0,
            1..=6 => rng.below(64),
            7 | 8 => rng.below(5000),
            _ => 60_000 + rng.below(140_000),
          };
          let frame: Vec<u8> = (0..len)
            .map(|_| {
              let b = rng.next() as u8;
              // JSON lines hold anything but a newline (multi-byte UTF-8 included).
              if mode == Serialization::Json && b == b'\n' {
                b'x'
              } else {
                b
              }
            })
            .collect();
          if mode == Serialization::Json && frame.is_empty() {
            frames.push(b"0".to_vec());
          } else {
            frames.push(frame);
          }
        }
        let stream = stream_of(mode, &frames);
        for _ in 0..4 {
          let chunks = random_chunks(&mut rng, &stream);
          assert_eq!(decode_all(mode, &chunks), frames, "round {round} {mode:?}");
        }
      }
    }
  }

  /// The filter sees every frame, but only kept frames reach the output, in both modes and
  /// whether a frame completes in the carry-over buffer or straight from a chunk.
  #[test]
  fn frames_the_filter_drops_never_reach_the_output() {
    let mut rng = Rng(42);
    for mode in [Serialization::Json, Serialization::Advanced] {
      let frames: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "p".repeat(i * 7)).into_bytes())
        .collect();
      let stream = stream_of(mode, &frames);
      let mut d = Decoder::new(mode, 1 << 20);
      let mut kept = Vec::new();
      let mut seen = 0;
      for chunk in random_chunks(&mut rng, &stream) {
        d.push(chunk, |f| {
          seen += 1;
          // Drop every third frame.
          f.len() % 3 != 0
        })
        .unwrap();
        let (bytes, n) = d.take_output();
        kept.extend(split_output(mode, &bytes, n));
      }
      assert_eq!(seen, frames.len());
      let expected: Vec<Vec<u8>> = frames.into_iter().filter(|f| f.len() % 3 != 0).collect();
      assert_eq!(kept, expected);
    }
  }

  #[test]
  fn an_empty_json_line_is_a_frame_of_its_own() {
    let mut d = Decoder::new(Serialization::Json, 64);
    d.push(b"\n1\n", |_| true).unwrap();
    let (bytes, n) = d.take_output();
    assert_eq!((bytes.as_slice(), n), (&b"\n1"[..], 2));
    d.push(b"\n", |_| true).unwrap();
    let (bytes, n) = d.take_output();
    assert_eq!((bytes.as_slice(), n), (&b""[..], 1));
  }

  #[test]
  fn oversized_frames_are_errors_not_allocations() {
    let mut d = Decoder::new(Serialization::Advanced, 16);
    let err = d.push(&[0xff, 0xff, 0xff, 0xff, 1], |_| true).unwrap_err();
    assert_eq!(err.code(), "ERR_IPC_FRAME_TOO_LARGE");
    assert!(d.partial.capacity() < 1024);

    // A length prefix split across reads is checked once it is complete.
    let mut d = Decoder::new(Serialization::Advanced, 16);
    assert!(d.push(&[0x00, 0x00], |_| true).is_ok());
    assert!(d.push(&[0x00, 0x11, 0xff], |_| true).is_err());

    // Exactly at the limit is fine.
    let mut d = Decoder::new(Serialization::Advanced, 16);
    d.push(&adv(&[1u8; 16]), |_| true).unwrap();
    assert_eq!(d.take_output().1, 1);

    // The largest length a prefix can announce, with the default limit of 1 GiB.
    let mut d = Decoder::new(Serialization::Advanced, 1 << 30);
    let err = d.push(&[0xff, 0xff, 0xff, 0xff], |_| true).unwrap_err();
    assert_eq!(err.code(), "ERR_IPC_FRAME_TOO_LARGE");

    // A large but allowed announcement preallocates only a bounded amount.
    let mut d = Decoder::new(Serialization::Advanced, 1 << 30);
    d.push(&[0x3f, 0xff, 0xff, 0xff, 0xff, 0x0f], |_| true)
      .unwrap();
    assert!(d.has_partial());
    assert!(d.partial.capacity() <= 4 + PREALLOCATE + 64);

    // JSON: a partial line over the limit, and a complete one in a single chunk.
    let mut d = Decoder::new(Serialization::Json, 8);
    assert!(d.push(b"12345", |_| true).is_ok());
    assert!(d.push(b"6789", |_| true).is_err());
    let mut d = Decoder::new(Serialization::Json, 8);
    assert!(d.push(b"123456789\n", |_| true).is_err());
    let mut d = Decoder::new(Serialization::Json, 8);
    assert!(d.push(b"12345678\n", |_| true).is_ok());
  }

  #[test]
  fn handle_replies_are_recognised_in_both_formats() {
    for mode in [Serialization::Json, Serialization::Advanced] {
      for reply in [HandleReply::Ack, HandleReply::Nack] {
        let encoded = encode_handle_reply(mode, reply);
        let frames = decode_all(mode, &[&encoded]);
        assert_eq!(frames.len(), 1);
        assert_eq!(as_handle_reply(mode, &frames[0]), Some(reply));
      }
    }
    assert_eq!(
      as_handle_reply(Serialization::Json, br#"{"cmd":"NODE_HANDLE_ACKS"}"#),
      None
    );
  }

  #[test]
  fn primitives_decode_as_v8_writes_them() {
    // Bytes from v8.serialize() on Node 20.
    let cases: Vec<(&[u8], Primitive)> = vec![
      (b"\xff\x0f\"\x05hello", Primitive::OneByte(b"hello")),
      (b"\xff\x0f\"\x00", Primitive::OneByte(b"")),
      (
        b"\xff\x0f\x00c\x02\x13\x27",
        Primitive::TwoByte(b"\x13\x27"),
      ),
      (b"\xff\x0fI\x54", Primitive::Int32(42)),
      (b"\xff\x0fI\xc3\x01", Primitive::Int32(-98)),
      (b"\xff\x0fI\xfe\xff\xff\xff\x0f", Primitive::Int32(i32::MAX)),
      (b"\xff\x0fI\xff\xff\xff\xff\x0f", Primitive::Int32(i32::MIN)),
      (b"\xff\x0fU\x80\x01", Primitive::Uint32(128)),
      (
        b"\xff\x0fN\x00\x00\x00\x00\x00\x00\xf8\x3f",
        Primitive::Double(1.5),
      ),
      (b"\xff\x0fT", Primitive::True),
      (b"\xff\x0fF", Primitive::False),
      (b"\xff\x0f0", Primitive::Null),
      (b"\xff\x0f_", Primitive::Undefined),
      (b"\xff\x0d\"\x01x", Primitive::OneByte(b"x")),
      // Trailing bytes are ignored, as V8 does.
      (b"\xff\x0fT\x01\x02", Primitive::True),
    ];
    for (bytes, expected) in cases {
      assert_eq!(decode_primitive(bytes), Some(expected), "{bytes:?}");
    }
    // Not primitives, or malformed: V8 decides.
    for bytes in [
      &b""[..],
      b"\xff",
      b"\xff\x0f",
      b"\x0f\"\x01x",
      b"\xff\x0fo{\x00",
      b"\xff\x0f\"\x05hell",
      b"\xff\x0fc\x03abc",
      b"\xff\x0fN\x00\x00",
      b"\xff\x0fI\xff\xff\xff\xff\xff\x01",
      b"\xff\x0fZ\x10\x01\x00\x00\x00\x00\x00\x00\x00",
    ] {
      assert_eq!(decode_primitive(bytes), None, "{bytes:?}");
    }
  }

  #[test]
  fn advanced_ack_matches_the_bytes_node_writes() {
    // v8.serialize({cmd:'NODE_HANDLE_ACK'}) on Node 20.
    let node = b"\xff\x0fo\"\x03cmd\"\x0fNODE_HANDLE_ACK{\x01";
    assert_eq!(
      as_handle_reply(Serialization::Advanced, node),
      Some(HandleReply::Ack)
    );
  }
}
