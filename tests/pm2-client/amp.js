// AMP framing as axon (PM2's RPC and bus) speaks it, written out by hand (no npm package):
// a header byte `version << 4 | argc` (version 1, argc 0..15), then per argument a u32
// big-endian length and that many bytes. Arguments are typed by a prefix: `s:` a string,
// `j:` JSON, anything else a raw blob.
'use strict';

function packArg(a) {
  if (Buffer.isBuffer(a)) return a;
  if (typeof a === 'string') return Buffer.from('s:' + a);
  return Buffer.from('j:' + JSON.stringify(a === undefined ? null : a));
}

/** One frame of `args` (strings, JSON values or Buffers). */
function encode(args, version = 1) {
  const parts = args.map(packArg);
  const head = Buffer.alloc(1);
  head[0] = (version << 4) | parts.length;
  const out = [head];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(p.length);
    out.push(len, p);
  }
  return Buffer.concat(out);
}

function unpackArg(b) {
  if (b[0] === 0x6a && b[1] === 0x3a) return JSON.parse(b.subarray(2).toString());
  if (b[0] === 0x73 && b[1] === 0x3a) return b.subarray(2).toString();
  return b;
}

/** Splits a byte stream into frames: push(chunk) returns the complete frames so far, each
 * {version, args} with the args unpacked (a `j:` argument that is not JSON gives
 * {bad_json: text}). */
class Parser {
  constructor() {
    this.buf = Buffer.alloc(0);
  }

  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    const frames = [];
    for (;;) {
      if (this.buf.length < 1) break;
      const version = this.buf[0] >> 4;
      const argc = this.buf[0] & 0xf;
      let off = 1;
      const args = [];
      let complete = true;
      for (let i = 0; i < argc; i++) {
        if (this.buf.length < off + 4) { complete = false; break; }
        const len = this.buf.readUInt32BE(off);
        off += 4;
        if (this.buf.length < off + len) { complete = false; break; }
        const raw = this.buf.subarray(off, off + len);
        off += len;
        try {
          args.push(unpackArg(raw));
        } catch (e) {
          args.push({ bad_json: raw.toString() });
        }
      }
      if (!complete) break;
      frames.push({ version, args, head: this.buf.subarray(0, Math.min(off, 48)).toString('hex') });
      this.buf = this.buf.subarray(off);
    }
    return frames;
  }
}

module.exports = { encode, Parser, packArg, unpackArg };
