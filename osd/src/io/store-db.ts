/**
 * The object store's metadata database (better-sqlite3, WAL, `synchronous=FULL`): schema, the
 * two connections and their prepared statements. See docs/adr/0004-osd-object-store.md.
 *
 * Two connections to one file: the *writer* holds a transaction open while a group commit's
 * data files are fsynced; the *reader* serves reads and sees only committed state meanwhile
 * (WAL readers never see another connection's uncommitted pages).
 *
 * Every row that holds a value carries a crc32c of it (`crc` column), checked on every read of
 * the row: a mismatch is AspenError E_CORRUPT, never a wrong value.
 */
import Database from 'better-sqlite3';
import { assert } from '@aspen/shared/assert.ts';
import { crc32c } from '@aspen/shared/checksum.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { BlockMap, checkRecord, MAP_CHUNK_BLOCKS, decodeBlobHeader, decodeOnode, encodeBlobHeader, encodeOnode, type BlobHeader, type BlobRecord, type Onode } from '../store/blocks.ts';

/**
 * On-disk format version of the store (meta key `format`). 2 added inline blobs (the
 * `inline_data` table, blob records v2); a format-1 store is upgraded when mounted (the table
 * is created, nothing is rewritten) and is then refused by format-1 builds.
 */
export const STORE_FORMAT_VERSION = 2;
/** Oldest on-disk format this build mounts. */
export const STORE_FORMAT_VERSION_MIN = 1;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS colls (cid TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS onodes (cid TEXT NOT NULL, okey BLOB NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (cid, okey)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL, crc INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS csums (blob INTEGER NOT NULL, chunk INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (blob, chunk)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS xattrs (cid TEXT NOT NULL, okey BLOB NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (cid, okey, name)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS omap (cid TEXT NOT NULL, okey BLOB NOT NULL, k BLOB NOT NULL, v BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (cid, okey, k)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS omap_header (cid TEXT NOT NULL, okey BLOB NOT NULL, v BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (cid, okey)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS deferred (seq INTEGER PRIMARY KEY AUTOINCREMENT, blob INTEGER NOT NULL, off INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS inline_data (blob INTEGER PRIMARY KEY, data BLOB NOT NULL);
`;

/** A Buffer view of `b` without copying (better-sqlite3 binds Buffers as BLOBs). */
export function buf(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

const utf8 = new TextEncoder();
/** An omap key as the BLOB it is stored as (UTF-8; memcmp order). */
export function omapKey(k: string): Buffer {
  return buf(utf8.encode(k));
}

/** Translates SQLite failures into catalogued errors; rethrows anything else. */
export function sqliteError(err: unknown, what: string): never {
  if (err instanceof AspenError) throw err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') throw new AspenError('E_CORRUPT', `${what}: ${String(err)}`, { sqlite: code });
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) throw new AspenError('EBUSY', `${what}: database is in use (${code})`, { sqlite: code });
    if (code === 'SQLITE_FULL') throw new AspenError('ENOSPC', `${what}: ${String(err)}`, { sqlite: code, full: true });
    if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) throw new AspenError('EIO', `${what}: ${String(err)}`, { sqlite: code });
  }
  throw err;
}

type K = [string, Buffer];

/** Prepared statements of one connection. Reads verify row checksums. */
export class StoreStatements {
  readonly getOnodeStmt: Database.Statement<K, { body: Buffer; crc: number }>;
  readonly putOnodeStmt: Database.Statement<[string, Buffer, Buffer, number]>;
  readonly delOnodeStmt: Database.Statement<K>;
  readonly getBlobStmt: Database.Statement<[number], { body: Buffer; crc: number }>;
  readonly putBlobStmt: Database.Statement<[number, Buffer, number]>;
  readonly delBlobStmt: Database.Statement<[number]>;
  readonly getChunks: Database.Statement<[number], { chunk: number; body: Buffer; crc: number }>;
  readonly putChunk: Database.Statement<[number, number, Buffer, number]>;
  readonly delChunksFrom: Database.Statement<[number, number]>;
  readonly getChunkRange: Database.Statement<[number, number, number, number], { chunk: number; body: Buffer; crc: number }>;
  readonly getXattr: Database.Statement<[string, Buffer, string], { value: Buffer; crc: number }>;
  readonly getXattrs: Database.Statement<K, { name: string; value: Buffer; crc: number }>;
  readonly putXattr: Database.Statement<[string, Buffer, string, Buffer, number]>;
  readonly delXattr: Database.Statement<[string, Buffer, string]>;
  readonly delXattrs: Database.Statement<K>;
  readonly copyXattrs: Database.Statement<[string, Buffer, string, Buffer]>;
  readonly moveXattrs: Database.Statement<[string, Buffer, string, Buffer]>;
  readonly getHeader: Database.Statement<K, { v: Buffer; crc: number }>;
  readonly putHeader: Database.Statement<[string, Buffer, Buffer, number]>;
  readonly delHeader: Database.Statement<K>;
  readonly copyHeader: Database.Statement<[string, Buffer, string, Buffer]>;
  readonly moveHeader: Database.Statement<[string, Buffer, string, Buffer]>;
  readonly omapPut: Database.Statement<[string, Buffer, Buffer, Buffer, number]>;
  readonly omapDel: Database.Statement<[string, Buffer, Buffer]>;
  readonly omapDelRange: Database.Statement<[string, Buffer, Buffer, Buffer]>;
  readonly omapClear: Database.Statement<K>;
  readonly omapCopy: Database.Statement<[string, Buffer, string, Buffer]>;
  readonly omapMove: Database.Statement<[string, Buffer, string, Buffer]>;
  readonly omapGet: Database.Statement<[string, Buffer, Buffer], { v: Buffer; crc: number }>;
  readonly omapKeysAfter: Database.Statement<[string, Buffer, Buffer, number], { k: Buffer }>;
  readonly omapKeysFrom: Database.Statement<[string, Buffer, Buffer, number], { k: Buffer }>;
  readonly omapValsAfter: Database.Statement<[string, Buffer, Buffer, number], { k: Buffer; v: Buffer; crc: number }>;
  readonly omapValsFrom: Database.Statement<[string, Buffer, Buffer, number], { k: Buffer; v: Buffer; crc: number }>;
  readonly collExists: Database.Statement<[string], { one: number }>;
  readonly collPut: Database.Statement<[string]>;
  readonly collDel: Database.Statement<[string]>;
  readonly collList: Database.Statement<[], { cid: string }>;
  readonly collHasObjects: Database.Statement<[string], { one: number }>;
  readonly listAfter: Database.Statement<[string, Buffer, number], { okey: Buffer }>;
  readonly listFrom: Database.Statement<[string, Buffer, number], { okey: Buffer }>;
  readonly deferredPut: Database.Statement<[number, number, Buffer, number]>;
  readonly deferredAll: Database.Statement<[], { seq: number; blob: number; off: number; data: Buffer; crc: number }>;
  readonly deferredDelUpTo: Database.Statement<[number]>;
  readonly deferredDelBlob: Database.Statement<[number]>;
  readonly deferredCount: Database.Statement<[], { n: number }>;
  readonly blobIds: Database.Statement<[], { id: number }>;
  /** Inline blob bytes: blocks [0, blockCount) of the blob; checked by the block map's crc32c per block, like file data. */
  readonly getInline: Database.Statement<[number], { data: Buffer }>;
  readonly putInline: Database.Statement<[number, Buffer]>;
  readonly delInline: Database.Statement<[number]>;
  readonly copyInline: Database.Statement<[number, number]>;
  readonly metaGet: Database.Statement<[string], { value: Buffer; crc: number }>;
  readonly metaPut: Database.Statement<[string, Buffer, number]>;

  constructor(db: Database.Database) {
    this.getOnodeStmt = db.prepare('SELECT body, crc FROM onodes WHERE cid = ? AND okey = ?');
    this.putOnodeStmt = db.prepare('INSERT OR REPLACE INTO onodes (cid, okey, body, crc) VALUES (?, ?, ?, ?)');
    this.delOnodeStmt = db.prepare('DELETE FROM onodes WHERE cid = ? AND okey = ?');
    this.getBlobStmt = db.prepare('SELECT body, crc FROM blobs WHERE id = ?');
    this.putBlobStmt = db.prepare('INSERT OR REPLACE INTO blobs (id, body, crc) VALUES (?, ?, ?)');
    this.delBlobStmt = db.prepare('DELETE FROM blobs WHERE id = ?');
    this.getChunks = db.prepare('SELECT chunk, body, crc FROM csums WHERE blob = ? ORDER BY chunk');
    this.putChunk = db.prepare('INSERT OR REPLACE INTO csums (blob, chunk, body, crc) VALUES (?, ?, ?, ?)');
    this.delChunksFrom = db.prepare('DELETE FROM csums WHERE blob = ? AND chunk >= ?');
    this.getChunkRange = db.prepare('SELECT chunk, body, crc FROM csums WHERE blob = ? AND ((chunk >= ? AND chunk < ?) OR chunk = ?) ORDER BY chunk');
    this.getXattr = db.prepare('SELECT value, crc FROM xattrs WHERE cid = ? AND okey = ? AND name = ?');
    this.getXattrs = db.prepare('SELECT name, value, crc FROM xattrs WHERE cid = ? AND okey = ? ORDER BY name');
    this.putXattr = db.prepare('INSERT OR REPLACE INTO xattrs (cid, okey, name, value, crc) VALUES (?, ?, ?, ?, ?)');
    this.delXattr = db.prepare('DELETE FROM xattrs WHERE cid = ? AND okey = ? AND name = ?');
    this.delXattrs = db.prepare('DELETE FROM xattrs WHERE cid = ? AND okey = ?');
    this.copyXattrs = db.prepare('INSERT INTO xattrs (cid, okey, name, value, crc) SELECT ?, ?, name, value, crc FROM xattrs WHERE cid = ? AND okey = ?');
    this.moveXattrs = db.prepare('UPDATE xattrs SET cid = ?, okey = ? WHERE cid = ? AND okey = ?');
    this.getHeader = db.prepare('SELECT v, crc FROM omap_header WHERE cid = ? AND okey = ?');
    this.putHeader = db.prepare('INSERT OR REPLACE INTO omap_header (cid, okey, v, crc) VALUES (?, ?, ?, ?)');
    this.delHeader = db.prepare('DELETE FROM omap_header WHERE cid = ? AND okey = ?');
    this.copyHeader = db.prepare('INSERT INTO omap_header (cid, okey, v, crc) SELECT ?, ?, v, crc FROM omap_header WHERE cid = ? AND okey = ?');
    this.moveHeader = db.prepare('UPDATE omap_header SET cid = ?, okey = ? WHERE cid = ? AND okey = ?');
    this.omapPut = db.prepare('INSERT OR REPLACE INTO omap (cid, okey, k, v, crc) VALUES (?, ?, ?, ?, ?)');
    this.omapDel = db.prepare('DELETE FROM omap WHERE cid = ? AND okey = ? AND k = ?');
    this.omapDelRange = db.prepare('DELETE FROM omap WHERE cid = ? AND okey = ? AND k >= ? AND k < ?');
    this.omapClear = db.prepare('DELETE FROM omap WHERE cid = ? AND okey = ?');
    this.omapCopy = db.prepare('INSERT INTO omap (cid, okey, k, v, crc) SELECT ?, ?, k, v, crc FROM omap WHERE cid = ? AND okey = ?');
    this.omapMove = db.prepare('UPDATE omap SET cid = ?, okey = ? WHERE cid = ? AND okey = ?');
    this.omapGet = db.prepare('SELECT v, crc FROM omap WHERE cid = ? AND okey = ? AND k = ?');
    this.omapKeysAfter = db.prepare('SELECT k FROM omap WHERE cid = ? AND okey = ? AND k > ? ORDER BY k LIMIT ?');
    this.omapKeysFrom = db.prepare('SELECT k FROM omap WHERE cid = ? AND okey = ? AND k >= ? ORDER BY k LIMIT ?');
    this.omapValsAfter = db.prepare('SELECT k, v, crc FROM omap WHERE cid = ? AND okey = ? AND k > ? ORDER BY k LIMIT ?');
    this.omapValsFrom = db.prepare('SELECT k, v, crc FROM omap WHERE cid = ? AND okey = ? AND k >= ? ORDER BY k LIMIT ?');
    this.collExists = db.prepare('SELECT 1 AS one FROM colls WHERE cid = ?');
    this.collPut = db.prepare('INSERT INTO colls (cid) VALUES (?)');
    this.collDel = db.prepare('DELETE FROM colls WHERE cid = ?');
    this.collList = db.prepare('SELECT cid FROM colls ORDER BY cid');
    this.collHasObjects = db.prepare('SELECT 1 AS one FROM onodes WHERE cid = ? LIMIT 1');
    this.listAfter = db.prepare('SELECT okey FROM onodes WHERE cid = ? AND okey > ? ORDER BY okey LIMIT ?');
    this.listFrom = db.prepare('SELECT okey FROM onodes WHERE cid = ? AND okey >= ? ORDER BY okey LIMIT ?');
    this.deferredPut = db.prepare('INSERT INTO deferred (blob, off, data, crc) VALUES (?, ?, ?, ?)');
    this.deferredAll = db.prepare('SELECT seq, blob, off, data, crc FROM deferred ORDER BY seq');
    this.deferredDelUpTo = db.prepare('DELETE FROM deferred WHERE seq <= ?');
    this.deferredDelBlob = db.prepare('DELETE FROM deferred WHERE blob = ?');
    this.deferredCount = db.prepare('SELECT count(*) AS n FROM deferred');
    this.blobIds = db.prepare('SELECT id FROM blobs');
    this.getInline = db.prepare('SELECT data FROM inline_data WHERE blob = ?');
    this.putInline = db.prepare('INSERT OR REPLACE INTO inline_data (blob, data) VALUES (?, ?)');
    this.delInline = db.prepare('DELETE FROM inline_data WHERE blob = ?');
    this.copyInline = db.prepare('INSERT INTO inline_data (blob, data) SELECT ?, data FROM inline_data WHERE blob = ?');
    this.metaGet = db.prepare('SELECT value, crc FROM meta WHERE key = ?');
    this.metaPut = db.prepare('INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?, ?, ?)');
  }

  /** The onode of (cid, okey), or undefined. @throws AspenError E_CORRUPT. */
  getOnode(cid: string, okey: Buffer): Onode | undefined {
    const row = this.getOnodeStmt.get(cid, okey);
    if (row === undefined) return undefined;
    return decodeOnode(checkRecord(row.body, row.crc, `onode ${cid}`));
  }
  putOnode(cid: string, okey: Buffer, o: Onode): void {
    const body = encodeOnode(o);
    this.putOnodeStmt.run(cid, okey, buf(body), crc32c(body));
  }
  /** The blob row alone (refs, block count, kind), or undefined. @throws AspenError E_CORRUPT. */
  getBlobHeader(id: number): BlobHeader | undefined {
    assert(id > 0, 'getBlobHeader: blob id 0 means none');
    const row = this.getBlobStmt.get(id);
    return row === undefined ? undefined : decodeBlobHeader(checkRecord(row.body, row.crc, `blob ${id}`));
  }

  /**
   * The blob record with its block map, or undefined. With `blocks`, only the map chunks
   * covering blocks [first, end) (and the last chunk) are loaded: the hot paths touch a few
   * blocks of large objects. @throws AspenError E_CORRUPT.
   */
  getBlob(id: number, blocks?: { readonly first: number; readonly end: number }): BlobRecord | undefined {
    const h = this.getBlobHeader(id);
    if (h === undefined) return undefined;
    const lastChunk = Math.ceil(h.blockCount / MAP_CHUNK_BLOCKS) - 1;
    const rows =
      blocks === undefined
        ? this.getChunks.all(id)
        : this.getChunkRange.all(id, Math.floor(blocks.first / MAP_CHUNK_BLOCKS), Math.ceil(blocks.end / MAP_CHUNK_BLOCKS), lastChunk);
    const chunks = new Map<number, Uint8Array>();
    for (const c of rows) chunks.set(c.chunk, checkRecord(c.body, c.crc, `blob ${id} block map chunk ${c.chunk}`));
    try {
      if (blocks === undefined) {
        for (let c = 0; c <= lastChunk; c++) if (!chunks.has(c)) throw new AspenError('E_DECODE', `block map chunk ${c} missing`);
        return { refs: h.refs, kind: h.kind, map: BlockMap.fromChunks(h.blockCount, [...chunks.values()]) };
      }
      const first = Math.floor(blocks.first / MAP_CHUNK_BLOCKS);
      const end = Math.min(lastChunk + 1, Math.ceil(blocks.end / MAP_CHUNK_BLOCKS));
      for (let c = first; c < end; c++) if (!chunks.has(c)) throw new AspenError('E_DECODE', `block map chunk ${c} missing`);
      return { refs: h.refs, kind: h.kind, map: BlockMap.fromSomeChunks(h.blockCount, chunks) };
    } catch (err) {
      if (err instanceof AspenError && err.code === 'E_DECODE') throw new AspenError('E_CORRUPT', `blob ${id}: ${err.message}`, { blobId: id });
      throw err;
    }
  }
  /** Stores the blob row and the block-map chunks changed since the map was loaded. */
  putBlob(id: number, r: BlobRecord): void {
    assert(id > 0, 'putBlob: blob id must be positive');
    const body = encodeBlobHeader({ refs: r.refs, blockCount: r.map.count, kind: r.kind });
    this.putBlobStmt.run(id, buf(body), crc32c(body));
    const changes = r.map.takeChanges();
    for (const c of changes.write) {
      const chunk = r.map.encodeChunk(c);
      this.putChunk.run(id, c, buf(chunk), crc32c(chunk));
    }
    if (changes.deleteFrom !== null) this.delChunksFrom.run(id, changes.deleteFrom);
  }
  /** Deletes the blob row, its block map and (inline blob) its bytes. */
  delBlob(id: number): void {
    this.delBlobStmt.run(id);
    this.delChunksFrom.run(id, 0);
    this.delInline.run(id);
  }
  /**
   * The bytes of inline blob `id` (an empty buffer when it has no row: every block then reads
   * short, which the block map's checksums report). Not verified here: the caller checks each
   * block it returns against the block map.
   */
  inlineBytes(id: number): Buffer {
    assert(id > 0, 'inlineBytes: blob id 0 means none');
    return this.getInline.get(id)?.data ?? Buffer.alloc(0);
  }
  getMeta(key: string): Uint8Array | undefined {
    const row = this.metaGet.get(key);
    return row === undefined ? undefined : checkRecord(row.value, row.crc, `meta ${key}`);
  }
  putMeta(key: string, value: Uint8Array): void {
    this.metaPut.run(key, buf(value), crc32c(value));
  }
}

/** Opens one connection with the store's pragmas and schema. */
export function openStoreDb(path: string, options: { create: boolean; reader: boolean }): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: !options.create, timeout: 1000 });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'SQLITE_CANTOPEN' && !options.create) throw new AspenError('ENOENT', `no object store at ${path}`);
    sqliteError(err, `opening ${path}`);
  }
  try {
    // Pages freed by deleted inline blobs can be handed back to the filesystem (incremental_vacuum
    // when the store is full); settable only before the first table, so stores made by format 1 keep NONE.
    if (options.create) db.pragma('auto_vacuum = INCREMENTAL');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    assert(mode === 'wal', `journal_mode is ${String(mode)}, expected wal`);
    db.pragma('synchronous = FULL');
    // Large deferred-write batches: checkpoint less often than every 1000 pages.
    db.pragma('wal_autocheckpoint = 4096');
    // Give a grown WAL's space back after checkpoints (a full device needs it for deletes).
    db.pragma('journal_size_limit = 16777216');
    if (options.reader) db.pragma('query_only = 1');
    else db.exec(SCHEMA);
    return db;
  } catch (err) {
    db.close();
    sqliteError(err, `opening ${path}`);
  }
}
