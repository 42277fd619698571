/**
 * Placement of objects and PGs, exactly as Ceph's OSDMap computes it (src/osd/OSDMap.cc
 * `object_locator_to_pg`, `_pg_to_raw_osds`, `_remove_nonexistent_osds`, `_raw_to_up_osds`,
 * `_pick_primary`, `_apply_primary_affinity`, `_get_temp_osds`, `_pg_to_up_acting_osds`;
 * src/osd/osd_types.cc `pg_pool_t::hash_key`, `raw_pg_to_pg`, `raw_pg_to_pps`;
 * src/common/ceph_hash.cc `ceph_str_hash_rjenkins`; include/rados.h `ceph_stable_mod`).
 *
 * The monitor's OSDMap (shared/src/osdmap/types.ts) adapts to the small interfaces here:
 * {@link PlacementPool}, {@link PlacementOsds} and {@link PlacementTemps}. Pure functions:
 * the same inputs give the same result on every client, OSD and mon.
 *
 */
import { assert } from '../assert.ts';
import { crushHash32_2 } from '../crush/hash.ts';
import { crushMapperFor } from '../crush/mapper.ts';
import { CRUSH_ITEM_NONE, CRUSH_MAX_RESULT, type CrushMap } from '../crush/types.ts';
import { poolId, type PgId } from '../ids.ts';

/** Ceph `CEPH_OSD_DEFAULT_PRIMARY_AFFINITY` / `CEPH_OSD_MAX_PRIMARY_AFFINITY` (16.16 = 1.0). */
export const CEPH_OSD_DEFAULT_PRIMARY_AFFINITY = 0x10000;

/** What placement needs of a pool (`pg_pool_t`). */
export interface PlacementPool {
  /** Pool id. */
  readonly id: number;
  /** Replicated pools shift survivors left; erasure pools keep positions (holes). */
  readonly type: 'replicated' | 'erasure';
  /** Replicas, or k + m chunks: the CRUSH result size. */
  readonly size: number;
  /** Number of PGs (objects fold onto [0, pgNum)). */
  readonly pgNum: number;
  /** Number of placement seeds (<= pgNum; PGs fold onto [0, pgpNum) for CRUSH). */
  readonly pgpNum: number;
  /** CRUSH rule id; negative means none (empty mappings). */
  readonly crushRule: number;
  /** Ceph `FLAG_HASHPSPOOL` (default true, as every pool created since Firefly). */
  readonly hashPsPool?: boolean;
}

/**
 * OSD state, indexed by OSD id in [0, maxOsd) (Ceph `osd_state`, `osd_weight`,
 * `osd_primary_affinity`).
 */
export interface PlacementOsds {
  /** Ceph `max_osd`. */
  readonly maxOsd: number;
  /** Non-zero/true when the OSD exists (`CEPH_OSD_EXISTS`). */
  readonly exists: ArrayLike<number | boolean>;
  /** Non-zero/true when the OSD is up (`CEPH_OSD_UP`). */
  readonly up: ArrayLike<number | boolean>;
  /** Reweight, 16.16: 0x10000 = in, 0 = out (Ceph `osd_weight`), the CRUSH `is_out` vector. */
  readonly weight: ArrayLike<number>;
  /** Primary affinity, 16.16 (default 0x10000 for all). */
  readonly primaryAffinity?: ArrayLike<number>;
}

/** Overrides looked up by the (folded) PG: pg_temp, primary_temp, pg_upmap, pg_upmap_items. */
export interface PlacementTemps {
  pgTemp?(pg: PgId): readonly number[] | undefined;
  primaryTemp?(pg: PgId): number | undefined;
  /** Ceph `pg_upmap`: replaces the raw set (ignored if any target is out). */
  pgUpmap?(pg: PgId): readonly number[] | undefined;
  /** Ceph `pg_upmap_items`: `[from, to]` replacements applied to the raw set in order. */
  pgUpmapItems?(pg: PgId): readonly (readonly [number, number])[] | undefined;
}

/** A PG's full mapping (Ceph `pg_to_up_acting_osds`). Holes are {@link CRUSH_ITEM_NONE}. */
export interface PgMapping {
  readonly raw: readonly number[];
  readonly up: readonly number[];
  /** -1 when the up set is empty. */
  readonly upPrimary: number;
  readonly acting: readonly number[];
  /** -1 when the acting set is empty. */
  readonly actingPrimary: number;
  /** The CRUSH input (placement seed) used. */
  readonly pps: number;
}

/**
 * Ceph `ceph_str_hash_rjenkins`: Bob Jenkins' lookup2 hash of the bytes, as u32.
 * Strings are hashed as UTF-8.
 */
export function cephStrHashRjenkins(input: string | Uint8Array): number {
  const k = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const length = k.length;
  let a = 0x9e3779b9 | 0;
  let b = a;
  let c = 0;
  let i = 0;
  let len = length;
  const word = (o: number): number => k[o]! | (k[o + 1]! << 8) | (k[o + 2]! << 16) | (k[o + 3]! << 24);
  while (len >= 12) {
    a = (a + word(i)) | 0;
    b = (b + word(i + 4)) | 0;
    c = (c + word(i + 8)) | 0;
    [a, b, c] = mix(a, b, c);
    i += 12;
    len -= 12;
  }
  c = (c + length) | 0;
  // The tail, in the order of Ceph's fall-through switch.
  if (len >= 11) c = (c + (k[i + 10]! << 24)) | 0;
  if (len >= 10) c = (c + (k[i + 9]! << 16)) | 0;
  if (len >= 9) c = (c + (k[i + 8]! << 8)) | 0;
  if (len >= 8) b = (b + (k[i + 7]! << 24)) | 0;
  if (len >= 7) b = (b + (k[i + 6]! << 16)) | 0;
  if (len >= 6) b = (b + (k[i + 5]! << 8)) | 0;
  if (len >= 5) b = (b + k[i + 4]!) | 0;
  if (len >= 4) a = (a + (k[i + 3]! << 24)) | 0;
  if (len >= 3) a = (a + (k[i + 2]! << 16)) | 0;
  if (len >= 2) a = (a + (k[i + 1]! << 8)) | 0;
  if (len >= 1) a = (a + k[i]!) | 0;
  return mix(a, b, c)[2] >>> 0;
}

function mix(a: number, b: number, c: number): [number, number, number] {
  a = (a - b - c) ^ (c >>> 13);
  b = (b - c - a) ^ (a << 8);
  c = (c - a - b) ^ (b >>> 13);
  a = (a - b - c) ^ (c >>> 12);
  b = (b - c - a) ^ (a << 16);
  c = (c - a - b) ^ (b >>> 5);
  a = (a - b - c) ^ (c >>> 3);
  b = (b - c - a) ^ (a << 10);
  c = (c - a - b) ^ (b >>> 15);
  return [a, b, c];
}

/** Ceph `ceph_stable_mod(x, b, bmask)`: x mod b that moves few inputs when b grows. */
export function cephStableMod(x: number, b: number, bmask: number): number {
  return (x & bmask) < b ? (x & bmask) >>> 0 : (x & (bmask >>> 1)) >>> 0;
}

/** Ceph `pg_pool_t::calc_pg_masks`: `(1 << cbits(n - 1)) - 1`. */
export function pgNumMask(pgNum: number): number {
  assert(Number.isInteger(pgNum) && pgNum >= 1, `bad pg_num ${pgNum}`);
  const bits = 32 - Math.clz32(pgNum - 1);
  return bits >= 32 ? 0xffffffff : (1 << bits) - 1;
}

/**
 * Ceph `pg_pool_t::hash_key`: the 32-bit object hash (the raw PG seed) of an object name
 * (or locator key) in a namespace (`nspace + '\x1f' + key` when the namespace is set).
 */
export function cephObjectHash(key: string, nspace = ''): number {
  return cephStrHashRjenkins(nspace === '' ? key : `${nspace}\x1f${key}`);
}

/**
 * The PG holding an object (Ceph `object_locator_to_pg` then `raw_pg_to_pg`):
 * `seed = ceph_stable_mod(hash(locatorKey ?? name, nspace), pg_num, pg_num_mask)`.
 */
export function objectToPg(pool: PlacementPool, objectName: string, nspace = '', locatorKey?: string): PgId {
  const hash = cephObjectHash(locatorKey !== undefined && locatorKey !== '' ? locatorKey : objectName, nspace);
  return { pool: poolId(pool.id), seed: cephStableMod(hash, pool.pgNum, pgNumMask(pool.pgNum)) };
}

/** Ceph `pg_pool_t::raw_pg_to_pg`: folds a raw seed onto [0, pg_num). */
export function rawPgToPg(pool: PlacementPool, seed: number): number {
  return cephStableMod(seed, pool.pgNum, pgNumMask(pool.pgNum));
}

/**
 * Ceph `pg_pool_t::raw_pg_to_pps`: the CRUSH input of a PG,
 * `crush_hash32_2(stable_mod(ps, pgp_num, pgp_mask), pool)` with HASHPSPOOL, else `… + pool`.
 */
export function rawPgToPps(pool: PlacementPool, seed: number): number {
  const ps = cephStableMod(seed, pool.pgpNum, pgNumMask(pool.pgpNum));
  return pool.hashPsPool === false ? (ps + pool.id) >>> 0 : crushHash32_2(ps, pool.id);
}

const truthy = (v: number | boolean | undefined): boolean => v === true || (typeof v === 'number' && v !== 0);

function exists(osds: PlacementOsds, osd: number): boolean {
  return osd >= 0 && osd < osds.maxOsd && truthy(osds.exists[osd]);
}
function isUp(osds: PlacementOsds, osd: number): boolean {
  return exists(osds, osd) && truthy(osds.up[osd]);
}

const rawOut = new Int32Array(CRUSH_MAX_RESULT);

/**
 * Ceph `_pg_to_raw_osds`: CRUSH of the PG's placement seed with the pool's rule and size
 * (weights = OSD reweights; choose_args set = the pool id's, else the default), then `_remove_nonexistent_osds` (replicated: drop; erasure:
 * CRUSH_ITEM_NONE). An unknown rule gives an empty set.
 */
export function pgToRawOsds(crush: CrushMap, pool: PlacementPool, osds: PlacementOsds, seed: number): { raw: number[]; pps: number } {
  assert(pool.size >= 0 && pool.size <= CRUSH_MAX_RESULT, `bad pool size ${pool.size}`);
  assert(osds.weight.length === osds.maxOsd, 'the weight vector must have max_osd entries');
  const pps = rawPgToPps(pool, seed);
  const raw: number[] = [];
  if (pool.crushRule >= 0 && pool.size > 0) {
    const n = crushMapperFor(crush).doRule(pool.crushRule, pps, rawOut, pool.size, osds.weight, pool.id);
    for (let i = 0; i < n; i++) {
      const o = rawOut[i]!;
      if (exists(osds, o)) raw.push(o);
      else if (pool.type === 'erasure') raw.push(CRUSH_ITEM_NONE);
    }
  }
  return { raw, pps };
}

/**
 * Ceph `_apply_upmap`: a `pg_upmap` entry replaces the raw set unless one of its targets is
 * marked out (reweight 0); then each `pg_upmap_items` pair `[from, to]` replaces the first
 * `from` unless `to` is already present or is out.
 */
export function applyUpmap(osds: PlacementOsds, pg: PgId, raw: number[], temps: PlacementTemps): number[] {
  const isOutTarget = (o: number): boolean => o !== CRUSH_ITEM_NONE && o >= 0 && o < osds.maxOsd && osds.weight[o] === 0;
  const upmap = temps.pgUpmap?.(pg);
  if (upmap) {
    if (upmap.some(isOutTarget)) return raw;
    raw = [...upmap];
  }
  const items = temps.pgUpmapItems?.(pg);
  if (items) {
    raw = [...raw];
    for (const [from, to] of items) {
      let exists = false;
      let pos = -1;
      for (let i = 0; i < raw.length; i++) {
        const o = raw[i]!;
        if (o === to) {
          exists = true;
          break;
        }
        if (o === from && pos < 0 && !(to !== CRUSH_ITEM_NONE && to < osds.maxOsd && to >= 0 && osds.weight[to] === 0)) pos = i;
      }
      if (!exists && pos >= 0) raw[pos] = to;
    }
  }
  return raw;
}

/** Ceph `_raw_to_up_osds`: drop (replicated) or blank (erasure) OSDs that are down or gone. */
export function rawToUpOsds(pool: PlacementPool, osds: PlacementOsds, raw: readonly number[]): number[] {
  if (pool.type === 'replicated') return raw.filter((o) => isUp(osds, o));
  return raw.map((o) => (isUp(osds, o) ? o : CRUSH_ITEM_NONE));
}

/** Ceph `_pick_primary`: the first non-hole OSD, or -1. */
export function pickPrimary(set: readonly number[]): number {
  for (const o of set) if (o !== CRUSH_ITEM_NONE) return o;
  return -1;
}

/**
 * Ceph `_apply_primary_affinity`: an OSD with affinity a < 1.0 declines primaryship when
 * `crush_hash32_2(pps, osd) >> 16 >= a`; replicated pools move the chosen primary to the
 * front. Returns the (possibly reordered) set and primary.
 */
export function applyPrimaryAffinity(
  pps: number, pool: PlacementPool, osds: PlacementOsds, up: number[], primary: number,
): { up: number[]; primary: number } {
  const aff = osds.primaryAffinity;
  if (!aff) return { up, primary };
  const affinity = (o: number): number => aff[o] ?? CEPH_OSD_DEFAULT_PRIMARY_AFFINITY;
  if (!up.some((o) => o !== CRUSH_ITEM_NONE && affinity(o) !== CEPH_OSD_DEFAULT_PRIMARY_AFFINITY)) return { up, primary };
  let pos = -1;
  for (let i = 0; i < up.length; i++) {
    const o = up[i]!;
    if (o === CRUSH_ITEM_NONE) continue;
    const a = affinity(o);
    if (a < CEPH_OSD_DEFAULT_PRIMARY_AFFINITY && crushHash32_2(pps, o) >>> 16 >= a) {
      if (pos < 0) pos = i;
    } else {
      pos = i;
      break;
    }
  }
  if (pos < 0) return { up, primary };
  const chosen = up[pos]!;
  if (pool.type === 'replicated' && pos > 0) up = [chosen, ...up.slice(0, pos), ...up.slice(pos + 1)];
  return { up, primary: chosen };
}

/**
 * Ceph `_pg_to_up_acting_osds` for PG `seed` of `pool` (seed must be < pg_num): raw
 * (+ pg_upmap / pg_upmap_items) → up
 * (+ primary affinity) → acting = pg_temp (down/gone members dropped or blanked) if set,
 * else up; acting primary = primary_temp, else pg_temp's first member, else up primary.
 * @throws AssertionFailure when seed is outside [0, pg_num).
 */
export function pgToUpActingOsds(
  crush: CrushMap, pool: PlacementPool, osds: PlacementOsds, seed: number, temps: PlacementTemps = {},
): PgMapping {
  assert(Number.isInteger(seed) && seed >= 0 && seed < pool.pgNum, `PG seed ${seed} outside pg_num ${pool.pgNum}`);
  const pg: PgId = { pool: poolId(pool.id), seed };
  const crushed = pgToRawOsds(crush, pool, osds, seed);
  const pps = crushed.pps;
  const raw = temps.pgUpmap || temps.pgUpmapItems ? applyUpmap(osds, pg, crushed.raw, temps) : crushed.raw;
  const upRaw = rawToUpOsds(pool, osds, raw);
  const { up, primary: upPrimary } = applyPrimaryAffinity(pps, pool, osds, upRaw, pickPrimary(upRaw));
  const temp: number[] = [];
  for (const o of temps.pgTemp?.(pg) ?? []) {
    if (isUp(osds, o)) temp.push(o);
    else if (pool.type === 'erasure') temp.push(CRUSH_ITEM_NONE);
  }
  let actingPrimary = temps.primaryTemp?.(pg) ?? -1;
  if (actingPrimary === -1 && temp.length > 0) actingPrimary = pickPrimary(temp);
  const acting = temp.length > 0 ? temp : up;
  if (temp.length === 0 && actingPrimary === -1) actingPrimary = upPrimary;
  assert(acting.length <= Math.max(pool.size, temp.length), 'acting larger than the pool size');
  return { raw, up, upPrimary, acting, actingPrimary, pps };
}

/**
 * Maps every PG of a pool (seed 0..pg_num-1) without overrides, calling `each` with the
 * up set and primary; the fast path for whole-pool computations (no per-PG objects beyond
 * the arrays handed to `each`, which are reused: copy them to keep them).
 */
export function forEachPgMapping(
  crush: CrushMap, pool: PlacementPool, osds: PlacementOsds,
  each: (seed: number, up: Int32Array, upPrimary: number) => void,
): void {
  const mapper = crushMapperFor(crush);
  const out = new Int32Array(Math.max(1, pool.size));
  const up = new Int32Array(Math.max(1, pool.size));
  for (let seed = 0; seed < pool.pgNum; seed++) {
    const pps = rawPgToPps(pool, seed);
    const n = pool.crushRule >= 0 && pool.size > 0 ? mapper.doRule(pool.crushRule, pps, out, pool.size, osds.weight, pool.id) : 0;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const o = out[i]!;
      if (isUp(osds, o)) up[m++] = o;
      else if (pool.type === 'erasure') up[m++] = CRUSH_ITEM_NONE;
    }
    let primary = -1;
    for (let i = 0; i < m; i++) if (up[i] !== CRUSH_ITEM_NONE) { primary = up[i]!; break; }
    if (osds.primaryAffinity) {
      const r = applyPrimaryAffinity(pps, pool, osds, Array.from(up.subarray(0, m)), primary);
      up.set(r.up);
      primary = r.primary;
    }
    each(seed, up.subarray(0, m), primary);
  }
}
