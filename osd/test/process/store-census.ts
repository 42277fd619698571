/**
 * What one OSD holds on disk: reads the object store's SQLite metadata of a RUNNING (or
 * killed) `aspen-osd` through a separate, read-only connection — WAL readers see only
 * committed transactions, and never block the daemon's writer — and lists the head objects
 * of one pool, per PG collection (`<pool>.<seed hex>_head`), with their size and a digest of
 * their user xattrs, omap header and omap entries.
 *
 * Test-only: it reads the store's tables (see `osd/src/io/store-db.ts`) directly, because
 * `SqliteObjectStore.mount` replays and cleans up (it writes) and must never run against a
 * store a live daemon owns. Object data itself is not read here (that needs the deferred-write
 * overlays of a live store); data is checked end to end through client reads and deep scrub.
 */
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeOnode } from '../../src/store/blocks.ts';
import { decodeObjectKey, encodeObjectKey } from '../../src/store/oid.ts';
import { USER_XATTR_PREFIX } from '../../src/core/op-exec.ts';

/** One copy of an object in one OSD's store. */
export interface StoredCopy {
  /** The PG seed of the collection that holds it. */
  readonly pgSeed: number;
  readonly sizeBytes: number;
  /** sha256 over its user xattrs, omap header and omap entries (equal on consistent replicas). */
  readonly metaDigest: string;
}

/**
 * Object name → its copy, for every head object of pool `poolId` in the store under
 * `storeDir` (the OSD's `<data>/store`). Internal objects (the PG meta, in a reserved
 * namespace) and objects in a non-empty namespace are skipped.
 * @throws Error when the store database cannot be opened.
 */
export function censusStore(storeDir: string, poolId: number): Map<string, StoredCopy> {
  const db = new Database(join(storeDir, 'store.db'), { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const collRe = new RegExp(`^${poolId}\\.([0-9a-f]+)_head$`);
    const pgSeedOf = (cid: string): number | undefined => {
      const m = collRe.exec(cid);
      return m === null ? undefined : parseInt(m[1]!, 16);
    };
    // One read transaction for all tables: a consistent snapshot of the store.
    return db.transaction(() => {
      const digests = new Map<string, Hash>();
      const digestOf = (cid: string, okey: Buffer): Hash => {
        const k = `${cid}/${okey.toString('hex')}`;
        let h = digests.get(k);
        if (h === undefined) digests.set(k, (h = createHash('sha256')));
        return h;
      };
      const lp = (h: Hash, tag: string, b: Uint8Array): void => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(b.length);
        h.update(tag).update(len).update(b);
      };
      for (const r of db.prepare('SELECT cid, okey, name, value FROM xattrs ORDER BY cid, okey, name').iterate() as IterableIterator<{ cid: string; okey: Buffer; name: string; value: Buffer }>) {
        // Only the client's xattrs: the daemon's own records (`aspen.oi`, `aspen.pg`) may be
        // encoded differently on consistent replicas — `aspen.pg` caches a whole-blob crc known
        // on a pushed copy and not after a partial write, and a newer daemon writes a newer
        // struct version — so their agreement is left to deep scrub, which decodes them.
        if (pgSeedOf(r.cid) === undefined || !r.name.startsWith(USER_XATTR_PREFIX)) continue;
        const h = digestOf(r.cid, r.okey);
        lp(h, 'x', Buffer.from(r.name));
        lp(h, '=', r.value);
      }
      for (const r of db.prepare('SELECT cid, okey, v FROM omap_header ORDER BY cid, okey').iterate() as IterableIterator<{ cid: string; okey: Buffer; v: Buffer }>) {
        if (pgSeedOf(r.cid) !== undefined) lp(digestOf(r.cid, r.okey), 'h', r.v);
      }
      for (const r of db.prepare('SELECT cid, okey, k, v FROM omap ORDER BY cid, okey, k').iterate() as IterableIterator<{ cid: string; okey: Buffer; k: Buffer; v: Buffer }>) {
        if (pgSeedOf(r.cid) === undefined) continue;
        const h = digestOf(r.cid, r.okey);
        lp(h, 'k', r.k);
        lp(h, '=', r.v);
      }
      const out = new Map<string, StoredCopy>();
      for (const r of db.prepare('SELECT cid, okey, body FROM onodes ORDER BY cid, okey').iterate() as IterableIterator<{ cid: string; okey: Buffer; body: Buffer }>) {
        const pgSeed = pgSeedOf(r.cid);
        if (pgSeed === undefined) continue;
        const oid = decodeObjectKey(r.okey);
        if (oid.namespace !== '' || oid.snap !== 'head') continue;
        if (out.has(oid.name)) throw new Error(`${storeDir}: object ${oid.name} is in two collections of pool ${poolId}`);
        const metaDigest = (digests.get(`${r.cid}/${r.okey.toString('hex')}`) ?? createHash('sha256')).digest('hex');
        out.set(oid.name, { pgSeed, sizeBytes: decodeOnode(r.body).sizeBytes, metaDigest });
      }
      return out;
    })();
  } finally {
    db.close();
  }
}

/**
 * One copy's metadata in readable form (for a failure message): each xattr with its value in
 * hex (long values shortened), the omap header's and entries' sizes.
 * @throws Error when the store database cannot be opened.
 */
export function describeCopy(storeDir: string, poolId: number, pgSeed: number, name: string): string {
  const db = new Database(join(storeDir, 'store.db'), { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const cid = `${poolId}.${pgSeed.toString(16)}_head`;
    const okey = Buffer.from(encodeObjectKey({ name }));
    const short = (b: Buffer): string => (b.length <= 48 ? b.toString('hex') : `${b.subarray(0, 48).toString('hex')}…(${b.length} B)`);
    const xattrs = (db.prepare('SELECT name, value FROM xattrs WHERE cid = ? AND okey = ? ORDER BY name').all(cid, okey) as { name: string; value: Buffer }[])
      .map((r) => `${r.name}=${short(r.value)}`);
    const omap = db.prepare('SELECT count(*) AS n, coalesce(sum(length(k) + length(v)), 0) AS bytes FROM omap WHERE cid = ? AND okey = ?').get(cid, okey) as { n: number; bytes: number };
    const header = db.prepare('SELECT v FROM omap_header WHERE cid = ? AND okey = ?').get(cid, okey) as { v: Buffer } | undefined;
    return `xattrs {${xattrs.join(', ')}} omap ${omap.n} entries/${omap.bytes} B header ${header === undefined ? 'none' : `${header.v.length} B`}`;
  } finally {
    db.close();
  }
}
