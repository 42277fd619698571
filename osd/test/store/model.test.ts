/**
 * Property: after any sequence of random transactions (queued concurrently in groups, so they
 * share group commits), the store's state equals an in-memory model's — collections, listing
 * order, sizes, data, holes, xattrs, omap header and keys — and it still does after
 * umount/mount (journal replay and orphan cleanup included). Each transaction's outcome
 * (success or error code) matches the model's too, so a failed transaction left no trace.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { ErrorCode } from '@aspen/shared/errors.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import type { ObjectId } from '../../src/store/oid.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { diffStoreModel, memoryBase, newStore, tempDir } from './helpers.ts';
import { StoreModel } from './model.ts';
import { CRASH_COLL, crashTransaction, modelDigest, storeDigest } from './crash-workload.ts';

const BS = 512;
const COLLS = ['1.0_head', '1.1_head'];
const OIDS: ObjectId[] = [{ name: 'a' }, { name: 'b' }, { name: 'c', namespace: 'ns' }, { name: 'a', snap: 5n }, { name: 'b', shard: 1, generation: 3n }];

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 7) & 255;
  return b;
}

type OpFn = (t: Transaction) => void;

// Skewed towards one collection and two objects so ops pile up on the same data.
const coll = fc.oneof({ weight: 5, arbitrary: fc.constant(COLLS[0]!) }, { weight: 1, arbitrary: fc.constant(COLLS[1]!) });
const oid = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(OIDS[0]!, OIDS[1]!) }, { weight: 1, arbitrary: fc.constantFrom(...OIDS) });
const offset = fc.oneof(fc.integer({ min: 0, max: 4 * BS }), fc.constantFrom(0, BS, 2 * BS, 3 * BS - 1));
const data = fc.record({ len: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constantFrom(BS, 2 * BS, 1)), seed: fc.integer({ min: 0, max: 255 }) });
const key = fc.constantFrom('', 'k1', 'k2', 'k10', 'z', 'é');
const value = fc.uint8Array({ maxLength: 8 });

const opArb: fc.Arbitrary<{ label: string; fn: OpFn }> = fc.oneof(
  { weight: 2, arbitrary: coll.map((c) => ({ label: `mkcoll ${c}`, fn: (t: Transaction) => void t.createCollection(c) })) },
  { weight: 1, arbitrary: coll.map((c) => ({ label: `rmcoll ${c}`, fn: (t: Transaction) => void t.removeCollection(c) })) },
  { weight: 2, arbitrary: fc.tuple(coll, oid).map(([c, o]) => ({ label: `touch ${o.name}`, fn: (t: Transaction) => void t.touch(c, o) })) },
  {
    weight: 10,
    arbitrary: fc.tuple(coll, oid, offset, data).map(([c, o, off, d]) => ({
      label: `write ${o.name} ${off}+${d.len}`,
      fn: (t: Transaction) => void t.write(c, o, off, pattern(d.len, d.seed)),
    })),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(coll, oid, offset, fc.integer({ min: 0, max: 3 * BS })).map(([c, o, off, len]) => ({
      label: `zero ${o.name} ${off}+${len}`,
      fn: (t: Transaction) => void t.zero(c, o, off, len),
    })),
  },
  { weight: 3, arbitrary: fc.tuple(coll, oid, offset).map(([c, o, s]) => ({ label: `truncate ${o.name} ${s}`, fn: (t: Transaction) => void t.truncate(c, o, s) })) },
  { weight: 2, arbitrary: fc.tuple(coll, oid).map(([c, o]) => ({ label: `remove ${o.name}`, fn: (t: Transaction) => void t.remove(c, o) })) },
  {
    weight: 2,
    arbitrary: fc.tuple(coll, oid, fc.constantFrom('_', 'snapset', 'u'), value).map(([c, o, n, v]) => ({ label: `setattr ${o.name} ${n}`, fn: (t: Transaction) => void t.setattr(c, o, n, v) })),
  },
  { weight: 1, arbitrary: fc.tuple(coll, oid, fc.constantFrom('_', 'u')).map(([c, o, n]) => ({ label: `rmattr ${o.name} ${n}`, fn: (t: Transaction) => void t.rmattr(c, o, n) })) },
  {
    weight: 3,
    arbitrary: fc.tuple(coll, oid, fc.array(fc.tuple(key, value), { maxLength: 4 })).map(([c, o, es]) => ({
      label: `omapset ${o.name}`,
      fn: (t: Transaction) => void t.omapSetKeys(c, o, new Map(es)),
    })),
  },
  { weight: 1, arbitrary: fc.tuple(coll, oid, fc.array(key, { maxLength: 3 })).map(([c, o, ks]) => ({ label: `omaprm ${o.name}`, fn: (t: Transaction) => void t.omapRmKeys(c, o, ks) })) },
  { weight: 1, arbitrary: fc.tuple(coll, oid, key, key).map(([c, o, a, b]) => ({ label: `omaprmrange ${o.name}`, fn: (t: Transaction) => void t.omapRmKeyRange(c, o, a, b) })) },
  { weight: 1, arbitrary: fc.tuple(coll, oid).map(([c, o]) => ({ label: `omapclear ${o.name}`, fn: (t: Transaction) => void t.omapClear(c, o) })) },
  { weight: 1, arbitrary: fc.tuple(coll, oid, value).map(([c, o, v]) => ({ label: `omaphdr ${o.name}`, fn: (t: Transaction) => void t.omapSetHeader(c, o, v) })) },
  {
    weight: 3,
    arbitrary: fc.tuple(coll, oid, oid).filter(([, a, b]) => a !== b).map(([c, a, b]) => ({ label: `clone ${a.name}->${b.name}`, fn: (t: Transaction) => void t.clone(c, a, b) })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(coll, oid, oid, offset, fc.integer({ min: 0, max: 2 * BS }), offset)
      .filter(([, a, b]) => a !== b)
      .map(([c, a, b, so, len, dof]) => ({ label: `clonerange ${a.name}->${b.name} ${so}+${len}@${dof}`, fn: (t: Transaction) => void t.cloneRange(c, a, b, so, len, dof) })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(coll, oid, coll, oid)
      .filter(([c1, a, c2, b]) => c1 !== c2 || a !== b)
      .map(([c1, a, c2, b]) => ({ label: `move ${c1}/${a.name}->${c2}/${b.name}`, fn: (t: Transaction) => void t.collectionMoveRename(c1, a, c2, b) })),
  },
);

const txArb = fc.array(opArb, { minLength: 1, maxLength: 4 });
const groupArb = fc.array(txArb, { minLength: 1, maxLength: 4 });

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function runSequence(groups: Array<Array<Array<{ label: string; fn: OpFn }>>>, deferredMaxBytes: number, deferredPartialMaxBytes: number, inlineMaxBytes: number): Promise<void> {
  const { dir, cleanup } = tempDir('aspen-store-model-', memoryBase);
  cleanups.push(cleanup);
  const store = await newStore(dir, { blockSizeBytes: BS, deferredMaxBytes, deferredPartialMaxBytes, inlineMaxBytes, deferredTrimRows: 8 });
  const model = new StoreModel();
  const setup = new Transaction().createCollection(COLLS[0]!);
  await store.queueTransaction(setup);
  model.apply(setup);
  try {
    for (const group of groups) {
      const txs = group.map((ops) => {
        const t = new Transaction();
        for (const o of ops) o.fn(t);
        return t;
      });
      const outcomes = await Promise.allSettled(txs.map((t) => store.queueTransaction(t)));
      for (let i = 0; i < txs.length; i++) {
        const expected = model.apply(txs[i]!);
        const got = outcomes[i]!;
        const gotCode: ErrorCode | undefined = got.status === 'fulfilled' ? undefined : got.reason instanceof AspenError ? got.reason.code : (String(got.reason) as ErrorCode);
        expect(gotCode, `outcome of [${group[i]!.map((o) => o.label).join('; ')}]`).toBe(expected);
      }
    }
    expect(await diffStoreModel(store, model)).toBeNull();
    await store.umount();
    await store.mount();
    expect(await diffStoreModel(store, model), 'after umount/mount').toBeNull();
  } finally {
    await store.umount();
  }
}

describe('object store vs in-memory model', () => {
  // Inline limits: 0 (every blob a file), 4 blocks (objects here reach ~10 blocks: inline blobs, their growth into files and file blobs), 64 KiB (all inline).
  it('property: store state equals model state after any transaction sequence, also after umount/mount (inline, deferred and copy-on-write paths)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(groupArb, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(1024, 1, 1 << 20),
        fc.constantFrom(0, 2048),
        fc.constantFrom(0, 4 * BS, 64 * 1024),
        (groups, deferredMaxBytes, partialMax, inlineMax) => runSequence(groups, deferredMaxBytes, partialMax, inlineMax),
      ),
      { numRuns: Number(process.env['ASPEN_STORE_RUNS'] ?? 60), ...(process.env['ASPEN_SEED'] === undefined ? {} : { seed: Number(process.env['ASPEN_SEED']) }) },
    );
  }, 240_000);
});

describe('object store vs model on the crash workload (4 KiB blocks, objects to 1 MiB, snapshot clones)', () => {
  it('equals the model after every group of 8 concurrently queued transactions, for 3 seeds', async () => {
    const base = Number(process.env['ASPEN_SEED'] ?? 1);
    for (const seed of [base, base + 1, base + 2]) {
      const { dir, cleanup } = tempDir('aspen-store-workload-', memoryBase);
      cleanups.push(cleanup);
      const store = await newStore(dir, { deferredTrimRows: 64 });
      const model = new StoreModel();
      const create = new Transaction().createCollection(CRASH_COLL);
      await store.queueTransaction(create);
      model.applyInPlace(create);
      let i = 0;
      try {
        for (let round = 0; round < 30; round++) {
          const txs = Array.from({ length: 8 }, () => crashTransaction(seed, i++));
          await Promise.all(txs.map((t) => store.queueTransaction(t)));
          for (const t of txs) model.applyInPlace(t);
          expect(await storeDigest(store), `reproduce: ASPEN_SEED=${seed}, after transaction ${i - 1}`).toBe(modelDigest(model));
        }
      } finally {
        await store.umount();
      }
    }
  }, 120_000);
});
