/**
 * Pool-level image operations (librbd's RBD class: create, remove, rename, list) and
 * per-image queries that need no open handle (disk usage, lock inspection/breaking).
 */
import { AspenError, assert } from '@aspen/shared';
import type { IoCtx, RadosClient } from '@aspen/shared/io/rados.ts';
import { FEATURE_DATA_POOL, FEATURE_EXCLUSIVE_LOCK, FEATURE_LAYERING, HEADER_KEYS, encodeParent, newHeaderEntries, type ImageHeader, type LockOwner, type ParentSpec } from './header.ts';
import { ioctxOfPoolId, poolIdOf, removeChild } from './children.ts';
import { breakLockOf, notifyHeader, IMAGE_OPS_INFLIGHT_MAX, WATCHER_PROBE_TIMEOUT_MS } from './image.ts';
import { ORDER_DEFAULT, checkName, dataObjectName, dataObjectPrefix, headerObjectName, isImageId, orderOfObjectSize, parseDataObjectName, IMAGE_SIZE_MAX_BYTES } from './layout.ts';
import { checkReply, directoryAdd, directoryList, directoryLookup, directoryRemove, directoryRename, readHeader } from './meta.ts';
import { forEachLimit } from './parallel.ts';

/** Options of {@link createImage}. */
export interface CreateImageOptions {
  sizeBytes: number;
  /** Object size, a power of two in [4 KiB, 32 MiB]; default 4 MiB. */
  objectSizeBytes?: number;
  /** The new image's id, lower-case hex (8–32 digits): random, chosen by the caller (randomness is injected). */
  id: string;
  /** Creation time recorded in the header, ms since the epoch. */
  createTimestampMs?: number;
  /** Make it a clone of this parent (sets the layering feature); the caller records the child. */
  parent?: ParentSpec;
  /**
   * Keep the data objects in this pool (Ceph `rbd create --data-pool`; sets the data-pool
   * feature and `data_pool_id`). The image's own pool, or absent: no separate data pool (as
   * librbd, which ignores a data pool equal to the image's pool).
   */
  dataPool?: string;
}

/**
 * Creates an image (librbd create, format 2): adds `name ↔ id` to `rbd_directory` (atomic;
 * EEXIST when the name is taken), then creates `rbd_header.<id>` exclusively with the size,
 * order, object prefix and features (and `data_pool_id` with a data pool). No data object is created (images are thin). If the
 * header cannot be created the directory entry is taken back.
 * @returns the image id.
 * @throws AspenError EEXIST; EINVAL for a bad name, size, object size or id; ENOENT for an unknown pool.
 */
export async function createImage(client: RadosClient, pool: string, name: string, o: CreateImageOptions): Promise<string> {
  checkName(name, 'image');
  if (!Number.isSafeInteger(o.sizeBytes) || o.sizeBytes < 0 || o.sizeBytes > IMAGE_SIZE_MAX_BYTES) throw new AspenError('EINVAL', `bad image size ${o.sizeBytes}`);
  const order = o.objectSizeBytes === undefined ? ORDER_DEFAULT : orderOfObjectSize(o.objectSizeBytes);
  if (!isImageId(o.id)) throw new AspenError('EINVAL', `bad image id '${o.id}'`);
  const io = client.ioctx(pool);
  const dataPoolId = o.dataPool === undefined || o.dataPool === pool ? undefined : poolIdOf(client, o.dataPool);
  const objectPrefix = dataPoolId === undefined ? dataObjectPrefix(o.id) : dataObjectPrefix(o.id, poolIdOf(client, pool));
  await directoryAdd(io, name, o.id);
  const features = FEATURE_EXCLUSIVE_LOCK | (o.parent === undefined ? 0n : FEATURE_LAYERING) | (dataPoolId === undefined ? 0n : FEATURE_DATA_POOL);
  const entries = newHeaderEntries({
    id: o.id, sizeBytes: o.sizeBytes, order, objectPrefix, features, createTimestampMs: o.createTimestampMs ?? 0, ...(dataPoolId === undefined ? {} : { dataPoolId }),
  });
  if (o.parent !== undefined) entries.push([HEADER_KEYS.parent, encodeParent(o.parent)]);
  const r = await io.operate(headerObjectName(o.id), [{ op: 'create', exclusive: true }, { op: 'omap_set', entries }]);
  if (r.code !== 0) {
    await directoryRemove(io, name, o.id).catch(() => undefined);
    checkReply(r);
  }
  return o.id;
}

/** Image names and ids of pool `pool`, sorted by name. */
export function listImages(client: RadosClient, pool: string): Promise<{ name: string; id: string }[]> {
  return directoryList(client.ioctx(pool));
}

/**
 * Renames an image (librbd rename): one atomic directory update; the id, header and data
 * objects do not change, so open handles keep working.
 * @throws AspenError ENOENT; EEXIST; EINVAL for a bad new name.
 */
export async function renameImage(client: RadosClient, pool: string, from: string, to: string): Promise<void> {
  checkName(to, 'image');
  await directoryRename(client.ioctx(pool), from, to);
}

/**
 * The object numbers of the existing data objects named `<objectPrefix>.<objno>` (an image's
 * header `object_prefix`) at the head, ascending: one PG listing pass over `dataPool` — the
 * image's data pool if it has one, else its pool — as `rados ls` (no object map in this slice).
 */
export async function listDataObjects(client: RadosClient, dataPool: string, objectPrefix: string): Promise<number[]> {
  const prefix = objectPrefix;
  const out: number[] = [];
  for (const name of await client.ioctx(dataPool).listObjects()) {
    const n = parseDataObjectName(prefix, name);
    if (n !== null) out.push(n);
  }
  return out.sort((a, b) => a - b);
}

/** Client ids watching image `id`'s header, other than `client` itself (a probe notify; late watchers count). */
export async function otherWatchers(client: RadosClient, pool: string, id: string): Promise<string[]> {
  const { watchers } = await notifyHeader(client.ioctx(pool), id, { kind: 'probe' }, WATCHER_PROBE_TIMEOUT_MS);
  return [...new Set(watchers.filter((w) => w !== client.clientId))].sort();
}

/** The IoCtx of image header `h`'s data objects: its data pool, or `pool` itself. @throws AspenError ENOENT when the data pool is gone */
function dataIoctxOf(client: RadosClient, pool: string, h: ImageHeader): IoCtx {
  return h.dataPoolId === null ? client.ioctx(pool) : ioctxOfPoolId(client, h.dataPoolId);
}

/**
 * Removes an image (librbd remove): refused while it has snapshots (ENOTEMPTY), watchers other
 * than this client or a lock holder (EBUSY); then removes its data objects (from its data pool
 * if it has one), its header, and its directory entry, in that order, so an interrupted remove
 * can be run again (an image whose header is already gone is removed from the directory after
 * its data; its data was removed before the header, so only its own pool is swept then).
 * @param onProgress called with (objects removed, objects total).
 * @throws AspenError ENOENT; ENOTEMPTY; EBUSY.
 */
export async function removeImage(client: RadosClient, pool: string, name: string, onProgress?: (done: number, total: number) => void): Promise<void> {
  const io = client.ioctx(pool);
  const id = await directoryLookup(io, name);
  let header: ImageHeader | null = null;
  try {
    header = await readHeader(io, id);
  } catch (err) {
    if (!(err instanceof AspenError && err.code === 'ENOENT')) throw err;
  }
  if (header !== null) {
    if (header.snaps.length > 0) throw new AspenError('ENOTEMPTY', `image '${name}' has snapshots (${header.snaps.map((s) => s.name).join(', ')}): remove them with 'snap rm' before removing the image`);
    const watchers = await otherWatchers(client, pool, id);
    if (watchers.length > 0) throw new AspenError('EBUSY', `image '${name}' still has watchers (${watchers.join(', ')}): close them, or wait 30 s if they crashed`);
    if (header.lock !== null) throw new AspenError('EBUSY', `image '${name}' is locked by ${header.lock.owner}: break the lock first ('lock break')`);
  }
  const dio = header === null ? io : dataIoctxOf(client, pool, header);
  const prefix = header === null ? dataObjectPrefix(id) : header.objectPrefix;
  const objects = await listDataObjects(client, dio.poolName, prefix);
  let done = 0;
  await forEachLimit(objects, IMAGE_OPS_INFLIGHT_MAX, async (n) => {
    const r = await dio.operate(dataObjectName(prefix, n), [{ op: 'remove' }]);
    if (r.code !== 'ENOENT') checkReply(r);
    onProgress?.(++done, objects.length);
  });
  if (header !== null) {
    // The children record goes before the header: a rerun after a crash still finds the parent.
    if (header.parent !== null) await removeChild(client, header.parent, { poolId: poolIdOf(client, pool), poolName: pool, imageId: id });
    const r = await io.operate(headerObjectName(id), [{ op: 'remove' }]);
    if (r.code !== 'ENOENT') checkReply(r);
  }
  await directoryRemove(io, name, id);
}

/** Provisioned and used bytes of an image at the head (`rbd du`). */
export interface DiskUsage {
  readonly name: string;
  readonly provisionedBytes: number;
  /** Sum of the sizes of its existing data objects (head only; snapshot clones are not counted). */
  readonly usedBytes: number;
}

/** Disk usage of image `name` (one pool listing plus one stat per data object). @throws AspenError ENOENT */
export async function diskUsage(client: RadosClient, pool: string, name: string): Promise<DiskUsage> {
  const io = client.ioctx(pool);
  const id = await directoryLookup(io, name);
  const h = await readHeader(io, id);
  const dio = dataIoctxOf(client, pool, h);
  const objects = await listDataObjects(client, dio.poolName, h.objectPrefix);
  let used = 0;
  await forEachLimit(objects, IMAGE_OPS_INFLIGHT_MAX, async (n) => {
    const r = await dio.operate(dataObjectName(h.objectPrefix, n), [{ op: 'stat' }]);
    if (r.code === 'ENOENT') return;
    const st = checkReply(r).results[0];
    if (st?.kind === 'stat') used += Math.min(st.sizeBytes, 2 ** h.order);
  });
  assert(used >= 0, 'usage is non-negative');
  return { name, provisionedBytes: h.sizeBytes, usedBytes: used };
}

/** The header of image `name` (for `info` without opening). @throws AspenError ENOENT */
export async function imageHeader(client: RadosClient, pool: string, name: string): Promise<ImageHeader> {
  const io = client.ioctx(pool);
  return readHeader(io, await directoryLookup(io, name));
}

/**
 * Breaks image `name`'s exclusive lock (`rbd lock break`), if `expected` (when given) still holds it.
 * @returns the lock that was broken, or null when the image was not locked.
 * @throws AspenError ENOENT; ECANCELED when the holder changed.
 */
export async function breakImageLock(client: RadosClient, pool: string, name: string, expected?: LockOwner): Promise<LockOwner | null> {
  const io = client.ioctx(pool);
  const id = await directoryLookup(io, name);
  const h = await readHeader(io, id);
  if (h.lock === null) return null;
  if (expected !== undefined && (expected.owner !== h.lock.owner || expected.cookie !== h.lock.cookie)) throw new AspenError('ECANCELED', `image '${name}' is locked by ${h.lock.owner}, not ${expected.owner}`);
  await breakLockOf(io, id, h.lock);
  return h.lock;
}
