/**
 * The image header (`rbd_header.<id>`) and directory (`rbd_directory`) records and their
 * codecs, as Ceph's cls_rbd keeps them (src/cls/rbd/cls_rbd.cc): omap keys `size`, `order`,
 * `object_prefix`, `features`, `snap_seq`, `create_timestamp`, `parent` (clones),
 * `data_pool_id` (images with a data pool), one `snapshot_<id as 16 hex>` per snapshot; the exclusive lock in xattr `lock.rbd_lock` (cls_lock's attribute name).
 * Every value is a versioned struct (CONVENTIONS.md item 4). Pure code.
 */
import { AspenError, Decoder, Encoder, assert, assertNever } from '@aspen/shared';

/** Omap keys of the header object (Ceph cls_rbd names). */
export const HEADER_KEYS = {
  size: 'size',
  order: 'order',
  objectPrefix: 'object_prefix',
  features: 'features',
  snapSeq: 'snap_seq',
  createTimestamp: 'create_timestamp',
  /** Present only on a clone: its parent spec and overlap (Ceph cls_rbd `parent`). */
  parent: 'parent',
  /** Present only on an image with a separate data pool: that pool's id (Ceph cls_rbd `data_pool_id`). */
  dataPoolId: 'data_pool_id',
} as const;
/** Prefix of snapshot records in the header omap. */
export const SNAPSHOT_KEY_PREFIX = 'snapshot_';
/** The header xattr holding the exclusive lock (Ceph cls_lock `lock.rbd_lock`). */
export const LOCK_XATTR = 'lock.rbd_lock';

/** Feature bits (Ceph RBD_FEATURE_*): layering (set on clones), exclusive-lock, data-pool (set with a data pool). */
export const FEATURE_LAYERING = 1n;
export const FEATURE_EXCLUSIVE_LOCK = 1n << 2n;
export const FEATURE_DATA_POOL = 1n << 7n;
/** Names of feature bits, as `rbd info` prints them. */
export const FEATURE_NAMES: ReadonlyArray<[bigint, string]> = [[1n, 'layering'], [FEATURE_EXCLUSIVE_LOCK, 'exclusive-lock'], [FEATURE_DATA_POOL, 'data-pool']];

/** One snapshot of an image (Ceph cls_rbd_snap). */
export interface SnapInfo {
  /** The self-managed snap id, allocated in the image's data pool (its own pool without one). */
  readonly id: bigint;
  readonly name: string;
  /** The image size when the snapshot was taken, bytes. */
  readonly sizeBytes: number;
  /** Protected snapshots cannot be removed (Ceph RBD_PROTECTION_STATUS_PROTECTED). */
  readonly protected: boolean;
  /** Creation time, ms since the epoch (0 when unknown). */
  readonly timestampMs: number;
  /**
   * A clone's parent overlap when the snapshot was taken (Ceph cls_rbd snapshot
   * `parent_overlap`): what reads at this snapshot see of the parent, even after the head was
   * flattened. Undefined: not recorded (the image was not a clone then, or an older record —
   * those read with the head's overlap).
   */
  readonly parentOverlapBytes?: number;
}

/** Whether reads at snapshot `s` of a clone with parent overlap `headOverlapBytes` still reach the parent. */
export function snapReadsParent(s: SnapInfo): boolean {
  return s.parentOverlapBytes === undefined || s.parentOverlapBytes > 0;
}

/**
 * A clone's parent (Ceph cls_rbd_parent: ParentImageSpec + overlap): the image and protected
 * snapshot it reads through to, and how many bytes of it are still visible to the clone.
 */
export interface ParentSpec {
  readonly poolId: number;
  /** The parent pool's name when the clone was made (for display; the id is authoritative). */
  readonly poolName: string;
  readonly imageId: string;
  readonly snapId: bigint;
  /** Bytes of the parent (at the snapshot) the clone reads through to: min(parent snap size, clone size). */
  readonly overlapBytes: number;
}

/** Encodes a parent record. */
export function encodeParent(p: ParentSpec): Uint8Array {
  assert(p.overlapBytes >= 0 && p.snapId > 0n, 'valid parent spec');
  return new Encoder(64).struct(V1, 1, (e) => e.u32(p.poolId).string(p.poolName).string(p.imageId).u64(p.snapId).u53(p.overlapBytes)).finish();
}
/** Decodes a parent record. @throws AspenError E_DECODE */
export function decodeParent(b: Uint8Array): ParentSpec {
  const d = new Decoder(b);
  const p = d.struct(V1, 'rbd parent', () => ({ poolId: d.u32(), poolName: d.string(), imageId: d.string(), snapId: d.u64(), overlapBytes: d.u53() }));
  d.done('rbd parent');
  return p;
}

/** The holder of an image's exclusive lock (Ceph cls_lock locker: entity + cookie). */
export interface LockOwner {
  /** The RADOS client id of the holder (RadosClient.clientId). */
  readonly owner: string;
  /** The holder's cookie (`auto <watch cookie>`, as librbd's). */
  readonly cookie: string;
}

/** An image header as read, with the header object's version (for assert_version guards). */
export interface ImageHeader {
  readonly id: string;
  readonly sizeBytes: number;
  /** log2 of the object size. */
  readonly order: number;
  /** Data object prefix (`rbd_data.<id>`). */
  readonly objectPrefix: string;
  readonly features: bigint;
  /** The newest snap id ever recorded for this image (Ceph snap_seq). */
  readonly snapSeq: bigint;
  /** Snapshots, newest (highest id) first. */
  readonly snaps: readonly SnapInfo[];
  readonly createTimestampMs: number;
  readonly lock: LockOwner | null;
  /** The parent of a clone (null for an image that is not a clone, or was flattened). */
  readonly parent: ParentSpec | null;
  /**
   * The pool holding the data objects (Ceph `data_pool_id`; `rbd create --data-pool`), or null
   * when they live in the image's own pool. Snapshot ids are then allocated in this pool, so
   * the snap context of data writes is valid where the data lives.
   */
  readonly dataPoolId: number | null;
  /** The header object's version when read. */
  readonly version: bigint;
}

const V1 = 1;

/** Encodes a u64 header value. */
export function encodeU64(v: bigint): Uint8Array {
  return new Encoder(16).struct(V1, 1, (e) => e.u64(v)).finish();
}
/** Decodes a u64 header value. @throws AspenError E_DECODE */
export function decodeU64(b: Uint8Array, what: string): bigint {
  const d = new Decoder(b);
  const v = d.struct(V1, what, () => d.u64());
  d.done(what);
  return v;
}
/** Encodes a string value (header `object_prefix`, directory entries). */
export function encodeString(s: string): Uint8Array {
  return new Encoder(32 + s.length * 3).struct(V1, 1, (e) => e.string(s)).finish();
}
/** Decodes a string value. @throws AspenError E_DECODE */
export function decodeString(b: Uint8Array, what: string): string {
  const d = new Decoder(b);
  const v = d.struct(V1, what, () => d.string());
  d.done(what);
  return v;
}

/** The omap key of snapshot `id`: `snapshot_<16 hex digits>` (sorts by id). */
export function snapshotKey(id: bigint): string {
  assert(id > 0n, 'snap ids are positive');
  return `${SNAPSHOT_KEY_PREFIX}${id.toString(16).padStart(16, '0')}`;
}

/** Encodes a snapshot record. */
export function encodeSnap(s: SnapInfo): Uint8Array {
  // v2 appends the parent overlap; a record without one stays v1.
  const v2 = s.parentOverlapBytes !== undefined;
  return new Encoder(64).struct(v2 ? 2 : V1, 1, (e) => {
    e.u64(s.id).string(s.name).u53(s.sizeBytes).bool(s.protected).u53(s.timestampMs);
    if (v2) e.u53(s.parentOverlapBytes!);
  }).finish();
}
/** Decodes a snapshot record. @throws AspenError E_DECODE */
export function decodeSnap(b: Uint8Array): SnapInfo {
  const d = new Decoder(b);
  const s = d.struct(2, 'rbd snapshot', (_, v): SnapInfo => {
    const base = { id: d.u64(), name: d.string(), sizeBytes: d.u53(), protected: d.bool(), timestampMs: d.u53() };
    return v >= 2 ? { ...base, parentOverlapBytes: d.u53() } : base;
  });
  d.done('rbd snapshot');
  return s;
}

/** Encodes a lock record. */
export function encodeLock(l: LockOwner): Uint8Array {
  return new Encoder(64).struct(V1, 1, (e) => e.string(l.owner).string(l.cookie)).finish();
}
/** Decodes a lock record. @throws AspenError E_DECODE */
export function decodeLock(b: Uint8Array): LockOwner {
  const d = new Decoder(b);
  const l = d.struct(V1, 'rbd lock', () => ({ owner: d.string(), cookie: d.string() }));
  d.done('rbd lock');
  return l;
}

/**
 * The omap entries of a new image's header; `dataPoolId` (a separate data pool) adds
 * `data_pool_id`, and the caller sets {@link FEATURE_DATA_POOL} in `features`.
 */
export function newHeaderEntries(o: { id: string; sizeBytes: number; order: number; objectPrefix: string; features: bigint; createTimestampMs: number; dataPoolId?: number }): [string, Uint8Array][] {
  assert(o.sizeBytes >= 0 && o.order >= 12 && o.order <= 25, 'validated size and order');
  assert((o.dataPoolId !== undefined) === ((o.features & FEATURE_DATA_POOL) !== 0n), 'the data-pool feature goes with a data pool id');
  assert(o.dataPoolId === undefined || (Number.isSafeInteger(o.dataPoolId) && o.dataPoolId >= 0), 'a valid data pool id');
  return [
    ...(o.dataPoolId === undefined ? [] : [[HEADER_KEYS.dataPoolId, encodeU64(BigInt(o.dataPoolId))] as [string, Uint8Array]]),
    [HEADER_KEYS.size, encodeU64(BigInt(o.sizeBytes))],
    [HEADER_KEYS.order, encodeU64(BigInt(o.order))],
    [HEADER_KEYS.objectPrefix, encodeString(o.objectPrefix)],
    [HEADER_KEYS.features, encodeU64(o.features)],
    [HEADER_KEYS.snapSeq, encodeU64(0n)],
    [HEADER_KEYS.createTimestamp, encodeU64(BigInt(o.createTimestampMs))],
  ];
}

/**
 * Builds the header from the header object's omap entries, lock xattr (absent or empty: not
 * locked) and version.
 * @throws AspenError E_CORRUPT when a required key is missing or a value does not decode.
 */
export function decodeHeader(id: string, omap: ReadonlyArray<readonly [string, Uint8Array]>, lockValue: Uint8Array | undefined, version: bigint): ImageHeader {
  const m = new Map(omap);
  const need = (k: string): Uint8Array => {
    const v = m.get(k);
    if (v === undefined) throw new AspenError('E_CORRUPT', `header of image ${id} lacks '${k}'`);
    return v;
  };
  try {
    const sizeBytes = Number(decodeU64(need(HEADER_KEYS.size), 'size'));
    const order = Number(decodeU64(need(HEADER_KEYS.order), 'order'));
    const snaps = omap.filter(([k]) => k.startsWith(SNAPSHOT_KEY_PREFIX)).map(([, v]) => decodeSnap(v)).sort((a, b) => (a.id > b.id ? -1 : a.id < b.id ? 1 : 0));
    const created = m.get(HEADER_KEYS.createTimestamp);
    const parent = m.get(HEADER_KEYS.parent);
    const dataPool = m.get(HEADER_KEYS.dataPoolId);
    const dataPoolId = dataPool === undefined ? null : decodeU64(dataPool, 'data_pool_id');
    if (dataPoolId !== null && dataPoolId > BigInt(Number.MAX_SAFE_INTEGER)) throw new AspenError('E_CORRUPT', `header of image ${id}: data pool id ${dataPoolId} out of range`);
    const h: ImageHeader = {
      id, sizeBytes, order, objectPrefix: decodeString(need(HEADER_KEYS.objectPrefix), 'object_prefix'), features: decodeU64(need(HEADER_KEYS.features), 'features'),
      snapSeq: decodeU64(need(HEADER_KEYS.snapSeq), 'snap_seq'), snaps, createTimestampMs: created === undefined ? 0 : Number(decodeU64(created, 'create_timestamp')),
      lock: lockValue === undefined || lockValue.length === 0 ? null : decodeLock(lockValue), parent: parent === undefined ? null : decodeParent(parent),
      dataPoolId: dataPoolId === null ? null : Number(dataPoolId), version,
    };
    if (!Number.isSafeInteger(h.sizeBytes) || h.order < 12 || h.order > 25) throw new AspenError('E_CORRUPT', `header of image ${id}: size ${h.sizeBytes} / order ${h.order} out of range`);
    if ((h.dataPoolId !== null) !== ((h.features & FEATURE_DATA_POOL) !== 0n)) throw new AspenError('E_CORRUPT', `header of image ${id}: the data-pool feature and data_pool_id disagree`);
    for (const s of snaps) if (s.id <= 0n) throw new AspenError('E_CORRUPT', `header of image ${id}: snapshot '${s.name}' has id ${s.id}`);
    return h;
  } catch (err) {
    if (err instanceof AspenError && (err.code === 'E_DECODE' || err.code === 'E_UNSUPPORTED')) throw new AspenError('E_CORRUPT', `header of image ${id}: ${err.message}`);
    throw err;
  }
}

/** The snap context of writes to an image with header `h`: seq and snap ids, newest first. */
export function snapContextOf(h: ImageHeader): { seq: bigint; snaps: bigint[] } {
  const snaps = h.snaps.map((s) => s.id);
  for (let i = 1; i < snaps.length; i++) assert(snaps[i - 1]! > snaps[i]!, 'snap ids strictly descending');
  const seq = snaps.length > 0 && snaps[0]! > h.snapSeq ? snaps[0]! : h.snapSeq;
  return { seq, snaps };
}

/** A notification sent to an image's header watchers (Ceph librbd watch_notify payloads). */
export type HeaderNotification =
  | { kind: 'header_update' }
  | { kind: 'lock_released' }
  | { kind: 'lock_broken'; owner: string; cookie: string }
  | { kind: 'probe' };

const NOTIFY_KINDS = ['header_update', 'lock_released', 'lock_broken', 'probe'] as const;

/** Encodes a header notification. */
export function encodeNotification(n: HeaderNotification): Uint8Array {
  return new Encoder(64).struct(V1, 1, (e) => {
    e.u8(NOTIFY_KINDS.indexOf(n.kind));
    switch (n.kind) {
      case 'header_update': case 'lock_released': case 'probe': break;
      case 'lock_broken': e.string(n.owner).string(n.cookie); break;
      default: assertNever(n, 'header notification');
    }
  }).finish();
}

/** Decodes a header notification. @throws AspenError E_DECODE */
export function decodeNotification(b: Uint8Array): HeaderNotification {
  const d = new Decoder(b);
  const n = d.struct(V1, 'rbd notification', (): HeaderNotification => {
    const kind = NOTIFY_KINDS[d.u8()];
    switch (kind) {
      case 'header_update': case 'lock_released': case 'probe': return { kind };
      case 'lock_broken': return { kind, owner: d.string(), cookie: d.string() };
      case undefined: throw new AspenError('E_DECODE', 'unknown rbd notification kind');
      default: return assertNever(kind, 'notification kind');
    }
  });
  d.done('rbd notification');
  return n;
}
