/**
 * Process-level test of issue 4's "It must show", at scale: 3 real monitors and 4 real
 * `aspen-osd` processes (each under its own CRUSH host, `--host hostN`) on loopback, a
 * replicated pool `scale` (size 3, min_size 2, pg_num 32), the object client at concurrency 16.
 *
 * Workload (deterministic: seed `ASPEN_SCALE_SEED`, default 1; object data is an AES-128-CTR
 * keystream of the seed and the object's index): N objects (`ASPEN_SCALE_OBJECTS`, default
 * 10,000), each written by ONE compound op (atomic: acknowledged means all of it applied):
 * - size: 2% "large", uniform in 1–4 MiB; the rest log-uniform in 1 B … 64 KiB (median
 *   ~256 B, mean ~5.9 KiB; ~6% are exactly 1 B). Expected total for N = 10,000: ~0.65 GiB
 *   (≈ 500 MiB of large objects, ≈ 60 MiB of small ones, ≈ 120 MiB of holes).
 * - 10% of the small ones are written with `write` at a random offset 1 B … 256 KiB into a
 *   new object, leaving a hole that must read back as zeros; the rest with `writefull`;
 * - independently, 10% get 1–4 xattrs (0–200 B values) and 10% get 1–64 omap entries
 *   (0–1,024 B values) in the same op.
 *
 * Phases (each prints its wall time):
 * 1. write all; when half of the ops have completed, `kill -9` osd.3 (not marked out) and
 *    keep writing. The sha256 of every ACKNOWLEDGED object is recorded; an op that failed
 *    may or may not have applied and is never checked (at most one per writer may fail).
 * 2. read every acknowledged object back (data, xattrs, omap in one compound read).
 * 3. `osd out` osd.3 → every PG active+clean → the on-disk census (below) over osd.0–2.
 * 4. restart osd.3, `osd in` → active+clean → census over osd.0–3, read-back.
 * 5. add osd.4 (mkfs, `--host host4`) → active+clean → census over osd.0–4, read-back; the
 *    share of object copies (and of bytes) osd.4 holds is printed and must lie in 0.10–0.30
 *    (CRUSH's ideal with 5 equal weights: 0.20).
 *
 * The census is real, not the daemons' own accounting: each OSD's object store database is
 * opened read-only from this process (./store-census.ts) and its pool collections listed.
 * For every acknowledged object, its PG's acting set (mapPg over the client's OSDMap) must
 * have 3 OSDs, each holding the object in that PG's collection with the acknowledged size and
 * identical user xattrs and omap; per PG, the primary's `pg dump` num_objects must equal what each
 * acting OSD holds on disk; and once stray copies are purged, no OSD outside an acting set
 * holds an object.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MonCluster, ProcessHarness, Prng, REPO_ROOT, tsNodeArgs, waitFor } from '@aspen/test';
import { check, RadosClient, type IoCtx } from '@aspen/shared/io/rados.ts';
import type { OsdOp } from '@aspen/shared/client/ops.ts';
import { mapObjectToPg, mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { censusStore, describeCopy, type StoredCopy } from './store-census.ts';

const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const POOL = 'scale';
const PG_NUM = 32;
const CONCURRENCY = 16;
const KIB = 1024;
const MIB = 1024 * KIB;
const OBJECTS = envInt('ASPEN_SCALE_OBJECTS', 10_000);
const SEED = envInt('ASPEN_SCALE_SEED', 1);
/** The OSD killed midway, later marked out, restarted and marked in. */
const VICTIM = 3;
/** The OSD added at the end. */
const NEW_OSD = 4;

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
}

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

/** What is written to object `i`. */
interface Plan {
  readonly name: string;
  readonly index: number;
  /** 0: `writefull`; else `write` at this offset into a new object (a hole before it). */
  readonly offsetBytes: number;
  readonly dataBytes: number;
  readonly xattrs: [string, Uint8Array][];
  readonly omap: [string, Uint8Array][];
}

/** What an acknowledged object must read back as. */
interface Expected {
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly xattrs: [string, Uint8Array][];
  readonly omap: [string, Uint8Array][];
}

function planFor(index: number): Plan {
  const r = new Prng((Math.imul(SEED, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const large = r.chance(0.02);
  const dataBytes = large ? r.range(MIB, 4 * MIB) : Math.max(1, Math.floor(Math.exp(r.float() * Math.log(64 * KIB))));
  const offsetBytes = !large && r.chance(0.1) ? r.range(1, 256 * KIB) : 0;
  const bytes = (max: number): Uint8Array => Uint8Array.from({ length: r.int(max + 1) }, () => r.int(256));
  const xattrs: [string, Uint8Array][] = r.chance(0.1) ? Array.from({ length: r.range(1, 4) }, (_, j) => [`attr${j}`, bytes(200)]) : [];
  const omap: [string, Uint8Array][] = r.chance(0.1) ? Array.from({ length: r.range(1, 64) }, (_, j) => [`key-${String(j).padStart(3, '0')}`, bytes(1024)]) : [];
  return { name: `scale-${index}`, index, offsetBytes, dataBytes, xattrs, omap };
}

/** Object `index`'s data: the AES-128-CTR keystream of (seed, index), fast and deterministic. */
function dataFor(p: Plan): Buffer {
  const key = createHash('sha256').update(`aspen-scale-${SEED}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(p.index, 0);
  return createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(p.dataBytes));
}

function expectedOf(p: Plan, data: Buffer): Expected {
  const h = createHash('sha256');
  if (p.offsetBytes > 0) h.update(Buffer.alloc(p.offsetBytes));
  h.update(data);
  return { sha256: h.digest('hex'), sizeBytes: p.offsetBytes + p.dataBytes, xattrs: p.xattrs, omap: p.omap };
}

async function forEachConcurrently<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const pairs = (xs: readonly [string, Uint8Array][]): [string, string][] => xs.map(([k, v]) => [k, hex(v)]);

function phaseTimer(): (what: string) => void {
  const t0 = Date.now();
  let last = t0;
  return (what) => {
    const now = Date.now();
    console.log(`[osd-scale] ${what}: ${((now - last) / 1000).toFixed(1)} s (total ${((now - t0) / 1000).toFixed(1)} s)`);
    last = now;
  };
}

interface PgRow { pgid: string; state: string; reported_epoch: number; num_objects: number; acting: number[]; up: number[] }

async function pgDump(c: RadosClient): Promise<PgRow[]> {
  const r = await c.mon.command({ prefix: 'pg dump' });
  return (r.data as { pg_stats: PgRow[] }).pg_stats;
}

/** Waits until every PG of the cluster is active+clean as reported at the client's current epoch or later. */
async function waitAllClean(c: RadosClient, timeoutMs: number): Promise<void> {
  let last: string[] = [];
  const minEpoch = c.osdMap.epoch;
  await waitFor(async () => {
    const rows = await pgDump(c);
    last = rows.map((p) => `${p.pgid}:${p.reported_epoch >= minEpoch ? p.state : 'stale'}`);
    return rows.length === PG_NUM && rows.every((p) => p.reported_epoch >= minEpoch && p.state === 'active+clean');
  }, { timeoutMs, what: 'every PG active+clean', intervalMs: 1_000 }).catch((err: unknown) => {
    throw new Error(`${String(err)}; states: ${last.join(' ')}`);
  });
}

/** Reads every acknowledged object (data, xattrs, omap in one op); returns the names that differ. */
async function verifyAll(io: IoCtx, acked: Map<string, Expected>): Promise<string[]> {
  const bad: string[] = [];
  await forEachConcurrently([...acked], CONCURRENCY, async ([name, exp]) => {
    try {
      const reply = check(await io.operate(name, [
        { op: 'read', offset: 0, length: 0 },
        { op: 'getxattrs' },
        { op: 'omap_get_vals', startAfter: '', prefix: '', max: 1000 },
      ]));
      const [data, xattrs, omap] = reply.results;
      const why: string[] = [];
      if (data?.kind !== 'data' || data.data.length !== exp.sizeBytes) why.push(`size ${data?.kind === 'data' ? data.data.length : data?.kind} != ${exp.sizeBytes}`);
      else if (createHash('sha256').update(data.data).digest('hex') !== exp.sha256) why.push('sha256 differs');
      const gotX = xattrs?.kind === 'xattrs' ? pairs([...xattrs.entries].sort(([a], [b]) => (a < b ? -1 : 1))) : null;
      if (JSON.stringify(gotX) !== JSON.stringify(pairs(exp.xattrs))) why.push('xattrs differ');
      const gotO = omap?.kind === 'omap' && !omap.more ? pairs(omap.entries) : null;
      if (JSON.stringify(gotO) !== JSON.stringify(pairs(exp.omap))) why.push('omap differs');
      if (why.length > 0) bad.push(`${name}: ${why.join(', ')}`);
    } catch (err) {
      bad.push(`${name}: ${String(err)}`);
    }
  });
  return bad.sort();
}

interface Census {
  /** Copies of acknowledged objects on each OSD (in the acting set of the object's PG). */
  readonly copiesByOsd: Map<number, number>;
  readonly bytesByOsd: Map<number, number>;
  /** Copies (of any object of the pool) held by an OSD outside its PG's acting set. */
  readonly strayCopies: number;
  /** Everything wrong, one line each. */
  readonly problems: string[];
}

/** The on-disk census of the OSDs in `osds` (see the file comment). */
async function census(c: RadosClient, storeDir: (osd: number) => string, osds: number[], acked: Map<string, Expected>): Promise<Census> {
  const pool = c.pool(POOL);
  const map = c.osdMap;
  const stores = new Map<number, Map<string, StoredCopy>>(osds.map((o) => [o, censusStore(storeDir(o), pool.id)]));
  const problems: string[] = [];
  const copiesByOsd = new Map<number, number>(osds.map((o) => [o, 0]));
  const bytesByOsd = new Map<number, number>(osds.map((o) => [o, 0]));
  const actingOf = new Map<number, readonly number[]>();
  for (let seed = 0; seed < PG_NUM; seed++) {
    const pgid = `${pool.id}.${seed.toString(16)}`;
    const m = mapPg(map, pgid);
    actingOf.set(seed, m.acting);
    if (m.acting.length !== 3 || m.acting.some((o) => o < 0)) problems.push(`pg ${pgid}: acting [${m.acting.join(',')}] is not 3 OSDs`);
    if (m.acting.join() !== m.up.join()) problems.push(`pg ${pgid}: acting [${m.acting.join(',')}] != up [${m.up.join(',')}]`);
    for (const o of m.acting) if (!stores.has(o)) problems.push(`pg ${pgid}: acting osd.${o} is not in the census`);
  }
  for (const [name, exp] of acked) {
    const seed = Number.parseInt(mapObjectToPg(pool, name).split('.')[1]!, 16);
    const digests = new Set<string>();
    for (const o of actingOf.get(seed)!) {
      const copy = stores.get(o)?.get(name);
      if (copy === undefined) {
        problems.push(`${name} (pg ${pool.id}.${seed.toString(16)}): no copy on acting osd.${o}`);
        continue;
      }
      if (copy.pgSeed !== seed) problems.push(`${name}: on osd.${o} in pg seed ${copy.pgSeed}, maps to ${seed}`);
      if (copy.sizeBytes !== exp.sizeBytes) problems.push(`${name}: ${copy.sizeBytes} B on osd.${o}, acknowledged ${exp.sizeBytes} B`);
      digests.add(copy.metaDigest);
      copiesByOsd.set(o, copiesByOsd.get(o)! + 1);
      bytesByOsd.set(o, bytesByOsd.get(o)! + exp.sizeBytes);
    }
    if (digests.size > 1) {
      const copies = actingOf.get(seed)!.map((o) => `osd.${o}: ${describeCopy(storeDir(o), pool.id, seed, name)}`);
      problems.push(`${name}: xattrs/omap differ between the copies of pg ${pool.id}.${seed.toString(16)}:\n    ${copies.join('\n    ')}`);
    }
  }
  // Per PG: the primary's num_objects (pg dump) against what each acting OSD holds on disk.
  const onDisk = new Map<string, number>();
  let strayCopies = 0;
  for (const [o, objects] of stores) {
    for (const copy of objects.values()) {
      if (actingOf.get(copy.pgSeed)!.includes(o)) onDisk.set(`${copy.pgSeed}/${o}`, (onDisk.get(`${copy.pgSeed}/${o}`) ?? 0) + 1);
      else strayCopies++;
    }
  }
  for (const row of await pgDump(c)) {
    const seed = Number.parseInt(row.pgid.split('.')[1]!, 16);
    for (const o of actingOf.get(seed) ?? []) {
      const n = onDisk.get(`${seed}/${o}`) ?? 0;
      if (stores.has(o) && n !== row.num_objects) problems.push(`pg ${row.pgid}: pg dump num_objects ${row.num_objects}, osd.${o} holds ${n} on disk`);
    }
  }
  return { copiesByOsd, bytesByOsd, strayCopies, problems };
}

/** Runs the census until no stray copy remains (strays are purged asynchronously once a PG is clean). */
async function censusSettled(c: RadosClient, storeDir: (osd: number) => string, osds: number[], acked: Map<string, Expected>, what: string): Promise<Census> {
  let last: Census | null = null;
  await waitFor(async () => {
    last = await census(c, storeDir, osds, acked);
    return last.strayCopies === 0 && last.problems.length === 0;
  }, { timeoutMs: 60_000, intervalMs: 2_000, what: `${what}: census clean` }).catch(() => undefined);
  const got = last! as Census;
  const summary = [...got.copiesByOsd].map(([o, n]) => `osd.${o}=${n}`).join(' ');
  console.log(`[osd-scale] census ${what}: copies of acknowledged objects ${summary}; stray copies ${got.strayCopies}; problems ${got.problems.length}${got.problems.length > 0 ? `:\n  ${got.problems.slice(0, 20).join('\n  ')}` : ''}`);
  return got;
}

/** The `pg state` lines an OSD logged for `pgid` in `logText`, oldest first. */
function pgStatesLogged(logText: string, pgid: string): string[] {
  const out: string[] = [];
  for (const line of logText.split('\n')) {
    if (!line.includes('"msg":"pg state"') || !line.includes(`"pgid":"${pgid}"`)) continue;
    try {
      out.push(String((JSON.parse(line) as { state: unknown }).state));
    } catch {
      // a line cut by the harness's own markers
    }
  }
  return out;
}

/**
 * Deep-scrubs every PG (at most 4 at a time) through its acting primary, as `ceph pg
 * deep-scrub` does: the primary compares every copy's data crc, size, xattrs and omap. A scrub
 * is over when the primary logs a state without `scrubbing`. Returns the PGs whose final state
 * is not active+clean (e.g. `+inconsistent`), with their state.
 */
async function deepScrubAll(c: RadosClient, h: ProcessHarness): Promise<string[]> {
  const pool = c.pool(POOL);
  const bad: string[] = [];
  let seenScrubbing = 0;
  await forEachConcurrently(Array.from({ length: PG_NUM }, (_, s) => `${pool.id}.${s.toString(16)}`), 4, async (pgid) => {
    const log = `osd.${mapPg(c.osdMap, pgid).actingPrimary}`;
    const from = h.log(log).length;
    const reply = await c.pgCommand('pg deep-scrub', pgid);
    let state = reply.state;
    if (state.includes('scrubbing')) {
      seenScrubbing++;
      await waitFor(() => {
        const states = pgStatesLogged(h.log(log).slice(from), pgid);
        const i = states.findIndex((st) => st.includes('scrubbing'));
        const after = i < 0 ? undefined : states.slice(i + 1).find((st) => !st.includes('scrubbing'));
        if (after !== undefined) state = after;
        return after !== undefined;
      }, { timeoutMs: 600_000, intervalMs: 500, what: `deep scrub of pg ${pgid}` });
    }
    if (state !== 'active+clean') bad.push(`pg ${pgid}: ${state} after deep scrub`);
  });
  const osds = [...c.osdMap.osds.values()].map((o) => `osd.${o.id} ${o.up ? 'up' : 'down'}${h.daemon(`osd.${o.id}`).exitStatus === undefined ? '' : ` exited ${JSON.stringify(h.daemon(`osd.${o.id}`).exitStatus)}`}`);
  console.log(`[osd-scale] deep scrub: ${seenScrubbing} of ${PG_NUM} PGs answered the command in a scrubbing state; ${bad.length} not active+clean after it; map epoch ${c.osdMap.epoch}: ${osds.join(', ')}`);
  return bad.sort();
}

describe(`aspen-osd at scale (3 mons + 4 OSDs, ${OBJECTS} objects, seed ${SEED})`, () => {
  it('keeps every acknowledged object byte-exact with 3 copies on disk through kill -9, out, in and a 5th OSD, which receives a fair share', async () => {
    const lap = phaseTimer();
    harness = new ProcessHarness();
    const h = harness;
    mons = await MonCluster.start(h, { count: 3 });
    await mons.leader();
    const monAddrs = [...mons.addrs.values()].join(',');
    const osdDir = (o: number): string => h.path(`osd.${o}`);
    const storeDir = (o: number): string => join(osdDir(o), 'store');
    const mkfs = async (o: number): Promise<void> => {
      const p = h.spawn({ name: `mkfs.osd.${o}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', osdDir(o), '--mon', monAddrs, '--id', String(o)]) });
      const st = await p.exited;
      if (st.code !== 0) throw new Error(`mkfs of osd.${o} failed: ${h.log(`mkfs.osd.${o}`)}`);
    };
    const start = (o: number): void => {
      h.spawn({ name: `osd.${o}`, args: tsNodeArgs(OSD_ENTRY, ['--data', osdDir(o), '--mon', monAddrs, '--host', `host${o}`]) });
    };
    for (let o = 0; o < 4; o++) await mkfs(o);
    for (let o = 0; o < 4; o++) start(o);
    client = await RadosClient.connect({ monAddrs: [...mons.addrs.values()], opTimeoutMs: 60_000 });
    const c = client;
    await waitFor(() => [...c.osdMap.osds.values()].filter((o) => o.up).length === 4, { timeoutMs: 60_000, what: '4 OSDs up' });
    await c.mon.command({ prefix: 'osd pool create', pool: POOL, pg_num: PG_NUM, size: 3, min_size: 2 });
    await waitFor(() => { try { c.pool(POOL); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the pool in the map' });
    await waitAllClean(c, 120_000);
    const io = c.ioctx(POOL);
    lap('cluster up, pool active+clean');

    // 1. Write; kill -9 osd.3 when half of the ops have completed.
    const acked = new Map<string, Expected>();
    const failed: string[] = [];
    let done = 0;
    let killed: Promise<unknown> | null = null;
    let writtenBytes = 0;
    await forEachConcurrently(Array.from({ length: OBJECTS }, (_, i) => i), CONCURRENCY, async (i) => {
      const p = planFor(i);
      const data = dataFor(p);
      const ops: OsdOp[] = [p.offsetBytes > 0 ? { op: 'write', offset: p.offsetBytes, data } : { op: 'writefull', data }];
      for (const [name, value] of p.xattrs) ops.push({ op: 'setxattr', name, value });
      if (p.omap.length > 0) ops.push({ op: 'omap_set', entries: p.omap });
      try {
        check(await io.operate(p.name, ops));
        acked.set(p.name, expectedOf(p, data));
        writtenBytes += p.offsetBytes + p.dataBytes;
      } catch (err) {
        failed.push(`${p.name}: ${String(err)}`);
      }
      if (++done === Math.floor(OBJECTS / 2)) {
        killed = h.kill(`osd.${VICTIM}`, 'SIGKILL');
        lap(`wrote ${done} objects; kill -9 osd.${VICTIM}`);
      }
    });
    await killed;
    lap(`wrote ${OBJECTS} objects (${acked.size} acknowledged, ${(writtenBytes / MIB).toFixed(0)} MiB logical, ${failed.length} failed)`);
    if (failed.length > 0) console.log(`[osd-scale] failed writes:\n  ${failed.slice(0, 20).join('\n  ')}`);
    // An op may fail only if it was in flight when the OSD died: at most one per writer.
    expect(failed.length).toBeLessThanOrEqual(CONCURRENCY);
    await waitFor(() => c.osdMap.osds.get(VICTIM)?.up === false, { timeoutMs: 60_000, what: `osd.${VICTIM} marked down` });

    // 2. Read everything back.
    expect(await verifyAll(io, acked)).toEqual([]);
    lap('read back every acknowledged object (osd.3 down, in)');

    // 3. osd.3 out → active+clean → 3 copies on disk of osd.0–2.
    const wasOut = c.osdMap.osds.get(VICTIM)?.weight === 0;
    if (wasOut) console.log(`[osd-scale] osd.${VICTIM} was already marked out automatically (mon_osd_down_out_interval)`);
    await c.mon.command({ prefix: 'osd out', ids: [VICTIM] });
    await waitFor(() => c.osdMap.osds.get(VICTIM)?.weight === 0, { timeoutMs: 10_000, what: `osd.${VICTIM} out` });
    await waitAllClean(c, 900_000);
    lap(`osd.${VICTIM} out: every PG active+clean`);
    const c3 = await censusSettled(c, storeDir, [0, 1, 2], acked, `after osd.${VICTIM} out`);
    expect(c3.problems.length, c3.problems.slice(0, 10).join('\n')).toBe(0);
    expect(c3.strayCopies).toBe(0);
    expect([...c3.copiesByOsd.values()].reduce((a, b) => a + b, 0)).toBe(3 * acked.size);
    expect(await verifyAll(io, acked)).toEqual([]);
    lap('census + read-back');

    // 4. Restart osd.3 and mark it in → it backfills → active+clean.
    start(VICTIM);
    await waitFor(() => c.osdMap.osds.get(VICTIM)?.up === true, { timeoutMs: 60_000, what: `osd.${VICTIM} up again` });
    await c.mon.command({ prefix: 'osd in', ids: [VICTIM] });
    await waitFor(() => (c.osdMap.osds.get(VICTIM)?.weight ?? 0) > 0, { timeoutMs: 10_000, what: `osd.${VICTIM} in` });
    await waitAllClean(c, 900_000);
    lap(`osd.${VICTIM} restarted and in: every PG active+clean`);
    const c4 = await censusSettled(c, storeDir, [0, 1, 2, 3], acked, `after osd.${VICTIM} in`);
    expect(c4.problems.length, c4.problems.slice(0, 10).join('\n')).toBe(0);
    expect(c4.strayCopies).toBe(0);
    expect(await verifyAll(io, acked)).toEqual([]);
    lap('census + read-back');

    // 5. A 5th OSD → active+clean → its share of the copies.
    await mkfs(NEW_OSD);
    start(NEW_OSD);
    await waitFor(() => c.osdMap.osds.get(NEW_OSD)?.up === true && c.osdMap.osds.get(NEW_OSD)!.weight > 0, { timeoutMs: 60_000, what: `osd.${NEW_OSD} up and in` });
    await waitAllClean(c, 900_000);
    lap(`osd.${NEW_OSD} added: every PG active+clean`);
    const c5 = await censusSettled(c, storeDir, [0, 1, 2, 3, NEW_OSD], acked, `after osd.${NEW_OSD} added`);
    expect(c5.problems.length, c5.problems.slice(0, 10).join('\n')).toBe(0);
    expect(c5.strayCopies).toBe(0);
    const totalCopies = [...c5.copiesByOsd.values()].reduce((a, b) => a + b, 0);
    const totalBytes = [...c5.bytesByOsd.values()].reduce((a, b) => a + b, 0);
    expect(totalCopies).toBe(3 * acked.size);
    const pgSlots = Array.from({ length: PG_NUM }, (_, s) => mapPg(c.osdMap, `${c.pool(POOL).id}.${s.toString(16)}`).acting).flat();
    const copyShare = c5.copiesByOsd.get(NEW_OSD)! / totalCopies;
    const byteShare = c5.bytesByOsd.get(NEW_OSD)! / totalBytes;
    console.log(`[osd-scale] osd.${NEW_OSD} holds ${c5.copiesByOsd.get(NEW_OSD)} of ${totalCopies} object copies = ${copyShare.toFixed(4)}, ` +
      `${(byteShare * 100).toFixed(1)}% of the bytes, ${pgSlots.filter((o) => o === NEW_OSD).length} of ${pgSlots.length} PG slots (ideal 0.20)`);
    expect(copyShare).toBeGreaterThanOrEqual(0.1);
    expect(copyShare).toBeLessThanOrEqual(0.3);
    expect(await verifyAll(io, acked)).toEqual([]);
    lap('census + read-back');

    // Every replica's bytes, not only the primaries' that client reads see: deep scrub.
    expect(await deepScrubAll(c, h)).toEqual([]);
    lap('deep scrub of every PG');
  }, 3 * 60 * 60 * 1000);
});
