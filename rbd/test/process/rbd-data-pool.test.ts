/**
 * Process-level test of `--data-pool` (Ceph `rbd create --data-pool`): 3 real monitors and 3
 * real OSDs on loopback, pools `rbd` (images) and `rbd-data` (data) — replicated, then again
 * erasure-coded (k=2 m=1, issue 6's "all of it again on an EC data pool") —, the `aspen-rbd` CLI as a separate
 * process and the Image API in this process. An image with a data pool keeps its header and
 * directory entry in `rbd` and every data object in `rbd-data` (both pools listed); snapshot
 * ids come from `rbd-data`, so snapshots, rollback and export-diff/import-diff keep working;
 * clones with and without their own data pool copy up into their own data pool and read the
 * parent from the parent's; flatten, du, export/import --data-pool; rm removes the data.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OsdTestCluster, REPO_ROOT, tsNodeArgs, waitFor } from '@aspen/test';
import type { RadosClient } from '@aspen/shared/io/rados.ts';
import { Image } from '../../src/image/image.ts';
import { imageHeader } from '../../src/image/admin.ts';
import { cloneImage } from '../../src/image/clone.ts';
import { exportDiff, importDiff } from '../../src/image/diff.ts';

const RBD_ENTRY = join(REPO_ROOT, 'rbd', 'src', 'bin', 'aspen-rbd.ts');
const MiB = 1 << 20;

let cluster: OsdTestCluster | null = null;
const images: Image[] = [];

afterEach(async () => {
  for (const i of images) await i.close().catch(() => undefined);
  images.length = 0;
  await cluster?.teardown();
  cluster = null;
});

interface CliResult { code: number; stdout: string; stderr: string }

function cli(monAddrs: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, '--no-progress', ...args]), { cwd: REPO_ROOT, maxBuffer: 64 * MiB, encoding: 'buffer' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') });
    });
  });
}

const eqBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

async function* chunks(b: Uint8Array): AsyncIterable<Uint8Array> {
  yield b;
}

/** The object numbers of `prefix`'s data objects in `pool`, ascending. */
async function dataObjects(c: RadosClient, pool: string, prefix: string): Promise<number[]> {
  return (await c.ioctx(pool).listObjects()).filter((n) => n.startsWith(`${prefix}.`)).map((n) => Number.parseInt(n.slice(prefix.length + 1), 16)).sort((a, b) => a - b);
}

/** The whole run; `ec`: the data pool is erasure-coded (k=2 m=1) instead of replicated. */
async function dataPoolRun(ec: boolean): Promise<void> {
  cluster = await OsdTestCluster.start({ osds: 3, pool: 'rbd', pgNum: 8 });
  const { client: c, monAddrs, h } = cluster;
  if (ec) {
    await c.mon.command({ prefix: 'osd erasure-code-profile set', name: 'ec21', profile: ['k=2', 'm=1', 'crush-failure-domain=host'] });
    await c.mon.command({ prefix: 'osd pool create', pool: 'rbd-data', pg_num: 8, pool_type: 'erasure', erasure_code_profile: 'ec21' });
  } else await c.mon.command({ prefix: 'osd pool create', pool: 'rbd-data', pg_num: 8, size: 3, min_size: 2 });
  await waitFor(() => { try { c.pool('rbd-data'); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the data pool in the map' });
  await waitFor(async () => {
    const rows = ((await c.mon.command({ prefix: 'pg dump' })).data as { pg_stats: { state: string }[] }).pg_stats;
    return rows.length === 16 && rows.every((p) => p.state === 'active+clean');
  }, { timeoutMs: 30_000, what: 'every PG of both pools active+clean', intervalMs: 300 });
  const rbdPoolId = c.pool('rbd').id;
  const dataPoolId = c.pool('rbd-data').id;

  const rbd = (...args: string[]): Promise<CliResult> => cli(monAddrs, args);
  const ok = async (...args: string[]): Promise<string> => {
    const r = await rbd(...args);
    if (r.code !== 0) throw new Error(`aspen-rbd ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const open = async (name: string, o: { snapName?: string; exclusive?: boolean } = {}): Promise<Image> => {
    const i = await Image.open(c, 'rbd', name, o);
    images.push(i);
    return i;
  };
  const readAll = async (name: string, snapName?: string): Promise<Uint8Array> => {
    const i = await Image.open(c, 'rbd', name, snapName === undefined ? { exclusive: false } : { snapName, exclusive: false });
    try {
      return await i.read(0, i.sizeBytes);
    } finally {
      await i.close();
    }
  };
  const rbdDataObjectsIn = async (pool: string): Promise<string[]> => (await c.ioctx(pool).listObjects()).filter((n) => n.startsWith('rbd_data.')).sort();

  // create --data-pool: header in rbd, data-pool feature, data_pool in info.
  expect((await rbd('create', 'bad', '--size', '1M', '--data-pool', 'nope')).code).toBe(2); // ENOENT: no such pool
  await ok('create', 'img', '--size', '8M', '--object-size', '1M', '--data-pool', 'rbd-data');
  const hdr = await imageHeader(c, 'rbd', 'img');
  expect(hdr.dataPoolId).toBe(dataPoolId);
  const prefix = `rbd_data.${rbdPoolId}.${hdr.id}`;
  expect(hdr.objectPrefix).toBe(prefix);
  const plain = await ok('info', 'img');
  expect(plain).toContain('\tdata_pool: rbd-data\n');
  expect(plain).toMatch(/features: .*data-pool/);
  const info = JSON.parse(await ok('-f', 'json', 'info', 'img')) as { data_pool: string; block_name_prefix: string; features: string[] };
  expect(info.data_pool).toBe('rbd-data');
  expect(info.block_name_prefix).toBe(prefix);
  expect(info.features).toContain('data-pool');
  expect((await c.ioctx('rbd').listObjects()).sort()).toEqual(['rbd_directory', `rbd_header.${hdr.id}`]);

  // Writes land only in the data pool; reads come back.
  const modelA = new Uint8Array(8 * MiB);
  const w = await open('img');
  for (const [off, len] of [[0, 3 * MiB + 500], [6 * MiB + 4096, 8192]] as const) {
    const d = randomBytes(len);
    await w.write(off, d);
    modelA.set(d, off);
  }
  expect(w.dataPoolName).toBe('rbd-data');
  expect(await dataObjects(c, 'rbd-data', prefix)).toEqual([0, 1, 2, 3, 6]);
  expect(await rbdDataObjectsIn('rbd')).toEqual([]);
  expect(eqBytes(await w.read(0, 8 * MiB), modelA)).toBe(true);

  // Snapshot ids come from the data pool, and the data pool's OSDs keep the snapshot's data.
  const seqs = (): [number, number] => [c.pool('rbd').snapSeq, c.pool('rbd-data').snapSeq];
  const before = seqs();
  const s1 = await w.snapCreate('s1');
  expect(seqs()).toEqual([before[0], before[1] + 1]);
  expect(s1.id).toBe(BigInt(before[1] + 1));
  const modelB = modelA.slice();
  const b1 = randomBytes(MiB);
  await w.write(MiB / 2, b1); // overwrites objects 0-1
  modelB.set(b1, MiB / 2);
  await w.write(4 * MiB, new Uint8Array(4096).fill(7)); // a new object 4
  modelB.fill(7, 4 * MiB, 4 * MiB + 4096);
  await w.discard(6 * MiB, MiB); // removes object 6
  modelB.fill(0, 6 * MiB, 7 * MiB);
  expect(await dataObjects(c, 'rbd-data', prefix)).toEqual([0, 1, 2, 3, 4]);
  await w.snapCreate('s2');
  expect(eqBytes(await readAll('img', 's1'), modelA)).toBe(true);
  expect(eqBytes(await readAll('img'), modelB)).toBe(true);

  // export-diff s1 (full) and s1→s2 (CLI), imported into a copy with its own data pool.
  const full = join(h.dir, 's1.diff');
  const incr = join(h.dir, 's1-s2.diff');
  await ok('export-diff', 'img@s1', full);
  await ok('export-diff', '--from-snap', 's1', 'img@s2', incr);
  await ok('create', 'copy', '--size', '1M', '--object-size', '1M', '--data-pool', 'rbd-data');
  await importDiff(c, 'rbd', 'copy', chunks(readFileSync(full)), { nowMs: 0 });
  await importDiff(c, 'rbd', 'copy', chunks(readFileSync(incr)), { nowMs: 0 });
  expect(eqBytes(await readAll('copy', 's1'), modelA)).toBe(true);
  expect(eqBytes(await readAll('copy', 's2'), modelB)).toBe(true);
  const copyHdr = await imageHeader(c, 'rbd', 'copy');
  expect(await dataObjects(c, 'rbd-data', copyHdr.objectPrefix)).toEqual([0, 1, 2, 3, 4, 6]); // the `z` record zeroes part of object 6, it is not removed
  let diffBytes = 0;
  await exportDiff(c, 'rbd', 'copy', { fromSnap: 's1', toSnap: 's2' }, async (b) => { diffBytes += b.length; });
  expect(diffBytes).toBe(readFileSync(incr).length); // same changes from the copy

  // Rollback (CLI, needs the lock): the head is s1 again, object 4 is gone, 6 is back.
  await w.close();
  await ok('snap', 'rollback', 'img@s1');
  expect(eqBytes(await readAll('img'), modelA)).toBe(true);
  expect(await dataObjects(c, 'rbd-data', prefix)).toEqual([0, 1, 2, 3, 6]);
  expect(eqBytes(await readAll('img', 's2'), modelB)).toBe(true);

  // Clones of s1: one with the data pool (CLI), one without (API). Each copies up into its
  // own data pool and reads the rest from the parent's.
  await ok('snap', 'protect', 'img@s1');
  await ok('clone', 'img@s1', 'kid-dp', '--data-pool', 'rbd-data');
  await cloneImage(c, { parentPool: 'rbd', parentImage: 'img', parentSnap: 's1', childPool: 'rbd', childImage: 'kid', childId: 'c0ffee0001' });
  const dpHdr = await imageHeader(c, 'rbd', 'kid-dp');
  const kidHdr = await imageHeader(c, 'rbd', 'kid');
  expect(dpHdr.dataPoolId).toBe(dataPoolId);
  expect(kidHdr.dataPoolId).toBeNull();
  expect(kidHdr.objectPrefix).toBe('rbd_data.c0ffee0001');
  const kidModels = new Map<string, Uint8Array>();
  for (const name of ['kid-dp', 'kid']) {
    const k = await open(name);
    expect(eqBytes(await k.read(0, 8 * MiB), modelA)).toBe(true);
    const m = modelA.slice();
    const d = randomBytes(100);
    await k.write(MiB + 10, d); // copy-up of object 1
    m.set(d, MiB + 10);
    await k.discard(2 * MiB, MiB); // object 2 becomes an empty object (the parent must not show)
    m.fill(0, 2 * MiB, 3 * MiB);
    expect(eqBytes(await k.read(0, 8 * MiB), m)).toBe(true);
    kidModels.set(name, m);
    await k.close();
  }
  expect(await dataObjects(c, 'rbd-data', dpHdr.objectPrefix)).toEqual([1, 2]);
  expect(await dataObjects(c, 'rbd', 'rbd_data.c0ffee0001')).toEqual([1, 2]);
  expect(await rbdDataObjectsIn('rbd')).toEqual(['rbd_data.c0ffee0001.0000000000000001', 'rbd_data.c0ffee0001.0000000000000002']);
  expect(eqBytes(await readAll('img', 's1'), modelA)).toBe(true); // the parent is untouched

  // A snapshot of the data-pool clone takes its id from rbd-data; then flatten (CLI).
  const kd = await open('kid-dp');
  const ks = await kd.snapCreate('k1');
  expect(ks.id).toBe(BigInt(c.pool('rbd-data').snapSeq));
  await kd.snapRemove('k1');
  await kd.close();
  await ok('flatten', 'kid-dp');
  expect((await imageHeader(c, 'rbd', 'kid-dp')).parent).toBeNull();
  expect(await dataObjects(c, 'rbd-data', dpHdr.objectPrefix)).toEqual([0, 1, 2, 3, 6]);
  expect(eqBytes(await readAll('kid-dp'), kidModels.get('kid-dp')!)).toBe(true);

  // du counts the data pool's objects; shrinking removes data objects from the data pool.
  const du = JSON.parse(await ok('-f', 'json', 'du', 'kid-dp')) as { images: { used_size: number }[] };
  expect(du.images[0]!.used_size).toBe(2 * MiB + 500 + 4096 + 8192); // objects 0, 1 full, 2 empty, 3 and 6 partial
  const kr = await open('kid-dp');
  await kr.resize(2 * MiB + 4096, { allowShrink: true });
  await kr.close();
  expect(await dataObjects(c, 'rbd-data', dpHdr.objectPrefix)).toEqual([0, 1, 2]);

  // export (whole image) and import --data-pool.
  const exp = join(h.dir, 'img.raw');
  await ok('export', 'img@s2', exp);
  expect(eqBytes(readFileSync(exp), modelB)).toBe(true);
  writeFileSync(join(h.dir, 'small.raw'), Buffer.concat([Buffer.alloc(MiB), Buffer.alloc(4096, 9)]));
  await ok('import', join(h.dir, 'small.raw'), 'imp', '--data-pool', 'rbd-data');
  const impHdr = await imageHeader(c, 'rbd', 'imp');
  expect(impHdr.dataPoolId).toBe(dataPoolId);
  expect(await dataObjects(c, 'rbd-data', impHdr.objectPrefix)).toEqual([0]); // 4 MiB objects: the zeros are not written, the 9s are
  expect(eqBytes(await readAll('imp'), Buffer.concat([Buffer.alloc(MiB), Buffer.alloc(4096, 9)]))).toBe(true);

  // rm removes each image's data objects from its data pool; snapshot ids go back to rbd-data.
  expect((await rbd('rm', 'img')).code).toBe(39); // ENOTEMPTY: snapshots
  for (const name of ['kid-dp', 'kid', 'imp']) await ok('rm', name);
  await ok('snap', 'unprotect', 'img@s1');
  for (const s of ['s1', 's2']) await ok('snap', 'rm', `img@${s}`);
  expect(c.pool('rbd-data').removedSnaps.length).toBeGreaterThan(0);
  expect(c.pool('rbd').removedSnaps).toEqual([]);
  await ok('rm', 'img');
  const copy = await open('copy', { exclusive: false });
  for (const s of ['s1', 's2']) await copy.snapRemove(s);
  await copy.close();
  await ok('rm', 'copy');
  expect(await rbdDataObjectsIn('rbd-data')).toEqual([]);
  expect(await rbdDataObjectsIn('rbd')).toEqual([]);
  expect((await c.ioctx('rbd').listObjects()).filter((n) => !['rbd_directory', 'rbd_children'].includes(n))).toEqual([]);
}

describe('aspen-rbd --data-pool (3 mons + 3 OSDs)', () => {
  it('keeps data objects in the data pool through writes, snapshots, rollback, clones, flatten, diffs, import and rm (replicated data pool)', async () => {
    await dataPoolRun(false);
  }, 150_000);
  it('all of it again with an erasure-coded data pool (k=2 m=1)', async () => {
    await dataPoolRun(true);
  }, 180_000);
});
