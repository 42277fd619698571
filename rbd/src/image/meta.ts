/**
 * Reading and changing image metadata in RADOS: the pool's `rbd_directory` and an image's
 * header object. Every change is one compound op guarded by `assert_version` on the object
 * as read (optimistic concurrency, in place of Ceph's cls_rbd methods that run inside the
 * OSD): two concurrent `aspen-rbd` runs cannot both add the same name, and a header change
 * computed from a stale header is refused with ECANCELED and recomputed.
 */
import { AspenError, assert, isErrorCode } from '@aspen/shared';
import type { OsdOp, OsdReply } from '@aspen/shared/client/ops.ts';
import type { IoCtx } from '@aspen/shared/io/rados.ts';
import { LOCK_XATTR, decodeHeader, decodeString, encodeString, type ImageHeader } from './header.ts';
import { RBD_DIRECTORY, headerObjectName } from './layout.ts';

/** Attempts of one guarded read-modify-write before giving up with EAGAIN (named limit). */
export const GUARDED_UPDATE_ATTEMPTS_MAX = 64;
/** Largest number of header omap entries read (snapshots + fixed keys); Ceph's per-image snapshot limit is far lower in practice. */
export const HEADER_OMAP_ENTRIES_MAX = 100_000;
/** Directory entries read per page when listing. */
const DIRECTORY_PAGE = 1000;

const NAME_KEY = (name: string): string => `name_${name}`;
const ID_KEY = (id: string): string => `id_${id}`;

/** Throws a failed reply as an AspenError. */
export function checkReply(r: OsdReply): OsdReply {
  if (r.code === 0) return r;
  throw new AspenError(isErrorCode(r.code) ? r.code : 'EIO', r.message);
}

/**
 * Runs a guarded read-modify-write on `object`: `read` ops are sent, `plan` turns the reply
 * into the mutation ops (or throws to refuse), which are sent after `assert_version` of the
 * version read. A version race (ECANCELED) starts over. `plan` returning null means nothing to do.
 * @throws AspenError from `plan`, from the OSD, or EAGAIN after {@link GUARDED_UPDATE_ATTEMPTS_MAX} lost races.
 */
export async function guardedUpdate(io: IoCtx, object: string, read: OsdOp[], plan: (r: OsdReply) => OsdOp[] | null): Promise<void> {
  for (let attempt = 0; attempt < GUARDED_UPDATE_ATTEMPTS_MAX; attempt++) {
    const r = await io.operate(object, read);
    const ops = plan(r);
    if (ops === null) return;
    assert(ops.length > 0, 'a plan has ops');
    const w = await io.operate(object, r.code === 0 ? [{ op: 'assert_version', version: r.version }, ...ops] : ops);
    if (w.code === 'ECANCELED' || (r.code !== 0 && w.code === 'EEXIST')) continue;
    checkReply(w);
    return;
  }
  throw new AspenError('EAGAIN', `${object}: lost ${GUARDED_UPDATE_ATTEMPTS_MAX} update races in a row`);
}

function omapOf(r: OsdReply, index: number): Map<string, Uint8Array> {
  const x = r.results[index];
  return new Map(x?.kind === 'omap' ? x.entries : []);
}

/**
 * The id of image `name` (from `rbd_directory`).
 * @throws AspenError ENOENT when no such image.
 */
export async function directoryLookup(io: IoCtx, name: string): Promise<string> {
  const r = await io.operate(RBD_DIRECTORY, [{ op: 'omap_get_vals_by_keys', keys: [NAME_KEY(name)] }]);
  if (r.code === 'ENOENT') throw new AspenError('ENOENT', `image '${name}' does not exist in pool ${io.poolName}`);
  const v = omapOf(checkReply(r), 0).get(NAME_KEY(name));
  if (v === undefined) throw new AspenError('ENOENT', `image '${name}' does not exist in pool ${io.poolName}`);
  return decodeString(v, 'directory entry');
}

/** The name of image `id` (from `rbd_directory`'s `id_<id>`), or null when it has none. */
export async function directoryNameOf(io: IoCtx, id: string): Promise<string | null> {
  const r = await io.operate(RBD_DIRECTORY, [{ op: 'omap_get_vals_by_keys', keys: [ID_KEY(id)] }]);
  if (r.code === 'ENOENT') return null;
  const v = omapOf(checkReply(r), 0).get(ID_KEY(id));
  return v === undefined ? null : decodeString(v, 'directory entry');
}

/** Every image of the pool as `{name, id}`, sorted by name (empty when the directory does not exist). */
export async function directoryList(io: IoCtx): Promise<{ name: string; id: string }[]> {
  const out: { name: string; id: string }[] = [];
  let after = '';
  for (;;) {
    const r = await io.operate(RBD_DIRECTORY, [{ op: 'omap_get_vals', startAfter: after, prefix: 'name_', max: DIRECTORY_PAGE }]);
    if (r.code === 'ENOENT') return out;
    const x = checkReply(r).results[0];
    if (x?.kind !== 'omap') throw new AspenError('EIO', 'directory listing lacks omap values');
    for (const [k, v] of x.entries) out.push({ name: k.slice('name_'.length), id: decodeString(v, 'directory entry') });
    if (!x.more || x.entries.length === 0) return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    after = x.entries.at(-1)![0];
  }
}

/**
 * Adds `name` ↔ `id` to the directory, creating the directory object if needed (Ceph
 * cls_rbd dir_add_image).
 * @throws AspenError EEXIST when the name or the id is taken.
 */
export async function directoryAdd(io: IoCtx, name: string, id: string): Promise<void> {
  const set: OsdOp = { op: 'omap_set', entries: [[NAME_KEY(name), encodeString(id)], [ID_KEY(id), encodeString(name)]] };
  await guardedUpdate(io, RBD_DIRECTORY, [{ op: 'omap_get_vals_by_keys', keys: [NAME_KEY(name), ID_KEY(id)] }], (r) => {
    if (r.code === 'ENOENT') return [{ op: 'create', exclusive: true }, set];
    const have = omapOf(checkReply(r), 0);
    if (have.has(NAME_KEY(name))) throw new AspenError('EEXIST', `image '${name}' already exists in pool ${io.poolName}`);
    if (have.has(ID_KEY(id))) throw new AspenError('EEXIST', `image id ${id} already in use`);
    return [set];
  });
}

/**
 * Removes `name` (which must map to `id`) from the directory (cls_rbd dir_remove_image).
 * @throws AspenError ENOENT when the entry is absent; ECANCELED when `name` now maps to another id.
 */
export async function directoryRemove(io: IoCtx, name: string, id: string): Promise<void> {
  await guardedUpdate(io, RBD_DIRECTORY, [{ op: 'omap_get_vals_by_keys', keys: [NAME_KEY(name)] }], (r) => {
    if (r.code === 'ENOENT') throw new AspenError('ENOENT', `image '${name}' is not in the directory`);
    const cur = omapOf(checkReply(r), 0).get(NAME_KEY(name));
    if (cur === undefined) throw new AspenError('ENOENT', `image '${name}' is not in the directory`);
    if (decodeString(cur, 'directory entry') !== id) throw new AspenError('ECANCELED', `image '${name}' was replaced while being removed`);
    return [{ op: 'omap_rm', keys: [NAME_KEY(name), ID_KEY(id)] }];
  });
}

/**
 * Renames an image in the directory (cls_rbd dir_rename_image): one atomic op.
 * @throws AspenError ENOENT when `from` does not exist; EEXIST when `to` does.
 */
export async function directoryRename(io: IoCtx, from: string, to: string): Promise<void> {
  await guardedUpdate(io, RBD_DIRECTORY, [{ op: 'omap_get_vals_by_keys', keys: [NAME_KEY(from), NAME_KEY(to)] }], (r) => {
    if (r.code === 'ENOENT') throw new AspenError('ENOENT', `image '${from}' does not exist in pool ${io.poolName}`);
    const have = omapOf(checkReply(r), 0);
    const id = have.get(NAME_KEY(from));
    if (id === undefined) throw new AspenError('ENOENT', `image '${from}' does not exist in pool ${io.poolName}`);
    if (have.has(NAME_KEY(to))) throw new AspenError('EEXIST', `image '${to}' already exists in pool ${io.poolName}`);
    const idStr = decodeString(id, 'directory entry');
    return [{ op: 'omap_rm', keys: [NAME_KEY(from)] }, { op: 'omap_set', entries: [[NAME_KEY(to), encodeString(idStr)], [ID_KEY(idStr), encodeString(to)]] }];
  });
}

/** The read ops that fetch a whole header (omap and lock xattr). */
export const HEADER_READ_OPS: OsdOp[] = [{ op: 'omap_get_vals', startAfter: '', prefix: '', max: HEADER_OMAP_ENTRIES_MAX }, { op: 'getxattrs' }];

/** Decodes the reply to {@link HEADER_READ_OPS}. @throws AspenError ENOENT when the header is missing; E_CORRUPT */
export function headerFromReply(id: string, r: OsdReply): ImageHeader {
  if (r.code === 'ENOENT') throw new AspenError('ENOENT', `header object of image ${id} does not exist (image removed, or an interrupted create: rm it)`);
  checkReply(r);
  const omap = r.results[0];
  const xattrs = r.results[1];
  if (omap?.kind !== 'omap' || xattrs?.kind !== 'xattrs') throw new AspenError('EIO', 'header read reply is malformed');
  if (omap.more) throw new AspenError('E_CORRUPT', `header of image ${id} has more than ${HEADER_OMAP_ENTRIES_MAX} entries`);
  return decodeHeader(id, omap.entries, new Map(xattrs.entries).get(LOCK_XATTR), r.version);
}

/** Reads image `id`'s header. @throws AspenError ENOENT, E_CORRUPT */
export async function readHeader(io: IoCtx, id: string): Promise<ImageHeader> {
  return headerFromReply(id, await io.operate(headerObjectName(id), HEADER_READ_OPS));
}

/**
 * Changes image `id`'s header: `plan` gets the current header and returns the mutation ops
 * (omap_set/omap_rm/…), or null for no change; they apply only if the header has not changed
 * since (assert_version), else `plan` runs again on the new header.
 * @throws AspenError from `plan`; ENOENT when the header is gone; EAGAIN after too many races.
 */
export async function updateHeader(io: IoCtx, id: string, plan: (h: ImageHeader) => OsdOp[] | null): Promise<void> {
  await guardedUpdate(io, headerObjectName(id), HEADER_READ_OPS, (r) => plan(headerFromReply(id, r)));
}
