/**
 * The children records of clones (Ceph's `rbd_children` object, cls_rbd add_child /
 * remove_child / get_children): one object per pool, in the PARENT's pool, with one omap key
 * per (parent image, parent snapshot, child) — `<parent id>.<snap id, 16 hex>.<child pool id>.<child id>`
 * → the child's pool name and id. One key per child (instead of Ceph's set-valued key) so
 * adding or removing a child is a single omap_set/omap_rm with no read-modify-write.
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { IoCtx, RadosClient } from '@aspen/shared/io/rados.ts';
import type { ParentSpec } from './header.ts';
import { checkReply } from './meta.ts';

/** The children object of a pool (Ceph RBD_CHILDREN). */
export const RBD_CHILDREN = 'rbd_children';
/** Children listed per page. */
const CHILDREN_PAGE = 1000;
const V1 = 1;

/** A clone of some image's snapshot. */
export interface ChildSpec {
  readonly poolId: number;
  readonly poolName: string;
  readonly imageId: string;
}

function snapPrefix(parentImageId: string, snapId: bigint): string {
  assert(snapId > 0n, 'snap ids are positive');
  return `${parentImageId}.${snapId.toString(16).padStart(16, '0')}.`;
}

/** The omap key of `child` under parent `parent`. */
export function childKey(parent: Pick<ParentSpec, 'imageId' | 'snapId'>, child: ChildSpec): string {
  return `${snapPrefix(parent.imageId, parent.snapId)}${child.poolId}.${child.imageId}`;
}

function encodeChild(c: ChildSpec): Uint8Array {
  return new Encoder(64).struct(V1, 1, (e) => e.u32(c.poolId).string(c.poolName).string(c.imageId)).finish();
}
function decodeChild(b: Uint8Array): ChildSpec {
  const d = new Decoder(b);
  const c = d.struct(V1, 'rbd child', () => ({ poolId: d.u32(), poolName: d.string(), imageId: d.string() }));
  d.done('rbd child');
  return c;
}

/** The IoCtx of the pool with id `poolId`. @throws AspenError ENOENT when the pool is gone. */
export function ioctxOfPoolId(client: RadosClient, poolId: number): IoCtx {
  const p = client.osdMap.pools.get(poolId);
  if (p === undefined) throw new AspenError('ENOENT', `pool ${poolId} does not exist`);
  return client.ioctx(p.name);
}

/** The id of pool `name`. @throws AspenError ENOENT */
export function poolIdOf(client: RadosClient, name: string): number {
  return client.pool(name).id;
}

/** Records `child` as a clone of `parent` (idempotent). */
export async function addChild(client: RadosClient, parent: ParentSpec, child: ChildSpec): Promise<void> {
  const io = ioctxOfPoolId(client, parent.poolId);
  checkReply(await io.operate(RBD_CHILDREN, [{ op: 'create', exclusive: false }, { op: 'omap_set', entries: [[childKey(parent, child), encodeChild(child)]] }]));
}

/** Drops `child`'s record under `parent` (idempotent; a missing pool or object is fine). */
export async function removeChild(client: RadosClient, parent: ParentSpec, child: ChildSpec): Promise<void> {
  const p = client.osdMap.pools.get(parent.poolId);
  if (p === undefined) return;
  const r = await client.ioctx(p.name).operate(RBD_CHILDREN, [{ op: 'omap_rm', keys: [childKey(parent, child)] }]);
  if (r.code !== 'ENOENT') checkReply(r);
}

/** The clones of snapshot `snapId` of image `imageId` in pool `io` (Ceph get_children), sorted by key. */
export async function listChildren(io: IoCtx, imageId: string, snapId: bigint): Promise<ChildSpec[]> {
  const prefix = snapPrefix(imageId, snapId);
  const out: ChildSpec[] = [];
  let after = '';
  for (;;) {
    const r = await io.operate(RBD_CHILDREN, [{ op: 'omap_get_vals', startAfter: after, prefix, max: CHILDREN_PAGE }]);
    if (r.code === 'ENOENT') return out;
    const x = checkReply(r).results[0];
    if (x?.kind !== 'omap') throw new AspenError('EIO', 'children listing lacks omap values');
    for (const [k, v] of x.entries) {
      assert(k.startsWith(prefix), 'listing honours the prefix');
      out.push(decodeChild(v));
    }
    if (!x.more || x.entries.length === 0) return out;
    after = x.entries.at(-1)![0];
  }
}
