/**
 * zod schemas of the filesystem commands (`fs new|rm|ls|get` as Ceph's, and the namespace
 * operations the MDS proposes), spread into the command unions of command.ts. The schema
 * checks shapes and ranges (EINVAL at the edge); POSIX rules with their own errno (name
 * length, '.', '..') are the state machine's (fs-namespace.ts), so they answer with the right code.
 */
import { z } from 'zod';

const fsName = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'only letters, digits and _ . : -');
const poolName = fsName;
const ino = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
/** A directory entry name; POSIX rules are checked on apply (EINVAL/ENAMETOOLONG). */
const dname = z.string().max(4096);
const mode = z.number().int().min(0).max(0o7777);
const id32 = z.number().int().min(0).max(0xffff_ffff);
/** ns since the Unix epoch as a decimal string (u64), or 'now' (the proposer's stamp). */
const timeNs = z.union([z.literal('now'), z.string().regex(/^\d{1,20}$/, 'expected ns since the epoch').refine((s) => BigInt(s) < 1n << 64n, 'exceeds u64')]);
const b64 = z.string().max(200_000).regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'expected base64');
const objectSize = z.number().int().min(4096).max(64 << 20).refine((n) => (n & (n - 1)) === 0, 'must be a power of two');

/** State-changing filesystem commands. */
export const fsMutatingSchemas = [
  z.object({ prefix: z.literal('fs new'), fs_name: fsName, data_pool: poolName, object_size: objectSize.optional() }),
  z.object({ prefix: z.literal('fs rm'), fs_name: fsName, yes_i_really_mean_it: z.boolean().optional(), force: z.boolean().optional() }),
  z.object({ prefix: z.literal('fs mknod'), fs_name: fsName, parent: ino, name: dname, mode, uid: id32, gid: id32, exclusive: z.boolean().optional() }),
  z.object({ prefix: z.literal('fs mkdir'), fs_name: fsName, parent: ino, name: dname, mode, uid: id32, gid: id32 }),
  z.object({ prefix: z.literal('fs symlink'), fs_name: fsName, parent: ino, name: dname, target: z.string().max(16_384), uid: id32, gid: id32 }),
  z.object({ prefix: z.literal('fs link'), fs_name: fsName, ino, parent: ino, name: dname }),
  z.object({ prefix: z.literal('fs unlink'), fs_name: fsName, parent: ino, name: dname }),
  z.object({ prefix: z.literal('fs rmdir'), fs_name: fsName, parent: ino, name: dname }),
  z.object({
    prefix: z.literal('fs rename'), fs_name: fsName, src_parent: ino, src_name: dname, dst_parent: ino, dst_name: dname,
    flags: z.enum(['none', 'noreplace', 'exchange']).optional(),
  }),
  z.object({
    prefix: z.literal('fs setattr'), fs_name: fsName, ino, mode: mode.optional(), uid: id32.optional(), gid: id32.optional(),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(), atime_ns: timeNs.optional(), mtime_ns: timeNs.optional(),
  }),
  z.object({ prefix: z.literal('fs setxattr'), fs_name: fsName, ino, name: z.string().max(1024), value: b64, flags: z.enum(['none', 'create', 'replace']).optional() }),
  z.object({ prefix: z.literal('fs removexattr'), fs_name: fsName, ino, name: z.string().max(1024) }),
  z.object({ prefix: z.literal('fs purge-inode'), fs_name: fsName, ino }),
] as const;

/** Read-only filesystem commands. */
export const fsReadSchemas = [
  z.object({ prefix: z.literal('fs ls') }),
  z.object({ prefix: z.literal('fs get'), fs_name: fsName }),
  z.object({ prefix: z.literal('fs lookup'), fs_name: fsName, parent: ino, name: dname }),
  z.object({ prefix: z.literal('fs getattr'), fs_name: fsName, ino }),
  z.object({ prefix: z.literal('fs readdir'), fs_name: fsName, ino, after: dname.optional(), limit: z.number().int().min(1).max(4096).optional() }),
  z.object({ prefix: z.literal('fs readlink'), fs_name: fsName, ino }),
  z.object({ prefix: z.literal('fs getxattr'), fs_name: fsName, ino, name: z.string().max(1024) }),
  z.object({ prefix: z.literal('fs listxattr'), fs_name: fsName, ino }),
  z.object({ prefix: z.literal('fs statfs'), fs_name: fsName }),
] as const;
