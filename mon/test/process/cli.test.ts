/**
 * Process-level tests of the `aspen` CLI and of monitor behaviour seen from outside: real
 * `aspen-mon` processes (test/src/mon-cluster.ts), the real CLI run with node + tsx, OSD
 * liveness driven through the client API as OSD daemons will drive it, the OSDMap
 * subscription, and start-up refusals (another cluster's store, a corrupt store).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MonClient } from '@aspen/shared/io/monclient.ts';
import type { MapUpdate } from '@aspen/shared/io/mon-api.ts';
import { incrementalFromBytes, osdMapFromBytes } from '@aspen/shared/osdmap/codec.ts';
import { applyIncremental } from '@aspen/shared/osdmap/incremental.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { isSnapRemoved } from '@aspen/shared/osdmap/snaps.ts';
import { MonCluster, ProcessHarness, REPO_ROOT, freePort, sleep, tsNodeArgs, waitFor } from '@aspen/test';

const ASPEN = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts');
const MON_ENTRY = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen-mon.ts');

interface CliRun { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs `aspen ARGS` as a separate process; never waits longer than `timeoutMs` (then kills it). */
function aspen(args: string[], timeoutMs = 30_000): Promise<CliRun> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, tsNodeArgs(ASPEN, args), { cwd: REPO_ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, ASPEN_MON_HOST: '' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

let harness: ProcessHarness;
let cluster: MonCluster;
let monArgs: string[];

const ok = async (args: string[]): Promise<string> => {
  const r = await aspen([...monArgs, ...args]);
  expect(r.code, `aspen ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};
const json = async <T = unknown>(args: string[]): Promise<T> => JSON.parse(await ok(['-f', 'json', ...args])) as T;

interface DumpOsd { osd: number; up: number; in: number }
const osdDump = async (client: MonClient): Promise<{ epoch: number; osds: DumpOsd[]; pools: { pool_name: string; pool: number }[] }> =>
  (await client.command({ prefix: 'osd dump' })).data as { epoch: number; osds: DumpOsd[]; pools: { pool_name: string; pool: number }[] };

beforeAll(async () => {
  harness = new ProcessHarness();
  cluster = await MonCluster.start(harness, { count: 3 });
  await cluster.leader();
  // The leader counts a peer in quorum once it has heard from it: wait for all three.
  const c = cluster.client(5_000);
  await waitFor(async () => ((await c.command({ prefix: 'status' })).data as { quorum_names: string[] }).quorum_names.length === 3, { timeoutMs: 20_000, what: 'a full quorum' });
  monArgs = ['-m', [...cluster.addrs.values()].join(',')];
}, 120_000);

afterAll(async () => {
  for (const d of harness?.daemons() ?? []) {
    try { process.kill(-d.pid, 'SIGCONT'); } catch { /* gone */ }
  }
  cluster?.close();
  await harness?.teardown();
});

describe('aspen CLI against a 3-mon cluster', () => {
  it('status, plain and -f json (after the subcommand too)', async () => {
    const plain = await ok(['status']);
    expect(plain).toContain(`id:     ${cluster.fsid}`);
    expect(plain).toMatch(/health: HEALTH_(OK|WARN)/);
    expect(plain).toMatch(/mon: 3 daemons, quorum a,b,c \(leader [abc], term \d+\)/);
    expect(plain).toMatch(/osd: 0 osds: 0 up, 0 in; epoch: e1/);
    const s = JSON.parse(await ok(['status', '-f', 'json'])) as { fsid: string; quorum_names: string[]; monmap: { num_mons: number }; health: { status: string } };
    expect(s.fsid).toBe(cluster.fsid);
    expect(s.quorum_names).toEqual(['a', 'b', 'c']);
    expect(s.monmap.num_mons).toBe(3);
    expect(s.health.status).toBe('HEALTH_OK');
  });

  it('osd pool create / ls / get / set', async () => {
    expect(await ok(['osd', 'pool', 'create', 'p', '16'])).toBe("pool 'p' created\n");
    expect(await json(['osd', 'pool', 'ls'])).toEqual(['p']);
    expect(await ok(['osd', 'pool', 'get', 'p', 'size'])).toBe('size: 3\n');
    expect(await ok(['osd', 'pool', 'set', 'p', 'size', '2'])).toBe('set pool 1 size to 2\n');
    expect(await json(['osd', 'pool', 'get', 'p', 'size'])).toEqual({ pool: 'p', size: 2 });
    expect(await json(['osd', 'pool', 'get', 'p', 'min_size'])).toEqual({ pool: 'p', min_size: 2 });
  });

  it('erasure-code-profile set, then an erasure pool from it', async () => {
    await ok(['osd', 'erasure-code-profile', 'set', 'prof', 'k=2', 'm=1', 'crush-failure-domain=osd']);
    expect(await json(['osd', 'erasure-code-profile', 'get', 'prof'])).toMatchObject({ k: '2', m: '1', 'crush-failure-domain': 'osd' });
    expect(await ok(['osd', 'pool', 'create', 'e', '8', 'erasure', 'prof'])).toBe("pool 'e' created\n");
    expect(await json(['osd', 'pool', 'get', 'e', 'all'])).toMatchObject({ pool: 'e', type: 'erasure', size: 3, min_size: 3, pg_num: 8, erasure_code_profile: 'prof', crush_rule: 'e' });
  });

  it('pg dump has one row per PG; pg map answers one PG', async () => {
    const d = await json<{ pg_stats: { pgid: string }[] }>(['pg', 'dump']);
    expect(d.pg_stats).toHaveLength(16 + 8);
    expect(new Set(d.pg_stats.map((r) => r.pgid)).size).toBe(24);
    expect(await ok(['pg', 'map', '1.f'])).toMatch(/^osdmap e\d+ pg 1\.f \(1\.f\) -> up \[\] acting \[\]\n$/);
    const missing = await aspen([...monArgs, 'pg', 'map', '1.10']);
    expect(missing.code).toBe(2); // ENOENT
    expect(missing.stderr).toBe('Error ENOENT: pg 1.10 does not exist\n');
  });

  it('osd pool rm is refused with EPERM (exit status 1) and Ceph\'s warnings', async () => {
    const r1 = await aspen([...monArgs, 'osd', 'pool', 'rm', 'p']);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/^Error EPERM: WARNING: this will \*PERMANENTLY DESTROY\* all data stored in pool p\..*--yes-i-really-really-mean-it\.\n$/);
    const r2 = await aspen([...monArgs, 'osd', 'pool', 'rm', 'p', 'p', '--yes-i-really-really-mean-it']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/Error EPERM: pool deletion is disabled; you must first set the mon_allow_pool_delete config option to true/);
    expect(await json(['osd', 'pool', 'ls'])).toEqual(['p', 'e']);
    const bad = await aspen([...monArgs, 'osd', 'pool', 'set', 'p', 'size', 'many']);
    expect(bad.code).toBe(22); // EINVAL
    const badTimeout = await aspen([...monArgs, '--connect-timeout', 'soon', 'status']);
    expect(badTimeout.code).not.toBe(0);
    expect(badTimeout.stderr).toContain("expected a positive number of seconds, got 'soon'");
  });
});

describe('OSD liveness end to end (through the client API, as OSD daemons do)', () => {
  const uuid = (i: number): string => `00000000-0000-4000-8000-00000000000${i}`;

  it('two failure reports mark an OSD down, then down_out_interval marks it out; beacons keep an OSD up while a silent one is marked down', async () => {
    const client = cluster.client(20_000);
    for (let i = 0; i < 3; i++) {
      expect((await client.command({ prefix: 'osd new', uuid: uuid(i), id: i })).data).toEqual({ osdid: i });
      await client.command({ prefix: 'osd boot', id: i, uuid: uuid(i), addr: `127.0.0.1:${6800 + i}`, host: `host${i}` });
    }
    expect((await osdDump(client)).osds.map((o) => o.up)).toEqual([1, 1, 1]);
    const osd = async (id: number): Promise<DumpOsd> => (await osdDump(client)).osds.find((o) => o.osd === id)!;

    // One report is not enough …
    await client.command({ prefix: 'osd failure', id: 0, target: 2 });
    await sleep(2500); // the leader decides once a second
    expect((await osd(2)).up).toBe(1);
    // … a second, distinct reporter is.
    await client.command({ prefix: 'osd failure', id: 1, target: 2 });
    await waitFor(async () => (await osd(2)).up === 0, { timeoutMs: 10_000, what: 'osd.2 marked down' });
    expect((await osd(2)).in).toBe(1);

    expect(await ok(['config', 'set', 'mon', 'mon_osd_down_out_interval', '2'])).toBe('');
    await waitFor(async () => (await osd(2)).in === 0, { timeoutMs: 10_000, what: 'osd.2 marked out' });

    // osd.0 beacons; osd.1 falls silent.
    let beaconing = true;
    const beacons = (async () => {
      while (beaconing) {
        // osd.0's store is full (Ceph MOSDFull): the leader records it once, as `osd full`.
        await client.command({ prefix: 'osd beacon', id: 0, full: true }).catch(() => undefined);
        await sleep(500);
      }
    })();
    try {
      await sleep(1000);
      await ok(['config', 'set', 'mon', 'mon_osd_report_timeout', '3']);
      await waitFor(async () => (await osd(1)).up === 0, { timeoutMs: 15_000, what: 'silent osd.1 marked down' });
      const since = Date.now();
      while (Date.now() - since < 4500) {
        expect((await osd(0)).up, 'beaconing osd.0 stays up past the 3 s timeout').toBe(1);
        await sleep(500);
      }
    } finally {
      beaconing = false;
      await beacons;
    }
    const tree = await json<{ nodes: { name: string; status?: string }[] }>(['osd', 'tree']);
    expect(tree.nodes.filter((n) => n.name.startsWith('osd.')).map((n) => `${n.name}:${n.status}`).sort()).toEqual(['osd.0:up', 'osd.1:down', 'osd.2:down']);
    const dump = (await client.command({ prefix: 'osd dump' })).data as { osds: { osd: number; state: string[] }[] };
    expect(dump.osds.find((o) => o.osd === 0)!.state).toEqual(['exists', 'up', 'full']);
    const health = await json<{ status: string; checks: Record<string, { summary: { message: string }; detail: { message: string }[] }> }>(['health', 'detail']);
    expect(health.status).toBe('HEALTH_ERR');
    expect(health.checks.OSD_FULL).toMatchObject({ summary: { message: '1 full osd(s)' }, detail: [{ message: 'osd.0 is full' }] });
    await client.command({ prefix: 'config set', who: 'mon', name: 'mon_osd_report_timeout', value: '600' });
  }, 90_000);
});

describe('self-managed snapshots through RadosClient (librados selfmanaged_snap_create/remove)', () => {
  it('create allocates increasing snap ids, rm marks them removed; each resolves with the client map at the new epoch', async () => {
    const client = cluster.client(20_000);
    await client.command({ prefix: 'osd pool create', pool: 'snaps', pg_num: 1, size: 1 });
    const rados = await RadosClient.connect({ monAddrs: [...cluster.addrs.values()], opTimeoutMs: 20_000 });
    try {
      const a = await rados.selfmanagedSnapCreate('snaps');
      const b = await rados.selfmanagedSnapCreate('snaps');
      expect(b).toBe(a + 1n);
      expect(rados.pool('snaps').snapSeq).toBe(Number(b)); // already in this client's map
      await rados.selfmanagedSnapRemove('snaps', a);
      expect(isSnapRemoved(rados.pool('snaps'), a)).toBe(true);
      await rados.selfmanagedSnapRemove('snaps', a); // idempotent, as Ceph
      await expect(rados.selfmanagedSnapRemove('snaps', b + 5n)).rejects.toMatchObject({ code: 'EINVAL' });
      const ls = await json<{ pool_name: string; snap_seq: number; removed_snaps: string }[]>(['osd', 'pool', 'ls', 'detail']);
      expect(ls.find((p) => p.pool_name === 'snaps')).toMatchObject({ snap_seq: Number(b), removed_snaps: `[${a}~1]` });
    } finally {
      await rados.close();
    }
  }, 60_000);
});

describe('OSDMap subscription', () => {
  it('receives a full map then incrementals in epoch order, and resumes after its monitor is killed', async () => {
    const writer = cluster.client(20_000);
    const sub = new MonClient({ monAddrs: ['a', 'b', 'c'].map((n) => cluster.addrs.get(n)!), fsid: cluster.fsid, timeoutMs: 20_000 });
    const kinds: string[] = [];
    const epochs: number[] = [];
    const errors: unknown[] = [];
    let map: OsdMap | null = null;
    const cancel = sub.subscribe(0, (u: MapUpdate) => {
      try {
        const bytes = new Uint8Array(Buffer.from(u.bytesBase64, 'base64'));
        if (u.kind === 'full') map = osdMapFromBytes(bytes);
        else {
          const inc = incrementalFromBytes(bytes);
          expect(inc.epoch).toBe(u.epoch);
          applyIncremental(map!, inc); // asserts inc.epoch === map.epoch + 1
        }
        kinds.push(u.kind);
        epochs.push(map!.epoch);
      } catch (err) {
        errors.push(err);
      }
      return map?.epoch ?? 0;
    });
    const poolNames = (): string[] => [...(map?.pools.values() ?? [])].map((p) => p.name);
    try {
      await waitFor(() => map !== null, { timeoutMs: 10_000, what: 'the full map' });
      expect(kinds[0]).toBe('full');
      for (const name of ['s1', 's2', 's3']) await writer.command({ prefix: 'osd pool create', pool: name, pg_num: 4 });
      await waitFor(() => poolNames().includes('s3'), { timeoutMs: 10_000, what: 'incrementals for s1..s3' });
      expect(kinds.slice(1).every((k) => k === 'incremental')).toBe(true);

      await harness.kill('mon.a', 'SIGKILL'); // the subscription's monitor
      for (const name of ['s4', 's5']) await writer.command({ prefix: 'osd pool create', pool: name, pg_num: 4 });
      await waitFor(() => poolNames().includes('s5'), { timeoutMs: 20_000, what: 'the subscription to resume on another monitor' });
      expect(errors).toEqual([]);
      expect(kinds.filter((k) => k === 'full')).toHaveLength(1); // resumed from its epoch, not from scratch
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBe(epochs[i - 1]! + 1);
      const dump = await osdDump(writer);
      expect(map!.epoch).toBe(dump.epoch);
      expect(poolNames().sort()).toEqual(dump.pools.map((p) => p.pool_name).sort());
    } finally {
      cancel();
      sub.close();
    }
    cluster.spawn('a');
    await cluster.waitListening('a');
  }, 90_000);
});

describe('monitor start-up refusals', () => {
  it('refuses a corrupt log record in store.db with E_CORRUPT, and starts again once it is repaired', async () => {
    await harness.stop('mon.c');
    const db = join(cluster.dataDir('c'), 'store.db');
    const flip = (): void => {
      const sql = new Database(db);
      try {
        const row = sql.prepare('SELECT idx, body FROM entries ORDER BY idx DESC LIMIT 1').get() as { idx: number; body: Buffer };
        const body = Buffer.from(row.body);
        body[Math.floor(body.length / 2)]! ^= 0x40;
        sql.prepare('UPDATE entries SET body = ? WHERE idx = ?').run(body, row.idx);
      } finally {
        sql.close();
      }
    };
    flip();
    cluster.spawn('c');
    const st = await harness.daemon('mon.c').exited;
    expect(st.code).toBe(1);
    const log = harness.log('mon.c');
    expect(log).toMatch(/aspen-mon: E_CORRUPT: cannot open the monitor store in .*: E_CORRUPT: table entries record \d+: crc32c mismatch/);
    flip(); // undo the damage: the same store starts and serves again
    cluster.spawn('c');
    await cluster.waitListening('c');
    const fromC = cluster.client(20_000, ['c']);
    expect((await fromC.command({ prefix: 'osd pool ls' })).data).toContain('s5');
  }, 60_000);

  it('refuses a data directory of another cluster, or of another monitor, with E_WRONG_CLUSTER (exit 1)', async () => {
    const other = randomUUID();
    const dir = harness.path('other-cluster-mon');
    const port = await freePort();
    const mkfs = harness.spawn({ name: 'mkfs.other', args: tsNodeArgs(MON_ENTRY, ['--mkfs', '--id', 'z', '--data', dir, '--fsid', other, '--initial-members', `z=127.0.0.1:${port}`]) });
    expect((await mkfs.exited).code).toBe(0);
    const start = async (name: string, args: string[]): Promise<string> => {
      const p = harness.spawn({ name, args: tsNodeArgs(MON_ENTRY, ['--data', dir, '--addr', `127.0.0.1:${port}`, ...args]) });
      const st = await Promise.race([p.exited, sleep(20_000).then(() => null)]);
      expect(st?.code, `mon did not exit 1 (still running: ${st === null})\n${harness.log(name)}`).toBe(1);
      await harness.kill(name);
      return harness.log(name);
    };
    expect(await start('wrong-fsid', ['--id', 'z', '--fsid', cluster.fsid])).toContain(`aspen-mon: E_WRONG_CLUSTER: data directory belongs to cluster ${other}, not ${cluster.fsid}`);
    expect(await start('wrong-id', ['--id', 'a'])).toContain('aspen-mon: E_WRONG_CLUSTER: data directory belongs to mon.z, not mon.a');
  }, 60_000);
});

describe('no quorum', () => {
  it('with every monitor frozen, then stopped, `aspen --connect-timeout 2 status` fails with "no quorum" within 10 s', async () => {
    const pids = ['a', 'b', 'c'].map((n) => harness.daemon(`mon.${n}`).pid);
    for (const pid of pids) process.kill(-pid, 'SIGSTOP');
    try {
      const frozen = await aspen([...monArgs, '--connect-timeout', '2', 'status'], 20_000);
      expect(frozen.ms).toBeLessThan(10_000);
      expect(frozen.code).toBe(11); // EAGAIN
      expect(frozen.stderr).toMatch(/^Error EAGAIN_NO_QUORUM: no quorum: no monitor of .* answered within 2000 ms/);
    } finally {
      for (const pid of pids) process.kill(-pid, 'SIGCONT');
    }
    await Promise.all(['a', 'b', 'c'].map((n) => harness.stop(`mon.${n}`)));
    const stopped = await aspen([...monArgs, '--connect-timeout', '2', 'status'], 20_000);
    expect(stopped.ms).toBeLessThan(10_000);
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toContain('no quorum');
  }, 60_000);
});
