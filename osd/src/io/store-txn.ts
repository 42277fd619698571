/**
 * Applies the ops of queued transactions inside ONE open SQLite write transaction (a group
 * commit), producing the file work that must happen before and after its COMMIT:
 *
 * - inside the transaction: small blobs (whole extent within {@link BatchEnv.inlineMaxBytes})
 *   are *inline* — their bytes are a row of `inline_data`, rewritten with the block map in the
 *   same SQLite transaction (no file, no fsync but the COMMIT's);
 * - before COMMIT: new blob files (copy-on-write targets, and inline blobs that grew beyond the
 *   limit, moved to a file) are written now and fsynced by the caller with their directories;
 *   deferred writes are only *recorded* (a `deferred` row with whole merged blocks and the new
 *   block checksums in the same SQLite transaction) and the target file is grown with zeros so
 *   ENOSPC surfaces here;
 * - after COMMIT: {@link BatchContext.actions} — deferred writes applied to the files in order,
 *   file shrinks, and the unlink of blobs no longer referenced.
 *
 * No committed byte of any file is modified before the COMMIT, so a crash at any point leaves
 * the last committed state readable (see docs/adr/0004-osd-object-store.md).
 *
 * Each transaction runs between {@link BatchContext.mark} and {@link BatchContext.rollback}
 * (the caller pairs them with SQLite SAVEPOINT / ROLLBACK TO), so a failing transaction leaves
 * no trace while the others of the batch commit.
 */
import { assert, assertNever } from '@aspen/shared/assert.ts';
import { crc32c } from '@aspen/shared/checksum.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { blockSpan, BlockMap, type BlobHeader, type BlobKind, type BlobRecord, type Onode, type PendingWrite } from '../store/blocks.ts';
import { encodeObjectKey, formatOid, type FullObjectId } from '../store/oid.ts';
import type { TxOp } from '../store/transaction.ts';
import { buf, omapKey, type StoreStatements } from './store-db.ts';
import type { BlobFiles } from './store-files.ts';
import { fileSource, inlineSource, readBlobBlocks, type BlockSource } from './store-read.ts';

/** Work to do after the COMMIT, in order. */
export type PostCommitAction = { readonly kind: 'write'; readonly w: PendingWrite } | { readonly kind: 'shrink'; readonly blobId: number; readonly lengthBytes: number };

/** What the planner needs from the store. */
export interface BatchEnv {
  readonly st: StoreStatements;
  readonly files: BlobFiles;
  readonly blockSizeBytes: number;
  /** Writes shorter than this (and not into a shared blob) take the deferred path. */
  readonly deferredMaxBytes: number;
  /**
   * Partial overwrites up to this size that cover at most half of the object are deferred too:
   * journaling them twice costs less than copying the rest of the object.
   */
  readonly deferredPartialMaxBytes: number;
  /**
   * Blobs whose blocks all lie below this offset are kept inline in the database (0 disables).
   * A write that would allocate a block at or beyond it moves an inline blob to a file.
   */
  readonly inlineMaxBytes: number;
  /** A fresh blob id (never reused while mounted). */
  allocBlobId(): number;
  /** Committed writes not yet in blob `id`'s file (after a failed apply). */
  unappliedFor(id: number): readonly PendingWrite[];
}

interface Mark {
  readonly actions: number;
  readonly newFiles: number;
  readonly createdUnsynced: number;
  readonly freed: number;
  readonly maxSeq: number;
  readonly deferredBytes: number;
  readonly inline: InlineCounts;
}

/** What a batch did with inline blobs (for the store's counters and its full-device handling). */
export interface InlineCounts {
  /** Inline blobs created (new objects, copies of shared ones). */
  created: number;
  /** Inline blobs whose last reference went away (their rows deleted). */
  freed: number;
  /** Inline blobs moved to a file because a write went beyond `inlineMaxBytes`. */
  migrated: number;
}

/** One group commit's planner state. */
export class BatchContext {
  /** Post-commit actions in order. */
  readonly actions: PostCommitAction[] = [];
  /** Blob files written this batch that must be fsynced (with their directory) before COMMIT. */
  readonly newFiles: number[] = [];
  /** Blob files created this batch for deferred writes (not fsynced; the journal replays into them). */
  readonly createdUnsynced: number[] = [];
  /** Blobs whose last reference went away (unlink after COMMIT). */
  readonly freed: number[] = [];
  /** Highest deferred row seq written by this batch (0 = none). */
  maxSeq = 0;
  deferredBytes = 0;
  /** Inline blob activity of the committed transactions of the batch. */
  readonly inline: InlineCounts = { created: 0, freed: 0, migrated: 0 };
  /** Pending (this batch) writes per blob, for reads inside the batch. */
  private readonly pending = new Map<number, PendingWrite[]>();
  /** New files of the transaction being applied: written directly (nothing else refers to them). */
  private txnNewFilesFrom = 0;

  constructor(private readonly env: BatchEnv) {}

  mark(): Mark {
    this.txnNewFilesFrom = this.newFiles.length;
    return {
      actions: this.actions.length,
      newFiles: this.newFiles.length,
      createdUnsynced: this.createdUnsynced.length,
      freed: this.freed.length,
      maxSeq: this.maxSeq,
      deferredBytes: this.deferredBytes,
      inline: { ...this.inline },
    };
  }

  /** Forgets everything the transaction since `m` did (its SQLite side is rolled back by the caller). */
  rollback(m: Mark): void {
    while (this.actions.length > m.actions) {
      const a = this.actions.pop()!;
      if (a.kind === 'write') {
        const list = this.pending.get(a.w.blobId);
        assert(list !== undefined && list[list.length - 1] === a.w, 'rollback: pending write order');
        list.pop();
      }
    }
    for (const id of this.newFiles.splice(m.newFiles)) this.env.files.unlink(id);
    for (const id of this.createdUnsynced.splice(m.createdUnsynced)) this.env.files.unlink(id);
    this.freed.length = m.freed;
    this.maxSeq = m.maxSeq;
    this.deferredBytes = m.deferredBytes;
    Object.assign(this.inline, m.inline);
  }

  /** Applies one op. @throws AspenError (ENOENT, EEXIST, ENOTEMPTY, ENOSPC, EIO) — the caller rolls the transaction back. */
  apply(op: TxOp): void {
    const st = this.env.st;
    assert(st.getOnodeStmt.database.inTransaction, 'apply: ops run inside the batch transaction');
    switch (op.op) {
      case 'createCollection':
        if (st.collExists.get(op.coll) !== undefined) throw new AspenError('EEXIST', `collection ${op.coll} exists`, { coll: op.coll });
        st.collPut.run(op.coll);
        return;
      case 'removeCollection':
        this.requireColl(op.coll);
        if (st.collHasObjects.get(op.coll) !== undefined) throw new AspenError('ENOTEMPTY', `collection ${op.coll} is not empty`, { coll: op.coll });
        st.collDel.run(op.coll);
        return;
      case 'touch': {
        this.requireColl(op.coll);
        const k = key(op.oid);
        if (st.getOnode(op.coll, k) === undefined) st.putOnode(op.coll, k, { sizeBytes: 0, blobId: 0 });
        return;
      }
      case 'write':
        this.write(op.coll, op.oid, op.offsetBytes, op.data);
        return;
      case 'zero':
        this.zero(op.coll, op.oid, op.offsetBytes, op.lengthBytes);
        return;
      case 'truncate':
        this.truncate(op.coll, op.oid, op.sizeBytes);
        return;
      case 'remove': {
        const k = key(op.oid);
        const o = this.requireOnode(op.coll, op.oid, k);
        this.dropObject(op.coll, k, o);
        return;
      }
      case 'setattrs': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        for (const [name, v] of op.attrs) st.putXattr.run(op.coll, k, name, buf(v), crc32c(v));
        return;
      }
      case 'rmattr': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        st.delXattr.run(op.coll, k, op.name);
        return;
      }
      case 'omapSetKeys': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        for (const [mk, v] of op.entries) st.omapPut.run(op.coll, k, omapKey(mk), buf(v), crc32c(v));
        return;
      }
      case 'omapRmKeys': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        for (const mk of op.keys) st.omapDel.run(op.coll, k, omapKey(mk));
        return;
      }
      case 'omapRmKeyRange': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        st.omapDelRange.run(op.coll, k, omapKey(op.first), omapKey(op.last));
        return;
      }
      case 'omapClear': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        st.omapClear.run(op.coll, k);
        st.delHeader.run(op.coll, k);
        return;
      }
      case 'omapSetHeader': {
        const k = key(op.oid);
        this.requireOnode(op.coll, op.oid, k);
        st.putHeader.run(op.coll, k, buf(op.header), crc32c(op.header));
        return;
      }
      case 'clone':
        this.clone(op.coll, op.src, op.dst);
        return;
      case 'cloneRange': {
        const sk = key(op.src);
        const s = this.requireOnode(op.coll, op.src, sk);
        const data = this.readRange(op.coll, op.src, s, op.srcOffsetBytes, op.lengthBytes);
        this.write(op.coll, op.dst, op.dstOffsetBytes, data);
        return;
      }
      case 'collectionMoveRename': {
        const sk = key(op.src);
        const dk = key(op.dst);
        const s = this.requireOnode(op.srcColl, op.src, sk);
        this.requireColl(op.dstColl);
        if (st.getOnode(op.dstColl, dk) !== undefined) throw new AspenError('EEXIST', `${formatOid(op.dst)} exists in ${op.dstColl}`, { coll: op.dstColl, oid: formatOid(op.dst) });
        st.putOnode(op.dstColl, dk, s);
        st.delOnodeStmt.run(op.srcColl, sk);
        st.moveXattrs.run(op.dstColl, dk, op.srcColl, sk);
        st.omapMove.run(op.dstColl, dk, op.srcColl, sk);
        st.moveHeader.run(op.dstColl, dk, op.srcColl, sk);
        return;
      }
      default:
        assertNever(op, 'transaction op');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Objects

  private requireColl(coll: string): void {
    if (this.env.st.collExists.get(coll) === undefined) throw new AspenError('ENOENT', `collection ${coll} does not exist`, { coll });
  }

  private requireOnode(coll: string, oid: FullObjectId, k: Buffer): Onode {
    this.requireColl(coll);
    const o = this.env.st.getOnode(coll, k);
    if (o === undefined) throw new AspenError('ENOENT', `object ${formatOid(oid)} does not exist in ${coll}`, { coll, oid: formatOid(oid) });
    return o;
  }

  private dropObject(coll: string, k: Buffer, o: Onode): void {
    const st = this.env.st;
    if (o.blobId !== 0) this.release(o.blobId);
    st.delOnodeStmt.run(coll, k);
    st.delXattrs.run(coll, k);
    st.omapClear.run(coll, k);
    st.delHeader.run(coll, k);
  }

  private clone(coll: string, src: FullObjectId, dst: FullObjectId): void {
    const st = this.env.st;
    const sk = key(src);
    const dk = key(dst);
    const s = this.requireOnode(coll, src, sk);
    const d = st.getOnode(coll, dk);
    if (d !== undefined) this.dropObject(coll, dk, d);
    if (s.blobId !== 0) {
      const rec = this.blob(s.blobId);
      st.putBlob(s.blobId, { refs: rec.refs + 1, kind: rec.kind, map: rec.map });
    }
    st.putOnode(coll, dk, s);
    st.copyXattrs.run(coll, dk, coll, sk);
    st.omapCopy.run(coll, dk, coll, sk);
    st.copyHeader.run(coll, dk, coll, sk);
  }

  private write(coll: string, oid: FullObjectId, offsetBytes: number, data: Uint8Array): void {
    this.requireColl(coll);
    const k = key(oid);
    let o = this.env.st.getOnode(coll, k) ?? { sizeBytes: 0, blobId: 0 };
    if (data.length > 0) o = this.writeData(o, offsetBytes, data);
    const sizeBytes = Math.max(o.sizeBytes, offsetBytes + data.length);
    assert(data.length === 0 || o.blobId !== 0, 'write: data written without a blob');
    this.env.st.putOnode(coll, k, { sizeBytes: data.length > 0 ? sizeBytes : o.sizeBytes, blobId: o.blobId });
  }

  private zero(coll: string, oid: FullObjectId, offsetBytes: number, lengthBytes: number): void {
    this.requireColl(coll);
    const k = key(oid);
    let o = this.env.st.getOnode(coll, k) ?? { sizeBytes: 0, blobId: 0 };
    const end = offsetBytes + lengthBytes;
    const bs = this.env.blockSizeBytes;
    if (lengthBytes > 0 && o.blobId !== 0 && offsetBytes < o.sizeBytes) {
      // Bytes at or beyond the old size are zero already (blocks.ts invariant).
      const zeroEnd = Math.min(end, o.sizeBytes);
      const innerFirst = Math.ceil(offsetBytes / bs);
      const innerEnd = Math.floor(zeroEnd / bs);
      if (innerFirst >= innerEnd) {
        o = this.writeData(o, offsetBytes, new Uint8Array(zeroEnd - offsetBytes));
      } else {
        o = { sizeBytes: o.sizeBytes, blobId: this.unshare(o.blobId) };
        const rec = this.blob(o.blobId);
        for (let i = innerFirst; i < innerEnd; i++) rec.map.punch(i);
        this.env.st.putBlob(o.blobId, rec);
        if (offsetBytes < innerFirst * bs) o = this.writeData(o, offsetBytes, new Uint8Array(innerFirst * bs - offsetBytes));
        if (zeroEnd > innerEnd * bs) o = this.writeData(o, innerEnd * bs, new Uint8Array(zeroEnd - innerEnd * bs));
      }
    }
    this.env.st.putOnode(coll, k, { sizeBytes: lengthBytes > 0 ? Math.max(o.sizeBytes, end) : o.sizeBytes, blobId: o.blobId });
  }

  private truncate(coll: string, oid: FullObjectId, sizeBytes: number): void {
    const k = key(oid);
    let o = this.requireOnode(coll, oid, k);
    const bs = this.env.blockSizeBytes;
    if (sizeBytes < o.sizeBytes && o.blobId !== 0) {
      o = { sizeBytes: o.sizeBytes, blobId: this.unshare(o.blobId) };
      const keepBlocks = Math.ceil(sizeBytes / bs);
      const rec = this.blob(o.blobId);
      rec.map.truncateBlocks(keepBlocks);
      this.env.st.putBlob(o.blobId, rec);
      // Keep the invariant: bytes of the last kept block beyond the new size are zero.
      const tail = sizeBytes % bs;
      if (tail !== 0 && rec.map.isAllocated(keepBlocks - 1)) {
        o = this.writeData(o, sizeBytes, new Uint8Array(bs - tail));
      }
      // Give the space back: an inline row is cut in this transaction; a file at once when it is
      // this transaction's own new file (later direct writes to it land after), else after the
      // COMMIT in order with the batch's deferred writes.
      if (rec.kind === 'inline') this.cutInline(o.blobId);
      else if (this.ownFile(o.blobId)) this.env.files.truncate(o.blobId, keepBlocks * bs);
      else this.actions.push({ kind: 'shrink', blobId: o.blobId, lengthBytes: keepBlocks * bs });
    }
    this.env.st.putOnode(coll, k, { sizeBytes, blobId: o.blobId });
  }

  // ------------------------------------------------------------------------------------------
  // Data

  /** True when blob `id`'s file was created by the transaction being applied (so it may be changed in place). */
  private ownFile(id: number): boolean {
    return id !== 0 && this.newFiles.indexOf(id, this.txnNewFilesFrom) >= 0;
  }

  private blob(id: number): BlobRecord {
    const rec = this.env.st.getBlob(id);
    if (rec === undefined) throw new AspenError('E_CORRUPT', `onode refers to missing blob ${id}`, { blobId: id });
    return rec;
  }

  /** Drops one reference to blob `id`; the last one frees it (file unlinked after COMMIT). */
  private release(id: number): void {
    const rec = this.blob(id);
    if (rec.refs > 1) {
      this.env.st.putBlob(id, { refs: rec.refs - 1, kind: rec.kind, map: rec.map });
      return;
    }
    this.env.st.delBlob(id); // with an inline blob's bytes
    if (rec.kind === 'inline') {
      this.inline.freed++;
      return;
    }
    this.env.st.deferredDelBlob.run(id);
    this.freed.push(id);
  }

  /** Where blob `id`'s bytes are read from (an inline blob's row as the writer sees it in this transaction). */
  private source(id: number, kind: BlobKind): BlockSource {
    return kind === 'inline' ? inlineSource(id, this.env.st.inlineBytes(id)) : fileSource(this.env.files, id);
  }

  /** Cuts inline blob `id`'s row to its block map's length (after a truncate). */
  private cutInline(id: number): void {
    const h = this.env.st.getBlobHeader(id);
    assert(h !== undefined && h.kind === 'inline', 'cutInline: not an inline blob');
    const bytes = this.env.st.inlineBytes(id);
    const keep = h.blockCount * this.env.blockSizeBytes;
    if (bytes.length > keep) this.env.st.putInline.run(id, bytes.subarray(0, keep));
  }

  private overlays(id: number): PendingWrite[][] {
    return [this.env.unappliedFor(id) as PendingWrite[], this.pending.get(id) ?? []];
  }

  /** A blob only `o` refers to: `id` itself, or a private copy of it (copy-on-write of a clone's shared data). */
  private unshare(id: number): number {
    const rec = this.blob(id);
    if (rec.refs === 1) return id;
    const newId = this.env.allocBlobId();
    if (rec.kind === 'inline') {
      // A copy of the row in this transaction: nothing to fsync.
      this.env.st.copyInline.run(newId, id);
      this.inline.created++;
      this.env.st.putBlob(newId, { refs: 1, kind: 'inline', map: rec.map.copy() });
      this.env.st.putBlob(id, { refs: rec.refs - 1, kind: 'inline', map: rec.map });
      return newId;
    }
    this.newFiles.push(newId);
    this.env.files.copy(id, newId);
    for (const ws of this.overlays(id)) for (const w of ws) this.env.files.write(newId, w.offsetBytes, w.data);
    this.env.st.putBlob(newId, { refs: 1, kind: 'file', map: rec.map.copy() });
    this.env.st.putBlob(id, { refs: rec.refs - 1, kind: 'file', map: rec.map });
    return newId;
  }

  /** Old bytes of whole blocks [first, end) of the object's blob, verified; zeros past `sizeBytes`. */
  private oldBlocks(o: Onode, rec: { readonly kind: BlobKind; readonly map: BlockMap } | undefined, first: number, end: number, coll?: string, oid?: FullObjectId): Buffer {
    const bs = this.env.blockSizeBytes;
    if (o.blobId === 0 || rec === undefined) return Buffer.alloc((end - first) * bs);
    const overlays = rec.kind === 'inline' ? [] : this.overlays(o.blobId);
    const out = readBlobBlocks(this.source(o.blobId, rec.kind), rec.map, first, end, bs, overlays, (b, reason, detail) => {
      throw new AspenError('EIO', `${reason} on block ${b} of blob ${o.blobId} during read-modify-write: ${detail}`, {
        coll,
        oid: oid === undefined ? undefined : formatOid(oid),
        offsetBytes: b * bs,
      });
    });
    const sizeInBuf = o.sizeBytes - first * bs;
    if (sizeInBuf < out.length) out.fill(0, Math.max(0, sizeInBuf));
    return out;
  }

  /** Verified data of [offset, offset + length) with zeros beyond the size (clone range source). */
  private readRange(coll: string, oid: FullObjectId, o: Onode, offsetBytes: number, lengthBytes: number): Uint8Array {
    if (lengthBytes === 0) return new Uint8Array(0);
    const bs = this.env.blockSizeBytes;
    const { first, end } = blockSpan(offsetBytes, lengthBytes, bs);
    const rec = o.blobId === 0 ? undefined : this.blob(o.blobId);
    const blocks = this.oldBlocks(o, rec, first, end, coll, oid);
    return blocks.subarray(offsetBytes - first * bs, offsetBytes - first * bs + lengthBytes);
  }

  /**
   * Writes `data` at `offsetBytes` into the object's data; returns the onode with its (maybe
   * new) blob. Size is the caller's business. Writes whose blocks stay within `inlineMaxBytes`
   * of a new or inline blob go inline; small writes into an unshared file blob are deferred;
   * others (and inline blobs growing beyond the limit) are copy-on-write into a new blob file.
   */
  private writeData(o: Onode, offsetBytes: number, data: Uint8Array): Onode {
    assert(data.length > 0, 'writeData: empty write');
    const bs = this.env.blockSizeBytes;
    const { first, end } = blockSpan(offsetBytes, data.length, bs);
    const header = o.blobId === 0 ? undefined : this.env.st.getBlobHeader(o.blobId);
    if (o.blobId !== 0 && header === undefined) throw new AspenError('E_CORRUPT', `onode refers to missing blob ${o.blobId}`, { blobId: o.blobId });
    if (end * bs <= this.env.inlineMaxBytes && (header === undefined || header.kind === 'inline')) return this.writeInline(o, header, offsetBytes, data);
    // A file this transaction created and nobody else refers to may be written in place (a rollback unlinks it).
    const inThisTxn = header !== undefined && header.refs === 1 && this.ownFile(o.blobId);
    const partial = header !== undefined && data.length <= this.env.deferredPartialMaxBytes && data.length * 2 <= o.sizeBytes;
    // Never deferred into an inline blob: one that grows beyond the limit moves to a new file below.
    const deferred = !inThisTxn && (data.length < this.env.deferredMaxBytes || partial) && (header === undefined || (header.refs === 1 && header.kind === 'file'));
    // The deferred path touches only blocks [first, end) of the map: load just those chunks.
    const old = o.blobId === 0 ? undefined : deferred ? this.env.st.getBlob(o.blobId, { first, end }) : this.blob(o.blobId);
    // Merged edge blocks (read-modify-write of partial blocks).
    const headPartial = offsetBytes % bs !== 0;
    const tailPartial = (offsetBytes + data.length) % bs !== 0;
    if (deferred) {
      const merged = Buffer.alloc((end - first) * bs);
      if (headPartial) this.oldBlocks(o, old, first, first + 1).copy(merged, 0);
      if (tailPartial && (end - 1 > first || !headPartial)) this.oldBlocks(o, old, end - 1, end).copy(merged, (end - 1 - first) * bs);
      merged.set(data, offsetBytes - first * bs);
      let blobId = o.blobId;
      let map = old?.map;
      if (blobId === 0) {
        blobId = this.env.allocBlobId();
        this.createdUnsynced.push(blobId);
        this.env.files.create(blobId);
        map = BlockMap.empty();
      }
      assert(map !== undefined, 'writeData: block map');
      // Allocate the space now: after COMMIT the apply must not fail for want of it.
      this.env.files.extendTo(blobId, end * bs);
      for (let i = first; i < end; i++) map.set(i, crc32c(merged.subarray((i - first) * bs, (i - first + 1) * bs)));
      this.env.st.putBlob(blobId, { refs: 1, kind: 'file', map });
      const w: PendingWrite = { blobId, offsetBytes: first * bs, data: merged };
      const info = this.env.st.deferredPut.run(blobId, w.offsetBytes, merged, crc32c(merged));
      this.maxSeq = Math.max(this.maxSeq, Number(info.lastInsertRowid));
      this.deferredBytes += merged.length;
      this.actions.push({ kind: 'write', w });
      const list = this.pending.get(blobId);
      if (list === undefined) this.pending.set(blobId, [w]);
      else list.push(w);
      return { sizeBytes: o.sizeBytes, blobId };
    }
    // Copy-on-write: a new file (a copy of the old one unless the write covers all old data), written directly.
    let blobId = o.blobId;
    let map: BlockMap;
    if (inThisTxn) {
      map = old!.map;
    } else {
      const coversAll = offsetBytes === 0 && data.length >= o.sizeBytes;
      const headBlock = headPartial ? this.oldBlocks(o, old, first, first + 1) : undefined;
      const tailBlock = tailPartial && (end - 1 > first || !headPartial) ? this.oldBlocks(o, old, end - 1, end) : undefined;
      blobId = this.env.allocBlobId();
      this.newFiles.push(blobId);
      if (old === undefined || coversAll) {
        this.env.files.create(blobId);
        map = BlockMap.empty();
      } else if (old.kind === 'inline') {
        // An inline blob outgrowing the limit: its bytes become the new file's (fsynced before the COMMIT like any new file).
        this.env.files.create(blobId);
        this.env.files.write(blobId, 0, this.env.st.inlineBytes(o.blobId));
        map = old.map.copy();
        this.inline.migrated++;
      } else {
        this.env.files.copy(o.blobId, blobId);
        for (const ws of this.overlays(o.blobId)) for (const w of ws) this.env.files.write(blobId, w.offsetBytes, w.data);
        map = old.map.copy();
      }
      if (o.blobId !== 0) this.release(o.blobId);
      // Edge blocks first (old bytes), then the new data over them.
      if (headBlock !== undefined) this.env.files.write(blobId, first * bs, headBlock);
      if (tailBlock !== undefined) this.env.files.write(blobId, (end - 1) * bs, tailBlock);
    }
    if (inThisTxn && (headPartial || tailPartial)) {
      // The file is this transaction's own: its blocks are current, write the edges through it.
      const own = { kind: 'file' as const, map };
      const headBlock = headPartial ? this.oldBlocks(o, own, first, first + 1) : undefined;
      const tailBlock = tailPartial && (end - 1 > first || !headPartial) ? this.oldBlocks(o, own, end - 1, end) : undefined;
      if (headBlock !== undefined) this.env.files.write(blobId, first * bs, headBlock);
      if (tailBlock !== undefined) this.env.files.write(blobId, (end - 1) * bs, tailBlock);
    }
    this.env.files.write(blobId, offsetBytes, data);
    if (tailPartial) this.env.files.extendTo(blobId, end * bs);
    // Checksums of the touched blocks from what is now in the file (edges) or in `data` (whole blocks).
    for (let i = first; i < end; i++) {
      const blockStart = i * bs;
      const whole = blockStart >= offsetBytes && blockStart + bs <= offsetBytes + data.length;
      if (whole) map.set(i, crc32c(data.subarray(blockStart - offsetBytes, blockStart - offsetBytes + bs)));
      else {
        const b = Buffer.alloc(bs);
        this.env.files.readInto(blobId, b, blockStart);
        map.set(i, crc32c(b));
      }
    }
    this.env.st.putBlob(blobId, { refs: 1, kind: 'file', map });
    return { sizeBytes: o.sizeBytes, blobId };
  }

  /**
   * The inline path: the blob's row is rewritten with the merged blocks in this SQLite
   * transaction, together with their new checksums (a new object gets a new inline blob; a
   * shared one is copied first). Durable by the batch's COMMIT alone.
   */
  private writeInline(o: Onode, header: BlobHeader | undefined, offsetBytes: number, data: Uint8Array): Onode {
    const bs = this.env.blockSizeBytes;
    const { first, end } = blockSpan(offsetBytes, data.length, bs);
    assert(end * bs <= this.env.inlineMaxBytes, 'writeInline: beyond the inline limit');
    let blobId: number;
    let rec: BlobRecord;
    if (header === undefined) {
      blobId = this.env.allocBlobId();
      rec = { refs: 1, kind: 'inline', map: BlockMap.empty() };
      this.inline.created++;
    } else {
      assert(header.kind === 'inline', 'writeInline: not an inline blob');
      blobId = this.unshare(o.blobId);
      rec = this.blob(blobId);
    }
    const cur = { sizeBytes: o.sizeBytes, blobId };
    // Verified old bytes of partial edge blocks (zeros beyond the size): a bad block is never laundered.
    const headPartial = offsetBytes % bs !== 0;
    const tailPartial = (offsetBytes + data.length) % bs !== 0;
    const headBlock = header !== undefined && headPartial ? this.oldBlocks(cur, rec, first, first + 1) : undefined;
    const tailBlock = header !== undefined && tailPartial && (end - 1 > first || !headPartial) ? this.oldBlocks(cur, rec, end - 1, end) : undefined;
    const oldBytes = header === undefined ? Buffer.alloc(0) : this.env.st.inlineBytes(blobId);
    const bytes = Buffer.alloc(Math.max(rec.map.count, end) * bs);
    oldBytes.copy(bytes, 0, 0, Math.min(oldBytes.length, bytes.length));
    // Untouched bytes of the edge blocks: the verified old ones, or zeros where the block was a hole.
    if (headPartial) bytes.fill(0, first * bs, (first + 1) * bs);
    if (tailPartial) bytes.fill(0, (end - 1) * bs, end * bs);
    if (headBlock !== undefined) headBlock.copy(bytes, first * bs);
    if (tailBlock !== undefined) tailBlock.copy(bytes, (end - 1) * bs);
    bytes.set(data, offsetBytes);
    for (let i = first; i < end; i++) rec.map.set(i, crc32c(bytes.subarray(i * bs, (i + 1) * bs)));
    assert(bytes.length === rec.map.count * bs, 'writeInline: row length != block map length');
    this.env.st.putInline.run(blobId, bytes);
    this.env.st.putBlob(blobId, { refs: 1, kind: 'inline', map: rec.map });
    return cur;
  }
}

function key(oid: FullObjectId): Buffer {
  return buf(encodeObjectKey(oid));
}
