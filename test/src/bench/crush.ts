/**
 * CRUSH benchmark (not a test): mappings per second of Aspen's mapper on a 1,000-OSD map
 * (10 racks x 10 hosts x 10 OSDs, straw2, 3 replicas, chooseleaf host), side by side with
 * Ceph's `crushtool --test` on the same map and inputs, plus the time to map every PG of a
 * 65,536-PG pool on a 10,000-OSD map. Prints a markdown section for BENCHMARKS.md.
 *
 *   npm run bench -- crush                     (writes the section into BENCHMARKS.md)
 *   node --import tsx test/src/bench/crush.ts  (prints it)
 *
 * The crushtool anchor is skipped, with a note, when crushtool is not on PATH
 * (Debian: apt-get install ceph-base).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  buildCrushMap,
  crushDefaultWeights,
  crushMapperFor,
  crushTest,
  formatCrushText,
  type CrushMap,
} from '../../../shared/src/crush/index.ts';
import { forEachPgMapping, type PlacementOsds } from '../../../shared/src/osdmap/placement.ts';

const MAX_X = 99_999;
const NUM_REP = 3;

function map1000(): CrushMap {
  return buildCrushMap(1000, [
    { name: 'host', alg: 'straw2', size: 10 },
    { name: 'rack', alg: 'straw2', size: 10 },
    { name: 'root', alg: 'straw2', size: 0 },
  ]);
}

/** Best of `runs` timings of `fn`, in ms: wall clock and this process's CPU time. */
function best(runs: number, fn: () => void): { wallMs: number; cpuMs: number } {
  let wallMs = Infinity;
  let cpuMs = Infinity;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wallMs = Math.min(wallMs, performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpuMs = Math.min(cpuMs, (c.user + c.system) / 1000);
  }
  return { wallMs, cpuMs };
}

/** Best of `runs` runs of `crushtool args`: wall clock and the child's CPU time (bash `time`). */
function bestCrushtool(runs: number, args: string[]): { wallMs: number; cpuMs: number } {
  let wallMs = Infinity;
  let cpuMs = Infinity;
  const cmd = `TIMEFORMAT='%3U %3S'; time crushtool ${args.map((a) => `'${a}'`).join(' ')} >/dev/null 2>&1`;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
    wallMs = Math.min(wallMs, performance.now() - t0);
    const m = /(\d+\.\d+) (\d+\.\d+)\s*$/.exec(r.stderr);
    if (r.status !== 0 || !m) throw new Error(`crushtool failed: ${r.stderr}`);
    cpuMs = Math.min(cpuMs, (Number(m[1]) + Number(m[2])) * 1000);
  }
  return { wallMs, cpuMs };
}

function hasCrushtool(): boolean {
  return spawnSync('crushtool', ['--version'], { stdio: 'ignore' }).error === undefined;
}

/** Runs the benchmark and returns the markdown section. */
export function runCrushBench(): string {
  const lines: string[] = [];
  const map = map1000();
  const mapper = crushMapperFor(map);
  const weights = crushDefaultWeights(map);
  const out = new Int32Array(NUM_REP);
  const n = MAX_X + 1;
  let sink = 0;
  // Pure mapping loop (what clients and OSDs run).
  best(1, () => {
    for (let x = 0; x <= 20_000; x++) sink += mapper.doRule(0, x, out, NUM_REP, weights);
  });
  const pure = best(5, () => {
    for (let x = 0; x <= MAX_X; x++) sink += mapper.doRule(0, x, out, NUM_REP, weights);
  });
  // The same work as `crushtool --test --show-mappings` (mapping + formatting lines), in process.
  const tester = best(3, () => {
    sink += crushTest(map, { minRule: 0, maxRule: 0, minRep: NUM_REP, maxRep: NUM_REP, minX: 0, maxX: MAX_X, showMappings: true }).length;
  });
  const dir = mkdtempSync(join(tmpdir(), 'aspen-crush-bench-'));
  type T = { wallMs: number; cpuMs: number };
  let anchor: { total: T; startup: T; stats: T } | undefined;
  try {
    if (hasCrushtool()) {
      const txt = join(dir, 'map.txt');
      const bin = join(dir, 'map.bin');
      writeFileSync(txt, formatCrushText(map));
      const c = spawnSync('crushtool', ['-c', txt, '-o', bin]);
      if (c.status !== 0) throw new Error(`crushtool -c failed: ${c.stderr}`);
      const ct = (args: string[]): T => bestCrushtool(3, ['-i', bin, '--test', '--num-rep', String(NUM_REP), ...args]);
      anchor = {
        total: ct(['--min-x', '0', '--max-x', String(MAX_X), '--show-mappings']),
        startup: ct(['--min-x', '0', '--max-x', '0', '--show-mappings']),
        stats: ct(['--min-x', '0', '--max-x', String(MAX_X), '--show-statistics']),
      };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // 65,536 PGs on 10,000 OSDs (100 racks x 10 hosts x 10 OSDs).
  const big = buildCrushMap(10_000, [
    { name: 'host', alg: 'straw2', size: 10 },
    { name: 'rack', alg: 'straw2', size: 10 },
    { name: 'root', alg: 'straw2', size: 0 },
  ]);
  const osds: PlacementOsds = {
    maxOsd: 10_000,
    exists: new Uint8Array(10_000).fill(1),
    up: new Uint8Array(10_000).fill(1),
    weight: new Uint32Array(10_000).fill(0x10000),
  };
  const pool = { id: 1, type: 'replicated' as const, size: 3, pgNum: 65_536, pgpNum: 65_536, crushRule: 0 };
  const compile = best(1, () => void crushMapperFor(buildCrushMap(10_000, [
    { name: 'host', alg: 'straw2', size: 10 },
    { name: 'rack', alg: 'straw2', size: 10 },
    { name: 'root', alg: 'straw2', size: 0 },
  ])));
  crushMapperFor(big);
  const pgs = best(3, () => forEachPgMapping(big, pool, osds, (_s, up) => (sink += up.length)));

  const rate = (ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
  const us = (ms: number): string => `${((ms * 1000) / n).toFixed(2)} µs`;
  const row = (what: string, t: T): string =>
    `| ${what} | ${t.wallMs.toFixed(0)} ms | ${t.cpuMs.toFixed(0)} ms | ${us(t.cpuMs)} | ${rate(t.cpuMs)} |`;
  const minus = (a: T, b: T): T => ({ wallMs: a.wallMs - b.wallMs, cpuMs: a.cpuMs - b.cpuMs });
  lines.push('## CRUSH', '');
  lines.push(`Measured by \`npm run bench -- crush\` (test/src/bench/crush.ts, Node ${process.version}, 2 cores shared with other work, so CPU time is the figure to compare; best of 3–5 runs).`, '');
  lines.push('Map: `--build --num-osds 1000 host straw2 10 rack straw2 10 root straw2 0` (rule 0: `chooseleaf firstn 0 type host`), 3 replicas, x = 0..99,999.', '');
  lines.push('| what | wall | CPU | CPU per mapping | mappings/s (CPU) |', '|---|---|---|---|---|');
  lines.push(row('Aspen `CrushMapper.doRule` (pure mapping)', pure));
  lines.push(row('Aspen `crushTest` --show-mappings (mapping + output lines, in process)', tester));
  if (anchor) {
    lines.push(row(`\`crushtool -i map --test --num-rep 3 --min-x 0 --max-x 99999 --show-mappings\` (incl. startup)`, anchor.total));
    lines.push(row('crushtool --show-mappings minus startup (same with `--max-x 0`)', minus(anchor.total, anchor.startup)));
    lines.push(row('crushtool `--show-statistics` (no mapping output) minus startup', minus(anchor.stats, anchor.startup)));
    const like = minus(anchor.total, anchor.startup).cpuMs / tester.cpuMs;
    const pureRatio = minus(anchor.stats, anchor.startup).cpuMs / pure.cpuMs;
    lines.push('');
    lines.push(`Aspen speed relative to crushtool (CPU time): like for like (mapping + output lines vs crushtool --show-mappings, startup excluded) **${like.toFixed(2)}×**; pure mapping vs crushtool --show-statistics (startup excluded) **${pureRatio.toFixed(2)}×**.`);
  } else {
    lines.push('', '_crushtool not found on PATH: the Ceph anchor was skipped (apt-get install ceph-base)._');
  }
  lines.push('');
  lines.push(`All 65,536 PGs of a 3-replica pool on a 10,000-OSD map (1,000 hosts, 100 racks), \`forEachPgMapping\`: **${pgs.wallMs.toFixed(0)} ms** wall, ${pgs.cpuMs.toFixed(0)} ms CPU (${((pgs.cpuMs * 1000) / 65_536).toFixed(2)} µs per PG); building and compiling that map: ${compile.wallMs.toFixed(0)} ms.`);
  lines.push(
    '',
    'Anchor: Ceph 16.2.15 `crushtool` (Debian `ceph-base`), run by the benchmark on the same compiled map',
    "(`crushtool -c` of Aspen's `formatCrushText` output, identical to `crushtool --build`'s map) and the same",
    "inputs; crushtool's CPU time comes from bash `time`. Both produce the same mappings",
    "(shared/test/crush/fixtures.test.ts). Target: at least half of crushtool's speed. Wall-clock figures",
    "are inflated by other jobs on the machine's 2 shared cores; Aspen's CPU time includes V8's GC threads.",
  );
  if (sink === -1) lines.push('');
  return lines.join('\n') + '\n';
}

/** The runner's in-process protocol (test/src/bench/run.ts): `npm run bench -- crush`. */
export async function run(): Promise<string> {
  return runCrushBench();
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(runCrushBench());
