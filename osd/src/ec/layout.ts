/**
 * Stripe geometry of an erasure-coded pool: pure arithmetic, no I/O, no coding.
 *
 * An object of an EC pool with `k` data and `m` coding shards is cut into *stripes* of
 * `k × stripeUnitBytes` logical bytes. Stripe s puts its i-th `stripeUnitBytes` piece (its data
 * chunk i) on data shard i at shard offset `s × stripeUnitBytes`; shards k … k+m-1 hold the
 * parity of the same stripe at the same shard offset. So every shard's chunk object is
 * `stripeCount × stripeUnitBytes` bytes long, and a logical byte L lives in
 * stripe `floor(L / width)`, data chunk `floor((L mod width) / su)`, at shard offset
 * `stripe × su + (L mod su)`.
 *
 * Follows Ceph's ECUtil::stripe_info_t (src/osd/ECUtil.h: `stripe_width`, `chunk_size`,
 * `logical_to_prev_chunk_offset`, `aligned_offset_len_to_chunk`) and the `stripe_unit` of an
 * erasure-code profile (doc/rados/operations/erasure-code-profile.rst: "the amount of data in a
 * data chunk, per stripe"; default 4 KiB).
 */
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';

/** Largest k the codec supports (@ronomon/reed-solomon's MAX_K). */
export const EC_K_MAX = 24;
/** Largest m the codec supports (@ronomon/reed-solomon's MAX_M). */
export const EC_M_MAX = 6;
/**
 * Smallest stripe unit, bytes. The codec works on blocks of `w × 8`…`w × 64` bytes (w ≤ 8, see
 * codec.ts), so 512 B is the smallest power of two that every (k, m) divides into whole blocks;
 * it is also the sector size, the smallest write a block device accepts.
 */
export const EC_STRIPE_UNIT_MIN_BYTES = 512;
/** Largest stripe unit, bytes (16 MiB: four times Ceph's default object size). */
export const EC_STRIPE_UNIT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * The erasure-code layout of a pool: `k` data shards, `m` coding shards, `stripeUnitBytes` of
 * each shard per stripe (Ceph's stripe_unit / chunk size). Validate with {@link validateEcLayout}.
 */
export interface EcLayout {
  readonly k: number;
  readonly m: number;
  readonly stripeUnitBytes: number;
}

/**
 * Checks a layout and returns it frozen: 1 ≤ k ≤ {@link EC_K_MAX}, 1 ≤ m ≤ {@link EC_M_MAX},
 * stripeUnitBytes a power of two in [{@link EC_STRIPE_UNIT_MIN_BYTES},
 * {@link EC_STRIPE_UNIT_MAX_BYTES}] (a power of two so the codec's block size divides it and
 * batching stripes never changes the parity; see codec.ts).
 * Throws AspenError 'EINVAL' naming the bad field.
 */
export function validateEcLayout(layout: EcLayout): EcLayout {
  const { k, m, stripeUnitBytes } = layout;
  if (!Number.isInteger(k) || k < 1 || k > EC_K_MAX) {
    throw new AspenError('EINVAL', `erasure code: k must be an integer in [1, ${EC_K_MAX}], got ${k}`, { k });
  }
  if (!Number.isInteger(m) || m < 1 || m > EC_M_MAX) {
    throw new AspenError('EINVAL', `erasure code: m must be an integer in [1, ${EC_M_MAX}], got ${m}`, { m });
  }
  const su = stripeUnitBytes;
  if (!Number.isInteger(su) || su < EC_STRIPE_UNIT_MIN_BYTES || su > EC_STRIPE_UNIT_MAX_BYTES || (su & (su - 1)) !== 0) {
    throw new AspenError(
      'EINVAL',
      `erasure code: stripe unit must be a power of two in [${EC_STRIPE_UNIT_MIN_BYTES}, ${EC_STRIPE_UNIT_MAX_BYTES}] bytes, got ${su}`,
      { stripeUnitBytes: su },
    );
  }
  return Object.freeze({ k, m, stripeUnitBytes: su });
}

/** Logical bytes per stripe: k × stripeUnitBytes (Ceph's stripe_width). */
export function stripeWidthBytes(layout: EcLayout): number {
  assert(layout.k >= 1 && layout.stripeUnitBytes > 0, 'stripeWidthBytes: invalid layout');
  return layout.k * layout.stripeUnitBytes;
}

/** Number of stripes that hold `logicalSizeBytes` bytes: ceil(size / width). */
export function stripeCountFor(layout: EcLayout, logicalSizeBytes: number): number {
  assert(Number.isSafeInteger(logicalSizeBytes) && logicalSizeBytes >= 0, 'stripeCountFor: bad size');
  return Math.ceil(logicalSizeBytes / stripeWidthBytes(layout));
}

/**
 * Size in bytes of each shard's chunk object for an object of `logicalSizeBytes`:
 * ceil(size / width) × stripeUnitBytes (the last stripe is padded with zeros; Ceph's
 * `logical_to_next_chunk_offset`). Every one of the k+m shards has this size.
 */
export function chunkSizeBytes(layout: EcLayout, logicalSizeBytes: number): number {
  const bytes = stripeCountFor(layout, logicalSizeBytes) * layout.stripeUnitBytes;
  assert(bytes >= 0 && bytes % layout.stripeUnitBytes === 0, 'chunkSizeBytes: not whole stripe units');
  return bytes;
}

/**
 * The whole stripes touched by the logical byte range [offsetBytes, offsetBytes + lengthBytes):
 * - `firstStripe`, `stripeCount` (0 when lengthBytes is 0);
 * - `logicalOffsetBytes`, `logicalLengthBytes`: the logical range of those stripes
 *   (stripe-width aligned; what a read-modify-write must read and re-encode);
 * - `shardOffsetBytes`, `shardLengthBytes`: the range in every shard's chunk object that holds
 *   them (`firstStripe × su`, `stripeCount × su`).
 * Follows Ceph's `offset_len_to_stripe_bounds` / `aligned_offset_len_to_chunk`.
 */
export function stripeSpan(
  layout: EcLayout,
  offsetBytes: number,
  lengthBytes: number,
): {
  firstStripe: number;
  stripeCount: number;
  logicalOffsetBytes: number;
  logicalLengthBytes: number;
  shardOffsetBytes: number;
  shardLengthBytes: number;
} {
  assert(Number.isSafeInteger(offsetBytes) && offsetBytes >= 0, 'stripeSpan: bad offset');
  assert(Number.isSafeInteger(lengthBytes) && lengthBytes >= 0, 'stripeSpan: bad length');
  const width = stripeWidthBytes(layout);
  const su = layout.stripeUnitBytes;
  const firstStripe = Math.floor(offsetBytes / width);
  const stripeCount = lengthBytes === 0 ? 0 : Math.ceil((offsetBytes + lengthBytes) / width) - firstStripe;
  const span = {
    firstStripe,
    stripeCount,
    logicalOffsetBytes: firstStripe * width,
    logicalLengthBytes: stripeCount * width,
    shardOffsetBytes: firstStripe * su,
    shardLengthBytes: stripeCount * su,
  };
  assert(lengthBytes === 0 || (span.logicalOffsetBytes <= offsetBytes && offsetBytes + lengthBytes <= span.logicalOffsetBytes + span.logicalLengthBytes), 'stripeSpan: span does not cover the range');
  return span;
}

/**
 * Where logical byte `logicalOffsetBytes` lives: data shard `shardIndex` (< k) at
 * `shardOffsetBytes` in its chunk object, in stripe `stripe`.
 * (Ceph ECUtil::stripe_info_t; the inverse is {@link shardToLogical}.)
 */
export function logicalToShard(
  layout: EcLayout,
  logicalOffsetBytes: number,
): { stripe: number; shardIndex: number; shardOffsetBytes: number } {
  assert(Number.isSafeInteger(logicalOffsetBytes) && logicalOffsetBytes >= 0, 'logicalToShard: bad offset');
  const width = stripeWidthBytes(layout);
  const su = layout.stripeUnitBytes;
  const stripe = Math.floor(logicalOffsetBytes / width);
  const inStripe = logicalOffsetBytes % width;
  const shardIndex = Math.floor(inStripe / su);
  const shardOffsetBytes = stripe * su + (logicalOffsetBytes % su);
  assert(shardIndex < layout.k, 'logicalToShard: shard index out of range');
  return { stripe, shardIndex, shardOffsetBytes };
}

/**
 * The logical byte held by data shard `shardIndex` (< k) at `shardOffsetBytes`: the inverse of
 * {@link logicalToShard}. Throws AspenError 'EINVAL' for a coding shard or a negative offset.
 */
export function shardToLogical(layout: EcLayout, shardIndex: number, shardOffsetBytes: number): number {
  if (!Number.isInteger(shardIndex) || shardIndex < 0 || shardIndex >= layout.k) {
    throw new AspenError('EINVAL', `shardToLogical: ${shardIndex} is not a data shard of a k=${layout.k} layout`);
  }
  if (!Number.isSafeInteger(shardOffsetBytes) || shardOffsetBytes < 0) {
    throw new AspenError('EINVAL', `shardToLogical: bad shard offset ${shardOffsetBytes}`);
  }
  const su = layout.stripeUnitBytes;
  const stripe = Math.floor(shardOffsetBytes / su);
  return stripe * stripeWidthBytes(layout) + shardIndex * su + (shardOffsetBytes % su);
}
