/**
 * Transactions of the local object store: a list of ops applied atomically as a whole, after
 * Ceph's `ObjectStore::Transaction` (src/os/Transaction.h: OP_MKCOLL, OP_RMCOLL, OP_TOUCH,
 * OP_WRITE, OP_ZERO, OP_TRUNCATE, OP_REMOVE, OP_SETATTRS, OP_RMATTR, OP_CLONE, OP_CLONERANGE2,
 * OP_COLL_MOVE_RENAME, OP_OMAP_SETKEYS, OP_OMAP_RMKEYS, OP_OMAP_RMKEYRANGE, OP_OMAP_CLEAR,
 * OP_OMAP_SETHEADER).
 *
 * The builder validates every argument as it is added (bad names, negative or fractional
 * offsets, ranges beyond {@link OBJECT_SIZE_MAX_BYTES}) and throws `AspenError('EINVAL')`, so a
 * malformed op never reaches the store. Errors that depend on the store's state (a missing
 * collection or object) are found when the transaction runs; then none of it is applied.
 *
 * Ownership: data buffers are referenced, not copied. The caller must not modify them until
 * the transaction's promise settles.
 */
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { checkCollectionName, normalizeOid, type FullObjectId, type ObjectId } from './oid.ts';

/** Largest object size and end offset of any data op, bytes (Ceph osd_max_object_size default 128 MiB). */
export const OBJECT_SIZE_MAX_BYTES = 128 * 1024 * 1024;
/** Longest xattr name, bytes. */
export const XATTR_NAME_MAX_BYTES = 255;
/** Largest single xattr or omap value or header, bytes. */
export const VALUE_MAX_BYTES = 16 * 1024 * 1024;

/** One op; every object id is already normalized and every argument validated. */
export type TxOp =
  | { readonly op: 'createCollection'; readonly coll: string }
  | { readonly op: 'removeCollection'; readonly coll: string }
  | { readonly op: 'touch'; readonly coll: string; readonly oid: FullObjectId }
  | { readonly op: 'write'; readonly coll: string; readonly oid: FullObjectId; readonly offsetBytes: number; readonly data: Uint8Array }
  | { readonly op: 'zero'; readonly coll: string; readonly oid: FullObjectId; readonly offsetBytes: number; readonly lengthBytes: number }
  | { readonly op: 'truncate'; readonly coll: string; readonly oid: FullObjectId; readonly sizeBytes: number }
  | { readonly op: 'remove'; readonly coll: string; readonly oid: FullObjectId }
  | { readonly op: 'setattrs'; readonly coll: string; readonly oid: FullObjectId; readonly attrs: ReadonlyMap<string, Uint8Array> }
  | { readonly op: 'rmattr'; readonly coll: string; readonly oid: FullObjectId; readonly name: string }
  | { readonly op: 'omapSetKeys'; readonly coll: string; readonly oid: FullObjectId; readonly entries: ReadonlyMap<string, Uint8Array> }
  | { readonly op: 'omapRmKeys'; readonly coll: string; readonly oid: FullObjectId; readonly keys: readonly string[] }
  | { readonly op: 'omapRmKeyRange'; readonly coll: string; readonly oid: FullObjectId; readonly first: string; readonly last: string }
  | { readonly op: 'omapClear'; readonly coll: string; readonly oid: FullObjectId }
  | { readonly op: 'omapSetHeader'; readonly coll: string; readonly oid: FullObjectId; readonly header: Uint8Array }
  | { readonly op: 'clone'; readonly coll: string; readonly src: FullObjectId; readonly dst: FullObjectId }
  | {
      readonly op: 'cloneRange';
      readonly coll: string;
      readonly src: FullObjectId;
      readonly dst: FullObjectId;
      readonly srcOffsetBytes: number;
      readonly lengthBytes: number;
      readonly dstOffsetBytes: number;
    }
  | { readonly op: 'collectionMoveRename'; readonly srcColl: string; readonly src: FullObjectId; readonly dstColl: string; readonly dst: FullObjectId };

/** The op names, for exhaustive tables. */
export type TxOpName = TxOp['op'];

/** Ops that never need new space: allowed while the store is full (Ceph lets deletes through a full OSD). */
export const SPACE_FREEING_OPS: ReadonlySet<TxOpName> = new Set<TxOpName>(['removeCollection', 'remove', 'rmattr', 'omapRmKeys', 'omapRmKeyRange', 'omapClear', 'truncate']);

function checkRange(offsetBytes: number, lengthBytes: number, what: string): void {
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) throw new AspenError('EINVAL', `${what}: offset must be a non-negative integer, got ${offsetBytes}`);
  if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) throw new AspenError('EINVAL', `${what}: length must be a non-negative integer, got ${lengthBytes}`);
  if (offsetBytes + lengthBytes > OBJECT_SIZE_MAX_BYTES) {
    throw new AspenError('EINVAL', `${what}: range ${offsetBytes}+${lengthBytes} ends beyond the object size limit ${OBJECT_SIZE_MAX_BYTES}`);
  }
}

function checkBytes(v: Uint8Array, what: string, maxBytes: number): void {
  if (!(v instanceof Uint8Array)) throw new AspenError('EINVAL', `${what} must be a Uint8Array`);
  if (v.length > maxBytes) throw new AspenError('EINVAL', `${what} is ${v.length} bytes, limit ${maxBytes}`);
}

function checkAttrName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0') || Buffer.byteLength(name) > XATTR_NAME_MAX_BYTES) {
    throw new AspenError('EINVAL', `invalid xattr name ${JSON.stringify(name)} (1..${XATTR_NAME_MAX_BYTES} bytes, no NUL)`);
  }
}

function checkOmapKey(key: string): void {
  if (typeof key !== 'string' || Buffer.byteLength(key) > 64 * 1024) throw new AspenError('EINVAL', 'omap key must be a string of at most 64 KiB');
}

function toMap(entries: ReadonlyMap<string, Uint8Array> | Record<string, Uint8Array>): Map<string, Uint8Array> {
  return entries instanceof Map ? new Map(entries) : new Map(Object.entries(entries));
}

/**
 * Builds a transaction. Each method validates and appends one op and returns `this`.
 * @throws AspenError EINVAL from any method on a malformed argument (the op is not appended).
 */
export class Transaction {
  private readonly list: TxOp[] = [];
  private dataBytes = 0;

  /** The ops in order. */
  get ops(): readonly TxOp[] {
    return this.list;
  }
  /** Payload bytes (data, values, keys) carried by the ops; used for group-commit and throttle limits. */
  get payloadBytes(): number {
    return this.dataBytes;
  }
  get empty(): boolean {
    return this.list.length === 0;
  }

  private push(op: TxOp, bytes = 0): this {
    this.list.push(op);
    this.dataBytes += bytes;
    assert(this.dataBytes >= 0, 'payload byte count');
    return this;
  }

  /**
   * Appends one op taken from another transaction in another collection (an EC shard's copy
   * of a structural op): only the collection name is checked again.
   * @throws AspenError EINVAL on a bad collection name.
   */
  appendInColl(op: Exclude<TxOp, { op: 'collectionMoveRename' }>, coll: string): this {
    const c = checkCollectionName(coll);
    let bytes = 0;
    if (op.op === 'write') bytes = op.data.length;
    else if (op.op === 'setattrs' || op.op === 'omapSetKeys') {
      const m = op.op === 'setattrs' ? op.attrs : op.entries;
      for (const [k, v] of m) bytes += Buffer.byteLength(k) + v.length;
    } else if (op.op === 'omapSetHeader') bytes = op.header.length;
    else if (op.op === 'cloneRange') bytes = op.lengthBytes;
    return this.push({ ...op, coll: c } as TxOp, bytes);
  }

  /** Appends every op of `other` (already validated by its builder), in order. */
  append(other: Transaction): this {
    for (const op of other.ops) this.list.push(op);
    this.dataBytes += other.payloadBytes;
    return this;
  }

  /** Creates a collection. Fails with EEXIST at run time if it exists. */
  createCollection(coll: string): this {
    return this.push({ op: 'createCollection', coll: checkCollectionName(coll) });
  }
  /** Removes an empty collection. Fails with ENOENT if missing, ENOTEMPTY if it holds objects. */
  removeCollection(coll: string): this {
    return this.push({ op: 'removeCollection', coll: checkCollectionName(coll) });
  }
  /** Creates the object (size 0) if it does not exist; otherwise nothing. */
  touch(coll: string, oid: ObjectId): this {
    return this.push({ op: 'touch', coll: checkCollectionName(coll), oid: normalizeOid(oid) });
  }
  /** Writes `data` at `offsetBytes`, creating the object and extending its size as needed. */
  write(coll: string, oid: ObjectId, offsetBytes: number, data: Uint8Array): this {
    checkBytes(data, 'write data', OBJECT_SIZE_MAX_BYTES);
    checkRange(offsetBytes, data.length, 'write');
    return this.push({ op: 'write', coll: checkCollectionName(coll), oid: normalizeOid(oid), offsetBytes, data }, data.length);
  }
  /** Zeroes a range (whole blocks become holes), creating the object and extending its size as BlueStore's _do_zero does. */
  zero(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): this {
    checkRange(offsetBytes, lengthBytes, 'zero');
    return this.push({ op: 'zero', coll: checkCollectionName(coll), oid: normalizeOid(oid), offsetBytes, lengthBytes });
  }
  /** Sets the size: shrinking drops data, growing adds a hole. ENOENT if the object is missing. */
  truncate(coll: string, oid: ObjectId, sizeBytes: number): this {
    checkRange(sizeBytes, 0, 'truncate');
    return this.push({ op: 'truncate', coll: checkCollectionName(coll), oid: normalizeOid(oid), sizeBytes });
  }
  /** Removes the object with its xattrs and omap. ENOENT if missing. */
  remove(coll: string, oid: ObjectId): this {
    return this.push({ op: 'remove', coll: checkCollectionName(coll), oid: normalizeOid(oid) });
  }
  /** Sets (replaces) xattrs. ENOENT if the object is missing. */
  setattrs(coll: string, oid: ObjectId, attrs: ReadonlyMap<string, Uint8Array> | Record<string, Uint8Array>): this {
    const m = toMap(attrs);
    let bytes = 0;
    for (const [k, v] of m) {
      checkAttrName(k);
      checkBytes(v, `xattr ${k}`, VALUE_MAX_BYTES);
      bytes += k.length + v.length;
    }
    return this.push({ op: 'setattrs', coll: checkCollectionName(coll), oid: normalizeOid(oid), attrs: m }, bytes);
  }
  /** Sets one xattr (a one-entry {@link setattrs}). */
  setattr(coll: string, oid: ObjectId, name: string, value: Uint8Array): this {
    return this.setattrs(coll, oid, new Map([[name, value]]));
  }
  /** Removes one xattr; a missing xattr is not an error, a missing object is ENOENT. */
  rmattr(coll: string, oid: ObjectId, name: string): this {
    checkAttrName(name);
    return this.push({ op: 'rmattr', coll: checkCollectionName(coll), oid: normalizeOid(oid), name });
  }
  /** Sets omap keys. ENOENT if the object is missing. */
  omapSetKeys(coll: string, oid: ObjectId, entries: ReadonlyMap<string, Uint8Array> | Record<string, Uint8Array>): this {
    const m = toMap(entries);
    let bytes = 0;
    for (const [k, v] of m) {
      checkOmapKey(k);
      checkBytes(v, `omap value of ${k}`, VALUE_MAX_BYTES);
      bytes += k.length + v.length;
    }
    return this.push({ op: 'omapSetKeys', coll: checkCollectionName(coll), oid: normalizeOid(oid), entries: m }, bytes);
  }
  /** Removes omap keys (missing keys are ignored). ENOENT if the object is missing. */
  omapRmKeys(coll: string, oid: ObjectId, keys: readonly string[]): this {
    for (const k of keys) checkOmapKey(k);
    return this.push({ op: 'omapRmKeys', coll: checkCollectionName(coll), oid: normalizeOid(oid), keys: [...keys] });
  }
  /** Removes omap keys in [first, last) (byte order of UTF-8), as Ceph's omap_rmkeyrange. */
  omapRmKeyRange(coll: string, oid: ObjectId, first: string, last: string): this {
    checkOmapKey(first);
    checkOmapKey(last);
    return this.push({ op: 'omapRmKeyRange', coll: checkCollectionName(coll), oid: normalizeOid(oid), first, last });
  }
  /** Removes every omap key and the omap header. ENOENT if the object is missing. */
  omapClear(coll: string, oid: ObjectId): this {
    return this.push({ op: 'omapClear', coll: checkCollectionName(coll), oid: normalizeOid(oid) });
  }
  /** Sets the omap header. ENOENT if the object is missing. */
  omapSetHeader(coll: string, oid: ObjectId, header: Uint8Array): this {
    checkBytes(header, 'omap header', VALUE_MAX_BYTES);
    return this.push({ op: 'omapSetHeader', coll: checkCollectionName(coll), oid: normalizeOid(oid), header }, header.length);
  }
  /**
   * Makes `dst` a copy of `src` (data, xattrs, omap header and keys), replacing what `dst` held,
   * as BlueStore's _clone. Data is shared until either side is written (copy-on-write).
   * ENOENT if `src` is missing; EINVAL if `src` and `dst` are the same object.
   */
  clone(coll: string, src: ObjectId, dst: ObjectId): this {
    const s = normalizeOid(src);
    const d = normalizeOid(dst);
    if (sameFull(s, d)) throw new AspenError('EINVAL', 'clone source and destination are the same object');
    return this.push({ op: 'clone', coll: checkCollectionName(coll), src: s, dst: d });
  }
  /** Copies `lengthBytes` of `src` data from `srcOffsetBytes` into `dst` at `dstOffsetBytes` (bytes beyond src's size read as zeros), creating/extending `dst`. */
  cloneRange(coll: string, src: ObjectId, dst: ObjectId, srcOffsetBytes: number, lengthBytes: number, dstOffsetBytes: number): this {
    checkRange(srcOffsetBytes, lengthBytes, 'cloneRange source');
    checkRange(dstOffsetBytes, lengthBytes, 'cloneRange destination');
    const s = normalizeOid(src);
    const d = normalizeOid(dst);
    if (sameFull(s, d)) throw new AspenError('EINVAL', 'cloneRange source and destination are the same object');
    return this.push({ op: 'cloneRange', coll: checkCollectionName(coll), src: s, dst: d, srcOffsetBytes, lengthBytes, dstOffsetBytes }, lengthBytes);
  }
  /**
   * Moves an object (data, xattrs, omap) to another collection and/or name, as Ceph's
   * collection_move_rename (recovery writes a temp object, then moves it into place).
   * ENOENT if `src` is missing, EEXIST if `dst` exists.
   */
  collectionMoveRename(srcColl: string, src: ObjectId, dstColl: string, dst: ObjectId): this {
    const s = normalizeOid(src);
    const d = normalizeOid(dst);
    if (srcColl === dstColl && sameFull(s, d)) throw new AspenError('EINVAL', 'collectionMoveRename source and destination are the same object');
    return this.push({ op: 'collectionMoveRename', srcColl: checkCollectionName(srcColl), src: s, dstColl: checkCollectionName(dstColl), dst: d });
  }
}

function sameFull(a: FullObjectId, b: FullObjectId): boolean {
  return a.name === b.name && a.namespace === b.namespace && a.snap === b.snap && a.generation === b.generation && a.shard === b.shard;
}

/** True when every op of `tx` only frees space (see {@link SPACE_FREEING_OPS}). */
export function onlyFreesSpace(tx: Transaction): boolean {
  return tx.ops.every((o) => SPACE_FREEING_OPS.has(o.op));
}
