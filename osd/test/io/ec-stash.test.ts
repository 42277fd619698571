/**
 * EC rollback stashes (ADR 0009): each shard keeps what an object's last write overwrote, so a
 * write that reached fewer than k shards can be undone on the shards that applied it. Real
 * store, three shard PgStores (k=2 m=1) of one PG in it, the primary's real planning
 * (op-exec on the EC view, then the per-shard translation), then `ecRollback` on every shard.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { OsdOp } from '@aspen/shared/client/ops.ts';
import { PgStore, loadPgs, oidOf } from '../../src/io/osd-store.ts';
import { executeOps, USER_XATTR_PREFIX } from '../../src/core/op-exec.ts';
import { EcObjectView, RS_CODEC, stashOid, translateEcTransaction, type ShardReader } from '../../src/core/ec-exec.ts';
import { collectionName, normalizeOid } from '../../src/store/oid.ts';
import { encodeTransaction } from '../../src/store/txn-codec.ts';
import type { Eversion, StoreOp } from '../../src/pg/types.ts';
import { emptyInfo } from '../../src/pg/pg.ts';
import { emptyLog } from '../../src/pg/pg-log.ts';
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

const layout = { k: 2, m: 1, stripeUnitBytes: 4096 };
const ev = (version: number): Eversion => ({ epoch: 5, version });
const NAME = 'obj';

describe('EC rollback stashes', () => {
  it('undo a partial overwrite, a whole rewrite and a delete on the shards that applied them', async () => {
    const t = tempDir('aspen-ecstash-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const st = store;
    const shards = [0, 1, 2].map((i) => new PgStore(st, `1.0s${i}`));
    const colls = [0, 1, 2].map((i) => collectionName(1, 0, { shard: i }));
    const oid = oidOf(NAME);
    const reader: ShardReader = async (shard, o, off, len) => {
      const ps = shards[shard]!;
      return (await st.exists(ps.coll, o)) ? ps.readRange(o, off, len) : null;
    };
    const view = new EcObjectView(st, layout, RS_CODEC, reader);
    const read = async (): Promise<Uint8Array> => view.read(colls[0]!, oid, 0, 1 << 20);

    /** Plans `ops` at "the primary" (shard 0) and applies each shard's part on `on`. */
    const write = async (version: Eversion, ops: OsdOp[], on: number[]): Promise<void> => {
      const exists = await st.exists(colls[0]!, oid);
      const oldSize = exists ? (await view.stat(colls[0]!, oid)).sizeBytes : 0;
      const oldAttrs = exists ? await st.getattrs(colls[0]!, oid) : null;
      const out = await executeOps({ store: view, coll: colls[0]!, oid, nowMs: 1 }, ops);
      expect(out.code).toBe(0);
      if (out.removes) {
        for (const i of on) await shards[i]!.commit([{ kind: 'remove', object: NAME, version }]);
        return;
      }
      const parts = await translateEcTransaction(layout, RS_CODEC, reader, out.tx!, normalizeOid(oid), oldSize, colls, oldAttrs);
      for (const i of on) {
        const enc = encodeTransaction(parts[i]!);
        await shards[i]!.commit([{ kind: 'txn', object: NAME, meta: enc.meta, data: enc.data, sizeBytes: out.sizeBytes, version }]);
      }
    };
    const rollback = async (prior: Eversion, on: number[]): Promise<void> => {
      const op: StoreOp = { kind: 'ecRollback', object: NAME, prior };
      for (const i of on) await shards[i]!.commit([op]);
    };
    const xattr = async (name: string): Promise<string | undefined> => {
      const v = (await st.getattrs(colls[1]!, oid)).get(USER_XATTR_PREFIX + name);
      return v === undefined ? undefined : Buffer.from(v).toString();
    };

    const v1 = new Uint8Array(randomBytes(40_000));
    await write(ev(1), [{ op: 'writefull', data: v1 }, { op: 'setxattr', name: 'a', value: Buffer.from('one') }], [0, 1, 2]);
    expect(Buffer.compare(await read(), v1)).toBe(0);

    // A partial overwrite + a new xattr reaches shards 0 and 1 only (the "primary" died), then is undone there.
    await write(ev(2), [{ op: 'write', offset: 10_000, data: new Uint8Array(randomBytes(5000)) }, { op: 'setxattr', name: 'b', value: Buffer.from('two') }], [0, 1]);
    await rollback(ev(1), [0, 1]);
    expect(Buffer.compare(await read(), v1)).toBe(0);
    // Parity (shard 2, never written) agrees with the restored data: decode without shard 0.
    const noShard0: ShardReader = async (shard, o, off, len) => (shard === 0 ? null : reader(shard, o, off, len));
    const viaParity = new EcObjectView(st, layout, RS_CODEC, noShard0);
    expect(Buffer.compare(await viaParity.read(colls[0]!, oid, 0, 1 << 20), v1)).toBe(0);
    expect(await xattr('a')).toBe('one');
    expect(await xattr('b')).toBeUndefined();
    expect(await st.exists(colls[0]!, stashOid(oid))).toBe(false);

    // A growing partial write, applied everywhere and kept (rolled forward): its stash goes.
    const v3 = new Uint8Array(60_000);
    v3.set(v1);
    const tail = new Uint8Array(randomBytes(20_000));
    v3.set(tail, 40_000);
    await write(ev(3), [{ op: 'write', offset: 40_000, data: tail }], [0, 1, 2]);
    expect(Buffer.compare(await read(), v3)).toBe(0);
    for (const s of shards) await s.commit([{ kind: 'rollForward', to: ev(3) }]);
    expect(await st.exists(colls[1]!, stashOid(oid))).toBe(false);

    // A whole rewrite (smaller) reaching shard 1 only, undone: the stash is a clone of the old object.
    await write(ev(4), [{ op: 'writefull', data: new Uint8Array(randomBytes(3000)) }], [1]);
    await rollback(ev(3), [1]);
    expect(Buffer.compare(await read(), v3)).toBe(0);

    // A truncate (shrinking into a stripe) reaching shards 1 and 2, undone.
    await write(ev(5), [{ op: 'truncate', size: 12_345 }], [1, 2]);
    await rollback(ev(3), [1, 2]);
    expect(Buffer.compare(await read(), v3)).toBe(0);
    expect(Buffer.compare(await viaParity.read(colls[0]!, oid, 0, 1 << 20), v3)).toBe(0);

    // A delete reaching shard 2, undone; the stash survives a restart (loadPgs) before that.
    await write(ev(6), [{ op: 'remove' }], [2]);
    expect(await st.exists(colls[2]!, oid)).toBe(false);
    await shards[2]!.commit([{ kind: 'setMeta', meta: { info: emptyInfo('1.0'), log: emptyLog(), missing: new Map() } }]);
    const loaded = (await loadPgs(st)).find((l) => l.pgid === '1.0s2')!;
    shards[2] = new PgStore(st, '1.0s2', { objects: [...loaded.objects.keys(), '\u0000pgmeta'] });
    await rollback(ev(3), [2]);
    expect(await st.exists(colls[2]!, oid)).toBe(true);
    expect(Buffer.compare(await read(), v3)).toBe(0);
    expect(Buffer.compare(await viaParity.read(colls[0]!, oid, 0, 1 << 20), v3)).toBe(0);
    // The object's pg version is the one rolled back to.
    expect((await shards[2]!.objectVersion(NAME))).toEqual(ev(3));
  });
});
