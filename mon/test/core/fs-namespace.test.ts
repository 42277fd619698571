/**
 * The filesystem namespace in the monitor state (fs-namespace.ts, fs-commands.ts): every
 * POSIX rule with its errno, each command applied through the state machine (zod + apply +
 * sessions) as the mons apply committed entries, and every refusal leaving the state unchanged.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeMonState, encodeMonState } from '../../src/core/snapshot.ts';
import { executeRead } from '../../src/core/read-commands.ts';
import { FS_XATTR_VALUE_MAX_BYTES, dataObjectName, namespaceErrors } from '../../src/core/fs-namespace.ts';
import { type Attr, FS, FsDriver, Q, ROOT } from './fs-helpers.ts';
import { T0 } from './helpers.ts';

const NS = (ms: number): string => (BigInt(ms) * 1_000_000n).toString();
const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('fs new / ls / get / rm', () => {
  it('creates a filesystem on an existing data pool, lists and describes it, and refuses duplicates', () => {
    const f = new FsDriver(undefined, false);
    expect(f.d.apply({ prefix: 'fs new', fs_name: FS, data_pool: 'nope' }).result.code).toBe('ENOENT');
    f.d.ok({ prefix: 'osd pool create', pool: 'data', pg_num: 8 });
    f.d.ok({ prefix: 'osd pool create', pool: 'data2', pg_num: 8 });
    const r = f.d.ok({ prefix: 'fs new', fs_name: FS, data_pool: 'data', object_size: 1 << 20 });
    expect(r.data).toMatchObject({ name: FS, id: 1, data_pool: 'data', object_size: 1 << 20, inodes: 1, dirs: 1 });
    f.d.refused({ prefix: 'fs new', fs_name: FS, data_pool: 'data2' }, 'EEXIST');
    f.d.refused({ prefix: 'fs new', fs_name: 'other', data_pool: 'data' }, 'EINVAL', /already using pool 'data'/);
    expect(() => f.d.apply({ prefix: 'fs new', fs_name: 'x', data_pool: 'data2', object_size: 1000 })).toThrow(/EINVAL/);
    f.d.ok({ prefix: 'fs new', fs_name: 'other', data_pool: 'data2' });
    expect(executeRead(f.state, { prefix: 'fs ls' }, Q).data).toEqual([
      { name: FS, id: 1, data_pools: ['data'], data_pool_ids: [1] },
      { name: 'other', id: 2, data_pools: ['data2'], data_pool_ids: [2] },
    ]);
    expect(executeRead(f.state, { prefix: 'fs get', fs_name: 'other' }, Q).data).toMatchObject({ name: 'other', root_ino: 1, created_ms: T0 });
    expect(() => executeRead(f.state, { prefix: 'fs get', fs_name: 'zzz' }, Q)).toThrow(/ENOENT/);
  });

  it('fs rm needs the confirmation flag and an empty namespace (or force); a pool in use cannot be removed', () => {
    const f = new FsDriver();
    f.d.ok({ prefix: 'config set', who: 'mon', name: 'mon_allow_pool_delete', value: 'true' });
    f.d.refused({ prefix: 'osd pool rm', pool: 'data', pool2: 'data', yes_i_really_really_mean_it: true }, 'EBUSY', /in use by filesystem 'cephfs'/);
    f.mkdir(ROOT, 'd');
    f.d.refused({ prefix: 'fs rm', fs_name: FS }, 'EPERM', /--yes-i-really-mean-it/);
    f.d.refused({ prefix: 'fs rm', fs_name: FS, yes_i_really_mean_it: true }, 'ENOTEMPTY');
    f.ok('rmdir', { parent: ROOT, name: 'd' });
    f.d.ok({ prefix: 'fs rm', fs_name: FS, yes_i_really_mean_it: true });
    f.d.refused({ prefix: 'fs rm', fs_name: FS, yes_i_really_mean_it: true }, 'ENOENT');
    f.d.ok({ prefix: 'fs new', fs_name: FS, data_pool: 'data' });
    f.mkdir(ROOT, 'd');
    f.d.ok({ prefix: 'fs rm', fs_name: FS, yes_i_really_mean_it: true, force: true });
    f.d.ok({ prefix: 'osd pool rm', pool: 'data', pool2: 'data', yes_i_really_really_mean_it: true });
  });
});

describe('names, create, mkdir, symlink', () => {
  it('refuses bad names with EINVAL and names over 255 bytes with ENAMETOOLONG', () => {
    const f = new FsDriver();
    for (const name of ['', '.', '..', 'a/b', 'a\0b', 'lone\ud800', '\udc00x']) f.refused('mknod', { parent: ROOT, name, mode: 0o644, uid: 0, gid: 0 }, 'EINVAL');
    f.refused('mkdir', { parent: ROOT, name: 'x'.repeat(256), mode: 0o755, uid: 0, gid: 0 }, 'ENAMETOOLONG');
    f.refused('mknod', { parent: ROOT, name: 'é'.repeat(128), mode: 0o644, uid: 0, gid: 0 }, 'ENAMETOOLONG'); // 256 bytes
    f.create(ROOT, 'é'.repeat(127) + 'x'); // 255 bytes
    f.create(ROOT, 'x'.repeat(255));
    f.create(ROOT, 'emoji \u{1F600}'); // a surrogate pair is fine
    f.refused('symlink', { parent: ROOT, name: 's', target: 'x\ud800', uid: 0, gid: 0 }, 'EINVAL');
    f.refused('setxattr', { ino: ROOT, name: 'user.\udfff', value: '' }, 'EINVAL');
    expect(f.readErr('lookup', { parent: ROOT, name: 'x'.repeat(256) })).toBe('ENAMETOOLONG');
  });

  it('create is exclusive (EEXIST) unless asked otherwise; parents must exist and be directories', () => {
    const f = new FsDriver();
    f.d.nowMs = T0 + 5;
    const a = f.create(ROOT, 'a', 0o640);
    expect(a).toMatchObject({ ino: 2, type: 'file', mode: 0o640, uid: 1000, gid: 1000, nlink: 1, size: 0, mtime_ns: NS(T0 + 5), ctime_ns: NS(T0 + 5), object_size: 4 << 20 });
    expect(f.getattr(ROOT)).toMatchObject({ nlink: 2, size: 1, mtime_ns: NS(T0 + 5), ctime_ns: NS(T0 + 5) });
    f.refused('mknod', { parent: ROOT, name: 'a', mode: 0o644, uid: 0, gid: 0 }, 'EEXIST');
    expect(f.ok<Attr & { created: boolean }>('mknod', { parent: ROOT, name: 'a', mode: 0o600, uid: 0, gid: 0, exclusive: false })).toMatchObject({ ino: 2, mode: 0o640, created: false });
    f.mkdir(ROOT, 'd');
    f.refused('mknod', { parent: ROOT, name: 'd', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'EISDIR');
    f.refused('mknod', { parent: a.ino, name: 'x', mode: 0o644, uid: 0, gid: 0 }, 'ENOTDIR');
    f.refused('mknod', { parent: 999, name: 'x', mode: 0o644, uid: 0, gid: 0 }, 'ENOENT');
    f.refused('mkdir', { parent: ROOT, name: 'a', mode: 0o755, uid: 0, gid: 0 }, 'EEXIST');
    expect(() => f.run('mknod', { parent: ROOT, name: 'y', mode: 0o10000, uid: 0, gid: 0 })).toThrow(/EINVAL/);
  });

  it('mkdir counts subdirectories in the parent nlink; lookup resolves . and ..', () => {
    const f = new FsDriver();
    const d = f.mkdir(ROOT, 'd');
    const e = f.mkdir(d.ino, 'e');
    expect(d.nlink).toBe(2);
    expect(f.getattr(ROOT).nlink).toBe(3);
    expect(f.getattr(d.ino).nlink).toBe(3);
    expect(f.lookup(e.ino, '..').ino).toBe(d.ino);
    expect(f.lookup(e.ino, '.').ino).toBe(e.ino);
    expect(f.lookup(ROOT, '..').ino).toBe(ROOT);
    expect(f.readErr('lookup', { parent: ROOT, name: 'zz' })).toBe('ENOENT');
  });

  it('symlink stores the target; readlink answers it, EINVAL on other types; empty target ENOENT, > 4095 bytes ENAMETOOLONG', () => {
    const f = new FsDriver();
    const s = f.ok('symlink', { parent: ROOT, name: 'l', target: '../some/where', uid: 7, gid: 8 });
    expect(s).toMatchObject({ type: 'symlink', mode: 0o777, size: 13, nlink: 1, uid: 7 });
    expect(f.read<{ target: string }>('readlink', { ino: s.ino }).target).toBe('../some/where');
    expect(f.readErr('readlink', { ino: ROOT })).toBe('EINVAL');
    f.refused('symlink', { parent: ROOT, name: 'm', target: '', uid: 0, gid: 0 }, 'ENOENT');
    f.refused('symlink', { parent: ROOT, name: 'm', target: 'x'.repeat(4096), uid: 0, gid: 0 }, 'ENAMETOOLONG');
    f.refused('symlink', { parent: ROOT, name: 'l', target: 'y', uid: 0, gid: 0 }, 'EEXIST');
    f.ok('symlink', { parent: ROOT, name: 'm', target: 'x'.repeat(4095), uid: 0, gid: 0 });
  });
});

describe('link, unlink, rmdir, purge', () => {
  it('hard links share an inode and count nlink; directories refuse with EPERM', () => {
    const f = new FsDriver();
    const a = f.create(ROOT, 'a');
    const d = f.mkdir(ROOT, 'd');
    f.d.nowMs = T0 + 9;
    expect(f.ok('link', { ino: a.ino, parent: d.ino, name: 'b' })).toMatchObject({ ino: a.ino, nlink: 2, ctime_ns: NS(T0 + 9) });
    expect(f.lookup(d.ino, 'b').ino).toBe(a.ino);
    f.refused('link', { ino: d.ino, parent: ROOT, name: 'dd' }, 'EPERM');
    f.refused('link', { ino: a.ino, parent: ROOT, name: 'd' }, 'EEXIST');
    f.refused('link', { ino: 999, parent: ROOT, name: 'n' }, 'ENOENT');
    f.refused('link', { ino: a.ino, parent: a.ino, name: 'n' }, 'ENOTDIR');
  });

  it('unlink drops a link; the last one leaves an orphan until purge-inode, which returns its objects', () => {
    const f = new FsDriver();
    const a = f.create(ROOT, 'a');
    f.ok('link', { ino: a.ino, parent: ROOT, name: 'b' });
    f.ok('setattr', { ino: a.ino, size: (4 << 20) * 2 + 1 });
    f.refused('unlink', { parent: ROOT, name: 'zz' }, 'ENOENT');
    f.mkdir(ROOT, 'd');
    f.refused('unlink', { parent: ROOT, name: 'd' }, 'EISDIR');
    expect(f.ok('unlink', { parent: ROOT, name: 'a' })).toEqual({ ino: a.ino, nlink: 1, orphaned: false });
    f.refused('purge-inode', { ino: a.ino }, 'EBUSY');
    expect(f.ok('unlink', { parent: ROOT, name: 'b' })).toEqual({ ino: a.ino, nlink: 0, orphaned: true });
    // Still there for open handles: getattr and size flushes work, new links do not.
    expect(f.getattr(a.ino)).toMatchObject({ nlink: 0, size: (4 << 20) * 2 + 1 });
    f.refused('link', { ino: a.ino, parent: ROOT, name: 'again' }, 'ENOENT');
    expect(f.read('statfs')).toMatchObject({ orphans: 1, files: 1, bytes: (4 << 20) * 2 + 1 });
    expect(f.ok('purge-inode', { ino: a.ino })).toEqual({ dataPoolId: 1, ino: a.ino, objectSizeBytes: 4 << 20, partial: null, removeFromObjno: 0, removeToObjno: 3 });
    expect(f.readErr('getattr', { ino: a.ino })).toBe('ENOENT');
    f.refused('purge-inode', { ino: a.ino }, 'ENOENT');
    expect(f.read('statfs')).toMatchObject({ inodes: 2, orphans: 0, files: 0, bytes: 0 });
    const s = f.ok('symlink', { parent: ROOT, name: 's', target: 't', uid: 0, gid: 0 });
    f.ok('unlink', { parent: ROOT, name: 's' });
    expect(f.readErr('getattr', { ino: s.ino }), 'a symlink cannot be open: it goes at once').toBe('ENOENT');
  });

  it('rmdir removes only empty directories (ENOTEMPTY, ENOTDIR, ENOENT) and drops the parent nlink', () => {
    const f = new FsDriver();
    const d = f.mkdir(ROOT, 'd');
    f.create(d.ino, 'x');
    f.create(ROOT, 'file');
    f.refused('rmdir', { parent: ROOT, name: 'd' }, 'ENOTEMPTY');
    f.refused('rmdir', { parent: ROOT, name: 'file' }, 'ENOTDIR');
    f.refused('rmdir', { parent: ROOT, name: 'nope' }, 'ENOENT');
    f.refused('rmdir', { parent: ROOT, name: '..' }, 'EINVAL');
    f.ok('unlink', { parent: d.ino, name: 'x' });
    expect(f.getattr(ROOT).nlink).toBe(3);
    f.ok('rmdir', { parent: ROOT, name: 'd' });
    expect(f.getattr(ROOT).nlink).toBe(2);
    expect(f.readErr('getattr', { ino: d.ino })).toBe('ENOENT');
  });
});

describe('rename', () => {
  const setup = (): { f: FsDriver; a: Attr; b: Attr; d: Attr; e: Attr; sub: Attr } => {
    const f = new FsDriver();
    const a = f.create(ROOT, 'a');
    const b = f.create(ROOT, 'b');
    const d = f.mkdir(ROOT, 'd');
    const e = f.mkdir(ROOT, 'e');
    const sub = f.mkdir(d.ino, 'sub');
    return { f, a, b, d, e, sub };
  };
  const mv = (f: FsDriver, sp: number, sn: string, dp: number, dn: string, flags?: string): Record<string, unknown> => ({ src_parent: sp, src_name: sn, dst_parent: dp, dst_name: dn, ...(flags ? { flags } : {}) });

  it('moves a file, replacing a file atomically (the victim loses its link)', () => {
    const { f, a, b } = setup();
    f.d.nowMs = T0 + 77;
    expect(f.ok('rename', mv(f, ROOT, 'a', ROOT, 'b'))).toEqual({ ino: a.ino, replaced: { ino: b.ino, nlink: 0, orphaned: true } });
    expect(f.names(ROOT)).toEqual(['b', 'd', 'e']);
    expect(f.lookup(ROOT, 'b').ino).toBe(a.ino);
    expect(f.getattr(a.ino).ctime_ns).toBe(NS(T0 + 77));
    expect(f.getattr(b.ino).nlink).toBe(0);
  });

  it('enforces the type rules: EISDIR, ENOTDIR, ENOTEMPTY, ENOENT; replaces an empty directory', () => {
    const { f, d, e } = setup();
    f.refused('rename', mv(f, ROOT, 'a', ROOT, 'd'), 'EISDIR');
    f.refused('rename', mv(f, ROOT, 'd', ROOT, 'a'), 'ENOTDIR');
    f.refused('rename', mv(f, ROOT, 'e', ROOT, 'd'), 'ENOTEMPTY');
    f.refused('rename', mv(f, ROOT, 'nope', ROOT, 'x'), 'ENOENT');
    f.refused('rename', mv(f, ROOT, 'a', 999, 'x'), 'ENOENT');
    f.refused('rename', mv(f, ROOT, 'a', f.lookup(ROOT, 'b').ino, 'x'), 'ENOTDIR');
    expect(f.getattr(ROOT).nlink).toBe(4);
    f.ok('rename', mv(f, ROOT, 'd', ROOT, 'e'));
    expect(f.getattr(ROOT).nlink).toBe(3);
    expect(f.lookup(ROOT, 'e').ino).toBe(d.ino);
    expect(f.readErr('getattr', { ino: e.ino })).toBe('ENOENT');
  });

  it('refuses to move a directory into itself or its subtree (EINVAL)', () => {
    const { f, d, sub } = setup();
    f.refused('rename', mv(f, ROOT, 'd', d.ino, 'x'), 'EINVAL');
    f.refused('rename', mv(f, ROOT, 'd', sub.ino, 'x'), 'EINVAL');
    f.refused('rename', mv(f, ROOT, 'd', sub.ino, 'x', 'exchange'), 'ENOENT');
    f.create(sub.ino, 'y');
    f.refused('rename', mv(f, ROOT, 'd', sub.ino, 'y', 'exchange'), 'EINVAL');
    f.refused('rename', mv(f, sub.ino, 'y', ROOT, 'd', 'exchange'), 'EINVAL');
  });

  it('moves a directory across parents: nlinks and .. follow', () => {
    const { f, d, e, sub } = setup();
    f.ok('rename', mv(f, d.ino, 'sub', e.ino, 'moved'));
    expect(f.getattr(d.ino).nlink).toBe(2);
    expect(f.getattr(e.ino).nlink).toBe(3);
    expect(f.lookup(sub.ino, '..').ino).toBe(e.ino);
    expect(f.getattr(d.ino).size).toBe(0);
  });

  it('RENAME_NOREPLACE refuses an existing target with EEXIST', () => {
    const { f } = setup();
    f.refused('rename', mv(f, ROOT, 'a', ROOT, 'b', 'noreplace'), 'EEXIST');
    f.ok('rename', mv(f, ROOT, 'a', ROOT, 'c', 'noreplace'));
    expect(f.names(ROOT)).toEqual(['b', 'c', 'd', 'e']);
  });

  it('RENAME_EXCHANGE swaps a file and a directory across parents, fixing nlinks and ..', () => {
    const { f, a, d, sub } = setup();
    f.ok('rename', mv(f, ROOT, 'a', d.ino, 'sub', 'exchange'));
    expect(f.lookup(ROOT, 'a').ino).toBe(sub.ino);
    expect(f.lookup(d.ino, 'sub').ino).toBe(a.ino);
    expect(f.lookup(sub.ino, '..').ino).toBe(ROOT);
    expect(f.getattr(d.ino).nlink).toBe(2);
    expect(f.getattr(ROOT).nlink).toBe(5);
    f.refused('rename', mv(f, ROOT, 'b', ROOT, 'zz', 'exchange'), 'ENOENT');
  });

  it('two names of one inode: rename does nothing (POSIX)', () => {
    const { f, a } = setup();
    f.ok('link', { ino: a.ino, parent: ROOT, name: 'a2' });
    expect(f.ok('rename', mv(f, ROOT, 'a', ROOT, 'a2'))).toEqual({ ino: a.ino, replaced: null });
    expect(f.names(ROOT)).toEqual(['a', 'a2', 'b', 'd', 'e']);
    expect(f.getattr(a.ino).nlink).toBe(2);
  });
});

describe('setattr', () => {
  it('chmod/chown set ctime; truncate sets mtime and returns the objects to trim when shrinking', () => {
    const f = new FsDriver();
    const a = f.create(ROOT, 'a');
    f.d.nowMs = T0 + 1000;
    expect(f.ok('setattr', { ino: a.ino, mode: 0o4755, uid: 5, gid: 6 })).toMatchObject({ mode: 0o4755, uid: 5, gid: 6, ctime_ns: NS(T0 + 1000), mtime_ns: a.mtime_ns, trim: null });
    const os = 4 << 20;
    expect(f.ok('setattr', { ino: a.ino, size: 5 * os + 3 })).toMatchObject({ size: 5 * os + 3, mtime_ns: NS(T0 + 1000), trim: null });
    expect(f.ok<{ trim: unknown }>('setattr', { ino: a.ino, size: os + 10 }).trim).toEqual({
      dataPoolId: 1, ino: a.ino, objectSizeBytes: os, partial: { objno: 1, offsetBytes: 10, name: dataObjectName(a.ino, 1) }, removeFromObjno: 2, removeToObjno: 6,
    });
    expect(f.ok<{ trim: unknown }>('setattr', { ino: a.ino, size: os }).trim).toMatchObject({ partial: null, removeFromObjno: 1, removeToObjno: 2 });
    expect(dataObjectName(0x1a2b, 3)).toBe('1a2b.00000003');
    expect(f.ok('setattr', { ino: a.ino, size: 6 * 2 ** 30 }).size).toBe(6 * 2 ** 30); // over 4 GiB
    expect(f.read('statfs')).toMatchObject({ bytes: 6 * 2 ** 30 });
  });

  it('utimens: explicit ns times and "now" (the proposer stamp); size of a directory EISDIR, of a symlink EINVAL', () => {
    const f = new FsDriver();
    const a = f.create(ROOT, 'a');
    f.d.nowMs = T0 + 2000;
    expect(f.ok('setattr', { ino: a.ino, atime_ns: '1234567890123456789', mtime_ns: 'now' })).toMatchObject({ atime_ns: '1234567890123456789', mtime_ns: NS(T0 + 2000), ctime_ns: NS(T0 + 2000) });
    expect(f.ok('setattr', { ino: a.ino, size: 10, mtime_ns: '5' })).toMatchObject({ size: 10, mtime_ns: '5' });
    f.refused('setattr', { ino: ROOT, size: 0 }, 'EISDIR');
    const s = f.ok('symlink', { parent: ROOT, name: 's', target: 't', uid: 0, gid: 0 });
    f.refused('setattr', { ino: s.ino, size: 0 }, 'EINVAL');
    f.refused('setattr', { ino: 999, mode: 0o600 }, 'ENOENT');
    expect(() => f.run('setattr', { ino: a.ino, atime_ns: '18446744073709551616' })).toThrow(/EINVAL/);
  });
});

describe('xattrs', () => {
  it('XATTR_CREATE/REPLACE (EEXIST/ENODATA), get/list/remove, and the limits (ERANGE, E2BIG, ENOSPC)', () => {
    const f = new FsDriver();
    const a = f.create(ROOT, 'a');
    f.d.nowMs = T0 + 3;
    expect(f.ok('setxattr', { ino: a.ino, name: 'user.b', value: b64('two'), flags: 'create' }).ctime_ns).toBe(NS(T0 + 3));
    f.ok('setxattr', { ino: a.ino, name: 'user.a', value: b64('one') });
    f.refused('setxattr', { ino: a.ino, name: 'user.a', value: b64('x'), flags: 'create' }, 'EEXIST');
    f.refused('setxattr', { ino: a.ino, name: 'user.c', value: b64('x'), flags: 'replace' }, 'ENODATA');
    f.ok('setxattr', { ino: a.ino, name: 'user.a', value: b64('uno'), flags: 'replace' });
    expect(f.read<{ value: string }>('getxattr', { ino: a.ino, name: 'user.a' }).value).toBe(b64('uno'));
    expect(f.read<{ names: string[] }>('listxattr', { ino: a.ino }).names).toEqual(['user.a', 'user.b']);
    expect(f.readErr('getxattr', { ino: a.ino, name: 'user.zz' })).toBe('ENODATA');
    f.ok('removexattr', { ino: a.ino, name: 'user.b' });
    f.refused('removexattr', { ino: a.ino, name: 'user.b' }, 'ENODATA');
    f.refused('setxattr', { ino: a.ino, name: '', value: '' }, 'ERANGE');
    f.refused('setxattr', { ino: a.ino, name: 'u'.repeat(256), value: '' }, 'ERANGE');
    const big = Buffer.alloc(FS_XATTR_VALUE_MAX_BYTES + 1).toString('base64');
    f.refused('setxattr', { ino: a.ino, name: 'user.big', value: big }, 'E2BIG');
    const half = Buffer.alloc(40_000).toString('base64');
    f.ok('setxattr', { ino: a.ino, name: 'user.h1', value: half });
    f.refused('setxattr', { ino: a.ino, name: 'user.h2', value: half }, 'ENOSPC');
    f.ok('setxattr', { ino: a.ino, name: 'user.h1', value: half }); // replacing counts the old value out
    f.ok('setxattr', { ino: ROOT, name: 'user.empty', value: '' });
    expect(f.read<{ value: string }>('getxattr', { ino: ROOT, name: 'user.empty' }).value).toBe('');
    expect(() => f.run('setxattr', { ino: a.ino, name: 'user.x', value: 'not base64!' })).toThrow(/EINVAL/);
  });
});

describe('readdir, statfs, exactly-once, snapshots', () => {
  it('pages a large directory in name order with a name cursor that survives changes between pages', () => {
    const f = new FsDriver();
    const d = f.mkdir(ROOT, 'big');
    const names = Array.from({ length: 2500 }, (_, i) => `f${String(i).padStart(5, '0')}`);
    for (const n of names) f.create(d.ino, n);
    const seen: string[] = [];
    let after = '';
    let pages = 0;
    for (;;) {
      const page = f.read<{ entries: { name: string; type: string }[]; next: string | null }>('readdir', { ino: d.ino, after, limit: 1000 });
      pages++;
      seen.push(...page.entries.map((e) => e.name));
      if (pages === 1) {
        f.ok('unlink', { parent: d.ino, name: names[10]! }); // already returned
        f.ok('unlink', { parent: d.ino, name: names[1500]! }); // not yet returned
      }
      if (page.next === null) break;
      after = page.next;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(names.filter((n) => n !== names[1500]));
    expect(f.read('statfs')).toMatchObject({ inodes: 2 + 2500 - 2 + 2, files: 2500, dirs: 2, orphans: 2 });
    expect(f.readErr('readdir', { ino: f.lookup(d.ino, names[0]!).ino })).toBe('ENOTDIR');
  });

  it('a retried command (same session and seq) returns its first result and is not applied twice', () => {
    const f = new FsDriver();
    const first = f.d.apply({ prefix: 'fs mknod', fs_name: FS, parent: ROOT, name: 'once', mode: 0o644, uid: 0, gid: 0 }, { seq: 100 }).result;
    const retry = f.d.apply({ prefix: 'fs mknod', fs_name: FS, parent: ROOT, name: 'once', mode: 0o644, uid: 0, gid: 0 }, { seq: 100 }).result;
    expect(first.code).toBe(0);
    expect(retry).toEqual(first);
    expect(f.read('statfs')).toMatchObject({ files: 1 });
  });

  it('the namespace survives a snapshot byte for byte; a v2 snapshot (before filesystems) still loads', () => {
    const f = new FsDriver();
    const d = f.mkdir(ROOT, 'd');
    const a = f.create(d.ino, 'a');
    f.ok('link', { ino: a.ino, parent: ROOT, name: 'hard' });
    f.ok('symlink', { parent: ROOT, name: 'l', target: 'd/a', uid: 0, gid: 0 });
    f.ok('setxattr', { ino: a.ino, name: 'user.x', value: b64('v') });
    f.ok('setattr', { ino: a.ino, size: 12345, atime_ns: '18446744073709551615' });
    const o = f.create(ROOT, 'orphan');
    f.ok('unlink', { parent: ROOT, name: 'orphan' });
    const bytes = encodeMonState(f.state);
    const restored = decodeMonState(bytes);
    expect(restored.fsMap).toEqual(f.state.fsMap);
    expect(Buffer.from(encodeMonState(restored)).equals(Buffer.from(bytes))).toBe(true);
    const g = new FsDriver(restored);
    expect(g.getattr(a.ino)).toEqual(f.getattr(a.ino));
    expect(g.read('statfs')).toMatchObject({ orphans: 1 });
    g.ok('purge-inode', { ino: o.ino });
    expect(g.create(ROOT, 'next').ino).toBe(o.ino + 1); // inode numbers are never reused

    // A snapshot whose namespace breaks an invariant is refused as corrupt, not loaded.
    const ns = f.state.fsMap.filesystems.get(FS)!;
    ns.inodes.get(a.ino)!.nlink = 3;
    expect(namespaceErrors(ns)).toEqual([`inode ${a.ino}: nlink 3, 2 entries`]);
    expect(() => decodeMonState(encodeMonState(f.state))).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
    ns.inodes.get(a.ino)!.nlink = 2;
    ns.inodes.get(d.ino)!.parent = d.ino;
    expect(namespaceErrors(ns).join()).toMatch(/parent/);
    ns.inodes.get(d.ino)!.parent = ROOT;
    expect(namespaceErrors(ns)).toEqual([]);

    const v2 = decodeMonState(new Uint8Array(readFileSync(join(import.meta.dirname, '../../testdata/mon-state/v2.bin'))));
    expect(v2.fsMap.filesystems.size).toBe(0);
    expect(v2.s3Users.has('alice')).toBe(true);
    const h = new FsDriver(v2);
    h.d.ok({ prefix: 'fs new', fs_name: FS, data_pool: 'cephfs_data' });
    expect(h.create(ROOT, 'x').ino).toBe(2);
  });
});
