'use strict';

// Message (de)serialisation for the worker channel, in both of Node's modes
// (protocol.md §2.2, §2.3). Rust does the framing on the read side: it hands us the complete
// frames of one read turn at once (JSON: the lines joined by '\n'; advanced: one Buffer of
// length-prefixed V8 payloads). On the write side we build whole frames here and Rust
// writes them as they are.

const v8 = require('node:v8');
const errors = require('./errors');

// Node's child_process flavour of the V8 serializer marks every host object with an extra
// uint32: 0 = an ArrayBufferView written by the default serializer, 1 = some other native
// object, sent as a plain-object copy. The worker's deserializer expects that tag, so plain
// v8.serialize() output would be misread as soon as a Buffer is in the message.
const kView = 0;
const kCopy = 1;

class ChannelSerializer extends v8.DefaultSerializer {
  _writeHostObject(object) {
    if (ArrayBuffer.isView(object)) {
      this.writeUint32(kView);
      return super._writeHostObject(object);
    }
    this.writeUint32(kCopy);
    this.writeValue({ ...object });
    return undefined;
  }
}

class ChannelDeserializer extends v8.DefaultDeserializer {
  _readHostObject() {
    const tag = this.readUint32();
    if (tag === kView) return super._readHostObject();
    return this.readValue();
  }
}

// The V8 wire format's header as this V8 writes it (0xFF, version; 15 on Node 18 to 24). The
// worker runs the same binary, so a header built here is one its deserializer accepts.
const HEADER = v8.serialize(null).subarray(0, 2);
const VERSION_BYTE = HEADER[1];
// Tags of the values the fast paths handle (protocol.md §2.3).
const TAG_PADDING = 0x00;
const TAG_ONE_BYTE_STRING = 0x22; // '"'
const TAG_TWO_BYTE_STRING = 0x63; // 'c'
const TAG_UTF8_STRING = 0x53; // 'S'
const TAG_INT32 = 0x49; // 'I'
const TAG_UINT32 = 0x55; // 'U'
const TAG_DOUBLE = 0x4e; // 'N'
const TAG_TRUE = 0x54; // 'T'
const TAG_FALSE = 0x46; // 'F'
const TAG_NULL = 0x30; // '0'
const TAG_UNDEFINED = 0x5f; // '_'

// Strings up to this length are checked for Latin-1 and written without a V8 serializer;
// longer ones (where the check would cost more than the serializer) take V8's path.
const FAST_STRING_MAX = 2048;

function varintLength(n) {
  let len = 1;
  while (n >= 0x80) {
    n >>>= 7;
    len += 1;
  }
  return len;
}

function writeVarint(buf, off, n) {
  while (n >= 0x80) {
    buf[off++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[off++] = n;
  return off;
}

function isLatin1(s) {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) return false;
  }
  return true;
}

// A frame for a primitive, written the way V8 would: a Latin-1 string, an int32, a double,
// true/false/null. Returns undefined for anything else (V8's serializer takes over).
function encodeAdvancedFast(message) {
  let frame;
  switch (typeof message) {
    case 'string': {
      const len = message.length;
      if (len > FAST_STRING_MAX || !isLatin1(message)) return undefined;
      const payload = 3 + varintLength(len) + len;
      frame = Buffer.allocUnsafe(4 + payload);
      frame.writeUInt32BE(payload, 0);
      frame[4] = 0xff;
      frame[5] = VERSION_BYTE;
      frame[6] = TAG_ONE_BYTE_STRING;
      const off = writeVarint(frame, 7, len);
      if (len > 0) frame.latin1Write(message, off, len);
      return frame;
    }
    case 'number': {
      if ((message | 0) === message && !Object.is(message, -0)) {
        const zigzag = ((message << 1) ^ (message >> 31)) >>> 0;
        const payload = 3 + varintLength(zigzag);
        frame = Buffer.allocUnsafe(4 + payload);
        frame.writeUInt32BE(payload, 0);
        frame[6] = TAG_INT32;
        writeVarint(frame, 7, zigzag);
      } else {
        frame = Buffer.allocUnsafe(4 + 11);
        frame.writeUInt32BE(11, 0);
        frame[6] = TAG_DOUBLE;
        frame.writeDoubleLE(message, 7);
      }
      break;
    }
    case 'boolean':
      frame = Buffer.allocUnsafe(7);
      frame.writeUInt32BE(3, 0);
      frame[6] = message ? TAG_TRUE : TAG_FALSE;
      break;
    case 'object':
      if (message !== null) return undefined;
      frame = Buffer.allocUnsafe(7);
      frame.writeUInt32BE(3, 0);
      frame[6] = TAG_NULL;
      break;
    default:
      return undefined;
  }
  frame[4] = 0xff;
  frame[5] = VERSION_BYTE;
  return frame;
}

const LENGTH_PLACEHOLDER = Buffer.alloc(4);

// One advanced-mode frame: a 4-byte big-endian payload length, then the V8 payload. The
// serializer writes the frame whole (four placeholder bytes first, patched afterwards), so a
// large message is not copied once more to put its length in front.
function encodeAdvanced(message) {
  const fast = encodeAdvancedFast(message);
  if (fast !== undefined) return fast;
  const ser = new ChannelSerializer();
  ser.writeRawBytes(LENGTH_PLACEHOLDER);
  ser.writeHeader();
  ser.writeValue(message);
  const frame = ser.releaseBuffer();
  frame.writeUInt32BE(frame.length - 4, 0);
  return frame;
}

// Decodes one V8 payload (without its length prefix).
function decodeAdvanced(payload) {
  const des = new ChannelDeserializer(payload);
  des.readHeader();
  return des.readValue();
}

// Reads an unsigned LEB128 varint of at most 32 bits at `off`; returns -1 when it does not
// fit before `end` (the caller then leaves the frame to V8, which reports it properly).
let varintEnd = 0;
function readVarint(buf, off, end) {
  let value = 0;
  for (let shift = 0; shift < 35 && off < end; shift += 7) {
    const b = buf[off++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) {
      varintEnd = off;
      return value;
    }
  }
  return -1;
}

const NO_FAST_VALUE = Symbol('no fast value');

// The value of the payload buf[start, end) when it is a primitive the fast path knows,
// else NO_FAST_VALUE. Bytes after the value are ignored, as V8 ignores them.
function decodeAdvancedFast(buf, start, end) {
  if (end - start < 3 || buf[start] !== 0xff || buf[start + 1] >= 0x80) return NO_FAST_VALUE;
  let off = start + 2;
  while (off < end && buf[off] === TAG_PADDING) off += 1;
  if (off >= end) return NO_FAST_VALUE;
  const tag = buf[off++];
  switch (tag) {
    case TAG_ONE_BYTE_STRING:
    case TAG_TWO_BYTE_STRING:
    case TAG_UTF8_STRING: {
      const len = readVarint(buf, off, end);
      if (len < 0 || varintEnd + len > end) return NO_FAST_VALUE;
      off = varintEnd;
      if (tag === TAG_ONE_BYTE_STRING) return buf.latin1Slice(off, off + len);
      if (tag === TAG_UTF8_STRING) return buf.utf8Slice(off, off + len);
      if (len % 2 !== 0) return NO_FAST_VALUE;
      return buf.ucs2Slice(off, off + len);
    }
    case TAG_INT32: {
      const zigzag = readVarint(buf, off, end);
      if (zigzag < 0 || zigzag > 0xffffffff) return NO_FAST_VALUE;
      return (zigzag >>> 1) ^ -(zigzag & 1);
    }
    case TAG_UINT32: {
      const n = readVarint(buf, off, end);
      if (n < 0 || n > 0xffffffff) return NO_FAST_VALUE;
      return n;
    }
    case TAG_DOUBLE:
      if (off + 8 > end) return NO_FAST_VALUE;
      return buf.readDoubleLE(off);
    case TAG_TRUE: return true;
    case TAG_FALSE: return false;
    case TAG_NULL: return null;
    case TAG_UNDEFINED: return undefined;
    default: return NO_FAST_VALUE;
  }
}

// The message in buf[start, end), a payload without its length prefix.
function decodeAdvancedAt(buf, start, end) {
  const fast = decodeAdvancedFast(buf, start, end);
  if (fast !== NO_FAST_VALUE) return fast;
  return decodeAdvanced(buf.subarray(start, end));
}

// One JSON-mode frame: the JSON text. The binding adds the newline as it encodes the text
// (JSON text never holds a raw newline).
function encodeJson(message) {
  const text = JSON.stringify(message);
  // (A toJSON() returning undefined: the built-in would send "undefined", which kills the
  // worker's parser.)
  if (typeof text !== 'string') {
    throw errors.invalidArgValue('message', message, 'has no JSON representation');
  }
  return text;
}

function encoder(serialization) {
  return serialization === 'advanced' ? encodeAdvanced : encodeJson;
}

// Node's rule (protocol.md §2.5): internal iff an object whose `cmd` is a string longer than
// "NODE_" that starts with it.
function isInternal(message) {
  if (message === null || typeof message !== 'object') return false;
  const cmd = message.cmd;
  return typeof cmd === 'string' && cmd.length > 5 && cmd.startsWith('NODE_');
}

module.exports = {
  ChannelSerializer,
  ChannelDeserializer,
  HEADER,
  encodeAdvanced,
  encodeAdvancedFast,
  decodeAdvanced,
  decodeAdvancedAt,
  encodeJson,
  encoder,
  isInternal,
};
