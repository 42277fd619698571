/**
 * A filesystem's namespace — inodes, dentries, xattrs, symlink targets — as part of the
 * monitors' replicated state (DESIGN.md "Filesystem: MDS and FUSE", ADR 0010). Every
 * function here that changes the namespace is the whole effect of ONE Raft command: it
 * validates everything first and throws an AspenError with the POSIX errno name before it
 * touches anything, so a refused command changes nothing and an accepted one (a rename
 * included) is applied entirely or not at all. Pure and deterministic: time is the
 * proposer's stamp passed in as `nowNs`, never a clock.
 *
 * Units: times are nanoseconds since the Unix epoch (`bigint`, as utimensat/FUSE carry them);
 * sizes are bytes (safe integers, so files up to 2^53-1 bytes); inode numbers are allocated
 * from 2 upwards (root is 1), never reused, and stay safe integers.
 */
import { AspenError, assert } from '@aspen/shared';

/** Inode number; the root directory is {@link ROOT_INO}. */
export type Ino = number;
export const ROOT_INO: Ino = 1;

/** The inode types the namespace keeps (device nodes, FIFOs and sockets are not supported). */
export type InodeType = 'file' | 'dir' | 'symlink';

/** One inode (Ceph inode_t, abridged). */
export interface FsInode {
  ino: Ino;
  type: InodeType;
  /** Permission bits with setuid/setgid/sticky (0o7777); the file type is `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Hard links; a directory has 2 + its subdirectories (POSIX convention). */
  nlink: number;
  /** Bytes for a file, the target's UTF-8 length for a symlink, the entry count for a directory (as Ceph). */
  sizeBytes: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Striping layout: file byte `o` lives in object `<ino hex>.<floor(o / objectSizeBytes) as 8 hex>`. */
  objectSizeBytes: number;
  /** Symlink target; '' for other types. */
  target: string;
  /** Extended attributes: name → value as base64. */
  xattrs: Map<string, string>;
  /** Directories only: entry name → inode; null for other types. */
  entries: Map<string, Ino> | null;
  /** Directories only: the parent directory (the root's is itself); 0 for other types. */
  parent: Ino;
}

/** One filesystem (Ceph MDSMap + the metadata it would keep in its metadata pool). */
export interface FsNamespace {
  name: string;
  /** Filesystem id (Ceph fscid), unique for the cluster's lifetime. */
  fscid: number;
  dataPoolId: number;
  createdMs: number;
  /** Layout given to new files. */
  defaultObjectSizeBytes: number;
  nextIno: Ino;
  inodes: Map<Ino, FsInode>;
  /** Files with nlink 0 kept until the MDS says no client has them open (`fs purge-inode`). */
  orphans: Set<Ino>;
  /** Sum of file sizes. */
  bytesUsed: number;
}

/** Filesystems per cluster, and per-filesystem limits (named, CONVENTIONS.md item 10; sizing in ADR 0010). */
export const FILESYSTEMS_MAX = 2;
/** Inodes per filesystem: the whole namespace lives in every mon's memory and in each Raft snapshot. */
export const FS_INODES_MAX = 1_000_000;
/** Entries per directory (Ceph mds_bal_fragment_size_max). */
export const FS_DIR_ENTRIES_MAX = 100_000;
/** POSIX NAME_MAX, PATH_MAX - 1 (a symlink target), LINK_MAX. */
export const FS_NAME_MAX_BYTES = 255;
export const FS_SYMLINK_MAX_BYTES = 4095;
export const FS_LINK_MAX = 65_000;
/** Linux XATTR_NAME_MAX, XATTR_SIZE_MAX; names + values per inode (Ceph mds_max_xattr_pairs_size). */
export const FS_XATTR_NAME_MAX_BYTES = 255;
export const FS_XATTR_VALUE_MAX_BYTES = 65_536;
export const FS_XATTRS_PER_INODE_MAX_BYTES = 65_536;
/** Entries one readdir page may return. */
export const FS_READDIR_LIMIT_MAX = 4096;
/** Default object size of new files (Ceph's file layout default, 4 MiB). */
export const FS_DEFAULT_OBJECT_SIZE_BYTES = 4 << 20;

const utf8 = new TextEncoder();
/**
 * A lone UTF-16 surrogate (in u-mode a proper pair is one code point and does not match).
 * Such a string would be stored as U+FFFD by the snapshot codec, so a restored member would
 * hold another name than the live ones: refused (EINVAL) in names, targets and xattr names.
 */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const byteLength = (s: string): number => utf8.encode(s).length;
/** Decoded length of a base64 string (validated by the command schema). */
export const base64Bytes = (b64: string): number => Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);

/** Object name of a file's `objno`th object: `<ino hex>.<objno as 8 hex digits>` (DESIGN.md). */
export function dataObjectName(ino: Ino, objno: number): string {
  return `${ino.toString(16)}.${objno.toString(16).padStart(8, '0')}`;
}

/** A new filesystem with its root directory (mode 0755, owned by root). */
export function newNamespace(name: string, fscid: number, dataPoolId: number, objectSizeBytes: number, createdMs: number): FsNamespace {
  const nowNs = BigInt(createdMs) * 1_000_000n;
  const root = makeInode(ROOT_INO, 'dir', 0o755, 0, 0, objectSizeBytes, nowNs);
  root.parent = ROOT_INO;
  const ns: FsNamespace = { name, fscid, dataPoolId, createdMs, defaultObjectSizeBytes: objectSizeBytes, nextIno: ROOT_INO + 1, inodes: new Map([[ROOT_INO, root]]), orphans: new Set(), bytesUsed: 0 };
  assert(ns.inodes.get(ROOT_INO)?.nlink === 2, 'root is a directory');
  return ns;
}

function makeInode(ino: Ino, type: InodeType, mode: number, uid: number, gid: number, objectSizeBytes: number, nowNs: bigint): FsInode {
  return {
    ino, type, mode, uid, gid, nlink: type === 'dir' ? 2 : 1, sizeBytes: 0, atimeNs: nowNs, mtimeNs: nowNs, ctimeNs: nowNs,
    objectSizeBytes, target: '', xattrs: new Map(), entries: type === 'dir' ? new Map() : null, parent: 0,
  };
}

/**
 * Checks a directory entry name (POSIX): no '/', no NUL, not '.' or '..', at most 255 bytes.
 * @throws AspenError EINVAL, ENAMETOOLONG
 */
export function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || LONE_SURROGATE.test(name)) {
    throw new AspenError('EINVAL', `invalid file name ${JSON.stringify(name.slice(0, 64))}`);
  }
  if (byteLength(name) > FS_NAME_MAX_BYTES) throw new AspenError('ENAMETOOLONG', `file name longer than ${FS_NAME_MAX_BYTES} bytes`);
}

/** @throws AspenError ENOENT */
export function getInode(ns: FsNamespace, ino: Ino): FsInode {
  const inode = ns.inodes.get(ino);
  if (inode === undefined) throw new AspenError('ENOENT', `no inode ${ino} in filesystem ${ns.name}`);
  assert(inode.ino === ino, 'inode keyed by its number');
  return inode;
}

/** @throws AspenError ENOENT, ENOTDIR */
export function getDir(ns: FsNamespace, ino: Ino): FsInode & { entries: Map<string, Ino> } {
  const inode = getInode(ns, ino);
  if (inode.type !== 'dir') throw new AspenError('ENOTDIR', `inode ${ino} is not a directory`);
  assert(inode.entries !== null, 'a directory has entries');
  return inode as FsInode & { entries: Map<string, Ino> };
}

/**
 * Sorted entry names per directory, for paging readdir in O(log n + page) rather than sorting
 * a large directory per page. A memo, not state: dropped by every entry change (touchDir).
 */
const sortedNames = new WeakMap<FsInode, string[]>();

function touchDir(dir: FsInode, nowNs: bigint): void {
  sortedNames.delete(dir);
  dir.mtimeNs = nowNs;
  dir.ctimeNs = nowNs;
  dir.sizeBytes = dir.entries!.size;
}

function checkRoomFor(ns: FsNamespace, dir: FsInode): void {
  if (ns.inodes.size >= FS_INODES_MAX) throw new AspenError('ENOSPC', `filesystem ${ns.name} has the maximum of ${FS_INODES_MAX} inodes`);
  checkDirRoom(dir);
}

function checkDirRoom(dir: FsInode): void {
  if (dir.entries!.size >= FS_DIR_ENTRIES_MAX) throw new AspenError('ENOSPC', `directory ${dir.ino} has the maximum of ${FS_DIR_ENTRIES_MAX} entries`);
}

/** Whether `anc` is `ino` or one of its ancestors (walking directory parents up to the root). */
function isAncestorOrSelf(ns: FsNamespace, anc: Ino, ino: Ino): boolean {
  let cur = ino;
  for (let depth = 0; ; depth++) {
    if (cur === anc) return true;
    if (cur === ROOT_INO) return false;
    const dir = ns.inodes.get(cur);
    assert(dir !== undefined && dir.type === 'dir' && depth <= ns.inodes.size, `directory ${cur} reaches the root`);
    cur = dir.parent;
  }
}

function newIno(ns: FsNamespace): Ino {
  const ino = ns.nextIno;
  assert(Number.isSafeInteger(ino + 1) && !ns.inodes.has(ino), 'inode numbers are fresh');
  ns.nextIno = ino + 1;
  return ino;
}

/** Owner and permission bits of a new inode. */
export interface NewInodeArgs {
  parent: Ino;
  name: string;
  mode: number;
  uid: number;
  gid: number;
}

/**
 * Creates a regular file (mknod/create). `exclusive` (O_EXCL, and always for mknod) refuses an
 * existing name with EEXIST; otherwise an existing file is returned with `created: false`.
 * @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, EEXIST, EISDIR, ENOSPC
 */
export function mknod(ns: FsNamespace, a: NewInodeArgs & { exclusive: boolean }, nowNs: bigint): { inode: FsInode; created: boolean } {
  const dir = getDir(ns, a.parent);
  checkName(a.name);
  const existing = dir.entries.get(a.name);
  if (existing !== undefined) {
    const inode = getInode(ns, existing);
    if (a.exclusive) throw new AspenError('EEXIST', `${a.name} exists`);
    if (inode.type === 'dir') throw new AspenError('EISDIR', `${a.name} is a directory`);
    if (inode.type !== 'file') throw new AspenError('EEXIST', `${a.name} exists and is not a regular file`);
    return { inode, created: false };
  }
  checkRoomFor(ns, dir);
  const inode = makeInode(newIno(ns), 'file', a.mode, a.uid, a.gid, ns.defaultObjectSizeBytes, nowNs);
  ns.inodes.set(inode.ino, inode);
  dir.entries.set(a.name, inode.ino);
  touchDir(dir, nowNs);
  return { inode, created: true };
}

/** mkdir(2). @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, EEXIST, EMLINK, ENOSPC */
export function mkdir(ns: FsNamespace, a: NewInodeArgs, nowNs: bigint): FsInode {
  const dir = getDir(ns, a.parent);
  checkName(a.name);
  if (dir.entries.has(a.name)) throw new AspenError('EEXIST', `${a.name} exists`);
  if (dir.nlink >= FS_LINK_MAX) throw new AspenError('EMLINK', `directory ${dir.ino} has ${FS_LINK_MAX} links`);
  checkRoomFor(ns, dir);
  const inode = makeInode(newIno(ns), 'dir', a.mode, a.uid, a.gid, ns.defaultObjectSizeBytes, nowNs);
  inode.parent = dir.ino;
  ns.inodes.set(inode.ino, inode);
  dir.entries.set(a.name, inode.ino);
  dir.nlink++;
  touchDir(dir, nowNs);
  return inode;
}

/** symlink(2); the target is stored as given. @throws AspenError ENOENT (empty target), ENOTDIR, EINVAL, ENAMETOOLONG, EEXIST, ENOSPC */
export function symlink(ns: FsNamespace, a: Omit<NewInodeArgs, 'mode'> & { target: string }, nowNs: bigint): FsInode {
  const dir = getDir(ns, a.parent);
  checkName(a.name);
  if (a.target === '') throw new AspenError('ENOENT', 'empty symlink target');
  if (a.target.includes('\0') || LONE_SURROGATE.test(a.target)) throw new AspenError('EINVAL', 'symlink target contains NUL or is not valid Unicode');
  const targetBytes = byteLength(a.target);
  if (targetBytes > FS_SYMLINK_MAX_BYTES) throw new AspenError('ENAMETOOLONG', `symlink target longer than ${FS_SYMLINK_MAX_BYTES} bytes`);
  if (dir.entries.has(a.name)) throw new AspenError('EEXIST', `${a.name} exists`);
  checkRoomFor(ns, dir);
  const inode = makeInode(newIno(ns), 'symlink', 0o777, a.uid, a.gid, ns.defaultObjectSizeBytes, nowNs);
  inode.target = a.target;
  inode.sizeBytes = targetBytes;
  ns.inodes.set(inode.ino, inode);
  dir.entries.set(a.name, inode.ino);
  touchDir(dir, nowNs);
  return inode;
}

/** link(2): a new name for a non-directory. @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, EEXIST, EPERM, EMLINK, ENOSPC */
export function link(ns: FsNamespace, a: { ino: Ino; parent: Ino; name: string }, nowNs: bigint): FsInode {
  const inode = getInode(ns, a.ino);
  const dir = getDir(ns, a.parent);
  checkName(a.name);
  if (dir.entries.has(a.name)) throw new AspenError('EEXIST', `${a.name} exists`);
  if (inode.type === 'dir') throw new AspenError('EPERM', 'hard links to directories are not allowed');
  if (inode.nlink === 0) throw new AspenError('ENOENT', `inode ${a.ino} has been unlinked`);
  if (inode.nlink >= FS_LINK_MAX) throw new AspenError('EMLINK', `inode ${a.ino} has ${FS_LINK_MAX} links`);
  checkDirRoom(dir);
  dir.entries.set(a.name, inode.ino);
  inode.nlink++;
  inode.ctimeNs = nowNs;
  touchDir(dir, nowNs);
  return inode;
}

/**
 * Drops one link to a non-directory. A file left with no link becomes an orphan (kept for
 * open handles until purged); a symlink cannot be open, so it goes at once.
 */
function dropLink(ns: FsNamespace, inode: FsInode, nowNs: bigint): void {
  assert(inode.type !== 'dir' && inode.nlink > 0, 'dropping a link of a linked non-directory');
  inode.nlink--;
  inode.ctimeNs = nowNs;
  if (inode.nlink > 0) return;
  if (inode.type === 'symlink') ns.inodes.delete(inode.ino);
  else ns.orphans.add(inode.ino);
}

/** Removes an empty directory inode that its parent no longer names. */
function dropDir(ns: FsNamespace, inode: FsInode, parent: FsInode): void {
  assert(inode.type === 'dir' && inode.entries!.size === 0 && inode.ino !== ROOT_INO, 'dropping an empty non-root directory');
  ns.inodes.delete(inode.ino);
  parent.nlink--;
}

/** unlink(2). @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, EISDIR */
export function unlink(ns: FsNamespace, a: { parent: Ino; name: string }, nowNs: bigint): { ino: Ino; nlink: number; orphaned: boolean } {
  const dir = getDir(ns, a.parent);
  checkName(a.name);
  const ino = dir.entries.get(a.name);
  if (ino === undefined) throw new AspenError('ENOENT', `${a.name} does not exist`);
  const inode = getInode(ns, ino);
  if (inode.type === 'dir') throw new AspenError('EISDIR', `${a.name} is a directory`);
  dir.entries.delete(a.name);
  dropLink(ns, inode, nowNs);
  touchDir(dir, nowNs);
  return { ino, nlink: inode.nlink, orphaned: ns.orphans.has(ino) };
}

/** rmdir(2). @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, ENOTEMPTY */
export function rmdir(ns: FsNamespace, a: { parent: Ino; name: string }, nowNs: bigint): { ino: Ino } {
  const dir = getDir(ns, a.parent);
  checkName(a.name);
  const ino = dir.entries.get(a.name);
  if (ino === undefined) throw new AspenError('ENOENT', `${a.name} does not exist`);
  const inode = getInode(ns, ino);
  if (inode.type !== 'dir') throw new AspenError('ENOTDIR', `${a.name} is not a directory`);
  if (inode.entries!.size > 0) throw new AspenError('ENOTEMPTY', `${a.name} is not empty`);
  dir.entries.delete(a.name);
  dropDir(ns, inode, dir);
  touchDir(dir, nowNs);
  return { ino };
}

/** renameat2 flags: none (replace), RENAME_NOREPLACE, RENAME_EXCHANGE. */
export type RenameFlags = 'none' | 'noreplace' | 'exchange';

/**
 * rename(2)/renameat2(2), atomic. Replaces a non-directory with a non-directory or a
 * directory with an empty directory; `noreplace` refuses an existing target (EEXIST);
 * `exchange` swaps two existing entries of any types. Two names of one inode: nothing
 * happens (POSIX). Checks, in order: the parents (ENOENT/ENOTDIR), the names
 * (EINVAL/ENAMETOOLONG), the source (ENOENT), the flags (EEXIST/ENOENT), a directory moved
 * into its own subtree (EINVAL), then replacement types (ENOTDIR, EISDIR, ENOTEMPTY) and room (ENOSPC).
 */
export function rename(ns: FsNamespace, a: { srcParent: Ino; srcName: string; dstParent: Ino; dstName: string; flags: RenameFlags }, nowNs: bigint): { ino: Ino; replaced: { ino: Ino; nlink: number; orphaned: boolean } | null } {
  const sdir = getDir(ns, a.srcParent);
  const ddir = getDir(ns, a.dstParent);
  checkName(a.srcName);
  checkName(a.dstName);
  const sIno = sdir.entries.get(a.srcName);
  if (sIno === undefined) throw new AspenError('ENOENT', `${a.srcName} does not exist`);
  const dIno = ddir.entries.get(a.dstName);
  if (a.flags === 'noreplace' && dIno !== undefined) throw new AspenError('EEXIST', `${a.dstName} exists`);
  if (a.flags === 'exchange' && dIno === undefined) throw new AspenError('ENOENT', `${a.dstName} does not exist`);
  if (dIno === sIno) return { ino: sIno, replaced: null };
  const src = getInode(ns, sIno);
  const dst = dIno === undefined ? undefined : getInode(ns, dIno);
  if (src.type === 'dir' && isAncestorOrSelf(ns, sIno, ddir.ino)) throw new AspenError('EINVAL', 'cannot move a directory into itself');
  if (a.flags === 'exchange') {
    assert(dst !== undefined, 'exchange has a target');
    if (dst.type === 'dir' && isAncestorOrSelf(ns, dst.ino, sdir.ino)) throw new AspenError('EINVAL', 'cannot move a directory into itself');
    sdir.entries.set(a.srcName, dst.ino);
    ddir.entries.set(a.dstName, src.ino);
    moveDir(src, sdir, ddir);
    moveDir(dst, ddir, sdir);
    src.ctimeNs = nowNs;
    dst.ctimeNs = nowNs;
    touchDir(sdir, nowNs);
    touchDir(ddir, nowNs);
    return { ino: sIno, replaced: null };
  }
  if (dst !== undefined) {
    if (src.type === 'dir' && dst.type !== 'dir') throw new AspenError('ENOTDIR', `${a.dstName} is not a directory`);
    if (src.type !== 'dir' && dst.type === 'dir') throw new AspenError('EISDIR', `${a.dstName} is a directory`);
    if (dst.type === 'dir' && dst.entries!.size > 0) throw new AspenError('ENOTEMPTY', `${a.dstName} is not empty`);
  } else if (sdir !== ddir) {
    checkDirRoom(ddir);
  }
  // Validated: from here on nothing throws.
  let replaced: { ino: Ino; nlink: number; orphaned: boolean } | null = null;
  sdir.entries.delete(a.srcName);
  if (dst !== undefined) {
    ddir.entries.delete(a.dstName);
    if (dst.type === 'dir') dropDir(ns, dst, ddir);
    else dropLink(ns, dst, nowNs);
    replaced = { ino: dst.ino, nlink: dst.type === 'dir' ? 0 : dst.nlink, orphaned: ns.orphans.has(dst.ino) };
  }
  ddir.entries.set(a.dstName, sIno);
  moveDir(src, sdir, ddir);
  src.ctimeNs = nowNs;
  touchDir(sdir, nowNs);
  touchDir(ddir, nowNs);
  assert(ddir.entries.get(a.dstName) === sIno && !sdir.entries.has(a.srcName), 'renamed');
  return { ino: sIno, replaced };
}

/** Moves a directory's parent link from `from` to `to` (no-op for non-directories or same parent). */
function moveDir(inode: FsInode, from: FsInode, to: FsInode): void {
  if (inode.type !== 'dir' || from === to) return;
  assert(inode.parent === from.ino, 'a directory moves from its parent');
  inode.parent = to.ino;
  from.nlink--;
  to.nlink++;
}

/** What setattr changes; absent fields are left alone. Times: ns or 'now' (the command's stamp). */
export interface SetattrArgs {
  ino: Ino;
  mode?: number;
  uid?: number;
  gid?: number;
  sizeBytes?: number;
  atimeNs?: bigint | 'now';
  mtimeNs?: bigint | 'now';
}

/** Data objects a caller must trim after a shrinking truncate or delete after a purge. */
export interface ObjectTrim {
  dataPoolId: number;
  ino: Ino;
  objectSizeBytes: number;
  /** Truncate object `partial.objno` to `partial.offsetBytes` (null when the new size is object aligned). */
  partial: { objno: number; offsetBytes: number; name: string } | null;
  /** Remove objects `[removeFromObjno, removeToObjno)` (those that may exist; absent ones are fine). */
  removeFromObjno: number;
  removeToObjno: number;
}

const objectsFor = (sizeBytes: number, objectSizeBytes: number): number => Math.ceil(sizeBytes / objectSizeBytes);

/**
 * setattr (chmod, chown, truncate, utimens). ctime becomes now whenever anything is set; a
 * size change also sets mtime to now unless mtime is given. Shrinking returns the objects to trim.
 * @throws AspenError ENOENT, EISDIR (size of a directory), EINVAL (size of a symlink)
 */
export function setattr(ns: FsNamespace, a: SetattrArgs, nowNs: bigint): { inode: FsInode; trim: ObjectTrim | null } {
  const inode = getInode(ns, a.ino);
  if (a.sizeBytes !== undefined && inode.type === 'dir') throw new AspenError('EISDIR', `inode ${a.ino} is a directory`);
  if (a.sizeBytes !== undefined && inode.type === 'symlink') throw new AspenError('EINVAL', `inode ${a.ino} is a symlink`);
  assert(a.sizeBytes === undefined || (Number.isSafeInteger(a.sizeBytes) && a.sizeBytes >= 0), 'size validated by the schema');
  const at = (t: bigint | 'now'): bigint => (t === 'now' ? nowNs : t);
  let trim: ObjectTrim | null = null;
  if (a.mode !== undefined) inode.mode = a.mode;
  if (a.uid !== undefined) inode.uid = a.uid;
  if (a.gid !== undefined) inode.gid = a.gid;
  if (a.sizeBytes !== undefined) {
    const old = inode.sizeBytes;
    if (a.sizeBytes < old) {
      const os = inode.objectSizeBytes;
      const offsetBytes = a.sizeBytes % os;
      const objno = Math.floor(a.sizeBytes / os);
      trim = {
        dataPoolId: ns.dataPoolId, ino: inode.ino, objectSizeBytes: os,
        partial: offsetBytes === 0 ? null : { objno, offsetBytes, name: dataObjectName(inode.ino, objno) },
        removeFromObjno: objectsFor(a.sizeBytes, os), removeToObjno: objectsFor(old, os),
      };
    }
    ns.bytesUsed += a.sizeBytes - old;
    inode.sizeBytes = a.sizeBytes;
    inode.mtimeNs = nowNs;
  }
  if (a.atimeNs !== undefined) inode.atimeNs = at(a.atimeNs);
  if (a.mtimeNs !== undefined) inode.mtimeNs = at(a.mtimeNs);
  inode.ctimeNs = nowNs;
  assert(ns.bytesUsed >= 0, 'bytes used stays non-negative');
  return { inode, trim };
}

/** setxattr flags: none, XATTR_CREATE, XATTR_REPLACE. */
export type XattrFlags = 'none' | 'create' | 'replace';

function checkXattrName(name: string): void {
  if (LONE_SURROGATE.test(name)) throw new AspenError('EINVAL', 'xattr name is not valid Unicode');
  if (name === '' || byteLength(name) > FS_XATTR_NAME_MAX_BYTES) throw new AspenError('ERANGE', `xattr name must be 1-${FS_XATTR_NAME_MAX_BYTES} bytes`);
}

const xattrBytes = (inode: FsInode): number => {
  let n = 0;
  for (const [k, v] of inode.xattrs) n += byteLength(k) + base64Bytes(v);
  return n;
};

/** setxattr(2); `valueB64` is the value in base64. @throws AspenError ENOENT, ERANGE, E2BIG, EEXIST, ENODATA, ENOSPC */
export function setxattr(ns: FsNamespace, a: { ino: Ino; name: string; valueB64: string; flags: XattrFlags }, nowNs: bigint): FsInode {
  const inode = getInode(ns, a.ino);
  checkXattrName(a.name);
  const valueBytes = base64Bytes(a.valueB64);
  if (valueBytes > FS_XATTR_VALUE_MAX_BYTES) throw new AspenError('E2BIG', `xattr value larger than ${FS_XATTR_VALUE_MAX_BYTES} bytes`);
  const old = inode.xattrs.get(a.name);
  if (a.flags === 'create' && old !== undefined) throw new AspenError('EEXIST', `xattr ${a.name} exists`);
  if (a.flags === 'replace' && old === undefined) throw new AspenError('ENODATA', `no xattr ${a.name}`);
  const total = xattrBytes(inode) - (old === undefined ? 0 : byteLength(a.name) + base64Bytes(old)) + byteLength(a.name) + valueBytes;
  if (total > FS_XATTRS_PER_INODE_MAX_BYTES) throw new AspenError('ENOSPC', `xattrs of inode ${a.ino} would exceed ${FS_XATTRS_PER_INODE_MAX_BYTES} bytes`);
  inode.xattrs.set(a.name, a.valueB64);
  inode.ctimeNs = nowNs;
  return inode;
}

/** removexattr(2). @throws AspenError ENOENT, ERANGE, ENODATA */
export function removexattr(ns: FsNamespace, a: { ino: Ino; name: string }, nowNs: bigint): FsInode {
  const inode = getInode(ns, a.ino);
  checkXattrName(a.name);
  if (!inode.xattrs.delete(a.name)) throw new AspenError('ENODATA', `no xattr ${a.name}`);
  inode.ctimeNs = nowNs;
  return inode;
}

/**
 * Removes an orphan (an unlinked file no client has open any more) and returns the data
 * objects the caller must delete: every object below its size may exist.
 * @throws AspenError ENOENT, EBUSY (the inode still has links)
 */
export function purgeInode(ns: FsNamespace, ino: Ino): ObjectTrim {
  const inode = getInode(ns, ino);
  if (inode.nlink > 0) throw new AspenError('EBUSY', `inode ${ino} still has ${inode.nlink} link(s)`);
  assert(ns.orphans.has(ino) && inode.type === 'file', 'an unlinked inode still present is an orphaned file');
  ns.orphans.delete(ino);
  ns.inodes.delete(ino);
  ns.bytesUsed -= inode.sizeBytes;
  assert(!ns.inodes.has(ino) && ns.bytesUsed >= 0, 'purged');
  return { dataPoolId: ns.dataPoolId, ino, objectSizeBytes: inode.objectSizeBytes, partial: null, removeFromObjno: 0, removeToObjno: objectsFor(inode.sizeBytes, inode.objectSizeBytes) };
}

/** lookup: '.' and '..' name the directory and its parent. @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG */
export function lookup(ns: FsNamespace, parent: Ino, name: string): FsInode {
  const dir = getDir(ns, parent);
  if (name === '.') return dir;
  if (name === '..') return getInode(ns, dir.parent);
  checkName(name);
  const ino = dir.entries.get(name);
  if (ino === undefined) throw new AspenError('ENOENT', `${name} does not exist`);
  return getInode(ns, ino);
}

/**
 * One page of a directory, in name order, after `after` (exclusive; '' from the start). The
 * cursor is a name, so a page stays correct while entries come and go between pages.
 * @throws AspenError ENOENT, ENOTDIR
 */
export function readdir(ns: FsNamespace, ino: Ino, after: string, limit: number): { entries: { name: string; ino: Ino; type: InodeType }[]; next: string | null } {
  assert(limit >= 1 && limit <= FS_READDIR_LIMIT_MAX, 'readdir limit validated by the schema');
  const dir = getDir(ns, ino);
  let names = sortedNames.get(dir);
  if (names === undefined) {
    names = [...dir.entries.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    sortedNames.set(dir, names);
  }
  assert(names.length === dir.entries.size, 'the sorted names are current');
  // First index whose name is > after.
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid]! > after) hi = mid;
    else lo = mid + 1;
  }
  const page = names.slice(lo, lo + limit);
  const entries = page.map((name) => {
    const child = getInode(ns, dir.entries.get(name)!);
    return { name, ino: child.ino, type: child.type };
  });
  return { entries, next: lo + limit < names.length ? page.at(-1)! : null };
}

/** readlink(2). @throws AspenError ENOENT, EINVAL (not a symlink) */
export function readlink(ns: FsNamespace, ino: Ino): string {
  const inode = getInode(ns, ino);
  if (inode.type !== 'symlink') throw new AspenError('EINVAL', `inode ${ino} is not a symlink`);
  return inode.target;
}

/** getxattr(2): the value in base64. @throws AspenError ENOENT, ERANGE, ENODATA */
export function getxattr(ns: FsNamespace, ino: Ino, name: string): string {
  const inode = getInode(ns, ino);
  checkXattrName(name);
  const v = inode.xattrs.get(name);
  if (v === undefined) throw new AspenError('ENODATA', `no xattr ${name}`);
  return v;
}

/** listxattr(2), names sorted. @throws AspenError ENOENT */
export function listxattr(ns: FsNamespace, ino: Ino): string[] {
  return [...getInode(ns, ino).xattrs.keys()].sort();
}

/** Counts for statfs and `fs get`. */
export function namespaceCounts(ns: FsNamespace): { inodes: number; files: number; dirs: number; symlinks: number; orphans: number; bytes: number; inodes_max: number } {
  let files = 0;
  let dirs = 0;
  let symlinks = 0;
  for (const i of ns.inodes.values()) {
    if (i.type === 'file') files++;
    else if (i.type === 'dir') dirs++;
    else symlinks++;
  }
  return { inodes: ns.inodes.size, files, dirs, symlinks, orphans: ns.orphans.size, bytes: ns.bytesUsed, inodes_max: FS_INODES_MAX };
}

/** An inode's attributes as JSON (times as decimal ns strings: they exceed 2^53). */
export function attrView(i: FsInode): { ino: Ino; type: InodeType; mode: number; uid: number; gid: number; nlink: number; size: number; atime_ns: string; mtime_ns: string; ctime_ns: string; object_size: number } {
  return {
    ino: i.ino, type: i.type, mode: i.mode, uid: i.uid, gid: i.gid, nlink: i.nlink, size: i.sizeBytes,
    atime_ns: i.atimeNs.toString(), mtime_ns: i.mtimeNs.toString(), ctime_ns: i.ctimeNs.toString(), object_size: i.objectSizeBytes,
  };
}

/**
 * Checks the namespace's invariants and returns what is wrong (empty when sound): every
 * entry names a live inode; a non-directory's nlink counts its entries; a directory has one
 * entry in its `parent` (none for the root), nlink 2 + subdirectories, size = entry count, and
 * reaches the root; the orphans are exactly the files with nlink 0; `bytesUsed` sums file
 * sizes; inode numbers are below `nextIno`. O(inodes + entries); used after a snapshot is
 * decoded and by tests.
 */
export function namespaceErrors(ns: FsNamespace, max = 10): string[] {
  const errors: string[] = [];
  const err = (m: string): void => {
    if (errors.length < max) errors.push(m);
  };
  const refs = new Map<Ino, number>();
  const referrer = new Map<Ino, Ino>();
  let bytes = 0;
  for (const [ino, i] of ns.inodes) {
    if (i.ino !== ino || ino >= ns.nextIno || ino < ROOT_INO) err(`inode ${ino}: bad number ${i.ino} (next ${ns.nextIno})`);
    if ((i.entries !== null) !== (i.type === 'dir')) err(`inode ${ino}: entries do not match type ${i.type}`);
    if (i.type === 'file') bytes += i.sizeBytes;
    if (i.entries === null) continue;
    let subdirs = 0;
    for (const [name, child] of i.entries) {
      const c = ns.inodes.get(child);
      if (c === undefined) {
        err(`dir ${ino}: entry ${JSON.stringify(name)} names missing inode ${child}`);
        continue;
      }
      refs.set(child, (refs.get(child) ?? 0) + 1);
      referrer.set(child, ino);
      if (c.type === 'dir') subdirs++;
    }
    if (i.nlink !== 2 + subdirs) err(`dir ${ino}: nlink ${i.nlink}, expected ${2 + subdirs}`);
    if (i.sizeBytes !== i.entries.size) err(`dir ${ino}: size ${i.sizeBytes}, ${i.entries.size} entries`);
  }
  for (const [ino, i] of ns.inodes) {
    const n = refs.get(ino) ?? 0;
    if (i.type === 'dir') {
      if (ino === ROOT_INO ? n !== 0 || i.parent !== ROOT_INO : n !== 1 || referrer.get(ino) !== i.parent) err(`dir ${ino}: ${n} entries name it, parent ${i.parent}`);
      let cur = i;
      for (let depth = 0; cur.ino !== ROOT_INO; depth++) {
        const up = ns.inodes.get(cur.parent);
        if (up === undefined || up.type !== 'dir' || depth > ns.inodes.size) {
          err(`dir ${ino}: does not reach the root`);
          break;
        }
        cur = up;
      }
    } else {
      if (n !== i.nlink) err(`inode ${ino}: nlink ${i.nlink}, ${n} entries`);
      if ((i.nlink === 0) !== ns.orphans.has(ino) || (i.nlink === 0 && i.type !== 'file')) err(`inode ${ino}: orphan status does not match nlink ${i.nlink}`);
    }
  }
  for (const ino of ns.orphans) if (!ns.inodes.has(ino)) err(`orphan ${ino} is missing`);
  if (bytes !== ns.bytesUsed) err(`bytesUsed ${ns.bytesUsed}, files sum to ${bytes}`);
  if (ns.inodes.get(ROOT_INO)?.type !== 'dir') err('no root directory');
  return errors;
}
