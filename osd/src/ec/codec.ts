/**
 * Erasure coding of whole stripes for EC pools: encode k data chunks into k+m shards, decode the
 * logical data from any k shards, reconstruct any shard from any k others. Pure compute; the
 * Reed-Solomon arithmetic runs in @ronomon/reed-solomon on the libuv thread pool, so every
 * operation is async and leaves the event loop free (docs/adr/0008-erasure-code-library.md has
 * the measurements behind that choice).
 *
 * Shard buffers are in Ceph's chunk layout (layout.ts): shard i holds, for each stripe s in
 * order, `stripeUnitBytes` bytes — data chunk i of stripe s for i < k (a systematic code: data
 * shards are plain data), parity j = i - k of stripe s for i ≥ k.
 *
 * The code (the parity bytes) is fixed by (k, m, stripeUnitBytes) alone. The binding codes a
 * shard in groups of w packets whose size depends on the size of the call, so calls of different
 * sizes over the same bytes would give different parity. We therefore define the code by the
 * packet size of a one-stripe call (`blockBytes` = the binding's packet for a shard of
 * `stripeUnitBytes`): every shard is a sequence of independent groups of w blocks, none crossing
 * a stripe. To code many stripes in one (fast) call, each batch is permuted into the binding's
 * larger groups and back: block j of group t of a batch group goes to packet j at offset
 * t × blockBytes. So encoding stripes one by one, in batches of any size, or re-encoding one
 * stripe after a partial overwrite, always gives the same bytes (a property test checks it).
 *
 * Inputs must not be modified until the returned promise settles; outputs are fresh buffers
 * (except {@link reconstructShards} returning a wanted shard that was present, which it returns
 * as given).
 */
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { type EcLayout, stripeWidthBytes, validateEcLayout } from './layout.ts';
import { type RonomonContext, ronomonContext, ronomonEncode, ronomonPacketBytes } from './ronomon.ts';

/**
 * Target shard bytes per binding call. Measured (ADR 0008): a call costs ~20–40 µs of fixed
 * overhead, and 4+2 throughput peaks with 256 KiB–1 MiB per shard.
 */
export const EC_CALL_SHARD_BYTES_TARGET = 1024 * 1024;

/** The fixed coding geometry of a layout (see the module comment). */
export interface EcCodeParameters {
  /** GF(2^w) of the binding's Cauchy bit matrix for (k, m). */
  readonly w: 2 | 4 | 8;
  /** Packet size of the code, bytes; each shard is coded in groups of w packets. */
  readonly blockBytes: number;
}

interface Plan extends EcCodeParameters {
  readonly layout: EcLayout;
  readonly ctx: RonomonContext;
  /** Largest number of stripes per binding call (a power of two). */
  readonly batchStripesMax: number;
}

const plans = new Map<string, Plan>();

function planFor(layoutIn: EcLayout): Plan {
  const layout = validateEcLayout(layoutIn);
  const key = `${layout.k},${layout.m},${layout.stripeUnitBytes}`;
  let plan = plans.get(key);
  if (plan === undefined) {
    const ctx = ronomonContext(layout.k, layout.m);
    const blockBytes = ronomonPacketBytes(ctx.w, layout.k, layout.stripeUnitBytes);
    assert(layout.stripeUnitBytes % (ctx.w * blockBytes) === 0, 'planFor: code groups must tile the stripe unit');
    const batchStripesMax = Math.max(1, 2 ** Math.floor(Math.log2(EC_CALL_SHARD_BYTES_TARGET / layout.stripeUnitBytes)));
    plan = Object.freeze({ layout, ctx, w: ctx.w, blockBytes, batchStripesMax });
    plans.set(key, plan);
  }
  return plan;
}

/**
 * The coding geometry of a layout: the field exponent w and the packet size. Changing either
 * changes every parity byte, so they are part of the on-disk format of an EC pool.
 * Throws AspenError 'EINVAL' for an invalid layout.
 */
export function ecCodeParameters(layout: EcLayout): EcCodeParameters {
  const { w, blockBytes } = planFor(layout);
  return { w, blockBytes };
}

/**
 * Copies `shardBytes` of a shard from canonical layout (`src` at `srcOff`) to the binding's
 * layout for a call of that shard size (`dst` at `dstOff`), or back when `toBinding` is false.
 */
function permute(plan: Plan, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, shardBytes: number, toBinding: boolean): void {
  const b = plan.blockBytes;
  const w = plan.w;
  const packet = ronomonPacketBytes(w, plan.layout.k, shardBytes);
  assert(packet % b === 0, 'permute: binding packet not a multiple of the code block');
  const perGroup = packet / b;
  if (perGroup === 1) {
    dst.set(src.subarray(srcOff, srcOff + shardBytes), dstOff);
    return;
  }
  const groups = shardBytes / (w * b);
  for (let c = 0; c < groups; c++) {
    const big = Math.floor(c / perGroup) * w * packet + (c % perGroup) * b;
    for (let j = 0; j < w; j++) {
      const canonical = c * w * b + j * b;
      const binding = big + j * packet;
      if (toBinding) dst.set(src.subarray(srcOff + canonical, srcOff + canonical + b), dstOff + binding);
      else dst.set(src.subarray(srcOff + binding, srcOff + binding + b), dstOff + canonical);
    }
  }
}

/** The batches [firstStripe, stripeCount] of a run of `stripes` stripes, each a power of two. */
function batches(plan: Plan, stripes: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let first = 0;
  while (first < stripes) {
    const left = stripes - first;
    const count = Math.min(plan.batchStripesMax, 2 ** Math.floor(Math.log2(left)));
    out.push([first, count]);
    first += count;
  }
  return out;
}

/**
 * Encodes whole stripes: `data` (logical bytes, a multiple of the stripe width k × su long,
 * possibly empty) → k+m shard buffers of `(data.length / width) × su` bytes each, in Ceph's
 * chunk layout: shards 0..k-1 the data chunks, k..k+m-1 the Reed-Solomon parity.
 * Throws AspenError 'EINVAL' for an invalid layout or a length that is not whole stripes.
 */
export async function encodeStripes(layout: EcLayout, data: Uint8Array): Promise<Uint8Array[]> {
  const plan = planFor(layout);
  const { k, m, stripeUnitBytes: su } = plan.layout;
  const width = stripeWidthBytes(plan.layout);
  if (data.byteLength % width !== 0) {
    throw new AspenError('EINVAL', `encodeStripes: ${data.byteLength} bytes is not a whole number of ${width}-byte stripes`);
  }
  const stripes = data.byteLength / width;
  const shards = Array.from({ length: k + m }, () => new Uint8Array(stripes * su));
  for (let s = 0; s < stripes; s++) {
    for (let i = 0; i < k; i++) shards[i]!.set(data.subarray(s * width + i * su, s * width + (i + 1) * su), s * su);
  }
  if (stripes === 0) return shards;
  const maxShard = Math.min(stripes, plan.batchStripesMax) * su;
  const dataBuf = Buffer.allocUnsafe(k * maxShard);
  const parityBuf = Buffer.allocUnsafe(m * maxShard);
  const allData = (1 << k) - 1;
  const allParity = ((1 << m) - 1) << k;
  for (const [first, count] of batches(plan, stripes)) {
    const shardBytes = count * su;
    for (let i = 0; i < k; i++) permute(plan, shards[i]!, first * su, dataBuf, i * shardBytes, shardBytes, true);
    await ronomonEncode(plan.ctx, allData, allParity, dataBuf, parityBuf, shardBytes);
    for (let j = 0; j < m; j++) permute(plan, parityBuf, j * shardBytes, shards[k + j]!, first * su, shardBytes, false);
  }
  assert(shards.every((s) => s.byteLength === stripes * su), 'encodeStripes: shard size');
  return shards;
}

/** Checks a k+m shard array; returns the common shard length and the present indices. */
function checkShards(plan: Plan, shards: ReadonlyArray<Uint8Array | null>, what: string): { shardBytes: number; present: number[] } {
  const { k, m, stripeUnitBytes: su } = plan.layout;
  if (shards.length !== k + m) throw new AspenError('EINVAL', `${what}: expected ${k + m} shard entries, got ${shards.length}`);
  const present: number[] = [];
  let shardBytes = -1;
  shards.forEach((s, i) => {
    if (s === null) return;
    if (shardBytes < 0) shardBytes = s.byteLength;
    if (s.byteLength !== shardBytes || s.byteLength % su !== 0) {
      throw new AspenError('EINVAL', `${what}: shard ${i} is ${s.byteLength} bytes; all shards must have one length, a multiple of ${su}`);
    }
    present.push(i);
  });
  if (present.length < k) {
    throw new AspenError('EIO', `${what}: only ${present.length} of ${k + m} shards present (${present.join(',') || 'none'}); need ${k} to decode a ${k}+${m} code`, {
      present,
    });
  }
  return { shardBytes, present };
}

/**
 * Computes the missing shards `targets` (canonical layout, fresh buffers of `shardBytes`) from
 * the present ones; the binding uses the k lowest-indexed present shards.
 */
async function recover(plan: Plan, shards: ReadonlyArray<Uint8Array | null>, present: number[], targets: number[], shardBytes: number): Promise<Map<number, Uint8Array>> {
  const { k, m, stripeUnitBytes: su } = plan.layout;
  assert(targets.length >= 1 && targets.length <= m, 'recover: target count');
  assert(targets.every((t) => shards[t] === null), 'recover: a target is present');
  const sources = present.slice(0, k);
  assert(sources.length === k, 'recover: fewer than k sources');
  const sourceMask = sources.reduce((mask, i) => mask | (1 << i), 0);
  const targetMask = targets.reduce((mask, i) => mask | (1 << i), 0);
  const out = new Map<number, Uint8Array>(targets.map((t) => [t, new Uint8Array(shardBytes)]));
  const stripes = shardBytes / su;
  const maxShard = Math.min(stripes, plan.batchStripesMax) * su;
  // Slots of absent shards are written by the binding before it reads them (binding.c
  // reed_solomon_encode decodes every missing data shard first), so no zero fill is needed.
  const dataBuf = Buffer.allocUnsafe(k * maxShard);
  const parityBuf = Buffer.allocUnsafe(m * maxShard);
  const slot = (i: number, bytes: number): [Uint8Array, number] => (i < k ? [dataBuf, i * bytes] : [parityBuf, (i - k) * bytes]);
  for (const [first, count] of batches(plan, stripes)) {
    const bytes = count * su;
    for (const i of sources) {
      const [buf, off] = slot(i, bytes);
      permute(plan, shards[i]!, first * su, buf, off, bytes, true);
    }
    await ronomonEncode(plan.ctx, sourceMask, targetMask, dataBuf, parityBuf, bytes);
    for (const t of targets) {
      const [buf, off] = slot(t, bytes);
      permute(plan, buf, off, out.get(t)!, first * su, bytes, false);
    }
  }
  return out;
}

/**
 * Decodes whole stripes: `shards` has k+m entries, each a buffer in Ceph's chunk layout (all of
 * one length, a multiple of su) or null when missing → the logical data, `(length / su) × width`
 * bytes. With all k data shards present no Reed-Solomon math runs (the chunks are interleaved).
 * Throws AspenError 'EIO' with fewer than k shards present, 'EINVAL' for malformed input.
 */
export async function decodeStripes(layout: EcLayout, shards: ReadonlyArray<Uint8Array | null>): Promise<Uint8Array> {
  const plan = planFor(layout);
  const { k, stripeUnitBytes: su } = plan.layout;
  const { shardBytes, present } = checkShards(plan, shards, 'decodeStripes');
  const width = stripeWidthBytes(plan.layout);
  const stripes = shardBytes / su;
  const missingData = Array.from({ length: k }, (_, i) => i).filter((i) => shards[i] === null);
  const recovered = missingData.length === 0 || stripes === 0 ? new Map<number, Uint8Array>() : await recover(plan, shards, present, missingData, shardBytes);
  const data = new Uint8Array(stripes * width);
  for (let i = 0; i < k; i++) {
    const chunk = shards[i] ?? recovered.get(i) ?? (stripes === 0 ? new Uint8Array(0) : null);
    assert(chunk !== null && chunk.byteLength === shardBytes, `decodeStripes: data shard ${i} not recovered`);
    for (let s = 0; s < stripes; s++) data.set(chunk.subarray(s * su, (s + 1) * su), s * width + i * su);
  }
  return data;
}

/**
 * Reconstructs shards: `shards` as for {@link decodeStripes}; `wanted` distinct shard indices
 * (data or parity) → their buffers, in the order of `wanted`. A wanted shard that is present is
 * returned as given (not copied); missing ones are computed from k present shards.
 * Throws AspenError 'EIO' with fewer than k shards present, 'EINVAL' for bad indices or input.
 */
export async function reconstructShards(layout: EcLayout, shards: ReadonlyArray<Uint8Array | null>, wanted: readonly number[]): Promise<Uint8Array[]> {
  const plan = planFor(layout);
  const { k, m } = plan.layout;
  if (new Set(wanted).size !== wanted.length || wanted.some((i) => !Number.isInteger(i) || i < 0 || i >= k + m)) {
    throw new AspenError('EINVAL', `reconstructShards: wanted shards [${wanted.join(',')}] must be distinct indices in [0, ${k + m})`);
  }
  const { shardBytes, present } = checkShards(plan, shards, 'reconstructShards');
  const targets = wanted.filter((i) => shards[i] === null);
  const recovered = targets.length === 0 || shardBytes === 0 ? new Map<number, Uint8Array>() : await recover(plan, shards, present, targets, shardBytes);
  return wanted.map((i) => {
    const buf = shards[i] ?? recovered.get(i) ?? (shardBytes === 0 ? new Uint8Array(0) : null);
    assert(buf !== null && buf.byteLength === shardBytes, `reconstructShards: shard ${i} not recovered`);
    return buf;
  });
}
