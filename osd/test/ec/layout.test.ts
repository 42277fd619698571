/** Stripe geometry of EC pools (osd/src/ec/layout.ts), against Ceph's ECUtil::stripe_info_t. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { AspenError } from '@aspen/shared/errors.ts';
import {
  type EcLayout,
  chunkSizeBytes,
  logicalToShard,
  shardToLogical,
  stripeSpan,
  stripeWidthBytes,
  validateEcLayout,
} from '../../src/ec/layout.ts';

const arbLayout: fc.Arbitrary<EcLayout> = fc.record({
  k: fc.integer({ min: 1, max: 24 }),
  m: fc.integer({ min: 1, max: 6 }),
  stripeUnitBytes: fc.integer({ min: 9, max: 16 }).map((e) => 2 ** e),
});

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof AspenError ? err.code : 'not-aspen';
  }
  return undefined;
}

describe('EC layout', () => {
  it('validates k, m and the stripe unit with EINVAL', () => {
    expect(validateEcLayout({ k: 4, m: 2, stripeUnitBytes: 4096 })).toEqual({ k: 4, m: 2, stripeUnitBytes: 4096 });
    expect(code(() => validateEcLayout({ k: 0, m: 2, stripeUnitBytes: 4096 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 25, m: 2, stripeUnitBytes: 4096 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 4, m: 0, stripeUnitBytes: 4096 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 4, m: 7, stripeUnitBytes: 4096 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 2.5, m: 1, stripeUnitBytes: 4096 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 4, m: 2, stripeUnitBytes: 256 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 4, m: 2, stripeUnitBytes: 3 * 4096 }))).toBe('EINVAL');
    expect(code(() => validateEcLayout({ k: 4, m: 2, stripeUnitBytes: 32 * 1024 * 1024 }))).toBe('EINVAL');
  });

  it('worked example: 4+2, 4 KiB stripe unit (Ceph default): byte 20000 is in stripe 1, shard 0, shard offset 7712', () => {
    const l = { k: 4, m: 2, stripeUnitBytes: 4096 };
    expect(stripeWidthBytes(l)).toBe(16384);
    // 20000 = 1 stripe (16384) + 3616 → chunk 0, shard offset 4096 + 3616.
    expect(logicalToShard(l, 20000)).toEqual({ stripe: 1, shardIndex: 0, shardOffsetBytes: 7712 });
    expect(logicalToShard(l, 16383)).toEqual({ stripe: 0, shardIndex: 3, shardOffsetBytes: 4095 });
    expect(chunkSizeBytes(l, 4 * 1024 * 1024)).toBe(1024 * 1024);
    expect(chunkSizeBytes(l, 0)).toBe(0);
    expect(chunkSizeBytes(l, 1)).toBe(4096);
    expect(stripeSpan(l, 16000, 1000)).toEqual({
      firstStripe: 0,
      stripeCount: 2,
      logicalOffsetBytes: 0,
      logicalLengthBytes: 32768,
      shardOffsetBytes: 0,
      shardLengthBytes: 8192,
    });
    expect(stripeSpan(l, 20000, 0).stripeCount).toBe(0);
  });

  it('property: logicalToShard and shardToLogical are inverse bijections on data bytes', () => {
    fc.assert(
      fc.property(arbLayout, fc.integer({ min: 0, max: 2 ** 40 }), (l, off) => {
        const { stripe, shardIndex, shardOffsetBytes } = logicalToShard(l, off);
        expect(shardIndex).toBeLessThan(l.k);
        expect(Math.floor(shardOffsetBytes / l.stripeUnitBytes)).toBe(stripe);
        expect(shardToLogical(l, shardIndex, shardOffsetBytes)).toBe(off);
      }),
    );
  });

  it('property: chunk size is ceil(size / width) × su and k chunks hold the object with < one stripe of padding', () => {
    fc.assert(
      fc.property(arbLayout, fc.integer({ min: 0, max: 2 ** 36 }), (l, size) => {
        const chunk = chunkSizeBytes(l, size);
        expect(chunk % l.stripeUnitBytes).toBe(0);
        expect(chunk * l.k).toBeGreaterThanOrEqual(size);
        expect(chunk * l.k - size).toBeLessThan(stripeWidthBytes(l));
        // The last logical byte lands inside the chunk.
        if (size > 0) expect(logicalToShard(l, size - 1).shardOffsetBytes).toBeLessThan(chunk);
      }),
    );
  });

  it('property: stripeSpan is the smallest whole-stripe range covering the bytes, and its shard range holds every byte of it', () => {
    fc.assert(
      fc.property(arbLayout, fc.integer({ min: 0, max: 2 ** 32 }), fc.integer({ min: 1, max: 2 ** 24 }), (l, off, len) => {
        const w = stripeWidthBytes(l);
        const span = stripeSpan(l, off, len);
        expect(span.logicalOffsetBytes % w).toBe(0);
        expect(span.logicalOffsetBytes).toBeLessThanOrEqual(off);
        expect(span.logicalOffsetBytes + span.logicalLengthBytes).toBeGreaterThanOrEqual(off + len);
        // Smallest: the first and last stripes are touched.
        expect(span.logicalOffsetBytes + w).toBeGreaterThan(off);
        expect(span.logicalOffsetBytes + span.logicalLengthBytes - w).toBeLessThan(off + len);
        expect(span.shardOffsetBytes).toBe(span.firstStripe * l.stripeUnitBytes);
        expect(span.shardLengthBytes).toBe(span.stripeCount * l.stripeUnitBytes);
        for (const b of [off, off + len - 1]) {
          const at = logicalToShard(l, b);
          expect(at.shardOffsetBytes).toBeGreaterThanOrEqual(span.shardOffsetBytes);
          expect(at.shardOffsetBytes).toBeLessThan(span.shardOffsetBytes + span.shardLengthBytes);
        }
      }),
    );
  });

  it('shardToLogical refuses coding shards with EINVAL', () => {
    expect(code(() => shardToLogical({ k: 4, m: 2, stripeUnitBytes: 4096 }, 4, 0))).toBe('EINVAL');
  });
});
