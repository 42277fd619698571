/**
 * `SqliteObjectStore`: the OSD's local {@link ObjectStore} — metadata, xattrs, omap, the
 * deferred-write journal and the data of small objects (inline blobs, up to
 * {@link INLINE_MAX_BYTES_DEFAULT}) in better-sqlite3 (WAL, synchronous=FULL), bulk data in one
 * file per blob. Design and crash-consistency argument: docs/adr/0004-osd-object-store.md. Ceph sources
 * followed: src/os/ObjectStore.h (API), src/os/bluestore/BlueStore.cc (deferred writes for
 * small overwrites, copy-on-write for large ones, _txc_state_proc ordering: data fsync ->
 * kv commit -> deferred apply -> deferred cleanup; small writes kept in the KV store, as
 * BlueStore keeps small writes in RocksDB).
 *
 * Group commit: every transaction queued while a commit is in flight joins the next one —
 * one SQLite transaction (one WAL fsync) plus parallel fsyncs of the new data files, for up to
 * {@link StoreOptions.batchTxnsMax} transactions / {@link StoreOptions.batchBytesMax} bytes.
 */
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { allocatedExtents, blockSpan, BLOCK_SIZE_DEFAULT_BYTES, checkRecord, type BlobRecord, type Extent, type Onode, type PendingWrite } from '../store/blocks.ts';
import { decodeObjectKey, encodeObjectKey, formatOid, type ObjectId } from '../store/oid.ts';
import { checkCollectionName, normalizeOid } from '../store/oid.ts';
import { onlyFreesSpace, type Transaction } from '../store/transaction.ts';
import type { ObjectListPage, ObjectStat, ObjectStore, OmapKeysPage, OmapValuesPage, SparseReadResult, StoreStatfs, StoreUsage, VerifyError, VerifyResult } from '../store/types.ts';
import { buf, omapKey, openStoreDb, sqliteError, STORE_FORMAT_VERSION, STORE_FORMAT_VERSION_MIN, StoreStatements } from './store-db.ts';
import { BlobFiles, emptyReserve, fillReserve, fsError, fsyncDir, statfsBytes } from './store-files.ts';
import { fileSource, inlineSource, readBlobBlocks, type BlockSource } from './store-read.ts';
import { BatchContext } from './store-txn.ts';

/**
 * Default limit of inline blobs, bytes: a blob whose blocks all lie below it keeps its bytes in
 * the metadata database (no file create, file fsync or unlink; durable by the group commit's
 * WAL fsync). BlueStore's `bluestore_prefer_deferred_size_hdd` (64 KiB) draws the same line
 * between data kept in its KV store and data written to fresh extents.
 */
export const INLINE_MAX_BYTES_DEFAULT = 64 * 1024;

/** Options of {@link SqliteObjectStore}. */
export interface StoreOptions {
  /** The store's directory (holds `store.db`, `blobs/`, `lock`). */
  readonly path: string;
  /** Checksum/block granularity, bytes, a power of two >= 512 (fixed at mkfs). Default 4096. */
  readonly blockSizeBytes?: number;
  /** Writes shorter than this go through the deferred journal; longer ones copy-on-write. Default 64 KiB (BlueStore's bluestore_prefer_deferred_size_hdd). */
  readonly deferredMaxBytes?: number;
  /**
   * Partial overwrites up to this size covering at most half of the object are deferred too
   * (copy-on-write would copy the rest of the object). Default 1 MiB; 0 disables.
   */
  readonly deferredPartialMaxBytes?: number;
  /**
   * Blobs whose blocks all lie below this offset are stored inline in the database; a write
   * beyond it moves the blob to a file. Default {@link INLINE_MAX_BYTES_DEFAULT}; 0 disables
   * (every blob is a file, as format-1 stores had). Not fixed at mkfs: both kinds are always read.
   */
  readonly inlineMaxBytes?: number;
  /** Fraction of the filesystem in use at which the store reports full and refuses allocating transactions. Default 0.95 (Ceph mon_osd_full_ratio). */
  readonly fullRatio?: number;
  /** Transactions per group commit. Default 512. */
  readonly batchTxnsMax?: number;
  /** Payload bytes per group commit. Default 64 MiB. */
  readonly batchBytesMax?: number;
  /** Payload bytes queued and in flight before queueTransaction fails with EBUSY. Default 1 GiB. */
  readonly queueBytesMax?: number;
  /** Deferred rows (or bytes / 4 KiB) since the last cleanup that trigger one. Default 4096. */
  readonly deferredTrimRows?: number;
  /**
   * Bytes kept allocated in a `reserve` file and released when a transaction that only frees
   * space (a delete) hits ENOSPC, so deletes commit on a full device. Default 1% of the
   * filesystem, clamped to [1 MiB, 64 MiB] (a delete of inline objects needs WAL space).
   */
  readonly reserveBytes?: number;
  /** Builds the blob file layer (fault injection in tests); default `new BlobFiles(root)`. */
  readonly blobFiles?: (root: string) => BlobFiles;
  /** Cluster fsid recorded at mkfs; default a random UUID. */
  readonly fsid?: string;
}

interface Queued {
  readonly tx: Transaction;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  error?: unknown;
}

const mountedPaths = new Set<string>();

/** Bounds of the WAL size (pages) that triggers a checkpoint; see `boundWal`. */
const WAL_CHECKPOINT_PAGES_MIN = 64;
const WAL_CHECKPOINT_PAGES_MAX = 4096;
/** Pages one incremental-vacuum step hands back to the filesystem (a full device must hold that much more WAL). */
const VACUUM_STEP_PAGES = 64;
/** Steps per commit that freed inline blobs on a full device (1024 x 64 pages of 4 KiB = 256 MiB). */
const VACUUM_STEPS_MAX = 1024;

/** Free space that must appear after a device ENOSPC before the store stops reporting full, bytes. */
const ENOSPC_CLEAR_BYTES = 1024 * 1024;

/** The object store on SQLite + blob files. See the module comment. */
export class SqliteObjectStore implements ObjectStore {
  readonly path: string;
  private readonly opts: Required<Omit<StoreOptions, 'fsid' | 'blockSizeBytes' | 'reserveBytes' | 'blobFiles'>> & { fsid: string | undefined; reserveBytes: number | undefined };
  private blockSizeBytes: number;
  private readonly files: BlobFiles;
  private writer: Database.Database | undefined;
  private reader: Database.Database | undefined;
  private w: StoreStatements | undefined;
  private r: StoreStatements | undefined;
  private nextBlobId = 1;
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private running = false;
  private idle: Array<() => void> = [];
  /** Blobs with deferred writes applied to the page cache but not fsynced. */
  private dirty = new Set<number>();
  /** Blobs created for deferred writes whose directory entry is not yet fsynced. */
  private unsyncedNames = new Set<number>();
  private lastAppliedSeq = 0;
  private rowsSinceTrim = 0;
  /** Committed writes whose apply to the file failed; reads overlay them, commits retry them. */
  private unapplied = new Map<number, PendingWrite[]>();
  private enospcSeen = false;
  private reserveTargetBytes = 0;
  /** availBytes when the device last returned ENOSPC (after the failed work was rolled back). */
  private availAtEnospc = 0;
  /** Set by umount: no new transactions are accepted. */
  private closing = false;
  private readonly counters = { commits: 0, txnsCommitted: 0, txnsFailed: 0, deferredWrites: 0, deferredBytes: 0, cowBlobs: 0, inlineBlobs: 0, inlineFreed: 0, inlineMigrated: 0 };

  constructor(options: StoreOptions) {
    this.path = options.path;
    this.blockSizeBytes = options.blockSizeBytes ?? BLOCK_SIZE_DEFAULT_BYTES;
    assert(this.blockSizeBytes >= 512 && (this.blockSizeBytes & (this.blockSizeBytes - 1)) === 0, 'blockSizeBytes must be a power of two >= 512');
    this.opts = {
      path: options.path,
      deferredMaxBytes: options.deferredMaxBytes ?? 64 * 1024,
      deferredPartialMaxBytes: options.deferredPartialMaxBytes ?? 1024 * 1024,
      inlineMaxBytes: options.inlineMaxBytes ?? INLINE_MAX_BYTES_DEFAULT,
      fullRatio: options.fullRatio ?? 0.95,
      batchTxnsMax: options.batchTxnsMax ?? 512,
      batchBytesMax: options.batchBytesMax ?? 64 * 1024 * 1024,
      queueBytesMax: options.queueBytesMax ?? 1024 * 1024 * 1024,
      deferredTrimRows: options.deferredTrimRows ?? 4096,
      fsid: options.fsid,
      reserveBytes: options.reserveBytes,
    };
    assert(this.opts.fullRatio > 0 && this.opts.fullRatio <= 1, 'fullRatio must be in (0, 1]');
    assert(this.opts.batchTxnsMax >= 1 && this.opts.batchBytesMax >= 1, 'batch limits must be positive');
    // A row this size is one SQLite value rewritten per small write: keep it small.
    assert(Number.isSafeInteger(this.opts.inlineMaxBytes) && this.opts.inlineMaxBytes >= 0 && this.opts.inlineMaxBytes <= 1024 * 1024, 'inlineMaxBytes must be in [0, 1 MiB]');
    this.files = options.blobFiles?.(this.path) ?? new BlobFiles(this.path);
  }

  private get dbPath(): string {
    return join(this.path, 'store.db');
  }

  // ------------------------------------------------------------------------------------------
  // Lifecycle

  async mkfs(): Promise<void> {
    if (existsSync(this.dbPath)) throw new AspenError('EEXIST', `an object store exists at ${this.path}`, { path: this.path });
    try {
      mkdirSync(this.path, { recursive: true });
      this.files.makeDirs();
    } catch (err) {
      throw fsError(err, `mkfs ${this.path}`);
    }
    const db = openStoreDb(this.dbPath, { create: true, reader: false });
    try {
      const st = new StoreStatements(db);
      db.transaction(() => {
        st.putMeta('format', u32(STORE_FORMAT_VERSION));
        st.putMeta('block_size', u32(this.blockSizeBytes));
        st.putMeta('fsid', new TextEncoder().encode(this.opts.fsid ?? randomUUID()));
      })();
    } catch (err) {
      sqliteError(err, 'mkfs');
    } finally {
      db.close();
    }
    await fsyncDir(this.files.dir);
    await fsyncDir(this.path);
  }

  async mount(): Promise<void> {
    assert(this.writer === undefined, 'mount: already mounted');
    if (!existsSync(this.dbPath)) throw new AspenError('ENOENT', `no object store at ${this.path} (run mkfs)`, { path: this.path });
    this.lock();
    try {
      this.writer = openStoreDb(this.dbPath, { create: false, reader: false });
      this.w = new StoreStatements(this.writer);
      this.boundWal();
      const format = this.w.getMeta('format');
      const version = format === undefined ? 0 : readU32(format);
      if (version < STORE_FORMAT_VERSION_MIN || version > STORE_FORMAT_VERSION) {
        throw new AspenError('E_UNSUPPORTED', `object store format ${version}; this build reads ${STORE_FORMAT_VERSION_MIN}..${STORE_FORMAT_VERSION}`);
      }
      // Format 1 -> 2: opening the writer created the inline_data table; nothing else changes.
      if (version < STORE_FORMAT_VERSION) this.w.putMeta('format', u32(STORE_FORMAT_VERSION));
      const bs = this.w.getMeta('block_size');
      assert(bs !== undefined, 'store has no block_size');
      this.blockSizeBytes = readU32(bs);
      assert(this.blockSizeBytes >= 512 && (this.blockSizeBytes & (this.blockSizeBytes - 1)) === 0, `store block size ${this.blockSizeBytes} is not a power of two >= 512`);
      await this.replayDeferred();
      this.removeOrphans();
      this.reader = openStoreDb(this.dbPath, { create: false, reader: true });
      this.r = new StoreStatements(this.reader);
      this.refillReserve();
    } catch (err) {
      this.closeAll();
      throw err;
    }
  }

  async umount(): Promise<void> {
    if (this.writer === undefined) return;
    this.closing = true;
    await this.drain();
    await this.trimDeferred();
    this.closeAll();
  }

  /**
   * Closes without flushing anything, as a crash would (for fault-injection tests): the
   * deferred journal is not cleaned up and nothing is fsynced. Call it with no transaction in
   * flight.
   */
  abandon(): void {
    assert(!this.running && this.queue.length === 0, 'abandon: transactions in flight');
    this.closeAll();
  }

  /** The fsid recorded at mkfs. */
  fsid(): string {
    const v = this.st().getMeta('fsid');
    assert(v !== undefined, 'store has no fsid');
    return new TextDecoder().decode(v);
  }

  private closeAll(): void {
    this.files.closeAll();
    this.reader?.close();
    this.writer?.close();
    this.reader = this.writer = undefined;
    this.r = this.w = undefined;
    this.closing = false;
    this.dirty.clear();
    this.unsyncedNames.clear();
    this.unapplied.clear();
    this.unlock();
  }

  private lock(): void {
    const lockPath = join(this.path, 'lock');
    if (mountedPaths.has(this.path)) throw new AspenError('EBUSY', `object store ${this.path} is already mounted by this process`);
    try {
      const pid = Number(readFileSync(lockPath, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new AspenError('EBUSY', `object store ${this.path} is mounted by process ${pid}`, { pid });
      }
    } catch (err) {
      if (err instanceof AspenError) throw err;
    }
    writeFileSync(lockPath, String(process.pid));
    mountedPaths.add(this.path);
  }

  private unlock(): void {
    if (!mountedPaths.delete(this.path)) return;
    try {
      unlinkSync(join(this.path, 'lock'));
    } catch {
      // already gone
    }
  }

  /**
   * Inline data is written to the WAL first and into the database at checkpoints, which need
   * room for both until the WAL is reset: checkpoint once the WAL holds 1/8 of the device (at
   * most 4096 pages, 16 MiB), so a full device still has room to checkpoint, vacuum and delete.
   */
  private boundWal(): void {
    const db = this.writer!;
    const pageBytes = Number(db.pragma('page_size', { simple: true }));
    const pages = Math.max(WAL_CHECKPOINT_PAGES_MIN, Math.min(WAL_CHECKPOINT_PAGES_MAX, Math.floor(this.statfs().totalBytes / 8 / pageBytes)));
    db.pragma(`wal_autocheckpoint = ${pages}`);
  }

  /** Applies the deferred journal to the files (idempotent whole-block writes), fsyncs them, then empties it. */
  private async replayDeferred(): Promise<void> {
    const w = this.w!;
    const touched = new Set<number>();
    let prevSeq = 0;
    for (const row of w.deferredAll.iterate()) {
      assert(row.seq > prevSeq, 'replayDeferred: journal rows out of order');
      prevSeq = row.seq;
      checkRecord(row.data, row.crc, `deferred write ${row.seq}`);
      if (row.off % this.blockSizeBytes !== 0 || row.data.length % this.blockSizeBytes !== 0) {
        throw new AspenError('E_CORRUPT', `deferred write ${row.seq} is not whole blocks`, { seq: row.seq });
      }
      this.files.write(row.blob, row.off, row.data, true);
      touched.add(row.blob);
    }
    if (touched.size === 0) return;
    await Promise.all([...touched].map((id) => this.files.sync(id)));
    await Promise.all([...new Set([...touched].map((id) => this.files.subdir(id)))].map((d) => this.files.syncDir(d)));
    w.deferredDelUpTo.run(Number.MAX_SAFE_INTEGER);
  }

  /** Unlinks blob files no blob row refers to (copy-on-write targets of uncommitted batches, unlinks lost in a crash). */
  private removeOrphans(): void {
    const known = new Set<number>();
    let max = 0;
    for (const row of this.w!.blobIds.iterate()) {
      known.add(row.id);
      max = Math.max(max, row.id);
    }
    for (const id of this.files.listIds()) {
      if (!known.has(id)) this.files.unlink(id);
      max = Math.max(max, id);
    }
    this.nextBlobId = max + 1;
  }

  // ------------------------------------------------------------------------------------------
  // Space

  /**
   * After a device ENOSPC (and the rollback of what failed): the store is full only if little
   * space is actually left — one oversized write failing on a roomy device does not make it full.
   */
  private noteEnospc(): void {
    let avail = 0;
    try {
      avail = this.statfs().availBytes;
    } catch {
      // unknown: assume none
    }
    if (avail < this.reserveTargetBytes + ENOSPC_CLEAR_BYTES) {
      this.enospcSeen = true;
      this.availAtEnospc = avail;
    }
  }

  private get reservePath(): string {
    return join(this.path, 'reserve');
  }

  private refillReserve(): void {
    const s = this.statfs();
    const target = this.opts.reserveBytes ?? Math.min(64 << 20, Math.max(1 << 20, Math.floor(s.totalBytes / 100)));
    this.reserveTargetBytes = target;
    fillReserve(this.reservePath, target);
  }

  statfs(): StoreStatfs {
    return statfsBytes(this.path);
  }

  usage(): StoreUsage {
    const s = this.statfs();
    // Space freed by anyone (at least 1 MiB since the ENOSPC) ends the device-full state too.
    if (this.enospcSeen && s.availBytes >= this.availAtEnospc + ENOSPC_CLEAR_BYTES) this.enospcSeen = false;
    const full = this.enospcSeen || (s.totalBytes > 0 && s.usedBytes / s.totalBytes >= this.opts.fullRatio);
    return { ...s, full, fullRatio: this.opts.fullRatio };
  }

  isFull(): boolean {
    return this.usage().full;
  }

  // ------------------------------------------------------------------------------------------
  // Writes

  queueTransaction(tx: Transaction): Promise<void> {
    if (this.w === undefined || this.closing) return Promise.reject(new AspenError('EINVAL', `object store ${this.path} is not mounted`));
    if (this.queuedBytes + tx.payloadBytes > this.opts.queueBytesMax && this.queue.length > 0) {
      return Promise.reject(new AspenError('EBUSY', `object store queue holds ${this.queuedBytes} bytes (limit ${this.opts.queueBytesMax})`));
    }
    return new Promise<void>((resolve, reject) => {
      // Settle once: a batch that fails after some of its transactions were marked keeps the first outcome.
      let settled = false;
      this.queue.push({
        tx,
        resolve: () => {
          if (!settled) resolve();
          settled = true;
        },
        reject: (err) => {
          if (!settled) reject(err);
          settled = true;
        },
      });
      this.queuedBytes += tx.payloadBytes;
      if (!this.running) {
        this.running = true;
        // Let every transaction queued in this tick join the first batch.
        setImmediate(() => void this.runCommits());
      }
    });
  }

  private async runCommits(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        let bytes = 0;
        let n = 0;
        while (n < this.queue.length && n < this.opts.batchTxnsMax && (n === 0 || bytes + this.queue[n]!.tx.payloadBytes <= this.opts.batchBytesMax)) {
          bytes += this.queue[n]!.tx.payloadBytes;
          n++;
        }
        const batch = this.queue.splice(0, n);
        try {
          await this.commitBatch(batch);
        } catch (err) {
          // Never leave a caller waiting: whatever failed, every transaction of the batch settles.
          for (const q of batch) q.reject(err);
          if (!(err instanceof AspenError)) throw err; // a bug (assertion): crash loudly
        } finally {
          this.queuedBytes -= bytes;
        }
      }
    } finally {
      this.running = false;
      for (const f of this.idle.splice(0)) f();
    }
  }

  private drain(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((res) => this.idle.push(res));
  }

  /**
   * One group commit. `reserveReleased`: this is the retry of a batch whose space-freeing
   * transactions hit ENOSPC, after the reserve file was emptied; allocating transactions are
   * refused in it so the reserve goes to deletes only.
   */
  private async commitBatch(batch: Queued[], reserveReleased = false): Promise<void> {
    const db = this.writer;
    assert(db !== undefined, 'commitBatch: store closed under a running commit');
    assert(batch.length > 0 && batch.length <= this.opts.batchTxnsMax, `commitBatch: batch of ${batch.length}`);
    assert(!db.inTransaction, 'commitBatch: a write transaction is already open');
    this.retryUnapplied();
    const ctx = new BatchContext({
      st: this.w!,
      files: this.files,
      blockSizeBytes: this.blockSizeBytes,
      deferredMaxBytes: this.opts.deferredMaxBytes,
      deferredPartialMaxBytes: this.opts.deferredPartialMaxBytes,
      inlineMaxBytes: this.opts.inlineMaxBytes,
      allocBlobId: () => this.nextBlobId++,
      unappliedFor: (id) => this.unapplied.get(id) ?? [],
    });
    const full = this.isFull();
    let fatal: unknown;
    let lost: unknown;
    db.exec('BEGIN IMMEDIATE');
    for (const q of batch) {
      if ((full || reserveReleased) && !onlyFreesSpace(q.tx)) {
        q.error = new AspenError('ENOSPC', `object store is full (used >= ${this.opts.fullRatio} of the device or the device returned ENOSPC)`, { full: true });
        continue;
      }
      const mark = ctx.mark();
      db.exec('SAVEPOINT tx');
      try {
        for (const op of q.tx.ops) ctx.apply(op);
        db.exec('RELEASE tx');
      } catch (err) {
        try {
          db.exec('ROLLBACK TO tx');
          db.exec('RELEASE tx');
        } catch {
          // SQLite rolled the whole transaction back itself (it may on SQLITE_FULL/IOERR).
        }
        ctx.rollback(mark);
        if (!db.inTransaction) {
          // Every transaction of the batch so far is lost with it: fail (or retry) the batch as a whole.
          lost = err;
          break;
        }
        if (err instanceof AspenError) {
          q.error = err;
          if (err.code === 'ENOSPC') this.noteEnospc();
        } else {
          const code = (err as { code?: unknown } | null)?.code;
          if (typeof code === 'string' && code.startsWith('SQLITE_')) {
            try {
              sqliteError(err, 'applying a transaction');
            } catch (mapped) {
              q.error = mapped;
              if (mapped instanceof AspenError && mapped.code === 'ENOSPC') this.noteEnospc();
            }
          } else {
            fatal = err; // a bug (assertion): fail the batch and rethrow
            break;
          }
        }
      }
    }
    const freeingHitEnospc = (): boolean => batch.some((q) => onlyFreesSpace(q.tx) && q.error instanceof AspenError && q.error.code === 'ENOSPC');
    if (lost === undefined && fatal === undefined && !reserveReleased && freeingHitEnospc() && emptyReserve(this.reservePath)) {
      db.exec('ROLLBACK');
      this.discard(ctx);
      for (const q of batch) delete q.error;
      return this.commitBatch(batch, true);
    }
    const trim = fatal === undefined && this.unapplied.size === 0 && this.rowsSinceTrim >= this.opts.deferredTrimRows ? this.trimSnapshot() : undefined;
    try {
      if (fatal !== undefined) throw fatal;
      if (lost !== undefined) throw lost;
      // Data before metadata: every new file and its name is durable before the COMMIT that points at it.
      const syncs: Promise<void>[] = ctx.newFiles.map((id) => this.files.sync(id));
      const dirs = new Set(ctx.newFiles.map((id) => this.files.subdir(id)));
      if (trim !== undefined) {
        for (const id of trim.blobs) syncs.push(this.files.sync(id));
        for (const id of trim.names) dirs.add(this.files.subdir(id));
      }
      for (const d of dirs) syncs.push(this.files.syncDir(d));
      await Promise.all(syncs);
      if (trim !== undefined) this.w!.deferredDelUpTo.run(trim.seq);
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      this.discard(ctx);
      let mapped: unknown = err;
      if (!(err instanceof AspenError)) {
        try {
          sqliteError(err, 'group commit');
        } catch (m) {
          mapped = m;
        }
      }
      if (mapped instanceof AspenError && mapped.code === 'ENOSPC') {
        this.noteEnospc();
        const freeing = batch.some((q) => onlyFreesSpace(q.tx) && (q.error === undefined || (q.error instanceof AspenError && q.error.code === 'ENOSPC')));
        if (fatal === undefined && !reserveReleased && freeing && emptyReserve(this.reservePath)) {
          for (const q of batch) delete q.error;
          return this.commitBatch(batch, true);
        }
      }
      // After a lost transaction, even the batch's earlier "successful" transactions were rolled back.
      for (const q of batch) q.reject(lost === undefined ? (q.error ?? mapped) : mapped);
      if (fatal !== undefined) throw fatal;
      return;
    }
    assert(!db.inTransaction, 'commitBatch: COMMIT left a transaction open');
    // Committed. Cleanup bookkeeping, then apply the deferred writes (synchronously, so no read sees the new checksums before the new bytes).
    if (trim !== undefined) {
      for (const id of trim.blobs) this.dirty.delete(id);
      for (const id of trim.names) this.unsyncedNames.delete(id);
      this.rowsSinceTrim = 0;
    }
    const freed = new Set(ctx.freed);
    this.applyActions(ctx, freed);
    for (const id of freed) {
      this.files.unlink(id);
      this.dirty.delete(id);
      this.unsyncedNames.delete(id);
      this.unapplied.delete(id);
    }
    if (ctx.maxSeq > 0) this.lastAppliedSeq = Math.max(this.lastAppliedSeq, ctx.maxSeq);
    this.rowsSinceTrim += Math.max(0, ctx.actions.length) + Math.floor(ctx.deferredBytes / 4096);
    // (Full when the batch began: emptying the reserve for it may have ended the full state by itself.)
    if (ctx.inline.freed > 0 && (full || reserveReleased || this.isFull())) this.releaseInlineSpace();
    if (freed.size > 0 || ctx.inline.freed > 0 || ctx.actions.some((a) => a.kind === 'shrink')) {
      this.enospcSeen = false;
      this.refillReserve();
    }
    this.counters.commits++;
    this.counters.deferredWrites += ctx.actions.filter((a) => a.kind === 'write').length;
    this.counters.deferredBytes += ctx.deferredBytes;
    this.counters.cowBlobs += ctx.newFiles.length;
    this.counters.inlineBlobs += ctx.inline.created;
    this.counters.inlineFreed += ctx.inline.freed;
    this.counters.inlineMigrated += ctx.inline.migrated;
    for (const q of batch) {
      if (q.error !== undefined) {
        this.counters.txnsFailed++;
        q.reject(q.error);
      } else {
        this.counters.txnsCommitted++;
        q.resolve();
      }
    }
  }

  /**
   * Counters since mount (for metrics and tests): group commits (SQLite transactions),
   * transactions committed/failed, deferred writes and their bytes, new blob files (copy-on-write
   * and inline blobs moved to files), inline blobs created / freed / moved to a file.
   */
  stats(): Readonly<typeof this.counters> {
    return { ...this.counters };
  }

  /**
   * On a full device, after a commit deleted inline blobs: their pages are on SQLite's free list,
   * reusable by the database but not by files. Move them to the end of the database and cut it
   * there (auto_vacuum=INCREMENTAL, set at mkfs since format 2; a no-op on older stores), then
   * checkpoint and truncate the WAL so the filesystem gets the space back. In steps of
   * {@link VACUUM_STEP_PAGES}, each needing only that much WAL on the full device. Best effort: a
   * failure leaves the pages on the free list, where later inline writes reuse them.
   */
  private releaseInlineSpace(): void {
    const db = this.writer!;
    try {
      for (let step = 0; step < VACUUM_STEPS_MAX; step++) {
        if (Number(db.pragma('freelist_count', { simple: true })) === 0) break;
        db.pragma(`incremental_vacuum(${VACUUM_STEP_PAGES})`);
        db.pragma('wal_checkpoint(TRUNCATE)');
      }
    } catch {
      // still full: the space stays with the database
    }
    assert(!db.inTransaction, 'releaseInlineSpace: left a transaction open');
  }

  /** Forgets the files of a batch that did not commit. */
  private discard(ctx: BatchContext): void {
    for (const id of ctx.newFiles) this.files.unlink(id);
    for (const id of ctx.createdUnsynced) this.files.unlink(id);
  }

  private applyActions(ctx: BatchContext, freed: ReadonlySet<number>): void {
    for (const id of ctx.createdUnsynced) if (!freed.has(id)) this.unsyncedNames.add(id);
    for (const a of ctx.actions) {
      const id = a.kind === 'write' ? a.w.blobId : a.blobId;
      if (freed.has(id)) continue;
      if (this.unapplied.has(id)) {
        // Keep order behind the earlier failed write.
        if (a.kind === 'write') this.unapplied.get(id)!.push(a.w);
        continue;
      }
      try {
        if (a.kind === 'write') this.files.write(id, a.w.offsetBytes, a.w.data);
        else this.files.truncate(id, a.lengthBytes);
        this.dirty.add(id);
      } catch {
        // Committed in the journal: reads overlay it and the next commit retries; the journal row is kept until it lands.
        if (a.kind === 'write') this.unapplied.set(id, [a.w]);
      }
    }
  }

  private retryUnapplied(): void {
    for (const [id, ws] of this.unapplied) {
      try {
        for (const w of ws) this.files.write(id, w.offsetBytes, w.data);
        this.unapplied.delete(id);
        this.dirty.add(id);
      } catch {
        return;
      }
    }
  }

  private trimSnapshot(): { seq: number; blobs: number[]; names: number[] } {
    return { seq: this.lastAppliedSeq, blobs: [...this.dirty], names: [...this.unsyncedNames] };
  }

  /** Flushes applied deferred writes to the files and drops their journal rows (umount, or when the journal grows). */
  private async trimDeferred(): Promise<void> {
    this.retryUnapplied();
    if (this.unapplied.size > 0) return;
    const t = this.trimSnapshot();
    await Promise.all(t.blobs.map((id) => this.files.sync(id)));
    await Promise.all([...new Set(t.names.map((id) => this.files.subdir(id)))].map((d) => this.files.syncDir(d)));
    try {
      this.w!.deferredDelUpTo.run(t.seq);
    } catch (err) {
      sqliteError(err, 'trimming the deferred journal');
    }
    this.dirty.clear();
    this.unsyncedNames.clear();
    this.rowsSinceTrim = 0;
  }

  // ------------------------------------------------------------------------------------------
  // Reads (reader connection: committed state only)

  private st(): StoreStatements {
    if (this.r === undefined) throw new AspenError('EINVAL', `object store ${this.path} is not mounted`);
    return this.r;
  }

  private onode(coll: string, oid: ObjectId): { o: Onode; key: Buffer } {
    const st = this.st();
    checkCollectionName(coll);
    const key = buf(encodeObjectKey(oid));
    const o = st.getOnode(coll, key);
    if (o === undefined) {
      if (st.collExists.get(coll) === undefined) throw new AspenError('ENOENT', `collection ${coll} does not exist`, { coll });
      throw new AspenError('ENOENT', `object ${formatOid(oid)} does not exist in ${coll}`, { coll, oid: formatOid(oid) });
    }
    return { o, key };
  }

  private blobRecord(o: Onode, blocks?: { first: number; end: number }): BlobRecord | undefined {
    if (o.blobId === 0) return undefined;
    const rec = this.st().getBlob(o.blobId, blocks);
    if (rec === undefined) throw new AspenError('E_CORRUPT', `onode refers to missing blob ${o.blobId}`, { blobId: o.blobId });
    return rec;
  }

  /** Where blob `id`'s committed bytes are read from: its file, or its inline row (reader connection). */
  private source(id: number, rec: BlobRecord): BlockSource {
    return rec.kind === 'inline' ? inlineSource(id, this.st().inlineBytes(id)) : fileSource(this.files, id);
  }

  private readVerified(coll: string, oid: ObjectId, o: Onode, rec: BlobRecord, first: number, end: number): Buffer {
    const bs = this.blockSizeBytes;
    return readBlobBlocks(this.source(o.blobId, rec), rec.map, first, end, bs, [this.unapplied.get(o.blobId) ?? []], (b, reason, detail) => {
      throw new AspenError('EIO', `${reason} error reading ${formatOid(oid)} in ${coll} at offset ${b * bs}: ${detail}`, {
        coll,
        oid: formatOid(oid),
        offsetBytes: b * bs,
        reason,
      });
    });
  }

  async read(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    checkReadRange(offsetBytes, lengthBytes);
    const { o } = this.onode(coll, oid);
    const end = Math.min(o.sizeBytes, offsetBytes + lengthBytes);
    if (offsetBytes >= end) return new Uint8Array(0);
    const bs = this.blockSizeBytes;
    const span = blockSpan(offsetBytes, end - offsetBytes, bs);
    const rec = this.blobRecord(o, span);
    if (rec === undefined) return new Uint8Array(end - offsetBytes);
    const blocks = this.readVerified(coll, oid, o, rec, span.first, span.end);
    const out = blocks.subarray(offsetBytes - span.first * bs, end - span.first * bs);
    assert(out.length === end - offsetBytes, 'read: result length');
    return out;
  }

  async fiemap(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<Extent[]> {
    checkReadRange(offsetBytes, lengthBytes);
    const { o } = this.onode(coll, oid);
    const rec = this.blobRecord(o);
    if (rec === undefined) return [];
    return allocatedExtents(rec.map, o.sizeBytes, offsetBytes, lengthBytes, this.blockSizeBytes);
  }

  async sparseRead(coll: string, oid: ObjectId, offsetBytes: number, lengthBytes: number): Promise<SparseReadResult> {
    const extents = await this.fiemap(coll, oid, offsetBytes, lengthBytes);
    const parts: Uint8Array[] = [];
    for (const e of extents) parts.push(await this.read(coll, oid, e.offsetBytes, e.lengthBytes));
    return { extents, data: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
  }

  async stat(coll: string, oid: ObjectId): Promise<ObjectStat> {
    const { o } = this.onode(coll, oid);
    const rec = this.blobRecord(o);
    const extents = rec === undefined ? [] : allocatedExtents(rec.map, o.sizeBytes, 0, o.sizeBytes, this.blockSizeBytes);
    return { sizeBytes: o.sizeBytes, allocatedBytes: extents.reduce((a, e) => a + e.lengthBytes, 0), blockSizeBytes: this.blockSizeBytes };
  }

  async exists(coll: string, oid: ObjectId): Promise<boolean> {
    checkCollectionName(coll);
    return this.st().getOnode(coll, buf(encodeObjectKey(oid))) !== undefined;
  }

  async getattr(coll: string, oid: ObjectId, name: string): Promise<Uint8Array> {
    const { key } = this.onode(coll, oid);
    const row = this.st().getXattr.get(coll, key, name);
    if (row === undefined) throw new AspenError('ENOENT', `object ${formatOid(oid)} has no xattr ${JSON.stringify(name)}`, { coll, oid: formatOid(oid), name });
    return checkRecord(row.value, row.crc, `xattr ${name} of ${formatOid(oid)}`);
  }

  async getattrs(coll: string, oid: ObjectId): Promise<Map<string, Uint8Array>> {
    const { key } = this.onode(coll, oid);
    const out = new Map<string, Uint8Array>();
    for (const row of this.st().getXattrs.iterate(coll, key)) out.set(row.name, checkRecord(row.value, row.crc, `xattr ${row.name} of ${formatOid(oid)}`));
    return out;
  }

  async omapGetHeader(coll: string, oid: ObjectId): Promise<Uint8Array> {
    const { key } = this.onode(coll, oid);
    const row = this.st().getHeader.get(coll, key);
    return row === undefined ? new Uint8Array(0) : checkRecord(row.v, row.crc, `omap header of ${formatOid(oid)}`);
  }

  async omapGetKeys(coll: string, oid: ObjectId, startAfter: string | undefined, maxKeys: number): Promise<OmapKeysPage> {
    checkMax(maxKeys);
    const { key } = this.onode(coll, oid);
    const st = this.st();
    const rows = startAfter === undefined ? st.omapKeysFrom.all(coll, key, Buffer.alloc(0), maxKeys + 1) : st.omapKeysAfter.all(coll, key, omapKey(startAfter), maxKeys + 1);
    const more = rows.length > maxKeys;
    return { keys: rows.slice(0, maxKeys).map((r) => r.k.toString('utf8')), more };
  }

  async omapGetValues(coll: string, oid: ObjectId, startAfter: string | undefined, maxEntries: number, prefix?: string): Promise<OmapValuesPage> {
    checkMax(maxEntries);
    const { key } = this.onode(coll, oid);
    const st = this.st();
    let after = startAfter;
    let inclusive = false;
    if (prefix !== undefined && (after === undefined || Buffer.compare(omapKey(after), omapKey(prefix)) < 0)) {
      after = prefix;
      inclusive = true;
    }
    const rows =
      after === undefined
        ? st.omapValsFrom.all(coll, key, Buffer.alloc(0), maxEntries + 1)
        : inclusive
          ? st.omapValsFrom.all(coll, key, omapKey(after), maxEntries + 1)
          : st.omapValsAfter.all(coll, key, omapKey(after), maxEntries + 1);
    const entries: Array<readonly [string, Uint8Array]> = [];
    let more = false;
    for (const r of rows) {
      const k = r.k.toString('utf8');
      if (prefix !== undefined && !k.startsWith(prefix)) break;
      if (entries.length === maxEntries) {
        more = true;
        break;
      }
      entries.push([k, checkRecord(r.v, r.crc, `omap ${k} of ${formatOid(oid)}`)]);
    }
    return { entries, more };
  }

  async omapGetValuesByKeys(coll: string, oid: ObjectId, keys: readonly string[]): Promise<Map<string, Uint8Array>> {
    const { key } = this.onode(coll, oid);
    const out = new Map<string, Uint8Array>();
    for (const k of keys) {
      const row = this.st().omapGet.get(coll, key, omapKey(k));
      if (row !== undefined) out.set(k, checkRecord(row.v, row.crc, `omap ${k} of ${formatOid(oid)}`));
    }
    return out;
  }

  async listObjects(coll: string, startAfter: ObjectId | undefined, maxObjects: number): Promise<ObjectListPage> {
    checkMax(maxObjects);
    checkCollectionName(coll);
    const st = this.st();
    if (st.collExists.get(coll) === undefined) throw new AspenError('ENOENT', `collection ${coll} does not exist`, { coll });
    const rows = startAfter === undefined ? st.listFrom.all(coll, Buffer.alloc(0), maxObjects + 1) : st.listAfter.all(coll, buf(encodeObjectKey(startAfter)), maxObjects + 1);
    const objects = rows.slice(0, maxObjects).map((r) => decodeObjectKey(r.okey));
    return { objects, next: rows.length > maxObjects && objects.length > 0 ? objects[objects.length - 1]! : null };
  }

  async listCollections(): Promise<string[]> {
    return this.st().collList.all().map((r) => r.cid);
  }

  async collectionExists(coll: string): Promise<boolean> {
    checkCollectionName(coll);
    return this.st().collExists.get(coll) !== undefined;
  }

  async verify(coll: string, oid: ObjectId): Promise<VerifyResult> {
    normalizeOid(oid);
    const { o } = this.onode(coll, oid);
    const rec = this.blobRecord(o);
    if (rec === undefined) return { ok: true, sizeBytes: o.sizeBytes, blocksChecked: 0, errors: [] };
    const bs = this.blockSizeBytes;
    const errors = new Map<number, VerifyError>();
    const endBlock = Math.min(rec.map.count, Math.ceil(o.sizeBytes / bs));
    let checked = 0;
    const step = 256; // blocks per read: bounded memory for large objects
    const src = this.source(o.blobId, rec);
    for (let first = 0; first < endBlock; first += step) {
      const end = Math.min(endBlock, first + step);
      readBlobBlocks(src, rec.map, first, end, bs, [this.unapplied.get(o.blobId) ?? []], (b, reason, detail) => {
        if (!errors.has(b)) errors.set(b, { offsetBytes: b * bs, reason, detail });
      });
      for (let i = first; i < end; i++) if (rec.map.isAllocated(i)) checked++;
    }
    return { ok: errors.size === 0, sizeBytes: o.sizeBytes, blocksChecked: checked, errors: [...errors.values()] };
  }

  /** Rows in the deferred journal (for tests and metrics). */
  deferredBacklog(): number {
    return this.st().deferredCount.get()!.n;
  }
}

function checkReadRange(offsetBytes: number, lengthBytes: number): void {
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || !Number.isSafeInteger(lengthBytes) || lengthBytes < 0) {
    throw new AspenError('EINVAL', `bad read range ${offsetBytes}+${lengthBytes}`);
  }
}

function checkMax(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new AspenError('EINVAL', `page size must be a positive integer, got ${n}`);
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function readU32(b: Uint8Array): number {
  if (b.length !== 4) throw new AspenError('E_CORRUPT', 'meta value is not a u32');
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}
