/**
 * An open RBD image (librbd's ImageCtx + ImageRequest + ExclusiveLock + ImageWatcher, much
 * reduced): byte-addressed reads and writes mapped onto `rbd_data.<id>.<objno>` objects,
 * discard/write-zeroes, resize, snapshots, an exclusive lock for writers, and a watch on the
 * header so a change made elsewhere (resize, snapshot) is seen at once.
 *
 * Ordering and durability: every call resolves after the OSDs acknowledged every object op
 * it sent, and an acknowledged op is durable on the whole acting set (see osd/), so `flush`
 * has nothing to wait for. Pieces of one call that fall in different objects are sent in
 * parallel (at most {@link IMAGE_OPS_INFLIGHT_MAX}); concurrent calls on overlapping ranges are
 * not ordered relative to each other, as with librbd without a cache.
 *
 * Snapshots: writes carry the image's snap context (the header's snap_seq and snapshot ids,
 * newest first), so the OSD keeps a clone on the first write after a snapshot; reads of an
 * image opened at a snapshot read each object at that snap id.
 *
 * Data pool (`rbd create --data-pool`): the header, directory and children records stay in the
 * image's pool; every data object op goes to the data pool through {@link Image.dataIo}, and
 * snapshot ids are allocated in the data pool (as librbd does), so the snap context is valid
 * there and the data pool's OSDs clone and trim the data objects.
 *
 * Clones (librbd layering): a clone's header names a parent image, a protected snapshot of it
 * and an overlap. A clone's data object that does not exist reads through to the parent at
 * that snapshot (within the overlap; zeros beyond). The first change to such an object copies
 * the parent's object up: one compound op `create(exclusive) + writefull(parent data) + the
 * change` on the clone's object, so a concurrent copy-up or write (EEXIST) is never
 * clobbered — the loser retries its change as `assert_exists + change`. Discards inside the
 * overlap leave an (empty or zeroed) object behind so parent data cannot show through.
 */
import { AspenError, assert } from '@aspen/shared';
import { ioctxOfPoolId, listChildren, poolIdOf, removeChild } from './children.ts';
import type { OsdOp, OsdReply } from '@aspen/shared/client/ops.ts';
import type { IoCtx, RadosClient } from '@aspen/shared/io/rados.ts';
import type { WatchHandle, WatchNotification } from '@aspen/shared/io/rados-watch.ts';
import {
  HEADER_KEYS, LOCK_XATTR, decodeNotification, encodeLock, encodeNotification, encodeParent, encodeSnap, encodeU64, snapContextOf, snapReadsParent, snapshotKey,
  type HeaderNotification, type ImageHeader, type LockOwner, type ParentSpec, type SnapInfo,
} from './header.ts';
import { checkName, dataObjectName, headerObjectName, mapExtent, objectCount, IMAGE_SIZE_MAX_BYTES } from './layout.ts';
import { checkReply, directoryLookup, directoryNameOf, readHeader, updateHeader } from './meta.ts';
import { forEachLimit } from './parallel.ts';

/** Object ops one image call keeps in flight (named limit; librbd has no such cap without a cache, rbd bench uses 16 threads). */
export const IMAGE_OPS_INFLIGHT_MAX = 16;
/** How long a header-change notify waits for watchers to reload, ms (librbd waits up to 5 s per notify). */
export const HEADER_NOTIFY_TIMEOUT_MS = 10_000;
/** How long a watcher probe waits, ms: watchers not answering in time still count as watchers. */
export const WATCHER_PROBE_TIMEOUT_MS = 3_000;
/** Copy-up attempts of one object change before EAGAIN (each lost race means the object now exists, so 2 suffice; named limit). */
export const COPYUP_ATTEMPTS_MAX = 8;
/** Clone chain depth limit (Ceph has none; a cycle is impossible, this only bounds recursion). */
export const CLONE_DEPTH_MAX = 16;

const EMPTY = new Uint8Array(0);

/** Options of {@link Image.open}. */
export interface ImageOpenOptions {
  /** Open read-only at this snapshot. */
  snapName?: string;
  /**
   * Take the exclusive lock so this handle may write data (Ceph exclusive-lock). Default true
   * at the head, and it must be false with `snapName`. Without it, data writes fail with EPERM
   * (header changes such as resize and snapshots are still allowed: they are guarded and notified).
   */
  exclusive?: boolean;
  /** Break a lock held by another client instead of failing with EBUSY (`--break-lock`). */
  breakLock?: boolean;
  /** Called after every header reload that changed it (size, snapshots, lock). */
  onHeaderChange?: (h: ImageHeader) => void;
}

/** A range of the image and whether any object backs it (`false`: a hole, reads as zeros). */
export interface ImageExtent {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly allocated: boolean;
}

/** `b` without its trailing zero bytes (a copy-up need not write them: short objects read zeros past their end). */
function trimZeros(b: Uint8Array): Uint8Array {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

function dataOf(r: OsdReply): Uint8Array {
  const x = r.results[0];
  if (x?.kind !== 'data') throw new AspenError('EIO', 'read reply lacks data');
  return x.data;
}

/** An open image. Call {@link close} when done (it releases the lock and the watch). */
export class Image {
  private h: ImageHeader;
  private watchHandle: WatchHandle | null = null;
  private lockCookie: string | null = null;
  private lockLost: string | null = null;
  private closed = false;
  /** The parent at the clone's parent snapshot (read-only), while this image is a clone. */
  private parentImg: Image | null = null;

  /**
   * The IoCtx of the data objects (librbd's data_ctx): on the data pool when the image has one
   * (`--data-pool`), else a second IoCtx on the image's pool. It alone carries the image's write
   * snap context (whose ids were allocated in that pool); {@link io} (librbd's md_ctx: header,
   * directory, children) carries none.
   */
  readonly dataIo: IoCtx;

  private constructor(
    readonly client: RadosClient,
    /** The IoCtx of the image's pool: header, directory and children records (no snap context). */
    readonly io: IoCtx,
    readonly name: string,
    header: ImageHeader,
    /** The snapshot this handle reads, or null for the head. */
    readonly snap: SnapInfo | null,
    private readonly onHeaderChange: ((h: ImageHeader) => void) | undefined,
  ) {
    this.h = header;
    this.dataIo = header.dataPoolId === null ? client.ioctx(io.poolName, io.namespace) : ioctxOfPoolId(client, header.dataPoolId);
    assert(this.dataIo !== io, 'data and metadata IoCtxs are distinct: only the data one has a snap context');
    this.applySnapContext();
  }

  /**
   * Opens image `name` of pool `pool`: looks it up in `rbd_directory`, reads its header,
   * watches the header, and (by default at the head) takes the exclusive lock.
   * @throws AspenError ENOENT (no such image or snapshot, or pool); EBUSY when another client
   *   holds the lock (details: owner, cookie) and `breakLock` is not set; EINVAL for `exclusive` at a snapshot.
   */
  static async open(client: RadosClient, pool: string, name: string, o: ImageOpenOptions = {}): Promise<Image> {
    const io = client.ioctx(pool);
    const id = await directoryLookup(io, name);
    const h = await readHeader(io, id);
    let snap: SnapInfo | null = null;
    if (o.snapName !== undefined) {
      snap = h.snaps.find((s) => s.name === o.snapName) ?? null;
      if (snap === null) throw new AspenError('ENOENT', `image '${name}' has no snapshot '${o.snapName}'`);
      if (o.exclusive === true) throw new AspenError('EINVAL', 'a snapshot is read-only: it cannot be opened for writing');
    }
    const img = new Image(client, io, name, h, snap, o.onHeaderChange);
    try {
      await img.openParent(0);
      img.watchHandle = await io.watch(headerObjectName(id), (n) => img.handleNotify(n), (err) => img.handleWatchError(err));
      if (snap === null && (o.exclusive ?? true)) await img.acquireLock(o.breakLock ?? false);
    } catch (err) {
      await img.close().catch(() => undefined);
      throw err;
    }
    return img;
  }

  /** Opens this clone's parent at its snapshot (recursively: a clone of a clone), if any and not open. */
  private async openParent(depth: number): Promise<void> {
    const p = this.h.parent;
    if (p === null || this.parentImg !== null) return;
    if (depth >= CLONE_DEPTH_MAX) throw new AspenError('E_CORRUPT', `image '${this.name}': clone chain deeper than ${CLONE_DEPTH_MAX}`);
    const io = ioctxOfPoolId(this.client, p.poolId);
    const h = await readHeader(io, p.imageId);
    const snap = h.snaps.find((x) => x.id === p.snapId);
    if (snap === undefined) throw new AspenError('E_CORRUPT', `image '${this.name}': parent ${p.poolName}/${p.imageId} has no snapshot ${p.snapId}`);
    const name = (await directoryNameOf(io, p.imageId)) ?? p.imageId;
    const parent = new Image(this.client, io, name, h, snap, undefined);
    await parent.openParent(depth + 1);
    this.parentImg = parent;
  }

  /** The parent as `POOL/IMAGE@SNAP` and the overlap, or null when not a clone. */
  get parentInfo(): { spec: string; overlapBytes: number } | null {
    const p = this.h.parent;
    const pi = this.parentImg;
    const overlapBytes = this.parentOverlapBytes;
    // A flattened head whose snapshots still read the parent shows no parent (as `rbd info`).
    if (p === null || pi === null || overlapBytes === 0) return null;
    return { spec: `${p.poolName}/${pi.name}@${pi.snap?.name ?? '?'}`, overlapBytes };
  }

  /** The image range `[start, end)` of object `objectNo` that reads through to the parent, or null. */
  private parentRange(objectNo: number): { start: number; end: number } | null {
    const overlap = this.parentOverlapBytes;
    if (overlap === 0 || this.parentImg === null) return null;
    const start = objectNo * this.objectSizeBytes;
    if (start >= overlap) return null;
    return { start, end: Math.min(start + this.objectSizeBytes, overlap) };
  }

  /**
   * Bytes of the parent this handle reads through to: the head's overlap, or at a snapshot the
   * overlap recorded with it (Ceph's per-snapshot parent overlap; the head's for older
   * records). 0 when not a clone, or flattened.
   */
  private get parentOverlapBytes(): number {
    const p = this.h.parent;
    if (p === null) return 0;
    return this.snap?.parentOverlapBytes ?? p.overlapBytes;
  }

  /**
   * Applies `ops` to data object `objectNo` of a clone, copying the parent's object up first
   * when the object does not exist yet (see the file comment). `copyUpOps` replace `ops` on
   * the copy-up path; `needParentData` false skips reading the parent (a whole-object discard).
   */
  private async copyUpMutate(objectNo: number, ops: OsdOp[], copyUpOps: OsdOp[], needParentData: boolean): Promise<void> {
    const range = this.parentRange(objectNo);
    assert(range !== null && this.parentImg !== null, 'copy-up only inside the overlap');
    const oid = this.objectName(objectNo);
    for (let attempt = 0; attempt < COPYUP_ATTEMPTS_MAX; attempt++) {
      const r = await this.dataIo.operate(oid, [{ op: 'assert_exists' }, ...ops]);
      if (r.code !== 'ENOENT') {
        checkReply(r);
        return;
      }
      const data = needParentData ? trimZeros(await this.parentImg.read(range.start, range.end - range.start)) : EMPTY;
      assert(data.length <= this.objectSizeBytes, 'parent data fits the object');
      const c = await this.dataIo.operate(oid, [{ op: 'create', exclusive: true }, ...(data.length > 0 ? [{ op: 'writefull', data } as const] : []), ...copyUpOps]);
      if (c.code === 'EEXIST') continue; // someone else copied up (or wrote) first: apply ours on top
      checkReply(c);
      return;
    }
    throw new AspenError('EAGAIN', `image '${this.name}': copy-up of object ${objectNo} kept racing`);
  }

  /** Applies `ops` to a data object: copying up where the object is inside a clone's overlap. */
  private async mutate(objectNo: number, ops: OsdOp[]): Promise<void> {
    if (this.parentRange(objectNo) !== null) return this.copyUpMutate(objectNo, ops, ops, true);
    checkReply(await this.dataIo.operate(this.objectName(objectNo), ops));
  }

  /** The name of the pool holding the data objects (the image's pool unless it has a data pool). */
  get dataPoolName(): string {
    return this.dataIo.poolName;
  }

  /** The image id. */
  get id(): string {
    return this.h.id;
  }
  /** The header as last read. */
  get header(): ImageHeader {
    return this.h;
  }
  /** Size in bytes (the snapshot's size when opened at one). */
  get sizeBytes(): number {
    return this.snap?.sizeBytes ?? this.h.sizeBytes;
  }
  get objectSizeBytes(): number {
    return 2 ** this.h.order;
  }
  /** Whether this handle may write data (holds the lock, which was not broken, at the head). */
  get writable(): boolean {
    return this.snap === null && this.lockCookie !== null && this.lockLost === null && !this.closed;
  }

  private objectName(objectNo: number): string {
    return dataObjectName(this.h.objectPrefix, objectNo);
  }

  private applySnapContext(): void {
    const sc = snapContextOf(this.h);
    this.dataIo.setSelfmanagedSnapWrite(sc.seq, sc.snaps);
  }

  private checkOpen(): void {
    if (this.closed) throw new AspenError('EINVAL', `image '${this.name}' is closed`);
  }

  private checkRange(offset: number, length: number): void {
    this.checkOpen();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new AspenError('EINVAL', `range ${offset}+${length} is outside image '${this.name}' of ${this.sizeBytes} bytes`);
    }
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.snap !== null) throw new AspenError('EPERM', `snapshot ${this.name}@${this.snap.name} is read-only`);
    if (this.lockLost !== null) throw new AspenError('EBUSY', `image '${this.name}': ${this.lockLost}`);
    if (this.lockCookie === null) throw new AspenError('EPERM', `image '${this.name}' was opened without the exclusive lock: it cannot write data`);
  }

  private readOptions(): { snapId?: bigint } {
    return this.snap === null ? {} : { snapId: this.snap.id };
  }

  /**
   * Reads `length` bytes at `offset`. Never-written ranges (missing objects, bytes past an
   * object's end) read as zeros.
   * @throws AspenError EINVAL outside the image; ETIMEDOUT; EIO; ENOENT when the snapshot was removed.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.checkRange(offset, length);
    const out = new Uint8Array(length);
    await forEachLimit(mapExtent(offset, length, this.objectSizeBytes), IMAGE_OPS_INFLIGHT_MAX, async (x) => {
      const r = await this.dataIo.operate(this.objectName(x.objectNo), [{ op: 'read', offset: x.offsetInObject, length: x.lengthBytes }], this.readOptions());
      if (r.code === 'ENOENT') {
        // Never written (or absent at the snap): the parent's bytes within the overlap, else zeros.
        const range = this.parentRange(x.objectNo);
        const from = x.objectNo * this.objectSizeBytes + x.offsetInObject;
        if (range === null || this.parentImg === null || from >= range.end) return;
        const d = await this.parentImg.read(from, Math.min(x.lengthBytes, range.end - from));
        out.set(d, x.bufferOffset);
        return;
      }
      const d = dataOf(checkReply(r));
      assert(d.length <= x.lengthBytes, `read of ${x.lengthBytes} bytes returned ${d.length}`);
      out.set(d, x.bufferOffset);
    });
    return out;
  }

  /**
   * Writes `data` at `offset`, one write op per object touched (objects are created by their
   * first write: images are thin).
   * @throws AspenError EINVAL outside the image; EPERM without the lock or at a snapshot; EBUSY
   *   when the lock was broken by another client; ENOSPC; ETIMEDOUT.
   */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkRange(offset, data.length);
    this.checkWritable();
    await forEachLimit(mapExtent(offset, data.length, this.objectSizeBytes), IMAGE_OPS_INFLIGHT_MAX, async (x) => {
      await this.mutate(x.objectNo, [{ op: 'write', offset: x.offsetInObject, data: data.subarray(x.bufferOffset, x.bufferOffset + x.lengthBytes) }]);
    });
  }

  /**
   * Discards `[offset, offset+length)` (NBD TRIM / WRITE_ZEROES; librbd discard): whole objects
   * are removed, a range reaching an object's end truncates it, a range inside an object is
   * zeroed. Afterwards the range reads as zeros. Errors as {@link write}.
   */
  async discard(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length);
    this.checkWritable();
    const os = this.objectSizeBytes;
    const size = this.h.sizeBytes;
    await forEachLimit(mapExtent(offset, length, os), IMAGE_OPS_INFLIGHT_MAX, async (x) => {
      const objStart = x.objectNo * os;
      const objEnd = Math.min(objStart + os, size);
      const toEnd = objStart + x.offsetInObject + x.lengthBytes >= objEnd;
      if (this.parentRange(x.objectNo) !== null) {
        // Inside a clone's overlap: removing the object would let the parent show through.
        if (x.offsetInObject === 0 && toEnd) return this.copyUpMutate(x.objectNo, [{ op: 'truncate', size: 0 }], [], false);
        const op: OsdOp = toEnd ? { op: 'truncate', size: x.offsetInObject } : { op: 'zero', offset: x.offsetInObject, length: x.lengthBytes };
        return this.copyUpMutate(x.objectNo, [op], [op], true);
      }
      const ops: OsdOp[] = x.offsetInObject === 0 && toEnd ? [{ op: 'remove' }]
        : toEnd ? [{ op: 'assert_exists' }, { op: 'truncate', size: x.offsetInObject }]
        : [{ op: 'assert_exists' }, { op: 'zero', offset: x.offsetInObject, length: x.lengthBytes }];
      const r = await this.dataIo.operate(this.objectName(x.objectNo), ops);
      if (r.code !== 'ENOENT') checkReply(r);
    });
  }

  /**
   * Makes the range read as zeros. By default as {@link discard} (holes read as zeros); with
   * `noHole` (NBD_CMD_FLAG_NO_HOLE) zero bytes are written so the range stays allocated.
   * Errors as {@link write}.
   */
  async writeZeroes(offset: number, length: number, o: { noHole?: boolean } = {}): Promise<void> {
    if (o.noHole !== true) return this.discard(offset, length);
    this.checkRange(offset, length);
    this.checkWritable();
    const zeros = new Uint8Array(Math.min(length, this.objectSizeBytes));
    await forEachLimit(mapExtent(offset, length, this.objectSizeBytes), IMAGE_OPS_INFLIGHT_MAX, async (x) => {
      await this.mutate(x.objectNo, [{ op: 'write', offset: x.offsetInObject, data: zeros.subarray(0, x.lengthBytes) }]);
    });
  }

  /** Nothing to do: every acknowledged write is already durable on all replicas. */
  async flush(): Promise<void> {
    this.checkOpen();
  }

  /**
   * The allocation of `[offset, offset+length)`: consecutive extents tiling the range, each
   * allocated (backed by object data) or a hole (for NBD base:allocation and sparse export).
   * Uses one stat per object touched. Errors as {@link read}.
   */
  async allocatedExtents(offset: number, length: number): Promise<ImageExtent[]> {
    this.checkRange(offset, length);
    const os = this.objectSizeBytes;
    const pieces = mapExtent(offset, length, os);
    const sizes = new Array<number>(pieces.length).fill(0);
    await forEachLimit(pieces, IMAGE_OPS_INFLIGHT_MAX, async (x, i) => {
      const r = await this.dataIo.operate(this.objectName(x.objectNo), [{ op: 'stat' }], this.readOptions());
      if (r.code === 'ENOENT') {
        // A clone's missing object reads the parent: report the overlap part as allocated.
        const range = this.parentRange(x.objectNo);
        if (range !== null) sizes[i] = range.end - x.objectNo * os;
        return;
      }
      const st = checkReply(r).results[0];
      if (st?.kind !== 'stat') throw new AspenError('EIO', 'stat reply lacks a size');
      sizes[i] = st.sizeBytes;
    });
    const out: ImageExtent[] = [];
    const push = (offsetBytes: number, lengthBytes: number, allocated: boolean): void => {
      if (lengthBytes === 0) return;
      const last = out.at(-1);
      if (last !== undefined && last.allocated === allocated && last.offsetBytes + last.lengthBytes === offsetBytes) out[out.length - 1] = { ...last, lengthBytes: last.lengthBytes + lengthBytes };
      else out.push({ offsetBytes, lengthBytes, allocated });
    };
    pieces.forEach((x, i) => {
      const start = x.objectNo * os + x.offsetInObject;
      const dataLen = Math.max(0, Math.min(x.lengthBytes, sizes[i]! - x.offsetInObject));
      push(start, dataLen, true);
      push(start + dataLen, x.lengthBytes - dataLen, false);
    });
    assert(out.reduce((a, e) => a + e.lengthBytes, 0) === length, 'extents tile the range');
    return out;
  }

  /**
   * Re-reads the header (size, snapshots, lock) and adopts it if not older than the one held;
   * notices a lock broken by another client.
   * @throws AspenError ENOENT when the image was removed.
   */
  async refresh(): Promise<ImageHeader> {
    const h = await readHeader(this.io, this.h.id);
    if (h.version < this.h.version) return this.h;
    const changed = h.version !== this.h.version;
    this.h = h;
    this.applySnapContext();
    if (h.parent === null && this.parentImg !== null) {
      const p = this.parentImg;
      this.parentImg = null;
      await p.close();
    }
    if (this.lockCookie !== null && this.lockLost === null && (h.lock === null || h.lock.owner !== this.client.clientId || h.lock.cookie !== this.lockCookie)) {
      this.lockLost = `the exclusive lock was broken by another client${h.lock === null ? '' : ` (now held by ${h.lock.owner})`}`;
    }
    if (changed) this.onHeaderChange?.(h);
    return h;
  }

  private async handleNotify(n: WatchNotification): Promise<Uint8Array> {
    let msg: HeaderNotification;
    try {
      msg = decodeNotification(n.payload);
    } catch {
      return EMPTY; // from a newer client: ignore, as librbd ignores unknown notify ops
    }
    switch (msg.kind) {
      case 'header_update':
        await this.refresh().catch(() => undefined);
        break;
      case 'lock_broken':
        if (msg.owner === this.client.clientId && msg.cookie === this.lockCookie) this.lockLost = `the exclusive lock was broken by ${n.notifierId}`;
        break;
      case 'lock_released': case 'probe':
        break;
      default: {
        const never: never = msg;
        return never;
      }
    }
    return EMPTY;
  }

  private handleWatchError(err: AspenError): void {
    // Watch again, as librbd does on a watch error; notifications may have been missed, so
    // re-read the header too.
    if (this.closed || err.code === 'ENOENT') return;
    void this.io.watch(headerObjectName(this.h.id), (n) => this.handleNotify(n), (e) => this.handleWatchError(e)).then(async (w) => {
      if (this.closed) {
        await w.unwatch().catch(() => undefined);
        return;
      }
      this.watchHandle = w;
      await this.refresh().catch(() => undefined);
    }, () => undefined);
  }

  private async acquireLock(breakLock: boolean): Promise<void> {
    assert(this.watchHandle !== null && this.lockCookie === null, 'lock taken once, after the watch');
    const me: LockOwner = { owner: this.client.clientId, cookie: `auto ${this.watchHandle.cookie}` };
    let mayBreak = breakLock;
    for (let attempt = 0; attempt < 8; attempt++) {
      const r = await this.io.operate(headerObjectName(this.h.id), [
        { op: 'cmpxattr', name: LOCK_XATTR, cmp: 'eq', value: EMPTY }, { op: 'setxattr', name: LOCK_XATTR, value: encodeLock(me) },
      ]);
      if (r.code === 0) {
        this.lockCookie = me.cookie;
        await this.refresh();
        return;
      }
      if (r.code !== 'ECANCELED') checkReply(r);
      const h = await readHeader(this.io, this.h.id);
      if (h.lock === null) continue;
      if (!mayBreak) {
        throw new AspenError('EBUSY', `image '${this.name}' is locked by ${h.lock.owner} (cookie '${h.lock.cookie}'): another client has it open for writing; if that client is dead, break the lock (--break-lock or \`aspen-rbd lock break\`)`, { owner: h.lock.owner, cookie: h.lock.cookie });
      }
      await breakLockOf(this.io, this.h.id, h.lock);
      mayBreak = false;
    }
    throw new AspenError('EBUSY', `image '${this.name}': could not take the exclusive lock (it keeps changing hands)`);
  }

  private async notifyHeaderUpdate(): Promise<void> {
    await notifyHeader(this.io, this.h.id, { kind: 'header_update' });
  }

  /**
   * Changes the image size (librbd resize). Shrinking needs `allowShrink` and first removes the
   * objects past the new end and truncates the one it cuts (under the snap context, so
   * snapshots keep the data), then records the size; growing only records it. Watchers are
   * notified and reload.
   * @throws AspenError EINVAL for a shrink without `allowShrink` or a bad size; EPERM at a snapshot.
   */
  async resize(sizeBytes: number, o: { allowShrink?: boolean } = {}): Promise<void> {
    this.checkOpen();
    if (this.snap !== null) throw new AspenError('EPERM', 'a snapshot cannot be resized');
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > IMAGE_SIZE_MAX_BYTES) throw new AspenError('EINVAL', `bad size ${sizeBytes}`);
    await this.refresh();
    const old = this.h.sizeBytes;
    if (sizeBytes < old) {
      if (o.allowShrink !== true) throw new AspenError('EINVAL', 'shrinking an image is only allowed with the --allow-shrink flag');
      await this.trimFrom(sizeBytes, old);
    }
    await updateHeader(this.io, this.h.id, (h) => {
      if (h.sizeBytes === sizeBytes) return null;
      const entries: [string, Uint8Array][] = [[HEADER_KEYS.size, encodeU64(BigInt(sizeBytes))]];
      // A clone shrunk below its overlap never reads those parent bytes again (Ceph shrinks the overlap too).
      if (h.parent !== null && h.parent.overlapBytes > sizeBytes) entries.push([HEADER_KEYS.parent, encodeParent({ ...h.parent, overlapBytes: sizeBytes })]);
      return [{ op: 'omap_set', entries }];
    });
    await this.notifyHeaderUpdate();
    await this.refresh();
  }

  /** Removes/truncates the data past `newSize` (objects up to the old size's last one). */
  private async trimFrom(newSize: number, oldSize: number): Promise<void> {
    const os = this.objectSizeBytes;
    const first = objectCount(newSize, os);
    const nums = Array.from({ length: objectCount(oldSize, os) - first }, (_, i) => first + i);
    await forEachLimit(nums, IMAGE_OPS_INFLIGHT_MAX, async (n) => {
      const r = await this.dataIo.operate(this.objectName(n), [{ op: 'remove' }]);
      if (r.code !== 'ENOENT') checkReply(r);
    });
    if (newSize % os !== 0) {
      const r = await this.dataIo.operate(this.objectName(Math.floor(newSize / os)), [{ op: 'assert_exists' }, { op: 'truncate', size: newSize % os }]);
      if (r.code !== 'ENOENT') checkReply(r);
    }
  }

  /** The snapshots, newest first. */
  snapList(): readonly SnapInfo[] {
    return this.h.snaps;
  }

  private findSnap(h: ImageHeader, name: string): SnapInfo {
    const s = h.snaps.find((x) => x.name === name);
    if (s === undefined) throw new AspenError('ENOENT', `image '${this.name}' has no snapshot '${name}'`);
    return s;
  }

  /**
   * Creates snapshot `name` (librbd snap_create): allocates a self-managed snap id in the data
   * pool (the image's pool unless it has a data pool),
   * records {name, id, size, time} in the header under a version guard, and notifies watchers,
   * which adopt the new snap context before acknowledging — so their later writes preserve the
   * snapshot's data.
   * @param timestampMs creation time to record, ms since the epoch (injected clock).
   * @throws AspenError EEXIST for a taken name; EINVAL for a bad name; EPERM at a snapshot.
   */
  async snapCreate(name: string, timestampMs = 0): Promise<SnapInfo> {
    this.checkOpen();
    checkName(name, 'snapshot');
    if (this.snap !== null) throw new AspenError('EPERM', 'cannot snapshot a snapshot');
    await this.refresh();
    if (this.h.snaps.some((s) => s.name === name)) throw new AspenError('EEXIST', `snapshot '${name}' already exists`);
    const id = await this.client.selfmanagedSnapCreate(this.dataIo.poolName);
    let info: SnapInfo | null = null;
    try {
      await updateHeader(this.io, this.h.id, (h) => {
        if (h.snaps.some((s) => s.name === name)) throw new AspenError('EEXIST', `snapshot '${name}' already exists`);
        info = { id, name, sizeBytes: h.sizeBytes, protected: false, timestampMs, ...(h.parent !== null ? { parentOverlapBytes: h.parent.overlapBytes } : {}) };
        return [{ op: 'omap_set', entries: [[snapshotKey(id), encodeSnap(info)], [HEADER_KEYS.snapSeq, encodeU64(id > h.snapSeq ? id : h.snapSeq)]] }];
      });
    } catch (err) {
      await this.client.selfmanagedSnapRemove(this.dataIo.poolName, id).catch(() => undefined);
      throw err;
    }
    await this.notifyHeaderUpdate();
    await this.refresh();
    assert(info !== null, 'snapshot recorded');
    return info;
  }

  /**
   * Removes snapshot `name` (librbd snap_remove): drops it from the header, then releases its
   * snap id in the data pool (the OSDs trim its clones), then notifies.
   * @throws AspenError ENOENT; EBUSY while it is protected.
   */
  async snapRemove(name: string): Promise<void> {
    this.checkOpen();
    const snapNow = this.findSnap(await this.refresh(), name);
    if ((await listChildren(this.io, this.h.id, snapNow.id)).length > 0) throw new AspenError('EBUSY', `snapshot '${name}' has clones: flatten or remove them first`);
    let removed: SnapInfo | null = null;
    let detached: ParentSpec | null = null;
    await updateHeader(this.io, this.h.id, (h) => {
      const s = this.findSnap(h, name);
      if (s.protected) throw new AspenError('EBUSY', `snapshot '${name}' is protected from removal: unprotect it first`);
      removed = s;
      const keys = [snapshotKey(s.id)];
      // A flattened clone keeps its parent only for its snapshots: the last one takes it along.
      detached = h.parent !== null && h.parent.overlapBytes === 0 && !h.snaps.some((x) => x.id !== s.id && snapReadsParent(x)) ? h.parent : null;
      if (detached !== null) keys.push(HEADER_KEYS.parent);
      return [{ op: 'omap_rm', keys }];
    });
    assert(removed !== null, 'snapshot found');
    await this.client.selfmanagedSnapRemove(this.dataIo.poolName, (removed as SnapInfo).id);
    if (detached !== null) await removeChild(this.client, detached, { poolId: poolIdOf(this.client, this.io.poolName), poolName: this.io.poolName, imageId: this.h.id });
    await this.notifyHeaderUpdate();
    await this.refresh();
  }

  /**
   * Sets or clears a snapshot's protection (librbd snap_protect / snap_unprotect).
   * Unprotecting is refused while the snapshot has clones. A clone records itself in
   * `rbd_children` before it checks that the snapshot is protected, and unprotect checks the
   * children again after clearing the flag (re-protecting if one appeared), so a racing clone
   * and unprotect cannot both succeed.
   * @throws AspenError ENOENT; EBUSY when already protected or (unprotect) it has clones; EINVAL when already unprotected (Ceph's codes).
   */
  async snapSetProtected(name: string, protect: boolean): Promise<void> {
    this.checkOpen();
    const hasChildren = async (): Promise<boolean> => (await listChildren(this.io, this.h.id, this.findSnap(this.h, name).id)).length > 0;
    const busy = (): AspenError => new AspenError('EBUSY', `snapshot '${name}' has clones: flatten or remove them before unprotecting it`);
    if (!protect) {
      await this.refresh();
      if (await hasChildren()) throw busy();
    }
    const set = (h: ImageHeader, to: boolean, strict: boolean): OsdOp[] | null => {
      const s = this.findSnap(h, name);
      if (s.protected === to) {
        if (strict) throw new AspenError(to ? 'EBUSY' : 'EINVAL', `snapshot '${name}' is already ${to ? 'protected' : 'unprotected'}`);
        return null;
      }
      return [{ op: 'omap_set', entries: [[snapshotKey(s.id), encodeSnap({ ...s, protected: to })]] }];
    };
    await updateHeader(this.io, this.h.id, (h) => set(h, protect, true));
    if (!protect && await hasChildren()) {
      await updateHeader(this.io, this.h.id, (h) => set(h, true, false));
      await this.notifyHeaderUpdate();
      throw busy();
    }
    await this.notifyHeaderUpdate();
    await this.refresh();
  }

  /**
   * Flattens a clone (librbd flatten): copies up every object of the overlap that does not
   * exist in the clone yet (with exclusive create, so data written meanwhile wins), then drops
   * the parent link from the header; the caller then drops the `rbd_children` record. Needs
   * the exclusive lock.
   * @param onProgress called with (objects done, objects total).
   * A clone with snapshots that still read through to the parent keeps the parent link for
   * them, with the head's overlap set to 0 (Ceph keeps the parent of a flattened clone's
   * snapshots); the last such snapshot's removal drops it (snapRemove).
   * @returns the parent spec, and whether the link is gone (the caller then drops the children record).
   * @throws AspenError EINVAL when not a clone (or already flattened); EPERM without the lock.
   */
  async flatten(onProgress?: (done: number, total: number) => void): Promise<{ parent: ParentSpec; detached: boolean }> {
    this.checkWritable();
    await this.refresh();
    const p = this.h.parent;
    if (p === null || this.parentImg === null || p.overlapBytes === 0) throw new AspenError('EINVAL', `image '${this.name}' is not a clone (it has no parent)`);
    const total = objectCount(p.overlapBytes, this.objectSizeBytes);
    let done = 0;
    await forEachLimit(Array.from({ length: total }, (_, i) => i), IMAGE_OPS_INFLIGHT_MAX, async (n) => {
      this.checkWritable();
      const range = this.parentRange(n);
      assert(range !== null && this.parentImg !== null, 'object inside the overlap');
      const st = await this.dataIo.operate(this.objectName(n), [{ op: 'stat' }]);
      if (st.code === 'ENOENT') {
        const data = trimZeros(await this.parentImg.read(range.start, range.end - range.start));
        if (data.length > 0) {
          const c = await this.dataIo.operate(this.objectName(n), [{ op: 'create', exclusive: true }, { op: 'writefull', data }]);
          if (c.code !== 'EEXIST') checkReply(c);
        }
      } else checkReply(st);
      onProgress?.(++done, total);
    });
    let detached = true;
    await updateHeader(this.io, this.h.id, (h) => {
      if (h.parent === null) return null;
      assert(h.parent.imageId === p.imageId && h.parent.snapId === p.snapId, 'the parent does not change under a flatten');
      detached = !h.snaps.some(snapReadsParent);
      if (detached) return [{ op: 'omap_rm', keys: [HEADER_KEYS.parent] }];
      return [{ op: 'omap_set', entries: [[HEADER_KEYS.parent, encodeParent({ ...h.parent, overlapBytes: 0 })]] }];
    });
    await this.notifyHeaderUpdate();
    await this.refresh();
    assert(detached ? this.parentImg === null && this.h.parent === null : this.h.parent?.overlapBytes === 0, 'flattened');
    return { parent: p, detached };
  }

  /**
   * Rolls the head back to snapshot `name` (librbd snap_rollback): resizes to the snapshot's
   * size, then for every object of it writes back its content at the snapshot, or removes it if
   * it did not exist then. Needs the exclusive lock.
   * @param onProgress called with (objects done, objects total).
   * @throws AspenError ENOENT; EPERM without the lock.
   */
  async snapRollback(name: string, onProgress?: (done: number, total: number) => void): Promise<void> {
    this.checkWritable();
    await this.refresh();
    const s = this.findSnap(this.h, name);
    if (s.sizeBytes !== this.h.sizeBytes) await this.resize(s.sizeBytes, { allowShrink: true });
    // A clone's head reads the parent as the snapshot did (Ceph restores the parent overlap):
    // objects absent at the snapshot are removed below and must show the parent's bytes again.
    const snapOverlap = s.parentOverlapBytes;
    if (this.h.parent !== null && snapOverlap !== undefined && snapOverlap !== this.h.parent.overlapBytes) {
      await updateHeader(this.io, this.h.id, (h) => (h.parent === null ? null : [{ op: 'omap_set', entries: [[HEADER_KEYS.parent, encodeParent({ ...h.parent, overlapBytes: Math.min(snapOverlap, h.sizeBytes) })]] }]));
      await this.notifyHeaderUpdate();
      await this.refresh();
      await this.openParent(0);
    }
    const total = objectCount(s.sizeBytes, this.objectSizeBytes);
    let done = 0;
    await forEachLimit(Array.from({ length: total }, (_, i) => i), IMAGE_OPS_INFLIGHT_MAX, async (n) => {
      this.checkWritable();
      const oid = this.objectName(n);
      const r = await this.dataIo.operate(oid, [{ op: 'read', offset: 0, length: 0 }], { snapId: s.id });
      const w = r.code === 'ENOENT' ? await this.dataIo.operate(oid, [{ op: 'remove' }]) : await this.dataIo.operate(oid, [{ op: 'writefull', data: dataOf(checkReply(r)) }]);
      if (w.code !== 'ENOENT') checkReply(w);
      onProgress?.(++done, total);
    });
  }

  /** Releases the lock (guarded: only if still ours) and the watch. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.lockCookie !== null && this.lockLost === null) {
      const me = encodeLock({ owner: this.client.clientId, cookie: this.lockCookie });
      await this.io.operate(headerObjectName(this.h.id), [{ op: 'cmpxattr', name: LOCK_XATTR, cmp: 'eq', value: me }, { op: 'rmxattr', name: LOCK_XATTR }]).catch(() => undefined);
    }
    this.lockCookie = null;
    const parent = this.parentImg;
    this.parentImg = null;
    await parent?.close();
    const w = this.watchHandle;
    this.watchHandle = null;
    await w?.unwatch().catch(() => undefined);
  }
}

/** Sends `n` to image `id`'s header watchers and waits for their acks (timeouts are not errors). */
export async function notifyHeader(io: IoCtx, id: string, n: HeaderNotification, timeoutMs = HEADER_NOTIFY_TIMEOUT_MS): Promise<{ watchers: string[] }> {
  const r = await io.notify(headerObjectName(id), encodeNotification(n), timeoutMs);
  return { watchers: [...r.acks.map((a) => a.watcherId), ...r.timeouts.map((t) => t.watcherId)] };
}

/**
 * Breaks `lock` on image `id` (`rbd lock break`): removes it only if it is still that lock
 * (cmpxattr guard), then tells the old holder (if alive) that it lost the lock, so its later
 * writes fail with EBUSY. Unlike Ceph there is no blocklist: a holder that is alive but
 * partitioned from the notify could still complete writes it already sent.
 * @throws AspenError ECANCELED when the lock changed meanwhile; ENOENT when the image is gone.
 */
export async function breakLockOf(io: IoCtx, id: string, lock: LockOwner): Promise<void> {
  checkReply(await io.operate(headerObjectName(id), [{ op: 'cmpxattr', name: LOCK_XATTR, cmp: 'eq', value: encodeLock(lock) }, { op: 'rmxattr', name: LOCK_XATTR }]));
  await notifyHeader(io, id, { kind: 'lock_broken', owner: lock.owner, cookie: lock.cookie }, WATCHER_PROBE_TIMEOUT_MS).catch(() => undefined);
}
