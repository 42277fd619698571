/**
 * Ceph's RBD incremental diff format v1 (doc/dev/rbd-diff.rst, "RBD Incremental Backup"), as
 * `rbd export-diff` writes and `rbd import-diff` reads it:
 *
 *   "rbd diff v1\n"
 *   metadata records (any order, all before the data records):
 *     'f' le32 len, from-snap name     't' le32 len, to-snap name     's' le64 image size (at the end)
 *   data records:
 *     'w' le64 offset, le64 length, length bytes      'z' le64 offset, le64 length (zeros)
 *   'e' (end)
 *
 * A pure codec: an encoder per record and a streaming decoder that accepts the bytes in any
 * chunking (stdin) and refuses malformed input with EINVAL. Unlike CONVENTIONS item 4 this is
 * Ceph's fixed wire format, so it carries Ceph's version string instead of our struct header.
 */
import { AspenError, assert, assertNever } from '@aspen/shared';

/** The v1 header. */
export const DIFF_V1_HEADER = new TextEncoder().encode('rbd diff v1\n');
/** Largest `w` record accepted, bytes (export-diff writes at most an object, 32 MiB; named limit). */
export const DIFF_WRITE_RECORD_MAX_BYTES = 64 << 20;
/** Longest snapshot name accepted in `f`/`t`, bytes. */
export const DIFF_SNAP_NAME_MAX_BYTES = 4096;

/** One record of a diff. */
export type DiffRecord =
  | { kind: 'from_snap'; name: string }
  | { kind: 'to_snap'; name: string }
  | { kind: 'size'; sizeBytes: number }
  | { kind: 'write'; offsetBytes: number; data: Uint8Array }
  | { kind: 'zero'; offsetBytes: number; lengthBytes: number }
  | { kind: 'end' };

const utf8 = new TextEncoder();

function u64le(v: number): Uint8Array {
  assert(Number.isSafeInteger(v) && v >= 0, `u64 ${v} out of range`);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

function cat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The bytes of one record. */
export function encodeDiffRecord(r: DiffRecord): Uint8Array {
  const tag = (c: string): Uint8Array => new Uint8Array([c.charCodeAt(0)]);
  switch (r.kind) {
    case 'from_snap': case 'to_snap': {
      const name = utf8.encode(r.name);
      assert(name.length <= DIFF_SNAP_NAME_MAX_BYTES, 'snap name length');
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, name.length, true);
      return cat([tag(r.kind === 'from_snap' ? 'f' : 't'), len, name]);
    }
    case 'size': return cat([tag('s'), u64le(r.sizeBytes)]);
    case 'write': return cat([tag('w'), u64le(r.offsetBytes), u64le(r.data.length), r.data]);
    case 'zero': return cat([tag('z'), u64le(r.offsetBytes), u64le(r.lengthBytes)]);
    case 'end': return tag('e');
    default: return assertNever(r, 'diff record');
  }
}

/** A whole diff: header, records (which must end with `end`). */
export function encodeDiff(records: readonly DiffRecord[]): Uint8Array {
  assert(records.at(-1)?.kind === 'end', 'a diff ends with an end record');
  return cat([DIFF_V1_HEADER, ...records.map(encodeDiffRecord)]);
}

const bad = (why: string): AspenError => new AspenError('EINVAL', `malformed rbd diff: ${why}`);

/**
 * Streaming decoder: `push` bytes as they arrive and get the complete records; `finish` at
 * EOF. Enforces the header, metadata-before-data, a single `end`, nothing after it.
 */
export class DiffDecoder {
  private chunks: Uint8Array[] = [];
  private total = 0;
  private headerSeen = false;
  private inData = false;
  private ended = false;

  /** Whether the end record was read. */
  get done(): boolean {
    return this.ended;
  }

  /** Decodes what `chunk` completes. @throws AspenError EINVAL on malformed input */
  push(chunk: Uint8Array): DiffRecord[] {
    if (chunk.length > 0) {
      if (this.ended) throw bad('bytes after the end record');
      this.chunks.push(chunk);
      this.total += chunk.length;
    }
    const out: DiffRecord[] = [];
    for (;;) {
      const r = this.next();
      if (r === null) return out;
      out.push(r);
    }
  }

  /** Declares EOF. @throws AspenError EINVAL when the diff is truncated */
  finish(): void {
    if (!this.ended) throw bad(this.total > 0 || this.headerSeen ? 'truncated (no end record)' : 'empty input');
  }

  private peek(n: number): Uint8Array | null {
    if (this.total < n) return null;
    if (n === 0) return new Uint8Array(0);
    if (this.chunks[0]!.length < n) this.chunks = [cat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private consume(n: number): void {
    assert(n <= this.total, 'consume what is buffered');
    this.total -= n;
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
  }

  private u64(b: Uint8Array, at: number, what: string): number {
    const v = new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} ${v} too large`);
    return Number(v);
  }

  private next(): DiffRecord | null {
    if (this.ended) return null;
    if (!this.headerSeen) {
      const h = this.peek(DIFF_V1_HEADER.length);
      if (h === null) {
        const have = this.peek(this.total);
        if (have !== null && have.some((x, i) => x !== DIFF_V1_HEADER[i])) throw bad('not an "rbd diff v1" stream');
        return null;
      }
      if (!h.every((x, i) => x === DIFF_V1_HEADER[i])) throw bad('not an "rbd diff v1" stream');
      this.consume(h.length);
      this.headerSeen = true;
    }
    const t = this.peek(1);
    if (t === null) return null;
    const tag = String.fromCharCode(t[0]!);
    const meta = (): void => {
      if (this.inData) throw bad(`metadata record '${tag}' after data records`);
    };
    switch (tag) {
      case 'f': case 't': {
        meta();
        const h = this.peek(5);
        if (h === null) return null;
        const len = new DataView(h.buffer, h.byteOffset + 1, 4).getUint32(0, true);
        if (len > DIFF_SNAP_NAME_MAX_BYTES) throw bad(`snapshot name of ${len} bytes`);
        const all = this.peek(5 + len);
        if (all === null) return null;
        let name: string;
        try {
          name = new TextDecoder('utf-8', { fatal: true }).decode(all.subarray(5));
        } catch {
          throw bad('snapshot name is not UTF-8');
        }
        this.consume(5 + len);
        return tag === 'f' ? { kind: 'from_snap', name } : { kind: 'to_snap', name };
      }
      case 's': {
        meta();
        const b = this.peek(9);
        if (b === null) return null;
        const sizeBytes = this.u64(b, 1, 'size');
        this.consume(9);
        return { kind: 'size', sizeBytes };
      }
      case 'w': case 'z': {
        const b = this.peek(17);
        if (b === null) return null;
        const offsetBytes = this.u64(b, 1, 'offset');
        const lengthBytes = this.u64(b, 9, 'length');
        if (offsetBytes + lengthBytes > Number.MAX_SAFE_INTEGER) throw bad('extent past 2^53');
        this.inData = true;
        if (tag === 'z') {
          this.consume(17);
          return { kind: 'zero', offsetBytes, lengthBytes };
        }
        if (lengthBytes > DIFF_WRITE_RECORD_MAX_BYTES) throw bad(`write record of ${lengthBytes} bytes (limit ${DIFF_WRITE_RECORD_MAX_BYTES})`);
        const all = this.peek(17 + lengthBytes);
        if (all === null) return null;
        const data = new Uint8Array(all.subarray(17)); // a plain copy: the chunk may be a Buffer and is released
        this.consume(17 + lengthBytes);
        return { kind: 'write', offsetBytes, data };
      }
      case 'e':
        this.consume(1);
        this.ended = true;
        if (this.total > 0) throw bad('bytes after the end record');
        return { kind: 'end' };
      default:
        throw bad(`unknown record tag 0x${t[0]!.toString(16)}`);
    }
  }
}

/** Decodes a whole diff. @throws AspenError EINVAL */
export function decodeDiff(b: Uint8Array): DiffRecord[] {
  const d = new DiffDecoder();
  const out = d.push(b);
  d.finish();
  return out;
}
