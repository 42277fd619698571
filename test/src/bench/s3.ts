/**
 * S3 benchmark (`npm run bench -- s3`; issue 7 "Performance"): PUT and GET MB/s of 1 MiB and
 * 64 MiB objects and ops/s of 4 KiB objects, 16 requests in flight, with the same load generator
 * (/work/shared/anchors/s3bench.mjs: creates a bucket, PUTs N objects, GETs them all, DELETEs
 * them) against, in the same run:
 *
 * - Aspen: 3 `aspen-mon` + 3 `aspen-osd` (each OSD its own CRUSH host) on free loopback ports in
 *   a temp dir, data pool `.aspen.s3.data` (replicated, size 3, min_size 2, 32 PGs as the
 *   anchor's RGW data pool), one `aspen-s3gw` (default flags but `--pg-num 32`), a user made
 *   with `aspen s3 user create`.
 * - Ceph 16.2's radosgw (the anchor in /work/shared/anchors/ceph: up.sh with NO_MDS=1 — 1 mon,
 *   1 mgr, 3 BlueStore OSDs on sparse files, RGW pools (data 32 PGs, the rest 8), radosgw beast
 *   with 128 threads, the S3 user up.sh makes).
 * - s3rver: not installed in this repository (and no `npm install` here), so not run; the
 *   section says so.
 *
 * Both clusters are up at once; each repetition runs the three sizes on one system, then on the
 * other (the first alternates). Medians are shown, ratios paired per repetition.
 * Before starting Ceph, the anchor's default ports (mon 13300/16789, RGW 17480) are polled
 * until free (another benchmark holding them would also hold ~4.5 GiB of RAM); up to 15 min.
 *
 * Knobs (environment): BENCH_S3_REPS (3), BENCH_S3_COUNT_1M (200), BENCH_S3_COUNT_64M (16),
 * BENCH_S3_COUNT_4K (1000), BENCH_S3_SKIP_CEPH=1, BENCH_S3_SKIP_ASPEN=1, ASPEN_ANCHORS_DIR
 * (default ../shared/anchors). A Ceph that fails to start is reported; Aspen's figures still are.
 * Not a test: nothing here asserts on timing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT, freePort, sleep, tcpConnectable, tsNodeArgs, waitFor } from '../harness.ts';
import { OsdTestCluster } from '../osd-cluster.ts';
import { cephEnv, runScript } from './_anchor.ts';

const env = (k: string, d: string): string => process.env[k] ?? d;
const REPS = Number(env('BENCH_S3_REPS', '3'));
const SKIP_CEPH = env('BENCH_S3_SKIP_CEPH', '') === '1';
const SKIP_ASPEN = env('BENCH_S3_SKIP_ASPEN', '') === '1';
const ANCHORS = resolve(env('ASPEN_ANCHORS_DIR', join(REPO_ROOT, '..', 'shared', 'anchors')));
const S3BENCH = join(ANCHORS, 's3bench.mjs');
const CONCURRENCY = 16;
const PG_NUM = 32;
const ASPEN_CLI = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts');
const S3GW = join(REPO_ROOT, 's3gw', 'src', 'bin', 'aspen-s3gw.ts');
const CEPH_PORTS = [13300, 16789, 17480];
const RGW_PORT = 17480;
const CEPH_AK = 'ANCHORACCESSKEY00001';
const CEPH_SK = 'anchorSecretKey0000000000000000000000001';
const PORT_WAIT_MS = 15 * 60_000;
const CLIENT_TIMEOUT_MS = 20 * 60_000;
const MiB = 2 ** 20;

const log = (s: string): void => void process.stderr.write(`[bench s3] ${s}\n`);

interface Workload { key: string; label: string; sizeBytes: number; count: number }
const WORKLOADS: readonly Workload[] = [
  { key: '1M', label: '1 MiB', sizeBytes: MiB, count: Number(env('BENCH_S3_COUNT_1M', '200')) },
  { key: '64M', label: '64 MiB', sizeBytes: 64 * MiB, count: Number(env('BENCH_S3_COUNT_64M', '16')) },
  { key: '4K', label: '4 KiB', sizeBytes: 4096, count: Number(env('BENCH_S3_COUNT_4K', '1000')) },
];
const SYSTEMS = ['aspen', 'ceph'] as const;
type System = (typeof SYSTEMS)[number];
const LABEL: Record<System, string> = { aspen: 'aspen-s3gw', ceph: 'radosgw (Ceph 16.2)' };

/** One phase as s3bench.mjs prints it (`--json`). */
interface Phase { secs: number; opsPerSec: number; MBps: number; MiBps: number; p50ms: number; p99ms: number }
interface Sample { put: Phase; get: Phase; del: Phase }
interface Target { system: System; endpoint: string; ak: string; sk: string }

/** Runs s3bench.mjs once. The SDK comes from this repository (NODE_PATH: the script's createRequire fallback). */
function s3bench(t: Target, w: Workload): Promise<Sample> {
  return new Promise((res, rej) => {
    const args = [S3BENCH, t.endpoint, t.ak, t.sk, '--size', String(w.sizeBytes), '--count', String(w.count), '--concurrency', String(CONCURRENCY), '--json'];
    execFile(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, NODE_PATH: join(REPO_ROOT, 'node_modules') }, timeout: CLIENT_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err !== null) {
        rej(new Error(`s3bench ${t.system} ${w.label} failed: ${err.message} ${stderr.slice(-1500)}`));
        return;
      }
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        const r = JSON.parse(line) as { put: Phase; get: Phase; del: Phase };
        res({ put: r.put, get: r.get, del: r.del });
      } catch {
        rej(new Error(`s3bench ${t.system} ${w.label}: no JSON in its output: ${stdout.slice(-1000)} ${stderr.slice(-1000)}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Aspen

interface Aspen { target: Target; cluster: OsdTestCluster; gwPid: number }

async function startAspen(): Promise<Aspen> {
  const cluster = await OsdTestCluster.start({ osds: 3, pool: '.aspen.s3.data', pgNum: PG_NUM });
  try {
    const port = await freePort();
    const gw = cluster.h.spawn({ name: 's3gw', args: tsNodeArgs(S3GW, ['--mon', cluster.monAddrs, '--listen', `127.0.0.1:${port}`, '--pg-num', String(PG_NUM), '--log-level', 'warn']) });
    await waitFor(tcpConnectable(port), { timeoutMs: 60_000, what: 'aspen-s3gw listening' });
    const out = execFileSync(process.execPath, tsNodeArgs(ASPEN_CLI, ['-m', cluster.monAddrs, '-f', 'json', 's3', 'user', 'create', '--uid', 'bench', '--display-name', 'Bench']), { cwd: REPO_ROOT, encoding: 'utf8' });
    const k = (JSON.parse(out) as { keys: { access_key: string; secret_key: string }[] }).keys[0]!;
    return { target: { system: 'aspen', endpoint: `http://127.0.0.1:${port}`, ak: k.access_key, sk: k.secret_key }, cluster, gwPid: gw.pid };
  } catch (err) {
    await cluster.teardown();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Ceph anchor


function portsBusy(): number[] {
  const out = execFileSync('ss', ['-ltnH'], { encoding: 'utf8' });
  return CEPH_PORTS.filter((p) => new RegExp(`:${p}\\b`).test(out));
}


async function startCeph(data: string): Promise<{ target: Target; version: string; upS: number; waitedS: number }> {
  const up = join(ANCHORS, 'ceph', 'up.sh');
  if (!existsSync(up)) throw new Error(`no ${up}`);
  const w0 = Date.now();
  for (let busy = portsBusy(); busy.length > 0; busy = portsBusy()) {
    if (Date.now() - w0 > PORT_WAIT_MS) throw new Error(`ports ${busy.join(', ')} still in use after ${PORT_WAIT_MS / 60_000} min (another benchmark running?)`);
    log(`Ceph's ports ${busy.join(', ')} are in use (another benchmark?): waiting`);
    await sleep(15_000);
  }
  const waitedS = (Date.now() - w0) / 1000;
  const t0 = Date.now();
  await runScript(up, [data], cephEnv({ NO_MDS: '1', S3_ACCESS: CEPH_AK, S3_SECRET: CEPH_SK, RGW_PORT: String(RGW_PORT) }), 600_000);
  await waitFor(tcpConnectable(RGW_PORT), { timeoutMs: 60_000, what: 'radosgw listening' });
  const version = execFileSync('ceph', ['--version'], { encoding: 'utf8' }).trim().replace(/ \([0-9a-f]{40}\)/, '');
  return { target: { system: 'ceph', endpoint: `http://127.0.0.1:${RGW_PORT}`, ak: CEPH_AK, sk: CEPH_SK }, version, upS: (Date.now() - t0) / 1000, waitedS };
}

function stopCeph(data: string): void {
  try {
    const down = join(ANCHORS, 'ceph', 'down.sh');
    if (existsSync(down)) execFileSync(down, [data, '--wipe'], { env: cephEnv(), stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  } catch (err) {
    log(`down.sh ${data} --wipe failed: ${String(err)}`);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const fx = (d: number) => (x: number): string => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '—');
const f0 = fx(0);
const f1 = fx(1);
const f2 = fx(2);

type Samples = Map<System, Map<string, Sample[]>>;

function report(samples: Samples, notes: string[], cephVersion: string, loads: string[], wallS: number): string {
  const ss = (sys: System, w: Workload): Sample[] => samples.get(sys)!.get(w.key)!;
  const big = (w: Workload): boolean => w.sizeBytes >= MiB;
  const unit = (w: Workload): string => (big(w) ? 'MB/s' : 'ops/s');
  const fig = (w: Workload, p: Phase): number => (big(w) ? p.MBps : p.opsPerSec);
  const runs = (sys: System, w: Workload, pick: (s: Sample) => Phase): string => {
    const xs = ss(sys, w).map((s) => fig(w, pick(s)));
    if (xs.length === 0) return '—';
    const fmt = big(w) ? f1 : f0;
    return `**${fmt(median(xs))}** (${xs.map(fmt).join(', ')})`;
  };
  const ratio = (w: Workload, pick: (s: Sample) => Phase): string => {
    const a = ss('aspen', w);
    const c = ss('ceph', w);
    return f2(median(a.map((s, i) => (c[i] === undefined ? NaN : fig(w, pick(s)) / fig(w, pick(c[i]!))))));
  };
  const lat = (sys: System, w: Workload, pick: (s: Sample) => Phase): string => `${f1(median(ss(sys, w).map((s) => pick(s).p50ms)))} / ${f1(median(ss(sys, w).map((s) => pick(s).p99ms)))}`;
  const phases: { name: string; pick: (s: Sample) => Phase }[] = [{ name: 'PUT', pick: (s) => s.put }, { name: 'GET', pick: (s) => s.get }];
  const lines = [
    '## S3: aspen-s3gw vs radosgw (Ceph 16.2), s3bench.mjs',
    '',
    `One load generator for both (/work/shared/anchors/s3bench.mjs with the repository's @aws-sdk/client-s3: new bucket, PUT N objects, GET them all, DELETE them), ${CONCURRENCY} requests in flight, keep-alive. ` +
    `Objects per run: ${WORKLOADS.map((w) => `${w.count} × ${w.label}`).join(', ')}. Median of ${REPS} repetition(s) (runs listed in order); both systems were up at once and took turns, the first alternating; ratios are paired by repetition. ` +
    `Aspen: 3 \`aspen-mon\` + 3 \`aspen-osd\` (each its own CRUSH host) + one \`aspen-s3gw\` on loopback, data pool size 3 / min_size 2, ${PG_NUM} PGs. ` +
    `Ceph: ${cephVersion} from anchors/ceph/up.sh (NO_MDS=1: 1 mon, 1 mgr, 3 BlueStore OSDs on sparse files, osd_memory_target 1 GiB, RGW data pool ${PG_NUM} PGs size 3, radosgw beast, 128 threads). ` +
    'MB = 10^6 bytes. **The machine is shared and noisy (2 cores, other sessions\' builds and tests running; the client runs on the same cores as every daemon)**: ' +
    `load average (1/5/15 min) at start, middle and end: ${loads.join(' · ')}. Compare the ratios, not the absolute figures.`,
    '',
    ...notes.filter((n) => n.startsWith('**')).flatMap((n) => [`${n}.`, '']),
    `| workload | ${LABEL.aspen} (runs) | ${LABEL.ceph} (runs) | Aspen/Ceph | p50 / p99 ms, Aspen | p50 / p99 ms, Ceph |`,
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const w of WORKLOADS) for (const p of phases) {
    lines.push(`| ${p.name} ${w.label}, ${unit(w)} | ${runs('aspen', w, p.pick)} | ${runs('ceph', w, p.pick)} | **${ratio(w, p.pick)}** | ${lat('aspen', w, p.pick)} | ${lat('ceph', w, p.pick)} |`);
  }
  lines.push('', '<details><summary>Every run (DELETE too)</summary>', '', '| system | size | run | PUT MB/s · ops/s | GET MB/s · ops/s | DELETE ops/s |', '|---|---|---:|---:|---:|---:|');
  for (const sys of SYSTEMS) for (const w of WORKLOADS) ss(sys, w).forEach((s, i) => {
    lines.push(`| ${LABEL[sys]} | ${w.label} | ${i + 1} | ${f1(s.put.MBps)} · ${f0(s.put.opsPerSec)} | ${f1(s.get.MBps)} · ${f0(s.get.opsPerSec)} | ${f0(s.del.opsPerSec)} |`);
  });
  lines.push('', '</details>', '');
  notes.push('s3rver: not run — it is not installed in this repository and this run may not `npm install`');
  notes.push(`The whole run (start-up of both systems, ${REPS} repetition(s), teardown) took ${f0(wallS)} s`);
  for (const n of notes) if (!n.startsWith('**')) lines.push(`- ${n}.`);
  lines.push(
    '',
    'Commands: `npm run bench -- s3` (knobs: BENCH_S3_REPS, BENCH_S3_COUNT_1M, BENCH_S3_COUNT_64M, BENCH_S3_COUNT_4K, BENCH_S3_SKIP_CEPH=1, BENCH_S3_SKIP_ASPEN=1, ASPEN_ANCHORS_DIR). Per repetition and system:',
    '',
    '```sh',
    ...WORKLOADS.map((w) => `NODE_PATH=node_modules node /work/shared/anchors/s3bench.mjs ENDPOINT AK SK --size ${w.sizeBytes} --count ${w.count} --concurrency ${CONCURRENCY} --json`),
    '# Aspen: ENDPOINT = aspen-s3gw --mon MONS --listen 127.0.0.1:PORT --pg-num 32; AK/SK from `aspen s3 user create --uid bench`',
    `# Ceph:  NO_MDS=1 /work/shared/anchors/ceph/up.sh DATA; ENDPOINT = http://127.0.0.1:${RGW_PORT}, AK/SK = up.sh's user; finally down.sh DATA --wipe`,
    '```',
  );
  return lines.join('\n');
}

const loadLine = (): string => loadavg().map((x) => x.toFixed(2)).join('/');

export async function run(): Promise<string> {
  const tStart = Date.now();
  const loads = [loadLine()];
  const cephData = mkdtempSync(join(tmpdir(), 'aspen-bench-s3-ceph-'));
  let cephStarted = false;
  const stopCephNow = (): void => {
    if (cephStarted) stopCeph(cephData);
    else rmSync(cephData, { recursive: true, force: true });
    cephStarted = false;
  };
  const onSignal = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    stopCephNow();
  };
  process.prependListener('SIGINT', onSignal);
  process.prependListener('SIGTERM', onSignal);
  process.on('exit', stopCephNow);
  const samples: Samples = new Map(SYSTEMS.map((s) => [s, new Map(WORKLOADS.map((w) => [w.key, []]))]));
  const notes: string[] = [];
  let aspen: Aspen | null = null;
  let ceph: Target | null = null;
  let cephVersion = 'Ceph 16.2';
  try {
    if (SKIP_CEPH) notes.push('radosgw skipped (BENCH_S3_SKIP_CEPH=1)');
    else {
      try {
        cephStarted = true; // up.sh may have started daemons even if it fails later
        const c = await startCeph(cephData);
        ceph = c.target;
        cephVersion = c.version;
        notes.push(`Ceph: up.sh to radosgw listening took ${f0(c.upS)} s${c.waitedS > 1 ? ` (after waiting ${f0(c.waitedS)} s for its ports)` : ''}`);
        log(`ceph up in ${f0(c.upS)} s`);
      } catch (err) {
        const msg = `**radosgw NOT run**: it failed to start (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
        notes.push(msg);
        log(msg);
        stopCephNow();
      }
    }
    if (SKIP_ASPEN) notes.push('Aspen skipped (BENCH_S3_SKIP_ASPEN=1)');
    else {
      aspen = await startAspen();
      log(`aspen up: ${aspen.target.endpoint}, gateway pid ${aspen.gwPid}`);
    }
    const targets = [aspen?.target, ceph].filter((t): t is Target => t !== null && t !== undefined);
    // Unmeasured warm-up: JIT, connection pools, the first allocations of the stores.
    for (const t of targets) await s3bench(t, { key: 'warm', label: 'warm-up', sizeBytes: MiB, count: 32 });
    const failed = new Set<System>();
    for (let r = 0; r < REPS; r++) {
      if (r === Math.floor(REPS / 2)) loads.push(loadLine());
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      for (const t of order) {
        if (failed.has(t.system)) continue;
        for (const w of WORKLOADS) {
          try {
            const s = await s3bench(t, w);
            samples.get(t.system)!.get(w.key)!.push(s);
            log(`run ${r + 1}/${REPS} ${LABEL[t.system]} ${w.label}: PUT ${f1(s.put.MBps)} MB/s ${f0(s.put.opsPerSec)} ops/s, GET ${f1(s.get.MBps)} MB/s ${f0(s.get.opsPerSec)} ops/s`);
          } catch (err) {
            if (t.system === 'aspen') throw err;
            failed.add(t.system);
            const msg = `**radosgw FAILED** in repetition ${r + 1} (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); its figures are from the runs before`;
            notes.push(msg);
            log(msg);
            break;
          }
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (aspen !== null) await aspen.cluster.teardown();
    stopCephNow();
    process.removeListener('exit', stopCephNow);
  }
  loads.push(loadLine());
  return report(samples, notes, cephVersion, loads, (Date.now() - tStart) / 1000);
}
