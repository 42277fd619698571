/**
 * Self-managed snapshots at the OSD (Ceph PrimaryLogPG make_writeable, find_object_context,
 * trim_object): op execution against a real store, the SnapSet codec, the state blob v2 that
 * carries clones, and the PgStore round trip of such a blob (writeFull → readBlob).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import type { OsdOp, SnapContext } from '@aspen/shared/client/ops.ts';
import { executeOps, trimObject, type ExecOutcome } from '../../src/core/op-exec.ts';
import { SNAPSET_XATTR, decodeSnapSet, encodeSnapSet, planWriteSnaps, resolveSnapRead, validateSnapContext, type SnapSet } from '../../src/core/snapset.ts';
import { PgStore } from '../../src/io/osd-store.ts';
import { decodeObjectState, encodeObjectState, type ObjectState } from '../../src/pg/object-state.ts';
import type { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { encodeTransaction } from '../../src/store/txn-codec.ts';
import { memoryBase, newStore, tempDir } from '../store/helpers.ts';

const te = new TextEncoder();
const b = (s: string): Uint8Array => te.encode(s);
const text = (u: Uint8Array): string => new TextDecoder().decode(u);
const COLL = '1.0_head';
const OID = { name: 'obj' };
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

let store: SqliteObjectStore;
let cleanup: () => void;
let version = 0n;

beforeEach(async () => {
  const t = tempDir('aspen-snaps-', memoryBase);
  cleanup = t.cleanup;
  store = await newStore(t.dir);
  await store.queueTransaction(new Transaction().createCollection(COLL));
});
afterEach(async () => {
  await store.umount();
  cleanup();
});

/** Executes and, like the primary, applies the planned transaction (a removal: the object and its clones). */
async function run(ops: OsdOp[], o: { snapc?: SnapContext; snapId?: bigint } = {}): Promise<ExecOutcome> {
  const out = await executeOps({ store, coll: COLL, oid: OID, newVersion: ++version, nowMs: 1_700_000_000_000, ...o }, ops);
  await apply(out);
  return out;
}

async function apply(out: ExecOutcome): Promise<void> {
  if (out.code !== 0 || out.tx === null) return;
  if (!out.removes) {
    await store.queueTransaction(out.tx);
    return;
  }
  const tx = new Transaction();
  for (const o of await storeObjects()) tx.remove(COLL, o);
  await store.queueTransaction(tx);
}

async function storeObjects(): Promise<{ name: string; snap: 'head' | bigint }[]> {
  return (await store.listObjects(COLL, undefined, 100)).objects.map((o) => ({ name: o.name, snap: o.snap }));
}

async function readAt(snapId?: bigint): Promise<string | string> {
  const r = await run([{ op: 'read', offset: 0, length: 0 }], snapId === undefined ? {} : { snapId });
  if (r.code !== 0) return String(r.code);
  return text((r.results[0] as { data: Uint8Array }).data);
}

async function snapset(): Promise<SnapSet> {
  return decodeSnapSet((await store.getattrs(COLL, OID)).get(SNAPSET_XATTR)!);
}

const snapc = (seq: number, ...snaps: number[]): SnapContext => ({ seq: BigInt(seq), snaps: snaps.map(BigInt) });

describe('self-managed snapshots in op execution (PrimaryLogPG make_writeable / find_object_context)', () => {
  it('the first write after a snap clones the head once; reads at each snap see the data of their time', async () => {
    expect((await run([{ op: 'writefull', data: b('v1') }, { op: 'setxattr', name: 'a', value: b('x') }])).code).toBe(0);
    // Snap 1 taken: the next write clones the head (clone 1 serving snap 1).
    await run([{ op: 'writefull', data: b('v2-longer') }], { snapc: snapc(1, 1) });
    expect(await storeObjects()).toEqual([{ name: 'obj', snap: 1n }, { name: 'obj', snap: 'head' }]);
    expect(await snapset()).toEqual({ seq: 1n, clones: [{ cloneId: 1n, snaps: [1n], sizeBytes: 2 }] });
    // A second write under the same context makes no second clone.
    await run([{ op: 'append', data: b('+') }], { snapc: snapc(1, 1) });
    expect((await storeObjects()).length).toBe(2);
    expect(await readAt()).toBe('v2-longer+');
    expect(await readAt(1n)).toBe('v1');
    const x = await run([{ op: 'getxattr', name: 'a' }], { snapId: 1n });
    expect(text((x.results[0] as { data: Uint8Array }).data)).toBe('x');
    // Snaps 2 and 3 taken without a write in between: one clone (3) serves both.
    await run([{ op: 'writefull', data: b('v3') }], { snapc: snapc(3, 3, 2, 1) });
    expect((await snapset()).clones).toEqual([{ cloneId: 1n, snaps: [1n], sizeBytes: 2 }, { cloneId: 3n, snaps: [3n, 2n], sizeBytes: 10 }]);
    expect(await readAt(2n)).toBe('v2-longer+');
    expect(await readAt(3n)).toBe('v2-longer+');
    expect(await readAt(4n)).toBe('v3'); // newer than the snapset's seq: the head
    expect(await readAt()).toBe('v3');
    // A clone does not carry a snapset of its own.
    expect((await store.getattrs(COLL, { name: 'obj', snap: 3n })).has(SNAPSET_XATTR)).toBe(false);
  });

  it('a snap that does not cover the object (created before it, or not served by a clone) reads ENOENT', async () => {
    await run([{ op: 'writefull', data: b('new') }], { snapc: snapc(2, 2) }); // created after snap 2: no clone
    expect(await storeObjects()).toEqual([{ name: 'obj', snap: 'head' }]);
    expect(await readAt(2n)).toBe('ENOENT');
    expect(await readAt(1n)).toBe('ENOENT');
    expect(await readAt(3n)).toBe('new');
  });

  it('removing a head with clones leaves a whiteout: ENOENT at the head, clones readable, create/write recreate it', async () => {
    await run([{ op: 'writefull', data: b('old') }, { op: 'omap_set', entries: [['k', b('v')]] }, { op: 'setxattr', name: 'a', value: b('x') }]);
    const rm = await run([{ op: 'remove' }], { snapc: snapc(1, 1) });
    expect(rm).toMatchObject({ code: 0, removes: false, sizeBytes: 0 });
    expect(await storeObjects()).toEqual([{ name: 'obj', snap: 1n }, { name: 'obj', snap: 'head' }]);
    expect(await readAt()).toBe('ENOENT');
    expect((await run([{ op: 'stat' }])).code).toBe('ENOENT');
    expect((await run([{ op: 'assert_exists' }, { op: 'setxattr', name: 'b', value: b('y') }])).code).toBe('ENOENT');
    expect((await run([{ op: 'remove' }])).code).toBe('ENOENT');
    expect(await readAt(1n)).toBe('old');
    const omap = await run([{ op: 'omap_get_vals', startAfter: '', prefix: '', max: 10 }], { snapId: 1n });
    const entries = (omap.results[0] as { entries: [string, Uint8Array][] }).entries;
    expect(entries.map(([k, v]) => [k, text(v)])).toEqual([['k', 'v']]);
    // The whiteout kept nothing of the head.
    const attrs = await store.getattrs(COLL, OID);
    expect([...attrs.keys()].filter((k) => k.startsWith('_'))).toEqual([]);
    expect((await store.omapGetValues(COLL, OID, undefined, 10)).entries).toEqual([]);
    // An exclusive create succeeds on a whiteout; the object is back, without the old state.
    expect((await run([{ op: 'create', exclusive: true }], { snapc: snapc(1, 1) })).code).toBe(0);
    expect(await readAt()).toBe('');
    expect((await run([{ op: 'getxattrs' }])).results[0]).toEqual({ code: 0, kind: 'xattrs', entries: [] });
    await run([{ op: 'write', offset: 0, data: b('again') }], { snapc: snapc(1, 1) });
    expect(await readAt()).toBe('again');
    expect(await readAt(1n)).toBe('old');
    expect((await snapset()).clones.length).toBe(1);
  });

  it('removing a head without clones removes the object (delete body)', async () => {
    await run([{ op: 'writefull', data: b('x') }], { snapc: snapc(1, 1) });
    const rm = await run([{ op: 'remove' }], { snapc: snapc(1, 1) });
    expect(rm).toMatchObject({ code: 0, removes: true });
    expect(await storeObjects()).toEqual([]);
  });

  it('refuses writes at a snap and malformed snap contexts (EINVAL), as Ceph SnapContext::is_valid', async () => {
    await run([{ op: 'writefull', data: b('x') }]);
    expect((await run([{ op: 'writefull', data: b('y') }], { snapId: 1n })).code).toBe('EINVAL');
    expect((await run([{ op: 'writefull', data: b('y') }], { snapc: snapc(1, 2) })).code).toBe('EINVAL');
    expect((await run([{ op: 'writefull', data: b('y') }], { snapc: snapc(3, 1, 2) })).code).toBe('EINVAL');
    expect((await run([{ op: 'writefull', data: b('y') }], { snapc: snapc(3, 2, 2) })).code).toBe('EINVAL');
    expect(await readAt()).toBe('x');
    expect(await storeObjects()).toEqual([{ name: 'obj', snap: 'head' }]);
  });

  it('snap trimming drops removed snaps, deletes emptied clones, and removes a whiteout left without clones', async () => {
    await run([{ op: 'writefull', data: b('v1') }]);
    await run([{ op: 'writefull', data: b('v2') }], { snapc: snapc(1, 1) });
    await run([{ op: 'writefull', data: b('v3') }], { snapc: snapc(3, 3, 2, 1) });
    const trim = async (removed: number[]): Promise<ExecOutcome> => {
      const out = await trimObject({ store, coll: COLL, oid: OID, nowMs: 0 }, (s) => removed.includes(Number(s)));
      await apply(out);
      return out;
    };
    expect((await trim([4])).tx).toBeNull(); // nothing served by these clones
    // Snap 2 removed: clone 3 still serves 3.
    expect((await trim([2])).code).toBe(0);
    expect((await snapset()).clones).toEqual([{ cloneId: 1n, snaps: [1n], sizeBytes: 2 }, { cloneId: 3n, snaps: [3n], sizeBytes: 2 }]);
    expect(await readAt(2n)).toBe('ENOENT');
    expect(await readAt(3n)).toBe('v2');
    // Snap 1 removed: clone 1 goes.
    await trim([1, 2]);
    expect(await storeObjects()).toEqual([{ name: 'obj', snap: 3n }, { name: 'obj', snap: 'head' }]);
    expect(await readAt(1n)).toBe('ENOENT');
    // The head becomes a whiteout; then snap 3 removed: the object disappears.
    const removedAt = (await run([{ op: 'remove' }], { snapc: snapc(3, 3) })).version;
    expect(await readAt()).toBe('ENOENT');
    const last = await trim([1, 2, 3]);
    expect(last.removes).toBe(true);
    expect(await storeObjects()).toEqual([]);
    // The user version is not bumped by trimming.
    expect(last.version).toBe(removedAt);
  });
});

describe('SnapSet and blob v2 codecs', () => {
  it('round-trips, resolves reads, refuses inconsistent snapsets and decodes the saved sample', () => {
    const ss: SnapSet = { seq: 5n, clones: [{ cloneId: 2n, snaps: [2n, 1n], sizeBytes: 7 }, { cloneId: 5n, snaps: [4n], sizeBytes: 0 }] };
    const bytes = encodeSnapSet(ss);
    expect(decodeSnapSet(bytes)).toEqual(ss);
    const sample = '01014c00000005000000000000000200000002000000000000000200000002000000000000000100000000000000070000000000000005000000000000000100000004000000000000000000000000000000';
    expect(hex(bytes)).toBe(sample);
    expect(resolveSnapRead(ss, 6n)).toEqual({ kind: 'head' });
    expect(resolveSnapRead(ss, 1n)).toMatchObject({ kind: 'clone', clone: { cloneId: 2n } });
    expect(resolveSnapRead(ss, 3n)).toEqual({ kind: 'none' }); // clone 5 does not serve 3
    expect(resolveSnapRead(ss, 4n)).toMatchObject({ kind: 'clone', clone: { cloneId: 5n } });
    const bad = new Uint8Array(bytes);
    bad[6] = 1; // seq 1 < newest clone 5
    expect(() => decodeSnapSet(bad)).toThrow(AspenError);
    expect(() => validateSnapContext(snapc(2, 1, 2))).toThrow(/descending/);
    expect(planWriteSnaps(ss, snapc(4, 4), true, 3)).toEqual({ next: ss, clone: null }); // old context: no clone
  });

  it('state blob v2 carries whiteout, snapset and clones; a plain object keeps its v1 bytes', () => {
    const plain: ObjectState = { data: b('d'), xattrs: new Map(), omapHeader: new Uint8Array(0), omap: new Map(), version: 1n, mtimeMs: 2 };
    expect(encodeObjectState(plain)[0]).toBe(1); // struct v1
    const s: ObjectState = {
      ...plain, whiteout: true, snapset: encodeSnapSet({ seq: 3n, clones: [{ cloneId: 3n, snaps: [3n], sizeBytes: 1 }] }),
      clones: [{ cloneId: 3n, data: b('c'), xattrs: new Map([['a', b('1')]]), omapHeader: b('h'), omap: new Map([['k', b('v')]]), version: 1n, mtimeMs: 1 }],
    };
    const enc = encodeObjectState(s);
    expect([enc[0], enc[1]]).toEqual([2, 2]); // v2, compat 2
    expect(decodeObjectState(enc)).toEqual(s);
  });
});

describe('PgStore with clones', () => {
  it('a blob with clones round-trips through writeFull and the read recovery pushes; remove removes the clones too', async () => {
    // Build an object with a clone and a whiteout head through op execution and txn bodies.
    const ps = new PgStore(store, '1.0', { objects: [] });
    const ev = (v: number): { epoch: number; version: number } => ({ epoch: 1, version: v });
    const step = async (ops: OsdOp[], sc: SnapContext, v: number): Promise<void> => {
      const out = await executeOps({ store, coll: ps.coll, oid: OID, nowMs: 5, snapc: sc }, ops);
      expect(out.code).toBe(0);
      const enc = encodeTransaction(out.tx!);
      await ps.commit([{ kind: 'txn', object: 'obj', meta: enc.meta, data: enc.data, sizeBytes: out.sizeBytes, version: ev(v) }]);
    };
    await step([{ op: 'writefull', data: b('one') }, { op: 'omap_set', entries: [['k', b('1')]] }], snapc(0), 1);
    await step([{ op: 'writefull', data: b('two') }], snapc(1, 1), 2);
    await step([{ op: 'remove' }], snapc(2, 2, 1), 3);
    expect(ps.cloneIds('obj')).toEqual([1n, 2n]);
    const r1 = await ps.read({ kind: 'read', readId: 1, object: 'obj' });
    expect(r1.kind === 'read' && r1.exists).toBe(true);
    const blob = (r1 as { data: Uint8Array }).data;
    const state = decodeObjectState(blob);
    expect(state.whiteout).toBe(true);
    expect(state.clones?.map((c) => [c.cloneId, text(c.data)])).toEqual([[1n, 'one'], [2n, 'two']]);
    expect(decodeSnapSet(state.snapset!).clones.map((c) => c.cloneId)).toEqual([1n, 2n]);

    // A second member receives the blob (recovery push) over a stale copy with a foreign clone.
    const coll2 = '1.1_head';
    const ps2 = new PgStore(store, '1.1');
    await ps2.commit([{ kind: 'writeFull', object: 'obj', data: encodeObjectState({ data: b('stale'), xattrs: new Map(), omapHeader: new Uint8Array(0), omap: new Map(), version: 1n, mtimeMs: 0, snapset: encodeSnapSet({ seq: 9n, clones: [{ cloneId: 9n, snaps: [9n], sizeBytes: 0 }] }), clones: [{ cloneId: 9n, data: new Uint8Array(0), xattrs: new Map(), omapHeader: new Uint8Array(0), omap: new Map(), version: 0n, mtimeMs: 0 }] }), version: ev(1) }]);
    expect(ps2.cloneIds('obj')).toEqual([9n]);
    await ps2.commit([{ kind: 'writeFull', object: 'obj', data: blob, version: ev(3) }]);
    expect(ps2.cloneIds('obj')).toEqual([1n, 2n]);
    const listed = (await store.listObjects(coll2, undefined, 100)).objects.map((o) => o.snap);
    expect(listed).toEqual([1n, 2n, 'head']);
    const r2 = await ps2.read({ kind: 'read', readId: 2, object: 'obj' });
    expect(hex((r2 as { data: Uint8Array }).data)).toBe(hex(blob));
    // Reads at the snaps work on the pushed copy; the head is a whiteout there too.
    expect(text(((await executeOps({ store, coll: coll2, oid: OID, nowMs: 0, snapId: 1n }, [{ op: 'read', offset: 0, length: 0 }])).results[0] as { data: Uint8Array }).data)).toBe('one');
    expect((await executeOps({ store, coll: coll2, oid: OID, nowMs: 0 }, [{ op: 'stat' }])).code).toBe('ENOENT');
    // PGLS does not list the whiteout.
    expect((await ps2.listPage('', 10)).objects).toEqual([]);
    // After a restart the clones are found again; a core remove takes the head and every clone.
    const ps3 = new PgStore(store, '1.1', { objects: ['obj'], clones: await ps2.listClones() });
    expect(ps3.clonedObjects()).toEqual(['obj']);
    await ps3.commit([{ kind: 'remove', object: 'obj', version: ev(4) }]);
    expect((await store.listObjects(coll2, undefined, 100)).objects).toEqual([]);
  });
});
