/**
 * Process-level fault injection: a writer process (crash-writer.ts) runs a random workload of
 * transactions against a store on the real disk and prints each acknowledged one; this test
 * kill -9s it at random moments (also while it mounts and replays its journal), remounts, and
 * checks that the store equals the model after a prefix of the issued transactions that
 * contains every acknowledged one — data (by crc32c of every byte), sizes, xattrs, omap and
 * headers of every object and snapshot clone — and that every block passes its checksum (no
 * torn data). A failure prints `reproduce: ASPEN_SEED=<n>`.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { CRASH_COLL, crashTransaction, modelDigest, storeDigest } from './crash-workload.ts';
import { tempDir } from './helpers.ts';
import { StoreModel } from './model.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const { dir, cleanup } = tempDir('aspen-store-crash-');
afterAll(() => {
  if (process.env['ASPEN_KEEP_TEST_DIR'] !== '1') cleanup();
});

interface RoundResult {
  issued: number; // transactions issued: 0..issued-1
  acked: number; // every i < acked was acknowledged
  signal: string | null;
  code: number | null;
  output: string;
}

async function runRound(path: string, seed: number, killAfterReadyMs: number | null, killAfterSpawnMs: number): Promise<RoundResult> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'crash-writer.ts'), path, String(seed), '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const res: RoundResult = { issued: 0, acked: 0, signal: null, code: null, output: '' };
  const acks = new Set<number>();
  let buf = '';
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const [what, n] = line.split(' ');
      if (what === 'ready') ready();
      else if (what === 'issued') res.issued = Math.max(res.issued, Number(n) + 1);
      else if (what === 'ack') {
        acks.add(Number(n));
        while (acks.has(res.acked)) res.acked++;
      } else res.output += `${line}\n`;
    }
  });
  proc.stderr.on('data', (d: Buffer) => (res.output += d.toString()));
  const exited = new Promise<void>((r) =>
    proc.on('exit', (code, signal) => {
      res.code = code;
      res.signal = signal;
      r();
    }),
  );
  try {
    if (killAfterReadyMs === null) {
      await Promise.race([new Promise((r) => setTimeout(r, killAfterSpawnMs)), exited]);
    } else {
      await Promise.race([readyP, exited]);
      await Promise.race([new Promise((r) => setTimeout(r, killAfterReadyMs)), exited]);
    }
  } finally {
    // Always by its pid, also when a wait above failed: never leave a writer running.
    proc.kill('SIGKILL');
  }
  await exited;
  return res;
}

describe('object store crash safety (process kill -9)', () => {
  it('keeps every acknowledged transaction and never shows torn data across ~20 random kill -9s', async () => {
    const seed = Number(process.env['ASPEN_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    const reproduce = `reproduce: ASPEN_SEED=${seed} npx vitest run osd/test/store/crash.test.ts`;
    let rnd = seed % 2147483647 || 1;
    const rand = (n: number): number => {
      rnd = (rnd * 48271) % 2147483647;
      return rnd % n;
    };
    const path = join(dir, 'store');
    const setup = new SqliteObjectStore({ path, reserveBytes: 1 << 20 });
    await setup.mkfs();
    await setup.mount();
    const create = new Transaction().createCollection(CRASH_COLL);
    await setup.queueTransaction(create);
    await setup.umount();
    const model = new StoreModel();
    model.applyInPlace(create);

    const rounds = Number(process.env['ASPEN_CRASH_ROUNDS'] ?? 20);
    const started = Date.now();
    let totalAcked = 0;
    let uncommittedSeen = 0;
    for (let round = 0; round < rounds && Date.now() - started < 50_000; round++) {
      const roundSeed = (seed + round * 1_000_003) >>> 0;
      const earlyKill = rand(5) === 0;
      const res = await runRound(path, roundSeed, earlyKill ? null : rand(700), 100 + rand(600));
      const ctx = `${reproduce} (round ${round}, issued ${res.issued}, acked ${res.acked})`;
      expect(res.signal, `${ctx}: the writer must die by SIGKILL, output: ${res.output}`).toBe('SIGKILL');
      expect(res.output, ctx).toBe('');
      totalAcked += res.acked;

      const store = new SqliteObjectStore({ path, reserveBytes: 1 << 20 });
      await store.mount();
      try {
        let actual: string;
        try {
          actual = await storeDigest(store);
        } catch (err) {
          expect.fail(`${ctx}: reading the store after the crash failed: ${String(err)}`);
        }
        // Find the prefix: all acknowledged transactions, plus possibly some issued after them.
        for (let i = 0; i < res.acked; i++) model.applyInPlace(crashTransaction(roundSeed, i));
        let n = res.acked;
        let expected = modelDigest(model);
        while (actual !== expected && n < res.issued) {
          model.applyInPlace(crashTransaction(roundSeed, n));
          n++;
          expected = modelDigest(model);
        }
        if (actual !== expected) {
          // Show the difference against the acknowledged prefix for diagnosis.
          const a = actual.split('\n');
          const e = expected.split('\n');
          const firstDiff = a.findIndex((line, k) => line !== e[k]);
          expect.fail(`${ctx}: store matches no prefix of the issued transactions; first differing line ${firstDiff}: store "${a[firstDiff]}" vs model "${e[firstDiff]}"`);
        }
        uncommittedSeen += n - res.acked;
      } finally {
        await store.umount();
      }
    }
    expect(totalAcked, reproduce).toBeGreaterThan(50);
    // Not asserted, but shown: how many unacknowledged transactions turned out committed.
    console.log(`crash test: seed ${seed}, ${totalAcked} acknowledged transactions checked; ${uncommittedSeen} committed-but-unacknowledged`);
  }, 120_000);
});
