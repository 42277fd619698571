/**
 * Object benchmark (`npm run bench -- rados`; issue 4 "Performance"): write and sequential-read
 * throughput of 4 MiB objects and ops/s of 4 KiB objects, 16 ops in flight, on 3 OSDs with a
 * size-3 / min_size-2 pool of 32 PGs, side by side in the same run with `rados bench` on a real
 * Ceph 16.2 (the anchor in /work/shared/anchors/ceph: up.sh with NO_RGW=1 NO_MDS=1 — 1 mon,
 * 1 mgr, 3 BlueStore OSDs on sparse files, pool `radosbench` of 32 PGs with an OSD-level rule).
 *
 * Aspen: 3 `aspen-mon` + 3 `aspen-osd` processes (each OSD under its own CRUSH host, so size 3
 * places on one machine) on free loopback ports in a temp dir, pool `radosbench` created with
 * `osd pool create` (32 PGs, size 3, min_size 2); the load is `shared/bin/aspen-rados bench`
 * (write with --no-cleanup, then seq over those objects), the same shape as `rados bench`.
 * Both clusters run at once; each repetition measures one system, then the other (the first
 * alternates), and for each: 4 MiB write, 4 MiB seq, cleanup, 4 KiB write, 4 KiB seq, cleanup.
 * The cleanups (and a settle pause) are outside the measurements.
 *
 * CPU: utime+stime (+ reaped children) from /proc/<pid>/stat of every daemon of the measured
 * cluster (Aspen: 3 mons + 3 OSDs; Ceph: mon + mgr + 3 OSDs — Ceph's mgr aggregates the PG
 * stats that Aspen's mons aggregate), sampled when the client prints the line that starts its
 * timed loop (`Maintaining …` from aspen-rados, the `sec Cur ops` header from rados) and when it
 * prints its summary, so client start-up, connecting and exit are outside (the idle cost of both
 * clusters is measured and printed). The client's own CPU is reported separately, over the same
 * window (/proc/<client pid>/stat) and over its whole life (this process's cutime+cstime grow by
 * exactly the reaped client's CPU). CPU per GiB counts client bytes (not ×3 replicas); per 1,000
 * ops counts client ops.
 *
 * Knobs (environment): BENCH_RADOS_SECONDS (20) per phase, BENCH_RADOS_REPS (3; medians shown,
 * ratios paired per repetition), BENCH_RADOS_WARMUP_SECONDS (5; an unmeasured 4 MiB and 4 KiB
 * write on each system before the first repetition, 0 = none), BENCH_RADOS_SKIP_CEPH=1, BENCH_RADOS_SKIP_ASPEN=1 (to check the
 * anchor side alone), ASPEN_ANCHORS_DIR (default ../shared/anchors from the repo root).
 * A Ceph that fails to start is reported in the section; Aspen's figures still are.
 * Not a test: nothing here asserts on timing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { ProcessHarness, REPO_ROOT, freePorts, sleep, tsNodeArgs, waitFor } from '../harness.ts';
import { MonCluster } from '../mon-cluster.ts';
import { cephEnv, runScript } from './_anchor.ts';

const env = (k: string, d: string): string => process.env[k] ?? d;
const SECONDS = Number(env('BENCH_RADOS_SECONDS', '20'));
const REPS = Number(env('BENCH_RADOS_REPS', '3'));
const WARMUP_S = Number(env('BENCH_RADOS_WARMUP_SECONDS', '5'));
const SKIP_CEPH = env('BENCH_RADOS_SKIP_CEPH', '') === '1';
const SKIP_ASPEN = env('BENCH_RADOS_SKIP_ASPEN', '') === '1';
const ANCHOR_DIR = join(resolve(env('ASPEN_ANCHORS_DIR', join(REPO_ROOT, '..', 'shared', 'anchors'))), 'ceph');
const CONCURRENCY = 16;
const POOL = 'radosbench';
const PG_NUM = 32;
const OSDS = 3;
const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const ASPEN_RADOS = join(REPO_ROOT, 'shared', 'bin', 'aspen-rados');
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64
const SETTLE_MS = 3_000;
const IDLE_WINDOW_MS = 5_000;
/** A bench client that runs this much past its SECONDS is killed (by its pid) and the run fails. */
const CLIENT_GRACE_MS = 180_000;
/** A client still running this long after printing its summary is stopped (its figures are in). */
const LINGER_MS = 3_000;
const GiB = 2 ** 30;

const log = (s: string): void => void process.stderr.write(`[bench rados] ${s}\n`);

interface Workload { key: string; label: string; mode: 'write' | 'seq'; sizeBytes: number; seconds: number }
const WORKLOADS: readonly Workload[] = [
  { key: 'write-4M', label: '4 MiB write', mode: 'write', sizeBytes: 4 * 2 ** 20, seconds: SECONDS },
  { key: 'seq-4M', label: '4 MiB seq read', mode: 'seq', sizeBytes: 4 * 2 ** 20, seconds: SECONDS },
  { key: 'write-4K', label: '4 KiB write', mode: 'write', sizeBytes: 4096, seconds: SECONDS },
  { key: 'seq-4K', label: '4 KiB seq read', mode: 'seq', sizeBytes: 4096, seconds: SECONDS },
];
const SYSTEMS = ['aspen', 'ceph'] as const;
type System = (typeof SYSTEMS)[number];
const LABEL: Record<System, string> = { aspen: 'Aspen', ceph: 'Ceph 16.2' };

/** Daemon pids of one cluster, by role. */
interface Daemons { mon: number[]; osd: number[]; mgr: number[] }
type Role = keyof Daemons;
const ROLES: readonly Role[] = ['mon', 'osd', 'mgr'];

/** What a bench client printed in its summary. */
interface Figures { ops: number; elapsedS: number; mibPerS: number; avgLatMs: number; p99LatMs: number }

/** One measured phase of one system. */
interface Sample extends Figures {
  opsPerS: number;
  bytes: number;
  /** Daemon CPU over the client's timed window, s, by role. */
  cpuS: Record<Role, number>;
  serverCpuS: number;
  /** serverCpuS over the window's wall time: cores. */
  serverCores: number;
  /** The client's CPU over its timed window, s. */
  clientCpuS: number;
  /** The client's CPU over its whole process life (start-up, connecting, exit), s. */
  clientLifetimeCpuS: number;
  /** The client did not exit by itself after its summary and was stopped. */
  lingered: boolean;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (/proc)

function statFields(path: string): string[] | null {
  try {
    const stat = readFileSync(path, 'utf8');
    // after the comm field: f[0] = state (field 3) … f[11] utime (14), f[12] stime (15), f[13] cutime (16), f[14] cstime (17)
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime+stime+cutime+cstime of `pid` in seconds (NaN if the process is gone). */
function cpuSeconds(pid: number): number {
  const f = statFields(`/proc/${pid}/stat`);
  return f === null ? NaN : (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/** CPU of this process's reaped children, s: grows by a child's whole CPU when it is reaped. */
function reapedChildrenCpuSeconds(): number {
  const f = statFields('/proc/self/stat');
  return f === null ? NaN : (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function daemonsCpu(d: Daemons): Record<Role, number> {
  const sum = (pids: number[]): number => pids.reduce((a, p) => a + cpuSeconds(p), 0);
  return { mon: sum(d.mon), osd: sum(d.osd), mgr: sum(d.mgr) };
}

/** Cores used by the daemons of `d` over `ms` of (supposed) idleness. */
async function idleCores(d: Daemons, ms: number): Promise<number> {
  const a = daemonsCpu(d);
  await sleep(ms);
  const b = daemonsCpu(d);
  return ROLES.reduce((s, r) => s + b[r] - a[r], 0) / (ms / 1000);
}

// ---------------------------------------------------------------------------------------------
// Bench clients

let currentClient: ChildProcess | null = null;

/** CPU counters at one instant: the daemons' and the client's (s), and the time. */
interface Snapshot { atNs: bigint; daemons: Record<Role, number>; clientCpuS: number }

/** The measured window of one client run: from its start line to its summary line. */
interface Window { out: string; serverCpuS: Record<Role, number>; clientCpuS: number; wallS: number; clientLifetimeCpuS: number; lingered: boolean }

/**
 * Runs a bench client to its end. The window is measured from the moment its output matches
 * `startRe` (the line it prints as its timed loop starts) to the moment it matches `endRe` (its
 * summary): daemon and client CPU are sampled from /proc at both. A client that is still running
 * {@link LINGER_MS} after its summary is stopped (SIGTERM, by its pid) — its figures are in.
 * @throws Error on a failed run or a missing start/summary line.
 */
function runClient(cmd: string, args: string[], clientEnv: NodeJS.ProcessEnv, daemons: Daemons, startRe: RegExp, endRe: RegExp): Promise<Window> {
  return new Promise((res, rej) => {
    const cpu0 = reapedChildrenCpuSeconds();
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env: clientEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    currentClient = child;
    const snap = (): Snapshot => ({ atNs: process.hrtime.bigint(), daemons: daemonsCpu(daemons), clientCpuS: child.pid === undefined ? NaN : cpuSeconds(child.pid) });
    let out = '';
    let first: Snapshot | null = null;
    let last: Snapshot | null = null;
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
    }, SECONDS * 1000 + CLIENT_GRACE_MS);
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
      // Reaped by now, so its whole CPU is in our cutime/cstime.
      const clientLifetimeCpuS = reapedChildrenCpuSeconds() - cpu0;
      const a = first as Snapshot | null;
      const b = last as Snapshot | null;
      if ((code !== 0 && !(lingered && signal === 'SIGTERM')) || a === null || b === null) {
        const why = code !== 0 && !lingered ? (code === null ? `signal ${signal}` : `status ${code}`) : `no ${a === null ? 'start' : 'summary'} line`;
        rej(new Error(`${cmd} ${args.join(' ')} failed (${why}): ${out.slice(-2000)}`));
        return;
      }
      const serverCpuS = { mon: b.daemons.mon - a.daemons.mon, osd: b.daemons.osd - a.daemons.osd, mgr: b.daemons.mgr - a.daemons.mgr };
      res({ out, serverCpuS, clientCpuS: b.clientCpuS - a.clientCpuS, wallS: Number(b.atNs - a.atNs) / 1e9, clientLifetimeCpuS, lingered });
    });
  });
}

function num(out: string, re: RegExp, what: string): number {
  const m = re.exec(out);
  if (m === null) throw new Error(`no '${what}' in the bench output:\n${out.slice(-2000)}`);
  return Number(m[1]);
}

/** `aspen-rados bench` summary (shared/src/bin/aspen-rados.ts). */
function parseAspen(out: string): Figures {
  return {
    elapsedS: num(out, /^Total time run: ([\d.]+) s$/m, 'Total time run'),
    ops: num(out, /^Total ops: (\d+)$/m, 'Total ops'),
    mibPerS: num(out, /^Bandwidth \(MiB\/s\): ([\d.]+)$/m, 'Bandwidth'),
    avgLatMs: num(out, /^Average latency \(ms\): ([\d.]+)$/m, 'Average latency'),
    p99LatMs: num(out, /^p99 latency \(ms\): ([\d.]+)$/m, 'p99 latency'),
  };
}

/** `rados bench` summary ("MB/sec" there is MiB/s). */
function parseCeph(out: string): Figures {
  return {
    elapsedS: num(out, /^Total time run:\s+([\d.]+)/m, 'Total time run'),
    ops: num(out, /^Total (?:writes|reads) made:\s+(\d+)/m, 'Total writes/reads made'),
    mibPerS: num(out, /^Bandwidth \(MB\/sec\):\s+([\d.]+)/m, 'Bandwidth (MB/sec)'),
    avgLatMs: num(out, /^Average Latency\(s\):\s+([\d.]+)/m, 'Average Latency(s)') * 1000,
    p99LatMs: NaN, // rados bench prints min/max/stddev, no percentiles
  };
}

/** A cluster under test: its daemons, its bench client, its cleanup. */
interface Target {
  system: System;
  daemons: Daemons;
  /** Runs the bench client for `w`; its summary and the measured window. */
  bench(w: Workload): Promise<{ figures: Figures; window: Window }>;
  cleanup(): Promise<void>;
}

async function measure(t: Target, w: Workload): Promise<Sample> {
  const { figures: f, window: win } = await t.bench(w);
  for (const role of ROLES) if (Number.isNaN(win.serverCpuS[role])) throw new Error(`a ${t.system} ${role} daemon exited during ${w.key}`);
  const serverCpuS = win.serverCpuS.mon + win.serverCpuS.osd + win.serverCpuS.mgr;
  return {
    ...f, opsPerS: f.ops / f.elapsedS, bytes: f.ops * w.sizeBytes, cpuS: win.serverCpuS, serverCpuS, serverCores: serverCpuS / win.wallS,
    clientCpuS: win.clientCpuS, clientLifetimeCpuS: win.clientLifetimeCpuS, lingered: win.lingered,
  };
}

// ---------------------------------------------------------------------------------------------
// Aspen

interface AspenCluster { target: Target; monAddrs: string; client: RadosClient }

async function pgStates(c: RadosClient, minEpoch: number): Promise<string[]> {
  const r = await c.mon.command({ prefix: 'pg dump' });
  const rows = (r.data as { pg_stats: { pgid: string; state: string; reported_epoch: number }[] }).pg_stats;
  return rows.map((p) => (p.reported_epoch >= minEpoch ? p.state : 'stale'));
}

async function startAspen(h: ProcessHarness): Promise<AspenCluster> {
  const mons = await MonCluster.start(h, { count: 3 });
  await mons.leader();
  mons.close();
  const monAddrs = [...mons.addrs.values()].join(',');
  for (let i = 0; i < OSDS; i++) {
    const p = h.spawn({ name: `mkfs.osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', h.path(`osd.${i}`), '--mon', monAddrs, '--id', String(i)]) });
    const st = await p.exited;
    if (st.code !== 0) throw new Error(`mkfs of osd.${i} failed: ${h.log(`mkfs.osd.${i}`)}`);
  }
  for (let i = 0; i < OSDS; i++) h.spawn({ name: `osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${i}`), '--mon', monAddrs, '--host', `host${i}`]) });
  const client = await RadosClient.connect({ monAddrs: [...mons.addrs.values()], opTimeoutMs: 60_000 });
  await waitFor(() => [...client.osdMap.osds.values()].filter((o) => o.up).length === OSDS, { timeoutMs: 60_000, what: `${OSDS} OSDs up`, intervalMs: 200 });
  await client.mon.command({ prefix: 'osd pool create', pool: POOL, pg_num: PG_NUM, pgp_num: PG_NUM, size: 3, min_size: 2 });
  await waitFor(() => { try { client.pool(POOL); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the pool in the map' });
  const minEpoch = client.osdMap.epoch;
  let last: string[] = [];
  await waitFor(async () => {
    last = await pgStates(client, minEpoch);
    return last.length === PG_NUM && last.every((s) => s === 'active+clean');
  }, { timeoutMs: 120_000, what: `${PG_NUM} PGs active+clean`, intervalMs: 500 }).catch((err: unknown) => {
    throw new Error(`${String(err)}; states: ${last.join(' ')}`);
  });
  const daemons: Daemons = {
    mon: [...mons.addrs.keys()].map((n) => h.daemon(`mon.${n}`).pid),
    osd: Array.from({ length: OSDS }, (_, i) => h.daemon(`osd.${i}`).pid),
    mgr: [],
  };
  const io = client.ioctx(POOL);
  const target: Target = {
    system: 'aspen',
    daemons,
    async bench(w) {
      const args = [ASPEN_RADOS, '-m', monAddrs, '-p', POOL, 'bench', String(w.seconds), w.mode, '-t', String(CONCURRENCY), '-b', String(w.sizeBytes)];
      if (w.mode === 'write') args.push('--no-cleanup');
      const window = await runClient(process.execPath, args, process.env, daemons, /^Maintaining \d+ concurrent/m, /^p99 latency/m);
      return { figures: parseAspen(window.out), window };
    },
    async cleanup() {
      // As `rados cleanup`: remove the benchmark objects, 16 at a time.
      const names = (await io.listObjects()).filter((n) => n.startsWith('benchmark_data_'));
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < names.length) await io.remove(names[next++]!);
      }));
      const left = (await io.listObjects()).length;
      if (left !== 0) throw new Error(`aspen cleanup left ${left} objects in ${POOL}`);
    },
  };
  return { target, monAddrs, client };
}

// ---------------------------------------------------------------------------------------------
// Ceph anchor

interface CephAnchor { target: Target; data: string; conf: string; version: string; health: string; upS: number }



function cephCli(conf: string, args: string[]): string {
  return execFileSync('ceph', ['-c', conf, '--connect-timeout', '10', ...args], { encoding: 'utf8', env: cephEnv(), timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

async function startCeph(data: string): Promise<CephAnchor> {
  if (!existsSync(join(ANCHOR_DIR, 'up.sh'))) throw new Error(`no ${join(ANCHOR_DIR, 'up.sh')}`);
  const [v1, v2] = await freePorts(2);
  const t0 = process.hrtime.bigint();
  await runScript(join(ANCHOR_DIR, 'up.sh'), [data], cephEnv({ NO_RGW: '1', NO_MDS: '1', MON_V1_PORT: String(v1), MON_V2_PORT: String(v2) }), 600_000);
  const conf = join(data, 'ceph.conf');
  let pgStat = '';
  await waitFor(() => {
    pgStat = cephCli(conf, ['pg', 'stat']);
    const m = /^(\d+) pgs: (\d+) active\+clean;/.exec(pgStat);
    return m !== null && m[1] === m[2];
  }, { timeoutMs: 180_000, intervalMs: 2_000, what: 'every Ceph PG active+clean' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; pg stat: ${pgStat}`);
  });
  if (!cephCli(conf, ['osd', 'pool', 'ls']).split('\n').includes(POOL)) throw new Error(`up.sh made no pool ${POOL}`);
  const upS = Number(process.hrtime.bigint() - t0) / 1e9;
  const pid = (name: string): number => Number(readFileSync(join(data, 'pids', `${name}.pid`), 'utf8').trim());
  const daemons: Daemons = {
    mon: [pid('mon.a')],
    osd: readdirSync(join(data, 'pids')).filter((f) => /^osd\.\d+\.pid$/.test(f)).map((f) => pid(f.slice(0, -4))),
    mgr: existsSync(join(data, 'pids', 'mgr.x.pid')) ? [pid('mgr.x')] : [],
  };
  if (daemons.osd.length !== OSDS) throw new Error(`expected ${OSDS} OSD pid files in ${data}/pids, found ${daemons.osd.length}`);
  const version = execFileSync('ceph', ['--version'], { encoding: 'utf8' }).trim().replace(/ \([0-9a-f]{40}\)/, '');
  const health = cephCli(conf, ['health']);
  const target: Target = {
    system: 'ceph',
    daemons,
    async bench(w) {
      const args = ['bench', String(w.seconds), w.mode, '-t', String(CONCURRENCY)];
      if (w.mode === 'write') args.push('-b', String(w.sizeBytes), '--no-cleanup');
      // The table header is printed as the timed loop starts; "Min latency" ends the summary.
      const window = await runClient('rados', ['-c', conf, '-p', POOL, ...args], cephEnv(), daemons, /^\s*sec\s+Cur ops/m, /^Min latency/m);
      return { figures: parseCeph(window.out), window };
    },
    async cleanup() {
      await runScript('rados', ['-c', conf, '-p', POOL, 'cleanup'], cephEnv(), 600_000);
    },
  };
  return { target, data, conf, version, health, upS };
}

function stopCeph(data: string): void {
  try {
    if (!existsSync(join(ANCHOR_DIR, 'down.sh'))) return;
    execFileSync(join(ANCHOR_DIR, 'down.sh'), [data, '--wipe'], { env: cephEnv(), stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  } catch (err) {
    log(`down.sh ${data} --wipe failed: ${String(err)}`);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const fx = (d: number) => (x: number): string => (Number.isNaN(x) || !Number.isFinite(x) ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const f0 = fx(0);
const f1 = fx(1);
const f2 = fx(2);
const f3 = fx(3);

type Samples = Map<System, Map<string, Sample[]>>;

/** One repetition on one system: 4 MiB write, seq, cleanup, 4 KiB write, seq, cleanup. */
async function oneRepetition(t: Target, r: number, samples: Samples): Promise<void> {
  for (const w of WORKLOADS) {
    const s = await measure(t, w);
    samples.get(t.system)!.get(w.key)!.push(s);
    log(`run ${r + 1}/${REPS} ${LABEL[t.system]} ${w.label}: ${f1(s.mibPerS)} MiB/s, ${f0(s.opsPerS)} ops/s, avg ${f1(s.avgLatMs)} ms; ${s.ops} ops in ${f2(s.elapsedS)} s; servers ${f2(s.serverCpuS)} CPU-s (mon ${f2(s.cpuS.mon)}, osd ${f2(s.cpuS.osd)}, mgr ${f2(s.cpuS.mgr)}), client ${f2(s.clientCpuS)} CPU-s`);
    if (w.mode === 'seq') {
      const t0 = process.hrtime.bigint();
      await t.cleanup();
      log(`${LABEL[t.system]} cleanup ${f1(Number(process.hrtime.bigint() - t0) / 1e9)} s`);
      await sleep(SETTLE_MS);
    }
  }
}

export async function run(): Promise<string> {
  const tStart = process.hrtime.bigint();
  const harness = new ProcessHarness();
  const cephData = mkdtempSync(join(tmpdir(), 'aspen-bench-ceph-'));
  let cephStarted = false;
  const stopCephNow = (): void => {
    if (cephStarted) stopCeph(cephData);
    else rmSync(cephData, { recursive: true, force: true });
    cephStarted = false;
  };
  // Runs before the harness's own handler (which kills the Aspen daemons and re-raises the signal).
  const onSignal = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (currentClient?.pid !== undefined && currentClient.exitCode === null) process.kill(currentClient.pid, 'SIGKILL');
    stopCephNow();
  };
  process.prependListener('SIGINT', onSignal);
  process.prependListener('SIGTERM', onSignal);
  process.on('exit', stopCephNow);
  const samples: Samples = new Map(SYSTEMS.map((s) => [s, new Map(WORKLOADS.map((w) => [w.key, []]))]));
  const notes: string[] = [];
  let aspen: AspenCluster | null = null;
  let ceph: CephAnchor | null = null;
  try {
    if (SKIP_CEPH) notes.push('Ceph anchor skipped (BENCH_RADOS_SKIP_CEPH=1)');
    else {
      try {
        cephStarted = true; // up.sh may have started daemons even if it fails later
        ceph = await startCeph(cephData);
        log(`ceph: ${ceph.version} up in ${f0(ceph.upS)} s (${ceph.health}); mon ${ceph.target.daemons.mon.join(' ')}, mgr ${ceph.target.daemons.mgr.join(' ')}, osds ${ceph.target.daemons.osd.join(' ')}`);
      } catch (err) {
        const msg = `**Ceph anchor NOT run**: it failed to start (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
        notes.push(msg);
        log(msg);
        stopCephNow();
      }
    }
    if (SKIP_ASPEN) notes.push('Aspen skipped (BENCH_RADOS_SKIP_ASPEN=1)');
    else {
      const t0 = process.hrtime.bigint();
      aspen = await startAspen(harness);
      log(`aspen: 3 mons + ${OSDS} OSDs up, pool ${POOL} active+clean in ${f0(Number(process.hrtime.bigint() - t0) / 1e9)} s; mons ${aspen.target.daemons.mon.join(' ')}, osds ${aspen.target.daemons.osd.join(' ')}; dir ${harness.dir}`);
    }
    const targets = [aspen?.target, ceph?.target].filter((t): t is Target => t !== undefined);
    await sleep(SETTLE_MS);
    const idle = new Map<System, number>();
    for (const t of targets) idle.set(t.system, await idleCores(t.daemons, IDLE_WINDOW_MS));
    if (targets.length > 0) notes.push(`Idle CPU of the daemons, measured before the runs with both clusters up: ${targets.map((t) => `${LABEL[t.system]} ${f3(idle.get(t.system)!)} cores`).join(', ')} (the idle cluster's share runs during the other's phases too)`);
    const failed = new Set<System>();
    if (WARMUP_S > 0) {
      // Unmeasured: JIT, caches, first allocations of the stores, on both systems.
      for (const t of targets) {
        try {
          for (const w of WORKLOADS.filter((x) => x.mode === 'write')) await t.bench({ ...w, seconds: WARMUP_S });
          await t.cleanup();
          log(`${LABEL[t.system]} warmed up (${WARMUP_S} s of 4 MiB and of 4 KiB writes, cleaned up)`);
        } catch (err) {
          if (t.system === 'aspen') throw err;
          failed.add(t.system);
          const msg = `**Ceph anchor FAILED** in the warm-up (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
          notes.push(msg);
          log(msg);
        }
      }
      await sleep(SETTLE_MS);
    }
    for (let r = 0; r < REPS; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      for (const t of order) {
        if (failed.has(t.system)) continue;
        try {
          await oneRepetition(t, r, samples);
        } catch (err) {
          // Aspen failing fails the benchmark; the anchor failing is reported and Aspen goes on.
          if (t.system === 'aspen') throw err;
          failed.add(t.system);
          const msg = `**Ceph anchor FAILED** in repetition ${r + 1} (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); its figures are from the phases before`;
          notes.push(msg);
          log(msg);
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (aspen !== null) await aspen.client.close();
    await harness.teardown();
    stopCephNow();
    process.removeListener('exit', stopCephNow);
  }
  const wallS = Number(process.hrtime.bigint() - tStart) / 1e9;
  log(`total wall time ${f0(wallS)} s`);
  return report(samples, notes, ceph, wallS);
}

function report(samples: Samples, notes: string[], ceph: CephAnchor | null, wallS: number): string {
  const ss = (sys: System, w: Workload): Sample[] => samples.get(sys)!.get(w.key)!;
  const med = (sys: System, w: Workload, f: (s: Sample) => number): number => median(ss(sys, w).map(f));
  /** Aspen/Ceph of `f`, paired by repetition, then the median. */
  const ratio = (w: Workload, f: (s: Sample) => number): number => {
    const a = ss('aspen', w);
    const c = ss('ceph', w);
    return median(a.map((s, i) => (c[i] === undefined ? NaN : f(s) / f(c[i]!))));
  };
  const headline = (w: Workload): ((s: Sample) => number) => (w.sizeBytes >= 2 ** 20 ? (s) => s.mibPerS : (s) => s.opsPerS);
  const unit = (w: Workload): string => (w.sizeBytes >= 2 ** 20 ? 'MiB/s' : 'ops/s');
  const perGiB = (cpu: (s: Sample) => number) => (s: Sample): number => cpu(s) / (s.bytes / GiB);
  const per1k = (cpu: (s: Sample) => number) => (s: Sample): number => cpu(s) / (s.ops / 1000);
  const server = (s: Sample): number => s.serverCpuS;
  const client = (s: Sample): number => s.clientCpuS;
  const runsOf = (sys: System, w: Workload, f: (s: Sample) => number, fmt: (x: number) => string): string => {
    const xs = ss(sys, w);
    if (xs.length === 0) return '—';
    return `**${fmt(median(xs.map(f)))}**${xs.length > 1 ? ` (${xs.map((s) => fmt(f(s))).join(', ')})` : ''}`;
  };
  const both = (w: Workload, f: (s: Sample) => number, fmt: (x: number) => string): string => `${fmt(med('aspen', w, f))} · ${fmt(med('ceph', w, f))}`;
  const lines = [
    '## Objects: rados bench, Aspen vs Ceph 16.2',
    '',
    `3 OSDs, pool \`${POOL}\` (replicated, size 3, min_size 2, ${PG_NUM} PGs), ${CONCURRENCY} ops in flight, ${SECONDS} s per phase; ` +
    `per repetition and system: 4 MiB write, 4 MiB seq read of those objects, cleanup, 4 KiB write, 4 KiB seq read, cleanup. Median of ${REPS} repetition(s) (runs listed in order); ` +
    `both clusters were up at once and took turns, the first alternating; ratios are paired by repetition. Before the first, each system had an unmeasured warm-up (${WARMUP_S} s of 4 MiB and ${WARMUP_S} s of 4 KiB writes, cleaned up). ` +
    `Aspen: 3 \`aspen-mon\` + 3 \`aspen-osd\` (default flags, each OSD its own CRUSH host) on loopback, load from \`shared/bin/aspen-rados bench\`. ` +
    `Ceph: ${ceph?.version ?? 'Ceph 16.2'} from anchors/ceph/up.sh (NO_RGW=1 NO_MDS=1: 1 mon, 1 mgr, 3 BlueStore OSDs on sparse files, osd_memory_target 1 GiB, OSD-level CRUSH rule), load from \`rados bench\`. ` +
    '"MiB/s" is 2^20 bytes per second (what `rados bench` prints as MB/sec). **Every client ran on the same 2 cores as the daemons**, so the figures are CPU-bound and noisy: compare ratios within this run.',
    '',
    // A failed anchor is said up front, not only in the notes.
    ...notes.filter((n) => n.startsWith('**')).flatMap((n) => [`${n}.`, '']),
    `| workload | ${LABEL.aspen} (runs) | ${LABEL.ceph} (runs) | Aspen/Ceph | avg latency ms, Aspen · Ceph |`,
    '|---|---:|---:|---:|---:|',
    ...WORKLOADS.map((w) => `| ${w.label}, ${unit(w)} | ${runsOf('aspen', w, headline(w), w.sizeBytes >= 2 ** 20 ? f1 : f0)} | ${runsOf('ceph', w, headline(w), w.sizeBytes >= 2 ** 20 ? f1 : f0)} | **${f2(ratio(w, headline(w)))}** | ${both(w, (s) => s.avgLatMs, f1)} |`),
    '',
    'CPU per unit of work (medians). "Servers" = every daemon of the cluster (Aspen: 3 mons + 3 OSDs; Ceph: mon + mgr + 3 OSDs), from /proc/<pid>/stat utime+stime ' +
    'over the client\'s timed window (from the line it prints as its loop starts to its summary); "client" = the bench client process alone over the same window (`aspen-rados`, a Node process; `rados`, C++). ' +
    'GiB and ops are what the client wrote or read (one copy, not the 3 replicas). Lower is better; the ratio is Aspen/Ceph of server CPU per op (the same per GiB).',
    '',
    '| workload | servers CPU s/GiB, Aspen · Ceph | servers CPU s/1k ops, Aspen · Ceph | servers Aspen/Ceph | client CPU s/GiB, Aspen · Ceph | client CPU s/1k ops, Aspen · Ceph |',
    '|---|---:|---:|---:|---:|---:|',
    ...WORKLOADS.map((w) => `| ${w.label} | ${both(w, perGiB(server), f2)} | ${both(w, per1k(server), f3)} | **${f2(ratio(w, per1k(server)))}** | ${both(w, perGiB(client), f2)} | ${both(w, per1k(client), f3)} |`),
    '',
    '<details><summary>Every run</summary>',
    '',
    '| system | workload | run | MiB/s | ops/s | avg ms | p99 ms | ops | elapsed s | mons CPU s | OSDs CPU s | mgr CPU s | servers, cores | client CPU s, window · process |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const sys of SYSTEMS) for (const w of WORKLOADS) ss(sys, w).forEach((s, i) => {
    lines.push(`| ${LABEL[sys]} | ${w.label} | ${i + 1} | ${f1(s.mibPerS)} | ${f0(s.opsPerS)} | ${f1(s.avgLatMs)} | ${f1(s.p99LatMs)} | ${s.ops} | ${f2(s.elapsedS)} | ${f2(s.cpuS.mon)} | ${f2(s.cpuS.osd)} | ${sys === 'aspen' ? '—' : f2(s.cpuS.mgr)} | ${f2(s.serverCores)} | ${f2(s.clientCpuS)} · ${f2(s.clientLifetimeCpuS)}${s.lingered ? ' (stopped)' : ''} |`);
  });
  lines.push('', '</details>', '');
  if (ceph !== null) notes.push(`Ceph health before the runs: ${ceph.health}; up.sh to all PGs active+clean took ${f0(ceph.upS)} s`);
  notes.push('`rados bench seq` stops when it has read every object the write phase left (so its 4 MiB phase is often shorter than the window); `aspen-rados bench seq` wraps around and reads for the whole window');
  const lingered = SYSTEMS.flatMap((sys) => WORKLOADS.flatMap((w) => ss(sys, w).filter((s) => s.lingered).map(() => `${LABEL[sys]} ${w.label}`)));
  if (lingered.length > 0) notes.push(`${lingered.length} client(s) did not exit within ${LINGER_MS / 1000} s of printing their summary and were stopped with SIGTERM, marked "(stopped)" (${[...new Set(lingered)].join(', ')})`);
  notes.push(`The whole run (start-up of both clusters, ${REPS} repetition(s), cleanups, teardown) took ${f0(wallS)} s`);
  for (const n of notes) if (!n.startsWith('**')) lines.push(`- ${n}.`);
  lines.push(
    '',
    'Commands: `npm run bench -- rados` (knobs: BENCH_RADOS_SECONDS, BENCH_RADOS_REPS, BENCH_RADOS_WARMUP_SECONDS, BENCH_RADOS_SKIP_CEPH=1, BENCH_RADOS_SKIP_ASPEN=1, ASPEN_ANCHORS_DIR). What it runs, per repetition:',
    '',
    '```sh',
    `# Aspen (MONS = the 3 mons' loopback addresses; pool made with: aspen osd pool create ${POOL} ${PG_NUM} ${PG_NUM} --size 3 --min-size 2)`,
    `# (once, before the first repetition, each system: the two writes below for ${WARMUP_S} s each, then cleanup — unmeasured)`,
    `shared/bin/aspen-rados -m MONS -p ${POOL} bench ${SECONDS} write -t ${CONCURRENCY} -b 4194304 --no-cleanup`,
    `shared/bin/aspen-rados -m MONS -p ${POOL} bench ${SECONDS} seq -t ${CONCURRENCY} -b 4194304`,
    '# cleanup: remove every benchmark_data_* object (RadosClient, 16 at a time)',
    `shared/bin/aspen-rados -m MONS -p ${POOL} bench ${SECONDS} write -t ${CONCURRENCY} -b 4096 --no-cleanup`,
    `shared/bin/aspen-rados -m MONS -p ${POOL} bench ${SECONDS} seq -t ${CONCURRENCY} -b 4096`,
    '# Ceph (DATA = a temp dir; MON_V1_PORT/MON_V2_PORT = free ports)',
    'NO_RGW=1 NO_MDS=1 /work/shared/anchors/ceph/up.sh DATA',
    `rados -c DATA/ceph.conf -p ${POOL} bench ${SECONDS} write -t ${CONCURRENCY} -b 4194304 --no-cleanup`,
    `rados -c DATA/ceph.conf -p ${POOL} bench ${SECONDS} seq -t ${CONCURRENCY}`,
    `rados -c DATA/ceph.conf -p ${POOL} cleanup`,
    `rados -c DATA/ceph.conf -p ${POOL} bench ${SECONDS} write -t ${CONCURRENCY} -b 4096 --no-cleanup`,
    `rados -c DATA/ceph.conf -p ${POOL} bench ${SECONDS} seq -t ${CONCURRENCY}`,
    `rados -c DATA/ceph.conf -p ${POOL} cleanup`,
    '/work/shared/anchors/ceph/down.sh DATA --wipe',
    '```',
  );
  return lines.join('\n');
}
