/**
 * Data files of the object store: one file per blob at `<root>/blobs/<id % 256 as 2 hex>/<id hex>`.
 * Synchronous positional reads/writes (page cache) for the apply/read paths; asynchronous
 * fsync (libuv thread pool) so a group commit's fsyncs run in parallel without blocking the
 * event loop. A small LRU of open descriptors avoids an open/close per 4 KiB op.
 *
 * Errors: ENOSPC/EDQUOT become AspenError ENOSPC (details.full = true); everything else EIO.
 */
import { closeSync, copyFileSync, existsSync, fstatSync, fsync, ftruncateSync, mkdirSync, openSync, readdirSync, readSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import type { StoreStatfs } from '../store/types.ts';

/** Open descriptors kept by {@link BlobFiles}. */
export const OPEN_FDS_MAX = 256;
/** Subdirectories that spread blob files. */
export const BLOB_DIRS = 256;

/** Maps an fs error to a catalogued error. */
export function fsError(err: unknown, what: string): AspenError {
  if (err instanceof AspenError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AspenError('ENOSPC', `${what}: no space left on device`, { full: true, errno: code });
  if (code === 'ENOENT') return new AspenError('EIO', `${what}: data file missing`, { errno: code });
  return new AspenError('EIO', `${what}: ${String(err)}`, { errno: typeof code === 'string' ? code : undefined });
}

/** fsync(2) of a descriptor, off the event loop. */
export function fsyncAsync(fd: number): Promise<void> {
  return new Promise((res, rej) => fsync(fd, (err) => (err ? rej(err) : res())));
}

/** fsync of a directory (makes created/removed names durable). */
export async function fsyncDir(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

/** statfs(2) of `path` in bytes. */
export function statfsBytes(path: string): StoreStatfs {
  const s = statfsSync(path);
  const totalBytes = s.blocks * s.bsize;
  const availBytes = s.bavail * s.bsize;
  const usedBytes = totalBytes - s.bfree * s.bsize;
  assert(totalBytes >= 0 && usedBytes >= 0, 'statfs returned negative sizes');
  return { totalBytes, usedBytes, availBytes };
}

/** Blob data files under one root. Not re-entrant; owned by one store. */
export class BlobFiles {
  readonly dir: string;
  /** id -> fd, in least-recently-used order (Map insertion order). */
  private readonly fds = new Map<number, number>();

  constructor(root: string) {
    this.dir = join(root, 'blobs');
  }

  /** Creates the blob directories (mkfs). */
  makeDirs(): void {
    for (let i = 0; i < BLOB_DIRS; i++) mkdirSync(this.subdir(i), { recursive: true });
  }

  subdir(id: number): string {
    return join(this.dir, (id % BLOB_DIRS).toString(16).padStart(2, '0'));
  }
  path(id: number): string {
    return join(this.subdir(id), id.toString(16));
  }

  /** The fd of blob `id`, opened read-write (created when `create`). */
  fd(id: number, create = false): number {
    assert(Number.isSafeInteger(id) && id > 0, `bad blob id ${id}`);
    const cached = this.fds.get(id);
    if (cached !== undefined) {
      this.fds.delete(id);
      this.fds.set(id, cached);
      return cached;
    }
    let fd: number;
    try {
      fd = openSync(this.path(id), create ? 'a+' : 'r+');
      // 'a+' would append on write: reopen positional read-write now that the file exists.
      if (create) {
        closeSync(fd);
        fd = openSync(this.path(id), 'r+');
      }
    } catch (err) {
      throw fsError(err, `opening blob ${id}`);
    }
    this.fds.set(id, fd);
    if (this.fds.size > OPEN_FDS_MAX) {
      const [oldId, oldFd] = this.fds.entries().next().value as [number, number];
      this.fds.delete(oldId);
      closeSync(oldFd);
    }
    return fd;
  }

  /** Creates (or empties) blob `id`'s file. */
  create(id: number): void {
    this.close(id);
    try {
      closeSync(openSync(this.path(id), 'w'));
    } catch (err) {
      throw fsError(err, `creating blob ${id}`);
    }
  }

  /** Creates blob `dstId` as a copy of blob `srcId` (copy_file_range / reflink where the filesystem has it). */
  copy(srcId: number, dstId: number): void {
    this.close(dstId);
    try {
      copyFileSync(this.path(srcId), this.path(dstId));
    } catch (err) {
      throw fsError(err, `copying blob ${srcId} to ${dstId}`);
    }
  }

  /** Length of blob `id`'s file, bytes. */
  length(id: number): number {
    try {
      return fstatSync(this.fd(id)).size;
    } catch (err) {
      throw fsError(err, `stat of blob ${id}`);
    }
  }

  /** Reads into `into` from `offsetBytes`; returns the bytes read (short at end of file). */
  readInto(id: number, into: Uint8Array, offsetBytes: number): number {
    const fd = this.fd(id);
    let done = 0;
    try {
      while (done < into.length) {
        const n = readSync(fd, into, done, into.length - done, offsetBytes + done);
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      throw fsError(err, `reading blob ${id}`);
    }
    return done;
  }

  /** Writes all of `data` at `offsetBytes` (page cache; durable only after {@link sync}). */
  write(id: number, offsetBytes: number, data: Uint8Array, create = false): void {
    const fd = this.fd(id, create);
    let done = 0;
    try {
      while (done < data.length) done += writeSync(fd, data, done, data.length - done, offsetBytes + done);
    } catch (err) {
      throw fsError(err, `writing blob ${id}`);
    }
  }

  /**
   * Grows the file to at least `lengthBytes` by writing zeros, so its space is allocated now
   * (an ENOSPC surfaces before a commit, not when a committed deferred write is applied).
   */
  extendTo(id: number, lengthBytes: number, create = false): void {
    const fd = this.fd(id, create);
    const cur = this.length(id);
    if (cur >= lengthBytes) return;
    const zeros = new Uint8Array(Math.min(lengthBytes - cur, 1 << 20));
    let pos = cur;
    try {
      while (pos < lengthBytes) pos += writeSync(fd, zeros, 0, Math.min(zeros.length, lengthBytes - pos), pos);
    } catch (err) {
      // Give the space back: nothing committed refers to bytes beyond `cur`.
      try {
        ftruncateSync(fd, cur);
      } catch {
        // best effort
      }
      throw fsError(err, `extending blob ${id}`);
    }
  }

  /** Shrinks the file (after a committed truncate) to free space. */
  truncate(id: number, lengthBytes: number): void {
    try {
      ftruncateSync(this.fd(id), lengthBytes);
    } catch (err) {
      throw fsError(err, `truncating blob ${id}`);
    }
  }

  /**
   * fsync of blob `id`'s data. Uses its own descriptor: a cached one may be closed by the LRU
   * while the fsync runs on the thread pool (and its number reused by another file).
   */
  async sync(id: number): Promise<void> {
    let fd: number;
    try {
      fd = openSync(this.path(id), 'r');
    } catch (err) {
      throw fsError(err, `fsync of blob ${id}`);
    }
    try {
      await fsyncAsync(fd);
    } catch (err) {
      throw fsError(err, `fsync of blob ${id}`);
    } finally {
      closeSync(fd);
    }
  }

  /** fsync of a directory of blob files (makes created/removed names durable). */
  async syncDir(path: string): Promise<void> {
    try {
      await fsyncDir(path);
    } catch (err) {
      throw fsError(err, `fsync of directory ${path}`);
    }
  }

  /** Removes blob `id`'s file (missing is fine). */
  unlink(id: number): void {
    this.close(id);
    try {
      unlinkSync(this.path(id));
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw fsError(err, `removing blob ${id}`);
    }
  }

  exists(id: number): boolean {
    return existsSync(this.path(id));
  }

  /** Every blob id with a file (for the orphan scan at mount). */
  listIds(): number[] {
    const out: number[] = [];
    for (let i = 0; i < BLOB_DIRS; i++) {
      let names: string[];
      try {
        names = readdirSync(this.subdir(i));
      } catch (err) {
        throw fsError(err, `listing ${this.subdir(i)}`);
      }
      for (const n of names) {
        const id = parseInt(n, 16);
        if (Number.isSafeInteger(id) && id > 0 && id.toString(16) === n) out.push(id);
      }
    }
    return out;
  }

  close(id: number): void {
    const fd = this.fds.get(id);
    if (fd === undefined) return;
    this.fds.delete(id);
    closeSync(fd);
  }

  closeAll(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * Grows the space-reserve file at `path` towards `targetBytes` with zeros (allocated space that
 * {@link emptyReserve} can hand back so deletes can commit on a full device). Best effort:
 * stops quietly at ENOSPC. Returns the reserve's size.
 */
export function fillReserve(path: string, targetBytes: number): number {
  assert(targetBytes >= 0, 'fillReserve: negative size');
  let fd: number;
  try {
    fd = openSync(path, 'a+');
  } catch {
    return 0;
  }
  try {
    let size = fstatSync(fd).size;
    const zeros = new Uint8Array(64 * 1024);
    while (size < targetBytes) {
      try {
        size += writeSync(fd, zeros, 0, Math.min(zeros.length, targetBytes - size), size);
      } catch {
        break;
      }
    }
    return size;
  } finally {
    closeSync(fd);
  }
}

/** Frees the reserve's space (truncates it to 0). Returns whether it held any. */
export function emptyReserve(path: string): boolean {
  try {
    const fd = openSync(path, 'r+');
    try {
      const had = fstatSync(fd).size > 0;
      ftruncateSync(fd, 0);
      return had;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}
