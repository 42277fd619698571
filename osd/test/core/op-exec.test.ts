import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OsdOp } from '@aspen/shared/client/ops.ts';
import { executeOps, type ExecOutcome } from '../../src/core/op-exec.ts';
import type { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { memoryBase, newStore, tempDir } from '../store/helpers.ts';

const te = new TextEncoder();
const b = (s: string): Uint8Array => te.encode(s);
const text = (u: Uint8Array): string => new TextDecoder().decode(u);
const COLL = '1.0_head';
const OID = { name: 'obj' };

let store: SqliteObjectStore;
let cleanup: () => void;
let version = 0n;

beforeEach(async () => {
  const t = tempDir('aspen-opexec-', memoryBase);
  cleanup = t.cleanup;
  store = await newStore(t.dir);
  await store.queueTransaction(new Transaction().createCollection(COLL));
});
afterEach(async () => {
  await store.umount();
  cleanup();
});

/** Executes and, like the primary, applies the planned transaction. */
async function run(ops: OsdOp[]): Promise<ExecOutcome> {
  const out = await executeOps({ store, coll: COLL, oid: OID, newVersion: ++version, nowMs: 1_700_000_000_000 }, ops);
  if (out.code === 0 && out.tx !== null) await store.queueTransaction(out.tx);
  return out;
}

async function readAll(): Promise<string> {
  const r = await run([{ op: 'read', offset: 0, length: 0 }]);
  expect(r.code).toBe(0);
  return text((r.results[0] as { data: Uint8Array }).data);
}

describe('compound op execution (PrimaryLogPG::do_osd_ops)', () => {
  it('writes, appends, overwrites, truncates and reads back', async () => {
    expect((await run([{ op: 'writefull', data: b('hello world') }])).code).toBe(0);
    expect(await readAll()).toBe('hello world');
    await run([{ op: 'append', data: b('!!') }]);
    await run([{ op: 'write', offset: 0, data: b('J') }]);
    expect(await readAll()).toBe('Jello world!!');
    await run([{ op: 'truncate', size: 5 }]);
    expect(await readAll()).toBe('Jello');
    await run([{ op: 'writefull', data: b('ab') }]);
    expect(await readAll()).toBe('ab');
    const st = await run([{ op: 'stat' }]);
    expect(st.results[0]).toMatchObject({ kind: 'stat', sizeBytes: 2 });
  });

  it('a failing guard applies nothing of the request (ECANCELED), a holding one lets it through', async () => {
    await run([{ op: 'writefull', data: b('v1') }, { op: 'setxattr', name: 'owner', value: b('alice') }]);
    const refused = await run([{ op: 'cmpxattr', name: 'owner', cmp: 'eq', value: b('bob') }, { op: 'writefull', data: b('v2') }]);
    expect(refused.code).toBe('ECANCELED');
    expect(refused.tx).toBeNull();
    expect(await readAll()).toBe('v1');
    const ok = await run([{ op: 'cmpxattr', name: 'owner', cmp: 'eq', value: b('alice') }, { op: 'writefull', data: b('v2') }]);
    expect(ok.code).toBe(0);
    expect(await readAll()).toBe('v2');
  });

  it('assert_version compares the user version every mutation bumps', async () => {
    const w = await run([{ op: 'writefull', data: b('x') }]);
    expect((await run([{ op: 'assert_version', version: w.version + 5n }, { op: 'append', data: b('y') }])).code).toBe('ECANCELED');
    const cur = (await run([{ op: 'stat' }])).version;
    expect(cur).toBe(w.version);
    expect((await run([{ op: 'assert_version', version: cur }, { op: 'append', data: b('y') }])).code).toBe(0);
  });

  it('exclusive create, remove and ENOENT afterwards', async () => {
    expect((await run([{ op: 'create', exclusive: true }])).code).toBe(0);
    expect((await run([{ op: 'create', exclusive: true }])).code).toBe('EEXIST');
    const rm = await run([{ op: 'remove' }]);
    expect(rm).toMatchObject({ code: 0, removes: true });
    expect((await run([{ op: 'read', offset: 0, length: 0 }])).code).toBe('ENOENT');
    expect((await run([{ op: 'remove' }])).code).toBe('ENOENT');
  });

  it('omap set, page, compare and remove; xattrs are listed without the internal ones', async () => {
    await run([{ op: 'omap_set', entries: [['a', b('1')], ['b', b('2')], ['c', b('3')]] }, { op: 'setxattr', name: 'k', value: b('v') }]);
    const p1 = await run([{ op: 'omap_get_vals', startAfter: '', prefix: '', max: 2 }]);
    expect(p1.results[0]).toMatchObject({ kind: 'omap', more: true });
    expect((p1.results[0] as { entries: [string, Uint8Array][] }).entries.map(([k]) => k)).toEqual(['a', 'b']);
    const p2 = await run([{ op: 'omap_get_keys', startAfter: 'b', max: 10 }]);
    expect(p2.results[0]).toMatchObject({ kind: 'keys', keys: ['c'], more: false });
    expect((await run([{ op: 'omap_cmp', key: 'a', cmp: 'eq', value: b('9') }, { op: 'omap_rm', keys: ['a'] }])).code).toBe('ECANCELED');
    expect((await run([{ op: 'omap_cmp', key: 'a', cmp: 'eq', value: b('1') }, { op: 'omap_rm', keys: ['a'] }])).code).toBe(0);
    // A missing key compares as empty (Ceph): `eq ""` asserts absence, and fails while present.
    expect((await run([{ op: 'omap_cmp', key: 'a', cmp: 'eq', value: b('') }, { op: 'omap_set', entries: [['a', b('new')]] }])).code).toBe(0);
    expect((await run([{ op: 'omap_cmp', key: 'a', cmp: 'eq', value: b('') }, { op: 'omap_set', entries: [['a', b('newer')]] }])).code).toBe('ECANCELED');
    const xs = await run([{ op: 'getxattrs' }]);
    expect((xs.results[0] as { entries: [string, Uint8Array][] }).entries.map(([k]) => k)).toEqual(['k']);
  });

  it('refuses data-returning reads inside a write request with EINVAL and applies nothing', async () => {
    await run([{ op: 'writefull', data: b('keep') }]);
    const r = await run([{ op: 'append', data: b('X') }, { op: 'read', offset: 0, length: 0 }]);
    expect(r.code).toBe('EINVAL');
    expect(await readAll()).toBe('keep');
  });

  it('sparse_read reports allocated extents only', async () => {
    await run([{ op: 'write', offset: 1 << 20, data: new Uint8Array(4096).fill(7) }]);
    const r = await run([{ op: 'sparse_read', offset: 0, length: 0 }]);
    expect(r.code).toBe(0);
    const res = r.results[0] as { extents: [number, number][]; data: Uint8Array };
    expect(res.extents).toEqual([[1 << 20, 4096]]);
    expect(res.data.every((x) => x === 7)).toBe(true);
  });
});
