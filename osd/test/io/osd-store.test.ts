/**
 * The PG store adapter (osd/src/io/osd-store.ts) on a real SqliteObjectStore: the PG core's
 * store ops applied to a collection, reads that see every transaction submitted before them,
 * scrub listings, PGLS pages, the restart load, and PG removal.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { crc32c } from '@aspen/shared';
import { PgStore, loadPgs, oidOf } from '../../src/io/osd-store.ts';
import { executeOps } from '../../src/core/op-exec.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { encodeTransaction } from '../../src/store/txn-codec.ts';
import { emptyInfo } from '../../src/pg/pg.ts';
import { emptyLog } from '../../src/pg/pg-log.ts';
import { encodeObjectState, type ObjectState } from '../../src/pg/object-state.ts';
import type { PgMeta } from '../../src/pg/types.ts';
import type { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { memoryBase, newStore, tempDir } from '../store/helpers.ts';

let cleanup: (() => void) | null = null;
let store: SqliteObjectStore | null = null;

afterEach(async () => {
  await store?.umount();
  cleanup?.();
  store = null;
  cleanup = null;
});

const te = (s: string): Uint8Array => new TextEncoder().encode(s);
const ev = (epoch: number, version: number): { epoch: number; version: number } => ({ epoch, version });

function blob(data: string, xattrs: [string, string][] = [], omap: [string, string][] = [], version = 1n): Uint8Array {
  const s: ObjectState = {
    data: te(data), xattrs: new Map(xattrs.map(([k, v]) => [k, te(v)])), omapHeader: te(data.length > 3 ? 'hdr' : ''),
    omap: new Map(omap.map(([k, v]) => [k, te(v)])), version, mtimeMs: 42,
  };
  return encodeObjectState(s);
}

describe('PgStore', () => {
  it('applies a transaction planned by op execution (txn) on top of a pushed blob; scrub sees the same state a whole write gives', async () => {
    const t = tempDir('aspen-osd-store-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const ps = new PgStore(store, '2.3');
    await ps.commit([{ kind: 'writeFull', object: 'o', data: blob('hello', [['x', '1']]), version: ev(1, 1) }]);
    const plan = await executeOps({ store: ps.objectStore, coll: ps.coll, oid: oidOf('o'), nowMs: 42 }, [
      { op: 'append', data: te(' world') }, { op: 'omap_set', entries: [['k', te('v')]] }, { op: 'rmxattr', name: 'x' },
    ]);
    expect(plan).toMatchObject({ code: 0, removes: false, version: 2n, sizeBytes: 11 });
    const enc = encodeTransaction(plan.tx!);
    await ps.commit([{ kind: 'txn', object: 'o', meta: enc.meta, data: enc.data, sizeBytes: plan.sizeBytes, version: ev(1, 2) }]);
    const want = blob('hello world', [], [['k', 'v']], 2n);
    expect(await ps.read({ kind: 'read', readId: 1, object: 'o' })).toEqual({ kind: 'read', exists: true, version: ev(1, 2), data: want });
    expect(await ps.read({ kind: 'list', readId: 2, deep: true })).toEqual({ kind: 'list', objects: [
      { object: 'o', version: ev(1, 2), sizeBytes: 11, storedCrc: null, dataCrc: crc32c(want) },
    ] });
    // A transaction that touches another object or collection is refused (never applied).
    const foreign = new Transaction().touch(ps.coll, { name: 'other' });
    const fe = encodeTransaction(foreign);
    expect(() => ps.commit([{ kind: 'txn', object: 'o', meta: fe.meta, data: fe.data, sizeBytes: 0, version: ev(1, 3) }])).toThrow(/foreign op/);
  });

  it('applies writeFull/remove/setMeta, reads back the same blob, lists, pages, loads after remount and removes the PG', async () => {
    const t = tempDir('aspen-osd-store-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const ps = new PgStore(store, '1.1f');
    expect(ps.coll).toBe('1.1f_head');
    const meta: PgMeta = { info: { ...emptyInfo('1.1f'), lastUpdate: ev(3, 2), lastComplete: ev(3, 2) }, log: { ...emptyLog(), head: ev(3, 2) }, missing: new Map() };
    const a1 = blob('first', [['x', '1']], [['k', 'v']]);
    const a2 = blob('second version', [['y', '2']], [['k2', 'v2'], ['k3', 'v3']], 2n);
    const b = blob('b');
    // Submitted back to back, not awaited: the read must still see all of them.
    const commits = [
      ps.commit([{ kind: 'writeFull', object: 'a', data: a1, version: ev(3, 1) }, { kind: 'setMeta', meta }]),
      ps.commit([{ kind: 'writeFull', object: 'a', data: a2, version: ev(3, 2) }, { kind: 'writeFull', object: 'ns\u0000b', data: b, version: ev(3, 2) }]),
    ];
    const r = await ps.read({ kind: 'read', readId: 1, object: 'a' });
    await Promise.all(commits);
    expect(r).toEqual({ kind: 'read', exists: true, version: ev(3, 2), data: a2 });
    expect(await ps.read({ kind: 'read', readId: 2, object: 'nope' })).toEqual({ kind: 'read', exists: false });
    const list = await ps.read({ kind: 'list', readId: 3, deep: true });
    expect(list).toEqual({ kind: 'list', objects: [
      { object: 'a', version: ev(3, 2), sizeBytes: 'second version'.length, storedCrc: crc32c(a2), dataCrc: crc32c(a2) },
      { object: 'ns\u0000b', version: ev(3, 2), sizeBytes: 1, storedCrc: crc32c(b), dataCrc: crc32c(b) },
    ] });
    // PGLS lists the default namespace only.
    expect(await ps.listPage('', 10)).toEqual({ objects: ['a'], next: null });

    await store.umount();
    await store.mount();
    const loaded = await loadPgs(store);
    expect(loaded.map((l) => l.pgid)).toEqual(['1.1f']);
    expect(loaded[0]!.meta).toEqual(meta);
    expect([...loaded[0]!.objects]).toEqual([['a', { version: ev(3, 2), sizeBytes: 'second version'.length }], ['ns\u0000b', { version: ev(3, 2), sizeBytes: 1 }]]);

    const ps2 = new PgStore(store, '1.1f', { objects: [...loaded[0]!.objects.keys(), '\u0000pgmeta'] });
    await ps2.commit([{ kind: 'remove', object: 'a', version: ev(4, 1) }, { kind: 'setMeta', meta }]);
    expect(await ps2.read({ kind: 'read', readId: 4, object: 'a' })).toEqual({ kind: 'read', exists: false });
    await ps2.commit([{ kind: 'removePg' }]);
    expect(await store.listCollections()).toEqual([]);
    expect(await loadPgs(store)).toEqual([]);
  });
});
