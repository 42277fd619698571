/**
 * Monitor benchmark (`npm run bench -- mon`; issue 2 "Performance"): committed proposals per
 * second and p50/p99 commit latency with 1 and 64 concurrent clients on a 3-mon loopback cluster,
 * side by side in the same run with etcd 3.4 (the anchor in /work/shared/anchors/etcd: three
 * members of Debian's etcd-server on loopback, 256-byte puts through the npm `etcd3` client).
 *
 * The Aspen load: each concurrent client is its own MonClient (its own session and gRPC channel)
 * sending `config set who=client.bench<w> name=k<i mod 1000> value=<256 random chars>` back to
 * back — a replicated, exactly-once, state-changing command that is cheap to apply, as the etcd
 * load's `put k<w>-<i mod 1000> = <256 bytes>` is. A second Aspen variant puts all concurrent
 * clients on ONE MonClient (one session, one gRPC channel), as the anchor drives etcd through one
 * `etcd3` client. Each measurement is a warm-up, then a fixed window; each worker stops issuing
 * when the window ends and the elapsed time runs until the last reply, as the anchor's bench.mjs
 * counts. The systems take turns going first; the table shows medians, the ratios are paired
 * per run. CPU of the servers comes from /proc/<pid>/stat (utime+stime) around each window.
 *
 * Knobs (environment): ASPEN_BENCH_SECONDS (10), ASPEN_BENCH_WARMUP_SECONDS (3),
 * ASPEN_BENCH_RUNS (3), ASPEN_BENCH_CONCURRENCY ("1,64"), ASPEN_BENCH_SHARED_CLIENT=0 (skip the
 * "one shared MonClient" variant), ASPEN_BENCH_SKIP_ETCD=1,
 * ASPEN_ANCHORS_DIR (default ../shared/anchors from the repo root), and ASPEN_BENCH_CPU_PROF=DIR:
 * run every mon under the V8 CPU profiler (profiles in DIR) and append the leader's hotspots.
 * Not a test: nothing here asserts on timing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MonClient } from '@aspen/shared/io/monclient.ts';
import { ProcessHarness, REPO_ROOT, sleep, tcpConnectable } from '../harness.ts';
import { MonCluster } from '../mon-cluster.ts';

const env = (k: string, d: string): string => process.env[k] ?? d;
const WINDOW_S = Number(env('ASPEN_BENCH_SECONDS', '10'));
const WARMUP_S = Number(env('ASPEN_BENCH_WARMUP_SECONDS', '3'));
const RUNS = Number(env('ASPEN_BENCH_RUNS', '3'));
const CONCURRENCY = env('ASPEN_BENCH_CONCURRENCY', '1,64').split(',').map(Number);
const SKIP_ETCD = env('ASPEN_BENCH_SKIP_ETCD', '') === '1';
const CPU_PROF_DIR = process.env['ASPEN_BENCH_CPU_PROF'];
const SHARED_CLIENT = env('ASPEN_BENCH_SHARED_CLIENT', '1') !== '0';
const ANCHOR_SRC = join(resolve(env('ASPEN_ANCHORS_DIR', join(REPO_ROOT, '..', 'shared', 'anchors'))), 'etcd');
const PAYLOAD_BYTES = 256;
const KEYS_PER_CLIENT = 1000;
const ETCD_CLIENT_PORT = 12379;
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64

/** What is measured: Aspen with a MonClient per concurrent client, Aspen with one shared MonClient, etcd. */
const SYSTEMS = ['aspen', 'aspen-shared', 'etcd'] as const;
type System = (typeof SYSTEMS)[number];
const SYSTEM_LABEL: Record<System, string> = { aspen: 'Aspen', 'aspen-shared': 'Aspen, 1 MonClient', etcd: 'etcd 3.4' };

const log = (s: string): void => void process.stderr.write(`[bench mon] ${s}\n`);

/** One measured window of one system at one concurrency. */
interface Sample {
  commitsPerS: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Server CPU over the window, cores (CPU-s per s), summed over the members. */
  serverCores: number;
  /** The busiest member's share, cores. */
  busiestCores: number;
  /** Server CPU per committed proposal, µs (all members). */
  serverUsPerCommit: number;
  /** Load generator CPU, cores (NaN when unknown). */
  clientCores: number;
}

/** utime+stime of `pid` in seconds (NaN if the process is gone). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after the comm field: f[0] = state (field 3) … f[11] = utime (14), f[12] = stime (15)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function serverCpu(pids: number[], before: number[], seconds: number, commits: number): Pick<Sample, 'serverCores' | 'busiestCores' | 'serverUsPerCommit'> {
  const used = pids.map((p, i) => cpuSeconds(p) - before[i]!);
  const total = used.reduce((a, b) => a + b, 0);
  return { serverCores: total / seconds, busiestCores: Math.max(...used) / seconds, serverUsPerCommit: (total / Math.max(1, commits)) * 1e6 };
}

// ---------------------------------------------------------------------------------------------
// Aspen

const VALUES = Array.from({ length: 256 }, () => randomBytes(PAYLOAD_BYTES).toString('base64url').slice(0, PAYLOAD_BYTES));

/**
 * Runs the clients back to back for `seconds`; returns latencies (ms) and the elapsed time.
 * Worker w writes `client.bench<w>/k<i mod 1000>` with i from 0 in every window, as bench.mjs
 * writes `k<w>-<i mod 1000>`: the key space, hence the state (and the cost of a snapshot), is
 * bounded the same way on both systems.
 */
async function aspenLoad(clients: MonClient[], seconds: number): Promise<{ lat: number[]; errors: number; elapsedS: number }> {
  const lat: number[] = [];
  let errors = 0;
  const t0 = process.hrtime.bigint();
  const end = Date.now() + seconds * 1000;
  await Promise.all(clients.map(async (c, w) => {
    for (let i = 0; Date.now() < end; i++) {
      const t = process.hrtime.bigint();
      try {
        await c.command({ prefix: 'config set', who: `client.bench${w}`, name: `k${i % KEYS_PER_CLIENT}`, value: VALUES[(w * 31 + i) % VALUES.length]! });
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
      } catch {
        errors++;
      }
    }
  }));
  return { lat, errors, elapsedS: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/**
 * One Aspen window. `shared`: all `conc` workers share ONE MonClient (one session, one gRPC
 * channel carrying `conc` concurrent calls, as the etcd anchor's single `etcd3` client does);
 * otherwise each worker has its own.
 */
async function aspenSample(cluster: MonCluster, pids: number[], conc: number, shared: boolean): Promise<Sample> {
  const make = (): MonClient => new MonClient({ monAddrs: [...cluster.addrs.values()], fsid: cluster.fsid, timeoutMs: 30_000 });
  const one = shared ? make() : null;
  const clients = Array.from({ length: conc }, () => one ?? make());
  try {
    await aspenLoad(clients, WARMUP_S); // also lets each client find the leader
    const before = pids.map(cpuSeconds);
    const clientBefore = process.cpuUsage();
    const r = await aspenLoad(clients, WINDOW_S);
    const cu = process.cpuUsage(clientBefore);
    r.lat.sort((a, b) => a - b);
    return {
      commitsPerS: r.lat.length / r.elapsedS, p50Ms: percentile(r.lat, 0.5), p99Ms: percentile(r.lat, 0.99), errors: r.errors,
      ...serverCpu(pids, before, r.elapsedS, r.lat.length), clientCores: (cu.user + cu.system) / 1e6 / r.elapsedS,
    };
  } finally {
    for (const c of new Set(clients)) c.close();
  }
}

// ---------------------------------------------------------------------------------------------
// etcd anchor

interface EtcdAnchor {
  dir: string;
  data: string;
  pids: number[];
  version: string;
}

/** A copy of the anchor folder with its node_modules (cached across runs; /work/shared is read-only). */
function prepareEtcdAnchor(): string {
  const dir = join(tmpdir(), 'aspen-bench-etcd-anchor');
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(ANCHOR_SRC)) if (f !== 'node_modules') cpSync(join(ANCHOR_SRC, f), join(dir, f), { recursive: true });
  if (!existsSync(join(dir, 'node_modules', 'etcd3'))) {
    log(`npm ci in ${dir} (the anchor's own etcd3 client)`);
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return dir;
}

async function startEtcd(): Promise<EtcdAnchor> {
  if (await tcpConnectable(ETCD_CLIENT_PORT)()) throw new Error(`port ${ETCD_CLIENT_PORT} is already in use (another etcd anchor running?)`);
  const dir = prepareEtcdAnchor();
  const data = mkdtempSync(join(tmpdir(), 'aspen-bench-etcd-data-'));
  execFileSync(join(dir, 'up.sh'), [data], { stdio: ['ignore', 'inherit', 'inherit'] });
  const pids = [1, 2, 3].map((i) => Number(readFileSync(join(data, `e${i}.pid`), 'utf8').trim()));
  const version = execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  return { dir, data, pids, version };
}

function stopEtcd(e: EtcdAnchor): void {
  try {
    execFileSync(join(e.dir, 'down.sh'), [e.data], { stdio: 'ignore' });
  } finally {
    rmSync(e.data, { recursive: true, force: true });
  }
}

/** Runs the anchor's bench.mjs; returns its parsed line and the client's CPU (sampled from /proc). */
function etcdBench(e: EtcdAnchor, conc: number, seconds: number): Promise<{ commitsPerS: number; p50Ms: number; p99Ms: number; clientCpuS: number; elapsedS: number }> {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, ['bench.mjs', String(conc), String(seconds)], { cwd: e.dir, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let clientCpuS = NaN;
    const poll = setInterval(() => {
      const s = child.pid === undefined ? NaN : cpuSeconds(child.pid);
      if (!Number.isNaN(s)) clientCpuS = s;
    }, 100);
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', rej);
    child.once('exit', (code) => {
      clearInterval(poll);
      const m = /: (\d+) commits\/s p50 ([\d.]+) ms p99 ([\d.]+) ms/.exec(out);
      if (code !== 0 || m === null) return rej(new Error(`etcd bench.mjs ${conc} ${seconds} failed (status ${code}): ${out}`));
      res({ commitsPerS: Number(m[1]), p50Ms: Number(m[2]), p99Ms: Number(m[3]), clientCpuS, elapsedS: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
  });
}

async function etcdSample(e: EtcdAnchor, conc: number): Promise<Sample> {
  await etcdBench(e, conc, WARMUP_S);
  const before = e.pids.map(cpuSeconds);
  const r = await etcdBench(e, conc, WINDOW_S);
  // The members' CPU is taken over the whole child run (its start-up is idle time for them).
  const cpu = serverCpu(e.pids, before, WINDOW_S, r.commitsPerS * WINDOW_S);
  return { commitsPerS: r.commitsPerS, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: 0, ...cpu, clientCores: r.clientCpuS / r.elapsedS };
}

// ---------------------------------------------------------------------------------------------
// CPU profile summary (ASPEN_BENCH_CPU_PROF)

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }

/** The top self-time functions and packages of a V8 .cpuprofile, as markdown. */
function summariseProfile(path: string, top = 20): string {
  const prof = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[] };
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  const short = (url: string): string => url.replace(/^file:\/\//, '').replace(`${REPO_ROOT}/`, '').replace(/^node_modules\//, '');
  const area = (url: string, fn: string): string => {
    if (url === '') return fn.startsWith('(') ? fn : '(native/builtin)';
    if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
    const u = short(url);
    const nm = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
    return nm ? nm[1]! : u.split('/').slice(0, 3).join('/');
  };
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    if (hits === 0) continue;
    total += hits;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'} ${url ? `${short(url)}:${lineNumber + 1}` : ''}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + hits);
  }
  const rows = (m: Map<string, number>, k: number): string[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, h]) => `| ${(100 * h / total).toFixed(1)}% | \`${name.replace(/\|/g, '\\|')}\` |`);
  return [
    '| self | function |', '|---:|---|', ...rows(byFn, top), '',
    '| self | area (package or directory) |', '|---:|---|', ...rows(byArea, 15),
  ].join('\n');
}

/**
 * `--cpu-prof` is refused in NODE_OPTIONS and MonCluster has no per-mon node flags, so the mons
 * are profiled by a preload (`--import`) that runs the V8 sampling profiler through an in-process
 * inspector session and writes `<dir>/CPU.<pid>.cpuprofile` when the process exits (the mon's
 * SIGTERM handler exits; the session answers synchronously, so the write happens in time).
 */
function writeProfilerPreload(dir: string): string {
  const file = join(dir, 'cpu-prof-preload.mjs');
  writeFileSync(file, [
    "import { Session } from 'node:inspector';",
    "import { writeFileSync } from 'node:fs';",
    'const s = new Session();',
    's.connect();',
    "s.post('Profiler.enable');",
    "s.post('Profiler.setSamplingInterval', { interval: 1000 });",
    "s.post('Profiler.start');",
    "process.on('exit', () => s.post('Profiler.stop', (err, r) => {",
    `  if (!err) writeFileSync(${JSON.stringify(dir)} + '/CPU.' + process.pid + '.cpuprofile', JSON.stringify(r.profile));`,
    '}));',
    '',
  ].join('\n'));
  return file;
}

function leaderProfile(dir: string, pid: number): string | null {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`));
  files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size);
  return files[0] === undefined ? null : join(dir, files[0]);
}

// ---------------------------------------------------------------------------------------------

const f0 = (x: number): string => (Number.isNaN(x) ? '—' : x.toFixed(0));
const f2 = (x: number): string => (Number.isNaN(x) ? '—' : x.toFixed(2));

export async function run(): Promise<string> {
  // Profiling keeps the directory (logs next to the profiles); so does ASPEN_KEEP_TEST_DIR=1.
  const harness = new ProcessHarness(CPU_PROF_DIR !== undefined ? { keepDir: true } : {});
  let etcd: EtcdAnchor | null = null;
  const stopEtcdNow = (): void => {
    if (etcd !== null) stopEtcd(etcd);
    etcd = null;
  };
  // Runs before the harness's own handler (which kills the mons and re-raises the signal).
  const onSignal = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    stopEtcdNow();
  };
  process.prependListener('SIGINT', onSignal);
  process.prependListener('SIGTERM', onSignal);
  process.on('exit', stopEtcdNow);
  const samples = new Map<System, Map<number, Sample[]>>(SYSTEMS.map((sys) => [sys, new Map(CONCURRENCY.map((c) => [c, []]))]));
  let etcdNote = '';
  let profileSection = '';
  let leader = '';
  try {
    const savedNodeOptions = process.env['NODE_OPTIONS'];
    if (CPU_PROF_DIR !== undefined) {
      mkdirSync(CPU_PROF_DIR, { recursive: true });
      process.env['NODE_OPTIONS'] = `${savedNodeOptions ?? ''} --import ${writeProfilerPreload(resolve(CPU_PROF_DIR))}`.trim();
    }
    let cluster: MonCluster;
    try {
      cluster = await MonCluster.start(harness, { count: 3 });
    } finally {
      if (savedNodeOptions === undefined) delete process.env['NODE_OPTIONS'];
      else process.env['NODE_OPTIONS'] = savedNodeOptions;
    }
    leader = await cluster.leader();
    cluster.close();
    const names = [...cluster.addrs.keys()];
    const pids = names.map((n) => harness.daemon(`mon.${n}`).pid);
    log(`aspen: 3 mons up (${names.map((n, i) => `${n}=${pids[i]}`).join(' ')}), leader ${leader}; dir ${harness.dir}`);
    if (!SKIP_ETCD) {
      try {
        etcd = await startEtcd();
        log(`etcd: ${etcd.version}, members ${etcd.pids.join(' ')}`);
      } catch (err) {
        etcdNote = `etcd anchor not run: ${err instanceof Error ? err.message : String(err)}`;
        log(etcdNote);
      }
    } else etcdNote = 'etcd anchor skipped (ASPEN_BENCH_SKIP_ETCD=1)';
    for (let r = 0; r < RUNS; r++) {
      for (const c of CONCURRENCY) {
        // Each run starts with a different system, so a drift in the machine's load is shared.
        const order = SYSTEMS.map((_, i) => SYSTEMS[(i + r) % SYSTEMS.length]!);
        for (const sys of order) {
          let s: Sample;
          if (sys === 'etcd') {
            if (etcd === null) continue;
            s = await etcdSample(etcd, c);
          } else {
            if (sys === 'aspen-shared' && (c === 1 || !SHARED_CLIENT)) continue;
            s = await aspenSample(cluster, pids, c, sys === 'aspen-shared');
          }
          samples.get(sys)!.get(c)!.push(s);
          log(`run ${r + 1}/${RUNS} ${SYSTEM_LABEL[sys]} c=${c}: ${f0(s.commitsPerS)} commits/s p50 ${f2(s.p50Ms)} ms p99 ${f2(s.p99Ms)} ms, servers ${f2(s.serverCores)} cores (busiest ${f2(s.busiestCores)}), client ${f2(s.clientCores)}, errors ${s.errors}`);
          await sleep(500);
        }
      }
    }
    const finalLeader = await cluster.leader(10_000).finally(() => cluster.close());
    if (finalLeader !== leader) log(`note: the leader changed during the run (${leader} -> ${finalLeader})`);
    leader = finalLeader === leader ? leader : `${leader}→${finalLeader}`;
  } finally {
    stopEtcdNow();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('exit', stopEtcdNow);
    await harness.teardown();
  }
  if (CPU_PROF_DIR !== undefined) {
    const leaderPid = harness.daemons().find((d) => d.name === `mon.${leader.split('→')[0]}`)?.pid ?? -1;
    const p = leaderProfile(resolve(CPU_PROF_DIR), leaderPid);
    profileSection = p === null ? `\n\nNo profile of the leader (pid ${leaderPid}) found in ${CPU_PROF_DIR}.` :
      `\n\n### Leader CPU profile (mon.${leader}, V8 sampling profiler, 1 ms; figures above are slowed by profiling)\n\n${p}\n\n${summariseProfile(p)}`;
  }
  return report(samples, etcdNote, leader) + profileSection;
}

function report(samples: Map<System, Map<number, Sample[]>>, etcdNote: string, leader: string): string {
  const row = (sys: System, c: number): string | null => {
    const ss = samples.get(sys)!.get(c)!;
    if (ss.length === 0) return sys === 'etcd' ? `| ${c} | ${SYSTEM_LABEL[sys]} | — | | | | | | | |` : null;
    const m = (k: keyof Sample): number => median(ss.map((s) => s[k]));
    return `| ${c} | ${SYSTEM_LABEL[sys]} | **${f0(m('commitsPerS'))}** (${ss.map((s) => f0(s.commitsPerS)).join(', ')}) | ${f2(m('p50Ms'))} | ${f2(m('p99Ms'))} | ${f2(m('serverCores'))} | ${f2(m('busiestCores'))} | ${f0(m('serverUsPerCommit'))} | ${f2(m('clientCores'))} | ${ss.reduce((a, s) => a + s.errors, 0)} |`;
  };
  const lines = [
    '## Monitors: committed proposals, Aspen vs etcd 3.4',
    '',
    `3 \`aspen-mon\` processes on loopback (test/src/mon-cluster.ts, default flags: tick 100 ms, snapshot every 50,000 entries, SQLite WAL store with synchronous=FULL), leader mon.${leader}. ` +
    `Load, in the bench process: \`config set\` (who \`client.bench…\`, name \`k<i mod ${KEYS_PER_CLIENT}>\`, a ${PAYLOAD_BYTES}-character value) back to back from each concurrent client; ` +
    '"Aspen" = one MonClient (own session and gRPC channel) per concurrent client, the headline figure; "Aspen, 1 MonClient" = all concurrent clients on one shared MonClient (one session, one channel), like the anchor\'s single etcd3 client. ' +
    `Anchor: etcd 3.4 (anchors/etcd: up.sh, 3 members on loopback; bench.mjs: ${PAYLOAD_BYTES}-byte puts through one \`etcd3\` client in its own node process). ` +
    `Each cell: ${WARMUP_S} s warm-up, then ${WINDOW_S} s; median of ${RUNS} run(s) (runs listed in order), the systems taking turns to go first. ` +
    'CPU from /proc/<pid>/stat utime+stime over the window: "servers" = all three members, in cores (CPU-s per s); "busiest" = the busiest member (the leader); ' +
    'µs/commit = all members\' CPU per committed proposal; "client" = the load generator\'s CPU. The machine is shared with other work: compare within a run.',
    '',
    '| clients | system | commits/s (runs) | p50 ms | p99 ms | servers, cores | busiest, cores | server µs/commit | client, cores | errors |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of CONCURRENCY) for (const sys of SYSTEMS) {
    const r = row(sys, c);
    if (r !== null) lines.push(r);
  }
  lines.push('');
  const tput = (sys: System, c: number): number[] => samples.get(sys)!.get(c)!.map((s) => s.commitsPerS);
  for (const c of CONCURRENCY) {
    const e = tput('etcd', c);
    for (const sys of ['aspen', 'aspen-shared'] as const) {
      const a = tput(sys, c);
      if (a.length === 0) continue;
      // Paired by run (both measured within a minute of each other), then the median.
      const paired = a.map((x, i) => x / (e[i] ?? NaN));
      const pa = median(samples.get(sys)!.get(c)!.map((s) => s.p50Ms));
      const pe = median(samples.get('etcd')!.get(c)!.map((s) => s.p50Ms));
      const aim = sys === 'aspen' && c === Math.max(...CONCURRENCY) ? ' (aim: ≥ 1)' : '';
      lines.push(`- ${c} client(s), ${SYSTEM_LABEL[sys]}: throughput Aspen/etcd = **${f2(median(paired))}**${aim} (per run: ${paired.map(f2).join(', ')}; ratio of medians ${f2(median(a) / median(e))}); p50 latency Aspen/etcd = ${f2(pa / pe)}.`);
    }
  }
  if (etcdNote) lines.push(`- ${etcdNote}.`);
  lines.push(
    '',
    'Commands: `npm run bench -- mon` (knobs: ASPEN_BENCH_SECONDS, ASPEN_BENCH_WARMUP_SECONDS, ASPEN_BENCH_RUNS, ASPEN_BENCH_CONCURRENCY, ' +
    'ASPEN_BENCH_SHARED_CLIENT=0, ASPEN_BENCH_SKIP_ETCD=1, ASPEN_BENCH_CPU_PROF=DIR). The etcd side is the anchor, as run by hand: ' +
    '`cp -r /work/shared/anchors/etcd $T && cd $T && npm ci && ./up.sh $DATA && node bench.mjs C 3 && node bench.mjs C 10; ./down.sh $DATA` (C = 1, 64; the first bench.mjs is the warm-up).',
  );
  return lines.join('\n');
}
