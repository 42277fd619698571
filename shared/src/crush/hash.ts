/**
 * Robert Jenkins' 32-bit mixing hash as CRUSH uses it (Ceph src/crush/hash.c,
 * `CRUSH_HASH_RJENKINS1`). Inputs are 32-bit integers (negative bucket ids are taken as
 * their u32 bit pattern, as C does); outputs are unsigned 32-bit integers.
 *
 * Each `crush_hashmix(a, b, c)` is unrolled inline: this is the innermost loop of every
 * mapping, so no helper calls and no allocation. In `t = (t - u - v) ^ (v >>> n)` the
 * subtraction is exact in a double and `^` reduces it to int32, which is C's u32
 * wrap-around; `>>>` is C's logical shift of an unsigned value.
 */
/** `crush_hash_seed`. */
export const CRUSH_HASH_SEED = 1315423911;

/** `crush_hash32_rjenkins1(a)`. */
export function crushHash32(a: number): number {
  let h = CRUSH_HASH_SEED ^ a;
  let b = a | 0;
  a = a | 0;
  let x = 231232;
  let y = 1232;
  b = (b - x - h) ^ (h >>> 13);
  x = (x - h - b) ^ (b << 8);
  h = (h - b - x) ^ (x >>> 13);
  b = (b - x - h) ^ (h >>> 12);
  x = (x - h - b) ^ (b << 16);
  h = (h - b - x) ^ (x >>> 5);
  b = (b - x - h) ^ (h >>> 3);
  x = (x - h - b) ^ (b << 10);
  h = (h - b - x) ^ (x >>> 15);
  y = (y - a - h) ^ (h >>> 13);
  a = (a - h - y) ^ (y << 8);
  h = (h - y - a) ^ (a >>> 13);
  y = (y - a - h) ^ (h >>> 12);
  a = (a - h - y) ^ (y << 16);
  h = (h - y - a) ^ (a >>> 5);
  y = (y - a - h) ^ (h >>> 3);
  a = (a - h - y) ^ (y << 10);
  h = (h - y - a) ^ (a >>> 15);
  return h >>> 0;
}

/** `crush_hash32_rjenkins1_2(a, b)`: used by `is_out` and the PG placement seed. */
export function crushHash32_2(a: number, b: number): number {
  let h = CRUSH_HASH_SEED ^ a ^ b;
  let x = 231232;
  let y = 1232;
  a = a | 0;
  b = b | 0;
  a = (a - b - h) ^ (h >>> 13);
  b = (b - h - a) ^ (a << 8);
  h = (h - a - b) ^ (b >>> 13);
  a = (a - b - h) ^ (h >>> 12);
  b = (b - h - a) ^ (a << 16);
  h = (h - a - b) ^ (b >>> 5);
  a = (a - b - h) ^ (h >>> 3);
  b = (b - h - a) ^ (a << 10);
  h = (h - a - b) ^ (b >>> 15);
  x = (x - a - h) ^ (h >>> 13);
  a = (a - h - x) ^ (x << 8);
  h = (h - x - a) ^ (a >>> 13);
  x = (x - a - h) ^ (h >>> 12);
  a = (a - h - x) ^ (x << 16);
  h = (h - x - a) ^ (a >>> 5);
  x = (x - a - h) ^ (h >>> 3);
  a = (a - h - x) ^ (x << 10);
  h = (h - x - a) ^ (a >>> 15);
  b = (b - y - h) ^ (h >>> 13);
  y = (y - h - b) ^ (b << 8);
  h = (h - b - y) ^ (y >>> 13);
  b = (b - y - h) ^ (h >>> 12);
  y = (y - h - b) ^ (b << 16);
  h = (h - b - y) ^ (y >>> 5);
  b = (b - y - h) ^ (h >>> 3);
  y = (y - h - b) ^ (b << 10);
  h = (h - b - y) ^ (y >>> 15);
  return h >>> 0;
}

/** `crush_hash32_rjenkins1_3(a, b, c)`: straw2 draws and uniform permutations. */
export function crushHash32_3(a: number, b: number, c: number): number {
  let h = CRUSH_HASH_SEED ^ a ^ b ^ c;
  let x = 231232;
  let y = 1232;
  a = a | 0;
  b = b | 0;
  c = c | 0;
  a = (a - b - h) ^ (h >>> 13);
  b = (b - h - a) ^ (a << 8);
  h = (h - a - b) ^ (b >>> 13);
  a = (a - b - h) ^ (h >>> 12);
  b = (b - h - a) ^ (a << 16);
  h = (h - a - b) ^ (b >>> 5);
  a = (a - b - h) ^ (h >>> 3);
  b = (b - h - a) ^ (a << 10);
  h = (h - a - b) ^ (b >>> 15);
  c = (c - x - h) ^ (h >>> 13);
  x = (x - h - c) ^ (c << 8);
  h = (h - c - x) ^ (x >>> 13);
  c = (c - x - h) ^ (h >>> 12);
  x = (x - h - c) ^ (c << 16);
  h = (h - c - x) ^ (x >>> 5);
  c = (c - x - h) ^ (h >>> 3);
  x = (x - h - c) ^ (c << 10);
  h = (h - c - x) ^ (x >>> 15);
  y = (y - a - h) ^ (h >>> 13);
  a = (a - h - y) ^ (y << 8);
  h = (h - y - a) ^ (a >>> 13);
  y = (y - a - h) ^ (h >>> 12);
  a = (a - h - y) ^ (y << 16);
  h = (h - y - a) ^ (a >>> 5);
  y = (y - a - h) ^ (h >>> 3);
  a = (a - h - y) ^ (y << 10);
  h = (h - y - a) ^ (a >>> 15);
  b = (b - x - h) ^ (h >>> 13);
  x = (x - h - b) ^ (b << 8);
  h = (h - b - x) ^ (x >>> 13);
  b = (b - x - h) ^ (h >>> 12);
  x = (x - h - b) ^ (b << 16);
  h = (h - b - x) ^ (x >>> 5);
  b = (b - x - h) ^ (h >>> 3);
  x = (x - h - b) ^ (b << 10);
  h = (h - b - x) ^ (x >>> 15);
  y = (y - c - h) ^ (h >>> 13);
  c = (c - h - y) ^ (y << 8);
  h = (h - y - c) ^ (c >>> 13);
  y = (y - c - h) ^ (h >>> 12);
  c = (c - h - y) ^ (y << 16);
  h = (h - y - c) ^ (c >>> 5);
  y = (y - c - h) ^ (h >>> 3);
  c = (c - h - y) ^ (y << 10);
  h = (h - y - c) ^ (c >>> 15);
  return h >>> 0;
}

/** `crush_hash32_rjenkins1_4(a, b, c, d)`: list and tree buckets. */
export function crushHash32_4(a: number, b: number, c: number, d: number): number {
  let h = CRUSH_HASH_SEED ^ a ^ b ^ c ^ d;
  let x = 231232;
  let y = 1232;
  a = a | 0;
  b = b | 0;
  c = c | 0;
  d = d | 0;
  a = (a - b - h) ^ (h >>> 13);
  b = (b - h - a) ^ (a << 8);
  h = (h - a - b) ^ (b >>> 13);
  a = (a - b - h) ^ (h >>> 12);
  b = (b - h - a) ^ (a << 16);
  h = (h - a - b) ^ (b >>> 5);
  a = (a - b - h) ^ (h >>> 3);
  b = (b - h - a) ^ (a << 10);
  h = (h - a - b) ^ (b >>> 15);
  c = (c - d - h) ^ (h >>> 13);
  d = (d - h - c) ^ (c << 8);
  h = (h - c - d) ^ (d >>> 13);
  c = (c - d - h) ^ (h >>> 12);
  d = (d - h - c) ^ (c << 16);
  h = (h - c - d) ^ (d >>> 5);
  c = (c - d - h) ^ (h >>> 3);
  d = (d - h - c) ^ (c << 10);
  h = (h - c - d) ^ (d >>> 15);
  a = (a - x - h) ^ (h >>> 13);
  x = (x - h - a) ^ (a << 8);
  h = (h - a - x) ^ (x >>> 13);
  a = (a - x - h) ^ (h >>> 12);
  x = (x - h - a) ^ (a << 16);
  h = (h - a - x) ^ (x >>> 5);
  a = (a - x - h) ^ (h >>> 3);
  x = (x - h - a) ^ (a << 10);
  h = (h - a - x) ^ (x >>> 15);
  y = (y - b - h) ^ (h >>> 13);
  b = (b - h - y) ^ (y << 8);
  h = (h - y - b) ^ (b >>> 13);
  y = (y - b - h) ^ (h >>> 12);
  b = (b - h - y) ^ (y << 16);
  h = (h - y - b) ^ (b >>> 5);
  y = (y - b - h) ^ (h >>> 3);
  b = (b - h - y) ^ (y << 10);
  h = (h - y - b) ^ (b >>> 15);
  c = (c - x - h) ^ (h >>> 13);
  x = (x - h - c) ^ (c << 8);
  h = (h - c - x) ^ (x >>> 13);
  c = (c - x - h) ^ (h >>> 12);
  x = (x - h - c) ^ (c << 16);
  h = (h - c - x) ^ (x >>> 5);
  c = (c - x - h) ^ (h >>> 3);
  x = (x - h - c) ^ (c << 10);
  h = (h - c - x) ^ (x >>> 15);
  y = (y - d - h) ^ (h >>> 13);
  d = (d - h - y) ^ (y << 8);
  h = (h - y - d) ^ (d >>> 13);
  y = (y - d - h) ^ (h >>> 12);
  d = (d - h - y) ^ (y << 16);
  h = (h - y - d) ^ (d >>> 5);
  y = (y - d - h) ^ (h >>> 3);
  d = (d - h - y) ^ (y << 10);
  h = (h - y - d) ^ (d >>> 15);
  return h >>> 0;
}

/** `crush_hash32_rjenkins1_5(a, b, c, d, e)`. */
export function crushHash32_5(a: number, b: number, c: number, d: number, e: number): number {
  let h = CRUSH_HASH_SEED ^ a ^ b ^ c ^ d ^ e;
  let x = 231232;
  let y = 1232;
  a = a | 0;
  b = b | 0;
  c = c | 0;
  d = d | 0;
  e = e | 0;
  a = (a - b - h) ^ (h >>> 13);
  b = (b - h - a) ^ (a << 8);
  h = (h - a - b) ^ (b >>> 13);
  a = (a - b - h) ^ (h >>> 12);
  b = (b - h - a) ^ (a << 16);
  h = (h - a - b) ^ (b >>> 5);
  a = (a - b - h) ^ (h >>> 3);
  b = (b - h - a) ^ (a << 10);
  h = (h - a - b) ^ (b >>> 15);
  c = (c - d - h) ^ (h >>> 13);
  d = (d - h - c) ^ (c << 8);
  h = (h - c - d) ^ (d >>> 13);
  c = (c - d - h) ^ (h >>> 12);
  d = (d - h - c) ^ (c << 16);
  h = (h - c - d) ^ (d >>> 5);
  c = (c - d - h) ^ (h >>> 3);
  d = (d - h - c) ^ (c << 10);
  h = (h - c - d) ^ (d >>> 15);
  e = (e - x - h) ^ (h >>> 13);
  x = (x - h - e) ^ (e << 8);
  h = (h - e - x) ^ (x >>> 13);
  e = (e - x - h) ^ (h >>> 12);
  x = (x - h - e) ^ (e << 16);
  h = (h - e - x) ^ (x >>> 5);
  e = (e - x - h) ^ (h >>> 3);
  x = (x - h - e) ^ (e << 10);
  h = (h - e - x) ^ (x >>> 15);
  y = (y - a - h) ^ (h >>> 13);
  a = (a - h - y) ^ (y << 8);
  h = (h - y - a) ^ (a >>> 13);
  y = (y - a - h) ^ (h >>> 12);
  a = (a - h - y) ^ (y << 16);
  h = (h - y - a) ^ (a >>> 5);
  y = (y - a - h) ^ (h >>> 3);
  a = (a - h - y) ^ (y << 10);
  h = (h - y - a) ^ (a >>> 15);
  b = (b - x - h) ^ (h >>> 13);
  x = (x - h - b) ^ (b << 8);
  h = (h - b - x) ^ (x >>> 13);
  b = (b - x - h) ^ (h >>> 12);
  x = (x - h - b) ^ (b << 16);
  h = (h - b - x) ^ (x >>> 5);
  b = (b - x - h) ^ (h >>> 3);
  x = (x - h - b) ^ (b << 10);
  h = (h - b - x) ^ (x >>> 15);
  y = (y - c - h) ^ (h >>> 13);
  c = (c - h - y) ^ (y << 8);
  h = (h - y - c) ^ (c >>> 13);
  y = (y - c - h) ^ (h >>> 12);
  c = (c - h - y) ^ (y << 16);
  h = (h - y - c) ^ (c >>> 5);
  y = (y - c - h) ^ (h >>> 3);
  c = (c - h - y) ^ (y << 10);
  h = (h - y - c) ^ (c >>> 15);
  d = (d - x - h) ^ (h >>> 13);
  x = (x - h - d) ^ (d << 8);
  h = (h - d - x) ^ (x >>> 13);
  d = (d - x - h) ^ (h >>> 12);
  x = (x - h - d) ^ (d << 16);
  h = (h - d - x) ^ (x >>> 5);
  d = (d - x - h) ^ (h >>> 3);
  x = (x - h - d) ^ (d << 10);
  h = (h - d - x) ^ (x >>> 15);
  y = (y - e - h) ^ (h >>> 13);
  e = (e - h - y) ^ (y << 8);
  h = (h - y - e) ^ (e >>> 13);
  y = (y - e - h) ^ (h >>> 12);
  e = (e - h - y) ^ (y << 16);
  h = (h - y - e) ^ (e >>> 5);
  y = (y - e - h) ^ (h >>> 3);
  e = (e - h - y) ^ (y << 10);
  h = (h - y - e) ^ (e >>> 15);
  return h >>> 0;
}
