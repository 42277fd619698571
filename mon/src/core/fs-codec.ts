/**
 * Binary encoding of the {@link FsMap} inside the monitors' Raft snapshot (snapshot.ts).
 * A versioned struct (Ceph ENCODE_START): later versions append fields and keep reading v1.
 * Binary rather than JSON because times are u64 ns and the namespace is the biggest table
 * of the state: about 70 bytes plus names per inode, so the FS_INODES_MAX inodes of one
 * filesystem cost some 100 MB per snapshot (ADR 0010, "Limits").
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { FsMap } from './fs-commands.ts';
import { namespaceErrors, type FsInode, type FsNamespace, type InodeType } from './fs-namespace.ts';

const FS_MAP_V = 1;
const TYPES: readonly InodeType[] = ['file', 'dir', 'symlink'];

function encodeInode(e: Encoder, i: FsInode): void {
  const t = TYPES.indexOf(i.type);
  assert(t >= 0, 'known inode type');
  e.u53(i.ino).u8(t).u16(i.mode).u32(i.uid).u32(i.gid).u32(i.nlink).u53(i.sizeBytes);
  e.u64(i.atimeNs).u64(i.mtimeNs).u64(i.ctimeNs).u32(i.objectSizeBytes).string(i.target).u53(i.parent);
  e.array([...i.xattrs], (ee, [k, v]) => ee.string(k).string(v));
  e.bool(i.entries !== null);
  if (i.entries !== null) e.array([...i.entries], (ee, [name, ino]) => ee.string(name).u53(ino));
}

function decodeInode(d: Decoder): FsInode {
  const ino = d.u53();
  const type = TYPES[d.u8()];
  if (type === undefined) throw new AspenError('E_DECODE', `inode ${ino}: unknown type`);
  const mode = d.u16();
  const uid = d.u32();
  const gid = d.u32();
  const nlink = d.u32();
  const sizeBytes = d.u53();
  const atimeNs = d.u64();
  const mtimeNs = d.u64();
  const ctimeNs = d.u64();
  const objectSizeBytes = d.u32();
  const target = d.string();
  const parent = d.u53();
  const xattrs = new Map(d.array((dd) => [dd.string(), dd.string()] as const));
  const entries = d.bool() ? new Map(d.array((dd) => [dd.string(), dd.u53()] as const)) : null;
  if ((entries !== null) !== (type === 'dir')) throw new AspenError('E_CORRUPT', `inode ${ino}: entries do not match its type`);
  return { ino, type, mode, uid, gid, nlink, sizeBytes, atimeNs, mtimeNs, ctimeNs, objectSizeBytes, target, xattrs, entries, parent };
}

/** Appends `m` to `e`. */
export function encodeFsMap(m: FsMap, e: Encoder): void {
  e.struct(FS_MAP_V, 1, () => {
    e.u53(m.nextFscid);
    e.array([...m.filesystems.values()], (ee, fs) => {
      ee.string(fs.name).u53(fs.fscid).u53(fs.dataPoolId).u53(fs.createdMs).u32(fs.defaultObjectSizeBytes).u53(fs.nextIno).u53(fs.bytesUsed);
      ee.array([...fs.inodes.values()], encodeInode);
      ee.array([...fs.orphans], (e3, ino) => e3.u53(ino));
    });
  });
}

/**
 * Reads an FsMap written by {@link encodeFsMap}.
 * @throws AspenError E_DECODE/E_UNSUPPORTED on malformed bytes, E_CORRUPT on an inconsistent namespace.
 */
export function decodeFsMap(d: Decoder): FsMap {
  return d.struct(FS_MAP_V, 'fs map', () => {
    const nextFscid = d.u53();
    const list = d.array((dd): FsNamespace => {
      const name = dd.string();
      const fscid = dd.u53();
      const dataPoolId = dd.u53();
      const createdMs = dd.u53();
      const defaultObjectSizeBytes = dd.u32();
      const nextIno = dd.u53();
      const bytesUsed = dd.u53();
      const inodes = new Map(dd.array(decodeInode).map((i) => [i.ino, i] as const));
      const orphans = new Set(dd.array((e3) => e3.u53()));
      const fs: FsNamespace = { name, fscid, dataPoolId, createdMs, defaultObjectSizeBytes, nextIno, inodes, orphans, bytesUsed };
      // Check after the read (CONVENTIONS.md item 6), as an expected failure: the bytes came from disk or a peer.
      const errors = namespaceErrors(fs, 3);
      if (errors.length > 0) throw new AspenError('E_CORRUPT', `fs ${name}: ${errors.join('; ')}`);
      return fs;
    });
    return { nextFscid, filesystems: new Map(list.map((fs) => [fs.name, fs] as const)) };
  });
}
