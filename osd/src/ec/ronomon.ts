/**
 * Typed access to the native Reed-Solomon coder @ronomon/reed-solomon 6.0.0 (a Cauchy bit-matrix
 * code in the manner of Jerasure: XORs of packets, parameters per (k, m) searched for the fewest
 * ones; GF(2^w) with w = 2, 4 or 8 chosen per (k, m)). Only codec.ts uses it; see
 * docs/adr/0008-erasure-code-library.md.
 *
 * Hazards of the binding that this module and codec.ts keep away from:
 * - An empty Buffer has a NULL data pointer under Node 20, and the binding's `arg_buf`
 *   *asserts* (aborts the whole process, nothing to catch) on it: we never pass one.
 * - The parity depends on the shard size of the call (`dot_chunk_size`); codec.ts fixes the
 *   packet size per layout so that batching stripes never changes the bytes (see there).
 */
import { createRequire } from 'node:module';
import { assert } from '@aspen/shared/assert.ts';

/** The binding's exports (binding.c `Init`). */
interface RonomonBinding {
  readonly MAX_K: number;
  readonly MAX_M: number;
  /** An encoding context: [w, k, m, bitmatrix (k·w × m·w)]. Throws on k or m out of range. */
  create(k: number, m: number): Buffer;
  /**
   * Computes the shards flagged in `targets` from (at least k of) those flagged in `sources`,
   * on the libuv thread pool. Data shard i is `buffer[bufferOffset + i·shardSize …]`, parity
   * shard j is `parity[parityOffset + j·shardSize …]`, shardSize = bufferSize / k (a non-zero
   * multiple of 8). Throws synchronously on bad arguments; the callback gets no error otherwise.
   */
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Uint8Array,
    bufferOffset: number,
    bufferSize: number,
    parity: Uint8Array,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void;
}

const binding = createRequire(import.meta.url)('@ronomon/reed-solomon') as RonomonBinding;

/** An encoding context of the binding and the field exponent it chose. */
export interface RonomonContext {
  readonly k: number;
  readonly m: number;
  /** GF(2^w) exponent: each w×w block of the bit matrix multiplies by one field element. */
  readonly w: 2 | 4 | 8;
  readonly raw: Buffer;
}

const contexts = new Map<string, RonomonContext>();

/** The (cached, immutable, shareable across concurrent calls) context for (k, m). */
export function ronomonContext(k: number, m: number): RonomonContext {
  assert(k >= 1 && k <= binding.MAX_K && m >= 1 && m <= binding.MAX_M, `ronomonContext: (k=${k}, m=${m}) out of the binding's range`);
  const key = `${k},${m}`;
  let ctx = contexts.get(key);
  if (ctx === undefined) {
    const raw = binding.create(k, m);
    const w = raw[0];
    assert(w === 2 || w === 4 || w === 8, `ronomonContext: unexpected w ${w}`);
    assert(raw[1] === k && raw[2] === m && raw.length === 3 + k * w * m * w, 'ronomonContext: malformed context');
    ctx = Object.freeze({ k, m, w, raw });
    contexts.set(key, ctx);
  }
  return ctx;
}

/**
 * The packet size, bytes, that the binding uses for a call with `shardSizeBytes` per shard: the
 * shard is coded in independent groups of w packets of this size (binding.c `dot_chunk_size`,
 * reproduced exactly; it shrinks packets to keep (1 + k·w) of them within 1 MiB of cache).
 */
export function ronomonPacketBytes(w: number, k: number, shardSizeBytes: number): number {
  assert(shardSizeBytes > 0 && shardSizeBytes % w === 0, 'ronomonPacketBytes: shard size not a multiple of w');
  let packet = shardSizeBytes / w;
  while (packet > 64 && packet % 2 === 0 && (1 + k * w) * packet > 1048576) packet /= 2;
  assert(packet > 0 && shardSizeBytes % (w * packet) === 0, 'ronomonPacketBytes: packets do not tile the shard');
  return packet;
}

/**
 * Runs one binding call: fills the `targets` shards from the `sources` shards, in place.
 * `data` holds k shards of `shardSizeBytes` from offset 0, `parity` m shards; neither may be
 * touched until the promise settles. Bad arguments are programmer errors (asserted).
 */
export function ronomonEncode(
  ctx: RonomonContext,
  sources: number,
  targets: number,
  data: Uint8Array,
  parity: Uint8Array,
  shardSizeBytes: number,
): Promise<void> {
  // Checked here so the binding's own assertions (which abort the process) cannot fire.
  assert(shardSizeBytes > 0 && shardSizeBytes % 8 === 0 && shardSizeBytes % ctx.w === 0, 'ronomonEncode: bad shard size');
  assert(data.byteLength >= ctx.k * shardSizeBytes && parity.byteLength >= ctx.m * shardSizeBytes, 'ronomonEncode: buffers too small');
  assert((sources & targets) === 0 && targets !== 0, 'ronomonEncode: bad source/target masks');
  return new Promise((resolve, reject) => {
    binding.encode(ctx.raw, sources, targets, data, 0, ctx.k * shardSizeBytes, parity, 0, ctx.m * shardSizeBytes, (error) => {
      if (error) reject(error);
      else resolve();
    });
  });
}
