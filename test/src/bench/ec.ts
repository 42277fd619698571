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
import { availableParallelism } from 'node:os';
import { encodeStripes, reconstructShards } from '@aspen/osd/ec/codec.ts';
import type { EcLayout } from '@aspen/osd/ec/layout.ts';

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

export async function run(): Promise<string> {
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
