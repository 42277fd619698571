/**
 * The gateway's storage over RADOS (layout in ./layout.ts): the buckets directory, bucket
 * indexes updated by compare-and-swap, and object data streamed in stripes.
 *
 * Ordering and visibility: data stripes are written first; an object becomes visible only
 * when its index entry commits (one atomic omap op on the index object), so a crash or a
 * failed upload never exposes a partial object — it can leave unreferenced stripes
 * (garbage; see ARCHITECTURE.md "Known gaps"). Index updates are CAS: an existing key is
 * replaced with `omap_cmp eq <exact old bytes>`, an absent key is created under
 * `omap_cmp eq ""` (a missing key compares as empty), so concurrent writers of one key
 * serialize and the loser re-evaluates its conditions; writers of different keys do not meet.
 */
import { AspenError, assert } from '@aspen/shared';
import type { IoCtx } from '@aspen/shared/io/rados.ts';
import type { OsdOp, OsdReply } from '@aspen/shared/client/ops.ts';
import { S3Error } from '../core/errors.ts';
import type { IndexPlan, KeyView, Planned } from '../core/versioning.ts';
import {
  BUCKETS_OBJECT, HEADS_AFTER, STRIPE_BYTES, VERSIONS_NS, decodeRecord, encodeRecord, indexObject, partKey, stripeObject, stripesOf, uploadObject, uploadsObject, versionsPrefix,
  type BucketRecord, type ObjectEntry, type PartRecord, type Segment, type UploadRecord,
} from './layout.ts';

/** Most CAS attempts of one index update before answering SlowDown (named limit). */
export const CAS_ATTEMPTS_MAX = 64;
/** Most key creations committed in one index op (named limit). */
export const CREATE_BATCH_MAX = 128;
/** Stripe removals in flight per delete. */
export const REMOVES_INFLIGHT_MAX = 8;
/** Bytes per read op when streaming a GET. */
export const READ_BYTES = 1024 * 1024;

export interface EntryRead<T> {
  value: T;
  raw: Uint8Array;
}

function omapValueOf(reply: OsdReply, key: string): Uint8Array | undefined {
  const r = reply.results[0];
  if (r?.kind !== 'omap') return undefined;
  return r.entries.find(([k]) => k === key)?.[1];
}

function failed(reply: OsdReply): AspenError {
  return new AspenError(reply.code === 0 ? 'EIO' : (reply.code as AspenError['code']), reply.message);
}

export class S3Store {
  /** Per bucket id: creations waiting for the group commit (see createBatched). */
  private readonly creates = new Map<string, PendingCreate[]>();
  constructor(readonly meta: IoCtx, readonly data: IoCtx, private readonly newId: () => string) {}

  /** Creates the buckets directory object if missing. */
  async setup(): Promise<void> {
    const r = await this.meta.operate(BUCKETS_OBJECT, [{ op: 'create', exclusive: false }]);
    if (r.code !== 0) throw failed(r);
  }

  // ---- buckets ----

  async getBucket(name: string): Promise<BucketRecord | null> {
    const r = await this.meta.operate(BUCKETS_OBJECT, [{ op: 'omap_get_vals_by_keys', keys: [name] }]);
    if (r.code !== 0) throw failed(r);
    const raw = omapValueOf(r, name);
    return raw === undefined ? null : decodeRecord<BucketRecord>(raw, 'bucket');
  }

  async listBuckets(): Promise<[string, BucketRecord][]> {
    const out: [string, BucketRecord][] = [];
    let after = '';
    for (;;) {
      const page = await this.meta.omapGetVals(BUCKETS_OBJECT, after, 1000);
      for (const [k, v] of page.entries) out.push([k, decodeRecord<BucketRecord>(v, 'bucket')]);
      if (!page.more || page.entries.length === 0) return out;
      after = page.entries.at(-1)![0];
    }
  }

  /**
   * Creates bucket `name` for `owner`: its index object first, then the directory entry under
   * the directory's version (so two creators cannot both win).
   * @throws S3Error BucketAlreadyOwnedByYou, BucketAlreadyExists
   */
  async createBucket(name: string, owner: string, nowMs: number, extra: Pick<BucketRecord, 'acl'> = {}): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
      const r = await this.meta.operate(BUCKETS_OBJECT, [{ op: 'omap_get_vals_by_keys', keys: [name] }]);
      if (r.code !== 0) throw failed(r);
      const raw = omapValueOf(r, name);
      if (raw !== undefined) {
        const rec = decodeRecord<BucketRecord>(raw, 'bucket');
        throw rec.owner === owner
          ? new S3Error('BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.')
          : new S3Error('BucketAlreadyExists', 'The requested bucket name is not available.');
      }
      const rec: BucketRecord = { v: 1, id: this.newId(), owner, createdMs: nowMs, ...extra };
      const c = await this.meta.operate(indexObject(rec.id), [{ op: 'create', exclusive: true }]);
      if (c.code !== 0) throw failed(c);
      const w = await this.meta.operate(BUCKETS_OBJECT, [{ op: 'assert_version', version: r.version }, { op: 'omap_set', entries: [[name, encodeRecord(rec)]] }]);
      if (w.code === 0) return;
      await this.meta.remove(indexObject(rec.id)).catch(() => undefined);
      if (w.code !== 'ECANCELED') throw failed(w);
    }
    throw new S3Error('SlowDown', 'too many concurrent bucket changes; retry');
  }

  /**
   * Changes bucket `name`'s record (versioning, ACL) by compare-and-swap on the directory.
   * @throws S3Error NoSuchBucket, SlowDown, or what `change` throws
   */
  async updateBucket(name: string, change: (b: BucketRecord) => BucketRecord): Promise<BucketRecord> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
      const r = await this.meta.operate(BUCKETS_OBJECT, [{ op: 'omap_get_vals_by_keys', keys: [name] }]);
      if (r.code !== 0) throw failed(r);
      const raw = omapValueOf(r, name);
      if (raw === undefined) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
      const old = decodeRecord<BucketRecord>(raw, 'bucket');
      const next = change(old);
      assert(next.id === old.id && next.owner === old.owner, 'a bucket keeps its id and owner');
      const w = await this.meta.operate(BUCKETS_OBJECT, [{ op: 'omap_cmp', key: name, cmp: 'eq', value: raw }, { op: 'omap_set', entries: [[name, encodeRecord(next)]] }]);
      if (w.code === 0) return next;
      if (w.code !== 'ECANCELED') throw failed(w);
    }
    throw new S3Error('SlowDown', 'too many concurrent bucket changes; retry');
  }

  /**
   * Deletes an empty bucket: removes its index object only if it is still empty at the
   * version it was seen empty at, then the directory entry.
   * @throws S3Error BucketNotEmpty
   */
  async deleteBucket(name: string, rec: BucketRecord): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
      const r = await this.meta.operate(indexObject(rec.id), [{ op: 'omap_get_vals', startAfter: '', prefix: '', max: 1 }]);
      if (r.code === 'ENOENT') break;
      if (r.code !== 0) throw failed(r);
      const first = r.results[0];
      if (first?.kind === 'omap' && first.entries.length > 0) throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty.');
      const uploads = await this.meta.operate(uploadsObject(rec.id), [{ op: 'omap_get_vals', startAfter: '', prefix: '', max: 1 }]);
      const u = uploads.results[0];
      if (uploads.code === 0 && u?.kind === 'omap' && u.entries.length > 0) throw new S3Error('BucketNotEmpty', 'The bucket has multipart uploads in progress; abort them first.');
      const d = await this.meta.operate(indexObject(rec.id), [{ op: 'assert_version', version: r.version }, { op: 'remove' }]);
      if (d.code === 0) break;
      if (d.code !== 'ECANCELED') throw failed(d);
    }
    await this.meta.remove(uploadsObject(rec.id)).catch(() => undefined);
    await this.meta.omapRm(BUCKETS_OBJECT, [name]);
  }

  // ---- the bucket index ----

  /**
   * Reads the head of `key`, the index keys `extra` and (with `newest`) its newest noncurrent
   * version, in one op (one consistent snapshot at one object version).
   */
  private async readKey(bucketId: string, key: string, extra: readonly string[], newest: boolean): Promise<{ version: bigint; raws: Map<string, Uint8Array>; view: KeyView }> {
    const ops: OsdOp[] = [{ op: 'omap_get_vals_by_keys', keys: [key, ...extra] }];
    if (newest) ops.push({ op: 'omap_get_vals', startAfter: '', prefix: versionsPrefix(key), max: 1 });
    const r = await this.meta.operate(indexObject(bucketId), ops);
    if (r.code === 'ENOENT') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
    if (r.code !== 0) throw failed(r);
    const raws = new Map<string, Uint8Array>();
    const [byKeys, first] = r.results;
    if (byKeys?.kind !== 'omap' || (newest && first?.kind !== 'omap')) throw new AspenError('EIO', 'reply lacks omap values');
    for (const [k, v] of byKeys.entries) raws.set(k, v);
    const others = new Map<string, ObjectEntry | null>();
    for (const k of extra) {
      const raw = raws.get(k);
      others.set(k, raw === undefined ? null : decodeRecord<ObjectEntry>(raw, 'version'));
    }
    let newestView: KeyView['newest'] = null;
    const top = first?.kind === 'omap' ? first.entries[0] : undefined;
    if (top !== undefined) {
      assert(top[0].startsWith(versionsPrefix(key)), 'the newest noncurrent version is of this key');
      raws.set(top[0], top[1]);
      newestView = { indexKey: top[0], entry: decodeRecord<ObjectEntry>(top[1], 'version') };
    }
    const headRaw = raws.get(key);
    return { version: r.version, raws, view: { key, head: headRaw === undefined ? null : decodeRecord<ObjectEntry>(headRaw, 'object'), others, newest: newestView } };
  }

  /** A consistent view of `key` with the index keys `plan` asks for (version lookups). */
  async viewKey<R>(bucketId: string, key: string, find: (v: KeyView) => R | { need: string[] }): Promise<R> {
    const extra: string[] = [];
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
      const { view } = await this.readKey(bucketId, key, extra, false);
      const r = find(view);
      if (!isNeed(r)) return r;
      extra.push(...r.need.filter((k) => !extra.includes(k)));
    }
    throw new S3Error('SlowDown', 'the index of this key keeps changing; retry');
  }

  /**
   * Changes the index entries of `key` as `plan` says (core/versioning.ts), atomically with
   * respect to other writers: every guarded key must still hold the bytes read (omap_cmp eq),
   * and a guarded key that was absent must still be (omap_cmp eq ""). `plan` may throw (a failed
   * precondition); when another writer gets in between, it runs again on a fresh read.
   * @returns the committed plan (its `garbage` versions' data is the caller's to remove)
   * @throws S3Error NoSuchBucket, SlowDown, or what `plan` throws
   */
  async mutateKey<R>(bucketId: string, key: string, opts: { newest: boolean }, plan: (v: KeyView) => Planned<R>): Promise<IndexPlan<R>> {
    const obj = indexObject(bucketId);
    const extra: string[] = [];
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
      const { raws, view } = await this.readKey(bucketId, key, extra, opts.newest);
      const p = plan(view);
      if (isNeed(p)) {
        extra.push(...p.need.filter((k) => !extra.includes(k)));
        continue;
      }
      if (p.set.length === 0 && p.rm.length === 0) return p;
      if (p.guards.some((g) => !raws.has(g))) {
        // Creations group-commit with this gateway's other creators of the bucket (one op for many keys).
        assert(!opts.newest, 'creations never need the newest noncurrent version');
        return this.createBatched(bucketId, key, plan);
      }
      const w = await this.meta.operate(obj, [...guardOps(p.guards, raws), ...mutationOps([p])]);
      if (w.code === 0) return p;
      if (w.code === 'ENOENT') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
      if (w.code !== 'ECANCELED') throw failed(w);
    }
    throw new S3Error('SlowDown', 'too many concurrent writers of this bucket; retry');
  }

  /**
   * Group commit of index changes that create keys: this gateway's creators of one bucket
   * queue here and a single committer applies up to CREATE_BATCH_MAX of them (distinct keys)
   * in one op, each key guarded on its own (omap_cmp), so a batch fails only where another
   * writer (this gateway or another) got to one of its keys first; then it re-plans.
   */
  private createBatched<R>(bucketId: string, key: string, plan: (v: KeyView) => Planned<R>): Promise<IndexPlan<R>> {
    return new Promise<IndexPlan<R>>((resolve, reject) => {
      let q = this.creates.get(bucketId);
      if (q === undefined) {
        q = [];
        this.creates.set(bucketId, q);
        void this.commitCreates(bucketId, q);
      }
      q.push({ key, plan: plan as (v: KeyView) => Planned<unknown>, resolve: resolve as (p: IndexPlan<unknown>) => void, reject });
    });
  }

  private async commitCreates(bucketId: string, q: PendingCreate[]): Promise<void> {
    await Promise.resolve(); // let the creators of this tick join the first batch
    while (q.length > 0) {
      const batch: PendingCreate[] = [];
      const keys = new Set<string>();
      for (let i = 0; i < q.length && batch.length < CREATE_BATCH_MAX;) {
        if (keys.has(q[i]!.key)) { i++; continue; }
        keys.add(q[i]!.key);
        batch.push(...q.splice(i, 1));
      }
      await this.commitBatch(bucketId, batch).catch((err: unknown) => {
        for (const c of batch) c.reject(err);
      });
    }
    this.creates.delete(bucketId);
  }

  private async commitBatch(bucketId: string, batch: PendingCreate[]): Promise<void> {
    const extra = new Map<PendingCreate, string[]>(batch.map((c) => [c, []]));
    let live = batch;
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX && live.length > 0; attempt++) {
      const all = [...new Set(live.flatMap((c) => [c.key, ...extra.get(c)!]))];
      const r = await this.meta.operate(indexObject(bucketId), [{ op: 'omap_get_vals_by_keys', keys: all }]);
      if (r.code === 'ENOENT') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
      if (r.code !== 0) throw failed(r);
      const raws = new Map(r.results[0]?.kind === 'omap' ? r.results[0].entries : []);
      const decode = (k: string): ObjectEntry | null => { const v = raws.get(k); return v === undefined ? null : decodeRecord<ObjectEntry>(v, 'object'); };
      const plans: [PendingCreate, IndexPlan<unknown>][] = [];
      let needMore = false;
      for (const c of live) {
        try {
          const p = c.plan({ key: c.key, head: decode(c.key), others: new Map(extra.get(c)!.map((k) => [k, decode(k)])), newest: null });
          if (isNeed(p)) {
            extra.get(c)!.push(...p.need);
            needMore = true;
          } else plans.push([c, p]);
        } catch (err) {
          c.reject(err);
          live = live.filter((x) => x !== c);
        }
      }
      if (needMore) continue;
      const changing = plans.filter(([, p]) => p.set.length > 0 || p.rm.length > 0);
      for (const [c, p] of plans) if (!changing.some(([x]) => x === c)) c.resolve(p);
      live = changing.map(([c]) => c);
      if (changing.length === 0) return;
      const w = await this.meta.operate(indexObject(bucketId), [...guardOps(changing.flatMap(([, p]) => p.guards), raws), ...mutationOps(changing.map(([, p]) => p))]);
      if (w.code === 0) {
        for (const [c, p] of changing) c.resolve(p);
        return;
      }
      if (w.code === 'ENOENT') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
      if (w.code !== 'ECANCELED') throw failed(w);
    }
    if (live.length > 0) throw new S3Error('SlowDown', 'too many concurrent writers of this bucket; retry');
  }

  /** One page of the index after `startAfter`, keys starting with `prefix`, in byte order. */
  async listIndex(bucketId: string, startAfter: string, prefix: string, max: number): Promise<{ entries: [string, ObjectEntry][]; more: boolean }> {
    // Heads sort after the noncurrent versions' namespace (layout.ts VERSIONS_NS).
    if (!prefix.startsWith(VERSIONS_NS) && startAfter < HEADS_AFTER) startAfter = HEADS_AFTER;
    const r = await this.meta.operate(indexObject(bucketId), [{ op: 'omap_get_vals', startAfter, prefix, max }]);
    if (r.code === 'ENOENT') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
    if (r.code !== 0) throw failed(r);
    const res = r.results[0];
    if (res?.kind !== 'omap') throw new AspenError('EIO', 'reply lacks omap values');
    return { entries: res.entries.map(([k, v]) => [k, decodeRecord<ObjectEntry>(v, 'object')]), more: res.more };
  }

  // ---- data ----

  /**
   * Writes everything `source` yields as a new segment, a stripe at a time (at most one
   * stripe buffered). On failure the stripes written so far are removed and the error rethrown.
   */
  async writeSegment(source: AsyncIterable<Uint8Array>): Promise<Segment> {
    const id = this.newId();
    let stripe = 0;
    let total = 0;
    let buf = Buffer.allocUnsafe(STRIPE_BYTES);
    let fill = 0;
    try {
      for await (const piece of source) {
        let off = 0;
        while (off < piece.length) {
          const n = Math.min(STRIPE_BYTES - fill, piece.length - off);
          buf.set(piece.subarray(off, off + n), fill);
          fill += n;
          off += n;
          if (fill === STRIPE_BYTES) {
            await this.data.writeFull(stripeObject(id, stripe++), buf);
            total += fill;
            buf = Buffer.allocUnsafe(STRIPE_BYTES);
            fill = 0;
          }
        }
      }
      if (fill > 0 || stripe === 0) {
        await this.data.writeFull(stripeObject(id, stripe++), buf.subarray(0, fill));
        total += fill;
      }
    } catch (err) {
      await this.removeSegments([{ id, sizeBytes: (stripe + 1) * STRIPE_BYTES }]);
      throw err;
    }
    const seg = { id, sizeBytes: total };
    assert(stripesOf(seg).length === stripe, 'stripe count matches size');
    return seg;
  }

  /** Streams bytes [start, end) of the concatenation of `segments`. */
  async *readRange(segments: readonly Segment[], start: number, end: number): AsyncGenerator<Uint8Array> {
    let base = 0;
    for (const seg of segments) {
      const segStart = base;
      base += seg.sizeBytes;
      if (base <= start || segStart >= end) continue;
      let pos = Math.max(start, segStart) - segStart;
      const stop = Math.min(end, base) - segStart;
      while (pos < stop) {
        const stripe = Math.floor(pos / STRIPE_BYTES);
        const inStripe = pos % STRIPE_BYTES;
        const n = Math.min(READ_BYTES, STRIPE_BYTES - inStripe, stop - pos);
        const data = await this.data.read(stripeObject(seg.id, stripe), inStripe, n);
        if (data.length !== n) throw new AspenError('EIO', `stripe ${stripeObject(seg.id, stripe)} is short: ${data.length} of ${n} bytes at ${inStripe}`);
        yield data;
        pos += n;
      }
    }
  }

  /** Removes the stripes of `segments` (missing ones are fine), REMOVES_INFLIGHT_MAX at a time. */
  async removeSegments(segments: readonly Segment[]): Promise<void> {
    const names = segments.flatMap(stripesOf);
    for (let i = 0; i < names.length; i += REMOVES_INFLIGHT_MAX) {
      await Promise.all(names.slice(i, i + REMOVES_INFLIGHT_MAX).map((n) => this.data.remove(n).catch((err: unknown) => {
        if (!(err instanceof AspenError && err.code === 'ENOENT')) throw err;
      })));
    }
  }

  // ---- multipart uploads ----

  async createUpload(bucketId: string, uploadId: string, rec: UploadRecord): Promise<void> {
    check0(await this.meta.operate(uploadObject(uploadId), [{ op: 'create', exclusive: true }]));
    check0(await this.meta.operate(uploadsObject(bucketId), [{ op: 'omap_set', entries: [[uploadId, encodeRecord(rec)]] }]));
  }

  /** @throws S3Error NoSuchUpload */
  async getUpload(bucketId: string, uploadId: string): Promise<UploadRecord> {
    const r = await this.meta.operate(uploadsObject(bucketId), [{ op: 'omap_get_vals_by_keys', keys: [uploadId] }]);
    const raw = r.code === 0 ? omapValueOf(r, uploadId) : undefined;
    if (raw === undefined) {
      if (r.code !== 0 && r.code !== 'ENOENT') throw failed(r);
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    }
    return decodeRecord<UploadRecord>(raw, 'upload');
  }

  async listUploads(bucketId: string): Promise<[string, UploadRecord][]> {
    const out: [string, UploadRecord][] = [];
    let after = '';
    for (;;) {
      const r = await this.meta.operate(uploadsObject(bucketId), [{ op: 'omap_get_vals', startAfter: after, prefix: '', max: 1000 }]);
      if (r.code === 'ENOENT') return out;
      if (r.code !== 0) throw failed(r);
      const res = r.results[0];
      if (res?.kind !== 'omap') return out;
      for (const [k, v] of res.entries) out.push([k, decodeRecord<UploadRecord>(v, 'upload')]);
      if (!res.more || res.entries.length === 0) return out;
      after = res.entries.at(-1)![0];
    }
  }

  /**
   * Records part `n` of an upload (the upload object must still exist).
   * @returns the part it replaced, whose segment is now garbage.
   * @throws S3Error NoSuchUpload
   */
  async putPart(uploadId: string, n: number, part: PartRecord): Promise<PartRecord | null> {
    const obj = uploadObject(uploadId);
    const r = await this.meta.operate(obj, [{ op: 'omap_get_vals_by_keys', keys: [partKey(n)] }]);
    if (r.code === 'ENOENT') throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
    if (r.code !== 0) throw failed(r);
    const raw = omapValueOf(r, partKey(n));
    const w = await this.meta.operate(obj, [{ op: 'assert_exists' }, { op: 'omap_set', entries: [[partKey(n), encodeRecord(part)]] }]);
    if (w.code === 'ENOENT') throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
    if (w.code !== 0) throw failed(w);
    return raw === undefined ? null : decodeRecord<PartRecord>(raw, 'part');
  }

  /** Every recorded part, by part number. @throws S3Error NoSuchUpload */
  async listParts(uploadId: string): Promise<Map<number, PartRecord>> {
    const out = new Map<number, PartRecord>();
    let after = '';
    for (;;) {
      const r = await this.meta.operate(uploadObject(uploadId), [{ op: 'omap_get_vals', startAfter: after, prefix: '', max: 1000 }]);
      if (r.code === 'ENOENT') throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
      if (r.code !== 0) throw failed(r);
      const res = r.results[0];
      if (res?.kind !== 'omap') return out;
      for (const [k, v] of res.entries) out.set(Number(k), decodeRecord<PartRecord>(v, 'part'));
      if (!res.more || res.entries.length === 0) return out;
      after = res.entries.at(-1)![0];
    }
  }

  /** Forgets an upload (its record and parts list; part data is the caller's). */
  async removeUpload(bucketId: string, uploadId: string): Promise<void> {
    await this.meta.omapRm(uploadsObject(bucketId), [uploadId]).catch(() => undefined);
    await this.meta.remove(uploadObject(uploadId)).catch(() => undefined);
  }
}

interface PendingCreate {
  key: string;
  plan: (v: KeyView) => Planned<unknown>;
  resolve: (p: IndexPlan<unknown>) => void;
  reject: (err: unknown) => void;
}

/**
 * Guards of index keys as read: each key must still hold the bytes read, and an absent key
 * must still be absent — `omap_cmp eq ""` (a missing key compares as empty, as in Ceph; index
 * values are never empty). Writers of different keys never fail each other's guards.
 */
function guardOps(guards: readonly string[], raws: ReadonlyMap<string, Uint8Array>): OsdOp[] {
  const ops: OsdOp[] = [];
  for (const g of new Set(guards)) ops.push({ op: 'omap_cmp', key: g, cmp: 'eq', value: raws.get(g) ?? ABSENT });
  assert(ops.length > 0, 'an index change is guarded');
  return ops;
}

/** What `omap_cmp` compares a missing key as. */
const ABSENT = new Uint8Array(0);

function mutationOps(plans: readonly IndexPlan<unknown>[]): OsdOp[] {
  const rm = plans.flatMap((p) => p.rm);
  const set = plans.flatMap((p) => p.set.map(([k, e]): [string, Uint8Array] => [k, encodeRecord(e)]));
  assert(new Set(set.map(([k]) => k)).size === set.length, 'one batch sets each index key once');
  return [...(rm.length > 0 ? [{ op: 'omap_rm' as const, keys: rm }] : []), ...(set.length > 0 ? [{ op: 'omap_set' as const, entries: set }] : [])];
}

function isNeed(x: unknown): x is { need: string[] } {
  return typeof x === 'object' && x !== null && 'need' in x;
}

function check0(r: OsdReply): void {
  if (r.code !== 0) throw failed(r);
}
