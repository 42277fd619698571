/**
 * Erasure-code codec benchmark (`npm run bench -- ec`): throughput of osd/src/ec/codec.ts
 * (@ronomon/reed-solomon on the libuv pool, plus our stripe gather/permute copies) for a 4+2 code
 * over 64 MiB of logical data, at stripe units of 4 KiB (Ceph's default), 64 KiB and 1 MiB.
 *
 * - encode: `encodeStripes` of the 64 MiB → 6 shards; GB/s of logical data.
 * - reconstruct: `reconstructShards` of the two missing data shards 0 and 1 from the other four;
 *   GB/s of logical data covered (64 MiB per call).
 * - single: one call at a time (at most one core busy: the main thread copies, then one pool
 *   thread codes). pool: `nproc` calls at once on separate buffers; per core = aggregate / nproc.
 * - latency of one 4 KiB-unit stripe (16 KiB of data) encode, the per-call floor of a small write.
 * Each figure is the median of 5 runs (the machine's cores are shared and noisy).
 *
 * This module is the codec half of the EC benchmark; the cluster half (a 4 MiB object write/read
 * on a 4+2 pool against a replicated pool and against Ceph) is added separately by the EC pool
 * work, as its own section.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { ProcessHarness, REPO_ROOT, freePorts, sleep, tsNodeArgs, waitFor } from '../harness.ts';
import { MonCluster } from '../mon-cluster.ts';
import { encodeStripes, reconstructShards } from '@aspen/osd/ec/codec.ts';
import type { EcLayout } from '@aspen/osd/ec/layout.ts';
import { cephEnv, runScript } from './_anchor.ts';

const DATA_BYTES = 64 * 1024 * 1024;
const RUNS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function fill(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer, 0, n >>> 2);
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return out;
}

/** Seconds of `calls` concurrent runs of `op` (each on its own input), median of RUNS. */
async function timeIt(calls: number, op: (c: number) => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: calls }, (_, c) => op(c)));
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(times);
}

const gbps = (bytes: number, seconds: number): string => (bytes / seconds / 1e9).toFixed(2);

async function codecSection(): Promise<string> {
  const cores = availableParallelism();
  const inputs = Array.from({ length: cores }, (_, c) => fill(DATA_BYTES, c + 1));
  const rows: string[] = [];
  for (const su of [4096, 65536, 1 << 20]) {
    const layout: EcLayout = { k: 4, m: 2, stripeUnitBytes: su };
    const shardSets = await Promise.all(inputs.map((d) => encodeStripes(layout, d)));
    const degraded = shardSets.map((s) => s.map((b, i) => (i < 2 ? null : b)));
    await reconstructShards(layout, degraded[0]!, [0, 1]); // warm-up
    const enc1 = await timeIt(1, () => encodeStripes(layout, inputs[0]!));
    const encN = await timeIt(cores, (c) => encodeStripes(layout, inputs[c]!));
    const rec1 = await timeIt(1, () => reconstructShards(layout, degraded[0]!, [0, 1]));
    const recN = await timeIt(cores, (c) => reconstructShards(layout, degraded[c]!, [0, 1]));
    rows.push(
      `| ${su >= 1 << 20 ? `${su >> 20} MiB` : `${su >> 10} KiB`} | ${gbps(DATA_BYTES, enc1)} | ${gbps(cores * DATA_BYTES, encN)} (${gbps(DATA_BYTES, encN)}) | ` +
        `${gbps(DATA_BYTES, rec1)} | ${gbps(cores * DATA_BYTES, recN)} (${gbps(DATA_BYTES, recN)}) |`,
    );
  }
  // Per-call floor: one 16 KiB stripe (4 KiB unit) at a time.
  const small: EcLayout = { k: 4, m: 2, stripeUnitBytes: 4096 };
  const stripe = fill(16384, 99);
  const lat: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t0 = process.hrtime.bigint();
    await encodeStripes(small, stripe);
    if (i >= 200) lat.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  return [
    '## ec — erasure-code codec (4+2, @ronomon/reed-solomon)',
    '',
    `64 MiB of logical data per call; GB/s of logical data (1 GB = 10^9 B); medians of ${RUNS} runs.`,
    `"single": one call at a time. "pool": ${cores} calls at once (nproc = ${cores}), aggregate (per core = aggregate / ${cores}).`,
    'Reconstruct = rebuild data shards 0 and 1 from shards 2–5.',
    '',
    '| stripe unit | encode single | encode pool (per core) | reconstruct single | reconstruct pool (per core) |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `One 16 KiB stripe (4 KiB unit) encode, one at a time: median ${median(lat).toFixed(1)} µs, ` +
      `p99 ${[...lat].sort((a, b) => a - b)[Math.floor(lat.length * 0.99)]!.toFixed(1)} µs (${lat.length} calls).`,
  ].join('\n');
}

// =============================================================================================
// Cluster half: 4 MiB objects on EC pools against replicated pools, Aspen and Ceph 16.2.
//
// Cluster A (Aspen): 3 `aspen-mon` + 3 `aspen-osd` (each OSD its own CRUSH host) with two pools
// of 32 PGs: `ecbench` (EC 2+1, crush-failure-domain=host, stripe_unit 4 KiB) and `repbench`
// (replicated, size 3, min_size 2). Ceph: the anchor (anchors/ceph/up.sh, NO_RGW=1 NO_MDS=1:
// 1 mon, 1 mgr, 3 BlueStore OSDs) with its `radosbench` pool (replicated, size 3, 32 PGs) and an
// `ecbench` pool of 32 PGs made here (`osd erasure-code-profile set ec21 k=2 m=1
// crush-failure-domain=osd`). Both clusters are up at once; each repetition runs every
// target in turn (the first rotates): 4 MiB write for SECONDS (`--no-cleanup`), 4 MiB seq read of
// those objects, cleanup (outside the measurement). Cluster B (Aspen), after A and Ceph are
// stopped: 3 mons + 6 OSDs with one EC 4+2 pool of 32 PGs, the same loop.
//
// CPU: utime+stime (+ reaped children) from /proc/<pid>/stat of the OSD processes (and, apart,
// the mons and Ceph's mgr) sampled when the bench client prints the line that starts its timed
// loop and when it prints its summary. Space: Aspen — `du -s -B1` of every OSD's store
// directory (allocated bytes) right before and right after the write phase, delta over the
// bytes the client wrote; Ceph — `ceph df` of the pool after the write phase (bytes_used over
// stored, once its object count has caught up), first repetition only (its stats lag).
//
// Knobs: BENCH_EC_SECONDS (20) per phase, BENCH_EC_REPS (3), BENCH_EC_WARMUP_SECONDS (5; 0 =
// none), BENCH_EC_SKIP_CEPH=1, BENCH_EC_SKIP_42=1, BENCH_EC_SKIP_CLUSTER=1, BENCH_EC_SKIP_CODEC=1,
// ASPEN_ANCHORS_DIR (default ../shared/anchors).

const execFileP = promisify(execFile);
const env = (k: string, d: string): string => process.env[k] ?? d;
const SECONDS = Number(env('BENCH_EC_SECONDS', '20'));
const REPS = Number(env('BENCH_EC_REPS', '3'));
const WARMUP_S = Number(env('BENCH_EC_WARMUP_SECONDS', '5'));
const SKIP_CEPH = env('BENCH_EC_SKIP_CEPH', '') === '1';
const SKIP_42 = env('BENCH_EC_SKIP_42', '') === '1';
const SKIP_CLUSTER = env('BENCH_EC_SKIP_CLUSTER', '') === '1';
const SKIP_CODEC = env('BENCH_EC_SKIP_CODEC', '') === '1';
const ANCHOR_DIR = join(resolve(env('ASPEN_ANCHORS_DIR', join(REPO_ROOT, '..', 'shared', 'anchors'))), 'ceph');
const CONCURRENCY = 16;
const OBJECT_BYTES = 4 * 2 ** 20;
const PG_NUM = 32;
const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const ASPEN_RADOS = join(REPO_ROOT, 'shared', 'bin', 'aspen-rados');
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64
const SETTLE_MS = 3_000;
const CLIENT_GRACE_MS = 180_000;
const LINGER_MS = 3_000;
/** How long to wait for another benchmark's Ceph to go away before starting ours. */
const ANCHOR_WAIT_MS = 15 * 60_000;
const GiB = 2 ** 30;

const log = (s: string): void => void process.stderr.write(`[bench ec] ${s}\n`);

type TargetKey = 'aspen-ec21' | 'aspen-rep3' | 'aspen-ec42' | 'ceph-ec21' | 'ceph-rep3';
const TARGET_KEYS: readonly TargetKey[] = ['aspen-ec21', 'aspen-rep3', 'aspen-ec42', 'ceph-ec21', 'ceph-rep3'];
const TARGET_LABEL: Record<TargetKey, string> = {
  'aspen-ec21': 'Aspen EC 2+1 (3 OSDs)',
  'aspen-rep3': 'Aspen replicated size 3 (3 OSDs)',
  'aspen-ec42': 'Aspen EC 4+2 (6 OSDs)',
  'ceph-ec21': 'Ceph 16.2 EC 2+1 (3 OSDs)',
  'ceph-rep3': 'Ceph 16.2 replicated size 3 (3 OSDs)',
};
/** Raw bytes per logical byte the layout implies: (k+m)/k, or the replica count. */
const EXPECTED_SPACE: Record<TargetKey, number> = { 'aspen-ec21': 1.5, 'aspen-rep3': 3, 'aspen-ec42': 1.5, 'ceph-ec21': 1.5, 'ceph-rep3': 3 };
type Mode = 'write' | 'seq';

interface Daemons { osd: number[]; other: number[] }
interface Figures { ops: number; elapsedS: number; mibPerS: number; avgLatMs: number }
interface Window { out: string; osdCpuS: number; otherCpuS: number; wallS: number }
interface Sample extends Figures { bytes: number; osdCpuS: number; otherCpuS: number; wallS: number; load1: number }
interface Space { ratio: number; rawBytes: number; logicalBytes: number; how: string }

interface Target {
  key: TargetKey;
  daemons: Daemons;
  bench(mode: Mode, seconds: number): Promise<Window>;
  cleanup(): Promise<void>;
  /** Called before a write phase; the result, after it, gives raw bytes per logical byte (or null). */
  space(first: boolean): Promise<(ops: number) => Promise<Space | null>>;
}

function statFields(path: string): string[] | null {
  try {
    const stat = readFileSync(path, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime+stime+cutime+cstime of `pid`, s (NaN once it is gone). */
function cpuSeconds(pid: number): number {
  const f = statFields(`/proc/${pid}/stat`);
  return f === null ? NaN : (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}
const sumCpu = (pids: number[]): number => pids.reduce((a, p) => a + cpuSeconds(p), 0);

let currentClient: ChildProcess | null = null;

/**
 * Runs a bench client; daemon CPU is sampled when its output matches `startRe` (its timed loop
 * starts) and `endRe` (its summary). A client still running LINGER_MS after its summary is
 * stopped by its pid. @throws Error on a failed run or a missing line.
 */
function runClient(cmd: string, args: string[], clientEnv: NodeJS.ProcessEnv, d: Daemons, startRe: RegExp, endRe: RegExp, seconds: number): Promise<Window> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env: clientEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    currentClient = child;
    type Snap = { atNs: bigint; osd: number; other: number };
    const snap = (): Snap => ({ atNs: process.hrtime.bigint(), osd: sumCpu(d.osd), other: sumCpu(d.other) });
    let out = '';
    let first: Snap | null = null;
    let last: Snap | null = null;
    let lingered = false;
    let lingerTimer: NodeJS.Timeout | undefined;
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (first === null && startRe.test(out)) first = snap();
      if (first !== null && last === null && endRe.test(out)) {
        last = snap();
        lingerTimer = setTimeout(() => {
          if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
            lingered = true;
            process.kill(child.pid, 'SIGTERM');
          }
        }, LINGER_MS);
      }
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }, seconds * 1000 + CLIENT_GRACE_MS);
    const done = (): void => {
      clearTimeout(timer);
      clearTimeout(lingerTimer);
      currentClient = null;
    };
    child.once('error', (err) => {
      done();
      rej(err);
    });
    child.once('exit', (code, signal) => {
      done();
      const a = first as Snap | null;
      const b = last as Snap | null;
      if ((code !== 0 && !(lingered && signal === 'SIGTERM')) || a === null || b === null) {
        rej(new Error(`${cmd} ${args.join(' ')} failed (${code === null ? `signal ${signal}` : `status ${code}`}): ${out.slice(-2000)}`));
        return;
      }
      res({ out, osdCpuS: b.osd - a.osd, otherCpuS: b.other - a.other, wallS: Number(b.atNs - a.atNs) / 1e9 });
    });
  });
}

function num(out: string, re: RegExp, what: string): number {
  const m = re.exec(out);
  if (m === null) throw new Error(`no '${what}' in the bench output:\n${out.slice(-2000)}`);
  return Number(m[1]);
}

function parseFigures(system: 'aspen' | 'ceph', out: string): Figures {
  if (system === 'aspen') {
    return {
      elapsedS: num(out, /^Total time run: ([\d.]+) s$/m, 'Total time run'),
      ops: num(out, /^Total ops: (\d+)$/m, 'Total ops'),
      mibPerS: num(out, /^Bandwidth \(MiB\/s\): ([\d.]+)$/m, 'Bandwidth'),
      avgLatMs: num(out, /^Average latency \(ms\): ([\d.]+)$/m, 'Average latency'),
    };
  }
  return {
    elapsedS: num(out, /^Total time run:\s+([\d.]+)/m, 'Total time run'),
    ops: num(out, /^Total (?:writes|reads) made:\s+(\d+)/m, 'Total writes/reads made'),
    mibPerS: num(out, /^Bandwidth \(MB\/sec\):\s+([\d.]+)/m, 'Bandwidth (MB/sec)'),
    avgLatMs: num(out, /^Average Latency\(s\):\s+([\d.]+)/m, 'Average Latency(s)') * 1000,
  };
}

/** Allocated bytes under `dirs` (du -s -B1, summed). */
async function duBytes(dirs: string[]): Promise<number> {
  const { stdout } = await execFileP('du', ['-s', '-B1', ...dirs], { encoding: 'utf8' });
  return stdout.trim().split('\n').reduce((a, l) => a + Number(l.split('\t')[0]), 0);
}

// ---------------------------------------------------------------------------------------------
// Aspen clusters

type PoolSpec = { name: string; key: TargetKey } & ({ kind: 'rep' } | { kind: 'ec'; k: number; m: number });
interface AspenCluster { targets: Target[]; client: RadosClient; harness: ProcessHarness }

async function startAspen(h: ProcessHarness, osds: number, pools: PoolSpec[]): Promise<AspenCluster> {
  const mons = await MonCluster.start(h, { count: 3 });
  await mons.leader();
  mons.close();
  const monAddrs = [...mons.addrs.values()].join(',');
  await Promise.all(Array.from({ length: osds }, async (_, i) => {
    const p = h.spawn({ name: `mkfs.osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', h.path(`osd.${i}`), '--mon', monAddrs, '--id', String(i)]) });
    if ((await p.exited).code !== 0) throw new Error(`mkfs of osd.${i} failed: ${h.log(`mkfs.osd.${i}`)}`);
  }));
  for (let i = 0; i < osds; i++) h.spawn({ name: `osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${i}`), '--mon', monAddrs, '--host', `host${i}`]) });
  const client = await RadosClient.connect({ monAddrs: [...mons.addrs.values()], opTimeoutMs: 120_000 });
  await waitFor(() => [...client.osdMap.osds.values()].filter((o) => o.up).length === osds, { timeoutMs: 120_000, what: `${osds} OSDs up`, intervalMs: 200 });
  for (const p of pools) {
    if (p.kind === 'ec') {
      await client.mon.command({ prefix: 'osd erasure-code-profile set', name: `${p.name}-profile`, profile: [`k=${p.k}`, `m=${p.m}`, 'crush-failure-domain=host'] });
      await client.mon.command({ prefix: 'osd pool create', pool: p.name, pg_num: PG_NUM, pgp_num: PG_NUM, pool_type: 'erasure', erasure_code_profile: `${p.name}-profile` });
    } else {
      await client.mon.command({ prefix: 'osd pool create', pool: p.name, pg_num: PG_NUM, pgp_num: PG_NUM, size: 3, min_size: 2 });
    }
  }
  await waitFor(() => pools.every((p) => { try { client.pool(p.name); return true; } catch { return false; } }), { timeoutMs: 20_000, what: 'the pools in the map' });
  const minEpoch = client.osdMap.epoch;
  let states: string[] = [];
  await waitFor(async () => {
    const r = await client.mon.command({ prefix: 'pg dump' });
    const rows = (r.data as { pg_stats: { state: string; reported_epoch: number }[] }).pg_stats;
    states = rows.map((p) => (p.reported_epoch >= minEpoch ? p.state : 'stale'));
    return states.length === PG_NUM * pools.length && states.every((s) => s === 'active+clean');
  }, { timeoutMs: 300_000, what: 'every PG active+clean', intervalMs: 1_000 }).catch((err: unknown) => {
    const counts = new Map<string, number>();
    for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
    throw new Error(`${String(err)}; states: ${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}`);
  });
  const daemons: Daemons = {
    osd: Array.from({ length: osds }, (_, i) => h.daemon(`osd.${i}`).pid),
    other: [...mons.addrs.keys()].map((n) => h.daemon(`mon.${n}`).pid),
  };
  const storeDirs = Array.from({ length: osds }, (_, i) => h.path(`osd.${i}`));
  const targets = pools.map((p): Target => {
    const io = client.ioctx(p.name);
    return {
      key: p.key,
      daemons,
      async bench(mode, seconds) {
        const args = [ASPEN_RADOS, '-m', monAddrs, '-p', p.name, 'bench', String(seconds), mode, '-t', String(CONCURRENCY), '-b', String(OBJECT_BYTES)];
        if (mode === 'write') args.push('--no-cleanup');
        return runClient(process.execPath, args, process.env, daemons, /^Maintaining \d+ concurrent/m, /^p99 latency/m, seconds);
      },
      async cleanup() {
        const names = (await io.listObjects()).filter((n) => n.startsWith('benchmark_data_'));
        let next = 0;
        await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
          while (next < names.length) await io.remove(names[next++]!);
        }));
        const left = (await io.listObjects()).length;
        if (left !== 0) throw new Error(`aspen cleanup left ${left} objects in ${p.name}`);
      },
      async space() {
        const before = await duBytes(storeDirs);
        return async (ops) => {
          const after = await duBytes(storeDirs);
          const logical = ops * OBJECT_BYTES;
          return { ratio: (after - before) / logical, rawBytes: after - before, logicalBytes: logical, how: `du of ${osds} stores, delta over the write` };
        };
      },
    };
  });
  return { targets, client, harness: h };
}

// ---------------------------------------------------------------------------------------------
// Ceph anchor

interface CephAnchor { targets: Target[]; version: string; upS: number; health: string }



function cephCli(conf: string, args: string[]): string {
  return execFileSync('ceph', ['-c', conf, '--connect-timeout', '10', ...args], { encoding: 'utf8', env: cephEnv(), timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** What else on this machine looks like a running Ceph anchor (its default ports, ceph-osd processes not ours). */
function otherCeph(): string {
  let ports = '';
  try {
    ports = execFileSync('ss', ['-ltn'], { encoding: 'utf8' }).split('\n').filter((l) => /:(13300|16789|17480)\b/.test(l)).join('; ');
  } catch {
    // no ss: the process scan below stands
  }
  const osds = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'ceph-osd';
    } catch {
      return false;
    }
  });
  return [ports === '' ? '' : `listening: ${ports}`, osds.length === 0 ? '' : `ceph-osd pids ${osds.join(' ')}`].filter((s) => s !== '').join(', ');
}

async function pgsClean(conf: string, what: string): Promise<void> {
  let pgStat = '';
  await waitFor(() => {
    pgStat = cephCli(conf, ['pg', 'stat']);
    const m = /^(\d+) pgs: (\d+) active\+clean;/.exec(pgStat);
    return m !== null && m[1] === m[2];
  }, { timeoutMs: 180_000, intervalMs: 2_000, what }).catch((err: unknown) => {
    throw new Error(`${String(err)}; pg stat: ${pgStat}`);
  });
}

async function startCeph(data: string): Promise<CephAnchor> {
  if (!existsSync(join(ANCHOR_DIR, 'up.sh'))) throw new Error(`no ${join(ANCHOR_DIR, 'up.sh')}`);
  const [v1, v2] = await freePorts(2);
  const t0 = process.hrtime.bigint();
  await runScript(join(ANCHOR_DIR, 'up.sh'), [data], cephEnv({ NO_RGW: '1', NO_MDS: '1', MON_V1_PORT: String(v1), MON_V2_PORT: String(v2) }), 600_000);
  const conf = join(data, 'ceph.conf');
  await pgsClean(conf, 'every Ceph PG active+clean');
  if (!cephCli(conf, ['osd', 'pool', 'ls']).split('\n').includes('radosbench')) throw new Error('up.sh made no pool radosbench');
  cephCli(conf, ['osd', 'erasure-code-profile', 'set', 'ec21', 'k=2', 'm=1', 'crush-failure-domain=osd']);
  cephCli(conf, ['osd', 'pool', 'create', 'ecbench', String(PG_NUM), String(PG_NUM), 'erasure', 'ec21']);
  cephCli(conf, ['osd', 'pool', 'set', 'ecbench', 'pg_autoscale_mode', 'off']);
  cephCli(conf, ['osd', 'pool', 'application', 'enable', 'ecbench', 'rados']);
  await pgsClean(conf, 'every Ceph PG active+clean after creating ecbench');
  const upS = Number(process.hrtime.bigint() - t0) / 1e9;
  const pid = (name: string): number => Number(readFileSync(join(data, 'pids', `${name}.pid`), 'utf8').trim());
  const daemons: Daemons = {
    osd: readdirSync(join(data, 'pids')).filter((f) => /^osd\.\d+\.pid$/.test(f)).map((f) => pid(f.slice(0, -4))),
    other: [pid('mon.a'), ...(existsSync(join(data, 'pids', 'mgr.x.pid')) ? [pid('mgr.x')] : [])],
  };
  if (daemons.osd.length !== 3) throw new Error(`expected 3 OSD pid files in ${data}/pids, found ${daemons.osd.length}`);
  const version = execFileSync('ceph', ['--version'], { encoding: 'utf8' }).trim().replace(/ \([0-9a-f]{40}\)/, '');
  const health = cephCli(conf, ['health']);
  const mk = (key: TargetKey, pool: string): Target => ({
    key,
    daemons,
    async bench(mode, seconds) {
      const args = ['-c', conf, '-p', pool, 'bench', String(seconds), mode, '-t', String(CONCURRENCY)];
      if (mode === 'write') args.push('-b', String(OBJECT_BYTES), '--no-cleanup');
      return runClient('rados', args, cephEnv(), daemons, /^\s*sec\s+Cur ops/m, /^Min latency/m, seconds);
    },
    async cleanup() {
      await runScript('rados', ['-c', conf, '-p', pool, 'cleanup'], cephEnv(), 600_000);
    },
    async space(first) {
      return async (ops) => {
        if (!first) return null;
        // The pool's stats reach `ceph df` through the mgr a few seconds late: wait for the count.
        let last: { stored: number; bytes_used: number; objects: number } | undefined;
        for (let i = 0; i < 30; i++) {
          const df = JSON.parse(cephCli(conf, ['df', '-f', 'json'])) as { pools: { name: string; stats: { stored: number; bytes_used: number; objects: number } }[] };
          last = df.pools.find((p) => p.name === pool)?.stats;
          if (last !== undefined && last.objects >= ops && last.stored >= ops * OBJECT_BYTES) break;
          await sleep(1_000);
        }
        if (last === undefined) return null;
        return { ratio: last.bytes_used / last.stored, rawBytes: last.bytes_used, logicalBytes: last.stored, how: `ceph df: bytes_used / stored (${last.objects} objects)` };
      };
    },
  });
  return { targets: [mk('ceph-ec21', 'ecbench'), mk('ceph-rep3', 'radosbench')], version, upS, health };
}

function stopCeph(data: string): void {
  try {
    if (existsSync(join(ANCHOR_DIR, 'down.sh'))) execFileSync(join(ANCHOR_DIR, 'down.sh'), [data, '--wipe'], { env: cephEnv(), stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  } catch (err) {
    log(`down.sh ${data} --wipe failed: ${String(err)}`);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The loop

type Samples = Map<TargetKey, { write: Sample[]; seq: Sample[]; space: Space[] }>;

async function phase(t: Target, mode: Mode, seconds: number): Promise<Sample> {
  const load1 = loadavg()[0]!;
  const w = await t.bench(mode, seconds);
  if (Number.isNaN(w.osdCpuS) || Number.isNaN(w.otherCpuS)) throw new Error(`a daemon of ${t.key} exited during ${mode}`);
  const f = parseFigures(t.key.startsWith('ceph') ? 'ceph' : 'aspen', w.out);
  return { ...f, bytes: f.ops * OBJECT_BYTES, osdCpuS: w.osdCpuS, otherCpuS: w.otherCpuS, wallS: w.wallS, load1 };
}

async function repetition(t: Target, r: number, samples: Samples): Promise<void> {
  const s = samples.get(t.key)!;
  const probe = await t.space(r === 0);
  const w = await phase(t, 'write', SECONDS);
  s.write.push(w);
  const sp = await probe(w.ops);
  if (sp !== null) s.space.push(sp);
  const q = await phase(t, 'seq', SECONDS);
  s.seq.push(q);
  log(`run ${r + 1}/${REPS} ${TARGET_LABEL[t.key]}: write ${f1(w.mibPerS)} MiB/s (OSD CPU ${f2(w.osdCpuS)} s), seq ${f1(q.mibPerS)} MiB/s (OSD CPU ${f2(q.osdCpuS)} s)` +
    `${sp === null ? '' : `; space ${f2(sp.ratio)}× (${sp.how})`}; load ${f2(w.load1)}`);
  const t0 = process.hrtime.bigint();
  await t.cleanup();
  log(`${t.key} cleanup ${f1(Number(process.hrtime.bigint() - t0) / 1e9)} s`);
  await sleep(SETTLE_MS);
}

async function warmUp(t: Target): Promise<void> {
  if (WARMUP_S <= 0) return;
  await t.bench('write', WARMUP_S);
  await t.cleanup();
  log(`${t.key} warmed up (${WARMUP_S} s of 4 MiB writes, cleaned up)`);
}

/** Runs REPS repetitions over `targets`, the first rotating. Aspen failing throws; Ceph failing is noted. */
async function loop(targets: Target[], samples: Samples, notes: string[]): Promise<void> {
  const failed = new Set<TargetKey>();
  const guarded = async (t: Target, what: string, f: () => Promise<void>): Promise<void> => {
    if (failed.has(t.key)) return;
    try {
      await f();
    } catch (err) {
      if (!t.key.startsWith('ceph')) throw err;
      failed.add(t.key);
      const msg = `**${TARGET_LABEL[t.key]} FAILED** in ${what} (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
      notes.push(msg);
      log(msg);
    }
  };
  for (const t of targets) await guarded(t, 'the warm-up', () => warmUp(t));
  await sleep(SETTLE_MS);
  for (let r = 0; r < REPS; r++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length]!;
      await guarded(t, `repetition ${r + 1}`, () => repetition(t, r, samples));
    }
  }
}

async function waitAnchorFree(notes: string[]): Promise<void> {
  const t0 = Date.now();
  let seen = otherCeph();
  if (seen === '') return;
  log(`another Ceph seems to be running (${seen}); waiting up to ${ANCHOR_WAIT_MS / 60_000} min`);
  while (seen !== '' && Date.now() - t0 < ANCHOR_WAIT_MS) {
    await sleep(10_000);
    seen = otherCeph();
  }
  notes.push(seen === '' ? `Waited ${f0((Date.now() - t0) / 1000)} s for another benchmark's Ceph to stop before starting the anchor`
    : `Another Ceph was still running after ${ANCHOR_WAIT_MS / 60_000} min (${seen}); the anchor was started anyway, on other ports`);
}

export async function clusterSection(): Promise<string> {
  const tStart = process.hrtime.bigint();
  const samples: Samples = new Map(TARGET_KEYS.map((k) => [k, { write: [], seq: [], space: [] }]));
  const notes: string[] = [];
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]!), 5_000);
  const cephData = mkdtempSync(join(tmpdir(), 'aspen-bench-ec-ceph-'));
  let cephStarted = false;
  const stopCephNow = (): void => {
    if (cephStarted) stopCeph(cephData);
    else rmSync(cephData, { recursive: true, force: true });
    cephStarted = false;
  };
  const onSignal = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (currentClient?.pid !== undefined && currentClient.exitCode === null) process.kill(currentClient.pid, 'SIGKILL');
    stopCephNow();
  };
  process.prependListener('SIGINT', onSignal);
  process.prependListener('SIGTERM', onSignal);
  process.on('exit', stopCephNow);
  let ceph: CephAnchor | null = null;
  let a: AspenCluster | null = null;
  let b: AspenCluster | null = null;
  const hA = new ProcessHarness();
  try {
    const cephUp = (async (): Promise<void> => {
      if (SKIP_CEPH) {
        notes.push('Ceph anchor skipped (BENCH_EC_SKIP_CEPH=1)');
        return;
      }
      await waitAnchorFree(notes);
      try {
        cephStarted = true;
        ceph = await startCeph(cephData);
        log(`ceph: ${ceph.version} up with pool ecbench in ${f0(ceph.upS)} s (${ceph.health})`);
      } catch (err) {
        const msg = `**Ceph anchor NOT run**: it failed to start (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
        notes.push(msg);
        log(msg);
        stopCephNow();
      }
    })();
    const t0 = process.hrtime.bigint();
    // Ceph's up.sh and cluster A start at once (they are measured only when both are up).
    let aspenUpS = NaN;
    const aspenUp = startAspen(hA, 3, [{ name: 'ecbench', key: 'aspen-ec21', kind: 'ec', k: 2, m: 1 }, { name: 'repbench', key: 'aspen-rep3', kind: 'rep' }])
      .then((c) => { aspenUpS = Number(process.hrtime.bigint() - t0) / 1e9; return c; });
    const [, aspenA] = await Promise.all([cephUp, aspenUp.catch((err: unknown) => err as Error)]);
    if (aspenA instanceof Error) throw aspenA;
    a = aspenA;
    log(`aspen A: 3 mons + 3 OSDs, pools ecbench (2+1) + repbench (size 3) active+clean in ${f0(aspenUpS)} s; dir ${hA.dir}`);
    const cephTargets = (ceph as CephAnchor | null)?.targets ?? [];
    await loop([...a.targets, ...cephTargets], samples, notes);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (a !== null) await a.client.close();
    await hA.teardown();
    stopCephNow();
    process.removeListener('exit', stopCephNow);
  }
  if (SKIP_42) notes.push('Aspen EC 4+2 skipped (BENCH_EC_SKIP_42=1)');
  else {
    const hB = new ProcessHarness();
    try {
      const t0 = process.hrtime.bigint();
      b = await startAspen(hB, 6, [{ name: 'ecbench', key: 'aspen-ec42', kind: 'ec', k: 4, m: 2 }]);
      log(`aspen B: 3 mons + 6 OSDs, pool ecbench (4+2) active+clean in ${f0(Number(process.hrtime.bigint() - t0) / 1e9)} s`);
      await loop(b.targets, samples, notes);
    } catch (err) {
      // On 2 cores, 6 OSDs + 3 mons + the client may time out: report what there is.
      const msg = `**Aspen EC 4+2 on 6 OSDs FAILED** (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); its figures are from the runs before, if any`;
      notes.push(msg);
      log(msg);
    } finally {
      if (b !== null) await b.client.close();
      await hB.teardown();
    }
  }
  clearInterval(loadTimer);
  const wallS = Number(process.hrtime.bigint() - tStart) / 1e9;
  log(`cluster half: ${f0(wallS)} s`);
  return report(samples, notes, ceph, loads, wallS);
}

// ---------------------------------------------------------------------------------------------
// Report

function medianOf(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const fx = (d: number) => (x: number): string => (!Number.isFinite(x) ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const f0 = fx(0);
const f1 = fx(1);
const f2 = fx(2);

function report(samples: Samples, notes: string[], ceph: CephAnchor | null, loads: number[], wallS: number): string {
  const S = (k: TargetKey): { write: Sample[]; seq: Sample[]; space: Space[] } => samples.get(k)!;
  const mibs = (s: Sample): number => s.mibPerS;
  const osdPerGiB = (s: Sample): number => s.osdCpuS / (s.bytes / GiB);
  const allPerGiB = (s: Sample): number => (s.osdCpuS + s.otherCpuS) / (s.bytes / GiB);
  const runs = (xs: Sample[], f: (s: Sample) => number, fmt: (x: number) => string): string =>
    xs.length === 0 ? '—' : `**${fmt(medianOf(xs.map(f)))}**${xs.length > 1 ? ` (${xs.map((s) => fmt(f(s))).join(', ')})` : ''}`;
  /** a/b of `f`, paired by repetition, median. */
  const ratio = (ka: TargetKey, kb: TargetKey, mode: Mode, f: (s: Sample) => number): number => {
    const xa = S(ka)[mode];
    const xb = S(kb)[mode];
    return medianOf(xa.map((s, i) => (xb[i] === undefined ? NaN : f(s) / f(xb[i]!))));
  };
  const space = (k: TargetKey): string => {
    const xs = S(k).space;
    return xs.length === 0 ? '—' : `**${f2(medianOf(xs.map((s) => s.ratio)))}**${xs.length > 1 ? ` (${xs.map((s) => f2(s.ratio)).join(', ')})` : ''}`;
  };
  const present = TARGET_KEYS.filter((k) => S(k).write.length > 0);
  const ls = [...loads].sort((p, q) => p - q);
  const lines = [
    `## Cluster: 4 MiB objects on EC pools vs replicated, Aspen vs ${ceph?.version ?? 'Ceph 16.2'}`,
    '',
    `${CONCURRENCY} ops in flight, 4 MiB objects, ${SECONDS} s per phase; per repetition and pool: write (\`--no-cleanup\`), sequential read of those objects, cleanup (unmeasured). ` +
    `Median of ${REPS} repetition(s) (runs listed in order), ratios paired by repetition. Each pool had an unmeasured ${WARMUP_S} s write warm-up. ` +
    'Cluster A: 3 `aspen-mon` + 3 `aspen-osd` (each OSD its own CRUSH host) with pools `ecbench` (EC 2+1, crush-failure-domain=host, stripe_unit 4 KiB) and `repbench` (size 3, min_size 2), 32 PGs each, ' +
    'load from `shared/bin/aspen-rados bench`. Ceph: anchors/ceph/up.sh (NO_RGW=1 NO_MDS=1; 1 mon, 1 mgr, 3 BlueStore OSDs) with `radosbench` (size 3) and `ecbench` (EC 2+1, crush-failure-domain=osd, jerasure), 32 PGs each, load from `rados bench`; ' +
    'cluster A and Ceph were up at once and took turns (the first rotating). Cluster B (after A and Ceph were stopped): 3 mons + 6 OSDs, one EC 4+2 pool of 32 PGs. ' +
    '"MiB/s" is 2^20 B/s (what `rados bench` prints as MB/sec).',
    '',
    `**The machine is shared and noisy**: 2 cores for every daemon, every client and other people's tests; the 1-minute load average during this run was ${f1(ls[0] ?? NaN)}–${f1(ls[ls.length - 1] ?? NaN)} (median ${f1(medianOf(ls))}). Compare ratios within the run, not absolute figures.`,
    '',
    ...notes.filter((n) => n.startsWith('**')).flatMap((n) => [`${n}.`, '']),
    '| pool | write MiB/s (runs) | seq read MiB/s (runs) | OSD CPU s/GiB write · read | all daemons CPU s/GiB write · read | bytes on disk per logical byte (expected) |',
    '|---|---:|---:|---:|---:|---:|',
    ...present.map((k) => `| ${TARGET_LABEL[k]} | ${runs(S(k).write, mibs, f1)} | ${runs(S(k).seq, mibs, f1)} | ${f2(medianOf(S(k).write.map(osdPerGiB)))} · ${f2(medianOf(S(k).seq.map(osdPerGiB)))} | ` +
      `${f2(medianOf(S(k).write.map(allPerGiB)))} · ${f2(medianOf(S(k).seq.map(allPerGiB)))} | ${space(k)} (${f2(EXPECTED_SPACE[k])}) |`),
    '',
    'Ratios (a / b, paired by repetition, median). CPU is OSD-process CPU per GiB the client wrote or read (lower is better).',
    '',
    '| a / b | write MiB/s | seq read MiB/s | OSD CPU/GiB write | OSD CPU/GiB read |',
    '|---|---:|---:|---:|---:|',
  ];
  const pairs: [TargetKey, TargetKey, string][] = [
    ['aspen-ec21', 'aspen-rep3', ''],
    ['aspen-ec42', 'aspen-rep3', ' (different clusters: 6 vs 3 OSDs, not at the same time)'],
    ['aspen-ec21', 'ceph-ec21', ''],
    ['aspen-rep3', 'ceph-rep3', ''],
    ['ceph-ec21', 'ceph-rep3', ''],
  ];
  for (const [ka, kb, why] of pairs) {
    if (S(ka).write.length === 0 || S(kb).write.length === 0) continue;
    lines.push(`| ${TARGET_LABEL[ka]} / ${TARGET_LABEL[kb]}${why} | **${f2(ratio(ka, kb, 'write', mibs))}** | **${f2(ratio(ka, kb, 'seq', mibs))}** | ${f2(ratio(ka, kb, 'write', osdPerGiB))} | ${f2(ratio(ka, kb, 'seq', osdPerGiB))} |`);
  }
  lines.push(
    '',
    '<details><summary>Every run</summary>',
    '',
    '| pool | phase | run | MiB/s | ops | elapsed s | avg ms | OSD CPU s | mons/mgr CPU s | OSD cores | load1 at start |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const k of present) for (const mode of ['write', 'seq'] as const) S(k)[mode].forEach((s, i) => {
    lines.push(`| ${TARGET_LABEL[k]} | ${mode} | ${i + 1} | ${f1(s.mibPerS)} | ${s.ops} | ${f2(s.elapsedS)} | ${f1(s.avgLatMs)} | ${f2(s.osdCpuS)} | ${f2(s.otherCpuS)} | ${f2(s.osdCpuS / s.wallS)} | ${f2(s.load1)} |`);
  });
  lines.push('', 'Space samples:', '');
  for (const k of present) for (const s of S(k).space) lines.push(`- ${TARGET_LABEL[k]}: ${f2(s.ratio)} = ${f0(s.rawBytes / 2 ** 20)} MiB raw / ${f0(s.logicalBytes / 2 ** 20)} MiB logical (${s.how})`);
  lines.push('', '</details>', '');
  if (ceph !== null) notes.push(`Ceph health before the runs: ${ceph.health}; up.sh plus the EC pool to all PGs active+clean took ${f0(ceph.upS)} s`);
  notes.push('`rados bench seq` stops when it has read every object the write phase left (often before the window ends); `aspen-rados bench seq` wraps around and reads for the whole window');
  notes.push('Aspen space = allocated bytes (du -B1) of the OSD store directories after the write minus before it (the SQLite metadata and WAL growth included), over the bytes written; Ceph space = `ceph df` bytes_used / stored of the pool after the first write phase');
  notes.push('**Aspen EC space figures are not the layout\'s overhead**: a deleted EC object keeps its shard as a rollback stash (generation 1, ADR 0009) until an object of the same name is written again, so each cleanup leaves the shards behind and the next write phase (same object names) frees them while it writes, which lowers its du delta (Ceph\'s `ceph df` and Aspen\'s replicated pool are unaffected)');
  notes.push(`The cluster half (start-ups, ${REPS} repetition(s), cleanups, teardowns) took ${f0(wallS)} s`);
  for (const n of notes) if (!n.startsWith('**')) lines.push(`- ${n}.`);
  lines.push(
    '',
    'Commands: `npm run bench -- ec` (knobs: BENCH_EC_SECONDS, BENCH_EC_REPS, BENCH_EC_WARMUP_SECONDS, BENCH_EC_SKIP_CEPH=1, BENCH_EC_SKIP_42=1, BENCH_EC_SKIP_CLUSTER=1, BENCH_EC_SKIP_CODEC=1). Per repetition and pool:',
    '',
    '```sh',
    '# Aspen (MONS = the mons\' loopback addresses)',
    'aspen osd erasure-code-profile set ecbench-profile k=2 m=1 crush-failure-domain=host   # 4+2 on cluster B',
    `aspen osd pool create ecbench ${PG_NUM} erasure ecbench-profile; aspen osd pool create repbench ${PG_NUM} ${PG_NUM} --size 3 --min-size 2`,
    `shared/bin/aspen-rados -m MONS -p POOL bench ${SECONDS} write -t ${CONCURRENCY} -b ${OBJECT_BYTES} --no-cleanup`,
    `shared/bin/aspen-rados -m MONS -p POOL bench ${SECONDS} seq -t ${CONCURRENCY} -b ${OBJECT_BYTES}`,
    '# cleanup: remove every benchmark_data_* object (RadosClient, 16 at a time)',
    '# Ceph (DATA = a temp dir)',
    'NO_RGW=1 NO_MDS=1 /work/shared/anchors/ceph/up.sh DATA',
    'ceph -c DATA/ceph.conf osd erasure-code-profile set ec21 k=2 m=1 crush-failure-domain=osd',
    `ceph -c DATA/ceph.conf osd pool create ecbench ${PG_NUM} ${PG_NUM} erasure ec21`,
    `rados -c DATA/ceph.conf -p POOL bench ${SECONDS} write -t ${CONCURRENCY} -b ${OBJECT_BYTES} --no-cleanup   # POOL = ecbench, radosbench`,
    `rados -c DATA/ceph.conf -p POOL bench ${SECONDS} seq -t ${CONCURRENCY}`,
    'rados -c DATA/ceph.conf -p POOL cleanup',
    '/work/shared/anchors/ceph/down.sh DATA --wipe',
    '```',
  );
  return lines.join('\n');
}

export async function run(): Promise<string> {
  const parts: string[] = [];
  if (!SKIP_CODEC) parts.push(await codecSection());
  if (!SKIP_CLUSTER) parts.push(await clusterSection());
  return parts.join('\n\n');
}
