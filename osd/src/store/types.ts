/**
 * The OSD's local object store interface, modelled on Ceph's `ObjectStore`
 * (src/os/ObjectStore.h): collections (one per PG shard) of objects with data, xattrs and an
 * omap; compound transactions applied atomically; reads that never return unverified bytes.
 * The implementation is `SqliteObjectStore` (osd/src/io/store-object-store.ts); its layout and
 * crash-consistency argument are in docs/adr/0004-osd-object-store.md.
 */
import type { Extent } from './blocks.ts';
import type { FullObjectId, ObjectId } from './oid.ts';
import type { Transaction } from './transaction.ts';

/** Filesystem space of the store's device, bytes (from statfs(2)). */
export interface StoreStatfs {
  readonly totalBytes: number;
  readonly usedBytes: number;
  readonly availBytes: number;
}

/** {@link StoreStatfs} plus the full state the OSD reports to the monitors. */
export interface StoreUsage extends StoreStatfs {
  /** True when usedBytes/totalBytes >= fullRatio or the device returned ENOSPC since the last freeing commit. */
  readonly full: boolean;
  readonly fullRatio: number;
}

/** What `stat` returns (Ceph's struct stat subset: st_size, allocated bytes, st_blksize). */
export interface ObjectStat {
  readonly sizeBytes: number;
  /** Bytes in allocated (non-hole) blocks. */
  readonly allocatedBytes: number;
  readonly blockSizeBytes: number;
}

/** One page of {@link ObjectStore.listObjects}. */
export interface ObjectListPage {
  readonly objects: readonly FullObjectId[];
  /** Pass as `startAfter` for the next page; null when this page is the last. */
  readonly next: FullObjectId | null;
}

/** One page of omap keys; `more` is true when keys after the last one exist. */
export interface OmapKeysPage {
  readonly keys: readonly string[];
  readonly more: boolean;
}

/** One page of omap entries in key order. */
export interface OmapValuesPage {
  readonly entries: ReadonlyArray<readonly [string, Uint8Array]>;
  readonly more: boolean;
}

/** Result of a sparse read: allocated extents in the range and their bytes, concatenated (Ceph CEPH_OSD_OP_SPARSE_READ). */
export interface SparseReadResult {
  readonly extents: readonly Extent[];
  readonly data: Uint8Array;
}

/** A deep-scrub finding of {@link ObjectStore.verify}. */
export interface VerifyError {
  readonly offsetBytes: number;
  readonly reason: 'checksum' | 'short-read' | 'io';
  readonly detail: string;
}

/** Result of {@link ObjectStore.verify}. */
export interface VerifyResult {
  readonly ok: boolean;
  readonly sizeBytes: number;
  readonly blocksChecked: number;
  readonly errors: readonly VerifyError[];
}

/**
 * A local object store. All methods except `mkfs`/`mount` require a mounted store (else
 * AspenError EINVAL). Reads see every transaction whose promise has resolved, and nothing of a
 * transaction that has not committed.
 */
export interface ObjectStore {
  /**
   * Creates an empty store in its directory.
   * Durability: the store's database and directories are fsynced when the promise resolves.
   * @throws AspenError EEXIST if a store already exists there; EIO/ENOSPC on I/O failure.
   */
  mkfs(): Promise<void>;
  /**
   * Opens the store: verifies its format, replays the deferred-write journal into the data
   * files and removes orphaned data files left by a crash.
   * @throws AspenError ENOENT (no store), EBUSY (another process has it mounted),
   *   E_CORRUPT (a record fails its checksum), E_UNSUPPORTED (newer format), EIO.
   */
  mount(): Promise<void>;
  /** Waits for queued transactions, flushes the deferred journal into the data files and closes. */
  umount(): Promise<void>;
  /** Space of the filesystem holding the store. */
  statfs(): StoreStatfs;
  /** statfs plus the full state. */
  usage(): StoreUsage;
  /** See {@link StoreUsage.full}. While full, transactions that need space fail with ENOSPC; reads and deletes work. */
  isFull(): boolean;
  /**
   * Applies `tx` atomically, after every transaction queued before it.
   * Durability: when the promise resolves, the whole transaction is on disk (data files and the
   * metadata database fsynced) and survives kill -9 and power loss. When it rejects, nothing of
   * it was applied.
   * @throws AspenError ENOENT (missing collection/object an op needs), EEXIST, ENOTEMPTY,
   *   EINVAL, ENOSPC (device or store full; the store stays mounted and consistent),
   *   EBUSY (too many bytes queued), EIO.
   */
  queueTransaction(tx: Transaction): Promise<void>;
  /**
   * Reads up to `lengthBytes` from `offsetBytes` (clipped at the object's size; holes read as
   * zeros). Every block read is checked against its crc32c.
   * @throws AspenError ENOENT (no such object/collection), EIO on a checksum mismatch or a
   *   short data file (details: {coll, oid, offsetBytes}) — never unverified bytes.
   */
  read(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<Uint8Array>;
  /** Allocated extents and their verified bytes within the range. Errors as {@link read}. */
  sparseRead(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<SparseReadResult>;
  /** Allocated extents within the range (no data is read). @throws AspenError ENOENT. */
  fiemap(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<Extent[]>;
  /** @throws AspenError ENOENT. */
  stat(coll: string, oid: ObjectId): Promise<ObjectStat>;
  exists(coll: string, oid: ObjectId): Promise<boolean>;
  /** @throws AspenError ENOENT if the object or the xattr is missing (Ceph returns ENODATA). */
  getattr(coll: string, oid: ObjectId, name: string): Promise<Uint8Array>;
  /** All xattrs. @throws AspenError ENOENT. */
  getattrs(coll: string, oid: ObjectId): Promise<Map<string, Uint8Array>>;
  /** The omap header (empty when never set). @throws AspenError ENOENT. */
  omapGetHeader(coll: string, oid: ObjectId): Promise<Uint8Array>;
  /** Keys after `startAfter` (from the first when undefined), at most `maxKeys`, in byte order. @throws AspenError ENOENT. */
  omapGetKeys(coll: string, oid: ObjectId, startAfter: string | undefined, maxKeys: number): Promise<OmapKeysPage>;
  /** Entries after `startAfter`, at most `maxEntries`, optionally only keys starting with `prefix`. @throws AspenError ENOENT. */
  omapGetValues(coll: string, oid: ObjectId, startAfter: string | undefined, maxEntries: number, prefix?: string): Promise<OmapValuesPage>;
  /** Values of the given keys that exist. @throws AspenError ENOENT. */
  omapGetValuesByKeys(coll: string, oid: ObjectId, keys: readonly string[]): Promise<Map<string, Uint8Array>>;
  /** Objects after `startAfter` in the stable key order (see oid.ts), at most `maxObjects`. @throws AspenError ENOENT (collection). */
  listObjects(coll: string, startAfter: ObjectId | undefined, maxObjects: number): Promise<ObjectListPage>;
  /** Collection names in byte order. */
  listCollections(): Promise<string[]>;
  collectionExists(coll: string): Promise<boolean>;
  /**
   * Deep-scrub check: re-reads every allocated block of the object and checks its crc32c.
   * Reports findings instead of throwing on them.
   * @throws AspenError ENOENT.
   */
  verify(coll: string, oid: ObjectId): Promise<VerifyResult>;
}
