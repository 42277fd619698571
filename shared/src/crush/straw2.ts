/**
 * straw2 bucket choice (Ceph src/crush/mapper.c `bucket_straw2_choose`): every item with a
 * non-zero weight draws `crush_ln(hash & 0xffff) - 2^48` divided by its 16.16 weight
 * (truncated toward zero, as `div64_s64`); the largest draw wins, the first on ties.
 * The hot loop of every mapping, so `crush_hash32_rjenkins1_3(x, item, r)` is inlined
 * (the same arithmetic as hash.ts).
 */
import { CRUSH_HASH_SEED } from './hash.ts';

/**
 * Returns the index (in [0, size)) of the chosen item of a bucket of `size` items whose
 * hash ids are `ids[idsOff…]` and 16.16 weights `weights[wOff…]` (the bucket's own, or a
 * choose_args weight set and ids); `ln` is `straw2LnTable()` (ln.ts).
 */
export function straw2Choose(
  ids: Int32Array, idsOff: number, weights: Float64Array, wOff: number, size: number, ln: Float64Array, x: number, r: number,
): number {
  let high = 0;
  let highDraw = 0;
  const hseed = CRUSH_HASH_SEED ^ x ^ r;
  for (let i = 0; i < size; i++) {
    const wt = weights[wOff + i]!;
    let draw: number;
    if (wt !== 0) {
      // crush_hash32_rjenkins1_3(x, item, r), inlined (see hash.ts).
      let ha = x;
      let hb = ids[idsOff + i]! | 0;
      let hc = r;
      let hx = 231232;
      let hy = 1232;
      let h = hseed ^ hb;
      ha = (ha - hb - h) ^ (h >>> 13);
      hb = (hb - h - ha) ^ (ha << 8);
      h = (h - ha - hb) ^ (hb >>> 13);
      ha = (ha - hb - h) ^ (h >>> 12);
      hb = (hb - h - ha) ^ (ha << 16);
      h = (h - ha - hb) ^ (hb >>> 5);
      ha = (ha - hb - h) ^ (h >>> 3);
      hb = (hb - h - ha) ^ (ha << 10);
      h = (h - ha - hb) ^ (hb >>> 15);
      hc = (hc - hx - h) ^ (h >>> 13);
      hx = (hx - h - hc) ^ (hc << 8);
      h = (h - hc - hx) ^ (hx >>> 13);
      hc = (hc - hx - h) ^ (h >>> 12);
      hx = (hx - h - hc) ^ (hc << 16);
      h = (h - hc - hx) ^ (hx >>> 5);
      hc = (hc - hx - h) ^ (h >>> 3);
      hx = (hx - h - hc) ^ (hc << 10);
      h = (h - hc - hx) ^ (hx >>> 15);
      hy = (hy - ha - h) ^ (h >>> 13);
      ha = (ha - h - hy) ^ (hy << 8);
      h = (h - hy - ha) ^ (ha >>> 13);
      hy = (hy - ha - h) ^ (h >>> 12);
      ha = (ha - h - hy) ^ (hy << 16);
      h = (h - hy - ha) ^ (ha >>> 5);
      hy = (hy - ha - h) ^ (h >>> 3);
      ha = (ha - h - hy) ^ (hy << 10);
      h = (h - hy - ha) ^ (ha >>> 15);
      hb = (hb - hx - h) ^ (h >>> 13);
      hx = (hx - h - hb) ^ (hb << 8);
      h = (h - hb - hx) ^ (hx >>> 13);
      hb = (hb - hx - h) ^ (h >>> 12);
      hx = (hx - h - hb) ^ (hb << 16);
      h = (h - hb - hx) ^ (hx >>> 5);
      hb = (hb - hx - h) ^ (h >>> 3);
      hx = (hx - h - hb) ^ (hb << 10);
      h = (h - hb - hx) ^ (hx >>> 15);
      hy = (hy - hc - h) ^ (h >>> 13);
      hc = (hc - h - hy) ^ (hy << 8);
      h = (h - hy - hc) ^ (hc >>> 13);
      hy = (hy - hc - h) ^ (h >>> 12);
      hc = (hc - h - hy) ^ (hy << 16);
      h = (h - hy - hc) ^ (hc >>> 5);
      hy = (hy - hc - h) ^ (h >>> 3);
      hc = (hc - h - hy) ^ (hy << 10);
      h = (h - hy - hc) ^ (hc >>> 15);
      const u = h & 0xffff;
      // div64_s64 truncates toward zero; the double quotient cannot cross an integer here.
      draw = Math.trunc(ln[u]! / wt);
    } else {
      draw = -Infinity;
    }
    if (i === 0 || draw > highDraw) {
      high = i;
      highDraw = draw;
    }
  }
  return high;
}
