/**
 * Unit tests of the object store's semantics and integrity: lifecycle errors, argument
 * validation, atomicity, checksums (a flipped byte in a data file or an inline row is EIO on
 * read and a verify finding, never bad bytes), omap paging, clone semantics, sparse reads, listing order, large
 * objects through both data paths, and group commit.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32c } from '@aspen/shared/checksum.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { collectionName, formatOid } from '../../src/store/oid.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { memoryBase, newStore, tempDir } from './helpers.ts';

const C = '1.1f_head';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

function bytes(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 255;
  }
  return b;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof AspenError ? err.code : `not an AspenError: ${String(err)}`;
  }
}

function codeSync(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    return err instanceof AspenError ? err.code : `not an AspenError: ${String(err)}`;
  }
}

let dir: string;
let cleanup: () => void;
let store: SqliteObjectStore;

beforeEach(async () => {
  ({ dir, cleanup } = tempDir('aspen-store-unit-', memoryBase));
  store = await newStore(dir);
  await store.queueTransaction(new Transaction().createCollection(C));
});
afterEach(async () => {
  await store.umount();
  cleanup();
});

describe('lifecycle', () => {
  it('refuses mkfs over a store, mount of nothing, a second mount, and use while unmounted', async () => {
    expect(await code(new SqliteObjectStore({ path: join(dir, 'store') }).mkfs())).toBe('EEXIST');
    expect(await code(new SqliteObjectStore({ path: join(dir, 'none') }).mount())).toBe('ENOENT');
    expect(await code(new SqliteObjectStore({ path: join(dir, 'store') }).mount())).toBe('EBUSY');
    const other = new SqliteObjectStore({ path: join(dir, 'store') });
    expect(await code(other.read(C, { name: 'x' }, 0, 1))).toBe('EINVAL');
    expect(await code(other.queueTransaction(new Transaction().touch(C, { name: 'x' })))).toBe('EINVAL');
  });

  it('names collections as Ceph does', () => {
    expect(collectionName(1, 0x1f)).toBe('1.1f_head');
    expect(collectionName(1, 0x1f, { shard: 0 })).toBe('1.1fs0_head');
    expect(collectionName(2, 3, { temp: true })).toBe('2.3_TEMP');
    expect(codeSync(() => new Transaction().createCollection('bogus'))).toBe('EINVAL');
  });
});

describe('validation and atomicity', () => {
  it('rejects malformed ops with EINVAL in the builder', () => {
    const t = new Transaction();
    expect(codeSync(() => t.write(C, { name: 'a' }, -1, new Uint8Array(1)))).toBe('EINVAL');
    expect(codeSync(() => t.write(C, { name: 'a' }, 1.5, new Uint8Array(1)))).toBe('EINVAL');
    expect(codeSync(() => t.write(C, { name: 'a' }, 128 * 1024 * 1024, new Uint8Array(1)))).toBe('EINVAL');
    expect(codeSync(() => t.zero(C, { name: 'a' }, 0, -5))).toBe('EINVAL');
    expect(codeSync(() => t.truncate(C, { name: 'a' }, Number.NaN))).toBe('EINVAL');
    expect(codeSync(() => t.touch(C, { name: '' }))).toBe('EINVAL');
    expect(codeSync(() => t.touch(C, { name: 'a\0b' }))).toBe('EINVAL');
    expect(codeSync(() => t.touch(C, { name: 'a', snap: -1n }))).toBe('EINVAL');
    expect(codeSync(() => t.touch(C, { name: 'a', shard: 255 }))).toBe('EINVAL');
    expect(codeSync(() => t.setattr(C, { name: 'a' }, '', new Uint8Array(0)))).toBe('EINVAL');
    expect(codeSync(() => t.clone(C, { name: 'a' }, { name: 'a' }))).toBe('EINVAL');
    expect(t.empty).toBe(true);
  });

  it('applies nothing of a transaction whose later op fails', async () => {
    const t = new Transaction().write(C, { name: 'a' }, 0, enc('hello')).setattr(C, { name: 'a' }, 'x', enc('1')).truncate(C, { name: 'missing' }, 0);
    expect(await code(store.queueTransaction(t))).toBe('ENOENT');
    expect(await store.exists(C, { name: 'a' })).toBe(false);
    expect(await code(store.queueTransaction(new Transaction().touch('9.0_head', { name: 'a' })))).toBe('ENOENT');
    expect(await code(store.queueTransaction(new Transaction().createCollection(C)))).toBe('EEXIST');
    await store.queueTransaction(new Transaction().touch(C, { name: 'a' }));
    expect(await code(store.queueTransaction(new Transaction().removeCollection(C)))).toBe('ENOTEMPTY');
    expect(await code(store.queueTransaction(new Transaction().collectionMoveRename(C, { name: 'a' }, C, { name: 'a', snap: 1n }).collectionMoveRename(C, { name: 'zz' }, C, { name: 'b' })))).toBe('ENOENT');
    expect(await store.exists(C, { name: 'a' })).toBe(true);
    expect(await code(store.read(C, { name: 'nope' }, 0, 1))).toBe('ENOENT');
    expect(await code(store.getattr(C, { name: 'a' }, 'nope'))).toBe('ENOENT');
  });
});

describe('data integrity', () => {
  function blobFiles(): string[] {
    const root = join(dir, 'store', 'blobs');
    const out: string[] = [];
    for (const d of readdirSync(root)) for (const f of readdirSync(join(root, d))) out.push(join(root, d, f));
    return out;
  }

  /** Flips bit 0x40 of the blob byte at `offsetBytes` of the only blob, in its file or its inline row. */
  function flipByte(kind: 'file' | 'inline', offsetBytes: number): void {
    if (kind === 'file') {
      const files = blobFiles();
      expect(files).toHaveLength(1);
      const raw = readFileSync(files[0]!);
      raw[offsetBytes] = raw[offsetBytes]! ^ 0x40;
      writeFileSync(files[0]!, raw);
      return;
    }
    expect(blobFiles()).toHaveLength(0);
    const db = new Database(join(dir, 'store', 'store.db'));
    try {
      const rows = db.prepare('SELECT blob, data FROM inline_data').all() as Array<{ blob: number; data: Buffer }>;
      expect(rows).toHaveLength(1);
      const raw = Buffer.from(rows[0]!.data);
      raw[offsetBytes] = raw[offsetBytes]! ^ 0x40;
      db.prepare('UPDATE inline_data SET data = ? WHERE blob = ?').run(raw, rows[0]!.blob);
    } finally {
      db.close();
    }
  }

  for (const [path, base, len, kind] of [
    ['copy-on-write', 0, 256 * 1024, 'file'],
    ['deferred', 128 * 1024, 3000, 'file'],
    ['inline', 0, 3000, 'inline'],
  ] as const) {
    it(`a flipped byte in the data (${path} write) is EIO on read and a verify finding, never bad bytes`, async () => {
      const data = bytes(len, 7);
      await store.queueTransaction(new Transaction().write(C, { name: 'obj' }, base, data));
      await store.umount(); // deferred writes are now in the file
      const at = base + len - 100; // in the last block
      flipByte(kind, at);
      await store.mount();
      let err: unknown;
      try {
        await store.read(C, { name: 'obj' }, base, len);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AspenError);
      const e = err as AspenError;
      expect(e.code).toBe('EIO');
      expect(e.message).toMatch(/crc32c|checksum/);
      expect(e.details).toMatchObject({ coll: C, oid: formatOid({ name: 'obj' }), offsetBytes: Math.floor(at / 4096) * 4096 });
      // Blocks before the damaged one still read.
      const good = Math.floor(at / 4096) * 4096;
      expect(Buffer.from(await store.read(C, { name: 'obj' }, base, good - base)).equals(Buffer.from(data.subarray(0, good - base)))).toBe(true);
      const v = await store.verify(C, { name: 'obj' });
      expect(v.ok).toBe(false);
      expect(v.errors.map((x) => [x.offsetBytes, x.reason])).toEqual([[good, 'checksum']]);
      expect(v.blocksChecked).toBe(Math.ceil((base + len) / 4096) - Math.floor(base / 4096));
      // A read-modify-write over the bad block refuses to launder it into a fresh checksum.
      expect(await code(store.queueTransaction(new Transaction().write(C, { name: 'obj' }, at, new Uint8Array(3))))).toBe('EIO');
      // Replacing the object repairs it (what recovery does from a good copy).
      await store.queueTransaction(new Transaction().remove(C, { name: 'obj' }).write(C, { name: 'obj' }, base, data));
      expect(Buffer.from(await store.read(C, { name: 'obj' }, base, len)).equals(Buffer.from(data))).toBe(true);
      expect((await store.verify(C, { name: 'obj' })).ok).toBe(true);
    });
  }

  it('reports a truncated data file as EIO (short read)', async () => {
    await store.queueTransaction(new Transaction().write(C, { name: 'obj' }, 0, bytes(200_000, 3)));
    await store.umount();
    const f = blobFiles()[0]!;
    writeFileSync(f, readFileSync(f).subarray(0, 50_000));
    await store.mount();
    expect(await code(store.read(C, { name: 'obj' }, 0, 200_000))).toBe('EIO');
    const v = await store.verify(C, { name: 'obj' });
    expect(v.errors.some((x) => x.reason === 'short-read')).toBe(true);
  });
});

describe('large objects', () => {
  it('round-trips a 4 MiB object through copy-on-write, a partial large overwrite and small deferred overwrites, across remount', async () => {
    const o = { name: 'rbd_data.1.0000000000000000' };
    const expected = bytes(4 * 1024 * 1024, 11);
    await store.queueTransaction(new Transaction().write(C, o, 0, expected));
    const mid = bytes(300_000, 12);
    await store.queueTransaction(new Transaction().write(C, o, 1_000_001, mid));
    expected.set(mid, 1_000_001);
    for (let i = 0; i < 20; i++) {
      const small = bytes(1 + ((i * 977) % 5000), 100 + i);
      const off = (i * 199_999) % (4 * 1024 * 1024 - small.length);
      await store.queueTransaction(new Transaction().write(C, o, off, small));
      expected.set(small, off);
    }
    expect(Buffer.from(await store.read(C, o, 0, 8 << 20)).equals(Buffer.from(expected))).toBe(true);
    expect(store.stats().deferredWrites).toBeGreaterThanOrEqual(20);
    await store.umount();
    await store.mount();
    expect(Buffer.from(await store.read(C, o, 0, 8 << 20)).equals(Buffer.from(expected))).toBe(true);
    expect((await store.verify(C, o)).ok).toBe(true);
    expect(store.deferredBacklog()).toBe(0);
  });

  it('reads during a group commit see the last committed state, never the uncommitted one', async () => {
    const real = tempDir('aspen-store-isolation-');
    const s = await newStore(real.dir);
    try {
      const o = { name: 'obj' };
      const v1 = bytes(4 << 20, 1);
      const v2 = bytes(4 << 20, 2);
      await s.queueTransaction(new Transaction().createCollection(C).write(C, o, 0, v1).setattr(C, o, 'v', enc('1')));
      let committed = false;
      const p = s.queueTransaction(new Transaction().write(C, o, 0, v2).setattr(C, o, 'v', enc('2')).write(C, o, 100, enc('small')));
      void p.then(() => (committed = true));
      let sawOld = 0;
      for (let i = 0; i < 50 && !committed; i++) {
        await new Promise((r) => setImmediate(r));
        const wasCommitted = committed;
        const data = Buffer.from(await s.read(C, o, 0, 4 << 20));
        const attr = dec(await s.getattr(C, o, 'v'));
        if (!wasCommitted && !committed) {
          // The transaction is planned (its new file written) but not committed: old state only.
          expect(attr).toBe('1');
          expect(data.equals(Buffer.from(v1))).toBe(true);
          sawOld++;
        }
      }
      await p;
      const expected = Buffer.from(v2);
      expected.write('small', 100);
      expect(Buffer.from(await s.read(C, o, 0, 4 << 20)).equals(expected)).toBe(true);
      expect(dec(await s.getattr(C, o, 'v'))).toBe('2');
      expect(sawOld).toBeGreaterThan(0);
    } finally {
      await s.umount();
      real.cleanup();
    }
  });

  it('batches concurrently queued transactions into few group commits', async () => {
    const before = store.stats().commits;
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.queueTransaction(new Transaction().write(C, { name: `o${i}` }, 0, bytes(4096, i)))));
    const commits = store.stats().commits - before;
    expect(commits).toBeLessThan(20);
    for (let i = 0; i < 200; i += 37) expect(Buffer.from(await store.read(C, { name: `o${i}` }, 0, 4096)).equals(Buffer.from(bytes(4096, i)))).toBe(true);
  });
});

describe('omap', () => {
  it('pages keys and values in byte order, with start-after, prefix and by-key lookups', async () => {
    const o = { name: 'dir' };
    const entries = new Map<string, Uint8Array>();
    for (let i = 0; i < 100; i++) entries.set(`key.${String(i).padStart(3, '0')}`, enc(`v${i}`));
    entries.set('other', enc('x'));
    await store.queueTransaction(new Transaction().touch(C, o).omapSetKeys(C, o, entries).omapSetHeader(C, o, enc('hdr')));
    const keys: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const p = await store.omapGetKeys(C, o, after, 7);
      keys.push(...p.keys);
      pages++;
      if (!p.more) break;
      after = p.keys[p.keys.length - 1];
    }
    expect(pages).toBe(Math.ceil(101 / 7));
    expect(keys).toEqual([...entries.keys()].sort());
    const v = await store.omapGetValues(C, o, 'key.049', 3);
    expect(v.entries.map(([k, val]) => `${k}=${dec(val)}`)).toEqual(['key.050=v50', 'key.051=v51', 'key.052=v52']);
    expect(v.more).toBe(true);
    const pre = await store.omapGetValues(C, o, undefined, 1000, 'key.09');
    expect(pre.entries.map(([k]) => k)).toEqual(Array.from({ length: 10 }, (_, i) => `key.09${i}`));
    expect(pre.more).toBe(false);
    const byKeys = await store.omapGetValuesByKeys(C, o, ['other', 'missing', 'key.000']);
    expect([...byKeys].map(([k, val]) => `${k}=${dec(val)}`)).toEqual(['other=x', 'key.000=v0']);
    expect(dec(await store.omapGetHeader(C, o))).toBe('hdr');
    await store.queueTransaction(new Transaction().omapRmKeyRange(C, o, 'key.010', 'key.090').omapRmKeys(C, o, ['other']));
    expect((await store.omapGetKeys(C, o, undefined, 1000)).keys).toHaveLength(20);
    await store.queueTransaction(new Transaction().omapClear(C, o));
    expect((await store.omapGetKeys(C, o, undefined, 1000)).keys).toEqual([]);
    expect((await store.omapGetHeader(C, o)).length).toBe(0);
  });
});

describe('clone, snapshots and listing', () => {
  it('clone copies data, xattrs and omap; later writes to either side do not show through', async () => {
    const head = { name: 'img' };
    const snap = { name: 'img', snap: 4n };
    const v1 = bytes(200_000, 1);
    await store.queueTransaction(new Transaction().write(C, head, 0, v1).setattr(C, head, '_', enc('oi1')).omapSetKeys(C, head, { a: enc('1') }));
    // The OSD's copy-on-first-write after a snapshot: clone head to the snap id, then write the head.
    await store.queueTransaction(new Transaction().clone(C, head, snap).write(C, head, 4096, bytes(10, 2)).setattr(C, head, '_', enc('oi2')).omapSetKeys(C, head, { b: enc('2') }));
    expect(Buffer.from(await store.read(C, snap, 0, 1 << 20)).equals(Buffer.from(v1))).toBe(true);
    expect(dec(await store.getattr(C, snap, '_'))).toBe('oi1');
    expect((await store.omapGetKeys(C, snap, undefined, 10)).keys).toEqual(['a']);
    const headData = await store.read(C, head, 0, 1 << 20);
    expect(Buffer.from(headData.subarray(4096, 4106)).equals(Buffer.from(bytes(10, 2)))).toBe(true);
    // Writing the clone does not change the head either.
    await store.queueTransaction(new Transaction().write(C, snap, 0, enc('XX')));
    expect(Buffer.from((await store.read(C, head, 0, 2))).equals(Buffer.from(v1.subarray(0, 2)))).toBe(true);
    // Listing order: the snap clone sorts before the head (CEPH_NOSNAP is the largest snap).
    await store.queueTransaction(new Transaction().touch(C, { name: 'a' }).touch(C, { name: 'img', namespace: 'ns' }));
    const page = await store.listObjects(C, undefined, 10);
    expect(page.objects.map((o) => formatOid(o))).toEqual(['/a@head', '/img@4', '/img@head', 'ns/img@head']);
    const p1 = await store.listObjects(C, undefined, 2);
    const p2 = await store.listObjects(C, p1.next!, 2);
    expect([...p1.objects, ...p2.objects].map((o) => formatOid(o))).toEqual(page.objects.map((o) => formatOid(o)));
    expect(p2.next).toBeNull();
    // Trimming the clone frees its data; the head is intact.
    await store.queueTransaction(new Transaction().remove(C, snap));
    expect((await store.verify(C, head)).ok).toBe(true);
  });

  it('moves a recovery temp object into place with collectionMoveRename', async () => {
    const temp = collectionName(1, 0x1f, { temp: true });
    await store.queueTransaction(new Transaction().createCollection(temp).write(temp, { name: 'temp_recovering' }, 0, enc('data')).setattr(temp, { name: 'temp_recovering' }, '_', enc('oi')));
    await store.queueTransaction(new Transaction().collectionMoveRename(temp, { name: 'temp_recovering' }, C, { name: 'obj' }));
    expect(dec(await store.read(C, { name: 'obj' }, 0, 100))).toBe('data');
    expect(dec(await store.getattr(C, { name: 'obj' }, '_'))).toBe('oi');
    expect(await store.exists(temp, { name: 'temp_recovering' })).toBe(false);
    expect(await store.listCollections()).toEqual([C, temp].sort());
  });
});

describe('sparse objects', () => {
  it('reports allocated extents and reads holes as zeros', async () => {
    const o = { name: 'sparse' };
    await store.queueTransaction(new Transaction().write(C, o, 0, bytes(8192, 1)).write(C, o, 1 << 20, bytes(100, 2)));
    expect(await store.fiemap(C, o, 0, 2 << 20)).toEqual([
      { offsetBytes: 0, lengthBytes: 8192 },
      { offsetBytes: 1 << 20, lengthBytes: 100 },
    ]);
    const hole = await store.read(C, o, 8192, 4096);
    expect(hole.every((b) => b === 0)).toBe(true);
    await store.queueTransaction(new Transaction().zero(C, o, 4096, 4096));
    expect(await store.fiemap(C, o, 0, 2 << 20)).toEqual([
      { offsetBytes: 0, lengthBytes: 4096 },
      { offsetBytes: 1 << 20, lengthBytes: 100 },
    ]);
    const sr = await store.sparseRead(C, o, 0, 2 << 20);
    expect(sr.data.length).toBe(4196);
    expect((await store.stat(C, o)).sizeBytes).toBe((1 << 20) + 100);
    await store.queueTransaction(new Transaction().truncate(C, o, 5000));
    expect(await store.fiemap(C, o, 0, 1 << 30)).toEqual([{ offsetBytes: 0, lengthBytes: 4096 }]);
    await store.queueTransaction(new Transaction().truncate(C, o, 3000).truncate(C, o, 9000));
    const r = await store.read(C, o, 0, 9000);
    expect(Buffer.from(r.subarray(0, 3000)).equals(Buffer.from(bytes(8192, 1).subarray(0, 3000)))).toBe(true);
    expect(r.subarray(3000).every((b) => b === 0)).toBe(true);
  });

  it('statfs and usage describe the filesystem', () => {
    const s = store.statfs();
    expect(s.totalBytes).toBeGreaterThan(0);
    expect(s.availBytes).toBeLessThanOrEqual(s.totalBytes);
    expect(store.usage().fullRatio).toBe(0.95);
  });
});

describe('inline blobs (objects within inlineMaxBytes keep their data in the database)', () => {
  function blobFileCount(): number {
    const root = join(dir, 'store', 'blobs');
    let n = 0;
    for (const d of readdirSync(root)) n += readdirSync(join(root, d)).length;
    return n;
  }

  it('small objects get no file; clones share the row until written; growth beyond the limit moves the data to a file; all across remount', async () => {
    const a = { name: 'a' };
    const snap = { name: 'a', snap: 3n };
    const small = bytes(6000, 1);
    await store.queueTransaction(new Transaction().write(C, a, 0, small).write(C, { name: 'b' }, 60 * 1024, bytes(4096, 2)));
    expect(blobFileCount()).toBe(0);
    expect(store.stats()).toMatchObject({ inlineBlobs: 2, cowBlobs: 0, deferredWrites: 0 });
    // Snapshot clone, then a partial overwrite of the head: the clone keeps the old bytes.
    await store.queueTransaction(new Transaction().clone(C, a, snap));
    const patch = bytes(100, 3);
    await store.queueTransaction(new Transaction().write(C, a, 4090, patch));
    const head = Buffer.from(small);
    head.set(patch, 4090);
    expect(Buffer.from(await store.read(C, snap, 0, 1 << 20)).equals(Buffer.from(small))).toBe(true);
    expect(Buffer.from(await store.read(C, a, 0, 1 << 20)).equals(head)).toBe(true);
    expect(blobFileCount()).toBe(0);
    expect(store.stats().inlineBlobs).toBe(3); // the head's private copy
    // Zero and truncate inside the inline blob.
    await store.queueTransaction(new Transaction().zero(C, a, 0, 4096).truncate(C, a, 5000));
    head.fill(0, 0, 4096);
    expect(await store.fiemap(C, a, 0, 1 << 20)).toEqual([{ offsetBytes: 4096, lengthBytes: 904 }]);
    expect(Buffer.from(await store.read(C, a, 0, 1 << 20)).equals(head.subarray(0, 5000))).toBe(true);
    // Growth beyond 64 KiB: a file blob with the old bytes and the new ones.
    const far = bytes(3000, 4);
    await store.queueTransaction(new Transaction().write(C, a, 100_000, far));
    expect(store.stats().inlineMigrated).toBe(1);
    expect(blobFileCount()).toBe(1);
    const expected = Buffer.alloc(103_000);
    head.copy(expected, 0, 0, 5000);
    expected.set(far, 100_000);
    expect(Buffer.from(await store.read(C, a, 0, 1 << 20)).equals(expected)).toBe(true);
    await store.umount();
    await store.mount();
    expect(Buffer.from(await store.read(C, a, 0, 1 << 20)).equals(expected)).toBe(true);
    expect(Buffer.from(await store.read(C, snap, 0, 1 << 20)).equals(Buffer.from(small))).toBe(true);
    for (const o of [a, snap, { name: 'b' }]) expect((await store.verify(C, o)).ok).toBe(true);
    // Removing the clone frees the last reference to the first inline row.
    await store.queueTransaction(new Transaction().remove(C, snap).remove(C, { name: 'b' }));
    expect(store.stats().inlineFreed).toBe(3); // with the head's row, freed when it moved to a file
    const db = new Database(join(dir, 'store', 'store.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT count(*) AS n FROM inline_data').get() as { n: number }).n).toBe(0);
    } finally {
      db.close();
    }
  });

  it('mounts a format-1 store (no inline table): reads its file blobs, upgrades it to format 2 and stores new small objects inline', async () => {
    await store.umount();
    const path = join(dir, 'store1');
    const old = new SqliteObjectStore({ path, inlineMaxBytes: 0 });
    await old.mkfs();
    await old.mount();
    const data = bytes(5000, 9);
    await old.queueTransaction(new Transaction().createCollection(C).write(C, { name: 'old' }, 0, data));
    await old.umount();
    const formatOf = (): number => {
      const db = new Database(join(path, 'store.db'), { readonly: true });
      try {
        return (db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: Buffer }).value.readUInt32LE(0);
      } finally {
        db.close();
      }
    };
    // Make it what a format-1 build left: no inline_data table, format 1.
    const db = new Database(join(path, 'store.db'));
    const one = Buffer.from([1, 0, 0, 0]);
    db.prepare("UPDATE meta SET value = ?, crc = ? WHERE key = 'format'").run(one, crc32c(one));
    db.exec('DROP TABLE inline_data');
    db.close();
    expect(formatOf()).toBe(1);
    store = new SqliteObjectStore({ path });
    await store.mount();
    expect(formatOf()).toBe(2);
    expect(Buffer.from(await store.read(C, { name: 'old' }, 0, 1 << 20)).equals(Buffer.from(data))).toBe(true);
    await store.queueTransaction(new Transaction().write(C, { name: 'new' }, 0, data).write(C, { name: 'old' }, 0, bytes(10, 1)));
    expect(store.stats()).toMatchObject({ inlineBlobs: 1, deferredWrites: 1 });
    await store.umount();
    await store.mount();
    expect(Buffer.from(await store.read(C, { name: 'new' }, 0, 1 << 20)).equals(Buffer.from(data))).toBe(true);
    // A store newer than this build is refused.
    await store.umount();
    const db2 = new Database(join(path, 'store.db'));
    const three = Buffer.from([3, 0, 0, 0]);
    db2.prepare("UPDATE meta SET value = ?, crc = ? WHERE key = 'format'").run(three, crc32c(three));
    db2.close();
    expect(await code(store.mount())).toBe('E_UNSUPPORTED');
    // Leave a mounted store for afterEach.
    store = await newStore(join(dir, 'again'));
  });
});
