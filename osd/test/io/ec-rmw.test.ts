/**
 * Property test of EC writes (ADR 0009): random request sequences (write, writefull, append,
 * truncate, zero, remove) planned by the primary's real path — op-exec on the EC view, then the
 * per-shard translation with read-modify-write of partial stripes — applied to real shard
 * stores (k=3 m=2, 512-byte stripe unit: stripes of 1536 bytes, so requests cross stripes and
 * shard boundaries at odd offsets), must read back as a plain byte-array model does, from the
 * data shards and from any k shards (every pattern of m missing), and keep every shard object at
 * ceil(size / 1536) × 512 bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { OsdOp } from '@aspen/shared/client/ops.ts';
import { PgStore, oidOf } from '../../src/io/osd-store.ts';
import { executeOps } from '../../src/core/op-exec.ts';
import { EcObjectView, RS_CODEC, shardSizeBytes, translateEcTransaction, type ShardReader } from '../../src/core/ec-exec.ts';
import { normalizeOid } from '../../src/store/oid.ts';
import { encodeTransaction } from '../../src/store/txn-codec.ts';
import type { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { memoryBase, newStore, tempDir } from '../store/helpers.ts';

const layout = { k: 3, m: 2, stripeUnitBytes: 512 };
const N = layout.k + layout.m;
const MAX = 12_000;

let store: SqliteObjectStore;
let cleanup: () => void;
beforeAll(async () => {
  const t = tempDir('aspen-ecrmw-', memoryBase);
  cleanup = t.cleanup;
  store = await newStore(t.dir);
});
afterAll(async () => {
  await store.umount();
  cleanup();
});

type Req =
  | { kind: 'write'; offset: number; length: number; seed: number }
  | { kind: 'writefull'; length: number; seed: number }
  | { kind: 'append'; length: number; seed: number }
  | { kind: 'truncate'; size: number }
  | { kind: 'zero'; offset: number; length: number }
  | { kind: 'remove' };

const reqA: fc.Arbitrary<Req> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), offset: fc.nat(MAX), length: fc.integer({ min: 1, max: 4000 }), seed: fc.nat(255) }) },
  fc.record({ kind: fc.constant('writefull' as const), length: fc.nat(MAX), seed: fc.nat(255) }),
  fc.record({ kind: fc.constant('append' as const), length: fc.integer({ min: 1, max: 3000 }), seed: fc.nat(255) }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), size: fc.nat(MAX) }) },
  fc.record({ kind: fc.constant('zero' as const), offset: fc.nat(MAX), length: fc.integer({ min: 1, max: 5000 }) }),
  fc.record({ kind: fc.constant('remove' as const) }),
);

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7 + (i >> 9)) & 0xff;
  return b;
}

let run = 0;

describe('EC read-modify-write (property)', () => {
  it('random request sequences read back as the model, from any k shards', async () => {
    await fc.assert(fc.asyncProperty(fc.array(reqA, { minLength: 1, maxLength: 8 }), async (reqs) => {
      const pg = `${run++}`;
      const shards = Array.from({ length: N }, (_, i) => new PgStore(store, `9.${Number(pg).toString(16)}s${i}`));
      const colls = shards.map((s) => s.coll);
      const name = 'o';
      const oid = oidOf(name);
      let missing = new Set<number>();
      const reader: ShardReader = async (shard, o, off, len) => {
        if (missing.has(shard)) return null;
        const ps = shards[shard]!;
        return (await store.exists(ps.coll, o)) ? ps.readRange(o, off, len) : null;
      };
      const view = new EcObjectView(store, layout, RS_CODEC, reader);
      let model: Uint8Array | null = null;
      let version = 0;
      for (const r of reqs) {
        const ops: OsdOp[] = [];
        const size = model?.length ?? 0;
        switch (r.kind) {
          case 'write': ops.push({ op: 'write', offset: r.offset, data: bytes(r.length, r.seed) }); break;
          case 'writefull': ops.push({ op: 'writefull', data: bytes(r.length, r.seed) }); break;
          case 'append': ops.push({ op: 'append', data: bytes(r.length, r.seed) }); break;
          case 'truncate': ops.push({ op: 'truncate', size: r.size }); break;
          case 'zero': ops.push({ op: 'zero', offset: r.offset, length: r.length }); break;
          case 'remove': ops.push({ op: 'remove' }); break;
        }
        missing = new Set();
        const exists = await store.exists(colls[0]!, oid);
        const oldSize = exists ? (await view.stat(colls[0]!, oid)).sizeBytes : 0;
        expect(oldSize).toBe(size);
        const oldAttrs = exists ? await store.getattrs(colls[0]!, oid) : null;
        const out = await executeOps({ store: view, coll: colls[0]!, oid, nowMs: 1 }, ops);
        if (model === null && ['truncate', 'zero', 'remove'].includes(r.kind)) {
          expect(out.code).toBe('ENOENT');
          continue;
        }
        expect(out.code).toBe(0);
        version++;
        const v = { epoch: 1, version };
        if (out.removes) {
          for (const s of shards) await s.commit([{ kind: 'remove', object: name, version: v }]);
          model = null;
          continue;
        }
        const parts = await translateEcTransaction(layout, RS_CODEC, reader, out.tx!, normalizeOid(oid), oldSize, colls, oldAttrs);
        for (let i = 0; i < N; i++) {
          const enc = encodeTransaction(parts[i]!);
          await shards[i]!.commit([{ kind: 'txn', object: name, meta: enc.meta, data: enc.data, sizeBytes: out.sizeBytes, version: v }]);
        }
        // The model.
        let m: Uint8Array = model ?? new Uint8Array(0);
        const grow = (n: number): void => {
          if (n <= m.length) return;
          const g = new Uint8Array(n);
          g.set(m);
          m = g;
        };
        switch (r.kind) {
          case 'write': grow(r.offset + r.length); m.set(bytes(r.length, r.seed), r.offset); break;
          case 'writefull': m = bytes(r.length, r.seed); break;
          case 'append': { const at = m.length; grow(at + r.length); m.set(bytes(r.length, r.seed), at); break; }
          case 'truncate': { const t = new Uint8Array(r.size); t.set(m.subarray(0, Math.min(r.size, m.length))); m = t; break; }
          case 'zero': m.fill(0, r.offset, Math.min(m.length, r.offset + r.length)); break;
          default: break;
        }
        model = m;
        expect(out.sizeBytes).toBe(model.length);
      }
      if (model === null) return;
      // Every shard object is ceil(size / W) × su bytes.
      for (const c of colls) expect((await store.stat(c, oid)).sizeBytes).toBe(shardSizeBytes(layout, model.length));
      // Reads: all shards, then every pattern of m = 2 missing shards (decoding).
      const want = Buffer.from(model);
      missing = new Set();
      expect(Buffer.compare(Buffer.from(await view.read(colls[0]!, oid, 0, MAX * 2)), want)).toBe(0);
      for (let a = 0; a < N; a++) {
        for (let b = a + 1; b < N; b++) {
          missing = new Set([a, b]);
          expect(Buffer.compare(Buffer.from(await view.read(colls[0]!, oid, 0, MAX * 2)), want), `without shards ${a},${b}`).toBe(0);
        }
      }
      missing = new Set();
      if (model.length > 100) {
        const off = Math.floor(model.length / 3);
        expect(Buffer.compare(Buffer.from(await view.read(colls[0]!, oid, off, 1000)), Buffer.from(model.subarray(off, off + 1000)))).toBe(0);
      }
    }), { numRuns: 200 });
  }, 120_000);
});

