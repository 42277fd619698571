/**
 * Process-level tests of erasure-coded pools (issue 5 "It must show"): real monitors and
 * OSDs on loopback, the object client in this process, and an RBD image whose data pool is
 * the EC pool (the RBD Image API in this process, `aspen-rbd` for create).
 *
 * - k=2 m=1 on 3 OSDs: 4K/64K/256K/1M writes at the start of 4 MiB objects, overwrites and
 *   a 512-byte partial overwrite inside a block, writes across RBD object boundaries (8K, 1M),
 *   8/16/32 MiB sequential writes through an RBD image on the EC data pool; on disk every
 *   shard object of a 4 MiB object holds 4 MiB ÷ k bytes; a flipped byte in one shard's data
 *   file is found by deep scrub (inconsistent) and repaired from the other shards; a parity
 *   shard rewritten with valid block checksums is found by the deep scrub's re-encoding and
 *   repaired.
 * - k=4 m=2 on 8 OSDs (two spare, so the shards of 2 lost OSDs have somewhere to go; min_size
 *   4 = k so the PGs stay active with 2 members down): with 2 OSDs killed every object reads
 *   back (decoded from the surviving shards) and new writes succeed; once they are marked out,
 *   recovery/backfill rebuild their shards on the spares and every PG is active+clean again.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { OsdTestCluster, REPO_ROOT, tsNodeArgs, waitFor } from '@aspen/test';
import type { RadosClient } from '@aspen/shared/io/rados.ts';
import { mapObjectToPg, mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { decodeOnode } from '../../src/store/blocks.ts';
import { NO_GEN, collectionName, decodeObjectKey } from '../../src/store/oid.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Image } from '../../../rbd/src/image/image.ts';
import { flipByteOf } from './store-damage.ts';

const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const RBD_ENTRY = join(REPO_ROOT, 'rbd', 'src', 'bin', 'aspen-rbd.ts');
const MiB = 1 << 20;
const KiB = 1024;

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function run(entry: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, tsNodeArgs(entry, args), { cwd: REPO_ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${entry} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** PG states of one pool from `pg dump` (stale rows, reported before `minEpoch`, as 'stale'). */
async function poolStates(c: RadosClient, poolId: number, minEpoch: number): Promise<string[]> {
  const rows = ((await c.mon.command({ prefix: 'pg dump' })).data as { pg_stats: { pgid: string; state: string; reported_epoch: number }[] }).pg_stats;
  return rows.filter((p) => p.pgid.startsWith(`${poolId}.`)).map((p) => (p.reported_epoch >= minEpoch ? p.state : 'stale'));
}

async function waitPool(c: RadosClient, poolId: number, pgNum: number, ok: (s: string) => boolean, timeoutMs: number, what: string): Promise<void> {
  const minEpoch = c.osdMap.epoch;
  let last: string[] = [];
  await waitFor(async () => {
    last = await poolStates(c, poolId, minEpoch);
    return last.length === pgNum && last.every(ok);
  }, { timeoutMs, what, intervalMs: 500 }).catch((err: unknown) => {
    throw new Error(`${String(err)}; states: ${last.join(' ')}`);
  });
}

/** Sizes of the shard objects (head, namespace '') of `poolId` in a store: `<shard>/<name>` → bytes. */
function shardSizes(storeDir: string, poolId: number): Map<string, number> {
  const db = new Database(join(storeDir, 'store.db'), { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const re = new RegExp(`^${poolId}\\.[0-9a-f]+s(\\d+)_head$`);
    const out = new Map<string, number>();
    for (const r of db.prepare('SELECT cid, okey, body FROM onodes').iterate() as IterableIterator<{ cid: string; okey: Buffer; body: Buffer }>) {
      const m = re.exec(r.cid);
      if (m === null) continue;
      const oid = decodeObjectKey(r.okey);
      if (oid.namespace !== '' || oid.snap !== 'head' || oid.generation !== NO_GEN) continue; // heads only (no stashes)
      out.set(`${m[1]}/${oid.name}`, decodeOnode(r.body).sizeBytes);
    }
    return out;
  } finally {
    db.close();
  }
}

async function pgState(c: RadosClient, pgid: string): Promise<string> {
  const rows = ((await c.mon.command({ prefix: 'pg dump' })).data as { pg_stats: { pgid: string; state: string }[] }).pg_stats;
  return rows.find((p) => p.pgid === pgid)?.state ?? 'unknown';
}

describe('erasure-coded pools', () => {
  it('k=2 m=1 on 3 OSDs: writes, overwrites and RBD on an EC data pool read back; shards hold size/k; deep scrub finds and repair mends a flipped byte', async () => {
    cluster = await OsdTestCluster.start({ osds: 3, pool: 'ec', pgNum: 8, erasure: { k: 2, m: 1 } });
    const { client: c, monAddrs, h } = cluster;
    const ecPool = c.pool('ec').id;
    const io = c.ioctx('ec');

    // 4K/64K/256K/1M writes at the start of four 4 MiB objects.
    const models = new Map<string, Uint8Array>();
    const sizes = [4 * KiB, 64 * KiB, 256 * KiB, MiB];
    for (const [i, n] of sizes.entries()) {
      const name = `obj${i}`;
      const model = new Uint8Array(randomBytes(4 * MiB));
      await io.writeFull(name, model);
      const w = randomBytes(n);
      await io.write(name, w, 0);
      model.set(w, 0);
      models.set(name, model);
    }
    for (const [name, model] of models) expect(sha(await io.read(name, 0, 4 * MiB))).toBe(sha(model));
    // Small objects too, and reads of ranges inside stripes.
    for (const n of [1, 1000, 4095, 4097, 12_345]) {
      const b = randomBytes(n);
      await io.writeFull(`small${n}`, b);
      expect(sha(await io.read(`small${n}`))).toBe(sha(b));
    }
    expect(sha(await io.read('obj1', 5000, 7000))).toBe(sha(models.get('obj1')!.subarray(5000, 12_000)));

    // Overwrites, and a 512-byte partial overwrite inside an existing block: the bytes around it stay.
    const m0 = models.get('obj0')!;
    const over = randomBytes(300 * KiB);
    await io.write('obj0', over, 1 * MiB + 123);
    m0.set(over, 1 * MiB + 123);
    const p512 = randomBytes(512);
    await io.write('obj0', p512, 2 * MiB + 4096 + 1000);
    m0.set(p512, 2 * MiB + 4096 + 1000);
    expect(sha(await io.read('obj0', 0, 4 * MiB))).toBe(sha(m0));
    // Truncate down into a stripe and grow again: the cut bytes read as zeros.
    await c.operate('ec', 'obj0', [{ op: 'truncate', size: 3 * MiB + 777 }]);
    m0.fill(0, 3 * MiB + 777);
    await io.write('obj0', p512, 3 * MiB + 2000);
    m0.set(p512, 3 * MiB + 2000);
    expect((await io.stat('obj0')).sizeBytes).toBe(3 * MiB + 2000 + 512);
    expect(sha(await io.read('obj0', 0, 4 * MiB))).toBe(sha(m0.subarray(0, 3 * MiB + 2512)));
    // Omap is refused on EC pools (as Ceph's EOPNOTSUPP).
    await expect(io.omapSet('obj1', new Map([['k', new Uint8Array([1])]]))).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });

    // RBD with the EC pool as data pool: boundary-crossing writes and 8/16/32 MiB sequential writes.
    await c.mon.command({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8, size: 3, min_size: 2 });
    await waitFor(() => { try { c.pool('rbd'); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'pool rbd' });
    await run(RBD_ENTRY, ['-m', monAddrs, '--no-progress', 'create', 'vm', '--size', '64M', '--data-pool', 'ec']);
    const img = await Image.open(c, 'rbd', 'vm');
    try {
      const model = new Uint8Array(64 * MiB);
      const put = async (off: number, n: number): Promise<void> => {
        const b = randomBytes(n);
        await img.write(off, b);
        model.set(b, off);
      };
      await put(4 * MiB - 4 * KiB, 8 * KiB); // across objects 0|1
      await put(8 * MiB - 512 * KiB, MiB); // across objects 1|2
      await put(16 * MiB, 8 * MiB);
      await put(24 * MiB, 16 * MiB);
      await put(24 * MiB + 3, 32 * MiB);
      await img.flush();
      expect(sha(await img.read(0, 64 * MiB))).toBe(sha(model));
    } finally {
      await img.close();
    }
    const rbdData = (await c.ioctx('ec').listObjects()).filter((n) => n.startsWith('rbd_data.'));
    expect(rbdData.length).toBeGreaterThanOrEqual(14);
    expect((await c.ioctx('rbd').listObjects()).filter((n) => n.startsWith('rbd_data.'))).toEqual([]);

    // On disk: every shard object of a 4 MiB object holds 4 MiB / k bytes.
    for (let osd = 0; osd < 3; osd++) {
      const s = shardSizes(join(h.path(`osd.${osd}`), 'store'), ecPool);
      for (const name of ['obj1', 'obj2', 'obj3']) {
        const held = [...s].filter(([key]) => key.endsWith(`/${name}`));
        expect(held.length, `osd.${osd} holds one shard of ${name}`).toBe(1);
        expect(held[0]![1]).toBe(2 * MiB);
      }
    }

    // A flipped byte in a data shard (not the primary's) is found by deep scrub and repaired.
    const victim = randomBytes(256 * KiB);
    await io.writeFull('victim', victim);
    const pgid = mapObjectToPg(c.pool('ec'), 'victim');
    const acting = mapPg(c.osdMap, pgid).acting;
    const shard1 = acting[1]!; // data chunk 1: logical [4096, 8192) of stripe 0 is its bytes [0, 4096)
    await h.stop(`osd.${shard1}`);
    await c.mon.command({ prefix: 'osd down', ids: [shard1] });
    await waitFor(() => c.osdMap.osds.get(shard1)?.up === false, { timeoutMs: 10_000, what: `osd.${shard1} down` });
    flipByteOf(join(h.path(`osd.${shard1}`), 'store'), victim.subarray(4096 + 100, 4096 + 164));
    h.spawn({ name: `osd.${shard1}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${shard1}`), '--mon', monAddrs, '--host', `host${shard1}`]) });
    await waitFor(() => c.osdMap.osds.get(shard1)?.up === true, { timeoutMs: 30_000, what: `osd.${shard1} up again` });
    await waitPool(c, ecPool, 8, (s) => s === 'active+clean', 60_000, 'EC PGs clean after the restart');
    await c.pgCommand('pg deep-scrub', pgid);
    await waitFor(async () => (await pgState(c, pgid)).includes('inconsistent'), { timeoutMs: 30_000, what: `pg ${pgid} inconsistent` });
    expect(sha(await io.read('victim'))).toBe(sha(victim)); // the read skips the bad shard
    await c.pgCommand('pg repair', pgid);
    await waitFor(async () => (await pgState(c, pgid)) === 'active+clean', { timeoutMs: 30_000, what: `pg ${pgid} repaired` });
    await c.pgCommand('pg deep-scrub', pgid);
    await new Promise((r) => setTimeout(r, 2000));
    await waitFor(async () => (await pgState(c, pgid)) === 'active+clean', { timeoutMs: 30_000, what: `pg ${pgid} clean after a second deep scrub` });
    expect(sha(await io.read('victim'))).toBe(sha(victim));

    // A parity shard rewritten with valid block checksums (silent corruption: only the code
    // can tell): deep scrub re-encodes the object from all shards and flags it; repair
    // rewrites the parity from the data (m = 1: the data shards are authoritative).
    const quiet = randomBytes(200 * KiB);
    await io.writeFull('quiet', quiet);
    const qpg = mapObjectToPg(c.pool('ec'), 'quiet');
    const parityOsd = mapPg(c.osdMap, qpg).acting[2]!;
    await h.stop(`osd.${parityOsd}`);
    await c.mon.command({ prefix: 'osd down', ids: [parityOsd] });
    await waitFor(() => c.osdMap.osds.get(parityOsd)?.up === false, { timeoutMs: 10_000, what: `osd.${parityOsd} down` });
    const dir = h.path(`osd.${parityOsd}`);
    const store = new SqliteObjectStore({ path: join(dir, 'store'), fsid: readFileSync(join(dir, 'fsid'), 'utf8').trim() });
    await store.mount();
    const [, seedHex] = qpg.split('.');
    await store.queueTransaction(new Transaction().write(collectionName(ecPool, parseInt(seedHex!, 16), { shard: 2 }), { name: 'quiet' }, 1000, randomBytes(64)));
    await store.umount();
    h.spawn({ name: `osd.${parityOsd}`, args: tsNodeArgs(OSD_ENTRY, ['--data', dir, '--mon', monAddrs, '--host', `host${parityOsd}`]) });
    await waitFor(() => c.osdMap.osds.get(parityOsd)?.up === true, { timeoutMs: 30_000, what: `osd.${parityOsd} up again` });
    await waitPool(c, ecPool, 8, (s) => s === 'active+clean', 60_000, 'EC PGs clean after the restart');
    await c.pgCommand('pg deep-scrub', qpg);
    await waitFor(async () => (await pgState(c, qpg)).includes('inconsistent'), { timeoutMs: 30_000, what: `pg ${qpg} inconsistent (parity)` });
    expect(h.log(`osd.${mapPg(c.osdMap, qpg).actingPrimary}`)).toContain('shards disagree with the parity');
    await c.pgCommand('pg repair', qpg);
    await waitFor(async () => (await pgState(c, qpg)) === 'active+clean', { timeoutMs: 30_000, what: `pg ${qpg} repaired (parity)` });
    expect(sha(await io.read('quiet'))).toBe(sha(quiet));

    // Deleted objects' space comes back: the rollback stashes of the last writes are rolled
    // forward by the idle primaries (no later write needed).
    for (const name of ['obj1', 'obj2', 'obj3', 'quiet', 'victim']) await io.remove(name);
    const stashesOf = (osd: number): number => {
      const db = new Database(join(h.path(`osd.${osd}`), 'store', 'store.db'), { readonly: true, fileMustExist: true, timeout: 5_000 });
      try {
        let n = 0;
        for (const r of db.prepare('SELECT okey FROM onodes').iterate() as IterableIterator<{ okey: Buffer }>) {
          const o = decodeObjectKey(r.okey);
          if (o.generation !== NO_GEN && ['obj1', 'obj2', 'obj3', 'quiet', 'victim'].includes(o.name)) n++;
        }
        return n;
      } finally {
        db.close();
      }
    };
    await waitFor(() => [0, 1, 2].every((o) => stashesOf(o) === 0), { timeoutMs: 20_000, what: 'the stashes of the deleted objects gone' });
  }, 300_000);

  it('k=4 m=2 on 8 OSDs: with 2 OSDs killed everything reads back and writes succeed; marked out, their shards are rebuilt and the pool is active+clean', async () => {
    cluster = await OsdTestCluster.start({ osds: 8, pool: 'ec42', pgNum: 4, erasure: { k: 4, m: 2 }, minSize: 4 });
    const { client: c, h } = cluster;
    const poolId = c.pool('ec42').id;
    const io = c.ioctx('ec42');
    const acked = new Map<string, string>();
    const put = async (name: string, n: number): Promise<void> => {
      const b = randomBytes(n);
      await io.writeFull(name, b);
      acked.set(name, sha(b));
    };
    for (let i = 0; i < 12; i++) await put(`o${i}`, i % 3 === 0 ? 4 * MiB : (i + 1) * 37 * KiB);

    // Kill the holders of two shards of o0's PG (one of them its primary).
    const pgid = mapObjectToPg(c.pool('ec42'), 'o0');
    const acting = mapPg(c.osdMap, pgid).acting;
    const victims = [acting[0]!, acting[3]!];
    for (const v of victims) await h.kill(`osd.${v}`, 'SIGKILL');
    await c.mon.command({ prefix: 'osd down', ids: victims });
    await waitFor(() => victims.every((v) => c.osdMap.osds.get(v)?.up === false), { timeoutMs: 10_000, what: 'victims down' });
    await waitPool(c, poolId, 4, (s) => s.startsWith('active'), 60_000, 'EC PGs active with 2 OSDs down');
    for (const [name, digest] of acked) expect(sha(await io.read(name)), `${name} degraded read`).toBe(digest);
    for (let i = 12; i < 18; i++) await put(`o${i}`, i % 2 === 0 ? 4 * MiB : 100 * KiB);
    await put('o1', 333 * KiB); // overwrite while degraded
    for (const [name, digest] of acked) expect(sha(await io.read(name)), `${name} after degraded writes`).toBe(digest);

    // Marked out: CRUSH picks the spares, which are backfilled with rebuilt shards.
    await c.mon.command({ prefix: 'osd out', ids: victims });
    await waitPool(c, poolId, 4, (s) => s === 'active+clean', 180_000, 'EC PGs active+clean after the victims are out');
    for (const [name, digest] of acked) expect(sha(await io.read(name)), `${name} after recovery`).toBe(digest);
    // Every PG's acting set has 6 live members again.
    for (let seed = 0; seed < 4; seed++) {
      const m = mapPg(c.osdMap, `${poolId}.${seed.toString(16)}`);
      expect(m.acting.filter((o) => o >= 0 && o < 8 && !victims.includes(o)).length).toBe(6);
    }
  }, 420_000);
});
