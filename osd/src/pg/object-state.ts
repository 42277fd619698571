/**
 * An object's whole state as ONE blob, the unit recovery, backfill and repair push (client
 * writes travel as planned store transactions instead, ADR 0007): data, user xattrs, omap
 * header, omap entries and the object info (user version, mtime), plus its snapshot state.
 *
 * Blob struct v1 (compat 1): version u64, mtimeMs u53, data bytes, xattrs [(name, value)]
 * sorted by name, omap header bytes, omap [(key, value)] sorted by key — deterministic, so
 * equal states have equal bytes (and equal crc32c, which scrub compares).
 * Struct v2 appends the snapshot state (Ceph pushes the head with its SnapSet and each clone
 * as its own object; we push them together): whiteout bool, the head's encoded SnapSet
 * (osd/src/core/snapset.ts; empty when none), clones [(cloneId u64, version u64, mtimeMs
 * u53, data, xattrs, omap header, omap)] ascending by cloneId, compat 2 (an older reader
 * would drop the clones). A plain object (none of these set) is still written as v1.
 * Struct v3 (compat 3) is an erasure-coded shard: v2 plus the logical size of the head and
 * of each clone (u53 each), since a shard's data is only its chunks.
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';

/** The state of one object. Maps are keyed by user xattr name / omap key. */
export interface ObjectState {
  data: Uint8Array;
  xattrs: Map<string, Uint8Array>;
  omapHeader: Uint8Array;
  omap: Map<string, Uint8Array>;
  /** User-visible version, bumped by every mutating request (Ceph user_version). */
  version: bigint;
  mtimeMs: number;
  /** The head is a whiteout (removed while it had clones; see op-exec.ts). Omitted: false. */
  whiteout?: boolean;
  /** The head's encoded SnapSet (the `aspen.ss` xattr); omitted or empty: none. */
  snapset?: Uint8Array;
  /** The object's clones, ascending by cloneId; omitted: none. */
  clones?: CloneState[];
  /**
   * Erasure-coded pools: this blob holds ONE shard (`data` is the shard's chunk bytes) and
   * this is the object's logical size, bytes (struct v3). Omitted: a replicated copy.
   */
  ecSizeBytes?: number;
}

/** One clone of an object in its state blob: the store object `snap = cloneId`. */
export interface CloneState {
  cloneId: bigint;
  data: Uint8Array;
  xattrs: Map<string, Uint8Array>;
  omapHeader: Uint8Array;
  omap: Map<string, Uint8Array>;
  /** The clone's object info: the head's user version and mtime when it was cloned. */
  version: bigint;
  mtimeMs: number;
  /** EC: the clone's logical size, bytes (see ObjectState.ecSizeBytes). */
  ecSizeBytes?: number;
}

const BLOB_V = 3;
const EMPTY = new Uint8Array(0);

/** A fresh object (what `create` or a first write makes). */
export function emptyObjectState(): ObjectState {
  return { data: EMPTY, xattrs: new Map(), omapHeader: EMPTY, omap: new Map(), version: 0n, mtimeMs: 0 };
}

function sortedEntries(m: ReadonlyMap<string, Uint8Array>): [string, Uint8Array][] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function sizeOf(s: { data: Uint8Array; omapHeader: Uint8Array; xattrs: Map<string, Uint8Array>; omap: Map<string, Uint8Array> }): number {
  let bytes = s.data.length + s.omapHeader.length + 64;
  for (const [k, v] of s.xattrs) bytes += k.length * 3 + v.length + 8;
  for (const [k, v] of s.omap) bytes += k.length * 3 + v.length + 8;
  return bytes;
}

function decodeMap(b: Decoder, what: string): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (const [k, v] of b.array((x) => [x.string(), x.bytes()] as const)) {
    if (m.has(k)) throw new AspenError('E_DECODE', `duplicate ${what} ${k}`);
    m.set(k, v);
  }
  return m;
}

/** Encodes an object's state: struct v1 for a plain object, v2 (compat 2) when it has snapshot state. */
export function encodeObjectState(s: ObjectState): Uint8Array {
  assert(s.version >= 0n && s.version < 1n << 64n, 'object version is a u64');
  assert(Number.isSafeInteger(s.mtimeMs) && s.mtimeMs >= 0, 'mtime is a non-negative integer');
  const clones = s.clones ?? [];
  for (let i = 1; i < clones.length; i++) assert(clones[i]!.cloneId > clones[i - 1]!.cloneId, 'clones ascending by id');
  const snapset = s.snapset ?? EMPTY;
  const ec = s.ecSizeBytes !== undefined;
  const snappy = ec || s.whiteout === true || snapset.length > 0 || clones.length > 0;
  let bytes = sizeOf(s) + snapset.length + 16;
  for (const c of clones) bytes += sizeOf(c) + 32;
  const e = new Encoder(bytes);
  // A plain object keeps its v1 bytes (older readers, and the crcs scrub recorded for it).
  e.struct(ec ? 3 : snappy ? 2 : 1, ec ? 3 : snappy ? 2 : 1, (b) => {
    b.u64(s.version).u53(s.mtimeMs).bytes(s.data);
    b.array(sortedEntries(s.xattrs), (x, [k, v]) => x.string(k).bytes(v));
    b.bytes(s.omapHeader);
    b.array(sortedEntries(s.omap), (x, [k, v]) => x.string(k).bytes(v));
    if (!snappy) return;
    b.bool(s.whiteout === true).bytes(snapset);
    b.array(clones, (x, c) => {
      x.u64(c.cloneId).u64(c.version).u53(c.mtimeMs).bytes(c.data);
      x.array(sortedEntries(c.xattrs), (y, [k, v]) => y.string(k).bytes(v));
      x.bytes(c.omapHeader);
      x.array(sortedEntries(c.omap), (y, [k, v]) => y.string(k).bytes(v));
    });
    if (!ec) return;
    b.u53(s.ecSizeBytes!);
    b.array(clones, (x, c) => x.u53(c.ecSizeBytes ?? 0));
  });
  return e.finish();
}

/**
 * Decodes {@link encodeObjectState}'s bytes (v1, v2 or v3: an EC shard). The result aliases `blob`; a v1 blob
 * (and a v2 blob without snapshot state) decodes without `whiteout`, `snapset` or `clones`.
 * @throws AspenError E_DECODE on malformed bytes, a duplicate key or clones out of order.
 */
export function decodeObjectState(blob: Uint8Array): ObjectState {
  const d = new Decoder(blob);
  const s = d.struct(BLOB_V, 'object state', (b, v): ObjectState => {
    const version = b.u64();
    const mtimeMs = b.u53();
    const data = b.bytes();
    const xattrs = decodeMap(b, 'xattr');
    const omapHeader = b.bytes();
    const omap = decodeMap(b, 'omap key');
    const state: ObjectState = { data, xattrs, omapHeader, omap, version, mtimeMs };
    if (v < 2) return state;
    const whiteout = b.bool();
    const snapset = b.bytes();
    const clones = b.array((x): CloneState => {
      const cloneId = x.u64();
      const cv = x.u64();
      const cm = x.u53();
      const cdata = x.bytes();
      const cx = decodeMap(x, 'clone xattr');
      const ch = x.bytes();
      return { cloneId, version: cv, mtimeMs: cm, data: cdata, xattrs: cx, omapHeader: ch, omap: decodeMap(x, 'clone omap key') };
    });
    for (let i = 1; i < clones.length; i++) if (clones[i]!.cloneId <= clones[i - 1]!.cloneId) throw new AspenError('E_DECODE', 'clones out of order');
    // Absent snapshot state is left out, so a plain object decodes the same from v1 and v2.
    if (whiteout) state.whiteout = true;
    if (snapset.length > 0) state.snapset = snapset;
    if (clones.length > 0) state.clones = clones;
    if (v < 3) return state;
    state.ecSizeBytes = b.u53();
    const sizes = b.array((x) => x.u53());
    if (sizes.length !== clones.length) throw new AspenError('E_DECODE', `${sizes.length} EC clone sizes for ${clones.length} clones`);
    clones.forEach((c, i) => { c.ecSizeBytes = sizes[i]!; });
    return state;
  });
  d.done('object state');
  return s;
}
