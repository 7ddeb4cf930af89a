/**
 * The protobuf primitives the OTLP serializers write with: tags from a field number and a
 * wire type, varints, fixed64 timestamps, doubles, length-delimited strings, and nested
 * messages whose length is filled in once they are written.
 *
 * It exists so that the serializers name fields (`tag(5, LEN)`, Span.name) instead of
 * writing tag bytes (`0x2a`), in the shape of otlp-transformer's IProtobufWriter /
 * ProtobufWriter, whose output ours must equal byte for byte. Unlike that writer it is
 * reused across batches and grows in place, and it has `put*` functions that write at a
 * position in a buffer the caller has `ensure`d: the span serializer writes its fixed-size
 * fields that way, a run of stores with one bounds check (the datagram path's hot loop).
 */

/** Protobuf wire types (https://protobuf.dev/programming-guides/encoding/#structure). */
export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const I32 = 5;

/** A field's tag (its key): field number and wire type, to be written as a varint. */
export function tag(field: number, wireType: number): number {
  return ((field << 3) | wireType) >>> 0;
}

/**
 * A tag that is one byte (fields 1 to 15), so a hot path may store it with writeByte;
 * throws when the module loads if a field table says otherwise.
 */
export function byteTag(field: number, wireType: number): number {
  const t = tag(field, wireType);
  if (t > 0x7f) throw new Error(`protobuf field ${field} does not have a one-byte tag`);
  return t;
}

/** Bytes of a varint for 0 <= v < 2^32. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** Writes 0 <= v < 2^32 as a varint at p; returns the position after it. */
export function putVarint(buf: Uint8Array, p: number, v: number): number {
  v >>>= 0;
  while (v > 0x7f) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/**
 * Writes s at p, a byte per char, if it is all ASCII (what short strings mostly are; no encoder
 * call); returns the position after it, or -1 when it is not ASCII (what was stored is garbage).
 */
export function putAscii(buf: Uint8Array, p: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    buf[p++] = c;
  }
  return p;
}

/** Writes a fixed32 (little-endian) at p; returns the position after it. */
export function putFixed32(buf: Uint8Array, p: number, v: number): number {
  buf[p] = v & 0xff;
  buf[p + 1] = (v >>> 8) & 0xff;
  buf[p + 2] = (v >>> 16) & 0xff;
  buf[p + 3] = v >>> 24;
  return p + 4;
}

/**
 * Writes HrTime [seconds, nanos] as fixed64 unix nanos at p, with the arithmetic of
 * otlp-transformer's writeHrTimeAsFixed64 (so out-of-range values wrap the same way; NaN
 * becomes 0); returns the position after it.
 */
export function putHrTimeFixed64(buf: Uint8Array, p: number, seconds: number, nanos: number): number {
  const lower = (seconds & 0xffff) * 1e9;
  const upper = ((seconds / 0x10000) >>> 0) * 1e9;
  const lowerLow = lower >>> 0;
  const lowerHigh = Math.floor(lower / 0x100000000);
  const upperLow = ((upper & 0xffff) * 0x10000) >>> 0;
  const upperHigh = (upper / 0x10000) >>> 0;
  const lowWithCarry = lowerLow + upperLow + nanos;
  const lo = lowWithCarry >>> 0;
  const hi = (lowerHigh + upperHigh + Math.floor(lowWithCarry / 0x100000000)) >>> 0;
  putFixed32(buf, p, lo);
  return putFixed32(buf, p + 4, hi);
}

/** A growable byte buffer with the protobuf primitives; `buf[0..pos)` is what was written. */
export class ProtobufWriter {
  buf: Buffer;
  pos = 0;
  private view: DataView | undefined;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(Math.max(size, 16));
  }

  /** Room for n more bytes at pos (buf may be replaced). */
  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = undefined;
  }

  /** What was written (a view of buf: valid until the writer is written to again). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  writeTag(field: number, wireType: number): void {
    this.writeUint32(tag(field, wireType));
  }

  /** One byte: a one-byte tag (byteTag) or a varint known to be below 128. */
  writeByte(b: number): void {
    if (this.pos >= this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  /** Bytes as they are (an encoded field), no length. */
  writeRaw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    // a loop beats Buffer.set for the short keys and fields this is mostly called with
    if (n <= 32) for (let i = 0; i < n; i++) buf[p++] = bytes[i]!;
    else {
      buf.set(bytes, p);
      p += n;
    }
    this.pos = p;
  }

  /** Length-delimited bytes (a bytes field's value). */
  writeBytes(bytes: Uint8Array): void {
    this.writeUint32(bytes.length);
    this.writeRaw(bytes);
  }

  /** A varint for 0 <= v < 2^32. */
  writeUint32(v: number): void {
    this.ensure(5);
    this.pos = putVarint(this.buf, this.pos, v);
  }

  /** ProtobufWriter.writeVarint of otlp-transformer (int64 two's complement for negatives). */
  writeVarint(value: number): void {
    if (value >= 0 && value <= 0xffffffff) return this.writeUint32(value);
    this.ensure(10);
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 0x100000000) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / 0x100000000) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    const buf = this.buf;
    let p = this.pos;
    while (high > 0 || low > 0x7f) {
      buf[p++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[p++] = low & 0x7f;
    this.pos = p;
  }

  writeFixed32(v: number): void {
    this.ensure(4);
    this.pos = putFixed32(this.buf, this.pos, v);
  }

  /** HrTime [seconds, nanos] as fixed64 unix nanos (putHrTimeFixed64). */
  writeHrTimeFixed64(seconds: number, nanos: number): void {
    this.ensure(8);
    this.pos = putHrTimeFixed64(this.buf, this.pos, seconds, nanos);
  }

  writeDouble(v: number): void {
    this.ensure(8);
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** Length-delimited UTF-8 (lone surrogates become U+FFFD, as TextEncoder does). */
  writeString(s: string): void {
    const n = s.length;
    if (n < 128) {
      // ASCII fast path: the length is one byte and each char one byte, no encoder call
      this.ensure(n + 1);
      const end = putAscii(this.buf, this.pos + 1, s);
      if (end >= 0) {
        this.buf[this.pos] = n;
        this.pos = end;
        return;
      }
    }
    const max = n * 3;
    const hdr = varintSize(max);
    this.ensure(hdr + max);
    const written = this.buf.write(s, this.pos + hdr, max, 'utf8');
    const need = varintSize(written);
    if (need < hdr) this.buf.copyWithin(this.pos + need, this.pos + hdr, this.pos + hdr + written);
    putVarint(this.buf, this.pos, written);
    this.pos += need + written;
  }

  /**
   * Starts a nested message (after its tag): reserves `reserved` bytes for its length, the
   * size it will most likely need; returns the position to pass to endMessage().
   */
  beginMessage(reserved: number): number {
    const at = this.pos;
    this.ensure(reserved);
    this.pos += reserved;
    return at;
  }

  /** Writes the length of what followed beginMessage() as a minimal varint, moving the content if the guess was off. */
  endMessage(at: number, reserved: number): void {
    const len = this.pos - at - reserved;
    const size = varintSize(len);
    if (size !== reserved) {
      if (size > reserved) this.ensure(size - reserved);
      this.buf.copyWithin(at + size, at + reserved, this.pos);
      this.pos += size - reserved;
    }
    putVarint(this.buf, at, len);
  }
}
