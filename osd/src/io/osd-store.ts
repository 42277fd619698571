/**
 * Performs a PG core's store work ({@link StoreTxn}s and {@link StoreRead}s of
 * osd/src/pg/types.ts) on the OSD's SqliteObjectStore, in the PG's collection
 * (`<pool>.<seed hex>_head`).
 *
 * Layout: each core object is stored natively — data, user xattrs under `_`, the object info
 * in VERSION_XATTR, omap header and entries (as op-exec.ts lays them out) — plus
 * {@link PG_OBJ_XATTR}: its log version, data size and, when it was last written whole, the
 * crc32c of its whole-state blob (../pg/object-state.ts; the form recovery pushes). Client
 * mutations arrive as the store transaction the primary planned (`txn`, applied as is);
 * recovery, backfill and repair push whole-state blobs (`writeFull`).
 *
 * PG meta layout (Ceph's pgmeta object: `PGLog::write_log_and_missing`): the object
 * {@link PGMETA_OID}, in a namespace clients cannot reach through the core, holds
 * - in xattr {@link PGMETA_BASE_XATTR}: pg_info, the log's tail and head, its entry and dup
 *   counts and the missing set (codec.ts `encodePgMetaBase`; small, rewritten on every setMeta);
 * - one omap key per log entry, {@link pgLogKey} (`log.<10-digit epoch>.<20-digit version>`,
 *   so keys sort by version), its value the encoded entry;
 * - one omap key per dup, {@link pgDupKey} (`dup.` + the same version key), its value the
 *   encoded dup.
 * The core hands a whole PgMeta on every setMeta; the PgStore diffs its log entries and dups
 * against what it last persisted for this PG (kept in memory from the load on, so planning
 * never reads the store) and writes only the keys of new or changed entries and removes the
 * keys of entries gone — trimmed at the tail, or rolled back at the head by a log merge. A
 * client write thus costs one small xattr and O(1) keys instead of the whole log.
 * Older builds kept the whole meta in xattr {@link PGMETA_XATTR}: {@link loadPgs} still reads
 * it, and the first setMeta after such a load writes the new layout and removes it.
 *
 * Ordering and durability: transactions are queued to the store in submission order (the
 * store group-commits them and completes them in order); `commit` resolves once the
 * transaction is on disk. Reads first wait for every transaction submitted before them (the
 * store's reads see committed transactions only, the core's reads must see submitted ones).
 * Object existence is tracked in memory from the load and the submitted transactions, so a
 * transaction can be planned without reading the store — heads and, per head, the ids of its
 * clones (self-managed snapshots: the store objects `snap = cloneId`, see
 * ../core/snapset.ts). A whole-state blob carries the head's SnapSet, whiteout flag and every
 * clone; `writeFull` replaces the head and all its clones, `remove` removes them all.
 */
import { AspenError, Decoder, Encoder, assert, assertNever, crc32c } from '@aspen/shared';
import { VERSION_XATTR, USER_XATTR_PREFIX, cloneOid, decodeObjectInfo, encodeObjectInfo } from '../core/op-exec.ts';
import {
  EC_SIZE_XATTR, EC_STASH_GENERATION, EC_STASH_XATTR, decodeEcSize, decodeStashMeta, encodeEcSize, encodeStashMeta, stashOid, type EcStashMeta,
} from '../core/ec-exec.ts';
import { SNAPSET_XATTR } from '../core/snapset.ts';
import { NO_GEN, collectionName, type ObjectId } from '../store/oid.ts';
import { Transaction } from '../store/transaction.ts';
import { decodeTransaction } from '../store/txn-codec.ts';
import type { ObjectStore } from '../store/types.ts';
import {
  decodeDupValue, decodeLogEntryValue, decodePgMeta, decodePgMetaBase, encodeDupValue, encodeLogEntryValue, encodePgMetaBase, type PgLogDup,
} from '../pg/codec.ts';
import { decodeObjectState, encodeObjectState, type CloneState, type ObjectState } from '../pg/object-state.ts';
import { evCmp, evStr, type Eversion, type LogEntry, type ObjectStat, type PgMeta, type ScrubObject, type StoreOp, type StoreRead, type StoreReadResult } from '../pg/types.ts';

/** The object holding a PG's meta. */
export const PGMETA_OID: ObjectId = { name: 'pgmeta', namespace: '\u0001aspen' };
/** Xattr on every core object: log version, data size, whole-state crc32c if known (struct v2). */
export const PG_OBJ_XATTR = 'aspen.pg';
/** Xattr of {@link PGMETA_OID} holding the whole encoded PgMeta: the layout of older builds, read on load, removed on the next setMeta. */
export const PGMETA_XATTR = 'aspen.pgmeta';
/** Xattr of {@link PGMETA_OID} holding the PgMeta's small part (codec.ts `encodePgMetaBase`); its log and dups are omap keys. */
export const PGMETA_BASE_XATTR = 'aspen.pgmeta.base';
/** Core object name of {@link PGMETA_OID} (in `present`). */
const PGMETA_NAME = '\u0000pgmeta';
const LOG_KEY_PREFIX = 'log.';
const DUP_KEY_PREFIX = 'dup.';
/** Objects listed per store call (load, removal, scrub, PGLS). */
export const STORE_LIST_PAGE_MAX = 1000;
/** Omap entries read per store call when loading an object's state. */
const OMAP_READ_PAGE_MAX = 10_000;

/** Core object name ↔ store id: `name`, or `namespace\0name` (NUL never occurs in either). */
export function oidOf(object: string): ObjectId {
  const i = object.indexOf('\u0000');
  return i < 0 ? { name: object } : { namespace: object.slice(0, i), name: object.slice(i + 1) };
}

/** The core's name of a store object. */
export function objectNameOf(oid: { name: string; namespace: string }): string {
  return oid.namespace === '' ? oid.name : `${oid.namespace}\u0000${oid.name}`;
}

interface PgObjInfo {
  readonly version: Eversion;
  /** Data bytes (v1 records held the blob's size). */
  readonly sizeBytes: number;
  /** crc32c of the whole-state blob when written whole; null after a partial write. */
  readonly crc: number | null;
}

function encodePgObjInfo(i: PgObjInfo): Uint8Array {
  return new Encoder(32).struct(2, 1, (e) => e.u32(i.version.epoch).u53(i.version.version).u53(i.sizeBytes).u32(i.crc ?? 0).bool(i.crc !== null)).finish();
}

function decodePgObjInfo(b: Uint8Array): PgObjInfo {
  const d = new Decoder(b);
  const i = d.struct(2, 'pg object info', (x, v) => {
    const version = { epoch: x.u32(), version: x.u53() };
    const sizeBytes = x.u53();
    const crc = x.u32();
    return { version, sizeBytes, crc: v < 2 || x.bool() ? crc : null };
  });
  d.done('pg object info');
  return i;
}

/** Xattr of a stash object written by the shard itself: the write's log version and the head attributes it set or removed. */
export const EC_STASH_RECORD_XATTR = 'aspen.stashrec';

/** An EC shard's rollback stash of one object (see ../core/ec-exec.ts EC_STASH_GENERATION), as the PgStore tracks it. */
export interface StashRecord {
  /** The log version of the write it undoes. */
  readonly version: Eversion;
  readonly meta: EcStashMeta;
  /** The head's old attributes (not for a whole-object stash, which carries its own). */
  readonly attrs: ReadonlyMap<string, Uint8Array>;
  /** Head attributes the write set or removed (those not in `attrs` are removed on rollback). */
  readonly written: readonly string[];
}

function encodeStashRecord(version: Eversion, written: readonly string[]): Uint8Array {
  return new Encoder(64).struct(1, 1, (e) => e.u32(version.epoch).u53(version.version).array(written, (x, n) => x.string(n))).finish();
}

function decodeStashRecord(b: Uint8Array): { version: Eversion; written: string[] } {
  const d = new Decoder(b);
  const r = d.struct(1, 'ec stash record', (x) => ({ version: { epoch: x.u32(), version: x.u53() }, written: x.array((y) => y.string()) }));
  d.done('ec stash record');
  return r;
}

/** Stashes found by the last {@link loadPgs} of a store, per pgid (taken by the PgStore constructed for it). */
const loadedStashes = new WeakMap<ObjectStore, Map<string, Map<string, StashRecord>>>();

/** What a restarted OSD finds of one PG. */
export interface LoadedPg {
  readonly pgid: string;
  readonly meta: PgMeta;
  readonly objects: Map<string, ObjectStat>;
  /** Clone ids per object that has clones (pass to the PgStore constructor). */
  readonly clones: Map<string, bigint[]>;
}

/** What a PgStore is constructed with after a restart. */
export interface PgStoreLoaded {
  /** Core object names present (heads, and `\u0000pgmeta` for the meta object). */
  readonly objects: Iterable<string>;
  /** Clone ids per object name (from {@link loadPgs}); omitted: none. */
  readonly clones?: ReadonlyMap<string, readonly bigint[]>;
}

/**
 * Clone ids found by the last {@link loadPgs} of a store, per pgid: a PgStore constructed
 * with `loaded` but without `loaded.clones` (the PG host passes only the object names) takes
 * them from here, so clones are tracked from the restart on.
 */
const loadedClones = new WeakMap<ObjectStore, Map<string, Map<string, bigint[]>>>();

/** The version part of a meta omap key: `<10-digit epoch>.<20-digit version>` (Ceph `eversion_t::get_key_name`). */
function versionKey(v: Eversion): string {
  assert(Number.isInteger(v.epoch) && v.epoch >= 0 && v.epoch <= 0xffff_ffff, 'epoch is a u32');
  assert(Number.isSafeInteger(v.version) && v.version >= 0, 'version is a u53');
  return `${String(v.epoch).padStart(10, '0')}.${String(v.version).padStart(20, '0')}`;
}

/** Omap key of {@link PGMETA_OID} holding the log entry at `v`. */
export function pgLogKey(v: Eversion): string {
  return LOG_KEY_PREFIX + versionKey(v);
}

/** Omap key of {@link PGMETA_OID} holding the dup at `v`. */
export function pgDupKey(v: Eversion): string {
  return DUP_KEY_PREFIX + versionKey(v);
}

/**
 * The log entries and dups whose keys a PG's meta object has (submitted state): the arrays of
 * the PgMeta last persisted, or of the one loaded. Both are in strictly ascending version
 * order, and the core never mutates them (its log functions return new arrays), so holding
 * them costs no copy. null: unknown (a meta object not loaded by this build's
 * {@link loadPgs}, or in the old layout) — the next setMeta clears the omap and writes all.
 */
interface PersistedMeta {
  readonly entries: readonly LogEntry[];
  readonly dups: readonly PgLogDup[];
}

/**
 * What the last {@link loadPgs} of a store found persisted per pgid, taken (once) by the
 * PgStore constructed with `loaded` for that PG, so its first setMeta diffs against the disk.
 */
const loadedMetas = new WeakMap<ObjectStore, Map<string, PersistedMeta>>();

function sameReqid(a: LogEntry['reqid'], b: LogEntry['reqid']): boolean {
  return a === b || (a !== null && b !== null && a.client === b.client && a.tid === b.tid);
}

/** Same content at the same version: every field of LogEntry but the version (keep in step with the type). */
function sameEntry(a: LogEntry, b: LogEntry): boolean {
  return a.op === b.op && a.object === b.object && evCmp(a.priorVersion, b.priorVersion) === 0 && sameReqid(a.reqid, b.reqid);
}

function sameDup(a: PgLogDup, b: PgLogDup): boolean {
  return sameReqid(a.reqid, b.reqid);
}

/**
 * Walks two version-sorted lists (what is persisted, what is wanted) and reports the items to
 * write (new, or at a persisted version but different) and the persisted ones to remove.
 * Items shared by reference (the usual case: the core keeps untouched entries) cost one
 * comparison each.
 * @throws AssertionFailure when `want` is not in strictly ascending version order.
 */
function diffByVersion<T extends { readonly version: Eversion }>(
  have: readonly T[], want: readonly T[], same: (a: T, b: T) => boolean, write: (item: T) => void, remove: (item: T) => void,
): void {
  let i = 0;
  let j = 0;
  let checked = 0;
  while (j < want.length) {
    const b = want[j]!;
    if (j > 0 && checked < j) {
      assert(evCmp(want[j - 1]!.version, b.version) < 0, `pg log/dups not in version order at ${evStr(b.version)}`);
      checked = j;
    }
    const a = have[i];
    if (a === b) {
      i++;
      j++;
      continue;
    }
    const c = a === undefined ? 1 : evCmp(a.version, b.version);
    if (c < 0) {
      remove(a!);
      i++;
      continue;
    }
    if (c > 0 || !same(a!, b)) write(b);
    if (c === 0) i++;
    j++;
  }
  for (; i < have.length; i++) remove(have[i]!);
}

function sameObject(a: { name: string; namespace: string }, b: ObjectId): boolean {
  return a.name === b.name && a.namespace === (b.namespace ?? '');
}

/** The store side of one PG on this OSD. */
export class PgStore {
  readonly coll: string;
  private collExists: boolean;
  private readonly present: Set<string>;
  /** Object name → ids of its clones in the store (submitted state); objects without clones are absent. */
  private readonly clones = new Map<string, Set<bigint>>();
  /** Resolves when every transaction submitted so far has committed (or failed). */
  private tail: Promise<void> = Promise.resolve();
  /** The meta's log entries and dups whose keys exist (submitted state); null: unknown. */
  private persisted: PersistedMeta | null = null;
  /** EC shards: the rollback stash of each object that has one (submitted state). */
  private readonly stashes = new Map<string, StashRecord>();

  /** EC shard stores keep each object's logical size in EC_SIZE_XATTR and push v3 (shard) blobs. */
  readonly ecShard: boolean;

  /** `pgid`: the PG instance key — a pgid, or `<pgid>s<shard>` for an EC shard (collection `<pgid>s<shard>_head`). */
  constructor(private readonly store: ObjectStore, readonly pgid: string, loaded?: PgStoreLoaded) {
    const m = /^(\d+)\.([0-9a-f]+)(?:s(\d+))?$/.exec(pgid);
    assert(m !== null, `bad pg key ${pgid}`);
    this.ecShard = m[3] !== undefined;
    this.coll = collectionName(Number(m[1]), parseInt(m[2]!, 16), this.ecShard ? { shard: Number(m[3]) } : {});
    this.collExists = loaded !== undefined;
    this.present = new Set(loaded?.objects ?? []);
    const clones = loaded === undefined ? undefined : (loaded.clones ?? loadedClones.get(store)?.get(pgid));
    for (const [object, ids] of clones ?? []) for (const id of ids) this.noteClone(object, id, true);
    for (const [object, st] of (loaded === undefined ? undefined : loadedStashes.get(store)?.get(pgid)) ?? []) this.stashes.set(object, st);
    if (loaded !== undefined && this.present.has(PGMETA_NAME)) {
      const metas = loadedMetas.get(store);
      this.persisted = metas?.get(pgid) ?? null;
      metas?.delete(pgid);
    }
  }

  /** Names of the objects that have clones here (submitted state): what the snap trimmer visits. */
  clonedObjects(): string[] {
    return [...this.clones.keys()];
  }

  /** Clone ids of `object` here, ascending (submitted state). */
  cloneIds(object: string): bigint[] {
    return [...(this.clones.get(object) ?? [])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private noteClone(object: string, id: bigint, present: boolean): void {
    let set = this.clones.get(object);
    if (present) {
      if (set === undefined) this.clones.set(object, (set = new Set()));
      set.add(id);
    } else if (set !== undefined) {
      set.delete(id);
      if (set.size === 0) this.clones.delete(object);
    }
  }

  /** Plans the removal of `object`'s head (if present) and every clone. */
  private removeAll(tx: Transaction, object: string): void {
    const oid = oidOf(object);
    for (const id of this.cloneIds(object)) tx.remove(this.coll, cloneOid(oid, id));
    this.clones.delete(object);
    if (this.present.delete(object)) tx.remove(this.coll, oid);
  }

  /** The OSD's object store (the primary's op execution reads it directly). */
  get objectStore(): ObjectStore {
    return this.store;
  }

  /**
   * Plans and queues the core's transaction. Resolves when it is durable.
   * @throws AspenError from the store (ENOSPC, EIO …): the caller must treat it as fatal —
   *   the core was told nothing, but it assumes transactions never fail.
   */
  commit(ops: readonly StoreOp[]): Promise<void> {
    const tx = new Transaction();
    if (!this.collExists && !ops.some((o) => o.kind === 'removePg')) {
      tx.createCollection(this.coll);
      this.collExists = true;
    }
    const persisted = this.persisted;
    try {
      for (const op of ops) this.plan(tx, op);
    } catch (err) {
      // Nothing is queued: the keys persisted are still those of before.
      this.persisted = persisted;
      throw err;
    }
    const p = tx.empty ? this.tail : this.store.queueTransaction(tx);
    this.tail = p.then(() => undefined, () => undefined);
    return p;
  }

  private plan(tx: Transaction, op: StoreOp): void {
    switch (op.kind) {
      case 'writeFull': {
        const oid = oidOf(op.object);
        this.dropStash(tx, op.object);
        this.removeAll(tx, op.object);
        const s = decodeObjectState(op.data);
        const ecSize = (n: number | undefined): Map<string, Uint8Array> =>
          new Map(this.ecShard ? [[EC_SIZE_XATTR, encodeEcSize(n ?? 0)]] : []);
        for (const c of s.clones ?? []) {
          this.writeState(tx, cloneOid(oid, c.cloneId), c, ecSize(c.ecSizeBytes));
          this.noteClone(op.object, c.cloneId, true);
        }
        // An EC shard blob's data is its chunks: the object's size is the logical one it carries.
        const sizeBytes = this.ecShard ? (s.ecSizeBytes ?? 0) : s.data.length;
        const internal = ecSize(s.ecSizeBytes);
        internal.set(PG_OBJ_XATTR, encodePgObjInfo({ version: op.version, sizeBytes, crc: crc32c(op.data) }));
        if (s.snapset !== undefined && s.snapset.length > 0) internal.set(SNAPSET_XATTR, s.snapset);
        this.writeState(tx, oid, { ...s, whiteout: s.whiteout === true }, internal);
        this.present.add(op.object);
        break;
      }
      case 'txn': {
        const planned = decodeTransaction(op.meta, op.data);
        const oid = oidOf(op.object);
        for (const o of planned.ops) {
          // The primary plans against this PG's collection and this object (its clones later) only.
          const target = 'oid' in o ? o.oid : o.op === 'clone' || o.op === 'cloneRange' ? o.src : null;
          const dstOk = (o.op !== 'clone' && o.op !== 'cloneRange') || sameObject(o.dst, oid);
          const ok = target !== null && 'coll' in o && o.coll === this.coll && sameObject(target, oid) && dstOk;
          if (!ok) throw new AspenError('EINVAL', `txn for ${op.object} in ${this.coll} has a foreign op ${o.op}`);
        }
        // Track the clones it makes and removes (a later writeFull or remove must find them).
        for (const o of planned.ops) {
          if (o.op === 'clone' || o.op === 'cloneRange') {
            if (o.dst.snap !== 'head') this.noteClone(op.object, o.dst.snap, true);
          } else if ('oid' in o && o.oid.snap !== 'head') this.noteClone(op.object, o.oid.snap, o.op !== 'remove');
        }
        tx.append(planned);
        tx.setattr(this.coll, oid, PG_OBJ_XATTR, encodePgObjInfo({ version: op.version, sizeBytes: op.sizeBytes, crc: null }));
        this.present.add(op.object);
        if (this.ecShard) this.noteStash(tx, op.object, op.version, planned);
        break;
      }
      case 'write':
        // The daemon sends whole-object bodies or planned transactions, never core partial writes.
        throw new AspenError('EINVAL', `partial write of ${op.object}: the daemon replicates whole objects only`);
      case 'remove':
        if (this.ecShard && op.version !== null && this.present.has(op.object)) {
          // A client delete on an EC shard keeps the whole old object as its stash (a clone).
          const oid = oidOf(op.object);
          const stash = stashOid(oid);
          const meta: EcStashMeta = { existed: true, whole: true, oldShardSizeBytes: 0, ranges: [], clonesCreated: [] };
          tx.touch(this.coll, stash).remove(this.coll, stash).clone(this.coll, oid, stash);
          tx.setattr(this.coll, stash, EC_STASH_XATTR, encodeStashMeta(meta)).setattr(this.coll, stash, EC_STASH_RECORD_XATTR, encodeStashRecord(op.version, []));
          this.stashes.set(op.object, { version: op.version, meta, attrs: new Map(), written: [] });
        } else this.dropStash(tx, op.object);
        this.removeAll(tx, op.object);
        break;
      case 'ecRollback':
        this.rollback(tx, op.object, op.prior);
        break;
      case 'rollForward':
        for (const [object, st] of [...this.stashes]) if (evCmp(st.version, op.to) <= 0) this.dropStash(tx, object);
        break;
      case 'setMeta':
        this.planMeta(tx, op.meta);
        break;
      case 'removePg':
        if (this.collExists) {
          for (const [o, ids] of this.clones) for (const id of ids) tx.remove(this.coll, cloneOid(oidOf(o), id));
          for (const o of this.stashes.keys()) tx.remove(this.coll, stashOid(oidOf(o)));
          this.stashes.clear();
          for (const o of this.present) tx.remove(this.coll, o === PGMETA_NAME ? PGMETA_OID : oidOf(o));
          tx.removeCollection(this.coll);
        }
        this.present.clear();
        this.clones.clear();
        this.persisted = null;
        this.collExists = false;
        break;
      default:
        assertNever(op, 'store op');
    }
  }

  /** Plans removing `object`'s rollback stash, if it has one. */
  private dropStash(tx: Transaction, object: string): void {
    if (!this.stashes.delete(object)) return;
    tx.remove(this.coll, stashOid(oidOf(object)));
  }

  /**
   * Records the stash a planned EC shard transaction made (the primary's translation writes
   * it first, see ../core/ec-exec.ts) and adds the shard's own record to it: the write's
   * version and the head attributes it touched.
   */
  private noteStash(tx: Transaction, object: string, version: Eversion, planned: Transaction): void {
    const head = oidOf(object);
    let meta: EcStashMeta | undefined;
    const attrs = new Map<string, Uint8Array>();
    const written = new Set<string>();
    for (const o of planned.ops) {
      if (!('oid' in o) || !sameObject(o.oid, head)) continue;
      const isStash = o.oid.generation === EC_STASH_GENERATION && o.oid.snap === 'head';
      const isHead = o.oid.generation === NO_GEN && o.oid.snap === 'head';
      if (o.op === 'setattrs') {
        for (const [k, v] of o.attrs) {
          if (isStash && k === EC_STASH_XATTR) meta = decodeStashMeta(v);
          else if (isStash) attrs.set(k, v);
          else if (isHead) written.add(k);
        }
      } else if (o.op === 'rmattr' && isHead) written.add(o.name);
    }
    if (meta === undefined) {
      // Planned without a stash (an older primary): nothing to undo with; drop any old one.
      this.dropStash(tx, object);
      return;
    }
    written.add(PG_OBJ_XATTR);
    tx.setattr(this.coll, stashOid(head), EC_STASH_RECORD_XATTR, encodeStashRecord(version, [...written].sort()));
    this.stashes.set(object, { version, meta, attrs, written: [...written].sort() });
  }

  /**
   * EC: undoes this shard's last write to `object` from its stash (Ceph's rollback of a
   * divergent EC entry), leaving it at log version `prior`. A no-op without a stash.
   */
  private rollback(tx: Transaction, object: string, prior: Eversion): void {
    const st = this.stashes.get(object);
    if (st === undefined) return;
    const head = oidOf(object);
    const stash = stashOid(head);
    for (const id of st.meta.clonesCreated) {
      if (!this.cloneIds(object).includes(id)) continue;
      tx.remove(this.coll, cloneOid(head, id));
      this.noteClone(object, id, false);
    }
    if (!st.meta.existed) {
      this.removeAll(tx, object);
    } else if (st.meta.whole) {
      if (this.present.has(object)) tx.remove(this.coll, head);
      tx.clone(this.coll, stash, head).rmattr(this.coll, head, EC_STASH_XATTR).rmattr(this.coll, head, EC_STASH_RECORD_XATTR);
      this.present.add(object);
    } else {
      if (!this.present.has(object)) tx.touch(this.coll, head);
      for (const [a, len] of st.meta.ranges) tx.cloneRange(this.coll, stash, head, a, len, a);
      tx.truncate(this.coll, head, st.meta.oldShardSizeBytes);
      for (const name of st.written) if (!st.attrs.has(name)) tx.rmattr(this.coll, head, name);
      if (st.attrs.size > 0) tx.setattrs(this.coll, head, st.attrs);
      this.present.add(object);
    }
    if (st.meta.existed) {
      const sizeAttr = st.meta.whole ? undefined : st.attrs.get(EC_SIZE_XATTR);
      const sizeBytes = sizeAttr === undefined ? 0 : decodeEcSize(sizeAttr);
      tx.setattr(this.coll, head, PG_OBJ_XATTR, encodePgObjInfo({ version: prior, sizeBytes, crc: null }));
    }
    tx.remove(this.coll, stash);
    this.stashes.delete(object);
  }

  /**
   * Plans persisting `meta` incrementally (see the module docstring): the base xattr, keys for
   * the log entries and dups not persisted yet (or changed), removal of the keys of those
   * gone. When what is persisted is unknown, clears the omap, writes every key and removes the
   * old layout's xattr.
   */
  private planMeta(tx: Transaction, meta: PgMeta): void {
    if (!this.present.has(PGMETA_NAME)) {
      tx.touch(this.coll, PGMETA_OID);
      this.present.add(PGMETA_NAME);
      this.persisted = null;
    }
    const prev = this.persisted;
    const log = meta.log;
    if (prev === null) tx.omapClear(this.coll, PGMETA_OID);
    const set = new Map<string, Uint8Array>();
    const rm: string[] = [];
    diffByVersion(prev?.entries ?? [], log.entries, sameEntry,
      (e) => set.set(pgLogKey(e.version), encodeLogEntryValue(e)), (e) => rm.push(pgLogKey(e.version)));
    if (prev === null || prev.dups !== log.dups) {
      diffByVersion(prev?.dups ?? [], log.dups, sameDup, (d) => set.set(pgDupKey(d.version), encodeDupValue(d)), (d) => rm.push(pgDupKey(d.version)));
    }
    if (rm.length > 0) tx.omapRmKeys(this.coll, PGMETA_OID, rm);
    if (set.size > 0) tx.omapSetKeys(this.coll, PGMETA_OID, set);
    tx.setattr(this.coll, PGMETA_OID, PGMETA_BASE_XATTR, encodePgMetaBase({
      info: meta.info, tail: log.tail, head: log.head, entryCount: log.entries.length, dupCount: log.dups.length, missing: meta.missing,
    }));
    if (prev === null) tx.rmattr(this.coll, PGMETA_OID, PGMETA_XATTR);
    this.persisted = { entries: log.entries, dups: log.dups };
  }

  /** Plans writing one object (head or clone) of a state blob onto a removed/absent id. */
  private writeState(
    tx: Transaction, oid: ObjectId, s: Pick<ObjectState, 'data' | 'xattrs' | 'omapHeader' | 'omap' | 'version' | 'mtimeMs' | 'whiteout'>,
    internal: ReadonlyMap<string, Uint8Array>,
  ): void {
    tx.touch(this.coll, oid);
    if (s.data.length > 0) tx.write(this.coll, oid, 0, s.data);
    const attrs = new Map<string, Uint8Array>(internal);
    for (const [k, v] of s.xattrs) attrs.set(USER_XATTR_PREFIX + k, v);
    attrs.set(VERSION_XATTR, encodeObjectInfo({ version: s.version, mtimeMs: s.mtimeMs, whiteout: s.whiteout === true }));
    tx.setattrs(this.coll, oid, attrs);
    if (s.omapHeader.length > 0) tx.omapSetHeader(this.coll, oid, s.omapHeader);
    if (s.omap.size > 0) tx.omapSetKeys(this.coll, oid, s.omap);
  }

  /**
   * The log version of `object` here (committed and submitted transactions applied), or null
   * when absent: what an EC sub-read is checked against.
   */
  async objectVersion(object: string): Promise<Eversion | null> {
    await this.tail;
    if (!this.present.has(object)) return null;
    try {
      return decodePgObjInfo(await this.store.getattr(this.coll, oidOf(object), PG_OBJ_XATTR)).version;
    } catch (err) {
      if (err instanceof AspenError && err.code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Bytes of store object `oid` (head or clone) of this collection after the submitted transactions. @throws AspenError ENOENT, EIO. */
  async readRange(oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    await this.tail;
    return this.store.read(this.coll, oid, offsetBytes, lengthBytes);
  }

  /** Performs a core read after every transaction submitted before it. @throws AspenError EIO on a checksum mismatch. */
  async read(r: StoreRead): Promise<StoreReadResult> {
    await this.tail;
    switch (r.kind) {
      case 'read': {
        if (!this.present.has(r.object) || !(await this.store.exists(this.coll, oidOf(r.object)))) return { kind: 'read', exists: false };
        const { blob, info } = await this.readBlob(r.object);
        return { kind: 'read', exists: true, version: info.version, data: blob };
      }
      case 'list': {
        const objects: ScrubObject[] = [];
        for (const name of await this.listNames()) {
          const info = decodePgObjInfo(await this.store.getattr(this.coll, oidOf(name), PG_OBJ_XATTR));
          const base: ScrubObject = { object: name, version: info.version, sizeBytes: info.sizeBytes, storedCrc: info.crc };
          objects.push(r.deep ? { ...base, ...(await this.deepCrc(name)) } : base);
        }
        return { kind: 'list', objects };
      }
      default:
        return assertNever(r, 'store read');
    }
  }

  /**
   * The crc32c of the object's whole state as read back now. A block failing its checksum
   * (EIO) marks the copy as a read error, so scrub reports it bad instead of stalling on the
   * error (Ceph's deep scrub records read errors the same way).
   */
  private async deepCrc(object: string): Promise<{ dataCrc: number } | { readError: true }> {
    try {
      return { dataCrc: crc32c((await this.readBlob(object)).blob) };
    } catch (err) {
      if (!(err instanceof AspenError) || err.code !== 'EIO') throw err;
      return { readError: true };
    }
  }

  /** The whole state of `object` re-encoded as its blob: the head, its SnapSet and whiteout flag, and its clones. */
  private async readBlob(object: string): Promise<{ blob: Uint8Array; info: PgObjInfo }> {
    const oid = oidOf(object);
    const head = await this.readOne(object, oid);
    const info = head.attrs.get(PG_OBJ_XATTR);
    if (info === undefined) throw new AspenError('EIO', `object ${object} in ${this.coll} lacks its pg info`);
    const clones: CloneState[] = [];
    const ecSizeOf = (attrs: Map<string, Uint8Array>): number => {
      const b = attrs.get(EC_SIZE_XATTR);
      return b === undefined ? 0 : decodeEcSize(b);
    };
    for (const id of this.cloneIds(object)) {
      const c = await this.readOne(object, cloneOid(oid, id));
      const cs: CloneState = { cloneId: id, data: c.data, xattrs: c.xattrs, omapHeader: c.omapHeader, omap: c.omap, version: c.oi.version, mtimeMs: c.oi.mtimeMs };
      if (this.ecShard) cs.ecSizeBytes = ecSizeOf(c.attrs);
      clones.push(cs);
    }
    const state: ObjectState = {
      data: head.data, xattrs: head.xattrs, omapHeader: head.omapHeader, omap: head.omap, version: head.oi.version, mtimeMs: head.oi.mtimeMs,
    };
    if (head.oi.whiteout === true) state.whiteout = true;
    const ss = head.attrs.get(SNAPSET_XATTR);
    if (ss !== undefined && ss.length > 0) state.snapset = ss;
    if (clones.length > 0) state.clones = clones;
    if (this.ecShard) state.ecSizeBytes = ecSizeOf(head.attrs);
    return { blob: encodeObjectState(state), info: decodePgObjInfo(info) };
  }

  /** One store object's data, attrs, object info and omap. */
  private async readOne(object: string, oid: ObjectId): Promise<{
    data: Uint8Array; attrs: Map<string, Uint8Array>; xattrs: Map<string, Uint8Array>; oi: ReturnType<typeof decodeObjectInfo>;
    omapHeader: Uint8Array; omap: Map<string, Uint8Array>;
  }> {
    const st = await this.store.stat(this.coll, oid);
    const data = st.sizeBytes === 0 ? new Uint8Array(0) : await this.store.read(this.coll, oid, 0, st.sizeBytes);
    const attrs = await this.store.getattrs(this.coll, oid);
    const oiBytes = attrs.get(VERSION_XATTR);
    if (oiBytes === undefined) throw new AspenError('EIO', `object ${object} (snap ${String(oid.snap ?? 'head')}) in ${this.coll} lacks its object info`);
    const oi = decodeObjectInfo(oiBytes);
    const xattrs = new Map<string, Uint8Array>();
    for (const [k, v] of attrs) if (k.startsWith(USER_XATTR_PREFIX)) xattrs.set(k.slice(USER_XATTR_PREFIX.length), v);
    const omap = new Map<string, Uint8Array>();
    let after: string | undefined;
    for (;;) {
      const page = await this.store.omapGetValues(this.coll, oid, after, OMAP_READ_PAGE_MAX);
      for (const [k, v] of page.entries) omap.set(k, v);
      if (!page.more || page.entries.length === 0) break;
      after = page.entries[page.entries.length - 1]![0];
    }
    return { data, attrs, xattrs, oi, omapHeader: await this.store.omapGetHeader(this.coll, oid), omap };
  }

  /** Clone ids per object name in the collection (committed state): the restart load. */
  async listClones(): Promise<Map<string, bigint[]>> {
    const out = new Map<string, bigint[]>();
    if (!(await this.store.collectionExists(this.coll))) return out;
    let after: ObjectId | undefined;
    for (;;) {
      const page = await this.store.listObjects(this.coll, after, STORE_LIST_PAGE_MAX);
      for (const o of page.objects) {
        if (o.snap === 'head' || o.namespace === PGMETA_OID.namespace || o.generation !== NO_GEN) continue;
        const name = objectNameOf(o);
        const ids = out.get(name) ?? [];
        ids.push(o.snap);
        out.set(name, ids);
      }
      if (page.next === null) break;
      after = page.next;
    }
    return out;
  }

  /** EC shards: the rollback stashes in the collection (committed state): the restart load. */
  async listStashes(): Promise<Map<string, StashRecord>> {
    const out = new Map<string, StashRecord>();
    if (!this.ecShard || !(await this.store.collectionExists(this.coll))) return out;
    let after: ObjectId | undefined;
    for (;;) {
      const page = await this.store.listObjects(this.coll, after, STORE_LIST_PAGE_MAX);
      for (const o of page.objects) {
        if (o.generation !== EC_STASH_GENERATION || o.snap !== 'head') continue;
        const attrs = await this.store.getattrs(this.coll, o);
        const metaB = attrs.get(EC_STASH_XATTR);
        const recB = attrs.get(EC_STASH_RECORD_XATTR);
        if (metaB === undefined || recB === undefined) continue; // a stash whose write never got its record: unusable
        const meta = decodeStashMeta(metaB);
        const rec = decodeStashRecord(recB);
        const old = new Map<string, Uint8Array>();
        if (!meta.whole) for (const [k, v] of attrs) if (k !== EC_STASH_XATTR && k !== EC_STASH_RECORD_XATTR) old.set(k, v);
        out.set(objectNameOf(o), { version: rec.version, meta, attrs: old, written: rec.written });
      }
      if (page.next === null) break;
      after = page.next;
    }
    return out;
  }

  /** Core object names in the collection (committed state), in store order. */
  async listNames(): Promise<string[]> {
    if (!(await this.store.collectionExists(this.coll))) return [];
    const out: string[] = [];
    let after: ObjectId | undefined;
    for (;;) {
      const page = await this.store.listObjects(this.coll, after, STORE_LIST_PAGE_MAX);
      for (const o of page.objects) if (o.snap === 'head' && o.generation === NO_GEN && o.namespace !== PGMETA_OID.namespace) out.push(objectNameOf(o));
      if (page.next === null) break;
      after = page.next;
    }
    return out;
  }

  /** Whether a head is a whiteout (removed, kept for its clones): not listed (Ceph pgnls skips whiteouts). */
  private async isWhiteout(oid: ObjectId): Promise<boolean> {
    const attrs = await this.store.getattrs(this.coll, oid);
    const oi = attrs.get(VERSION_XATTR);
    return oi !== undefined && decodeObjectInfo(oi).whiteout === true;
  }

  /**
   * One page of client object names for PGLS (committed state), after `cursor` (a store
   * object key as `namespace\0name`, '' for the start).
   */
  async listPage(cursor: string, max: number): Promise<{ objects: string[]; next: string | null }> {
    assert(max >= 1, 'page size is positive');
    await this.tail;
    if (!(await this.store.collectionExists(this.coll))) return { objects: [], next: null };
    const objects: string[] = [];
    let after: ObjectId | undefined = cursor === '' ? undefined : oidOf(cursor);
    let last: string | null = null;
    // Clones sort just before their head: only a head right after clones can be a whiteout.
    let cloned: string | null = null;
    while (objects.length < max) {
      const page = await this.store.listObjects(this.coll, after, max - objects.length);
      for (const o of page.objects) {
        if (o.generation !== NO_GEN) continue; // an EC rollback stash
        const name = objectNameOf(o);
        last = name;
        if (o.snap !== 'head') cloned = name;
        else if (o.namespace === '' && !(cloned === name && (await this.isWhiteout(o)))) objects.push(o.name);
      }
      if (page.next === null) return { objects, next: null };
      after = page.next;
    }
    return { objects, next: last };
  }
}

/**
 * Reads a PG's meta from its meta object in either layout (see the module docstring), and
 * which log entries and dups have keys (null for the old layout: the next setMeta converts).
 * @throws AspenError EIO when the meta is incomplete (no meta xattr, a log or dup key lost),
 *   E_DECODE on malformed bytes.
 */
async function loadMeta(store: ObjectStore, coll: string): Promise<{ meta: PgMeta; persisted: PersistedMeta | null }> {
  const attrs = await store.getattrs(coll, PGMETA_OID);
  const baseBytes = attrs.get(PGMETA_BASE_XATTR);
  if (baseBytes === undefined) {
    const old = attrs.get(PGMETA_XATTR);
    if (old === undefined) throw new AspenError('EIO', `pg meta object of ${coll} has no meta`);
    return { meta: decodePgMeta(old), persisted: null };
  }
  const base = decodePgMetaBase(baseBytes);
  const entries: LogEntry[] = [];
  const dups: PgLogDup[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.omapGetValues(coll, PGMETA_OID, after, OMAP_READ_PAGE_MAX);
    for (const [k, v] of page.entries) {
      if (k.startsWith(LOG_KEY_PREFIX)) {
        const e = decodeLogEntryValue(v);
        if (pgLogKey(e.version) !== k) throw new AspenError('E_DECODE', `pg log key ${k} of ${coll} holds entry ${evStr(e.version)}`);
        entries.push(e);
      } else if (k.startsWith(DUP_KEY_PREFIX)) {
        const d = decodeDupValue(v);
        if (pgDupKey(d.version) !== k) throw new AspenError('E_DECODE', `pg dup key ${k} of ${coll} holds dup ${evStr(d.version)}`);
        dups.push(d);
      } else {
        throw new AspenError('E_DECODE', `unknown pg meta key ${k} in ${coll}`);
      }
    }
    if (!page.more || page.entries.length === 0) break;
    after = page.entries[page.entries.length - 1]![0];
  }
  if (entries.length !== base.entryCount || dups.length !== base.dupCount) {
    throw new AspenError('EIO', `pg meta of ${coll} has ${entries.length}/${base.entryCount} log entries and ${dups.length}/${base.dupCount} dups`);
  }
  if (entries.length > 0 && evCmp(entries[0]!.version, base.tail) <= 0) throw new AspenError('E_DECODE', `pg log of ${coll} has an entry at or before its tail`);
  const meta: PgMeta = { info: base.info, log: { tail: base.tail, head: base.head, entries, dups }, missing: base.missing };
  return { meta, persisted: attrs.has(PGMETA_XATTR) ? null : { entries, dups } };
}

/**
 * Loads every PG collection of the store (on restart): its meta, object stats and clone ids
 * (also remembered for the PgStores built for these PGs, see `loadedClones`, as is which
 * meta keys exist, see `loadedMetas`).
 * Collections without a meta (a crash before the first setMeta) are skipped.
 */
export async function loadPgs(store: ObjectStore): Promise<LoadedPg[]> {
  const out: LoadedPg[] = [];
  const clonesByPg = new Map<string, Map<string, bigint[]>>();
  loadedClones.set(store, clonesByPg);
  const metas = new Map<string, PersistedMeta>();
  loadedMetas.set(store, metas);
  const stashesByPg = new Map<string, Map<string, StashRecord>>();
  loadedStashes.set(store, stashesByPg);
  for (const coll of await store.listCollections()) {
    const m = /^(\d+)\.([0-9a-f]+)(s\d+)?_head$/.exec(coll);
    if (m === null) continue;
    const pgid = `${m[1]}.${m[2]}${m[3] ?? ''}`;
    if (!(await store.exists(coll, PGMETA_OID))) continue;
    const { meta, persisted } = await loadMeta(store, coll);
    if (persisted !== null) metas.set(pgid, persisted);
    const ps = new PgStore(store, pgid, { objects: [] });
    const objects = new Map<string, ObjectStat>();
    for (const name of await ps.listNames()) {
      const info = decodePgObjInfo(await store.getattr(coll, oidOf(name), PG_OBJ_XATTR));
      objects.set(name, { version: info.version, sizeBytes: info.sizeBytes });
    }
    const clones = await ps.listClones();
    clonesByPg.set(pgid, clones);
    stashesByPg.set(pgid, await ps.listStashes());
    out.push({ pgid, meta, objects, clones });
  }
  return out;
}
