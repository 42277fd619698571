/**
 * Clones (librbd format 2 layering): `clone` makes a child image that reads through to a
 * protected snapshot of a parent until its objects are copied up (see image.ts), `children`
 * lists the clones of a snapshot, `flatten` makes a clone self-contained. The child's header
 * holds the parent spec and overlap (header `parent`); the parent's pool holds the child in
 * `rbd_children` (children.ts), which keeps the snapshot from being unprotected.
 */
import { AspenError, assert } from '@aspen/shared';
import type { RadosClient } from '@aspen/shared/io/rados.ts';
import { createImage, removeImage } from './admin.ts';
import { addChild, ioctxOfPoolId, listChildren, poolIdOf, removeChild, type ChildSpec } from './children.ts';
import type { ParentSpec } from './header.ts';
import { Image } from './image.ts';
import { directoryLookup, directoryNameOf, readHeader } from './meta.ts';

/** Where a clone comes from and goes to. */
export interface CloneOptions {
  parentPool: string;
  parentImage: string;
  parentSnap: string;
  childPool: string;
  childImage: string;
  /** The new image's id (random, chosen by the caller). */
  childId: string;
  createTimestampMs?: number;
  /** The child's data pool (`rbd clone --data-pool`); absent: the child's own pool, whatever the parent's. */
  dataPool?: string;
}

/**
 * Clones `parentPool/parentImage@parentSnap` as `childPool/childImage` (librbd clone): the
 * child has the snapshot's size and object size, and an overlap of the whole snapshot; its
 * data objects (copy-ups included) go to its own data pool, or its own pool without one. The
 * child is created with its parent link, then recorded in `rbd_children`, then the snapshot's
 * protection is checked again (a racing unprotect makes the clone fail and be removed).
 * @returns the parent spec recorded in the child.
 * @throws AspenError EINVAL when the snapshot is not protected (as Ceph); ENOENT; EEXIST.
 */
export async function cloneImage(client: RadosClient, o: CloneOptions): Promise<ParentSpec> {
  const pio = client.ioctx(o.parentPool);
  const parentId = await directoryLookup(pio, o.parentImage);
  const ph = await readHeader(pio, parentId);
  const snap = ph.snaps.find((s) => s.name === o.parentSnap);
  if (snap === undefined) throw new AspenError('ENOENT', `image '${o.parentImage}' has no snapshot '${o.parentSnap}'`);
  if (!snap.protected) throw new AspenError('EINVAL', `parent snapshot ${o.parentPool}/${o.parentImage}@${o.parentSnap} must be protected before cloning`);
  const parent: ParentSpec = { poolId: poolIdOf(client, o.parentPool), poolName: o.parentPool, imageId: parentId, snapId: snap.id, overlapBytes: snap.sizeBytes };
  await createImage(client, o.childPool, o.childImage, {
    sizeBytes: snap.sizeBytes, objectSizeBytes: 2 ** ph.order, id: o.childId, parent,
    ...(o.createTimestampMs === undefined ? {} : { createTimestampMs: o.createTimestampMs }), ...(o.dataPool === undefined ? {} : { dataPool: o.dataPool }),
  });
  const child: ChildSpec = { poolId: poolIdOf(client, o.childPool), poolName: o.childPool, imageId: o.childId };
  await addChild(client, parent, child);
  const again = (await readHeader(pio, parentId)).snaps.find((s) => s.id === snap.id);
  if (again?.protected !== true) {
    await removeImage(client, o.childPool, o.childImage).catch(() => undefined);
    await removeChild(client, parent, child).catch(() => undefined);
    throw new AspenError('EINVAL', `parent snapshot ${o.parentPool}/${o.parentImage}@${o.parentSnap} was unprotected while cloning`);
  }
  return parent;
}

/** A clone as `children` prints it. */
export interface ChildInfo {
  readonly pool: string;
  readonly image: string;
  readonly id: string;
}

/** The clones of `pool/image@snap` (librbd list_children). @throws AspenError ENOENT */
export async function imageChildren(client: RadosClient, pool: string, image: string, snapName: string): Promise<ChildInfo[]> {
  const io = client.ioctx(pool);
  const id = await directoryLookup(io, image);
  const snap = (await readHeader(io, id)).snaps.find((s) => s.name === snapName);
  if (snap === undefined) throw new AspenError('ENOENT', `image '${image}' has no snapshot '${snapName}'`);
  const out: ChildInfo[] = [];
  for (const c of await listChildren(io, id, snap.id)) {
    const name = await directoryNameOf(ioctxOfPoolId(client, c.poolId), c.imageId).catch(() => null);
    out.push({ pool: c.poolName, image: name ?? `(id ${c.imageId})`, id: c.imageId });
  }
  return out.sort((a, b) => (a.pool === b.pool ? (a.image < b.image ? -1 : 1) : a.pool < b.pool ? -1 : 1));
}

/**
 * Flattens clone `pool/image` (librbd flatten): copies up the overlap, drops the parent link,
 * then the `rbd_children` record (so the parent snapshot can be unprotected). Takes the
 * exclusive lock (`breakLock` to break another holder's).
 * A clone with snapshots keeps its parent for them (and its children record) until the last
 * of those snapshots is removed.
 * @throws AspenError EINVAL when not a clone; EBUSY when locked.
 */
export async function flattenImage(client: RadosClient, pool: string, image: string, o: { breakLock?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<void> {
  const img = await Image.open(client, pool, image, { breakLock: o.breakLock ?? false });
  try {
    const { parent, detached } = await img.flatten(o.onProgress);
    assert(!detached || img.header.parent === null, 'flattened');
    if (detached) await removeChild(client, parent, { poolId: poolIdOf(client, pool), poolName: pool, imageId: img.id });
  } finally {
    await img.close();
  }
}

/** A clone's parent as `info` prints it: `POOL/IMAGE@SNAP` and the overlap (names looked up now). */
export async function describeParent(client: RadosClient, p: ParentSpec): Promise<{ pool: string; image: string; snapshot: string; overlapBytes: number }> {
  const io = ioctxOfPoolId(client, p.poolId);
  const image = (await directoryNameOf(io, p.imageId)) ?? `(id ${p.imageId})`;
  const snap = (await readHeader(io, p.imageId).catch(() => null))?.snaps.find((s) => s.id === p.snapId);
  return { pool: io.poolName, image, snapshot: snap?.name ?? `(id ${p.snapId})`, overlapBytes: p.overlapBytes };
}
