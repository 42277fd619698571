/**
 * CRUSH benchmark (not a test): mappings per second of Aspen's mapper on a 1,000-OSD map
 * (10 racks x 10 hosts x 10 OSDs, straw2, 3 replicas, chooseleaf host), side by side with
 * Ceph's `crushtool --test` on the same map and inputs, plus the time to map every PG of a
 * 65,536-PG pool on a 10,000-OSD map. Prints a markdown section for BENCHMARKS.md.
 *
 *   node --import tsx test/src/bench/crush.ts        (or: npm run bench -- crush)
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

/** Best of `runs` wall-clock timings of `fn`, in ms. */
function bestMs(runs: number, fn: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
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
  bestMs(1, () => {
    for (let x = 0; x <= 20_000; x++) sink += mapper.doRule(0, x, out, NUM_REP, weights);
  });
  const pureMs = bestMs(5, () => {
    for (let x = 0; x <= MAX_X; x++) sink += mapper.doRule(0, x, out, NUM_REP, weights);
  });
  // The same work as `crushtool --test --show-mappings` (mapping + formatting lines), in process.
  const testerMs = bestMs(3, () => {
    sink += crushTest(map, { minRule: 0, maxRule: 0, minRep: NUM_REP, maxRep: NUM_REP, minX: 0, maxX: MAX_X, showMappings: true }).length;
  });
  const dir = mkdtempSync(join(tmpdir(), 'aspen-crush-bench-'));
  let anchor: { totalMs: number; startupMs: number; statsMs: number } | undefined;
  try {
    if (hasCrushtool()) {
      const txt = join(dir, 'map.txt');
      const bin = join(dir, 'map.bin');
      writeFileSync(txt, formatCrushText(map));
      const c = spawnSync('crushtool', ['-c', txt, '-o', bin]);
      if (c.status !== 0) throw new Error(`crushtool -c failed: ${c.stderr}`);
      const ct = (args: string[]): number =>
        bestMs(3, () => {
          const r = spawnSync('crushtool', ['-i', bin, '--test', '--num-rep', String(NUM_REP), ...args], { stdio: ['ignore', 'ignore', 'ignore'] });
          if (r.status !== 0) throw new Error(`crushtool failed: ${r.status}`);
        });
      anchor = {
        totalMs: ct(['--min-x', '0', '--max-x', String(MAX_X), '--show-mappings']),
        startupMs: ct(['--min-x', '0', '--max-x', '0', '--show-mappings']),
        statsMs: ct(['--min-x', '0', '--max-x', String(MAX_X), '--show-statistics']),
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
  const compileMs = bestMs(1, () => void crushMapperFor(buildCrushMap(10_000, [
    { name: 'host', alg: 'straw2', size: 10 },
    { name: 'rack', alg: 'straw2', size: 10 },
    { name: 'root', alg: 'straw2', size: 0 },
  ])));
  crushMapperFor(big);
  const pgMs = bestMs(3, () => forEachPgMapping(big, pool, osds, (_s, up) => (sink += up.length)));

  const rate = (ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
  const us = (ms: number): string => `${((ms * 1000) / n).toFixed(2)} µs`;
  lines.push('## CRUSH', '');
  lines.push(`Measured by \`node --import tsx test/src/bench/crush.ts\` (Node ${process.version}, shared 2-core machine; best of 3–5 runs).`, '');
  lines.push('Map: `--build --num-osds 1000 host straw2 10 rack straw2 10 root straw2 0` (rule 0: `chooseleaf firstn 0 type host`), 3 replicas, x = 0..99,999.', '');
  lines.push('| what | time | per mapping | rate |', '|---|---|---|---|');
  lines.push(`| Aspen \`CrushMapper.doRule\` (pure mapping) | ${pureMs.toFixed(0)} ms | ${us(pureMs)} | ${rate(pureMs)} |`);
  lines.push(`| Aspen \`crushTest\` --show-mappings (mapping + output lines, in process) | ${testerMs.toFixed(0)} ms | ${us(testerMs)} | ${rate(testerMs)} |`);
  if (anchor) {
    const net = anchor.totalMs - anchor.startupMs;
    const statsNet = anchor.statsMs - anchor.startupMs;
    lines.push(`| \`crushtool -i map --test --num-rep 3 --min-x 0 --max-x 99999 --show-mappings\` (wall, incl. ${anchor.startupMs.toFixed(0)} ms startup) | ${anchor.totalMs.toFixed(0)} ms | ${us(anchor.totalMs)} | ${rate(anchor.totalMs)} |`);
    lines.push(`| crushtool --show-mappings minus startup (\`--max-x 0\`) | ${net.toFixed(0)} ms | ${us(net)} | ${rate(net)} |`);
    lines.push(`| crushtool \`--show-statistics\` (no mapping output) minus startup | ${statsNet.toFixed(0)} ms | ${us(statsNet)} | ${rate(statsNet)} |`);
    lines.push('');
    lines.push(`Ratio Aspen/crushtool speed, like for like (mapping + output lines vs crushtool --show-mappings net of startup): **${(net / testerMs).toFixed(2)}×**; pure mapping vs crushtool --show-statistics net of startup: **${(statsNet / pureMs).toFixed(2)}×**.`);
  } else {
    lines.push('', '_crushtool not found on PATH: the Ceph anchor was skipped (apt-get install ceph-base)._');
  }
  lines.push('');
  lines.push(`All 65,536 PGs of a 3-replica pool on a 10,000-OSD map (1,000 hosts, 100 racks): **${pgMs.toFixed(0)} ms** (${((pgMs * 1000) / 65_536).toFixed(2)} µs per PG, \`forEachPgMapping\`); compiling that map for the mapper: ${compileMs.toFixed(0)} ms (includes building it).`);
  if (sink === -1) lines.push('');
  return lines.join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(runCrushBench());
