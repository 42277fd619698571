/**
 * The CRUSH map data model, after Ceph's `struct crush_map` (src/crush/crush.h) and the
 * naming layer of `CrushWrapper` (names, types, device classes, shadow trees).
 *
 * A `CrushMap` is an immutable value: builder functions return a new map and leave the old
 * one untouched, so the mapper may cache a compiled form per map object (see mapper.ts).
 *
 * Units: every weight is a 16.16 fixed-point unsigned integer (0x10000 = 1.0), as in Ceph.
 * Ids: devices (OSDs) have ids >= 0, buckets have ids < 0 (bucket slot = -1 - id).
 */

/** Ceph's `CRUSH_ITEM_NONE`: a hole in an indep (erasure) result. */
export const CRUSH_ITEM_NONE = 0x7fffffff;
/** Ceph's `CRUSH_ITEM_UNDEF`: a not-yet-chosen slot during indep choice (never returned). */
export const CRUSH_ITEM_UNDEF = 0x7ffffffe;
/** 1.0 in 16.16 fixed point. */
export const CRUSH_WEIGHT_ONE = 0x10000;
/** Largest result size Aspen's `crushDoRule` accepts (an Aspen bound; Ceph sizes its stack arrays by the caller's maxout). */
export const CRUSH_MAX_RESULT = 256;

/** Bucket algorithms (Ceph `CRUSH_BUCKET_*`). `tree` and `straw` are decoded but not built by Aspen. */
export type CrushBucketAlg = 'uniform' | 'list' | 'tree' | 'straw' | 'straw2';
/** Ceph's numeric ids for {@link CrushBucketAlg} (crush.h `enum crush_algorithm`). */
export const CRUSH_BUCKET_ALG_IDS: Readonly<Record<CrushBucketAlg, number>> = {
  uniform: 1,
  list: 2,
  tree: 3,
  straw: 4,
  straw2: 5,
};
/** Every bucket algorithm, in Ceph's id order. */
export const CRUSH_BUCKET_ALGS: readonly CrushBucketAlg[] = ['uniform', 'list', 'tree', 'straw', 'straw2'];

/** Hash functions; Ceph defines only rjenkins1 (`CRUSH_HASH_RJENKINS1` = 0). */
export type CrushHashAlg = 'rjenkins1';

/**
 * Tunables (crush.h `struct crush_map` fields; names as in `crushtool -d`). The defaults
 * are Ceph's current ("jewel" and later, `optimal`) profile: {@link CRUSH_TUNABLES_OPTIMAL}.
 */
export interface CrushTunables {
  /** Retries within the same bucket on collision (legacy; 0 in modern profiles). */
  readonly chooseLocalTries: number;
  /** Exhaustive-search retries within the same bucket (legacy; 0 in modern profiles). */
  readonly chooseLocalFallbackTries: number;
  /** Retries of a whole descent before giving up on a replica (Ceph counts retries; +1 = tries). */
  readonly chooseTotalTries: number;
  /** 1: a chooseleaf recursion tries its subtree only once. */
  readonly chooseleafDescendOnce: number;
  /** Non-zero: pass `r >> (vary_r - 1)` to the chooseleaf recursion. */
  readonly chooseleafVaryR: number;
  /** 1: chooseleaf recursion always starts at rep 0 (stable when numrep changes). */
  readonly chooseleafStable: number;
  /** How straw (v1) buckets compute straws; 1 fixes a bug of 0. */
  readonly strawCalcVersion: number;
  /** Bitmask of allowed bucket algorithms (bit = alg id); 54 = uniform|list|straw|straw2. */
  readonly allowedBucketAlgs: number;
}

/** Ceph's optimal tunables profile (what `crushtool --build` and a new cluster use). */
export const CRUSH_TUNABLES_OPTIMAL: CrushTunables = Object.freeze({
  chooseLocalTries: 0,
  chooseLocalFallbackTries: 0,
  chooseTotalTries: 50,
  chooseleafDescendOnce: 1,
  chooseleafVaryR: 1,
  chooseleafStable: 1,
  strawCalcVersion: 1,
  allowedBucketAlgs: 54,
});

/** Ceph's legacy ("argonaut") tunables: what a map without `tunable` lines means. */
export const CRUSH_TUNABLES_LEGACY: CrushTunables = Object.freeze({
  chooseLocalTries: 2,
  chooseLocalFallbackTries: 5,
  chooseTotalTries: 19,
  chooseleafDescendOnce: 0,
  chooseleafVaryR: 0,
  chooseleafStable: 0,
  strawCalcVersion: 0,
  allowedBucketAlgs: 22,
});

/** A device (OSD): `device <id> <name> [class <class>]`. */
export interface CrushDevice {
  /** OSD id, >= 0. */
  readonly id: number;
  /** Usually `osd.<id>`. */
  readonly name: string;
  /** Device class (`hdd`, `ssd`, `nvme`, …), if any. */
  readonly deviceClass?: string;
}

/** A hierarchy level: `type <id> <name>`; type 0 is the device type. */
export interface CrushTypeDef {
  readonly id: number;
  readonly name: string;
}

/** Ceph's default hierarchy types (CrushWrapper default type list). */
export const CRUSH_DEFAULT_TYPES: readonly CrushTypeDef[] = Object.freeze(
  ['osd', 'host', 'chassis', 'rack', 'row', 'pdu', 'pod', 'room', 'datacenter', 'zone', 'region', 'root'].map(
    (name, id) => Object.freeze({ id, name }),
  ),
);

/** One child of a bucket with its 16.16 weight. */
export interface CrushBucketItem {
  /** Device id (>= 0) or bucket id (< 0). */
  readonly id: number;
  /** 16.16 fixed-point weight; for a bucket child, the child's total weight. */
  readonly weight: number;
}

/**
 * A bucket (crush.h `struct crush_bucket`). Shadow buckets (the per-class copies Ceph builds
 * for `step take X class C`) are ordinary buckets whose `name` is `<origin>~<class>` and
 * whose `shadowOf` names their origin; they never appear in the text map.
 */
export interface CrushBucket {
  /** < 0. */
  readonly id: number;
  readonly name: string;
  /** Id of a {@link CrushTypeDef}, > 0. */
  readonly typeId: number;
  readonly alg: CrushBucketAlg;
  readonly hash: CrushHashAlg;
  /** Children in Ceph's order (order matters to the mapping). */
  readonly items: readonly CrushBucketItem[];
  /** Ceph's `class_bucket[id]`: the shadow bucket id of this bucket for each class. */
  readonly classIds?: Readonly<Record<string, number>>;
  /** For a shadow bucket: the origin bucket id and the class. */
  readonly shadowOf?: { readonly id: number; readonly deviceClass: string };
}

/** Rule step operations, named as `crushtool -d` prints them (Ceph `CRUSH_RULE_*`). */
export type CrushChooseOp = 'choose_firstn' | 'choose_indep' | 'chooseleaf_firstn' | 'chooseleaf_indep';
/** `set_*` tunable-override steps. */
export type CrushSetOp =
  | 'set_choose_tries'
  | 'set_chooseleaf_tries'
  | 'set_choose_local_tries'
  | 'set_choose_local_fallback_tries'
  | 'set_chooseleaf_vary_r'
  | 'set_chooseleaf_stable';
export const CRUSH_SET_OPS: readonly CrushSetOp[] = [
  'set_choose_tries',
  'set_chooseleaf_tries',
  'set_choose_local_tries',
  'set_choose_local_fallback_tries',
  'set_chooseleaf_vary_r',
  'set_chooseleaf_stable',
];

/** One rule step. */
export type CrushRuleStep =
  /** Start from `item`; with `deviceClass`, from its shadow bucket for that class. */
  | { readonly op: 'take'; readonly item: number; readonly deviceClass?: string }
  /** Choose `num` items of type `typeId` (num <= 0 means result_max + num). */
  | { readonly op: CrushChooseOp; readonly num: number; readonly typeId: number }
  | { readonly op: 'emit' }
  | { readonly op: 'noop' }
  | { readonly op: CrushSetOp; readonly value: number };

/** Rule types (Ceph `pg_pool_t::TYPE_*` as used by rules): replicated = 1, erasure = 3. */
export type CrushRuleType = 'replicated' | 'erasure';
export const CRUSH_RULE_TYPE_IDS: Readonly<Record<CrushRuleType, number>> = { replicated: 1, erasure: 3 };

/** A placement rule (crush.h `struct crush_rule` + CrushWrapper's rule name). */
export interface CrushRule {
  /** Rule id (Ceph's rule number, also its `ruleset`). */
  readonly id: number;
  readonly name: string;
  readonly type: CrushRuleType;
  readonly minSize: number;
  readonly maxSize: number;
  readonly steps: readonly CrushRuleStep[];
}

/**
 * Per-bucket overrides of one choose_args set (Ceph `struct crush_choose_arg`), used by
 * straw2 buckets only: `weightSet[p]` replaces the item weights (16.16) when choosing for
 * result position p (the last set serves higher positions); `ids` replace the item ids fed
 * to the hash (the chosen item is still the bucket's own).
 */
export interface CrushChooseArg {
  readonly bucketId: number;
  readonly weightSet?: readonly (readonly number[])[];
  readonly ids?: readonly number[];
}

/**
 * One choose_args set (Ceph `crush_choose_arg_map`), selected by `index`: a pool id, or
 * {@link CRUSH_DEFAULT_CHOOSE_ARGS} for every pool without its own set.
 */
export interface CrushChooseArgMap {
  readonly index: number;
  readonly args: readonly CrushChooseArg[];
}

/** Ceph `CrushWrapper::DEFAULT_CHOOSE_ARGS` (printed as 18446744073709551615 by crushtool). */
export const CRUSH_DEFAULT_CHOOSE_ARGS = -1;

/** A whole CRUSH map. Arrays are sorted: devices by id, types by id, buckets by id descending (-1 first), rules by id. */
export interface CrushMap {
  readonly tunables: CrushTunables;
  readonly devices: readonly CrushDevice[];
  readonly types: readonly CrushTypeDef[];
  /** Real and shadow buckets. */
  readonly buckets: readonly CrushBucket[];
  readonly rules: readonly CrushRule[];
  /** Device class names; the index is Ceph's class id (order of first use). */
  readonly classes: readonly string[];
  /** Ceph's `max_devices`: one more than the largest device id (devices >= this are "bad items"). */
  readonly maxDevices: number;
  /** Weight sets (Ceph `choose_args`, e.g. from the balancer's crush-compat mode), sorted by index. */
  readonly chooseArgs?: readonly CrushChooseArgMap[];
}

/** Sum of a bucket's item weights (16.16), as Ceph's `bucket->weight`. */
export function crushBucketWeight(bucket: CrushBucket): number {
  let w = 0;
  for (const it of bucket.items) w += it.weight;
  return w;
}

/** Converts a floating weight (1.0 = one unit) to 16.16 as Ceph does: `(int)(w * (float)0x10000)`. */
export function crushWeightFromFloat(weight: number): number {
  return Math.trunc(Math.fround(Math.fround(weight) * CRUSH_WEIGHT_ONE));
}

/** Converts 16.16 to a float weight (as Ceph's `(float)w / (float)0x10000`). */
export function crushWeightToFloat(weight16: number): number {
  return Math.fround(Math.fround(weight16) / CRUSH_WEIGHT_ONE);
}

/** True when `bucket` is a per-class shadow copy. */
export function isShadowBucket(bucket: CrushBucket): boolean {
  return bucket.shadowOf !== undefined;
}
