/**
 * Protobuf serializer of the OTLP common messages (opentelemetry/proto/common/v1/common.proto,
 * resource/v1/resource.proto): AnyValue, KeyValue, Resource, InstrumentationScope, one
 * function per message, as otlp-transformer's common-serializer writes them (its output is
 * the reference, byte for byte).
 *
 * `KeyValueWriter` is the span attributes' fast path: every span repeats the same few dozen
 * keys, so each key's encoded field is kept, and a short ASCII string or small integer value
 * is written in one run with every length known up front.
 */
import { byteTag, LEN, I64, ProtobufWriter, putAscii, putVarint, VARINT, varintSize } from './protobuf-writer.js';
import { DROPPED, IGNORED, type SpanLimits } from './span-limits.js';
import type { Attributes } from '../../translate/types.js';

// Field table (tags precomputed: the hot path stores them as bytes)
// AnyValue
const ANY_VALUE_STRING = byteTag(1, LEN); //     string_value
const ANY_VALUE_BOOL = byteTag(2, VARINT); //    bool_value
const ANY_VALUE_INT = byteTag(3, VARINT); //     int_value (int64)
const ANY_VALUE_DOUBLE = byteTag(4, I64); //     double_value
const ANY_VALUE_ARRAY = byteTag(5, LEN); //      array_value (ArrayValue)
const ANY_VALUE_KVLIST = byteTag(6, LEN); //     kvlist_value (KeyValueList)
const ANY_VALUE_BYTES = byteTag(7, LEN); //      bytes_value
// ArrayValue
const ARRAY_VALUE_VALUES = byteTag(1, LEN); //   repeated AnyValue values
// KeyValueList
const KEY_VALUE_LIST_VALUES = byteTag(1, LEN); // repeated KeyValue values
// KeyValue
const KEY_VALUE_KEY = byteTag(1, LEN); //        string key
const KEY_VALUE_VALUE = byteTag(2, LEN); //      AnyValue value
// Resource
const RESOURCE_ATTRIBUTES = byteTag(1, LEN); //  repeated KeyValue attributes
const RESOURCE_DROPPED_ATTRIBUTES_COUNT = byteTag(2, VARINT);
// InstrumentationScope
const SCOPE_NAME = byteTag(1, LEN);
const SCOPE_VERSION = byteTag(2, LEN);

/** KeyValue fields hold 1-byte lengths mostly; a longer one moves its content by a byte or two. */
const SMALL = 1;
/** Encoded keys kept at most (a client sending ever new keys must not grow memory). */
const KEY_CACHE_MAX = 4096;

/** An AnyValue message's content (otlp-transformer's writeAnyValue); nothing for null or undefined. */
export function writeAnyValue(w: ProtobufWriter, value: unknown): void {
  const t = typeof value;
  if (t === 'string') {
    w.writeByte(ANY_VALUE_STRING);
    w.writeString(value as string);
  } else if (t === 'boolean') {
    w.writeByte(ANY_VALUE_BOOL);
    w.writeByte(value ? 1 : 0);
  } else if (t === 'number') writeNumberValue(w, value as number);
  else if (value instanceof Uint8Array) {
    w.writeByte(ANY_VALUE_BYTES);
    w.writeBytes(value);
  } else if (Array.isArray(value)) {
    w.writeByte(ANY_VALUE_ARRAY);
    const array = w.beginMessage(SMALL);
    for (const item of value) {
      w.writeByte(ARRAY_VALUE_VALUES);
      const v = w.beginMessage(SMALL);
      writeAnyValue(w, item);
      w.endMessage(v, SMALL);
    }
    w.endMessage(array, SMALL);
  } else if (t === 'object' && value !== null) {
    w.writeByte(ANY_VALUE_KVLIST);
    const list = w.beginMessage(SMALL);
    writeKeyValues(w, KEY_VALUE_LIST_VALUES, value as Readonly<Record<string, unknown>>);
    w.endMessage(list, SMALL);
  }
}

/** AnyValue for a number: int_value for an integer within int64, else double_value. */
function writeNumberValue(w: ProtobufWriter, v: number): void {
  if (Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63) {
    w.writeByte(ANY_VALUE_INT);
    w.writeVarint(v);
  } else {
    w.writeByte(ANY_VALUE_DOUBLE);
    w.writeDouble(v);
  }
}

/** One KeyValue field (fieldTag, length, KeyValue). */
function writeKeyValue(w: ProtobufWriter, fieldTag: number, key: string, value: unknown): void {
  w.writeByte(fieldTag);
  const kv = w.beginMessage(SMALL);
  w.writeByte(KEY_VALUE_KEY);
  w.writeString(key);
  writeKeyValueValue(w, value);
  w.endMessage(kv, SMALL);
}

/** KeyValue.value: tag, length, AnyValue. */
function writeKeyValueValue(w: ProtobufWriter, value: unknown): void {
  w.writeByte(KEY_VALUE_VALUE);
  const v = w.beginMessage(SMALL);
  writeAnyValue(w, value);
  w.endMessage(v, SMALL);
}

/** A KeyValue field per own key, as is (otlp-transformer's writeAttributes: no limits, resources and kvlists). */
function writeKeyValues(w: ProtobufWriter, fieldTag: number, attrs: Readonly<Record<string, unknown>>): void {
  for (const key in attrs) {
    if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
    writeKeyValue(w, fieldTag, key, attrs[key]);
  }
}

/** A Resource field (fieldTag, length, Resource); dropped_attributes_count written as 0, as the SDK does. */
export function writeResource(w: ProtobufWriter, fieldTag: number, attrs: Readonly<Record<string, unknown>>): void {
  w.writeByte(fieldTag);
  const at = w.beginMessage(SMALL);
  writeKeyValues(w, RESOURCE_ATTRIBUTES, attrs);
  w.writeByte(RESOURCE_DROPPED_ATTRIBUTES_COUNT);
  w.writeByte(0);
  w.endMessage(at, SMALL);
}

/** An InstrumentationScope field (fieldTag, length, InstrumentationScope); no version when it is empty. */
export function writeInstrumentationScope(w: ProtobufWriter, fieldTag: number, scope: { name: string; version: string }): void {
  w.writeByte(fieldTag);
  const at = w.beginMessage(SMALL);
  w.writeByte(SCOPE_NAME);
  w.writeString(String(scope.name ?? ''));
  if (scope.version) {
    w.writeByte(SCOPE_VERSION);
    w.writeString(String(scope.version));
  }
  w.endMessage(at, SMALL);
}

/** KeyValue fields for span and event attributes, which repeat across spans (see the module header). */
export class KeyValueWriter {
  /** KeyValue.key field (tag, length, UTF-8) per attribute key */
  private readonly keyFields = new Map<string, Uint8Array>();

  constructor(private readonly limits: SpanLimits) {}

  /**
   * A KeyValue field (fieldTag, length, KeyValue) per attribute the span limits keep of a span's
   * or event's; returns the dropped_attributes_count.
   */
  write(w: ProtobufWriter, fieldTag: number, attrs: Attributes, forEvent: boolean): number {
    const limits = this.limits;
    let valid = 0;
    for (const key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
      const v = limits.admit(key, attrs[key], valid, forEvent);
      if (v === IGNORED) continue;
      valid++;
      if (v === DROPPED) continue;
      const keyField = this.keyFields.get(key) ?? this.addKey(key);
      const kl = keyField.length;
      // Fast paths: a short ASCII string or a small non-negative integer, all lengths known up front.
      if (typeof v === 'string') {
        const n = v.length;
        if (kl + n + 4 < 0x80) {
          w.ensure(kl + n + 6);
          const buf = w.buf;
          let p = w.pos;
          buf[p++] = fieldTag;
          buf[p++] = kl + n + 4; // KeyValue: key field, value tag, AnyValue length, string tag, string length, bytes
          for (let j = 0; j < kl; j++) buf[p++] = keyField[j]!;
          buf[p++] = KEY_VALUE_VALUE;
          buf[p++] = n + 2;
          buf[p++] = ANY_VALUE_STRING;
          buf[p++] = n;
          const end = putAscii(buf, p, v);
          if (end >= 0) {
            w.pos = end;
            continue;
          }
          // not ASCII: written again below
        }
      } else if (typeof v === 'number' && v >= 0 && v < 0x10000000 && Number.isInteger(v)) {
        const vs = varintSize(v);
        if (kl + vs + 3 < 0x80) {
          w.ensure(kl + vs + 5);
          const buf = w.buf;
          let p = w.pos;
          buf[p++] = fieldTag;
          buf[p++] = kl + vs + 3; // key field, value tag, AnyValue length, int tag, varint
          for (let j = 0; j < kl; j++) buf[p++] = keyField[j]!;
          buf[p++] = KEY_VALUE_VALUE;
          buf[p++] = vs + 1;
          buf[p++] = ANY_VALUE_INT;
          w.pos = putVarint(buf, p, v);
          continue;
        }
      }
      w.writeByte(fieldTag);
      const kv = w.beginMessage(SMALL);
      w.writeRaw(keyField);
      w.writeByte(KEY_VALUE_VALUE);
      const av = w.beginMessage(SMALL);
      // long strings (user agents) come here: written directly, writeAnyValue would not be inlined
      if (typeof v === 'string') {
        w.writeByte(ANY_VALUE_STRING);
        w.writeString(v);
      } else writeAnyValue(w, v);
      w.endMessage(av, SMALL);
      w.endMessage(kv, SMALL);
    }
    return limits.droppedAttributes(valid, forEvent);
  }

  private addKey(key: string): Uint8Array {
    const k = new ProtobufWriter(8 + key.length * 3);
    k.writeByte(KEY_VALUE_KEY);
    k.writeString(key);
    const field = k.finish();
    if (this.keyFields.size >= KEY_CACHE_MAX) this.keyFields.clear();
    this.keyFields.set(key, field);
    return field;
  }
}
