/**
 * Filesystem commands of the monitors: `fs new|rm|ls|get` (as Ceph's FSMap commands, with no
 * metadata pool: the metadata is this replicated state) and the namespace operations the MDS
 * proposes, one Raft command each (fs-namespace.ts has the rules). Pure: the proposer's stamp
 * is the only clock.
 */
import { AspenError, assert, assertNever } from '@aspen/shared';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { CommandResult, MutatingCommand, ReadCommand } from './command.ts';
import * as ns from './fs-namespace.ts';
import type { FsNamespace } from './fs-namespace.ts';

/** Every filesystem of the cluster (Ceph FSMap). */
export interface FsMap {
  /** The next filesystem id (Ceph's next_filesystem_id); ids are never reused. */
  nextFscid: number;
  /** By name. */
  filesystems: Map<string, FsNamespace>;
}

export const emptyFsMap = (): FsMap => ({ nextFscid: 1, filesystems: new Map() });

/** The filesystem commands that change state. */
export type FsMutatingCommand = Extract<MutatingCommand, { prefix: `fs ${string}` }>;
/** The filesystem read commands. */
export type FsReadCommand = Extract<ReadCommand, { prefix: `fs ${string}` }>;

/** Whether `prefix` is a filesystem command. */
export const isFsPrefix = (prefix: string): boolean => prefix.startsWith('fs ');

function getFs(fsMap: FsMap, name: string): FsNamespace {
  const fs = fsMap.filesystems.get(name);
  if (fs === undefined) throw new AspenError('ENOENT', `filesystem '${name}' does not exist`);
  return fs;
}

/** The filesystem using pool `poolId` as its data pool, if any (a pool in use cannot be removed). */
export function fsUsingPool(fsMap: FsMap, poolId: number): string | undefined {
  for (const fs of fsMap.filesystems.values()) if (fs.dataPoolId === poolId) return fs.name;
  return undefined;
}

function fsView(fs: FsNamespace, osdMap: OsdMap): Record<string, unknown> {
  return {
    name: fs.name, id: fs.fscid, data_pool: osdMap.pools.get(fs.dataPoolId)?.name ?? null, data_pool_id: fs.dataPoolId,
    object_size: fs.defaultObjectSizeBytes, created_ms: fs.createdMs, root_ino: ns.ROOT_INO, next_ino: fs.nextIno, ...ns.namespaceCounts(fs),
  };
}

const ok = (data: unknown, message = ''): CommandResult => ({ code: 0, message, data });

/**
 * Applies a filesystem command.
 * @throws AspenError with the POSIX errno name of the refusal; nothing changed then.
 */
export function applyFsCommand(fsMap: FsMap, osdMap: OsdMap, cmd: FsMutatingCommand, stampMs: number): CommandResult {
  const nowNs = BigInt(stampMs) * 1_000_000n;
  switch (cmd.prefix) {
    case 'fs new': {
      const pool = [...osdMap.pools.values()].find((p) => p.name === cmd.data_pool);
      if (pool === undefined) throw new AspenError('ENOENT', `pool '${cmd.data_pool}' does not exist`);
      if (fsMap.filesystems.has(cmd.fs_name)) throw new AspenError('EEXIST', `filesystem '${cmd.fs_name}' already exists`);
      const user = fsUsingPool(fsMap, pool.id);
      if (user !== undefined) throw new AspenError('EINVAL', `filesystem '${user}' is already using pool '${pool.name}'`);
      if (fsMap.filesystems.size >= ns.FILESYSTEMS_MAX) throw new AspenError('ENOSPC', `at most ${ns.FILESYSTEMS_MAX} filesystems`);
      const fs = ns.newNamespace(cmd.fs_name, fsMap.nextFscid, pool.id, cmd.object_size ?? ns.FS_DEFAULT_OBJECT_SIZE_BYTES, stampMs);
      fsMap.nextFscid++;
      fsMap.filesystems.set(fs.name, fs);
      assert(fsMap.filesystems.get(cmd.fs_name) === fs, 'filesystem stored');
      return ok(fsView(fs, osdMap), `new fs with data pool ${pool.id} and id ${fs.fscid}`);
    }
    case 'fs rm': {
      const fs = getFs(fsMap, cmd.fs_name);
      if (cmd.yes_i_really_mean_it !== true) {
        throw new AspenError('EPERM', `this is a DESTRUCTIVE operation and will make data in your filesystem permanently inaccessible. Add --yes-i-really-mean-it if you are sure you wish to continue.`);
      }
      if (fs.inodes.size > 1 && cmd.force !== true) {
        throw new AspenError('ENOTEMPTY', `filesystem '${fs.name}' still has ${fs.inodes.size - 1} inode(s); remove them or add --force (data objects stay in the pool)`);
      }
      fsMap.filesystems.delete(fs.name);
      return ok({});
    }
    case 'fs mknod': {
      const r = ns.mknod(getFs(fsMap, cmd.fs_name), { parent: cmd.parent, name: cmd.name, mode: cmd.mode, uid: cmd.uid, gid: cmd.gid, exclusive: cmd.exclusive ?? true }, nowNs);
      return ok({ ...ns.attrView(r.inode), created: r.created });
    }
    case 'fs mkdir':
      return ok(ns.attrView(ns.mkdir(getFs(fsMap, cmd.fs_name), { parent: cmd.parent, name: cmd.name, mode: cmd.mode, uid: cmd.uid, gid: cmd.gid }, nowNs)));
    case 'fs symlink':
      return ok(ns.attrView(ns.symlink(getFs(fsMap, cmd.fs_name), { parent: cmd.parent, name: cmd.name, target: cmd.target, uid: cmd.uid, gid: cmd.gid }, nowNs)));
    case 'fs link':
      return ok(ns.attrView(ns.link(getFs(fsMap, cmd.fs_name), { ino: cmd.ino, parent: cmd.parent, name: cmd.name }, nowNs)));
    case 'fs unlink':
      return ok(ns.unlink(getFs(fsMap, cmd.fs_name), { parent: cmd.parent, name: cmd.name }, nowNs));
    case 'fs rmdir':
      return ok(ns.rmdir(getFs(fsMap, cmd.fs_name), { parent: cmd.parent, name: cmd.name }, nowNs));
    case 'fs rename':
      return ok(ns.rename(getFs(fsMap, cmd.fs_name), { srcParent: cmd.src_parent, srcName: cmd.src_name, dstParent: cmd.dst_parent, dstName: cmd.dst_name, flags: cmd.flags ?? 'none' }, nowNs));
    case 'fs setattr': {
      const time = (t: string | undefined): bigint | 'now' | undefined => (t === undefined || t === 'now' ? t : BigInt(t));
      const atimeNs = time(cmd.atime_ns);
      const mtimeNs = time(cmd.mtime_ns);
      const r = ns.setattr(getFs(fsMap, cmd.fs_name), {
        ino: cmd.ino, ...(cmd.mode === undefined ? {} : { mode: cmd.mode }), ...(cmd.uid === undefined ? {} : { uid: cmd.uid }),
        ...(cmd.gid === undefined ? {} : { gid: cmd.gid }), ...(cmd.size === undefined ? {} : { sizeBytes: cmd.size }),
        ...(atimeNs === undefined ? {} : { atimeNs }), ...(mtimeNs === undefined ? {} : { mtimeNs }),
      }, nowNs);
      return ok({ ...ns.attrView(r.inode), trim: r.trim });
    }
    case 'fs setxattr':
      return ok(ns.attrView(ns.setxattr(getFs(fsMap, cmd.fs_name), { ino: cmd.ino, name: cmd.name, valueB64: cmd.value, flags: cmd.flags ?? 'none' }, nowNs)));
    case 'fs removexattr':
      return ok(ns.attrView(ns.removexattr(getFs(fsMap, cmd.fs_name), { ino: cmd.ino, name: cmd.name }, nowNs)));
    case 'fs purge-inode':
      return ok(ns.purgeInode(getFs(fsMap, cmd.fs_name), cmd.ino));
    default:
      return assertNever(cmd, 'fs command');
  }
}

/**
 * Executes a filesystem read command.
 * @throws AspenError ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, ERANGE, ENODATA as the POSIX calls do.
 */
export function executeFsRead(fsMap: FsMap, osdMap: OsdMap, cmd: FsReadCommand): { message: string; data: unknown } {
  switch (cmd.prefix) {
    case 'fs ls':
      // Ceph's `fs ls -f json` shape, without a metadata pool.
      return {
        message: '',
        data: [...fsMap.filesystems.values()].map((fs) => ({ name: fs.name, id: fs.fscid, data_pools: [osdMap.pools.get(fs.dataPoolId)?.name ?? null], data_pool_ids: [fs.dataPoolId] })),
      };
    case 'fs get':
      return { message: '', data: fsView(getFs(fsMap, cmd.fs_name), osdMap) };
    case 'fs lookup':
      return { message: '', data: ns.attrView(ns.lookup(getFs(fsMap, cmd.fs_name), cmd.parent, cmd.name)) };
    case 'fs getattr':
      return { message: '', data: ns.attrView(ns.getInode(getFs(fsMap, cmd.fs_name), cmd.ino)) };
    case 'fs readdir':
      return { message: '', data: ns.readdir(getFs(fsMap, cmd.fs_name), cmd.ino, cmd.after ?? '', cmd.limit ?? 1024) };
    case 'fs readlink':
      return { message: '', data: { target: ns.readlink(getFs(fsMap, cmd.fs_name), cmd.ino) } };
    case 'fs getxattr':
      return { message: '', data: { value: ns.getxattr(getFs(fsMap, cmd.fs_name), cmd.ino, cmd.name) } };
    case 'fs listxattr':
      return { message: '', data: { names: ns.listxattr(getFs(fsMap, cmd.fs_name), cmd.ino) } };
    case 'fs statfs':
      return { message: '', data: ns.namespaceCounts(getFs(fsMap, cmd.fs_name)) };
    default:
      return assertNever(cmd, 'fs read command');
  }
}
