/**
 * Client ops on erasure-coded pools at the primary (Ceph ECBackend, ECTransaction,
 * ECUtil::stripe_info_t): the same op execution as replicated pools (./op-exec.ts) against a
 * *logical view* of the object whose data reads gather and decode the shards, and a
 * translation of the planned logical Transaction into one Transaction per shard.
 *
 * Layout: an object of logical size S is cut into stripes of `k × stripeUnit` bytes; data
 * chunk c of stripe s is logical bytes [s·W + c·su, s·W + (c+1)·su) (W = k·su) and lives at
 * bytes [s·su, (s+1)·su) of shard c's store object; shards k..k+m-1 hold the Reed-Solomon
 * parity of each stripe at the same offsets. Every shard object is `ceil(S / W) × su` bytes
 * (the last stripe zero-padded, so parity always covers zeros beyond S) and carries the
 * logical size in {@link EC_SIZE_XATTR}; xattrs, the object info and the SnapSet are
 * replicated on every shard. Omap is not supported on EC pools (as in Ceph: EOPNOTSUPP).
 *
 * Writes: full-stripe writes encode without reading; a partial write (or truncate/zero) reads
 * the touched stripes first (read-modify-write of only those stripes), applies the logical
 * ops to them in memory, re-encodes them and writes each shard's chunks. Every shard's
 * Transaction is applied atomically by its member under one PG log entry, and a read gathers
 * only shards at the version the PG log names (the caller checks it), so data and parity of
 * different versions are never combined.
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { FullObjectId, ObjectId } from '../store/oid.ts';
import { Transaction, type TxOp } from '../store/transaction.ts';
import type { ObjectStat, ObjectStore, SparseReadResult } from '../store/types.ts';
import type { EcLayout } from '../ec/layout.ts';
import { decodeStripes, encodeStripes } from '../ec/codec.ts';

/** Xattr on every store object (head and clone) of an EC shard: the object's logical size (u53). */
export const EC_SIZE_XATTR = 'aspen.ecsize';
/** Xattr of a rollback stash: what the stash holds ({@link EcStashMeta}). */
export const EC_STASH_XATTR = 'aspen.stash';
/**
 * The generation of an object's rollback stash (Ceph ghobject_t generation): the state the
 * object's last write overwrote, kept on each shard until that write is committed on every
 * shard, so a write that reached fewer than k shards can be undone (Ceph ECTransaction
 * rollback extents).
 */
export const EC_STASH_GENERATION = 1n;

/**
 * What a shard's stash holds, written by the primary's translation (struct v1):
 * - `existed` false: the object did not exist — roll back by removing it;
 * - `whole`: the stash is a clone of the whole old object (data and attributes);
 * - otherwise the stash holds the old bytes of `ranges` (shard offsets) and the old
 *   attributes, and the old shard object was `oldShardSizeBytes` long.
 * `clonesCreated`: snapshot clones the write made (removed on rollback).
 */
export interface EcStashMeta {
  readonly existed: boolean;
  readonly whole: boolean;
  readonly oldShardSizeBytes: number;
  readonly ranges: readonly (readonly [number, number])[];
  readonly clonesCreated: readonly bigint[];
}

/** Encodes {@link EcStashMeta}. */
export function encodeStashMeta(m: EcStashMeta): Uint8Array {
  return new Encoder(64 + m.ranges.length * 16 + m.clonesCreated.length * 8).struct(1, 1, (e) => {
    e.bool(m.existed).bool(m.whole).u53(m.oldShardSizeBytes);
    e.array(m.ranges, (x, [a, n]) => x.u53(a).u53(n));
    e.array(m.clonesCreated, (x, c) => x.u64(c));
  }).finish();
}

/** Decodes {@link encodeStashMeta}. @throws AspenError E_DECODE on malformed bytes. */
export function decodeStashMeta(b: Uint8Array): EcStashMeta {
  const d = new Decoder(b);
  const m = d.struct(1, 'ec stash', (x) => ({
    existed: x.bool(), whole: x.bool(), oldShardSizeBytes: x.u53(),
    ranges: x.array((y) => [y.u53(), y.u53()] as const), clonesCreated: x.array((y) => y.u64()),
  }));
  d.done('ec stash');
  return m;
}

/** The stash object of `head`. */
export function stashOid(head: ObjectId): ObjectId {
  return { name: head.name, namespace: head.namespace ?? '', generation: EC_STASH_GENERATION };
}

export type { EcLayout };

/**
 * The Reed-Solomon codec on whole stripes (osd/src/ec): `encode` takes `n × W` logical bytes
 * and returns k+m shard buffers of `n × su` bytes; `decode` takes k+m entries (null:
 * missing; at least k present, all the same length) and returns the logical bytes.
 */
export interface EcCodec {
  encode(layout: EcLayout, data: Uint8Array): Promise<Uint8Array[]>;
  decode(layout: EcLayout, shards: readonly (Uint8Array | null)[]): Promise<Uint8Array>;
}

/**
 * Reads shard bytes from the PG's members: bytes [offset, offset+length) of shard `shard`'s
 * store object `oid` (head or clone), or null when that shard cannot supply them now (hole
 * in the acting set, another version, EIO, timeout). Returned buffers may be shorter than
 * asked where the shard object ends (the rest is zeros).
 */
export type ShardReader = (shard: number, oid: ObjectId, offsetBytes: number, lengthBytes: number) => Promise<Uint8Array | null>;

/** The Reed-Solomon codec of osd/src/ec (@ronomon/reed-solomon, ADR 0008). */
export const RS_CODEC: EcCodec = { encode: encodeStripes, decode: decodeStripes };

/** Encodes a logical size for {@link EC_SIZE_XATTR}. */
export function encodeEcSize(sizeBytes: number): Uint8Array {
  return new Encoder(8).u53(sizeBytes).finish();
}

/** Decodes {@link EC_SIZE_XATTR}. @throws AspenError E_DECODE on malformed bytes. */
export function decodeEcSize(b: Uint8Array): number {
  const d = new Decoder(b);
  const n = d.u53();
  d.done('ec size');
  return n;
}

/** Stripe width W = k × stripe unit, bytes. */
export function stripeWidth(l: EcLayout): number {
  return l.k * l.stripeUnitBytes;
}

/** Bytes of each shard object for a logical size: ceil(size / W) × su. */
export function shardSizeBytes(l: EcLayout, logicalSizeBytes: number): number {
  return Math.ceil(logicalSizeBytes / stripeWidth(l)) * l.stripeUnitBytes;
}

/** Bytes of a buffer as `len`, zero-padded (or the same buffer when already that long). */
function padTo(b: Uint8Array, len: number): Uint8Array {
  if (b.length === len) return b;
  const out = new Uint8Array(len);
  out.set(b.subarray(0, Math.min(len, b.length)));
  return out;
}

/**
 * Reads `count` whole stripes from stripe `first` of `oid`: the data shards (k, in
 * parallel), then parity shards for any that failed, and decodes.
 * @throws AspenError EIO when fewer than k shards could supply them.
 */
export async function readStripes(l: EcLayout, codec: EcCodec, reader: ShardReader, oid: ObjectId, first: number, count: number): Promise<Uint8Array> {
  assert(count >= 1 && first >= 0, 'a stripe read covers at least one stripe');
  const su = l.stripeUnitBytes;
  const off = first * su;
  const len = count * su;
  const shards: (Uint8Array | null)[] = new Array<Uint8Array | null>(l.k + l.m).fill(null);
  const got = await Promise.all(Array.from({ length: l.k }, (_, i) => reader(i, oid, off, len)));
  got.forEach((b, i) => { shards[i] = b === null ? null : padTo(b, len); });
  let have = got.filter((b) => b !== null).length;
  for (let p = l.k; p < l.k + l.m && have < l.k; p++) {
    const b = await reader(p, oid, off, len);
    if (b === null) continue;
    shards[p] = padTo(b, len);
    have++;
  }
  if (have < l.k) throw new AspenError('EIO', `only ${have} of the k=${l.k} shards of ${oid.name} could be read`);
  if (shards.slice(0, l.k).every((b) => b !== null)) return interleave(l, shards as Uint8Array[], count);
  return codec.decode(l, shards);
}

/** The logical bytes of `count` stripes from the k data shards (no decoding). */
function interleave(l: EcLayout, shards: readonly Uint8Array[], count: number): Uint8Array {
  const su = l.stripeUnitBytes;
  const out = new Uint8Array(count * stripeWidth(l));
  for (let s = 0; s < count; s++) {
    for (let c = 0; c < l.k; c++) out.set(shards[c]!.subarray(s * su, (s + 1) * su), (s * l.k + c) * su);
  }
  return out;
}

/**
 * The object as a client sees it on an EC pool, for ./op-exec.ts: attributes from this
 * primary's own shard (they are replicated), the logical size from {@link EC_SIZE_XATTR},
 * data read across the shards. Omap reads fail with E_UNSUPPORTED.
 */
export class EcObjectView {
  constructor(
    private readonly local: Pick<ObjectStore, 'exists' | 'getattr' | 'getattrs' | 'fiemap'>,
    readonly layout: EcLayout,
    private readonly codec: EcCodec,
    private readonly reader: ShardReader,
  ) {}

  exists(coll: string, oid: ObjectId): Promise<boolean> {
    return this.local.exists(coll, oid);
  }
  getattr(coll: string, oid: ObjectId, name: string): Promise<Uint8Array> {
    return this.local.getattr(coll, oid, name);
  }
  getattrs(coll: string, oid: ObjectId): Promise<Map<string, Uint8Array>> {
    return this.local.getattrs(coll, oid);
  }

  /** The logical size. @throws AspenError ENOENT when the object does not exist. */
  async stat(coll: string, oid: ObjectId): Promise<ObjectStat> {
    const attrs = await this.local.getattrs(coll, oid);
    const b = attrs.get(EC_SIZE_XATTR);
    const sizeBytes = b === undefined ? 0 : decodeEcSize(b);
    return { sizeBytes, allocatedBytes: sizeBytes, blockSizeBytes: stripeWidth(this.layout) };
  }

  /** Logical bytes [offset, offset+length) clipped at the size. @throws AspenError EIO when fewer than k shards answer. */
  async read(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    const size = (await this.stat(coll, oid)).sizeBytes;
    const end = Math.min(size, offsetBytes + lengthBytes);
    if (end <= offsetBytes) return new Uint8Array(0);
    const w = stripeWidth(this.layout);
    const first = Math.floor(offsetBytes / w);
    const count = Math.ceil(end / w) - first;
    const data = await readStripes(this.layout, this.codec, this.reader, oid, first, count);
    return data.subarray(offsetBytes - first * w, end - first * w);
  }

  /**
   * The allocated logical extents of the range and their bytes. Every write stores all k+m
   * shards of each stripe it touches, so a stripe never written is a hole in every shard —
   * in this primary's own shard too: its holes (store fiemap) are the object's holes, at
   * stripe granularity.
   */
  async sparseRead(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<SparseReadResult> {
    const size = (await this.stat(coll, oid)).sizeBytes;
    const end = Math.min(size, offsetBytes + lengthBytes);
    if (end <= offsetBytes) return { extents: [], data: new Uint8Array(0) };
    const su = this.layout.stripeUnitBytes;
    const w = stripeWidth(this.layout);
    const first = Math.floor(offsetBytes / w);
    const last = Math.ceil(end / w);
    const shardExtents = await this.local.fiemap(coll, oid, first * su, (last - first) * su);
    // Allocated shard bytes → whole logical stripes, clipped to the range and merged.
    const ranges: [number, number][] = [];
    for (const e of shardExtents) {
      const a = Math.max(offsetBytes, Math.floor(e.offsetBytes / su) * w);
      const b = Math.min(end, Math.ceil((e.offsetBytes + e.lengthBytes) / su) * w);
      if (b <= a) continue;
      const prev = ranges[ranges.length - 1];
      if (prev !== undefined && a <= prev[1]) prev[1] = Math.max(prev[1], b);
      else ranges.push([a, b]);
    }
    const parts: Uint8Array[] = [];
    for (const [a, b] of ranges) parts.push(await this.read(coll, oid, a, b - a));
    const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    return { extents: ranges.map(([a, b]) => ({ offsetBytes: a, lengthBytes: b - a })), data };
  }

  omapGetHeader(): Promise<Uint8Array> {
    return Promise.reject(omapUnsupported());
  }
  omapGetKeys(): Promise<never> {
    return Promise.reject(omapUnsupported());
  }
  omapGetValues(): Promise<never> {
    return Promise.reject(omapUnsupported());
  }
  omapGetValuesByKeys(): Promise<never> {
    return Promise.reject(omapUnsupported());
  }
}

function omapUnsupported(): AspenError {
  return new AspenError('E_UNSUPPORTED', 'omap is not supported on erasure-coded pools (Ceph: EOPNOTSUPP)');
}

function isHead(oid: FullObjectId): boolean {
  return oid.snap === 'head';
}

function sameOid(a: FullObjectId, b: FullObjectId): boolean {
  return a.name === b.name && a.namespace === b.namespace && a.snap === b.snap && a.generation === b.generation;
}

/**
 * Translates the logical Transaction op-exec planned for head `head` of an EC object into
 * one Transaction per shard (Ceph ECTransaction::generate_transactions).
 * @param oldSizeBytes the object's logical size before the request (0: absent).
 * @param oldAttrs the head's attributes before the request (this primary's shard; they are
 *   the same on every shard but for {@link NOT_STASHED_XATTRS}), or null when it does not exist.
 * @param shardColls the collection of each shard position (k+m entries).
 * @returns k+m Transactions, index = shard.
 * @throws AspenError E_UNSUPPORTED for omap updates, data ops on a clone, or an op on another
 *   object; EIO when the stripes a partial write needs cannot be read.
 */
export async function translateEcTransaction(
  l: EcLayout, codec: EcCodec, reader: ShardReader, tx: Transaction, head: FullObjectId, oldSizeBytes: number, shardColls: readonly string[],
  oldAttrs: ReadonlyMap<string, Uint8Array> | null = null,
): Promise<Transaction[]> {
  assert(shardColls.length === l.k + l.m, 'a collection per shard');
  assert(isHead(head), 'EC requests address the head');
  const w = stripeWidth(l);
  const n = l.k + l.m;
  /**
   * Per shard: the structural ops in order, and a null where the data effects go — at the
   * last data op, so ops before it (a snapshot clone) see the old data and ops after it (the
   * object info) see the new object.
   */
  const plan: (Exclude<TxOp, { op: 'collectionMoveRename' }> | null)[] = [];
  let dataAt = -1;
  let removedBeforeData = false;
  /** Logical stripes changed by the request (full stripe buffers). */
  const overlay = new Map<number, Uint8Array>();
  /** Old bytes below this logical offset are still valid (truncates and removal lower it). */
  let validOld = oldSizeBytes;
  let size = oldSizeBytes;
  let dataTouched = false;
  let headExists = oldSizeBytes > 0;
  let removedThenRecreated = false;
  /** The shard truncate (bytes) to apply before writing the changed stripes, or null. */
  let cutTo: number | null = null;

  const load = async (s: number): Promise<Uint8Array> => {
    let b = overlay.get(s);
    if (b !== undefined) return b;
    if (s * w < validOld) {
      b = new Uint8Array(await readStripes(l, codec, reader, head, s, 1));
      b.fill(0, Math.max(0, validOld - s * w));
    } else b = new Uint8Array(w);
    overlay.set(s, b);
    return b;
  };
  const put = async (offset: number, src: Uint8Array | null, length: number): Promise<void> => {
    for (let pos = offset; pos < offset + length;) {
      const s = Math.floor(pos / w);
      const inStripe = pos - s * w;
      const take = Math.min(w - inStripe, offset + length - pos);
      let b: Uint8Array;
      if (take === w && !overlay.has(s)) {
        b = new Uint8Array(w);
        overlay.set(s, b);
      } else b = await load(s);
      if (src === null) b.fill(0, inStripe, inStripe + take);
      else b.set(src.subarray(pos - offset, pos - offset + take), inStripe);
      pos += take;
    }
  };

  for (const op of tx.ops) {
    switch (op.op) {
      case 'write': case 'zero': case 'truncate': {
        if (!sameOid(op.oid, head)) throw new AspenError('E_UNSUPPORTED', `data op on ${op.oid.name} (snap ${String(op.oid.snap)}): EC writes go to the head`);
        dataTouched = true;
        if (dataAt >= 0) plan.splice(dataAt, 1);
        dataAt = plan.length;
        plan.push(null);
        headExists = true;
        if (op.op === 'write') {
          await put(op.offsetBytes, op.data, op.data.length);
          size = Math.max(size, op.offsetBytes + op.data.length);
        } else if (op.op === 'zero') {
          const end = Math.min(size, op.offsetBytes + op.lengthBytes);
          if (end > op.offsetBytes) await put(op.offsetBytes, null, end - op.offsetBytes);
        } else {
          const t = op.sizeBytes;
          for (const s of [...overlay.keys()]) if (s * w >= t) overlay.delete(s);
          if (t % w !== 0 && t < size) {
            const b = await load(Math.floor(t / w));
            b.fill(0, t % w);
          }
          if (t < validOld) {
            validOld = t;
            cutTo = Math.min(cutTo ?? Infinity, shardSizeBytes(l, t));
          }
          size = t;
        }
        break;
      }
      case 'remove':
        if (sameOid(op.oid, head)) {
          overlay.clear();
          validOld = 0;
          size = 0;
          cutTo = null;
          dataTouched = false;
          headExists = false;
          removedThenRecreated = true;
          if (dataAt < 0) removedBeforeData = true;
        }
        plan.push(op);
        break;
      case 'touch':
        if (sameOid(op.oid, head)) headExists = true;
        plan.push(op);
        break;
      case 'setattrs': case 'rmattr': case 'clone': case 'omapClear':
        if (op.op === 'clone' && (!sameOid(op.src, head) || op.dst.name !== head.name)) {
          throw new AspenError('E_UNSUPPORTED', `clone of ${op.src.name} to ${op.dst.name} on an EC pool`);
        }
        if (op.op === 'setattrs' && sameOid(op.oid, head)) headExists = true;
        plan.push(op);
        break;
      default:
        throw new AspenError('E_UNSUPPORTED', `${op.op} is not supported on erasure-coded pools`);
    }
  }
  const out = Array.from({ length: n }, () => new Transaction());
  stashFirst(out, shardColls, head, oldAttrs, shardSizeBytes(l, oldSizeBytes), changedShardRanges(), plan);
  // The data ops create the head; the structural ops between them expect it to exist.
  if (dataTouched && !removedBeforeData) for (let i = 0; i < n; i++) out[i]!.touch(shardColls[i]!, head);
  for (const op of plan) {
    if (op === null) await emitData();
    else for (let i = 0; i < n; i++) out[i]!.appendInColl(op, shardColls[i]!);
  }
  if (headExists) for (let i = 0; i < n; i++) out[i]!.setattr(shardColls[i]!, head, EC_SIZE_XATTR, encodeEcSize(size));
  return out;

  /** Shard byte ranges of the old object this request overwrites or cuts, merged. */
  function changedShardRanges(): [number, number][] {
    const oldShard = shardSizeBytes(l, oldSizeBytes);
    const su = l.stripeUnitBytes;
    if (removedThenRecreated) return [[0, oldShard]];
    const cuts: [number, number][] = [...overlay.keys()].map((st) => [st * su, (st + 1) * su] as [number, number]);
    if (cutTo !== null) cuts.push([cutTo, oldShard]);
    cuts.sort((a, b) => a[0] - b[0]);
    const out: [number, number][] = [];
    for (const [a0, b0] of cuts) {
      const a = Math.min(a0, oldShard);
      const b = Math.min(b0, oldShard);
      if (b <= a) continue;
      const prev = out[out.length - 1];
      if (prev !== undefined && a <= prev[1]) prev[1] = Math.max(prev[1], b);
      else out.push([a, b]);
    }
    return out;
  }

  async function emitData(): Promise<void> {
    if (cutTo !== null && !removedThenRecreated) for (let i = 0; i < n; i++) out[i]!.truncate(shardColls[i]!, head, cutTo);
    // Changed stripes in runs of consecutive indexes, each encoded once.
    const stripes = [...overlay.keys()].sort((a, b) => a - b);
    for (let r = 0; r < stripes.length;) {
      let e = r + 1;
      while (e < stripes.length && stripes[e] === stripes[e - 1]! + 1) e++;
      const first = stripes[r]!;
      const data = new Uint8Array((e - r) * w);
      for (let j = r; j < e; j++) data.set(overlay.get(stripes[j]!)!, (j - r) * w);
      const chunks = await codec.encode(l, data);
      assert(chunks.length === n, 'the codec returns k+m chunks');
      for (let i = 0; i < n; i++) out[i]!.write(shardColls[i]!, head, first * l.stripeUnitBytes, chunks[i]!);
      r = e;
    }
    for (let i = 0; i < n; i++) out[i]!.truncate(shardColls[i]!, head, shardSizeBytes(l, size));
  }
}

/** Attributes not kept in a stash: per-member records the shard's store rewrites itself. */
export const NOT_STASHED_XATTRS: ReadonlySet<string> = new Set(['aspen.pg']);

/**
 * Prepends to every shard's transaction the stash of what it is about to change (see
 * {@link EC_STASH_GENERATION}): a fresh stash object holding the old bytes of `ranges` and
 * the old attributes — or, when the whole old object changes, a clone of it (copy-on-write
 * in the store) — and its {@link EcStashMeta}.
 */
function stashFirst(
  out: Transaction[], colls: readonly string[], head: FullObjectId, oldAttrs: ReadonlyMap<string, Uint8Array> | null, oldShardSizeBytes: number,
  ranges: readonly [number, number][], plan: readonly (TxOp | null)[],
): void {
  const stash = stashOid(head);
  const clonesCreated = plan.flatMap((op) => (op !== null && op.op === 'clone' && op.dst.snap !== 'head' ? [op.dst.snap] : []));
  const covered = ranges.reduce((sum, [a, b]) => sum + (b - a), 0);
  const whole = oldAttrs !== null && covered >= oldShardSizeBytes && oldShardSizeBytes > 0;
  const meta: EcStashMeta = {
    existed: oldAttrs !== null, whole, oldShardSizeBytes, ranges: whole ? [] : ranges.map(([a, b]) => [a, b - a] as const), clonesCreated,
  };
  const attrs = new Map<string, Uint8Array>();
  for (const [k, v] of oldAttrs ?? []) if (!NOT_STASHED_XATTRS.has(k)) attrs.set(k, v);
  for (let i = 0; i < out.length; i++) {
    const t = out[i]!;
    const coll = colls[i]!;
    // A fresh stash: whatever an earlier write left there goes (touch makes the remove safe).
    t.touch(coll, stash).remove(coll, stash);
    if (whole) t.clone(coll, head, stash);
    else {
      t.touch(coll, stash);
      if (attrs.size > 0) t.setattrs(coll, stash, attrs);
      for (const [a, len] of meta.ranges) t.cloneRange(coll, head, stash, a, len, a);
    }
    t.setattr(coll, stash, EC_STASH_XATTR, encodeStashMeta(meta));
  }
}
