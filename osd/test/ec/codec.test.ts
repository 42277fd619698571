/** Erasure coding of whole stripes (osd/src/ec/codec.ts) over @ronomon/reed-solomon. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { AspenError } from '@aspen/shared/errors.ts';
import { decodeStripes, ecCodeParameters, encodeStripes, reconstructShards } from '../../src/ec/codec.ts';
import { type EcLayout, stripeWidthBytes } from '../../src/ec/layout.ts';

const CODES: Array<[number, number]> = [
  [2, 1],
  [4, 2],
  [3, 2],
  [8, 3],
];

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Byte equality (vitest's toEqual walks typed arrays element by element: far too slow for MiBs). */
function same(a: Uint8Array | null | undefined, b: Uint8Array | null | undefined): boolean {
  return a != null && b != null && a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/** Every subset of {0..n-1} of size ≤ max, as sorted index arrays. */
function subsets(n: number, max: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << n; mask++) {
    const s = Array.from({ length: n }, (_, i) => i).filter((i) => mask & (1 << i));
    if (s.length <= max) out.push(s);
  }
  return out;
}

function without(shards: Uint8Array[], missing: readonly number[]): Array<Uint8Array | null> {
  return shards.map((s, i) => (missing.includes(i) ? null : s));
}

async function errorCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof AspenError ? err.code : String(err);
  }
  return undefined;
}

describe('EC codec', () => {
  for (const [k, m] of CODES) {
    const layout: EcLayout = { k, m, stripeUnitBytes: 512 };
    it(`${k}+${m}: decode round-trips under every erasure pattern of up to ${m} shards, and reconstruct gives back exactly the encoded shard`, async () => {
      const data = bytes(stripeWidthBytes(layout) * 5, k * 100 + m);
      const shards = await encodeStripes(layout, data);
      expect(shards).toHaveLength(k + m);
      for (let i = 0; i < k; i++) {
        for (let s = 0; s < 5; s++) {
          // Systematic: data shard i holds chunk i of each stripe.
          const w = stripeWidthBytes(layout);
          expect(same(shards[i]!.subarray(s * 512, (s + 1) * 512), data.subarray(s * w + i * 512, s * w + (i + 1) * 512))).toBe(true);
        }
      }
      for (const missing of subsets(k + m, m)) {
        const given = without(shards, missing);
        expect(same(await decodeStripes(layout, given), data)).toBe(true);
        const all = Array.from({ length: k + m }, (_, i) => i);
        const rebuilt = await reconstructShards(layout, given, all);
        rebuilt.forEach((b, i) => expect(same(b, shards[i]), `shard ${i} with [${missing.join(",")}] missing`).toBe(true));
      }
    });

    it(`${k}+${m}: decoding with ${m + 1} shards missing fails with EIO`, async () => {
      const shards = await encodeStripes(layout, bytes(stripeWidthBytes(layout), 7));
      for (const missing of subsets(k + m, m + 1).filter((s) => s.length === m + 1)) {
        expect(await errorCode(decodeStripes(layout, without(shards, missing)))).toBe('EIO');
        expect(await errorCode(reconstructShards(layout, without(shards, missing), [0]))).toBe('EIO');
      }
    });
  }

  it('property: random data, layout and erasures of ≤ m shards decode to the data', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 9, max: 13 }),
        fc.integer({ min: 0, max: 9 }),
        fc.integer(),
        fc.array(fc.nat(), { maxLength: 4 }),
        async (k, m, suLog, stripes, seed, picks) => {
          const layout = { k, m, stripeUnitBytes: 2 ** suLog };
          const data = bytes(stripeWidthBytes(layout) * stripes, seed);
          const shards = await encodeStripes(layout, data);
          const missing = [...new Set(picks.map((p) => p % (k + m)))].slice(0, m);
          expect(same(await decodeStripes(layout, without(shards, missing)), data)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('property: parity is stripe-local — encoding stripes one at a time, or in any split, gives the same shards as one call', async () => {
    // Batches of up to 1 MiB per shard are permuted into the binding's packet layout; this checks
    // that the permutation makes the code independent of the call size (see codec.ts).
    for (const [k, m, su] of [
      [4, 2, 4096],
      [8, 3, 512],
      [2, 1, 65536],
      [4, 2, 1 << 20],
      [16, 4, 4096],
    ] as const) {
      const layout = { k, m, stripeUnitBytes: su };
      const width = stripeWidthBytes(layout);
      const stripes = Math.max(3, Math.min(300, Math.floor((6 << 20) / width)));
      const data = bytes(width * stripes, su + k);
      const whole = await encodeStripes(layout, data);
      const cut = Math.floor(stripes / 3) + 1;
      const parts = [await encodeStripes(layout, data.subarray(0, cut * width)), await encodeStripes(layout, data.subarray(cut * width))];
      for (let i = 0; i < k + m; i++) {
        const joined = new Uint8Array(stripes * su);
        joined.set(parts[0]![i]!, 0);
        joined.set(parts[1]![i]!, cut * su);
        expect(same(joined, whole[i]), `${k}+${m} su ${su} shard ${i}`).toBe(true);
      }
      for (const s of [0, stripes - 1]) {
        const one = await encodeStripes(layout, data.subarray(s * width, (s + 1) * width));
        for (let i = k; i < k + m; i++) expect(same(one[i], whole[i]!.subarray(s * su, (s + 1) * su))).toBe(true);
      }
      // Recovery in one call of a big run agrees with the stripe-by-stripe parity too.
      const lost = m >= 2 ? [0, k] : [0];
      const rebuilt = await reconstructShards(layout, without(whole, lost), lost);
      lost.forEach((i, j) => expect(same(rebuilt[j], whole[i]), `rebuilt shard ${i}`).toBe(true));
    }
  });

  it('fast path: with every data shard present decode needs no parity (parity may be garbage)', async () => {
    const layout = { k: 4, m: 2, stripeUnitBytes: 4096 };
    const data = bytes(stripeWidthBytes(layout) * 3, 5);
    const shards = await encodeStripes(layout, data);
    const garbage = [...shards.slice(0, 4), bytes(3 * 4096, 1), null];
    expect(same(await decodeStripes(layout, garbage), data)).toBe(true);
  });

  it('edge cases: empty input, a single stripe, present wanted shards returned as given', async () => {
    const layout = { k: 3, m: 2, stripeUnitBytes: 512 };
    const empty = await encodeStripes(layout, new Uint8Array(0));
    expect(empty.map((s) => s.byteLength)).toEqual([0, 0, 0, 0, 0]);
    expect(same(await decodeStripes(layout, [null, empty[1]!, empty[2]!, null, empty[4]!]), new Uint8Array(0))).toBe(true);
    expect((await reconstructShards(layout, [null, empty[1]!, empty[2]!, null, empty[4]!], [0, 3])).map((s) => s.byteLength)).toEqual([0, 0]);
    const one = bytes(1536, 9);
    const shards = await encodeStripes(layout, one);
    expect(shards.map((s) => s.byteLength)).toEqual([512, 512, 512, 512, 512]);
    expect(same(await decodeStripes(layout, [null, null, shards[2]!, shards[3]!, shards[4]!]), one)).toBe(true);
    const [given] = await reconstructShards(layout, [shards[0]!, null, shards[2]!, null, shards[4]!], [2]);
    expect(given).toBe(shards[2]);
  });

  it('rejects malformed input with EINVAL', async () => {
    const layout = { k: 2, m: 1, stripeUnitBytes: 512 };
    expect(await errorCode(encodeStripes(layout, new Uint8Array(1000)))).toBe('EINVAL');
    expect(await errorCode(encodeStripes({ k: 2, m: 1, stripeUnitBytes: 100 }, new Uint8Array(200)))).toBe('EINVAL');
    const s = await encodeStripes(layout, bytes(1024, 3));
    expect(await errorCode(decodeStripes(layout, [s[0]!, s[1]!]))).toBe('EINVAL');
    expect(await errorCode(decodeStripes(layout, [s[0]!, new Uint8Array(1024), null]))).toBe('EINVAL');
    expect(await errorCode(decodeStripes(layout, [s[0]!, new Uint8Array(100), null]))).toBe('EINVAL');
    expect(await errorCode(reconstructShards(layout, s, [0, 0]))).toBe('EINVAL');
    expect(await errorCode(reconstructShards(layout, s, [3]))).toBe('EINVAL');
  });

  it('code parameters of the pools we expect (part of the on-disk format)', () => {
    expect(ecCodeParameters({ k: 4, m: 2, stripeUnitBytes: 4096 })).toEqual({ w: 4, blockBytes: 1024 });
    expect(ecCodeParameters({ k: 4, m: 2, stripeUnitBytes: 1 << 20 })).toEqual({ w: 4, blockBytes: 32768 });
    expect(ecCodeParameters({ k: 2, m: 1, stripeUnitBytes: 4096 })).toEqual({ w: 2, blockBytes: 2048 });
    expect(ecCodeParameters({ k: 16, m: 4, stripeUnitBytes: 4096 })).toEqual({ w: 8, blockBytes: 512 });
  });
});
