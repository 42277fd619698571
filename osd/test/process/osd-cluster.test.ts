/**
 * Process-level test of `aspen-osd` (issue 4, "It must show", reduced): 3 real monitors and
 * 4 real OSD processes on loopback, a replicated pool (size 3, min_size 2, pg_num 16), the
 * object client writing and reading through the messenger; then one OSD is `kill -9`ed and
 * writes continue — every acknowledged object must read back byte-exact, and every PG must
 * return to active; marked out, its PGs are backfilled elsewhere to active+clean; the OSD restarted from its store brings every PG back to active+clean;
 * a flipped byte in a replica's copy is found by deep scrub and repaired; one in the primary's
 * copy fails the primary's read, which pulls a good copy from a replica; scheduled scrubs run;
 * Prometheus metrics are served; SIGTERM stops an OSD with exit status 0.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MonCluster, ProcessHarness, REPO_ROOT, freePorts, tsNodeArgs, waitFor } from '@aspen/test';
import { RadosClient, type IoCtx } from '@aspen/shared/io/rados.ts';
import { mapObjectToPg, mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { flipByteOf } from './store-damage.ts';

const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const OSDS = 4;
const POOL = 'data';

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

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Sizes from 1 B to 1 MiB, log-uniform (most objects small, a few large). */
function sizeFor(i: number): number {
  if (i % 50 === 0) return 1024 * 1024;
  if (i % 37 === 0) return 1;
  return Math.max(1, Math.floor(Math.exp(Math.random() * Math.log(512 * 1024))));
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  }));
}

async function startOsds(h: ProcessHarness, monAddrs: string, metricsPort: number): Promise<void> {
  for (let i = 0; i < OSDS; i++) {
    const p = h.spawn({ name: `mkfs.osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', h.path(`osd.${i}`), '--mon', monAddrs, '--id', String(i)]) });
    const st = await p.exited;
    if (st.code !== 0) throw new Error(`mkfs of osd.${i} failed: ${h.log(`mkfs.osd.${i}`)}`);
  }
  for (let i = 0; i < OSDS; i++) {
    const metrics = i === 0 ? ['--metrics-addr', `127.0.0.1:${metricsPort}`] : [];
    h.spawn({ name: `osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${i}`), '--mon', monAddrs, '--host', `host${i}`, ...metrics]) });
  }
}

/** `pgid:state` of every PG, reported at `minEpoch` or later (older reports count as unknown). */
async function pgStates(c: RadosClient, minEpoch: number): Promise<string[]> {
  const r = await c.mon.command({ prefix: 'pg dump' });
  const rows = (r.data as { pg_stats: { pgid: string; state: string; reported_epoch: number }[] }).pg_stats;
  return rows.map((p) => `${p.pgid}:${p.reported_epoch >= minEpoch ? p.state : 'stale'}`);
}

async function waitAllActive(c: RadosClient, timeoutMs: number, clean = false): Promise<void> {
  let last: string[] = [];
  const minEpoch = c.osdMap.epoch;
  await waitFor(async () => {
    last = await pgStates(c, minEpoch);
    return last.length === 16 && last.every((s) => (clean ? s.split(':')[1] === 'active+clean' : s.split(':')[1]!.startsWith('active')));
  }, { timeoutMs, what: 'every PG active', intervalMs: 500 }).catch((err: unknown) => {
    throw new Error(`${String(err)}; states: ${last.join(' ')}`);
  });
}

async function writeAll(io: IoCtx, names: string[], acked: Map<string, string>, size: (i: number) => number): Promise<void> {
  await pool(names, 8, async (name) => {
    const data = randomBytes(size(Number(name.split('-')[1])));
    await io.writeFull(name, data);
    acked.set(name, sha(data));
  });
}

async function checkAll(io: IoCtx, acked: Map<string, string>): Promise<void> {
  const bad: string[] = [];
  await pool([...acked.keys()], 8, async (name) => {
    const got = await io.read(name);
    if (sha(got) !== acked.get(name)) bad.push(name);
  });
  expect(bad).toEqual([]);
}

/** Runs a TypeScript CLI entry point; resolves with its stdout. @throws Error (with stderr) on a non-zero exit. */
function runTool(entry: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', entry, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${entry} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Runs the real `aspen` CLI. */
function aspenCli(monAddrs: string, args: string[]): Promise<string> {
  return runTool(join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts'), ['-m', monAddrs, ...args]);
}

async function pgState(c: RadosClient, pgid: string): Promise<string> {
  const r = await c.mon.command({ prefix: 'pg dump' });
  return (r.data as { pg_stats: { pgid: string; state: string }[] }).pg_stats.find((p) => p.pgid === pgid)!.state;
}

describe('aspen-osd cluster (3 mons + 4 OSDs on loopback)', () => {
  it('replicates objects byte-exact, round-trips xattrs and omap, and keeps every acknowledged write across kill -9 of an OSD', async () => {
    const { c, monAddrs, metricsPort } = await startCluster();
    const h = harness!;
    const io = c.ioctx(POOL);

    // 200 objects of mixed sizes, read back byte-exact.
    const acked = new Map<string, string>();
    const names = Array.from({ length: 200 }, (_, i) => `obj-${i}`);
    await writeAll(io, names, acked, sizeFor);
    expect(acked.size).toBe(200);
    await checkAll(io, acked);

    // xattrs and omap.
    await io.setxattr('obj-1', 'color', new TextEncoder().encode('blue'));
    await io.setxattr('obj-1', 'shape', new TextEncoder().encode('round'));
    await io.omapSet('obj-1', new Map([['a', new Uint8Array([1])], ['b', new Uint8Array([2, 2])], ['c', new Uint8Array(0)]]));
    await io.omapRm('obj-1', ['b']);
    expect(new TextDecoder().decode(await io.getxattr('obj-1', 'color'))).toBe('blue');
    expect([...(await io.getxattrs('obj-1')).keys()].sort()).toEqual(['color', 'shape']);
    const om = await io.omapGetVals('obj-1');
    expect(om.entries.map(([k, v]) => [k, [...v]])).toEqual([['a', [1]], ['c', []]]);
    expect(sha(await io.read('obj-1'))).toBe(acked.get('obj-1'));
    const listed = await io.listObjects();
    expect(listed.length).toBe(200);

    // The same through the shell tool (as `rados -p POOL get/getxattr/ls`).
    const rados = (args: string[]): Promise<string> => runTool(join(REPO_ROOT, 'shared', 'src', 'bin', 'aspen-rados.ts'), ['-m', monAddrs, '-p', POOL, ...args]);
    expect(await rados(['getxattr', 'obj-1', 'color'])).toBe('blue\n');
    expect((await rados(['ls'])).trim().split('\n').length).toBe(200);
    const outFile = join(h.dir, 'obj-7.out');
    await rados(['get', 'obj-7', outFile]);
    expect(sha(readFileSync(outFile))).toBe(acked.get('obj-7'));
    await expect(rados(['stat', 'no-such-object'])).rejects.toThrow(/ENOENT/);

    // kill -9 one OSD and keep writing: every acknowledged write reads back.
    await h.kill('osd.3', 'SIGKILL');
    const more = Array.from({ length: 60 }, (_, i) => `obj-${200 + i}`);
    await writeAll(io, more, acked, () => 1 + Math.floor(Math.random() * 64 * 1024));
    // Overwrite some of the first objects too.
    await writeAll(io, names.slice(0, 20), acked, () => 4096);
    await waitFor(() => c.osdMap.osds.get(3)?.up === false, { timeoutMs: 30_000, what: 'osd.3 marked down' });
    await checkAll(io, acked);
    await waitAllActive(c, 60_000);
    await checkAll(io, acked);

    // The operator marks osd.3 out: its PGs move to the other OSDs, which backfill them
    // (pg_temp keeps the old copies acting meanwhile) — every PG active+clean with 3 copies.
    await c.mon.command({ prefix: 'osd out', ids: [3] });
    await waitFor(() => c.osdMap.osds.get(3)?.weight === 0, { timeoutMs: 10_000, what: 'osd.3 out' });
    await waitAllActive(c, 60_000, true);
    await checkAll(io, acked);

    // osd.3 comes back in and restarts from its store (PGs loaded, peered, recovered or
    // backfilled): every PG active+clean.
    await c.mon.command({ prefix: 'osd in', ids: [3] });
    h.spawn({ name: 'osd.3', args: tsNodeArgs(OSD_ENTRY, ['--data', h.path('osd.3'), '--mon', monAddrs, '--host', 'host3']) });
    await waitFor(() => c.osdMap.osds.get(3)?.up === true, { timeoutMs: 30_000, what: 'osd.3 up again' });
    await waitAllActive(c, 60_000, true);
    await checkAll(io, acked);

    // osd.0 serves Prometheus metrics: client ops and PGs by state.
    const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(body).toMatch(/aspen_osd_ops_total\{[^}]*kind="write"[^}]*code="0"[^}]*\} [1-9]/);
    expect(body).toMatch(/aspen_osd_pgs\{[^}]*role="primary"/);

    // SIGTERM stops an OSD gracefully (store unmounted, exit 0).
    const st = await h.stop('osd.0');
    expect(st.code).toBe(0);
  }, 180_000);

  it('deep scrub marks a PG inconsistent when a replica\'s data file has a flipped byte (EIO on read), and repair restores that copy', async () => {
    const { c, monAddrs } = await startCluster();
    const h = harness!;
    const io = c.ioctx(POOL);
    const data = randomBytes(256 * 1024);
    await io.writeFull('victim', data);
    const pgid = mapObjectToPg(c.pool(POOL), 'victim');
    const m = mapPg(c.osdMap, pgid);
    const [primary, replica] = [m.actingPrimary, m.acting.find((o) => o !== m.actingPrimary)!];
    await h.stop(`osd.${replica}`); // SIGTERM: the store is unmounted, every write is in its data file
    await c.mon.command({ prefix: 'osd down', ids: [replica] });
    await waitFor(() => c.osdMap.osds.get(replica)?.up === false, { timeoutMs: 10_000, what: `osd.${replica} down in the client's map` });
    flipByteOf(join(h.path(`osd.${replica}`), 'store'), data.subarray(100_000, 100_064));
    h.spawn({ name: `osd.${replica}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${replica}`), '--mon', monAddrs, '--host', `host${replica}`]) });
    await waitFor(() => c.osdMap.osds.get(replica)?.up === true, { timeoutMs: 30_000, what: `osd.${replica} up again` });
    await waitAllActive(c, 60_000, true);
    expect(mapPg(c.osdMap, pgid).actingPrimary).toBe(primary);

    // The operator's command, through the CLI (as `ceph pg deep-scrub PGID`).
    expect(await aspenCli(monAddrs, ['pg', 'deep-scrub', pgid])).toMatch(new RegExp(`pg ${pgid.replace('.', '\\.')} on osd\\.${primary} to deep-scrub`));
    await waitFor(async () => (await pgState(c, pgid)).includes('inconsistent'), { timeoutMs: 30_000, what: `pg ${pgid} inconsistent` });
    // The primary's copy is good: client reads are unaffected.
    expect(sha(await io.read('victim'))).toBe(sha(data));

    await c.pgCommand('pg repair', pgid);
    await waitFor(async () => (await pgState(c, pgid)) === 'active+clean', { timeoutMs: 30_000, what: `pg ${pgid} repaired` });
    // A second deep scrub finds every copy good.
    const scrubsBefore = h.log(`osd.${primary}`).split('\n').filter((l) => l.includes(`"pgid":"${pgid}"`) && l.includes('scrubbing+deep')).length;
    await c.pgCommand('pg deep-scrub', pgid);
    await waitFor(() => h.log(`osd.${primary}`).split('\n').filter((l) => l.includes(`"pgid":"${pgid}"`) && l.includes('scrubbing+deep')).length > scrubsBefore, { timeoutMs: 30_000, what: 'the second deep scrub' });
    const lastState = (): string | undefined => h.log(`osd.${primary}`).split('\n').filter((l) => l.includes(`"pgid":"${pgid}"`) && l.includes('"msg":"pg state"')).pop();
    await waitFor(() => lastState()?.includes('"state":"active+clean"') === true, { timeoutMs: 30_000, what: `pg ${pgid} clean after the second scrub` });
    expect(sha(await io.read('victim'))).toBe(sha(data));

    // The PRIMARY's copy damaged: its read fails the checksum (EIO), the primary pulls a good
    // copy from a replica (Ceph rep_repair_primary_object) and the client still gets the data.
    const data2 = randomBytes(192 * 1024);
    await io.writeFull('victim2', data2);
    const pgid2 = mapObjectToPg(c.pool(POOL), 'victim2');
    const primary2 = mapPg(c.osdMap, pgid2).actingPrimary;
    await h.stop(`osd.${primary2}`);
    await c.mon.command({ prefix: 'osd down', ids: [primary2] });
    await waitFor(() => c.osdMap.osds.get(primary2)?.up === false, { timeoutMs: 10_000, what: `osd.${primary2} down in the client's map` });
    flipByteOf(join(h.path(`osd.${primary2}`), 'store'), data2.subarray(50_000, 50_064));
    // Restarted with short scrub intervals: scheduled (not operator) scrubs run too.
    h.spawn({ name: `osd.${primary2}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${primary2}`), '--mon', monAddrs, '--host', `host${primary2}`, '--osd-scrub-min-interval', '2', '--osd-deep-scrub-interval', '4']) });
    await waitFor(() => c.osdMap.osds.get(primary2)?.up === true, { timeoutMs: 30_000, what: `osd.${primary2} up again` });
    await waitAllActive(c, 60_000);
    expect(mapPg(c.osdMap, pgid2).actingPrimary).toBe(primary2);
    expect(sha(await io.read('victim2'))).toBe(sha(data2));
    // Either the client's read or a scheduled deep scrub met the bad block first; either way it was found and mended.
    await waitFor(() => h.log(`osd.${primary2}`).split('\n').some((l) => l.includes('"msg":"scheduled scrub"') && l.includes('"deep":true')), { timeoutMs: 30_000, what: 'a scheduled deep scrub' });
    const log2 = h.log(`osd.${primary2}`);
    expect(log2.includes('read error on the primary copy') || log2.includes('inconsistent')).toBe(true);
    // Once the copy is mended, the next scheduled deep scrub finds every copy good again.
    await waitFor(async () => (await pgState(c, pgid2)) === 'active+clean', { timeoutMs: 60_000, what: `pg ${pgid2} clean` });
    expect(sha(await io.read('victim2'))).toBe(sha(data2));
  }, 240_000);
});

async function startCluster(): Promise<{ c: RadosClient; monAddrs: string; metricsPort: number }> {
  harness = new ProcessHarness();
  mons = await MonCluster.start(harness, { count: 3 });
  await mons.leader();
  const monAddrs = [...mons.addrs.values()].join(',');
  const [metricsPort] = await freePorts(1);
  await startOsds(harness, monAddrs, metricsPort!);
  client = await RadosClient.connect({ monAddrs: [...mons.addrs.values()], opTimeoutMs: 60_000 });
  const c = client;
  await waitFor(() => [...c.osdMap.osds.values()].filter((o) => o.up).length === OSDS, { timeoutMs: 30_000, what: '4 OSDs up' });
  await c.mon.command({ prefix: 'osd pool create', pool: POOL, pg_num: 16, size: 3, min_size: 2 });
  await waitFor(() => { try { c.pool(POOL); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the pool in the map' });
  await waitAllActive(c, 30_000);
  return { c, monAddrs, metricsPort: metricsPort! };
}
