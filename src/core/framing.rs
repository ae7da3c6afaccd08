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

/// Incremental decoder: feed it every chunk read from the socket, take back complete frames.
pub struct Decoder {
  mode: Serialization,
  max_frame: usize,
  /// Bytes of the frame not yet complete (for JSON: the partial line).
  partial: Vec<u8>,
}

impl Decoder {
  pub fn new(mode: Serialization, max_frame: usize) -> Self {
    Decoder {
      mode,
      max_frame,
      partial: Vec::new(),
    }
  }

  pub fn mode(&self) -> Serialization {
    self.mode
  }

  /// True when bytes of an unfinished frame are buffered.
  pub fn has_partial(&self) -> bool {
    !self.partial.is_empty()
  }

  /// Appends `chunk` and calls `each` with every frame it completes, in order.
  /// A frame over the limit is an error; the decoder is then unusable (the channel ends).
  pub fn push(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), ClusterError> {
    match self.mode {
      Serialization::Json => self.push_json(chunk, &mut each),
      Serialization::Advanced => self.push_advanced(chunk, &mut each),
    }
  }

  fn push_json(&mut self, chunk: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), ClusterError> {
    let mut rest = chunk;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
      if self.partial.is_empty() {
        each(&rest[..nl]);
      } else {
        self.partial.extend_from_slice(&rest[..nl]);
        self.check_len(self.partial.len())?;
        each(&self.partial);
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
    each: &mut dyn FnMut(&[u8]),
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
      each(&self.partial[4..]);
      self.partial.clear();
    }
    // Whole frames straight from the chunk, without copying.
    while let Some(len) = frame_len(rest) {
      self.check_len(len)?;
      if rest.len() < 4 + len {
        break;
      }
      each(&rest[4..4 + len]);
      rest = &rest[4 + len..];
    }
    if !rest.is_empty() {
      if let Some(len) = frame_len(rest) {
        self.partial.reserve(4 + len.min(1 << 20));
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

fn frame_len(bytes: &[u8]) -> Option<usize> {
  let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
  Some(u32::from_be_bytes(head) as usize)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn decode_all(mode: Serialization, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut d = Decoder::new(mode, 1 << 20);
    let mut out = Vec::new();
    for c in chunks {
      d.push(c, |f| out.push(f.to_vec())).unwrap();
    }
    out
  }

  fn adv(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
  }

  /// Feeds `stream` split at every position and at a pseudo-random set of positions.
  fn every_split(mode: Serialization, stream: &[u8], expected: &[Vec<u8>]) {
    for cut in 0..=stream.len() {
      let (a, b) = stream.split_at(cut);
      assert_eq!(decode_all(mode, &[a, b]), expected, "split at {cut}");
    }
    let mut seed = 0x2545_f491_u32;
    for _ in 0..200 {
      let mut chunks = Vec::new();
      let mut rest = stream;
      while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = 1 + (seed as usize % 7).min(rest.len() - 1);
        chunks.push(&rest[..n]);
        rest = &rest[n..];
      }
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

  #[test]
  fn oversized_frames_are_errors_not_allocations() {
    let mut d = Decoder::new(Serialization::Advanced, 16);
    let err = d.push(&[0xff, 0xff, 0xff, 0xff, 1], |_| {}).unwrap_err();
    assert_eq!(err.code(), "ERR_IPC_FRAME_TOO_LARGE");

    let mut d = Decoder::new(Serialization::Json, 8);
    assert!(d.push(b"12345", |_| {}).is_ok());
    assert!(d.push(b"6789", |_| {}).is_err());
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
  fn advanced_ack_matches_the_bytes_node_writes() {
    // v8.serialize({cmd:'NODE_HANDLE_ACK'}) on Node 20.
    let node = b"\xff\x0fo\"\x03cmd\"\x0fNODE_HANDLE_ACK{\x01";
    assert_eq!(
      as_handle_reply(Serialization::Advanced, node),
      Some(HandleReply::Ack)
    );
  }
}
