/**
 * Simulated power loss at the I/O layer (what kill -9 cannot show: the page cache survives a
 * process kill). A `LossyBlobFiles` records, for every blob file, its content at its last fsync
 * and, per blob directory, the names present at its last directory fsync. A "power cut"
 * abandons the store and rewrites the blob directories to a state a real power loss could
 * leave: names created or removed since the last directory fsync randomly survive or vanish,
 * and every 4 KiB block of a file randomly holds its last-fsynced or its newer bytes (a torn
 * flush). SQLite is trusted to keep its own promise (WAL, synchronous=FULL).
 *
 * Property: after a cut at a random point of the crash workload, the remounted store equals
 * the model after every acknowledged transaction, and every block verifies.
 */
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobFiles } from '../../src/io/store-files.ts';
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { CRASH_COLL, crashTransaction, modelDigest, storeDigest } from './crash-workload.ts';
import { memoryBase, tempDir } from './helpers.ts';
import { StoreModel } from './model.ts';

/** What is on stable storage, shared by the LossyBlobFiles of successive mounts. */
interface DurableState {
  /** path -> content at its last fsync. */
  readonly content: Map<string, Buffer>;
  /** directory -> names at its last fsync (missing: none). */
  readonly names: Map<string, Set<string>>;
}

/** BlobFiles that remembers what an fsync made durable. */
class LossyBlobFiles extends BlobFiles {
  constructor(
    root: string,
    private readonly durable: DurableState,
  ) {
    super(root);
  }

  override async sync(id: number): Promise<void> {
    await super.sync(id);
    this.durable.content.set(this.path(id), readFileSync(this.path(id)));
  }

  override async syncDir(path: string): Promise<void> {
    await super.syncDir(path);
    this.durable.names.set(path, new Set(readdirSync(path)));
  }

  /** Rewrites the blob directories to a random state a power loss could leave. */
  powerCut(rand: (n: number) => number): { droppedNames: number; tornFiles: number } {
    let droppedNames = 0;
    let tornFiles = 0;
    const dirs = readdirSync(this.dir).map((d) => join(this.dir, d));
    for (const d of dirs) {
      const now = new Set(readdirSync(d));
      const durable = this.durable.names.get(d) ?? new Set<string>();
      for (const name of new Set([...now, ...durable])) {
        const path = join(d, name);
        const nameDurable = durable.has(name) && now.has(name);
        // A name not made durable may survive or not (created since the last dir fsync, or removed since).
        const survives = nameDurable || rand(2) === 0;
        if (!survives) {
          if (existsSync(path)) {
            unlinkSync(path);
            droppedNames++;
          }
          continue;
        }
        const current = now.has(name) ? readFileSync(path) : undefined;
        const synced = this.durable.content.get(path);
        if (current === undefined && synced === undefined) continue;
        const out = mixBlocks(synced ?? Buffer.alloc(0), current ?? synced!, rand);
        if (current === undefined || !out.equals(current)) tornFiles++;
        writeFileSync(path, out);
      }
    }
    // After the "reboot", what is on disk is what is durable.
    this.durable.content.clear();
    for (const d of dirs) {
      const names = readdirSync(d);
      this.durable.names.set(d, new Set(names));
      for (const n of names) this.durable.content.set(join(d, n), readFileSync(join(d, n)));
    }
    return { droppedNames, tornFiles };
  }
}

/** Per 4 KiB block: the old (durable) or the new bytes; the length of either. */
function mixBlocks(old: Buffer, cur: Buffer, rand: (n: number) => number): Buffer {
  const len = rand(2) === 0 ? old.length : cur.length;
  const out = Buffer.alloc(len);
  for (let off = 0; off < len; off += 4096) {
    const src = rand(2) === 0 ? old : cur;
    // Bytes beyond the chosen source's length stay zero (a block allocated but never written out).
    if (off < src.length) src.copy(out, off, off, Math.min(off + 4096, len, src.length));
  }
  return out;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('object store under simulated power loss', () => {
  it('property: after a power cut at a random point, the store holds every acknowledged transaction and every block verifies', async () => {
    const seed = Number(process.env['ASPEN_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    let r = seed % 2147483647 || 1;
    const rand = (n: number): number => {
      r = (r * 48271) % 2147483647;
      return r % n;
    };
    const reproduce = `reproduce: ASPEN_SEED=${seed} npx vitest run osd/test/store/power-loss.test.ts`;
    const { dir, cleanup } = tempDir('aspen-store-power-', memoryBase);
    cleanups.push(cleanup);
    let files!: LossyBlobFiles;
    const durable: DurableState = { content: new Map(), names: new Map() };
    const open = (): SqliteObjectStore =>
      new SqliteObjectStore({
        path: join(dir, 'store'),
        deferredTrimRows: 32,
        reserveBytes: 0,
        blobFiles: (root) => (files = new LossyBlobFiles(root, durable)),
      });
    let store = open();
    await store.mkfs();
    await store.mount();
    const model = new StoreModel();
    const create = new Transaction().createCollection(CRASH_COLL);
    await store.queueTransaction(create);
    model.applyInPlace(create);
    let i = 0;
    let torn = 0;
    let dropped = 0;
    const cuts = Number(process.env['ASPEN_POWER_CUTS'] ?? 12);
    for (let cut = 0; cut < cuts; cut++) {
      const groups = 1 + rand(12);
      for (let g = 0; g < groups; g++) {
        const txs = Array.from({ length: 1 + rand(8) }, () => crashTransaction(seed, i++));
        await Promise.all(txs.map((t) => store.queueTransaction(t)));
        for (const t of txs) model.applyInPlace(t);
      }
      store.abandon();
      const loss = files.powerCut(rand);
      torn += loss.tornFiles;
      dropped += loss.droppedNames;
      store = open();
      await store.mount();
      expect(await storeDigest(store), `${reproduce} (cut ${cut}, after transaction ${i - 1})`).toBe(modelDigest(model));
    }
    await store.umount();
    // The cuts must have destroyed something, or the test proves nothing.
    expect(torn + dropped, reproduce).toBeGreaterThan(0);
  }, 120_000);
});
