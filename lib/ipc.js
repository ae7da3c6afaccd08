'use strict';

// Message (de)serialisation for the worker channel, in both of Node's modes
// (protocol.md §2.2, §2.3). Rust does the framing on the read side (it hands us complete
// JSON lines or complete V8 payloads); on the write side we build whole frames here and
// Rust writes them as they are.

const v8 = require('node:v8');

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

// One advanced-mode frame: a 4-byte big-endian payload length, then the V8 payload.
function encodeAdvanced(message) {
  const ser = new ChannelSerializer();
  ser.writeHeader();
  ser.writeValue(message);
  const payload = ser.releaseBuffer();
  const frame = Buffer.allocUnsafe(payload.length + 4);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, 4);
  return frame;
}

function decodeAdvanced(payload) {
  const des = new ChannelDeserializer(payload);
  des.readHeader();
  return des.readValue();
}

// One JSON-mode frame: the JSON text and its newline. JSON text never holds a raw newline.
function encodeJson(message) {
  return `${JSON.stringify(message)}\n`;
}

function encoder(serialization) {
  return serialization === 'advanced' ? encodeAdvanced : encodeJson;
}

// Rust hands JSON mode complete lines (without their newline) and advanced mode complete
// V8 payloads (without the length prefix); each decodes on its own.
function decoder(serialization) {
  return serialization === 'advanced' ? decodeAdvanced : JSON.parse;
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
  encodeAdvanced,
  decodeAdvanced,
  encodeJson,
  encoder,
  decoder,
  isInternal,
};
