/**
 * Pure data-layout logic of the object store: block arithmetic, the per-blob checksum map, the
 * onode record, checksummed record framing and the overlay of not-yet-applied writes. No I/O.
 *
 * A *blob* is the data of one object (or of several after a clone, copy-on-write), in a file
 * of its own or, when small, inline in the metadata database ({@link BlobKind}).
 * It is divided into blocks of `blockSizeBytes` (4 KiB by default, BlueStore's
 * bluestore_csum_chunk_size idea); each block is either a hole (reads as zeros, not read from
 * the file) or allocated with a crc32c of its full `blockSizeBytes` bytes.
 *
 * Invariant (kept by every write path): inside an allocated block, the bytes at object offsets
 * at or beyond the object's size are zero, so the block's checksum stays valid when the size
 * changes and a later extension reads zeros there.
 */
import { assert } from '@aspen/shared/assert.ts';
import { crc32c } from '@aspen/shared/checksum.ts';
import { Decoder, Encoder } from '@aspen/shared/codec.ts';
import { AspenError } from '@aspen/shared/errors.ts';

/** Default checksum/block granularity, bytes. */
export const BLOCK_SIZE_DEFAULT_BYTES = 4096;

/** Index range [first, end) of the blocks touched by byte range [offset, offset + length). */
export function blockSpan(offsetBytes: number, lengthBytes: number, blockSizeBytes: number): { first: number; end: number } {
  assert(offsetBytes >= 0 && lengthBytes >= 0, 'blockSpan: negative range');
  assert(blockSizeBytes > 0 && (blockSizeBytes & (blockSizeBytes - 1)) === 0, 'blockSpan: block size must be a power of two');
  if (lengthBytes === 0) return { first: Math.floor(offsetBytes / blockSizeBytes), end: Math.floor(offsetBytes / blockSizeBytes) };
  return { first: Math.floor(offsetBytes / blockSizeBytes), end: Math.ceil((offsetBytes + lengthBytes) / blockSizeBytes) };
}

/** Blocks per stored chunk of a block map (64 blocks = 256 KiB of data at 4 KiB blocks). */
export const MAP_CHUNK_BLOCKS = 64;

/**
 * Checksums and allocation of a blob's blocks. Block i is allocated iff `alloc[i] === 1`; then
 * `crcs[i]` is the crc32c of its `blockSizeBytes` bytes. Blocks at or beyond `count` are holes.
 *
 * Stored as chunks of {@link MAP_CHUNK_BLOCKS} blocks, so a small write rewrites ~330 bytes of
 * metadata instead of the whole map; the map tracks which chunks changed since it was loaded
 * ({@link takeChanges}).
 */
export class BlockMap {
  private dirty = new Set<number>();
  /** For a partly loaded map: which chunks are loaded (1); null when all are. */
  private loaded: Uint8Array | null = null;
  private constructor(
    private crcs: Uint32Array,
    private alloc: Uint8Array,
    private n: number,
    /** Chunk rows that exist in the store for this map (0 for a new or copied map). */
    private storedChunks: number,
  ) {}

  /** Asserts the chunk of block i is loaded (a partly loaded map serves only the range it was loaded for). */
  private need(i: number): void {
    if (this.loaded === null || i >= this.storedChunks * MAP_CHUNK_BLOCKS) return;
    assert(this.loaded[Math.floor(i / MAP_CHUNK_BLOCKS)] === 1, `block map: chunk of block ${i} is not loaded`);
  }
  private needAll(what: string): void {
    assert(this.loaded === null || this.loaded.every((x) => x === 1), `block map: ${what} needs the whole map loaded`);
  }

  static empty(): BlockMap {
    return new BlockMap(new Uint32Array(16), new Uint8Array(16), 0, 0);
  }

  /** Number of block slots (the last allocated block is below it). */
  get count(): number {
    return this.n;
  }
  /** Chunks needed for `count` blocks. */
  get chunkCount(): number {
    return Math.ceil(this.n / MAP_CHUNK_BLOCKS);
  }
  isAllocated(i: number): boolean {
    if (i >= this.n) return false;
    this.need(i);
    return this.alloc[i] === 1;
  }
  crcOf(i: number): number {
    assert(this.isAllocated(i), `crcOf: block ${i} is a hole`);
    return this.crcs[i]!;
  }
  /** Allocated blocks, counted. */
  allocatedCount(): number {
    this.needAll('allocatedCount');
    let c = 0;
    for (let i = 0; i < this.n; i++) c += this.alloc[i]!;
    return c;
  }

  private grow(n: number): void {
    if (n <= this.n) return;
    if (n > this.crcs.length) {
      let cap = this.crcs.length;
      while (cap < n) cap *= 2;
      const crcs = new Uint32Array(cap);
      crcs.set(this.crcs.subarray(0, this.n));
      const alloc = new Uint8Array(cap);
      alloc.set(this.alloc.subarray(0, this.n));
      this.crcs = crcs;
      this.alloc = alloc;
    }
    this.resized(n);
  }

  /** Sets the block count; the chunks holding the old and the new last block change length. */
  private resized(n: number): void {
    if (n === this.n) return;
    // The old last chunk is re-encoded: it must be loaded (a partial load always includes it).
    if (this.n > 0) this.need(this.n - 1);
    if (this.n > 0) this.dirty.add(Math.floor((this.n - 1) / MAP_CHUNK_BLOCKS));
    if (n > 0) this.dirty.add(Math.floor((n - 1) / MAP_CHUNK_BLOCKS));
    this.n = n;
  }

  /** Marks block i allocated with checksum `crc`. */
  set(i: number, crc: number): void {
    assert(Number.isInteger(i) && i >= 0, 'BlockMap.set: bad index');
    assert(Number.isInteger(crc) && crc >= 0 && crc <= 0xffffffff, 'BlockMap.set: bad crc');
    this.need(i);
    this.grow(i + 1);
    this.crcs[i] = crc;
    this.alloc[i] = 1;
    this.dirty.add(Math.floor(i / MAP_CHUNK_BLOCKS));
  }
  /** Makes block i a hole. */
  punch(i: number): void {
    if (i >= this.n) return;
    this.need(i);
    this.alloc[i] = 0;
    this.crcs[i] = 0;
    this.dirty.add(Math.floor(i / MAP_CHUNK_BLOCKS));
  }
  /** Drops every block at index >= `blocks` (they become holes); trims trailing holes. */
  truncateBlocks(blocks: number): void {
    assert(blocks >= 0, 'truncateBlocks: negative');
    this.needAll('truncateBlocks');
    for (let i = blocks; i < this.n; i++) this.punch(i);
    let n = Math.min(this.n, blocks);
    while (n > 0 && this.alloc[n - 1] === 0) n--;
    this.resized(n);
  }
  /** A copy for a new blob: every chunk is to be written. */
  copy(): BlockMap {
    this.needAll('copy');
    const m = new BlockMap(this.crcs.slice(), this.alloc.slice(), this.n, 0);
    for (let c = 0; c < m.chunkCount; c++) m.dirty.add(c);
    return m;
  }

  /**
   * What must be stored since the map was loaded or last stored: the chunks to (re)write and
   * the first chunk index whose rows must be deleted (null when none). Resets the tracking.
   */
  takeChanges(): { write: number[]; deleteFrom: number | null } {
    const chunks = this.chunkCount;
    // Chunks beyond the stored ones are new (even all-hole ones: every chunk below chunkCount is stored).
    for (let c = this.storedChunks; c < chunks; c++) this.dirty.add(c);
    const write = [...this.dirty].filter((c) => c < chunks).sort((a, b) => a - b);
    const deleteFrom = this.storedChunks > chunks ? chunks : null;
    this.dirty.clear();
    if (this.loaded !== null) {
      // Chunks just written are loaded by definition.
      const l = new Uint8Array(chunks);
      l.set(this.loaded.subarray(0, Math.min(chunks, this.loaded.length)));
      for (let c = this.loaded.length; c < chunks; c++) l[c] = 1;
      this.loaded = l;
    }
    this.storedChunks = chunks;
    return { write, deleteFrom };
  }

  /** Chunk `c`: `struct v1 { u32 count; u8 alloc[count]; u32 crc[count] }` for blocks [c*64, min(count, c*64+64)). */
  encodeChunk(c: number): Uint8Array {
    assert(c >= 0 && c < this.chunkCount, `encodeChunk: chunk ${c} out of range`);
    this.need(c * MAP_CHUNK_BLOCKS);
    const first = c * MAP_CHUNK_BLOCKS;
    const k = Math.min(this.n, first + MAP_CHUNK_BLOCKS) - first;
    const e = new Encoder(16 + k * 5);
    e.struct(1, 1, (s) => {
      s.u32(k);
      s.raw(this.alloc.subarray(first, first + k));
      const crcBytes = new Uint8Array(k * 4);
      const view = new DataView(crcBytes.buffer);
      for (let i = 0; i < k; i++) view.setUint32(i * 4, this.crcs[first + i]!, true);
      s.raw(crcBytes);
    });
    return e.finish();
  }

  /**
   * Rebuilds a map of `count` blocks from its stored chunks (`chunks[c]` = body of chunk c).
   * @throws AspenError E_DECODE on malformed or missing chunks.
   */
  static fromChunks(count: number, chunks: readonly Uint8Array[]): BlockMap {
    const expected = Math.ceil(count / MAP_CHUNK_BLOCKS);
    if (chunks.length !== expected) throw new AspenError('E_DECODE', `block map of ${count} blocks has ${chunks.length} chunks, expected ${expected}`);
    return BlockMap.fromSomeChunks(count, new Map(chunks.map((b, c) => [c, b])));
  }

  /**
   * A map of `count` blocks with only the given chunks loaded (chunk index -> body); accessing
   * a block of another chunk is an assertion failure. The last chunk must be among them.
   * @throws AspenError E_DECODE on malformed chunks or a missing last chunk.
   */
  static fromSomeChunks(count: number, chunks: ReadonlyMap<number, Uint8Array>): BlockMap {
    const expected = Math.ceil(count / MAP_CHUNK_BLOCKS);
    if (expected > 0 && !chunks.has(expected - 1)) throw new AspenError('E_DECODE', `block map of ${count} blocks: last chunk ${expected - 1} missing`);
    const cap = Math.max(16, count);
    const alloc = new Uint8Array(cap);
    const crcs = new Uint32Array(cap);
    const loaded = new Uint8Array(expected);
    chunks.forEach((body, c) => {
      if (c >= expected) throw new AspenError('E_DECODE', `block map of ${count} blocks has chunk ${c}`);
      loaded[c] = 1;
      const first = c * MAP_CHUNK_BLOCKS;
      const want = Math.min(count, first + MAP_CHUNK_BLOCKS) - first;
      const d = new Decoder(body);
      d.struct(1, 'block map chunk', (s) => {
        const k = s.u32();
        if (k !== want) throw new AspenError('E_DECODE', `block map chunk ${c} holds ${k} blocks, expected ${want}`);
        alloc.set(s.raw(k), first);
        const raw = s.raw(k * 4);
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        for (let i = 0; i < k; i++) crcs[first + i] = view.getUint32(i * 4, true);
      });
      d.done('block map chunk');
    });
    for (let i = 0; i < count; i++) if (alloc[i]! > 1) throw new AspenError('E_DECODE', `block map alloc byte ${alloc[i]} at ${i}`);
    const m = new BlockMap(crcs, alloc, count, expected);
    if (chunks.size < expected) m.loaded = loaded;
    return m;
  }
}

/** The per-object record (Ceph's onode, reduced): size and the blob holding the data (0 = none yet). */
export interface Onode {
  readonly sizeBytes: number;
  readonly blobId: number;
}

/** `struct v1 { u53 sizeBytes; u53 blobId }`. */
export function encodeOnode(o: Onode): Uint8Array {
  assert(Number.isSafeInteger(o.sizeBytes) && o.sizeBytes >= 0, 'onode size');
  assert(Number.isSafeInteger(o.blobId) && o.blobId >= 0, 'onode blob id');
  return new Encoder(24).struct(1, 1, (s) => s.u53(o.sizeBytes).u53(o.blobId)).finish();
}

/** @throws AspenError E_DECODE on malformed bytes. */
export function decodeOnode(b: Uint8Array): Onode {
  const d = new Decoder(b);
  const o = d.struct(1, 'onode', (s) => ({ sizeBytes: s.u53(), blobId: s.u53() }));
  d.done('onode');
  return o;
}

/**
 * Checks a record's stored crc32c.
 * @throws AspenError E_CORRUPT naming `what` on a mismatch.
 */
export function checkRecord(body: Uint8Array, crc: number, what: string): Uint8Array {
  const actual = crc32c(body);
  if (actual !== crc >>> 0) throw new AspenError('E_CORRUPT', `${what}: record checksum mismatch (stored ${crc >>> 0}, computed ${actual})`, { what });
  return body;
}

/** A block-aligned write of whole blocks into a blob that is committed but maybe not yet in the file. */
export interface PendingWrite {
  readonly blobId: number;
  /** Byte offset in the blob, a multiple of the block size. */
  readonly offsetBytes: number;
  /** Whole blocks. */
  readonly data: Uint8Array;
}

/**
 * Copies onto `buf` (which holds blob bytes [bufOffsetBytes, bufOffsetBytes + buf.length))
 * the parts of `writes` that overlap it, in order (later writes win).
 */
export function overlayWrites(buf: Uint8Array, bufOffsetBytes: number, writes: readonly PendingWrite[]): void {
  const bufEnd = bufOffsetBytes + buf.length;
  for (const w of writes) {
    const start = Math.max(bufOffsetBytes, w.offsetBytes);
    const end = Math.min(bufEnd, w.offsetBytes + w.data.length);
    if (start >= end) continue;
    buf.set(w.data.subarray(start - w.offsetBytes, end - w.offsetBytes), start - bufOffsetBytes);
  }
}

/** An allocated byte range of an object (fiemap / sparse read). */
export interface Extent {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/**
 * Allocated extents of an object within [offset, offset + length), clipped to its size and
 * merged (adjacent allocated blocks form one extent).
 */
export function allocatedExtents(map: BlockMap, sizeBytes: number, offsetBytes: number, lengthBytes: number, blockSizeBytes: number): Extent[] {
  const end = Math.min(sizeBytes, offsetBytes + lengthBytes);
  const out: Extent[] = [];
  if (offsetBytes >= end) return out;
  const { first, end: endBlock } = blockSpan(offsetBytes, end - offsetBytes, blockSizeBytes);
  let runStart = -1;
  const flush = (stopBlock: number): void => {
    if (runStart < 0) return;
    const s = Math.max(offsetBytes, runStart * blockSizeBytes);
    const e = Math.min(end, stopBlock * blockSizeBytes);
    if (e > s) out.push({ offsetBytes: s, lengthBytes: e - s });
    runStart = -1;
  };
  for (let i = first; i < endBlock; i++) {
    if (map.isAllocated(i)) {
      if (runStart < 0) runStart = i;
    } else flush(i);
  }
  flush(endBlock);
  assert(out.every((x) => x.lengthBytes > 0), 'allocatedExtents: empty extent');
  return out;
}

/**
 * Where a blob's bytes live: `file` — its own file under `blobs/` (durable by fsync before the
 * COMMIT that refers to it, or through the deferred journal); `inline` — a row of the metadata
 * database (`inline_data`), written in the same SQLite transaction as its block map. Small
 * blobs (up to the store's `inlineMaxBytes`) are inline; one that grows beyond moves to a file.
 */
export type BlobKind = 'file' | 'inline';

/** A blob's record: how many onodes reference it (clones share blobs), where its bytes live, and its block map. */
export interface BlobRecord {
  readonly refs: number;
  readonly kind: BlobKind;
  readonly map: BlockMap;
}

/** The blob row's fields (the map's chunks are rows of their own). */
export interface BlobHeader {
  readonly refs: number;
  readonly blockCount: number;
  readonly kind: BlobKind;
}

/**
 * The blob row. A file blob is `struct v1 { u32 refs; u32 blockCount }` — the bytes every
 * store since format 1 wrote, so builds without inline blobs still read them; an inline blob is
 * `struct v2 compat 2 { u32 refs; u32 blockCount; u8 kind = 1 }`, which such builds refuse
 * (E_UNSUPPORTED) instead of looking for a file that does not exist.
 */
export function encodeBlobHeader(h: BlobHeader): Uint8Array {
  assert(Number.isInteger(h.refs) && h.refs >= 1, `blob refs must be >= 1, got ${h.refs}`);
  assert(Number.isInteger(h.blockCount) && h.blockCount >= 0, 'blob block count');
  if (h.kind === 'file') return new Encoder(16).struct(1, 1, (s) => s.u32(h.refs).u32(h.blockCount)).finish();
  return new Encoder(16).struct(2, 2, (s) => s.u32(h.refs).u32(h.blockCount).u8(1)).finish();
}

/** @throws AspenError E_DECODE on malformed bytes, E_UNSUPPORTED on a newer encoding. */
export function decodeBlobHeader(b: Uint8Array): BlobHeader {
  const d = new Decoder(b);
  const r = d.struct(2, 'blob record', (s, version) => {
    const refs = s.u32();
    const blockCount = s.u32();
    if (version < 2) return { refs, blockCount, kind: 'file' as const };
    const k = s.u8();
    if (k > 1) throw new AspenError('E_DECODE', `blob record of kind ${k}`);
    return { refs, blockCount, kind: k === 1 ? ('inline' as const) : ('file' as const) };
  });
  d.done('blob record');
  if (r.refs < 1) throw new AspenError('E_DECODE', `blob record with ${r.refs} refs`);
  return r;
}

/**
 * Checks every allocated block of `buf` (blocks [first, first + buf.length / blockSize) of a
 * blob) against `map`; holes are ignored. Calls `onBad(blockIndex)` for each mismatch.
 * Returns the number of allocated blocks checked.
 */
export function verifyBlocks(buf: Uint8Array, first: number, map: BlockMap, blockSizeBytes: number, onBad: (blockIndex: number) => void): number {
  assert(buf.length % blockSizeBytes === 0, 'verifyBlocks: buffer is not whole blocks');
  const n = buf.length / blockSizeBytes;
  let checked = 0;
  for (let j = 0; j < n; j++) {
    const i = first + j;
    if (!map.isAllocated(i)) continue;
    checked++;
    if (crc32c(buf.subarray(j * blockSizeBytes, (j + 1) * blockSizeBytes)) !== map.crcOf(i)) onBad(i);
  }
  assert(checked <= n, 'verifyBlocks: count');
  return checked;
}
