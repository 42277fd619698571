/**
 * The PG store adapter (osd/src/io/osd-store.ts) on a real SqliteObjectStore: the PG core's
 * store ops applied to a collection, reads that see every transaction submitted before them,
 * scrub listings, PGLS pages, the restart load, PG removal, and the PG meta's incremental
 * layout (base xattr + one omap key per log entry and dup): round trips over many setMetas,
 * the old whole-meta xattr, and O(1) keys written per client write.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c } from '@aspen/shared';
import { PGMETA_BASE_XATTR, PGMETA_OID, PGMETA_XATTR, PgStore, loadPgs, oidOf, pgDupKey, pgLogKey } from '../../src/io/osd-store.ts';
import { encodePgMeta } from '../../src/pg/codec.ts';
import { executeOps } from '../../src/core/op-exec.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { encodeTransaction } from '../../src/store/txn-codec.ts';
import { emptyInfo } from '../../src/pg/pg.ts';
import { appendEntry, emptyLog, trimLog } from '../../src/pg/pg-log.ts';
import { encodeObjectState, type ObjectState } from '../../src/pg/object-state.ts';
import type { Eversion, LogEntry, MissingItem, PgMeta } from '../../src/pg/types.ts';
import type { ObjectStore } from '../../src/store/types.ts';
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

/** `store`, recording every transaction queued to it. */
function recording(inner: ObjectStore): { store: ObjectStore; txs: Transaction[] } {
  const txs: Transaction[] = [];
  const store = new Proxy(inner, {
    get(target, prop): unknown {
      if (prop === 'queueTransaction') {
        return (tx: Transaction): Promise<void> => {
          txs.push(tx);
          return target.queueTransaction(tx);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, txs };
}

/** Remounts the store, loads its PGs and returns the one PG's meta and a PgStore built as the daemon builds it. */
async function remount(s: SqliteObjectStore, inner: ObjectStore, pgid: string): Promise<{ meta: PgMeta; ps: PgStore }> {
  await s.umount();
  await s.mount();
  const loaded = await loadPgs(s);
  expect(loaded.map((l) => l.pgid)).toEqual([pgid]);
  const l = loaded[0]!;
  return { meta: l.meta, ps: new PgStore(inner, pgid, { objects: [...l.objects.keys(), '\u0000pgmeta'], clones: l.clones }) };
}

/** What a command does to the log, in terms of the core's log functions (the core's own code paths). */
type MetaCmd =
  | { readonly k: 'append'; readonly n: number; readonly reqids: boolean }
  | { readonly k: 'trim'; readonly keep: number; readonly dupsMax: number }
  | { readonly k: 'rollback'; readonly drop: number; readonly add: number }
  | { readonly k: 'replaceLast' }
  | { readonly k: 'authDups'; readonly keepMask: number; readonly changeReqid: boolean }
  | { readonly k: 'missing'; readonly add: boolean; readonly object: string }
  | { readonly k: 'info'; readonly backfill: string | null }
  | { readonly k: 'twice' }
  | { readonly k: 'remount' };

const metaCmdA: fc.Arbitrary<MetaCmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('append' as const), n: fc.integer({ min: 1, max: 6 }), reqids: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('trim' as const), keep: fc.nat(6), dupsMax: fc.nat(8) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('rollback' as const), drop: fc.integer({ min: 1, max: 4 }), add: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'replaceLast' as const }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('authDups' as const), keepMask: fc.nat(255), changeReqid: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('missing' as const), add: fc.boolean(), object: fc.constantFrom('a', 'b', 'c') }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('info' as const), backfill: fc.option(fc.constantFrom('a', 'm'), { nil: null }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'twice' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'remount' as const }) },
);

/** A model PG whose meta the commands evolve. */
class MetaModel {
  meta: PgMeta;
  private epoch = 1;
  private tid = 0;

  constructor(pgid: string) {
    this.meta = { info: emptyInfo(pgid), log: emptyLog(), missing: new Map() };
  }

  private entry(v: Eversion, reqid: boolean, object = `o${v.version % 5}`): LogEntry {
    return { version: v, op: v.version % 7 === 0 ? 'delete' : 'modify', object, priorVersion: { epoch: 0, version: 0 }, reqid: reqid ? { client: 'client.1', tid: ++this.tid } : null };
  }

  private append(n: number, reqids: boolean): void {
    let log = this.meta.log;
    for (let i = 0; i < n; i++) log = appendEntry(log, this.entry({ epoch: this.epoch, version: log.head.version + 1 }, reqids));
    this.meta = { ...this.meta, log };
  }

  /** Applies `c` (not 'twice' or 'remount'). */
  apply(c: MetaCmd): void {
    const log = this.meta.log;
    switch (c.k) {
      case 'append':
        this.append(c.n, c.reqids);
        break;
      case 'trim': {
        const idx = log.entries.length - c.keep - 1;
        if (idx >= 0) this.meta = { ...this.meta, log: trimLog(log, log.entries[idx]!.version, c.dupsMax) };
        break;
      }
      case 'rollback': {
        // A divergent-log merge: the head shrinks, a new interval appends entries reusing version numbers.
        const entries = log.entries.slice(0, Math.max(0, log.entries.length - c.drop));
        const head = entries.at(-1)?.version ?? log.tail;
        this.meta = { ...this.meta, log: { ...log, head, entries } };
        this.epoch++;
        this.append(c.add, true);
        break;
      }
      case 'replaceLast': {
        // The same eversion with other content: the key must be rewritten.
        const last = log.entries.at(-1);
        if (last === undefined) break;
        const entries = [...log.entries.slice(0, -1), { ...last, object: `${last.object}x` }];
        this.meta = { ...this.meta, log: { ...log, entries } };
        break;
      }
      case 'authDups': {
        // The authoritative log's dups (a merge): some of ours, maybe one with another reqid at the same version.
        const dups = log.dups.filter((_, i) => (c.keepMask >> (i % 8)) & 1);
        if (c.changeReqid && dups.length > 0) dups[0] = { ...dups[0]!, reqid: { client: 'client.2', tid: ++this.tid } };
        this.meta = { ...this.meta, log: { ...log, dups } };
        break;
      }
      case 'missing': {
        const missing = new Map<string, MissingItem>(this.meta.missing);
        if (c.add) missing.set(c.object, { need: log.head, have: log.tail });
        else missing.delete(c.object);
        this.meta = { ...this.meta, missing };
        break;
      }
      case 'info':
        this.meta = { ...this.meta, info: { ...this.meta.info, lastUpdate: log.head, logTail: log.tail, lastEpochStarted: this.epoch, lastBackfill: c.backfill } };
        break;
      case 'twice':
      case 'remount':
        break;
    }
  }
}

describe('PgStore meta layout', () => {
  it('property: after any sequence of setMetas (appends, trims, head rollbacks, rewritten entries, dups and missing changes, remounts), loadPgs returns the last PgMeta handed in', async () => {
    await fc.assert(fc.asyncProperty(fc.array(metaCmdA, { minLength: 1, maxLength: 30 }), async (cmds) => {
      const t = tempDir('aspen-osd-store-', memoryBase);
      const s = await newStore(t.dir);
      try {
        const model = new MetaModel('3.a');
        let ps = new PgStore(s, '3.a');
        await ps.commit([{ kind: 'writeFull', object: 'o', data: blob('x'), version: ev(1, 1) }, { kind: 'setMeta', meta: model.meta }]);
        for (const c of cmds) {
          if (c.k === 'remount') {
            const r = await remount(s, s, '3.a');
            expect(r.meta).toEqual(model.meta);
            ps = r.ps;
          } else if (c.k === 'twice') {
            // Two setMetas in one transaction: the second diffs against the first.
            model.apply({ k: 'append', n: 2, reqids: true });
            const first = model.meta;
            model.apply({ k: 'trim', keep: 1, dupsMax: 3 });
            await ps.commit([{ kind: 'setMeta', meta: first }, { kind: 'setMeta', meta: model.meta }]);
          } else {
            model.apply(c);
            await ps.commit([{ kind: 'setMeta', meta: model.meta }]);
          }
        }
        const last = await remount(s, s, '3.a');
        expect(last.meta).toEqual(model.meta);
        // Exactly one key per entry and dup: nothing stale is left behind.
        const keys = (await s.omapGetKeys(last.ps.coll, PGMETA_OID, undefined, 100_000)).keys;
        expect(keys).toEqual([...model.meta.log.dups.map((d) => pgDupKey(d.version)), ...model.meta.log.entries.map((e) => pgLogKey(e.version))]);
      } finally {
        await s.umount();
        t.cleanup();
      }
    }), { numRuns: 100 });
  });

  it('writes O(1) keys and a small xattr per client write, not the whole log', async () => {
    const t = tempDir('aspen-osd-store-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const rec = recording(store);
    const ps = new PgStore(rec.store, '1.2');
    let log = emptyLog();
    for (let v = 1; v <= 1300; v++) {
      log = appendEntry(log, { version: ev(5, v), op: 'modify', object: `benchmark_data_${v}`, priorVersion: ev(0, 0), reqid: { client: 'client.4100', tid: v } });
      if (log.entries.length > 300) log = trimLog(log, log.entries[0]!.version, 1000);
    }
    expect([log.entries.length, log.dups.length]).toEqual([300, 1000]);
    const info = { ...emptyInfo('1.2'), lastUpdate: log.head, lastComplete: log.head, logTail: log.tail };
    await ps.commit([{ kind: 'setMeta', meta: { info, log, missing: new Map() } }]);
    const wholeBytes = encodePgMeta({ info, log, missing: new Map() }).length;
    expect(wholeBytes).toBeGreaterThan(20_000);

    // One client write: the core appends an entry and trims the oldest into the dups.
    log = appendEntry(log, { version: ev(5, 1301), op: 'modify', object: 'benchmark_data_1301', priorVersion: ev(0, 0), reqid: { client: 'client.4100', tid: 1301 } });
    log = trimLog(log, log.entries[0]!.version, 1000);
    const meta: PgMeta = { info: { ...info, lastUpdate: log.head, lastComplete: log.head, logTail: log.tail }, log, missing: new Map() };
    rec.txs.length = 0;
    await ps.commit([{ kind: 'setMeta', meta }]);
    expect(rec.txs).toHaveLength(1);
    const tx = rec.txs[0]!;
    expect(tx.ops.map((o) => o.op)).toEqual(['omapRmKeys', 'omapSetKeys', 'setattrs']);
    const rm = tx.ops[0]!;
    const set = tx.ops[1]!;
    expect(rm.op === 'omapRmKeys' && [...rm.keys].sort()).toEqual([pgDupKey(ev(5, 1)), pgLogKey(ev(5, 1001))]);
    expect(set.op === 'omapSetKeys' && [...set.entries.keys()].sort()).toEqual([pgDupKey(ev(5, 1001)), pgLogKey(ev(5, 1301))]);
    expect(tx.payloadBytes).toBeLessThan(600);
    expect(tx.payloadBytes * 30).toBeLessThan(wholeBytes);

    // Nothing new (a peering-only setMeta): only the base xattr.
    rec.txs.length = 0;
    await ps.commit([{ kind: 'setMeta', meta: { ...meta, info: { ...meta.info, lastEpochStarted: 6 } } }]);
    expect(rec.txs[0]!.ops.map((o) => o.op)).toEqual(['setattrs']);

    const r = await remount(store, store, '1.2');
    expect(r.meta).toEqual({ ...meta, info: { ...meta.info, lastEpochStarted: 6 } });
  });

  it('loads the old layout (whole meta in one xattr), converts it on the next setMeta and removes the old xattr', async () => {
    const t = tempDir('aspen-osd-store-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const ps = new PgStore(store, '2.7');
    await ps.commit([{ kind: 'writeFull', object: 'a', data: blob('first'), version: ev(3, 1) }]);
    let log = emptyLog();
    for (let v = 1; v <= 8; v++) log = appendEntry(log, { version: ev(3, v), op: 'modify', object: 'a', priorVersion: ev(0, 0), reqid: { client: 'c', tid: v } });
    log = trimLog(log, ev(3, 3), 10);
    const old: PgMeta = {
      info: { ...emptyInfo('2.7'), lastUpdate: log.head, lastComplete: log.head, logTail: log.tail }, log,
      missing: new Map([['a', { need: ev(3, 8), have: ev(3, 1) }]]),
    };
    // What an older build wrote: the pgmeta object with the whole meta in PGMETA_XATTR.
    await store.queueTransaction(new Transaction().touch(ps.coll, PGMETA_OID).setattr(ps.coll, PGMETA_OID, PGMETA_XATTR, encodePgMeta(old)));

    const rec = recording(store);
    const r = await remount(store, rec.store, '2.7');
    expect(r.meta).toEqual(old);
    const next: PgMeta = { ...old, log: appendEntry(old.log, { version: ev(4, 9), op: 'delete', object: 'a', priorVersion: ev(3, 8), reqid: null }), missing: new Map() };
    await r.ps.commit([{ kind: 'setMeta', meta: next }]);
    const ops = rec.txs[0]!.ops.map((o) => o.op);
    expect(ops).toContain('omapClear');
    expect(ops).toContain('rmattr');
    const attrs = await store.getattrs(r.ps.coll, PGMETA_OID);
    expect([...attrs.keys()]).toEqual([PGMETA_BASE_XATTR]);
    const again = await remount(store, store, '2.7');
    expect(again.meta).toEqual(next);
    expect([...(await loadPgs(store))[0]!.objects.keys()]).toEqual(['a']);

    // Removing the PG removes the meta object with every key.
    await again.ps.commit([{ kind: 'removePg' }]);
    expect(await store.listCollections()).toEqual([]);
  });

  it('a commit refused while planning (foreign txn op) leaves nothing persisted: the next setMeta still writes its keys', async () => {
    const t = tempDir('aspen-osd-store-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const ps = new PgStore(store, '2.9');
    const m1: PgMeta = { info: emptyInfo('2.9'), log: appendEntry(emptyLog(), { version: ev(1, 1), op: 'modify', object: 'a', priorVersion: ev(0, 0), reqid: null }), missing: new Map() };
    await ps.commit([{ kind: 'setMeta', meta: m1 }]);
    const m2: PgMeta = { ...m1, log: appendEntry(m1.log, { version: ev(1, 2), op: 'modify', object: 'a', priorVersion: ev(1, 1), reqid: null }) };
    const fe = encodeTransaction(new Transaction().touch(ps.coll, { name: 'other' }));
    expect(() => ps.commit([{ kind: 'setMeta', meta: m2 }, { kind: 'txn', object: 'a', meta: fe.meta, data: fe.data, sizeBytes: 0, version: ev(1, 2) }])).toThrow(/foreign op/);
    await ps.commit([{ kind: 'setMeta', meta: m2 }]);
    await store.umount();
    await store.mount();
    expect((await loadPgs(store))[0]!.meta).toEqual(m2);
  });

  it('a lost log key fails the load (EIO) instead of returning a shorter log', async () => {
    const t = tempDir('aspen-osd-store-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const ps = new PgStore(store, '2.8');
    let log = emptyLog();
    for (let v = 1; v <= 3; v++) log = appendEntry(log, { version: ev(1, v), op: 'modify', object: 'a', priorVersion: ev(0, 0), reqid: null });
    await ps.commit([{ kind: 'setMeta', meta: { info: emptyInfo('2.8'), log, missing: new Map() } }]);
    await store.queueTransaction(new Transaction().omapRmKeys(ps.coll, PGMETA_OID, [pgLogKey(ev(1, 2))]));
    await expect(loadPgs(store)).rejects.toMatchObject({ code: 'EIO' });
  });

  it('meta keys sort by version (epoch first), as the load expects', () => {
    const vs = [ev(1, 10), ev(1, 9), ev(2, 1), ev(10, 0), ev(0xffffffff, Number.MAX_SAFE_INTEGER), ev(0, 0)];
    const sorted = [...vs].sort((a, b) => a.epoch - b.epoch || a.version - b.version);
    expect(vs.map(pgLogKey).sort()).toEqual(sorted.map(pgLogKey));
    expect(pgLogKey(ev(2, 11))).toBe('log.0000000002.00000000000000000011');
    expect(pgDupKey(ev(2, 11))).toBe('dup.0000000002.00000000000000000011');
  });
});
