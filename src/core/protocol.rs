//! The two `NODE_CLUSTER` messages Rust writes and reads itself, so that JavaScript runs for
//! none of a round-robin hand-off (protocol.md §4.3, §5.3): the `newconn` request, and the
//! worker's `{ack, accepted}` answer. Everything else goes to JavaScript untouched.

use crate::core::framing::Serialization;

/// Sequence numbers Rust puts on its own requests. The worker only echoes them back as `ack`,
/// so any scheme works (§4.1); starting far above what JavaScript's counter ever reaches lets
/// the reader tell Rust's answers from JavaScript's without shared state.
pub const RUST_SEQ_BASE: u64 = 1 << 40;

/// `{cmd:'NODE_HANDLE', type:'net.Native', msg:{cmd:'NODE_CLUSTER', act:'newconn', key, seq}}`,
/// appended to `out` (a recycled buffer: one hand-off allocates nothing).
pub fn encode_newconn(mode: Serialization, key: &str, seq: u64, out: &mut Vec<u8>) {
  // The whole frame at once (about 120 bytes besides the key), and no less than the outbox
  // keeps for reuse.
  out.reserve((128 + key.len()).max(160));
  match mode {
    Serialization::Json => {
      out.extend_from_slice(br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"#);
      push_json_string(out, key);
      out.extend_from_slice(br#","seq":"#);
      push_decimal(out, seq);
      out.extend_from_slice(b"}}\n");
    }
    Serialization::Advanced => {
      let start = out.len();
      let mut w = V8Writer {
        buf: std::mem::take(out),
        start,
      };
      w.begin_object();
      w.string("cmd");
      w.string("NODE_HANDLE");
      w.string("type");
      w.string("net.Native");
      w.string("msg");
      w.begin_object();
      for (k, v) in [("cmd", "NODE_CLUSTER"), ("act", "newconn"), ("key", key)] {
        w.string(k);
        w.string(v);
      }
      w.string("seq");
      w.double(seq as f64);
      w.end_object(4);
      w.end_object(3);
      *out = w.finish();
    }
  }
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
  out.push(b'"');
  for c in s.chars() {
    match c {
      '"' => out.extend_from_slice(b"\\\""),
      '\\' => out.extend_from_slice(b"\\\\"),
      c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
      c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
  }
  out.push(b'"');
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
  let mut digits = [0u8; 20];
  let mut i = digits.len();
  loop {
    i -= 1;
    digits[i] = b'0' + (n % 10) as u8;
    n /= 10;
    if n == 0 {
      break;
    }
  }
  out.extend_from_slice(&digits[i..]);
}

/// Just enough of V8's serializer for our own control messages (protocol.md §2.3), writing
/// one length-prefixed frame at `start` of `buf`.
struct V8Writer {
  buf: Vec<u8>,
  start: usize,
}

impl V8Writer {
  fn varint(&mut self, mut n: u64) {
    loop {
      let byte = (n & 0x7f) as u8;
      n >>= 7;
      if n == 0 {
        self.buf.push(byte);
        return;
      }
      self.buf.push(byte | 0x80);
    }
  }

  fn begin_object(&mut self) {
    if self.buf.len() == self.start {
      // Room for the length prefix, then the V8 header.
      self.buf.extend_from_slice(&[0, 0, 0, 0, 0xff, 0x0f]);
    }
    self.buf.push(b'o');
  }

  fn end_object(&mut self, properties: u64) {
    self.buf.push(b'{');
    self.varint(properties);
  }

  /// UTF-8 string tag: Node reads it, and it needs no Latin-1/UTF-16 choice.
  fn string(&mut self, s: &str) {
    if s.is_ascii() {
      self.buf.push(b'"');
    } else {
      self.buf.push(b'S');
    }
    self.varint(s.len() as u64);
    self.buf.extend_from_slice(s.as_bytes());
  }

  fn double(&mut self, n: f64) {
    self.buf.push(b'N');
    self.buf.extend_from_slice(&n.to_le_bytes());
  }

  fn finish(mut self) -> Vec<u8> {
    let len = (self.buf.len() - self.start - 4) as u32;
    self.buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
    self.buf
  }
}

/// Recognises the worker's answer to one of Rust's `newconn`s: `(seq it answers, accepted)`.
/// Anything else — including answers to JavaScript's own requests — gives `None`.
pub fn parse_newconn_reply(mode: Serialization, frame: &[u8]) -> Option<(u64, bool)> {
  let (ack, accepted) = match mode {
    Serialization::Json => parse_json_reply(frame)?,
    Serialization::Advanced => parse_v8_reply(frame)?,
  };
  (ack >= RUST_SEQ_BASE).then_some((ack, accepted))
}

/// The worker writes `{"cmd":"NODE_CLUSTER","ack":N,"accepted":B,"seq":M}`.
fn parse_json_reply(frame: &[u8]) -> Option<(u64, bool)> {
  let rest = frame.strip_prefix(br#"{"cmd":"NODE_CLUSTER","ack":"#)?;
  let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
  let ack: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
  let rest = rest[digits..].strip_prefix(br#","accepted":"#)?;
  let accepted = if rest.starts_with(b"true") {
    true
  } else if rest.starts_with(b"false") {
    false
  } else {
    return None;
  };
  Some((ack, accepted))
}

/// The same object in V8 format: `o "cmd" "NODE_CLUSTER" "ack" <number> "accepted" T|F ...`.
fn parse_v8_reply(frame: &[u8]) -> Option<(u64, bool)> {
  let rest = frame.strip_prefix(&[0xff])?;
  let v = rest.iter().position(|b| b & 0x80 == 0)?;
  let rest = rest[v + 1..].strip_prefix(b"o\"\x03cmd\"\x0cNODE_CLUSTER\"\x03ack")?;
  let (ack, rest) = match rest.split_first()? {
    (b'N', r) => (f64::from_le_bytes(r.get(..8)?.try_into().ok()?), &r[8..]),
    (b'I', r) => {
      let (z, used) = read_varint(r)?;
      (((z >> 1) as i64 ^ -((z & 1) as i64)) as f64, &r[used..])
    }
    (b'U', r) => {
      let (n, used) = read_varint(r)?;
      (n as f64, &r[used..])
    }
    _ => return None,
  };
  let rest = rest.strip_prefix(b"\"\x08accepted")?;
  let accepted = match rest.first()? {
    b'T' => true,
    b'F' => false,
    _ => return None,
  };
  (ack >= 0.0 && ack.fract() == 0.0).then_some((ack as u64, accepted))
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
  let mut n = 0u64;
  for (i, b) in bytes.iter().enumerate().take(10) {
    n |= ((b & 0x7f) as u64) << (7 * i);
    if b & 0x80 == 0 {
      return Some((n, i + 1));
    }
  }
  None
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn json_newconn_is_what_nodes_primary_writes() {
    let mut frame = Vec::new();
    encode_newconn(Serialization::Json, "null:0:4:undefined:0", 5, &mut frame);
    assert_eq!(
      std::str::from_utf8(&frame).unwrap(),
      "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{\"cmd\":\"NODE_CLUSTER\",\"act\":\"newconn\",\"key\":\"null:0:4:undefined:0\",\"seq\":5}}\n"
    );
  }

  #[test]
  fn advanced_newconn_is_one_length_prefixed_v8_frame_wherever_it_is_appended() {
    let mut alone = Vec::new();
    encode_newconn(Serialization::Advanced, "k", RUST_SEQ_BASE, &mut alone);
    let len = u32::from_be_bytes(alone[..4].try_into().unwrap()) as usize;
    assert_eq!(len, alone.len() - 4);
    assert_eq!(&alone[4..7], b"\xff\x0fo");
    assert!(alone.ends_with(b"{\x04{\x03"));
    let mut after = b"xy".to_vec();
    encode_newconn(Serialization::Advanced, "k", RUST_SEQ_BASE, &mut after);
    assert_eq!(&after[..2], b"xy");
    assert_eq!(&after[2..], &alone[..]);
  }

  #[test]
  fn keys_with_quotes_and_backslashes_stay_valid_json() {
    let mut frame = Vec::new();
    encode_newconn(
      Serialization::Json,
      "/tmp/a\"b\\c:-1:-1:undefined:0",
      1,
      &mut frame,
    );
    let text = std::str::from_utf8(&frame).unwrap();
    assert!(text.contains(r#""key":"/tmp/a\"b\\c:-1:-1:undefined:0""#));
  }

  #[test]
  fn json_replies_to_rust_requests_are_recognised_and_others_are_not() {
    let seq = RUST_SEQ_BASE + 3;
    let ours = format!("{{\"cmd\":\"NODE_CLUSTER\",\"ack\":{seq},\"accepted\":true,\"seq\":9}}");
    assert_eq!(
      parse_newconn_reply(Serialization::Json, ours.as_bytes()),
      Some((seq, true))
    );
    let refused =
      format!("{{\"cmd\":\"NODE_CLUSTER\",\"ack\":{seq},\"accepted\":false,\"seq\":9}}");
    assert_eq!(
      parse_newconn_reply(Serialization::Json, refused.as_bytes()),
      Some((seq, false))
    );
    let js = br#"{"cmd":"NODE_CLUSTER","ack":4,"accepted":true,"seq":9}"#;
    assert_eq!(parse_newconn_reply(Serialization::Json, js), None);
    assert_eq!(
      parse_newconn_reply(
        Serialization::Json,
        br#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#
      ),
      None
    );
  }

  #[test]
  fn v8_reply_as_node_writes_it_is_recognised() {
    // v8.serialize({cmd:'NODE_CLUSTER', ack: 2**40 + 1, accepted: true, seq: 3}) on Node 20.
    let mut frame = b"\xff\x0fo\"\x03cmd\"\x0cNODE_CLUSTER\"\x03ackN".to_vec();
    frame.extend_from_slice(&((RUST_SEQ_BASE + 1) as f64).to_le_bytes());
    frame.extend_from_slice(b"\"\x08acceptedT\"\x03seqI\x06{\x04");
    assert_eq!(
      parse_newconn_reply(Serialization::Advanced, &frame),
      Some((RUST_SEQ_BASE + 1, true))
    );
  }
}
