/**
 * Reading the few protobuf messages the bridge receives: a collector's Export*ServiceResponse
 * (partial success) and a gRPC error's google.rpc.Status (RetryInfo). Top-level fields only,
 * varints as numbers (exact up to 2^53, enough for counts and durations), length-delimited fields
 * as bytes; fixed-width fields are skipped. Throws on a truncated or malformed message.
 */
import { I32, I64, LEN, VARINT } from './protobuf-writer.js';

/** A varint read by protoFields as an int64: two's complement, so 2^64 - 1 is -1 (approximately: a double). */
export const int64 = (v: number): number => (v >= 2 ** 63 ? v - 2 ** 64 : v);

export function* protoFields(buf: Uint8Array): Generator<[number, number | Uint8Array]> {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= buf.length) throw new Error('truncated');
      const b = buf[i++]!;
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
    throw new Error('varint too long');
  };
  while (i < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === VARINT) yield [field, varint()];
    else if (wire === LEN) {
      const len = varint();
      if (i + len > buf.length) throw new Error('truncated');
      yield [field, buf.subarray(i, i + len)];
      i += len;
    } else if (wire === I64) i += 8;
    else if (wire === I32) i += 4;
    else throw new Error(`wire type ${wire}`);
  }
}
