/**
 * The legacy bucket algorithms (straw v1, list, tree). Their derived data is computed as
 * Ceph's src/crush/builder.c does when it makes a bucket: straw lengths (`crush_calc_straw`,
 * `straw_calc_version` 0 and >= 1) and tree node weights (`crush_make_tree_bucket`). Aspen's
 * map stores only item weights, so these are recomputed from them when a map is compiled
 * for mapping, with the map's current `straw_calc_version`. The choose functions follow
 * src/crush/mapper.c and return an index into the bucket's items.
 */
import { crushHash32_3, crushHash32_4 } from './hash.ts';

/**
 * Ceph `crush_calc_straw`: the 16.16 straw length of each item of a straw bucket.
 * @param weights item weights (16.16), in bucket order.
 * @param strawCalcVersion the map's tunable (0 keeps Ceph's original, buggy computation).
 */
export function crushCalcStraws(weights: readonly number[], strawCalcVersion: number): Uint32Array {
  const size = weights.length;
  const straws = new Uint32Array(size);
  // Indices sorted by weight, ascending; insertion sort keeps Ceph's order among equal weights.
  const reverse: number[] = [];
  if (size) reverse[0] = 0;
  for (let i = 1; i < size; i++) {
    let j = 0;
    for (; j < i; j++) {
      if (weights[i]! < weights[reverse[j]!]!) {
        reverse.splice(j, 0, i);
        break;
      }
    }
    if (j === i) reverse[i] = i;
  }
  const w = (k: number): number => weights[reverse[k]!]!;
  let numleft = size;
  let straw = 1.0;
  let wbelow = 0;
  let lastw = 0;
  let i = 0;
  while (i < size) {
    if (strawCalcVersion === 0) {
      if (w(i) === 0) {
        straws[reverse[i]!] = 0;
        i++;
        continue;
      }
      straws[reverse[i]!] = Math.trunc(straw * 0x10000);
      i++;
      if (i === size) break;
      if (w(i) === w(i - 1)) continue;
      wbelow += (w(i - 1) - lastw) * numleft;
      for (let j = i; j < size; j++) {
        if (w(j) === w(i)) numleft--;
        else break;
      }
      const wnext = u32Product(numleft, w(i) - w(i - 1));
      const pbelow = wbelow / (wbelow + wnext);
      straw *= Math.pow(1.0 / pbelow, 1.0 / numleft);
      lastw = w(i - 1);
    } else {
      if (w(i) === 0) {
        straws[reverse[i]!] = 0;
        i++;
        numleft--;
        continue;
      }
      straws[reverse[i]!] = Math.trunc(straw * 0x10000);
      i++;
      if (i === size) break;
      wbelow += (w(i - 1) - lastw) * numleft;
      numleft--;
      const wnext = u32Product(numleft, w(i) - w(i - 1));
      const pbelow = wbelow / (wbelow + wnext);
      straw *= Math.pow(1.0 / pbelow, 1.0 / numleft);
      lastw = w(i - 1);
    }
  }
  return straws;
}

/** C's `int * __u32` product: unsigned, modulo 2^32 (exact here: operands < 2^16 and 2^32). */
function u32Product(n: number, diff: number): number {
  return (n * diff) % 4294967296;
}

function height(n: number): number {
  let h = 0;
  while ((n & 1) === 0) {
    h++;
    n >>= 1;
  }
  return h;
}

function parent(n: number): number {
  const h = height(n);
  return n & (1 << (h + 1)) ? n - (1 << h) : n + (1 << h);
}

/** Ceph `calc_depth`: levels of the binary tree holding `size` leaves. */
function calcDepth(size: number): number {
  if (size === 0) return 0;
  let depth = 1;
  for (let t = size - 1; t; t >>= 1) depth++;
  return depth;
}

/**
 * Ceph `crush_make_tree_bucket`: node weights of a tree bucket (index = node number;
 * leaf i is node `2i + 1`; the root is `numNodes >> 1`).
 */
export function crushTreeNodeWeights(weights: readonly number[]): Float64Array {
  const size = weights.length;
  const depth = calcDepth(size);
  const nodes = new Float64Array(size === 0 ? 0 : 1 << depth);
  for (let i = 0; i < size; i++) {
    let node = ((i + 1) << 1) - 1;
    nodes[node] = weights[i]!;
    for (let j = 1; j < depth; j++) {
      node = parent(node);
      nodes[node] = nodes[node]! + weights[i]!;
    }
  }
  return nodes;
}

/** `(u64)a * b >> 32` for u32 a and b, exactly (the product exceeds 2^53). */
export function mulHigh32(a: number, b: number): number {
  const hi = (a >>> 16) * b; // < 2^48
  const lo = (a & 0xffff) * b; // < 2^48
  const q = Math.floor(hi / 65536);
  const rem = hi - q * 65536;
  return q + Math.floor((rem * 65536 + lo) / 4294967296);
}

/** `bucket_straw_choose`: the largest `(hash & 0xffff) * straw` (exact: < 2^48), first on ties. */
export function strawChoose(items: Int32Array, straws: Float64Array, off: number, size: number, x: number, r: number): number {
  let high = 0;
  let highDraw = 0;
  for (let i = 0; i < size; i++) {
    const draw = (crushHash32_3(x, items[off + i]!, r) & 0xffff) * straws[off + i]!;
    if (i === 0 || draw > highDraw) {
      high = i;
      highDraw = draw;
    }
  }
  return high;
}

/** `bucket_list_choose`: from the tail, item i wins when `(hash & 0xffff) * sum_i >> 16 < w_i`. */
export function listChoose(
  items: Int32Array, weights: Float64Array, sums: Float64Array, off: number, size: number, id: number, x: number, r: number,
): number {
  for (let i = size - 1; i >= 0; i--) {
    const h = crushHash32_4(x, items[off + i]!, r, id) & 0xffff;
    if (Math.floor((h * sums[off + i]!) / 65536) < weights[off + i]!) return i;
  }
  return 0;
}

/** `bucket_tree_choose`: descend from the root, left when `(hash * w) >> 32 < w(left)`. */
export function treeChoose(nodes: Float64Array, base: number, numNodes: number, id: number, x: number, r: number): number {
  let n = numNodes >> 1;
  while (!(n & 1)) {
    const t = mulHigh32(crushHash32_4(x, n, r, id), nodes[base + n]!);
    const h = 31 - Math.clz32(n & -n);
    const l = n - (1 << (h - 1));
    n = t < nodes[base + l]! ? l : n + (1 << (h - 1));
  }
  return n >> 1;
}
