/**
 * Process-level test of self-managed snapshots (librados selfmanaged_snap_* over Ceph's
 * PrimaryLogPG make_writeable / find_object_context / snap trimmer): 3 real monitors and 4
 * real OSDs on loopback, a replicated pool (size 3, pg_num 8). A write after
 * `selfmanagedSnapCreate` under the new snap context keeps the old data readable at the snap;
 * a removed object stays readable at the snap (whiteout head). One replica is `kill -9`ed and
 * marked out: the PG is backfilled onto the fourth OSD, clones included. Removing the snap
 * (`selfmanagedSnapRemove`) makes the primaries trim the clones on every copy.
 *
 * How clones are checked on disk: each OSD's store metadata (SQLite, `onodes` table) is read
 * through a separate read-only connection while the daemons run (WAL readers see committed
 * transactions only and never block the writer), and object keys are decoded to find the
 * store objects with `snap !== 'head'` in the pool's PG collections.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MonCluster, ProcessHarness, REPO_ROOT, tsNodeArgs, waitFor } from '@aspen/test';
import { AspenError } from '@aspen/shared';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { mapObjectToPg, mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { decodeObjectKey } from '../../src/store/oid.ts';

const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const OSDS = 4;
const PG_NUM = 8;
const POOL = 'snaps';

let harness: ProcessHarness | null = null;
let mons: MonCluster | null = null;
let client: RadosClient | null = null;

afterEach(async () => {
  await client?.close();
  mons?.close();
  await harness?.teardown();
  client = null;
  mons = null;
  harness = null;
});

const te = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Store objects of pool `poolId` in the store of osd `dir` as `name@snap` (heads as `name@head`), sorted. */
function storeObjects(dir: string, poolId: number): string[] {
  const db = new Database(join(dir, 'store', 'store.db'), { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const re = new RegExp(`^${poolId}\\.[0-9a-f]+_head$`);
    const out: string[] = [];
    for (const r of db.prepare('SELECT cid, okey FROM onodes').iterate() as IterableIterator<{ cid: string; okey: Buffer }>) {
      if (!re.test(r.cid)) continue;
      const oid = decodeObjectKey(r.okey);
      if (oid.namespace !== '') continue; // the PG meta object
      out.push(`${oid.name}@${String(oid.snap)}`);
    }
    return out.sort();
  } finally {
    db.close();
  }
}

async function pgStates(c: RadosClient, minEpoch: number): Promise<string[]> {
  const r = await c.mon.command({ prefix: 'pg dump' });
  const rows = (r.data as { pg_stats: { pgid: string; state: string; reported_epoch: number }[] }).pg_stats;
  return rows.map((p) => (p.reported_epoch >= minEpoch ? p.state : 'stale'));
}

async function waitAllClean(c: RadosClient, timeoutMs: number): Promise<void> {
  const minEpoch = c.osdMap.epoch;
  let last: string[] = [];
  await waitFor(async () => {
    last = await pgStates(c, minEpoch);
    return last.length === PG_NUM && last.every((s) => s === 'active+clean');
  }, { timeoutMs, what: 'every PG active+clean', intervalMs: 500 }).catch((err: unknown) => {
    throw new Error(`${String(err)}; states: ${last.join(' ')}`);
  });
}

async function codeOf(p: Promise<unknown>): Promise<string | 0> {
  try {
    await p;
    return 0;
  } catch (err) {
    if (err instanceof AspenError) return err.code;
    throw err;
  }
}

describe('self-managed snapshots (3 mons + 4 OSDs)', () => {
  it('keeps old data readable at a snap, carries clones through backfill, and trims them on every copy once the snap is removed', async () => {
    harness = new ProcessHarness();
    const h = harness;
    mons = await MonCluster.start(h, { count: 3 });
    await mons.leader();
    const monAddrs = [...mons.addrs.values()].join(',');
    for (let i = 0; i < OSDS; i++) {
      const p = h.spawn({ name: `mkfs.osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', h.path(`osd.${i}`), '--mon', monAddrs, '--id', String(i)]) });
      if ((await p.exited).code !== 0) throw new Error(`mkfs of osd.${i} failed: ${h.log(`mkfs.osd.${i}`)}`);
    }
    for (let i = 0; i < OSDS; i++) h.spawn({ name: `osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${i}`), '--mon', monAddrs, '--host', `host${i}`]) });
    client = await RadosClient.connect({ monAddrs: [...mons.addrs.values()], opTimeoutMs: 60_000 });
    const c = client;
    await waitFor(() => [...c.osdMap.osds.values()].filter((o) => o.up).length === OSDS, { timeoutMs: 30_000, what: 'OSDs up' });
    await c.mon.command({ prefix: 'osd pool create', pool: POOL, pg_num: PG_NUM, size: 3, min_size: 2 });
    await waitFor(() => { try { c.pool(POOL); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the pool in the map' });
    await waitAllClean(c, 30_000);
    const poolId = c.pool(POOL).id;
    const io = c.ioctx(POOL);

    await io.writeFull('a', te('a-old'));
    await io.writeFull('b', te('b-old'));
    await io.writeFull('c', te('c-only-head'));

    // Snap 1, then writes under the new snap context: `a` overwritten, `b` removed.
    const snap = await c.selfmanagedSnapCreate(POOL);
    io.setSelfmanagedSnapWrite(snap, [snap]);
    await io.writeFull('a', te('a-new'));
    await io.append('a', te('+')); // same context: no second clone
    await io.remove('b');
    expect(text(await io.read('a'))).toBe('a-new+');
    expect(text(await io.readAt('a', snap))).toBe('a-old');
    expect(await codeOf(io.read('b'))).toBe('ENOENT');
    expect(text(await io.readAt('b', snap))).toBe('b-old');
    expect(text(await io.readAt('c', snap))).toBe('c-only-head'); // never written since: the head serves the snap
    expect((await io.listObjects()).sort()).toEqual(['a', 'c']); // the whiteout is not listed
    expect(await codeOf(io.operate('a', [{ op: 'writefull', data: te('x') }], { snapId: snap }).then((r) => { if (r.code !== 0) throw new AspenError(r.code as 'EINVAL', r.message); }))).toBe('EINVAL');

    // Every acting copy of a's and b's PGs holds exactly their clone.
    const snapTag = String(snap);
    const actingOf = (obj: string): readonly number[] => mapPg(c.osdMap, mapObjectToPg(c.pool(POOL), obj)).acting;
    for (const obj of ['a', 'b']) {
      for (const osd of actingOf(obj)) expect(storeObjects(h.path(`osd.${osd}`), poolId).filter((o) => o.startsWith(`${obj}@`))).toEqual([`${obj}@${snapTag}`, `${obj}@head`]);
    }

    // kill -9 a replica of a's PG and mark it out: the PG is backfilled onto the spare OSD,
    // clones included (the whole-object state pushed carries them).
    const aActing = actingOf('a');
    const victim = aActing.find((o) => o !== mapPg(c.osdMap, mapObjectToPg(c.pool(POOL), 'a')).actingPrimary)!;
    await h.kill(`osd.${victim}`, 'SIGKILL');
    await c.mon.command({ prefix: 'osd down', ids: [victim] });
    await c.mon.command({ prefix: 'osd out', ids: [victim] });
    await waitFor(() => c.osdMap.osds.get(victim)?.weight === 0 && c.osdMap.osds.get(victim)?.up === false, { timeoutMs: 15_000, what: `osd.${victim} down and out` });
    await waitAllClean(c, 60_000);
    const newActing = actingOf('a');
    expect(newActing).not.toContain(victim);
    for (const obj of ['a', 'b']) {
      for (const osd of actingOf(obj)) expect(storeObjects(h.path(`osd.${osd}`), poolId).filter((o) => o.startsWith(`${obj}@`))).toEqual([`${obj}@${snapTag}`, `${obj}@head`]);
    }
    expect(text(await io.readAt('a', snap))).toBe('a-old');
    expect(text(await io.readAt('b', snap))).toBe('b-old');

    // Removing the snap: the primaries trim — no clone left on any live OSD, the whiteout gone.
    await c.selfmanagedSnapRemove(POOL, snap);
    const live = Array.from({ length: OSDS }, (_, i) => i).filter((i) => i !== victim);
    let seen: string[] = [];
    await waitFor(() => {
      seen = live.flatMap((i) => storeObjects(h.path(`osd.${i}`), poolId).map((o) => `osd.${i}:${o}`));
      return seen.every((o) => o.endsWith('@head')) && !seen.some((o) => o.includes(':b@'));
    }, { timeoutMs: 30_000, what: 'clones trimmed on every OSD', intervalMs: 300 }).catch((err: unknown) => {
      throw new Error(`${String(err)}; store objects: ${seen.join(' ')}`);
    });
    expect(await codeOf(io.readAt('a', snap))).toBe('ENOENT');
    expect(await codeOf(io.readAt('b', snap))).toBe('ENOENT');
    expect(text(await io.read('a'))).toBe('a-new+');
    // Every live copy of a and c is still there (3 each).
    expect(seen.filter((o) => o.endsWith(':a@head')).length).toBe(3);
    expect(seen.filter((o) => o.endsWith(':c@head')).length).toBe(3);
  }, 150_000);
});
