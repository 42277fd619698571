/**
 * Durable Raft storage on better-sqlite3 (WAL mode, `synchronous=FULL`): the monitor's log,
 * hard state, latest snapshot and cluster identity, behind the core's {@link RaftStorage}
 * read interface plus the mutations of etcd-raft's MemoryStorage (storage.go) and a group
 * commit of one `Ready` ({@link SqliteRaftStorage.saveReady}).
 *
 * Durability: every mutating method runs ONE SQLite transaction and returns only after it
 * committed; with WAL + `synchronous=FULL` the commit fsyncs the WAL, so a vote or an append is
 * on disk when the call returns (a `kill -9` or power cut afterwards cannot lose it). A call that
 * throws has changed nothing (the transaction rolled back).
 *
 * Integrity: every record (entry row, hard state, log anchor, snapshot, meta row) carries a
 * crc32c of its encoded body. {@link SqliteRaftStorage.open} reads and verifies all of them and
 * throws `AspenError('E_CORRUPT')` naming the table and index of the first bad record, so a
 * corrupt log is reported at start-up and never applied. Entries read later from disk (outside
 * the memory cache) are verified again.
 *
 * Layout (one file, default `<data dir>/mon.db`):
 * - `entries(idx, body, crc)`: the log `[firstIndex, lastIndex]`, body = `encodeEntry`.
 * - `state(name, body, crc)`: `hard_state` (encodeHardState), `anchor` (index and term of the
 *   entry just before `firstIndex`, i.e. the compaction point, etcd's dummy entry) and
 *   `snapshot` (encodeSnapshot).
 * - `meta(key, value, crc)`: cluster identity (`fsid`, `mon_id`), see {@link SqliteRaftStorage.verifyIdentity}.
 *
 * The database is opened with `locking_mode=EXCLUSIVE`, so a second process (a second daemon
 * pointed at the same data dir) cannot open it: `AspenError('EBUSY')`.
 *
 * Hot path: every term of the log is kept in memory (8 bytes per entry) and the newest entries
 * up to `entryCacheMaxBytes` are cached, so `term()`, `lastIndex()` and `entries()` over the
 * recent tail (what replication reads) never touch SQLite.
 */
import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '@aspen/shared/assert.ts';
import { crc32c } from '@aspen/shared/checksum.ts';
import { Decoder, Encoder } from '@aspen/shared/codec.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { decodeEntry, decodeHardState, decodeSnapshot, encodeEntry, encodeHardState, encodeSnapshot } from '../raft/codec.ts';
import { entrySizeBytes } from '../raft/core/util.ts';
import { LogCompactedError, LogUnavailableError } from '../raft/types.ts';
import type { ConfState, Entry, HardState, RaftStorage, Snapshot } from '../raft/types.ts';

/** Thrown by `applySnapshot`/`createSnapshot` when the snapshot is not newer than the stored one (etcd ErrSnapOutOfDate). */
export class SnapshotOutOfDateError extends Error {
  override name = 'SnapshotOutOfDateError';
}

/** Options of {@link SqliteRaftStorage.open}. */
export interface SqliteRaftStorageOptions {
  /** Path of the SQLite file (created with its directory when missing). */
  readonly path: string;
  /** Bytes of newest entries kept decoded in memory (the replication hot path); default 16 MiB. At least the last entry is always cached. */
  readonly entryCacheMaxBytes?: number;
  /** How long to wait for a lock held by another process before failing with EBUSY, ms; default 1000. */
  readonly busyTimeoutMs?: number;
}

/** The parts of a `Ready` that must be persisted, in the order the Ready contract requires. */
export interface ReadyToSave {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  /**
   * False when the Ready's `mustSync` is false (only the commit index changed): the
   * transaction commits without an fsync (SQLite `synchronous=NORMAL` for it). It is still
   * atomic, and the next synced commit makes it durable; Raft does not need the commit index
   * durable (the core tolerates a lagging commit hint on restart). Default true.
   */
  readonly sync?: boolean;
}

/** Default {@link SqliteRaftStorageOptions.entryCacheMaxBytes}. */
export const ENTRY_CACHE_MAX_BYTES_DEFAULT = 16 * 1024 * 1024;

const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: null, commit: 0 });
const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  metadata: Object.freeze({ index: 0, term: 0, confState: Object.freeze({ voters: [], learners: [] }) }),
  data: new Uint8Array(0),
});

interface Anchor {
  readonly index: number;
  readonly term: number;
}
interface Row {
  readonly body: Buffer;
  readonly crc: number;
}
interface EntryRow extends Row {
  readonly idx: number;
}

function toBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function encodeAnchor(a: Anchor): Uint8Array {
  return new Encoder(32).struct(1, 1, (e) => e.u53(a.index).u53(a.term)).finish();
}

function decodeAnchor(b: Uint8Array): Anchor {
  const d = new Decoder(b);
  const a = d.struct(1, 'raft log anchor', (s) => ({ index: s.u53(), term: s.u53() }));
  d.done('raft log anchor');
  return a;
}

/** Translates SQLite failures into catalogued errors; rethrows anything else. */
function sqliteError(err: unknown, what: string): never {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') throw new AspenError('E_CORRUPT', `${what}: ${String(err)}`, { sqlite: code });
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) throw new AspenError('EBUSY', `${what}: database is in use by another process (${code})`, { sqlite: code });
    if (code === 'SQLITE_FULL') throw new AspenError('ENOSPC', `${what}: ${String(err)}`, { sqlite: code });
    if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) throw new AspenError('EIO', `${what}: ${String(err)}`, { sqlite: code });
  }
  throw err;
}

/**
 * {@link RaftStorage} on SQLite. Not thread-safe or re-entrant (Node is single-threaded; every
 * method is synchronous). Use {@link SqliteRaftStorage.open}; call {@link close} at shutdown.
 */
export class SqliteRaftStorage implements RaftStorage {
  private readonly db: Database.Database;
  private readonly entryCacheMaxBytes: number;
  private hs: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = EMPTY_SNAPSHOT;
  private anchor: Anchor = { index: 0, term: 0 };
  /** terms[i] is the term of entry anchor.index + 1 + i; its length is the log length. */
  private terms: number[] = [];
  /** Newest entries: cache[i] has index cacheFirst + i; the cache always ends at lastIndex. */
  private cache: Entry[] = [];
  private cacheFirst = 1;
  private cacheBytes = 0;
  private closed = false;

  private readonly stmts: {
    insertEntry: Database.Statement<[number, Buffer, number]>;
    deleteFrom: Database.Statement<[number]>;
    deleteUpTo: Database.Statement<[number]>;
    deleteAll: Database.Statement<[]>;
    rangeEntries: Database.Statement<[number, number], EntryRow>;
    putState: Database.Statement<[string, Buffer, number]>;
    getMeta: Database.Statement<[string], { value: Buffer; crc: number }>;
    putMeta: Database.Statement<[string, Buffer, number]>;
  };

  private constructor(db: Database.Database, entryCacheMaxBytes: number) {
    this.db = db;
    this.entryCacheMaxBytes = entryCacheMaxBytes;
    this.stmts = {
      insertEntry: db.prepare('INSERT INTO entries (idx, body, crc) VALUES (?, ?, ?)'),
      deleteFrom: db.prepare('DELETE FROM entries WHERE idx >= ?'),
      deleteUpTo: db.prepare('DELETE FROM entries WHERE idx <= ?'),
      deleteAll: db.prepare('DELETE FROM entries'),
      rangeEntries: db.prepare('SELECT idx, body, crc FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx'),
      putState: db.prepare('INSERT OR REPLACE INTO state (name, body, crc) VALUES (?, ?, ?)'),
      getMeta: db.prepare('SELECT value, crc FROM meta WHERE key = ?'),
      putMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?, ?, ?)'),
    };
  }

  /**
   * Opens (creating if missing) the storage at `options.path`, verifies the crc32c of every
   * record and loads the hard state, snapshot, log terms and the newest entries into memory.
   * Cost: one full read of the file.
   * @throws AspenError E_CORRUPT naming the table/index of a record that fails its checksum,
   *   does not decode, or breaks the log's shape (gap, index mismatch, decreasing term);
   *   EBUSY when another process has the database open; EIO/ENOSPC on I/O failures.
   */
  static open(options: SqliteRaftStorageOptions): SqliteRaftStorage {
    const entryCacheMaxBytes = options.entryCacheMaxBytes ?? ENTRY_CACHE_MAX_BYTES_DEFAULT;
    assert(Number.isSafeInteger(entryCacheMaxBytes) && entryCacheMaxBytes >= 0, 'entryCacheMaxBytes must be a non-negative integer');
    const dir = dirname(options.path);
    mkdirSync(dir, { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 1000 });
    } catch (err) {
      sqliteError(err, `opening ${options.path}`);
    }
    try {
      // EXCLUSIVE before the first read so the lock is taken at once and kept.
      db.pragma('locking_mode = EXCLUSIVE');
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      assert(mode === 'wal', `journal_mode is ${String(mode)}, expected wal`);
      db.pragma('synchronous = FULL');
      db.exec(`
        CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, body BLOB NOT NULL, crc INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, body BLOB NOT NULL, crc INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL);
      `);
      // The WAL and database files may have just been created: make their names durable too.
      const dirFd = openSync(dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
      const storage = new SqliteRaftStorage(db, entryCacheMaxBytes);
      storage.load();
      return storage;
    } catch (err) {
      db.close();
      if (err instanceof AspenError) throw err;
      sqliteError(err, `opening ${options.path}`);
    }
  }

  /** Closes the database (checkpointing the WAL). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // Loading and verification

  private verify(table: string, key: string | number, row: Row): Uint8Array {
    const body = new Uint8Array(row.body.buffer, row.body.byteOffset, row.body.byteLength);
    const actual = crc32c(body);
    if (actual !== row.crc) {
      throw new AspenError('E_CORRUPT', `table ${table} record ${key}: crc32c mismatch (stored 0x${(row.crc >>> 0).toString(16)}, computed 0x${actual.toString(16)})`, { table, key });
    }
    return body;
  }

  private decodeOrCorrupt<T>(table: string, key: string | number, body: Uint8Array, decode: (b: Uint8Array) => T): T {
    try {
      return decode(body);
    } catch (err) {
      if (err instanceof AspenError) throw new AspenError('E_CORRUPT', `table ${table} record ${key}: ${err.message}`, { table, key });
      throw err;
    }
  }

  private load(): void {
    const stateRows = this.db.prepare<[], { name: string; body: Buffer; crc: number }>('SELECT name, body, crc FROM state').all();
    for (const row of stateRows) {
      const body = this.verify('state', row.name, row);
      switch (row.name) {
        case 'hard_state':
          this.hs = this.decodeOrCorrupt('state', row.name, body, decodeHardState);
          break;
        case 'anchor':
          this.anchor = this.decodeOrCorrupt('state', row.name, body, decodeAnchor);
          break;
        case 'snapshot':
          this.snap = this.decodeOrCorrupt('state', row.name, body, decodeSnapshot);
          break;
        default:
          throw new AspenError('E_CORRUPT', `table state: unknown record ${JSON.stringify(row.name)}`, { table: 'state', key: row.name });
      }
    }
    for (const row of this.db.prepare<[], { key: string; value: Buffer; crc: number }>('SELECT key, value, crc FROM meta').all()) {
      this.verify('meta', row.key, { body: row.value, crc: row.crc });
    }
    if (this.anchor.index > this.snap.metadata.index) {
      throw new AspenError('E_CORRUPT', `table state: log compacted to ${this.anchor.index}, past the snapshot at ${this.snap.metadata.index}`, { table: 'state', key: 'anchor' });
    }
    const it = this.db.prepare<[], EntryRow>('SELECT idx, body, crc FROM entries ORDER BY idx').iterate();
    let expected = this.anchor.index + 1;
    let prevTerm = this.anchor.term;
    this.cacheFirst = expected;
    for (const row of it) {
      const body = this.verify('entries', row.idx, row);
      const entry = this.decodeOrCorrupt('entries', row.idx, body, decodeEntry);
      if (row.idx !== expected || entry.index !== row.idx) {
        throw new AspenError('E_CORRUPT', `table entries record ${row.idx}: expected index ${expected} (body says ${entry.index})`, { table: 'entries', key: row.idx });
      }
      if (entry.term < prevTerm) {
        throw new AspenError('E_CORRUPT', `table entries record ${row.idx}: term ${entry.term} below previous term ${prevTerm}`, { table: 'entries', key: row.idx });
      }
      this.terms.push(entry.term);
      this.cache.push(entry);
      this.cacheBytes += entrySizeBytes(entry);
      // Trim in bulk (amortized) so a long log never sits in memory whole.
      if (this.cacheBytes > 2 * this.entryCacheMaxBytes + 1024 * 1024) this.trimCache();
      prevTerm = entry.term;
      expected++;
    }
    this.trimCache();
    assert(this.cacheFirst + this.cache.length === this.lastIndex() + 1, 'cache ends at last index after load');
  }

  // -------------------------------------------------------------------------------------------
  // RaftStorage (reads)

  /** The persisted hard state and the membership of the latest snapshot (empty when none). */
  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hs, confState: this.snap.metadata.confState };
  }

  /**
   * Entries in `[lo, hi)` up to `maxSizeBytes` as the core counts them (`entrySizeBytes`,
   * etcd's limitSize: at least one). Served from memory when
   * `lo` is within the cache, else read and re-verified from SQLite.
   * @throws LogCompactedError when `lo < firstIndex()`; LogUnavailableError when `hi > lastIndex()+1`;
   *   AspenError E_CORRUPT when a row read from disk fails its checksum.
   */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    this.assertOpen();
    assert(lo <= hi, `entries: lo ${lo} > hi ${hi}`);
    if (lo <= this.anchor.index) throw new LogCompactedError(`entry ${lo} is compacted (first index ${this.firstIndex()})`);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(`entries up to ${hi - 1} unavailable (last index ${this.lastIndex()})`);
    if (lo === hi) return [];
    const out: Entry[] = [];
    let size = 0;
    const take = (e: Entry): boolean => {
      size += entrySizeBytes(e);
      if (out.length > 0 && size > maxSizeBytes) return false;
      out.push(e);
      return true;
    };
    let next = lo;
    if (next < this.cacheFirst) {
      const diskHi = Math.min(hi, this.cacheFirst);
      for (const row of this.stmts.rangeEntries.iterate(next, diskHi)) {
        const entry = this.decodeOrCorrupt('entries', row.idx, this.verify('entries', row.idx, row), decodeEntry);
        if (entry.index !== next) throw new AspenError('E_CORRUPT', `table entries: expected index ${next}, found ${entry.index}`, { table: 'entries', key: next });
        if (!take(entry)) return out;
        next++;
      }
      if (next !== diskHi) throw new AspenError('E_CORRUPT', `table entries: entry ${next} missing`, { table: 'entries', key: next });
    }
    for (; next < hi; next++) {
      const entry = this.cache[next - this.cacheFirst];
      assert(entry !== undefined && entry.index === next, `entry cache misses index ${next}`);
      if (!take(entry)) break;
    }
    assert(out.length > 0 && out[0]!.index === lo, 'entries returns at least the first entry');
    return out;
  }

  /** Term of entry `index` (from memory); `firstIndex()-1` gives the anchor's term. @throws LogCompactedError, LogUnavailableError */
  term(index: number): number {
    if (index === this.anchor.index) return this.anchor.term;
    if (index < this.anchor.index) throw new LogCompactedError(`term of ${index}: compacted (first index ${this.firstIndex()})`);
    const t = this.terms[index - this.anchor.index - 1];
    if (t === undefined) throw new LogUnavailableError(`term of ${index}: unavailable (last index ${this.lastIndex()})`);
    return t;
  }

  firstIndex(): number {
    return this.anchor.index + 1;
  }

  lastIndex(): number {
    return this.anchor.index + this.terms.length;
  }

  /** The latest snapshot (index 0 and empty data when none). */
  snapshot(): Snapshot {
    return this.snap;
  }

  /** The persisted hard state (same as `initialState().hardState`, kept current). */
  hardState(): HardState {
    return this.hs;
  }

  // -------------------------------------------------------------------------------------------
  // Mutations (each one transaction, fsynced on return)

  /**
   * Appends `entries` (consecutive indexes), first deleting any stored suffix from
   * `entries[0].index` on (a conflicting suffix from an older leader). Entries at or below the
   * compaction point are skipped. Durable on return.
   * Asserts (programmer error) that the entries are contiguous and leave no gap after `lastIndex()`.
   */
  append(entries: readonly Entry[]): void {
    this.saveReady({ hardState: null, entries, snapshot: null });
  }

  /** Stores the hard state. Durable on return. Asserts term and commit never decrease and a vote never changes within a term. */
  setHardState(hs: HardState): void {
    this.saveReady({ hardState: hs, entries: [], snapshot: null });
  }

  /**
   * Replaces the whole log with `snap` (a follower receiving InstallSnapshot): the log becomes
   * empty with `firstIndex() = snap.index + 1`. Durable on return.
   * @throws SnapshotOutOfDateError when `snap.metadata.index` is not past the stored snapshot's.
   */
  applySnapshot(snap: Snapshot): void {
    this.saveReady({ hardState: null, entries: [], snapshot: snap });
  }

  /**
   * Group commit of one Ready: in one transaction applies `snapshot` (as {@link applySnapshot}),
   * then appends `entries` (as {@link append}), then stores `hardState` — the order the Ready
   * contract requires. Durable (one fsync) when it returns; on a throw nothing changed.
   * @throws SnapshotOutOfDateError; AspenError ENOSPC/EIO on disk failures.
   */
  saveReady(ready: ReadyToSave): void {
    this.assertOpen();
    const snap = ready.snapshot !== null && ready.snapshot.metadata.index > 0 ? ready.snapshot : null;
    if (snap !== null && snap.metadata.index <= this.snap.metadata.index) {
      throw new SnapshotOutOfDateError(`snapshot at ${snap.metadata.index} is not newer than the stored one at ${this.snap.metadata.index}`);
    }
    const entries = this.entriesToWrite(ready.entries, snap);
    if (ready.hardState !== null) this.checkHardState(ready.hardState);
    if (snap === null && entries.length === 0 && ready.hardState === null) return;

    const relaxed = ready.sync === false && snap === null && entries.length === 0;
    if (relaxed) this.db.pragma('synchronous = NORMAL');
    try {
    this.transaction(() => {
      if (snap !== null) {
        this.stmts.deleteAll.run();
        this.putState('snapshot', encodeSnapshot(snap));
        this.putState('anchor', encodeAnchor({ index: snap.metadata.index, term: snap.metadata.term }));
      }
      if (entries.length > 0) {
        this.stmts.deleteFrom.run(entries[0]!.index);
        for (const e of entries) {
          const body = encodeEntry(e);
          this.stmts.insertEntry.run(e.index, toBuffer(body), crc32c(body));
        }
      }
      if (ready.hardState !== null) this.putState('hard_state', encodeHardState(ready.hardState));
    }, 'saving ready');
    } finally {
      if (relaxed) this.db.pragma('synchronous = FULL');
    }

    // Committed: now mirror it in memory.
    if (snap !== null) {
      this.snap = snap;
      this.anchor = { index: snap.metadata.index, term: snap.metadata.term };
      this.terms = [];
      this.cache = [];
      this.cacheFirst = this.anchor.index + 1;
      this.cacheBytes = 0;
    }
    if (entries.length > 0) this.appendInMemory(entries);
    if (ready.hardState !== null) this.hs = ready.hardState;
  }

  /**
   * Records `data` as a snapshot of the state machine at `index` (which must be applied, so
   * `index <= lastIndex()`), with membership `confState`, and returns it. The log is unchanged:
   * call {@link compact} to drop the entries it covers. Durable on return. A request not newer
   * than the stored snapshot is ignored and the stored one returned (as MemoryStorage does).
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    this.assertOpen();
    if (index <= this.snap.metadata.index) return this.snap;
    assert(index <= this.lastIndex(), `createSnapshot at ${index} beyond last index ${this.lastIndex()}`);
    const snap: Snapshot = { metadata: { index, term: this.term(index), confState }, data };
    this.transaction(() => this.putState('snapshot', encodeSnapshot(snap)), 'creating snapshot');
    this.snap = snap;
    return snap;
  }

  /**
   * Discards entries up to and including `index` (it becomes the anchor: `firstIndex() =
   * index + 1`, `term(index)` still answers). The caller must have a snapshot covering `index`
   * first (createSnapshot). Durable on return. Compacting to an index already compacted is a
   * no-op (as MemoryStorage does). Asserts `index <= lastIndex()` and `index <=` the snapshot's.
   */
  compact(index: number): void {
    this.assertOpen();
    if (index <= this.anchor.index) return;
    assert(index <= this.lastIndex(), `compact to ${index} beyond last index ${this.lastIndex()}`);
    assert(index <= this.snap.metadata.index, `compact to ${index} beyond the snapshot at ${this.snap.metadata.index} would lose committed state`);
    const anchor: Anchor = { index, term: this.term(index) };
    this.transaction(() => {
      this.stmts.deleteUpTo.run(index);
      this.putState('anchor', encodeAnchor(anchor));
    }, 'compacting log');
    this.terms = this.terms.slice(index - this.anchor.index);
    this.anchor = anchor;
    if (this.cacheFirst <= index) {
      for (let i = this.cacheFirst; i <= index; i++) this.cacheBytes -= entrySizeBytes(this.cache[i - this.cacheFirst]!);
      this.cache = this.cache.slice(index + 1 - this.cacheFirst);
      this.cacheFirst = index + 1;
    }
    assert(this.cacheFirst + this.cache.length === this.lastIndex() + 1, 'cache ends at last index after compact');
  }

  // -------------------------------------------------------------------------------------------
  // Cluster identity

  /** A meta value (UTF-8) or undefined. Checksum-verified. @throws AspenError E_CORRUPT */
  getMeta(key: string): string | undefined {
    this.assertOpen();
    const row = this.stmts.getMeta.get(key);
    if (row === undefined) return undefined;
    return new TextDecoder().decode(this.verify('meta', key, { body: row.value, crc: row.crc }));
  }

  /** Stores a meta value. Durable on return. */
  setMeta(key: string, value: string): void {
    this.assertOpen();
    const body = new TextEncoder().encode(value);
    this.transaction(() => this.stmts.putMeta.run(key, toBuffer(body), crc32c(body)), `setting meta ${key}`);
  }

  /**
   * Checks this store belongs to cluster `fsid` and monitor `monId`. When `stampIfNew` and the
   * store has no identity yet (first start, `--mkfs`), records it durably.
   * @returns true when the identity was just stamped.
   * @throws AspenError E_WRONG_CLUSTER when the stored fsid or mon id differs, or (without
   *   `stampIfNew`) when the store has no identity (not created by mkfs).
   */
  verifyIdentity(fsid: string, monId: string, stampIfNew: boolean): boolean {
    const storedFsid = this.getMeta('fsid');
    const storedMon = this.getMeta('mon_id');
    if (storedFsid === undefined && storedMon === undefined) {
      if (!stampIfNew) throw new AspenError('E_WRONG_CLUSTER', 'data directory has no cluster identity (run mkfs first)', { fsid });
      this.transaction(() => {
        for (const [k, v] of [['fsid', fsid], ['mon_id', monId]] as const) {
          const body = new TextEncoder().encode(v);
          this.stmts.putMeta.run(k, toBuffer(body), crc32c(body));
        }
      }, 'stamping identity');
      return true;
    }
    if (storedFsid !== fsid) throw new AspenError('E_WRONG_CLUSTER', `data directory belongs to cluster ${String(storedFsid)}, not ${fsid}`, { expected: fsid, found: storedFsid });
    if (storedMon !== monId) throw new AspenError('E_WRONG_CLUSTER', `data directory belongs to mon.${String(storedMon)}, not mon.${monId}`, { expected: monId, found: storedMon });
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private assertOpen(): void {
    assert(!this.closed, 'raft storage used after close');
  }

  private transaction(fn: () => void, what: string): void {
    try {
      this.db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof AspenError) throw err;
      sqliteError(err, what);
    }
  }

  private putState(name: 'hard_state' | 'anchor' | 'snapshot', body: Uint8Array): void {
    this.stmts.putState.run(name, toBuffer(body), crc32c(body));
  }

  private checkHardState(hs: HardState): void {
    assert(hs.term >= this.hs.term, `hard state term went back from ${this.hs.term} to ${hs.term}`);
    assert(
      hs.term !== this.hs.term || this.hs.vote === null || hs.vote === this.hs.vote,
      `vote changed within term ${hs.term} from ${String(this.hs.vote)} to ${String(hs.vote)}`,
    );
    assert(hs.commit >= this.hs.commit, `commit went back from ${this.hs.commit} to ${hs.commit}`);
  }

  /** The entries of an append that survive the compaction point, validated against the (post-snapshot) log. */
  private entriesToWrite(entries: readonly Entry[], snap: Snapshot | null): readonly Entry[] {
    if (entries.length === 0) return entries;
    for (let i = 1; i < entries.length; i++) {
      assert(entries[i]!.index === entries[i - 1]!.index + 1, `appended entries not contiguous at ${entries[i]!.index}`);
    }
    const anchorIndex = snap !== null ? snap.metadata.index : this.anchor.index;
    const lastIndex = snap !== null ? snap.metadata.index : this.lastIndex();
    const first = entries[0]!.index;
    assert(first <= lastIndex + 1, `append at ${first} leaves a gap after last index ${lastIndex}`);
    if (first > anchorIndex) return entries;
    return entries.slice(anchorIndex + 1 - first);
  }

  private appendInMemory(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    const lastBefore = this.lastIndex();
    assert(first > this.anchor.index && first <= lastBefore + 1, `in-memory append at ${first}`);
    // Truncate the conflicting suffix.
    this.terms.length = first - this.anchor.index - 1;
    if (first < this.cacheFirst) {
      this.cache = [];
      this.cacheFirst = first;
      this.cacheBytes = 0;
    } else {
      for (let i = first; i <= lastBefore; i++) this.cacheBytes -= entrySizeBytes(this.cache[i - this.cacheFirst]!);
      this.cache.length = first - this.cacheFirst;
    }
    for (const e of entries) {
      // Do not pin a large network buffer that the entry is only a view of.
      const own = e.data.byteLength === e.data.buffer.byteLength ? e : { ...e, data: e.data.slice() };
      this.terms.push(e.term);
      this.cache.push(own);
      this.cacheBytes += entrySizeBytes(own);
    }
    this.trimCache();
    assert(this.lastIndex() === entries[entries.length - 1]!.index, 'last index after append');
    assert(this.cacheFirst + this.cache.length === this.lastIndex() + 1, 'cache ends at last index');
  }

  /** Evicts the oldest cached entries beyond the byte limit, always keeping the last one. */
  private trimCache(): void {
    let drop = 0;
    while (this.cacheBytes > this.entryCacheMaxBytes && drop < this.cache.length - 1) {
      this.cacheBytes -= entrySizeBytes(this.cache[drop]!);
      drop++;
    }
    if (drop > 0) {
      this.cache = this.cache.slice(drop);
      this.cacheFirst += drop;
    }
  }
}
