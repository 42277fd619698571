/**
 * Full-device behaviour on a real 8 MiB tmpfs (needs root to mount; skipped otherwise): ENOSPC
 * from the filesystem and the `fullRatio` threshold give AspenError ENOSPC, the store stays
 * mounted and consistent, reports full, still serves reads and deletes, and accepts writes again
 * once space is freed. Every acknowledged object reads back intact after a remount.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared/errors.ts';
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';

const C = '2.0_head';

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = mkdtempSync(join(tmpdir(), 'aspen-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d], { stdio: 'ignore' });
    execFileSync('umount', [d], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

const haveTmpfs = canMountTmpfs();

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 31 + i * 7 + (i >> 9)) & 255;
  return b;
}

async function outcome(p: Promise<unknown>): Promise<AspenError | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof AspenError) return err;
    throw err;
  }
}

let mnt: string;
const opened: SqliteObjectStore[] = [];
function openStore(path: string, fullRatio: number, inlineMaxBytes?: number): SqliteObjectStore {
  const s = new SqliteObjectStore({ path, fullRatio, ...(inlineMaxBytes === undefined ? {} : { inlineMaxBytes }) });
  opened.push(s);
  return s;
}
beforeEach(() => {
  if (!haveTmpfs) return;
  mnt = mkdtempSync(join(tmpdir(), 'aspen-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  mkdirSync(join(mnt, 'osd'));
});
afterEach(async () => {
  if (!haveTmpfs) return;
  for (const s of opened.splice(0)) await s.umount().catch(() => undefined);
  try {
    execFileSync('umount', [mnt]);
  } catch {
    execFileSync('umount', ['-l', mnt]);
  }
  rmSync(mnt, { recursive: true, force: true });
});

async function fillUntilError(store: SqliteObjectStore, sizeBytes: number, prefix: string, acked: Map<string, Uint8Array>): Promise<AspenError> {
  for (let i = 0; i < 1000; i++) {
    const name = `${prefix}.${i}`;
    const data = pattern(sizeBytes, i + prefix.length);
    const r = await outcome(store.queueTransaction(new Transaction().write(C, { name }, 0, data).setattr(C, { name }, '_', data.subarray(0, 16))));
    if (r !== 'ok') return r;
    acked.set(name, data);
  }
  throw new Error('the device never filled up');
}

async function checkAll(store: SqliteObjectStore, acked: Map<string, Uint8Array>): Promise<void> {
  const listed = await store.listObjects(C, undefined, 10_000);
  expect(listed.objects.map((o) => o.name).sort()).toEqual([...acked.keys()].sort());
  for (const [name, data] of acked) {
    expect(Buffer.from(await store.read(C, { name }, 0, data.length)).equals(Buffer.from(data)), name).toBe(true);
    expect((await store.verify(C, { name })).ok, name).toBe(true);
  }
}

describe.skipIf(!haveTmpfs)('full device (8 MiB tmpfs)', () => {
  // Deferred: 6000-byte objects in files (inline blobs off). Inline: the same objects in the
  // database, whose deletes must give the space back to the filesystem (incremental vacuum).
  for (const [label, size, inlineMaxBytes] of [
    ['copy-on-write', 512 * 1024, undefined],
    ['deferred', 6000, 0],
    ['inline', 6000, undefined],
  ] as const) {
    it(`ENOSPC from the filesystem (${label} writes): clear error, store stays mounted and consistent, reports full, reads and deletes work, writes resume after freeing`, async () => {
      const path = join(mnt, 'osd', 'store');
      const store = openStore(path, 1, inlineMaxBytes);
      await store.mkfs();
      await store.mount();
      await store.queueTransaction(new Transaction().createCollection(C));
      const acked = new Map<string, Uint8Array>();
      const err = await fillUntilError(store, size, 'obj', acked);
      expect(store.stats().inlineBlobs > 0).toBe(label === 'inline');
      expect(err.code).toBe('ENOSPC');
      expect(err.message).toMatch(/space|full/i);
      expect(acked.size).toBeGreaterThan(3);
      expect(store.isFull()).toBe(true);
      expect(store.usage().full).toBe(true);
      // Writes are refused while full; reads work.
      const again = await outcome(store.queueTransaction(new Transaction().write(C, { name: 'more' }, 0, pattern(100, 1))));
      expect(again !== 'ok' && again.code).toBe('ENOSPC');
      await checkAll(store, acked);
      // Deletes work while full and clear the state.
      const victims = [...acked.keys()].slice(0, Math.ceil(acked.size / 2));
      const del = new Transaction();
      for (const v of victims) del.remove(C, { name: v });
      expect(await outcome(store.queueTransaction(del))).toBe('ok');
      for (const v of victims) acked.delete(v);
      expect(store.isFull()).toBe(false);
      // The space came back to the filesystem, not only to the database's free list.
      expect(store.statfs().availBytes).toBeGreaterThan(1024 * 1024);
      const data = pattern(size, 99);
      expect(await outcome(store.queueTransaction(new Transaction().write(C, { name: 'after' }, 0, data).setattr(C, { name: 'after' }, '_', data.subarray(0, 16))))).toBe('ok');
      acked.set('after', data);
      await checkAll(store, acked);
      await store.umount();
      await store.mount();
      await checkAll(store, acked);
      await store.umount();
    });
  }

  it('one write larger than the free space fails with ENOSPC but does not make a roomy store full', async () => {
    const path = join(mnt, 'osd', 'store');
    const store = openStore(path, 1);
    await store.mkfs();
    await store.mount();
    await store.queueTransaction(new Transaction().createCollection(C).write(C, { name: 'a' }, 0, pattern(1000, 1)));
    const huge = await outcome(store.queueTransaction(new Transaction().write(C, { name: 'huge' }, 0, pattern(12 * 1024 * 1024, 2))));
    expect(huge !== 'ok' && huge.code).toBe('ENOSPC');
    expect(await store.exists(C, { name: 'huge' })).toBe(false);
    expect(store.isFull()).toBe(false);
    expect(await outcome(store.queueTransaction(new Transaction().write(C, { name: 'b' }, 0, pattern(100_000, 3))))).toBe('ok');
    expect(Buffer.from(await store.read(C, { name: 'a' }, 0, 1000)).equals(Buffer.from(pattern(1000, 1)))).toBe(true);
    await store.umount();
  });

  it('fullRatio: refuses allocating transactions with ENOSPC at the threshold, reports full, lets deletes through', async () => {
    const path = join(mnt, 'osd', 'store');
    const store = openStore(path, 0.5);
    await store.mkfs();
    await store.mount();
    await store.queueTransaction(new Transaction().createCollection(C));
    const acked = new Map<string, Uint8Array>();
    const err = await fillUntilError(store, 256 * 1024, 'obj', acked);
    expect(err.code).toBe('ENOSPC');
    expect(err.details).toMatchObject({ full: true });
    const u = store.usage();
    expect(u.full).toBe(true);
    expect(u.usedBytes / u.totalBytes).toBeGreaterThanOrEqual(0.5);
    expect(u.usedBytes / u.totalBytes).toBeLessThan(0.8);
    await checkAll(store, acked);
    const first = [...acked.keys()][0]!;
    expect(await outcome(store.queueTransaction(new Transaction().remove(C, { name: first }).omapClear(C, { name: [...acked.keys()][1]! })))).toBe('ok');
    acked.delete(first);
    await checkAll(store, acked);
    await store.umount();
  });
});
