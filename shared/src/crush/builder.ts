/**
 * Building and editing CRUSH maps, as Ceph's monitor and `crushtool --build` do
 * (src/crush/CrushWrapper.cc `insert_item`, `remove_item`, `adjust_item_weight`,
 * `add_simple_rule_at`, `populate_classes`; src/tools/crushtool.cc `--build`;
 * src/osd/OSDMap.cc `build_simple_crush_map`). Every function is pure: it returns a new
 * map and leaves its argument untouched. Edits of buckets, devices or shadow trees throw
 * AspenError E_UNSUPPORTED on a map that carries choose_args (weight sets).
 */
import { assert } from '../assert.ts';
import { AspenError } from '../errors.ts';
import { CrushDraft, bucketSum } from './draft.ts';
import {
  CRUSH_DEFAULT_TYPES,
  CRUSH_TUNABLES_OPTIMAL,
  crushWeightFromFloat,
  type CrushBucketAlg,
  type CrushMap,
  type CrushRule,
  type CrushRuleStep,
  type CrushRuleType,
  type CrushTunables,
  type CrushTypeDef,
} from './types.ts';

/**
 * Builder edits do not maintain Ceph's weight sets (Ceph adjusts every choose_args set on
 * each edit); Aspen never creates them, so an imported map that has them is read-only here.
 * @throws AspenError E_UNSUPPORTED when `map` has choose_args.
 */
function assertNoChooseArgs(map: CrushMap): void {
  if (map.chooseArgs && map.chooseArgs.length > 0) {
    throw new AspenError('E_UNSUPPORTED', 'editing a CRUSH map that has choose_args (weight sets) is not supported; remove them first');
  }
}

/** Where an item goes: type name → bucket name, e.g. `{ host: 'node1', root: 'default' }`. */
export type CrushLocation = Readonly<Record<string, string>>;

/** A map with no devices, buckets or rules. */
export function emptyCrushMap(
  types: readonly CrushTypeDef[] = CRUSH_DEFAULT_TYPES,
  tunables: CrushTunables = CRUSH_TUNABLES_OPTIMAL,
): CrushMap {
  return Object.freeze({
    tunables,
    devices: Object.freeze([]),
    types: Object.freeze([...types]),
    buckets: Object.freeze([]),
    rules: Object.freeze([]),
    classes: Object.freeze([]),
    maxDevices: 0,
  });
}

/**
 * The map a new cluster starts with (Ceph `OSDMap::build_simple_crush_map`): default types,
 * optimal tunables, an empty straw2 root `default`, and rule 0 `replicated_rule`
 * (`take default; chooseleaf firstn 0 type host; emit`).
 */
export function defaultCrushMap(): CrushMap {
  const d = new CrushDraft(emptyCrushMap());
  d.addBucket({ id: -1, name: 'default', typeId: d.typeId('root')!, alg: 'straw2', items: [] });
  const map = d.finish();
  return crushAddSimpleRule(map, { name: 'replicated_rule', root: 'default', failureDomain: 'host' });
}

/** One layer of {@link buildCrushMap}: `crushtool --build … <name> <alg> <size>`. */
export interface CrushBuildLayer {
  /** Type name of this layer's buckets (`host`, `rack`, `root`, …). */
  readonly name: string;
  readonly alg: CrushBucketAlg;
  /** Items per bucket; 0 puts everything of the layer below into one bucket. */
  readonly size: number;
}

/**
 * `crushtool --build --num-osds N <layer>...`: OSDs 0..N-1 of weight 1.0, types numbered
 * from 1 by layer (type 0 is `osd`), buckets filled in order and named `<layer><i>` (or
 * `<layer>` when size is 0), then rule 0 `replicated_rule` taking the last layer's first
 * bucket with failure domain type 1 (Ceph's `osd_crush_chooseleaf_type` default).
 * @throws AspenError EINVAL when there are no layers or numOsds is not positive.
 */
export function buildCrushMap(numOsds: number, layers: readonly CrushBuildLayer[]): CrushMap {
  if (!Number.isInteger(numOsds) || numOsds <= 0) throw new AspenError('EINVAL', `--num-osds must be positive, got ${numOsds}`);
  if (layers.length === 0) throw new AspenError('EINVAL', 'at least one layer is required');
  const types: CrushTypeDef[] = [{ id: 0, name: 'osd' }, ...layers.map((l, i) => ({ id: i + 1, name: l.name }))];
  const d = new CrushDraft(emptyCrushMap(types));
  let lower: { id: number; weight: number }[] = [];
  for (let i = 0; i < numOsds; i++) {
    d.devices.set(i, { id: i, name: `osd.${i}` });
    lower.push({ id: i, weight: 0x10000 });
  }
  d.maxDevices = numOsds;
  layers.forEach((layer, li) => {
    if (layer.size < 0 || !Number.isInteger(layer.size)) throw new AspenError('EINVAL', `bad layer size ${layer.size}`);
    const cur: { id: number; weight: number }[] = [];
    let pos = 0;
    for (let i = 0; pos < lower.length; i++) {
      const items: { id: number; weight: number }[] = [];
      for (let j = 0; (j < layer.size || layer.size === 0) && pos < lower.length; j++) items.push(lower[pos++]!);
      const id = d.freeBucketId();
      const name = layer.size ? `${layer.name}${i}` : layer.name;
      d.addBucket({ id, name, typeId: li + 1, alg: layer.alg, items });
      cur.push({ id, weight: bucketSum({ items }) });
    }
    lower = cur;
  });
  const last = layers[layers.length - 1]!;
  const root = last.size === 0 ? last.name : `${last.name}0`;
  return crushAddSimpleRule(d.finish(), { name: 'replicated_rule', root, failureDomain: types[1]!.name });
}

/** Options of {@link crushAddSimpleRule} (Ceph `add_simple_rule_at`). */
export interface CrushSimpleRuleOptions {
  readonly name: string;
  /** Name of the bucket to take. */
  readonly root: string;
  /** Type name of the failure domain; the device type (`osd`) means plain `choose`. */
  readonly failureDomain: string;
  readonly deviceClass?: string;
  readonly mode?: 'firstn' | 'indep';
  readonly ruleType?: CrushRuleType;
  /** Rule id; default: the lowest unused. */
  readonly id?: number;
}

/**
 * Adds a rule as `ceph osd crush rule create-simple|create-replicated|create-erasure` do:
 * indep rules start with `set_chooseleaf_tries 5` and `set_choose_tries 100`; min/max size
 * are 1/10 for firstn and 3/20 for indep.
 * @throws AspenError ENOENT for an unknown root, type or class; EEXIST for a taken name or id.
 */
export function crushAddSimpleRule(map: CrushMap, opts: CrushSimpleRuleOptions): CrushMap {
  const d = new CrushDraft(map);
  const mode = opts.mode ?? 'firstn';
  const root = d.itemId(opts.root);
  if (root === undefined) throw new AspenError('ENOENT', `root item ${opts.root} does not exist`);
  const typeId = d.typeId(opts.failureDomain);
  if (typeId === undefined) throw new AspenError('ENOENT', `type ${opts.failureDomain} does not exist`);
  if (opts.deviceClass !== undefined && !d.classes.includes(opts.deviceClass)) {
    throw new AspenError('ENOENT', `device class ${opts.deviceClass} does not exist`);
  }
  if ([...d.rules.values()].some((r) => r.name === opts.name)) throw new AspenError('EEXIST', `rule ${opts.name} exists`);
  let id = opts.id ?? 0;
  if (opts.id === undefined) while (d.rules.has(id)) id++;
  if (d.rules.has(id)) throw new AspenError('EEXIST', `rule id ${id} exists`);
  const steps: CrushRuleStep[] = [];
  if (mode === 'indep') steps.push({ op: 'set_chooseleaf_tries', value: 5 }, { op: 'set_choose_tries', value: 100 });
  steps.push(opts.deviceClass !== undefined ? { op: 'take', item: root, deviceClass: opts.deviceClass } : { op: 'take', item: root });
  if (typeId === 0) steps.push({ op: mode === 'firstn' ? 'choose_firstn' : 'choose_indep', num: 0, typeId: 0 });
  else steps.push({ op: mode === 'firstn' ? 'chooseleaf_firstn' : 'chooseleaf_indep', num: 0, typeId });
  steps.push({ op: 'emit' });
  const rule: CrushRule = {
    id,
    name: opts.name,
    type: opts.ruleType ?? (mode === 'firstn' ? 'replicated' : 'erasure'),
    minSize: mode === 'firstn' ? 1 : 3,
    maxSize: mode === 'firstn' ? 10 : 20,
    steps,
  };
  d.rules.set(id, rule);
  return d.finish();
}

/** Adds or replaces a rule verbatim. @throws AspenError EINVAL for a bad id. */
export function crushSetRule(map: CrushMap, rule: CrushRule): CrushMap {
  assertNoChooseArgs(map);
  if (!Number.isInteger(rule.id) || rule.id < 0 || rule.id > 255) throw new AspenError('EINVAL', `bad rule id ${rule.id}`);
  const d = new CrushDraft(map);
  d.rules.set(rule.id, rule);
  d.rebuildShadowTrees();
  return d.finish();
}

/**
 * Adds `osd.<osdId>` with CRUSH weight `weight` (a float, 1.0 = 0x10000) at `location`,
 * as `ceph osd crush add osd.N <weight> host=… root=…` (Ceph `insert_item`): walking the
 * types upward, missing buckets are created (straw2, lowest free id) until an existing one
 * is reached; the new item is appended; bucket weights are updated up to the root; shadow
 * trees are rebuilt.
 * @throws AspenError EEXIST when the OSD is already in the map; EINVAL for a bad weight,
 *   an empty location, or a location naming a bucket of another type; ENOENT for an
 *   unknown type name.
 */
export function crushAddOsd(map: CrushMap, osdId: number, weight: number, location: CrushLocation, deviceClass?: string): CrushMap {
  assertNoChooseArgs(map);
  if (!Number.isInteger(osdId) || osdId < 0) throw new AspenError('EINVAL', `bad OSD id ${osdId}`);
  if (!(weight >= 0) || !Number.isFinite(weight)) throw new AspenError('EINVAL', `bad CRUSH weight ${weight}`);
  const d = new CrushDraft(map);
  const name = `osd.${osdId}`;
  if (d.devices.has(osdId) || d.parentsOf(osdId).length > 0) throw new AspenError('EEXIST', `${name} already exists in the CRUSH map`);
  for (const key of Object.keys(location)) {
    if (d.typeId(key) === undefined) throw new AspenError('ENOENT', `unknown CRUSH type ${key} in location`);
  }
  if (Object.keys(location).length === 0) throw new AspenError('EINVAL', `empty CRUSH location for ${name}`);
  d.devices.set(osdId, deviceClass !== undefined ? { id: osdId, name, deviceClass } : { id: osdId, name });
  d.maxDevices = Math.max(d.maxDevices, osdId + 1);
  let cur = osdId;
  for (const t of [...d.types].sort((a, b) => a.id - b.id)) {
    if (t.id === 0) continue;
    const bucketName = location[t.name];
    if (bucketName === undefined) continue;
    const existing = d.itemId(bucketName);
    if (existing === undefined) {
      const id = d.freeBucketId();
      d.addBucket({ id, name: bucketName, typeId: t.id, alg: 'straw2', items: [{ id: cur, weight: 0 }] });
      cur = id;
      continue;
    }
    const b = d.buckets.get(existing);
    if (!b || b.typeId !== t.id) throw new AspenError('EINVAL', `${bucketName} is not a bucket of type ${t.name}`);
    b.items.push({ id: cur, weight: 0 });
    break;
  }
  // Sets the weight in the first bucket and propagates sums through any new buckets.
  d.setItemWeight(osdId, crushWeightFromFloat(weight));
  d.rebuildShadowTrees();
  return d.finish();
}

/**
 * Removes `osd.<osdId>` from every bucket and from the device list (Ceph `remove_item`);
 * empty buckets stay. @throws AspenError ENOENT when the OSD is not in the map.
 */
export function crushRemoveOsd(map: CrushMap, osdId: number): CrushMap {
  assertNoChooseArgs(map);
  const d = new CrushDraft(map);
  if (!d.devices.has(osdId) && d.parentsOf(osdId).length === 0) throw new AspenError('ENOENT', `osd.${osdId} is not in the CRUSH map`);
  for (const parent of d.parentsOf(osdId)) {
    if (parent.shadowOf) continue;
    parent.items = parent.items.filter((it) => it.id !== osdId);
    d.setItemWeight(parent.id, bucketSum(parent));
  }
  d.devices.delete(osdId);
  d.rebuildShadowTrees();
  return d.finish();
}

/**
 * Sets the CRUSH weight of `osd.<osdId>` (a float, as `ceph osd crush reweight`) in every
 * bucket holding it, updating sums up the tree. @throws AspenError ENOENT / EINVAL.
 */
export function crushReweightOsd(map: CrushMap, osdId: number, weight: number): CrushMap {
  assertNoChooseArgs(map);
  if (!(weight >= 0) || !Number.isFinite(weight)) throw new AspenError('EINVAL', `bad CRUSH weight ${weight}`);
  const d = new CrushDraft(map);
  if (d.parentsOf(osdId).filter((b) => !b.shadowOf).length === 0) throw new AspenError('ENOENT', `osd.${osdId} is not in any bucket`);
  d.setItemWeight(osdId, crushWeightFromFloat(weight));
  d.rebuildShadowTrees();
  return d.finish();
}

/**
 * Sets (or clears, with `undefined`) the device class of `osd.<osdId>`
 * (`ceph osd crush set-device-class`), rebuilding shadow trees. @throws AspenError ENOENT.
 */
export function crushSetDeviceClass(map: CrushMap, osdId: number, deviceClass: string | undefined): CrushMap {
  assertNoChooseArgs(map);
  const d = new CrushDraft(map);
  const dev = d.devices.get(osdId);
  if (!dev) throw new AspenError('ENOENT', `osd.${osdId} is not in the CRUSH map`);
  if (deviceClass !== undefined && !/^[A-Za-z0-9_-]+$/.test(deviceClass)) throw new AspenError('EINVAL', `bad class name ${deviceClass}`);
  d.devices.set(osdId, deviceClass === undefined ? { id: dev.id, name: dev.name } : { ...dev, deviceClass });
  if (deviceClass !== undefined && !d.classes.includes(deviceClass)) d.classes.push(deviceClass);
  d.rebuildShadowTrees();
  return d.finish();
}

/** Returns the map with its shadow trees rebuilt (Ceph `rebuild_roots_with_classes`). */
export function crushRebuildShadowTrees(map: CrushMap): CrushMap {
  assertNoChooseArgs(map);
  const d = new CrushDraft(map);
  d.rebuildShadowTrees();
  const out = d.finish();
  assert(out.buckets.length >= map.buckets.filter((b) => !b.shadowOf).length, 'rebuild lost buckets');
  return out;
}

/** Finds a bucket or device id by name (shadow buckets included, as `host~ssd`). */
export function crushItemId(map: CrushMap, name: string): number | undefined {
  return map.devices.find((d) => d.name === name)?.id ?? map.buckets.find((b) => b.name === name)?.id;
}

/** Name of an item id, or undefined. */
export function crushItemName(map: CrushMap, id: number): string | undefined {
  return id >= 0 ? map.devices.find((d) => d.id === id)?.name : map.buckets.find((b) => b.id === id)?.name;
}
