/**
 * Binary encoding for every on-wire and on-disk structure (CONVENTIONS.md item 4).
 *
 * Integers are little-endian. A versioned struct is framed as Ceph's ENCODE_START does:
 * `u8 version, u8 compatVersion, u32 length, <length bytes of body>`. A decoder accepts a
 * struct whose `compatVersion` is at most the version it understands, decodes the fields it
 * knows and skips the rest of the body, so newer writers stay readable by older readers
 * when they only append fields. Bytes come from untrusted peers: every read is bounds
 * checked and a short or malformed buffer throws `AspenError('E_DECODE')`, never reads
 * out of range.
 */
import { AspenError } from './errors.ts';
import { assert } from './assert.ts';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Largest single length field a decoder accepts (a guard against hostile lengths), bytes. */
export const MAX_DECODE_LENGTH_BYTES = 1 << 30;

/** Appends binary fields to a growable buffer. */
export class Encoder {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialSizeBytes = 256) {
    this.buf = new Uint8Array(Math.max(16, initialSizeBytes));
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xff, `u8 out of range: ${v}`);
    this.ensure(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
    return this;
  }
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }
  u16(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffff, `u16 out of range: ${v}`);
    this.ensure(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffffffff, `u32 out of range: ${v}`);
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
    return this;
  }
  i32(v: number): this {
    assert(Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff, `i32 out of range: ${v}`);
    this.ensure(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
    return this;
  }
  /** A non-negative safe integer stored as u64 (JS numbers up to 2^53-1). */
  u53(v: number): this {
    assert(Number.isSafeInteger(v) && v >= 0, `u53 out of range: ${v}`);
    return this.u64(BigInt(v));
  }
  u64(v: bigint): this {
    assert(v >= 0n && v <= 0xffffffffffffffffn, `u64 out of range: ${v}`);
    this.ensure(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
    return this;
  }
  f64(v: number): this {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
    return this;
  }
  /** u32 length then the bytes. */
  bytes(v: Uint8Array): this {
    this.u32(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
    return this;
  }
  /** Raw bytes with no length prefix. */
  raw(v: Uint8Array): this {
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
    return this;
  }
  /** UTF-8 string with a u32 byte-length prefix. */
  string(v: string): this {
    return this.bytes(textEncoder.encode(v));
  }
  /** u32 count then each element. */
  array<T>(items: readonly T[], each: (e: this, item: T) => void): this {
    this.u32(items.length);
    for (const item of items) each(this, item);
    return this;
  }
  optional<T>(v: T | undefined, each: (e: this, item: T) => void): this {
    if (v === undefined) return this.u8(0);
    this.u8(1);
    each(this, v);
    return this;
  }
  /**
   * A versioned struct (Ceph ENCODE_START/ENCODE_FINISH): writes the header, runs `body`,
   * then back-patches the body length.
   */
  struct(version: number, compatVersion: number, body: (e: this) => void): this {
    assert(compatVersion >= 1 && compatVersion <= version, 'compatVersion must be in [1, version]');
    this.u8(version).u8(compatVersion);
    const lenAt = this.pos;
    this.u32(0);
    const start = this.pos;
    body(this);
    this.view.setUint32(lenAt, this.pos - start, true);
    return this;
  }
  get lengthBytes(): number {
    return this.pos;
  }
  /** The encoded bytes (a copy that does not alias the encoder's buffer). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** Reads binary fields written by {@link Encoder}; throws `E_DECODE` on any malformed input. */
export class Decoder {
  private readonly view: DataView;
  private pos: number;
  private end: number;

  constructor(private readonly buf: Uint8Array, offset = 0, end = buf.length) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = offset;
    this.end = end;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new AspenError('E_DECODE', `truncated input reading ${what}: need ${n} bytes at offset ${this.pos}, have ${this.end - this.pos}`);
    }
  }
  u8(): number {
    this.need(1, 'u8');
    return this.view.getUint8(this.pos++);
  }
  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw new AspenError('E_DECODE', `invalid boolean byte ${v}`);
    return v === 1;
  }
  u16(): number {
    this.need(2, 'u16');
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4, 'u32');
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4, 'i32');
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8, 'u64');
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  u53(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new AspenError('E_DECODE', `integer ${v} exceeds 2^53-1`);
    return Number(v);
  }
  f64(): number {
    this.need(8, 'f64');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** Length-prefixed bytes; the result aliases the input buffer. */
  bytes(): Uint8Array {
    const n = this.u32();
    if (n > MAX_DECODE_LENGTH_BYTES) throw new AspenError('E_DECODE', `length ${n} exceeds limit`);
    this.need(n, 'bytes');
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  raw(n: number): Uint8Array {
    this.need(n, 'raw bytes');
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(): string {
    try {
      return textDecoder.decode(this.bytes());
    } catch (err) {
      if (err instanceof AspenError) throw err;
      throw new AspenError('E_DECODE', 'invalid UTF-8 in string');
    }
  }
  array<T>(each: (d: this) => T): T[] {
    const n = this.u32();
    // Each element takes at least one byte: a count beyond what remains is hostile.
    if (n > this.end - this.pos) throw new AspenError('E_DECODE', `array count ${n} exceeds remaining ${this.end - this.pos} bytes`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(each(this));
    return out;
  }
  optional<T>(each: (d: this) => T): T | undefined {
    return this.bool() ? each(this) : undefined;
  }
  /**
   * Reads a versioned struct written by `Encoder.struct`. `body` receives the struct's
   * version and decodes the fields it knows; bytes it leaves are skipped.
   * @throws AspenError E_UNSUPPORTED when the struct needs a newer reader than `maxVersion`.
   */
  struct<T>(maxVersion: number, what: string, body: (d: this, version: number) => T): T {
    const version = this.u8();
    const compat = this.u8();
    const len = this.u32();
    if (compat > maxVersion) {
      throw new AspenError('E_UNSUPPORTED', `${what} encoding v${version} needs a reader of v${compat}; this build reads up to v${maxVersion}`);
    }
    this.need(len, `${what} body`);
    const structEnd = this.pos + len;
    const outerEnd = this.end;
    this.end = structEnd;
    try {
      const v = body(this, version);
      this.pos = structEnd;
      return v;
    } finally {
      this.end = outerEnd;
    }
  }
  get offset(): number {
    return this.pos;
  }
  get remainingBytes(): number {
    return this.end - this.pos;
  }
  /** @throws AspenError E_DECODE when bytes remain (a whole-buffer decode must consume all). */
  done(what: string): void {
    if (this.pos !== this.end) throw new AspenError('E_DECODE', `${this.end - this.pos} trailing bytes after ${what}`);
  }
}
