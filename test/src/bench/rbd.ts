/**
 * Block benchmark (`npm run bench -- rbd`; issue 6 "Performance"): fio, iodepth 16, on a 1 GiB
 * image — 4 KiB random write and read IOPS, 4 MiB sequential write and read MB/s — three ways in
 * the same run:
 *
 * - Aspen: 3 `aspen-mon` + 3 `aspen-osd` (each OSD its own CRUSH host) on free loopback ports in
 *   a temp dir, pool `rbd` (replicated, size 3, min_size 2, 32 PGs as the anchor's), image
 *   `rbd/bench` of 1 GiB made with `aspen-rbd create`, exported by `aspen-rbd nbd serve`, loaded
 *   by fio's nbd engine (libnbd, one connection).
 * - Ceph 16.2 (the anchor in /work/shared/anchors/ceph: up.sh with NO_RGW=1 NO_MDS=1 — 1 mon,
 *   1 mgr, 3 BlueStore OSDs on sparse files, pool `rbd` of 32 PGs size 3, image `rbd/bench`
 *   1 GiB), loaded by fio's rbd engine (librbd in the fio process), as the anchor's bench.sh.
 * - The NBD-path ceiling: `nbdkit memory 1G` (16 threads) loaded by fio's nbd engine.
 *
 * Every image is preconditioned (written once in full with 4 MiB writes) before anything is
 * measured, so reads hit data; that fill also warms each system up (plus an unmeasured 4 KiB
 * random-write warm-up). Each repetition runs, per system, the four workloads in the anchor
 * table's order; the system that goes first rotates with the repetition. Medians are shown,
 * ratios are paired by repetition.
 *
 * CPU: utime+stime (+ reaped children) of each daemon from /proc/<pid>/stat at fio's start and
 * exit (so fio's connect — libnbd's handshake and the image open, or librbd's — is inside the
 * window); fio's own CPU from this process's cutime+cstime, which grow by exactly a reaped
 * fio's CPU. Ceph's librbd runs inside fio, whereas Aspen's image client runs in the NBD server:
 * the fair comparison is Aspen (OSDs + NBD server) against Ceph (OSDs + fio), both shown.
 *
 * Knobs (environment): BENCH_RBD_SECONDS (20) per job, BENCH_RBD_REPS (3),
 * BENCH_RBD_WARMUP_SECONDS (5; 0 = none), BENCH_RBD_SKIP_CEPH=1, BENCH_RBD_SKIP_ASPEN=1,
 * BENCH_RBD_SKIP_NBDKIT=1, BENCH_RBD_CPU_PROF=DIR (run the NBD server under `node --cpu-prof`,
 * profiles written to DIR when it stops), ASPEN_ANCHORS_DIR (default ../shared/anchors).
 * A Ceph that fails to start is reported in the section; Aspen's figures still are.
 * Not a test: nothing here asserts on timing.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { ProcessHarness, REPO_ROOT, freePorts, sleep, tcpConnectable, tsNodeArgs, waitFor } from '../harness.ts';
import { MonCluster } from '../mon-cluster.ts';
import { cephEnv, runScript } from './_anchor.ts';

const execFileP = promisify(execFile);
const env = (k: string, d: string): string => process.env[k] ?? d;
const SECONDS = Number(env('BENCH_RBD_SECONDS', '20'));
const REPS = Number(env('BENCH_RBD_REPS', '3'));
const WARMUP_S = Number(env('BENCH_RBD_WARMUP_SECONDS', '5'));
const SKIP_CEPH = env('BENCH_RBD_SKIP_CEPH', '') === '1';
const SKIP_ASPEN = env('BENCH_RBD_SKIP_ASPEN', '') === '1';
const SKIP_NBDKIT = env('BENCH_RBD_SKIP_NBDKIT', '') === '1';
const CPU_PROF_DIR = env('BENCH_RBD_CPU_PROF', '');
const ANCHOR_DIR = join(resolve(env('ASPEN_ANCHORS_DIR', join(REPO_ROOT, '..', 'shared', 'anchors'))), 'ceph');
const IODEPTH = 16;
const POOL = 'rbd';
const IMAGE = 'bench';
const PG_NUM = 32;
const OSDS = 3;
const NBDKIT_THREADS = 16;
const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const RBD_ENTRY = join(REPO_ROOT, 'rbd', 'src', 'bin', 'aspen-rbd.ts');
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64
const SETTLE_MS = 2_000;
const IDLE_WINDOW_MS = 5_000;
/** A fio that runs this much past its runtime is killed (by its pid) and the job fails. */
const FIO_GRACE_MS = 180_000;
/** The preconditioning fill has no runtime; it is given this long. */
const FILL_TIMEOUT_MS = 600_000;
const GiB = 2 ** 30;

const log = (s: string): void => void process.stderr.write(`[bench rbd] ${s}\n`);

interface Workload { key: string; label: string; rw: 'randwrite' | 'randread' | 'write' | 'read'; bsBytes: number; big: boolean }
const WORKLOADS: readonly Workload[] = [
  { key: 'randwrite-4k', label: '4 KiB random write', rw: 'randwrite', bsBytes: 4096, big: false },
  { key: 'randread-4k', label: '4 KiB random read', rw: 'randread', bsBytes: 4096, big: false },
  { key: 'write-4M', label: '4 MiB sequential write', rw: 'write', bsBytes: 4 * 2 ** 20, big: true },
  { key: 'read-4M', label: '4 MiB sequential read', rw: 'read', bsBytes: 4 * 2 ** 20, big: true },
];
const SYSTEMS = ['aspen', 'ceph', 'nbdkit'] as const;
type System = (typeof SYSTEMS)[number];
const LABEL: Record<System, string> = { aspen: 'Aspen (NBD)', ceph: 'Ceph 16.2 RBD', nbdkit: 'nbdkit memory' };

/** Daemon pids of one system, by role. `gw` is the NBD server (aspen-rbd nbd serve, nbdkit). */
interface Daemons { mon: number[]; mgr: number[]; osd: number[]; gw: number[] }
type Role = keyof Daemons;
const ROLES: readonly Role[] = ['mon', 'mgr', 'osd', 'gw'];

/** What fio reported for one job. */
interface Figures { ios: number; bytes: number; runtimeS: number; iops: number; mbPerS: number; clatMeanMs: number; clatP99Ms: number }

/** One measured job of one system. */
interface Sample extends Figures {
  /** Daemon CPU over fio's life, s, by role. */
  cpuS: Record<Role, number>;
  /** fio's CPU over its whole life, s. */
  fioCpuS: number;
  wallS: number;
  /** The 1-minute load average as the job ended (the machine is shared). */
  load1: number;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (/proc)

function statFields(path: string): string[] | null {
  try {
    const stat = readFileSync(path, 'utf8');
    // after the comm field: f[11] utime (field 14), f[12] stime (15), f[13] cutime (16), f[14] cstime (17)
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
  return { mon: sum(d.mon), mgr: sum(d.mgr), osd: sum(d.osd), gw: sum(d.gw) };
}

async function idleCores(d: Daemons, ms: number): Promise<number> {
  const a = daemonsCpu(d);
  await sleep(ms);
  const b = daemonsCpu(d);
  return ROLES.reduce((s, r) => s + b[r] - a[r], 0) / (ms / 1000);
}

// ---------------------------------------------------------------------------------------------
// fio

let currentFio: ChildProcess | null = null;

interface FioJobJson { error: number; read: FioDirJson; write: FioDirJson }
interface FioDirJson { io_bytes: number; total_ios: number; runtime: number; iops: number; bw_bytes: number; clat_ns?: { mean?: number; percentile?: Record<string, number> } }

function parseFio(out: string): Figures {
  const i = out.indexOf('{');
  if (i < 0) throw new Error(`no JSON in fio's output:\n${out.slice(-2000)}`);
  const j = (JSON.parse(out.slice(i)) as { jobs: FioJobJson[] }).jobs[0];
  if (j === undefined) throw new Error('fio printed no job');
  if (j.error !== 0) throw new Error(`fio job error ${j.error}`);
  const d = j.write.io_bytes > j.read.io_bytes ? j.write : j.read;
  if (d.io_bytes <= 0) throw new Error('fio moved no bytes');
  return {
    ios: d.total_ios, bytes: d.io_bytes, runtimeS: d.runtime / 1000, iops: d.iops, mbPerS: d.bw_bytes / 1e6,
    clatMeanMs: (d.clat_ns?.mean ?? NaN) / 1e6, clatP99Ms: (d.clat_ns?.percentile?.['99.000000'] ?? NaN) / 1e6,
  };
}

/**
 * Runs one fio job to its end, sampling the daemons' CPU at its start and exit.
 * @throws Error on a failed run (non-zero exit, a fio job error, no JSON).
 */
function runFio(args: string[], fioEnv: NodeJS.ProcessEnv, daemons: Daemons, timeoutMs: number): Promise<Sample> {
  return new Promise((res, rej) => {
    const cpu0 = reapedChildrenCpuSeconds();
    const d0 = daemonsCpu(daemons);
    const t0 = process.hrtime.bigint();
    const child = spawn('fio', ['--output-format=json', ...args], { cwd: REPO_ROOT, env: fioEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    currentFio = child;
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      currentFio = null;
      rej(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      currentFio = null;
      const d1 = daemonsCpu(daemons);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      const fioCpuS = reapedChildrenCpuSeconds() - cpu0;
      if (code !== 0) {
        rej(new Error(`fio ${args.join(' ')} failed (${code === null ? `signal ${signal}` : `status ${code}`}): ${err.slice(-1500)}${out.slice(-1500)}`));
        return;
      }
      try {
        const f = parseFio(out);
        const cpuS = { mon: d1.mon - d0.mon, mgr: d1.mgr - d0.mgr, osd: d1.osd - d0.osd, gw: d1.gw - d0.gw };
        for (const r of ROLES) if (Number.isNaN(cpuS[r])) throw new Error(`a ${r} daemon exited during fio ${args.join(' ')}`);
        res({ ...f, cpuS, fioCpuS, wallS, load1: loadavg()[0] ?? NaN });
      } catch (e) {
        rej(e instanceof Error ? new Error(`${e.message}; fio ${args.join(' ')}; stderr: ${err.slice(-1500)}`) : e);
      }
    });
  });
}

/** A system under test: its daemons and how fio reaches its 1 GiB device. */
interface Target {
  system: System;
  daemons: Daemons;
  /** fio's engine arguments (`--ioengine=…` and how to reach the device). */
  engineArgs: string[];
  fioEnv: NodeJS.ProcessEnv;
}

const jobArgs = (t: Target, name: string, rw: string, bsBytes: number): string[] =>
  [`--name=${name}`, ...t.engineArgs, `--rw=${rw}`, `--bs=${bsBytes}`, `--iodepth=${IODEPTH}`, '--size=1g'];

function measure(t: Target, w: Workload, seconds = SECONDS): Promise<Sample> {
  return runFio([...jobArgs(t, w.key, w.rw, w.bsBytes), `--runtime=${seconds}`, '--time_based'], t.fioEnv, t.daemons, seconds * 1000 + FIO_GRACE_MS);
}

/** Writes the whole device once (4 MiB sequential, no runtime limit): reads then hit data. */
function precondition(t: Target): Promise<Sample> {
  return runFio(jobArgs(t, 'fill', 'write', 4 * 2 ** 20), t.fioEnv, t.daemons, FILL_TIMEOUT_MS);
}

// ---------------------------------------------------------------------------------------------
// Aspen

async function pgStates(c: RadosClient, minEpoch: number): Promise<string[]> {
  const r = await c.mon.command({ prefix: 'pg dump' });
  const rows = (r.data as { pg_stats: { pgid: string; state: string; reported_epoch: number }[] }).pg_stats;
  return rows.map((p) => (p.reported_epoch >= minEpoch ? p.state : 'stale'));
}

async function startAspen(h: ProcessHarness): Promise<Target> {
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
  try {
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
  } finally {
    await client.close();
  }
  await execFileP(process.execPath, tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, '--no-progress', 'create', `${POOL}/${IMAGE}`, '--size', '1G']), { cwd: REPO_ROOT });
  const [port] = await freePorts(1);
  const prof = CPU_PROF_DIR === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(CPU_PROF_DIR)];
  const gw = h.spawn({ name: 'rbd-nbd', args: [...prof, ...tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, 'nbd', 'serve', '--port', String(port)])] });
  await waitFor(() => h.log('rbd-nbd').includes('serving nbd://'), { timeoutMs: 60_000, what: 'the NBD server' });
  return {
    system: 'aspen',
    daemons: {
      mon: [...mons.addrs.keys()].map((n) => h.daemon(`mon.${n}`).pid),
      mgr: [],
      osd: Array.from({ length: OSDS }, (_, i) => h.daemon(`osd.${i}`).pid),
      gw: [gw.pid],
    },
    engineArgs: ['--ioengine=nbd', `--uri=nbd://127.0.0.1:${port}/${POOL}/${IMAGE}`],
    fioEnv: process.env,
  };
}

// ---------------------------------------------------------------------------------------------
// nbdkit memory (the NBD-path ceiling)

async function startNbdkit(h: ProcessHarness): Promise<Target> {
  const [port] = await freePorts(1);
  const p = h.spawn({ name: 'nbdkit', command: 'nbdkit', args: ['-f', '-i', '127.0.0.1', '-p', String(port), '--threads', String(NBDKIT_THREADS), 'memory', '1G'] });
  await waitFor(tcpConnectable(port!), { timeoutMs: 20_000, what: 'nbdkit' });
  return { system: 'nbdkit', daemons: { mon: [], mgr: [], osd: [], gw: [p.pid] }, engineArgs: ['--ioengine=nbd', `--uri=nbd://127.0.0.1:${port}/`], fioEnv: process.env };
}

// ---------------------------------------------------------------------------------------------
// Ceph anchor

interface CephAnchor { target: Target; version: string; health: string; upS: number }



function cephCli(conf: string, cmd: string, args: string[]): string {
  return execFileSync(cmd, ['-c', conf, ...(cmd === 'ceph' ? ['--connect-timeout', '10'] : []), ...args], { encoding: 'utf8', env: cephEnv(), timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

async function startCeph(data: string): Promise<CephAnchor> {
  if (!existsSync(join(ANCHOR_DIR, 'up.sh'))) throw new Error(`no ${join(ANCHOR_DIR, 'up.sh')}`);
  const [v1, v2] = await freePorts(2);
  const t0 = process.hrtime.bigint();
  await runScript(join(ANCHOR_DIR, 'up.sh'), [data], cephEnv({ NO_RGW: '1', NO_MDS: '1', MON_V1_PORT: String(v1), MON_V2_PORT: String(v2) }), 600_000);
  const conf = join(data, 'ceph.conf');
  let pgStat = '';
  await waitFor(() => {
    pgStat = cephCli(conf, 'ceph', ['pg', 'stat']);
    const m = /^(\d+) pgs: (\d+) active\+clean;/.exec(pgStat);
    return m !== null && m[1] === m[2];
  }, { timeoutMs: 180_000, intervalMs: 2_000, what: 'every Ceph PG active+clean' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; pg stat: ${pgStat}`);
  });
  const info = JSON.parse(cephCli(conf, 'rbd', ['info', `${POOL}/${IMAGE}`, '--format', 'json'])) as { size: number };
  if (info.size !== GiB) throw new Error(`up.sh made ${POOL}/${IMAGE} of ${info.size} bytes, not 1 GiB`);
  const upS = Number(process.hrtime.bigint() - t0) / 1e9;
  const pid = (name: string): number => Number(readFileSync(join(data, 'pids', `${name}.pid`), 'utf8').trim());
  const daemons: Daemons = {
    mon: [pid('mon.a')],
    mgr: existsSync(join(data, 'pids', 'mgr.x.pid')) ? [pid('mgr.x')] : [],
    osd: readdirSync(join(data, 'pids')).filter((f) => /^osd\.\d+\.pid$/.test(f)).map((f) => pid(f.slice(0, -4))),
    gw: [],
  };
  if (daemons.osd.length !== OSDS) throw new Error(`expected ${OSDS} OSD pid files in ${data}/pids, found ${daemons.osd.length}`);
  const version = execFileSync('ceph', ['--version'], { encoding: 'utf8' }).trim().replace(/ \([0-9a-f]{40}\)/, '');
  const health = cephCli(conf, 'ceph', ['health']);
  const target: Target = {
    system: 'ceph',
    daemons,
    engineArgs: ['--ioengine=rbd', '--clientname=admin', `--pool=${POOL}`, `--rbdname=${IMAGE}`, '--direct=1'],
    fioEnv: { ...cephEnv(), CEPH_CONF: conf },
  };
  return { target, version, health, upS };
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

export async function run(): Promise<string> {
  const tStart = process.hrtime.bigint();
  const harness = new ProcessHarness();
  const cephData = mkdtempSync(join(tmpdir(), 'aspen-bench-rbd-ceph-'));
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
    if (currentFio?.pid !== undefined && currentFio.exitCode === null) process.kill(currentFio.pid, 'SIGKILL');
    stopCephNow();
  };
  process.prependListener('SIGINT', onSignal);
  process.prependListener('SIGTERM', onSignal);
  process.on('exit', stopCephNow);
  const samples: Samples = new Map(SYSTEMS.map((s) => [s, new Map(WORKLOADS.map((w) => [w.key, []]))]));
  const fills = new Map<System, Sample>();
  const notes: string[] = [];
  const targets: Target[] = [];
  let ceph: CephAnchor | null = null;
  const idle = new Map<System, number>();
  try {
    if (SKIP_CEPH) notes.push('Ceph anchor skipped (BENCH_RBD_SKIP_CEPH=1)');
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
    if (SKIP_ASPEN) notes.push('Aspen skipped (BENCH_RBD_SKIP_ASPEN=1)');
    else {
      const t0 = process.hrtime.bigint();
      const t = await startAspen(harness);
      targets.push(t);
      log(`aspen: 3 mons + ${OSDS} OSDs + nbd serve up, pool ${POOL} active+clean, image made, in ${f0(Number(process.hrtime.bigint() - t0) / 1e9)} s; mons ${t.daemons.mon.join(' ')}, osds ${t.daemons.osd.join(' ')}, nbd ${t.daemons.gw.join(' ')}; dir ${harness.dir}`);
    }
    if (ceph !== null) targets.push(ceph.target);
    if (SKIP_NBDKIT) notes.push('nbdkit skipped (BENCH_RBD_SKIP_NBDKIT=1)');
    else targets.push(await startNbdkit(harness));
    await sleep(SETTLE_MS);
    for (const t of targets) if (t.system !== 'nbdkit') idle.set(t.system, await idleCores(t.daemons, IDLE_WINDOW_MS));
    const failed = new Set<System>();
    const fail = (t: Target, where: string, err: unknown): void => {
      // Aspen failing fails the benchmark; the anchors failing are reported and Aspen goes on.
      if (t.system === 'aspen') throw err;
      failed.add(t.system);
      const msg = `**${LABEL[t.system]} FAILED** ${where} (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
      notes.push(msg);
      log(msg);
    };
    for (const t of targets) {
      try {
        const s = await precondition(t);
        fills.set(t.system, s);
        log(`${LABEL[t.system]} preconditioned: 1 GiB written in ${f1(s.runtimeS)} s (${f0(s.mbPerS)} MB/s)`);
        if (WARMUP_S > 0) {
          await measure(t, WORKLOADS[0]!, WARMUP_S);
          log(`${LABEL[t.system]} warmed up (${WARMUP_S} s of 4 KiB random writes)`);
        }
      } catch (err) {
        fail(t, 'in preconditioning', err);
      }
    }
    await sleep(SETTLE_MS);
    for (let r = 0; r < REPS; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      for (const t of order) {
        if (failed.has(t.system)) continue;
        try {
          for (const w of WORKLOADS) {
            const s = await measure(t, w);
            samples.get(t.system)!.get(w.key)!.push(s);
            log(`run ${r + 1}/${REPS} ${LABEL[t.system]} ${w.label}: ${f0(s.iops)} IOPS, ${f1(s.mbPerS)} MB/s, clat ${f2(s.clatMeanMs)} ms (p99 ${f2(s.clatP99Ms)}); CPU s: osd ${f2(s.cpuS.osd)}, gw ${f2(s.cpuS.gw)}, mon ${f2(s.cpuS.mon)}, mgr ${f2(s.cpuS.mgr)}, fio ${f2(s.fioCpuS)}`);
          }
        } catch (err) {
          fail(t, `in repetition ${r + 1}; its figures are from the jobs before`, err);
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await harness.teardown();
    stopCephNow();
    process.removeListener('exit', stopCephNow);
  }
  const wallS = Number(process.hrtime.bigint() - tStart) / 1e9;
  log(`total wall time ${f0(wallS)} s`);
  return report(samples, fills, idle, notes, ceph, wallS);
}

function report(samples: Samples, fills: Map<System, Sample>, idle: Map<System, number>, notes: string[], ceph: CephAnchor | null, wallS: number): string {
  const ss = (sys: System, w: Workload): Sample[] => samples.get(sys)!.get(w.key)!;
  const head = (w: Workload): ((s: Sample) => number) => (w.big ? (s) => s.mbPerS : (s) => s.iops);
  const unit = (w: Workload): string => (w.big ? 'MB/s' : 'IOPS');
  const fmt = (w: Workload): ((x: number) => string) => (w.big ? f1 : f0);
  const med = (sys: System, w: Workload, f: (s: Sample) => number): number => median(ss(sys, w).map(f));
  /** a/b of `f`, paired by repetition, then the median. */
  const ratio = (a: System, b: System, w: Workload, f: (s: Sample) => number): number => {
    const xs = ss(a, w);
    const ys = ss(b, w);
    return median(xs.map((s, i) => (ys[i] === undefined ? NaN : f(s) / f(ys[i]!))));
  };
  const runsOf = (sys: System, w: Workload): string => {
    const xs = ss(sys, w);
    if (xs.length === 0) return '—';
    return `**${fmt(w)(median(xs.map(head(w))))}**${xs.length > 1 ? ` (${xs.map((s) => fmt(w)(head(w)(s))).join(', ')})` : ''}`;
  };
  // CPU per unit of work: s per 1k ops for 4 KiB, s per GiB for 4 MiB.
  const per = (w: Workload, cpu: (s: Sample) => number) => (s: Sample): number => (w.big ? cpu(s) / (s.bytes / GiB) : cpu(s) / (s.ios / 1000));
  const perUnit = (w: Workload): string => (w.big ? 's/GiB' : 's/1k ops');
  const osdGw = (s: Sample): number => s.cpuS.osd + s.cpuS.gw;
  const osdGwFio = (s: Sample): number => s.cpuS.osd + s.cpuS.gw + s.fioCpuS;
  const all = (s: Sample): number => s.cpuS.osd + s.cpuS.gw + s.cpuS.mon + s.cpuS.mgr + s.fioCpuS;
  const cpuCell = (sys: System, w: Workload, f: (s: Sample) => number): string => (ss(sys, w).length === 0 ? '—' : (w.big ? f2 : f3)(med(sys, w, per(w, f))));
  const lines = [
    '## Block: fio on RBD images, Aspen (NBD) vs Ceph 16.2 RBD vs nbdkit memory',
    '',
    `fio ${execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim()}, iodepth ${IODEPTH}, ${SECONDS} s per job (time_based), 1 GiB device, median of ${REPS} repetition(s) (runs listed in order). ` +
    'Per repetition and system: 4 KiB random write, 4 KiB random read, 4 MiB sequential write, 4 MiB sequential read; the system that goes first rotates; ratios are paired by repetition. ' +
    `Every device was preconditioned (written once in full with 4 MiB writes) and warmed up (${WARMUP_S} s of 4 KiB random writes) before anything was measured, so reads hit data. All three systems were up at once. ` +
    `Aspen: 3 \`aspen-mon\` + 3 \`aspen-osd\` (default flags, each OSD its own CRUSH host), pool \`${POOL}\` (replicated, size 3, min_size 2, ${PG_NUM} PGs), image \`${POOL}/${IMAGE}\` 1 GiB (4 MiB objects), exported by \`aspen-rbd nbd serve\`; fio \`--ioengine=nbd\` (libnbd, one connection). ` +
    `Ceph: ${ceph?.version ?? 'Ceph 16.2'} from anchors/ceph/up.sh (NO_RGW=1 NO_MDS=1: 1 mon, 1 mgr, 3 BlueStore OSDs on sparse files, osd_memory_target 1 GiB, pool \`${POOL}\` size 3 / min_size 2, ${PG_NUM} PGs, OSD-level CRUSH rule, image \`${POOL}/${IMAGE}\` 1 GiB); fio \`--ioengine=rbd\` (librbd defaults, as the anchor's bench.sh). ` +
    `Ceiling: \`nbdkit memory 1G\` (${NBDKIT_THREADS} threads), fio \`--ioengine=nbd\`. MB/s is 10^6 bytes/s (fio's bw_bytes), as in the anchor table. ` +
    '**The machine is shared and noisy (2 cores; other engineers run tests on it), and fio, the NBD server and every daemon run on those same 2 cores**: the figures are CPU-bound; compare ratios within this run and quote medians.',
    '',
    ...notes.filter((n) => n.startsWith('**')).flatMap((n) => [`${n}.`, '']),
    `| workload | ${LABEL.aspen} (runs) | ${LABEL.ceph} (runs) | ${LABEL.nbdkit} (runs) | Aspen/Ceph | Aspen/ceiling | mean clat ms, Aspen · Ceph · nbdkit |`,
    '|---|---:|---:|---:|---:|---:|---:|',
    ...WORKLOADS.map((w) => `| ${w.label}, ${unit(w)} | ${runsOf('aspen', w)} | ${runsOf('ceph', w)} | ${runsOf('nbdkit', w)} | **${f2(ratio('aspen', 'ceph', w, head(w)))}** | **${f3(ratio('aspen', 'nbdkit', w, head(w)))}** | ${SYSTEMS.map((s) => f2(med(s, w, (x) => x.clatMeanMs))).join(' · ')} |`),
    '',
    'Issue 6\'s aim: 4 KiB IOPS at least Ceph\'s (Aspen/Ceph ≥ 1); sequential at least 70 % of ceiling ÷ 3 (Aspen/ceiling ≥ 0.233).',
    '',
    'CPU per unit of work (medians; lower is better), from /proc/<pid>/stat utime+stime of each daemon between fio\'s start and exit (fio\'s connect and image open are inside the window), ' +
    'and fio\'s own CPU (this process\'s cutime+cstime, which grow by a reaped fio\'s CPU). Ceph\'s librbd runs **inside fio**, Aspen\'s image client inside the NBD server: ' +
    'compare Aspen "OSDs + NBD server" with Ceph "OSDs", and the "+ fio" column, which counts both client sides. Ops and GiB are what fio moved (one copy, not the 3 replicas).',
    '',
    '| workload | unit | Aspen OSDs + NBD server | Ceph OSDs | Aspen/Ceph | Aspen NBD server alone | OSDs + NBD server + fio, Aspen · Ceph · nbdkit | all daemons (+mons, mgr) + fio, Aspen · Ceph |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...WORKLOADS.map((w) => `| ${w.label} | ${perUnit(w)} | ${cpuCell('aspen', w, osdGw)} | ${cpuCell('ceph', w, osdGw)} | **${f2(ratio('aspen', 'ceph', w, per(w, osdGw)))}** | ${cpuCell('aspen', w, (s) => s.cpuS.gw)} | ${SYSTEMS.map((s) => cpuCell(s, w, osdGwFio)).join(' · ')} | ${cpuCell('aspen', w, all)} · ${cpuCell('ceph', w, all)} |`),
    '',
    '<details><summary>Every run</summary>',
    '',
    '| system | workload | run | IOPS | MB/s | clat mean ms | clat p99 ms | ios | runtime s | OSDs CPU s | NBD server CPU s | mons CPU s | mgr CPU s | fio CPU s | wall s |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const sys of SYSTEMS) for (const w of WORKLOADS) ss(sys, w).forEach((s, i) => {
    lines.push(`| ${LABEL[sys]} | ${w.label} | ${i + 1} | ${f0(s.iops)} | ${f1(s.mbPerS)} | ${f2(s.clatMeanMs)} | ${f2(s.clatP99Ms)} | ${s.ios} | ${f2(s.runtimeS)} | ${f2(s.cpuS.osd)} | ${f2(s.cpuS.gw)} | ${f2(s.cpuS.mon)} | ${f2(s.cpuS.mgr)} | ${f2(s.fioCpuS)} | ${f2(s.wallS)} |`);
  });
  lines.push('', '</details>', '');
  const fillLine = SYSTEMS.filter((s) => fills.has(s)).map((s) => `${LABEL[s]} ${f1(fills.get(s)!.runtimeS)} s (${f0(fills.get(s)!.mbPerS)} MB/s)`).join(', ');
  if (fillLine !== '') notes.push(`Preconditioning (1 GiB, 4 MiB sequential writes, iodepth ${IODEPTH}): ${fillLine}`);
  if (idle.size > 0) notes.push(`Idle CPU of the daemons before the runs, all systems up: ${[...idle].map(([s, c]) => `${LABEL[s]} ${f3(c)} cores`).join(', ')} (an idle cluster's share runs during the others' jobs too)`);
  const loads = SYSTEMS.flatMap((sys) => WORKLOADS.flatMap((w) => ss(sys, w).map((s) => s.load1)));
  if (loads.length > 0) notes.push(`1-minute load average at the end of the measured jobs (2 cores; other engineers' work included): min ${f1(Math.min(...loads))}, median ${f1(median(loads))}, max ${f1(Math.max(...loads))}`);
  if (ceph !== null) notes.push(`Ceph health before the runs: ${ceph.health}; up.sh to all PGs active+clean took ${f0(ceph.upS)} s`);
  notes.push(`The whole run (start-up of all three, preconditioning, ${REPS} repetition(s), teardown) took ${f0(wallS)} s`);
  for (const n of notes) if (!n.startsWith('**')) lines.push(`- ${n}.`);
  lines.push(
    '',
    'Commands: `npm run bench -- rbd` (knobs: BENCH_RBD_SECONDS, BENCH_RBD_REPS, BENCH_RBD_WARMUP_SECONDS, BENCH_RBD_SKIP_CEPH=1, BENCH_RBD_SKIP_ASPEN=1, BENCH_RBD_SKIP_NBDKIT=1, BENCH_RBD_CPU_PROF=DIR, ASPEN_ANCHORS_DIR). What it runs:',
    '',
    '```sh',
    '# Aspen (MONS = the 3 mons\' loopback addresses; pool made with: aspen osd pool create rbd 32 32 --size 3 --min-size 2)',
    `rbd/bin/aspen-rbd -m MONS create ${POOL}/${IMAGE} --size 1G`,
    'rbd/bin/aspen-rbd -m MONS nbd serve --port PORT &',
    `fio --name=fill --ioengine=nbd --uri=nbd://127.0.0.1:PORT/${POOL}/${IMAGE} --rw=write --bs=4194304 --iodepth=${IODEPTH} --size=1g   # precondition`,
    `fio --name=J --ioengine=nbd --uri=nbd://127.0.0.1:PORT/${POOL}/${IMAGE} --rw=RW --bs=BS --iodepth=${IODEPTH} --size=1g --runtime=${SECONDS} --time_based`,
    '# Ceph (DATA = a temp dir)',
    'NO_RGW=1 NO_MDS=1 /work/shared/anchors/ceph/up.sh DATA',
    `CEPH_CONF=DATA/ceph.conf fio --name=J --ioengine=rbd --clientname=admin --pool=${POOL} --rbdname=${IMAGE} --direct=1 --rw=RW --bs=BS --iodepth=${IODEPTH} --size=1g --runtime=${SECONDS} --time_based`,
    '/work/shared/anchors/ceph/down.sh DATA --wipe',
    '# ceiling',
    `nbdkit -f -i 127.0.0.1 -p PORT --threads ${NBDKIT_THREADS} memory 1G &`,
    `fio --name=J --ioengine=nbd --uri=nbd://127.0.0.1:PORT/ --rw=RW --bs=BS --iodepth=${IODEPTH} --size=1g --runtime=${SECONDS} --time_based`,
    '# RW/BS: randwrite/4096, randread/4096, write/4194304, read/4194304',
    '```',
  );
  return lines.join('\n');
}
