/**
 * A mutable working copy of a {@link CrushMap}, used by the builder and the text compiler
 * to apply several edits and then freeze the result. Follows the bookkeeping of Ceph's
 * `CrushWrapper` (src/crush/CrushWrapper.cc): bucket slots, `class_bucket`, shadow trees.
 */
import { assert } from '../assert.ts';
import { AspenError } from '../errors.ts';
import type {
  CrushChooseArgMap,
  CrushBucket,
  CrushBucketAlg,
  CrushDevice,
  CrushMap,
  CrushRule,
  CrushTunables,
  CrushTypeDef,
} from './types.ts';

/** A bucket under construction. */
export interface DraftBucket {
  id: number;
  name: string;
  typeId: number;
  alg: CrushBucketAlg;
  items: { id: number; weight: number }[];
  classIds: Map<string, number>;
  shadowOf?: { id: number; deviceClass: string };
}

/** Mutable working copy of a CRUSH map. */
export class CrushDraft {
  tunables: CrushTunables;
  devices = new Map<number, CrushDevice>();
  types: CrushTypeDef[];
  buckets = new Map<number, DraftBucket>();
  rules = new Map<number, CrushRule>();
  classes: string[];
  maxDevices: number;
  chooseArgs: CrushChooseArgMap[] | undefined;

  /** A working copy of `map` (which is left untouched). */
  constructor(map: CrushMap) {
    this.tunables = map.tunables;
    for (const d of map.devices) this.devices.set(d.id, d);
    this.types = [...map.types];
    for (const b of map.buckets) {
      const db: DraftBucket = {
        id: b.id,
        name: b.name,
        typeId: b.typeId,
        alg: b.alg,
        items: b.items.map((it) => ({ id: it.id, weight: it.weight })),
        classIds: new Map(Object.entries(b.classIds ?? {})),
      };
      if (b.shadowOf) db.shadowOf = { ...b.shadowOf };
      this.buckets.set(b.id, db);
    }
    for (const r of map.rules) this.rules.set(r.id, r);
    this.classes = [...map.classes];
    this.maxDevices = map.maxDevices;
    this.chooseArgs = map.chooseArgs ? [...map.chooseArgs] : undefined;
  }

  /**
   * Freezes the draft into an immutable map with sorted arrays.
   * @throws AssertionFailure when a bucket refers to a missing item or has a bad id/weight.
   */
  finish(): CrushMap {
    for (const b of this.buckets.values()) {
      assert(b.id < 0 && this.types.some((t) => t.id === b.typeId), `bucket ${b.name}: bad id ${b.id} or type ${b.typeId}`);
      for (const it of b.items) {
        assert(it.id < 0 ? this.buckets.has(it.id) : this.devices.has(it.id), `bucket ${b.name}: missing item ${it.id}`);
        assert(Number.isInteger(it.weight) && it.weight >= 0 && it.weight <= 0xffffffff, `bucket ${b.name}: bad weight ${it.weight}`);
      }
    }
    const buckets: CrushBucket[] = [...this.buckets.values()]
      .sort((a, b) => b.id - a.id)
      .map((b) => {
        const out: CrushBucket = {
          id: b.id,
          name: b.name,
          typeId: b.typeId,
          alg: b.alg,
          hash: 'rjenkins1',
          items: Object.freeze(b.items.map((it) => Object.freeze({ id: it.id, weight: it.weight }))),
          ...(b.classIds.size > 0 ? { classIds: Object.freeze(Object.fromEntries(b.classIds)) } : {}),
          ...(b.shadowOf ? { shadowOf: Object.freeze({ ...b.shadowOf }) } : {}),
        };
        return Object.freeze(out);
      });
    let maxDevices = this.maxDevices;
    for (const id of this.devices.keys()) maxDevices = Math.max(maxDevices, id + 1);
    const map: CrushMap = {
      tunables: Object.freeze({ ...this.tunables }),
      devices: Object.freeze([...this.devices.values()].sort((a, b) => a.id - b.id).map((d) => Object.freeze(d))),
      types: Object.freeze([...this.types].sort((a, b) => a.id - b.id)),
      buckets: Object.freeze(buckets),
      rules: Object.freeze([...this.rules.values()].sort((a, b) => a.id - b.id)),
      classes: Object.freeze([...this.classes]),
      maxDevices,
      ...(this.chooseArgs && this.chooseArgs.length > 0
        ? { chooseArgs: Object.freeze([...this.chooseArgs].sort((a, b) => a.index - b.index)) }
        : {}),
    };
    return Object.freeze(map);
  }

  /** Type id by name, or undefined. */
  typeId(name: string): number | undefined {
    return this.types.find((t) => t.name === name)?.id;
  }

  /** Item id by name (device or non-shadow bucket). */
  itemId(name: string): number | undefined {
    for (const d of this.devices.values()) if (d.name === name) return d.id;
    for (const b of this.buckets.values()) if (b.name === name) return b.id;
    return undefined;
  }

  /** Ceph `crush_add_bucket` with id 0: the lowest free slot, skipping `avoid`. */
  freeBucketId(avoid: ReadonlySet<number> = new Set()): number {
    let id = -1;
    while (this.buckets.has(id) || avoid.has(id)) id--;
    return id;
  }

  /** Adds a bucket with a given (negative) id. @throws AspenError EEXIST when the id is taken. */
  addBucket(b: Omit<DraftBucket, 'classIds'> & { classIds?: Map<string, number> }): DraftBucket {
    assert(b.id < 0, 'bucket ids are negative');
    if (this.buckets.has(b.id)) throw new AspenError('EEXIST', `bucket id ${b.id} already exists`);
    const db: DraftBucket = { ...b, classIds: b.classIds ?? new Map() };
    this.buckets.set(b.id, db);
    return db;
  }

  /** Buckets (real or shadow) that contain `item`. */
  parentsOf(item: number): DraftBucket[] {
    const out: DraftBucket[] = [];
    for (const b of this.buckets.values()) if (b.items.some((it) => it.id === item)) out.push(b);
    return out;
  }

  /**
   * Ceph `adjust_item_weight`: sets `item`'s weight in every real bucket holding it and
   * propagates the changed bucket sums up to the roots.
   */
  setItemWeight(item: number, weight16: number): void {
    assert(Number.isInteger(weight16) && weight16 >= 0 && weight16 <= 0xffffffff, `bad weight ${weight16}`);
    for (const parent of this.parentsOf(item)) {
      if (parent.shadowOf) continue;
      for (const it of parent.items) if (it.id === item) it.weight = weight16;
      this.setItemWeight(parent.id, bucketSum(parent));
    }
  }

  /**
   * Ceph `rebuild_roots_with_classes`: drops classes no device or rule uses (unless
   * `keepDeadClasses`, as the text compiler's `populate_classes` does), removes all shadow
   * buckets, then `populate_classes` re-creates them, reusing the previous shadow id of
   * each (bucket, class) and otherwise the lowest id free of real and previous shadows.
   */
  rebuildShadowTrees(keepDeadClasses = false): void {
    const used = new Set<string>();
    for (const d of this.devices.values()) if (d.deviceClass !== undefined) used.add(d.deviceClass);
    for (const r of this.rules.values()) for (const s of r.steps) if (s.op === 'take' && s.deviceClass) used.add(s.deviceClass);
    if (!keepDeadClasses) this.classes = this.classes.filter((c) => used.has(c));
    for (const c of used) if (!this.classes.includes(c)) this.classes.push(c);
    const old = new Map<number, Map<string, number>>();
    const usedIds = new Set<number>();
    for (const b of [...this.buckets.values()]) {
      if (b.shadowOf) {
        this.buckets.delete(b.id);
        continue;
      }
      old.set(b.id, b.classIds);
      for (const id of b.classIds.values()) usedIds.add(id);
      b.classIds = new Map();
    }
    if (this.classes.length === 0) return;
    const roots = this.nonShadowRoots().sort((a, b) => a - b);
    for (const root of roots) for (const c of this.classes) this.cloneForClass(root, c, old, usedIds);
  }

  /** Real buckets that no real bucket contains (Ceph `find_nonshadow_roots`). */
  nonShadowRoots(): number[] {
    const children = new Set<number>();
    for (const b of this.buckets.values()) if (!b.shadowOf) for (const it of b.items) children.add(it.id);
    return [...this.buckets.values()].filter((b) => !b.shadowOf && !children.has(b.id)).map((b) => b.id);
  }

  /** Ceph `device_class_clone`. Returns the shadow bucket id. */
  private cloneForClass(origId: number, cls: string, old: Map<number, Map<string, number>>, usedIds: Set<number>): number {
    const orig = this.buckets.get(origId);
    assert(orig !== undefined && !orig.shadowOf, `no bucket ${origId}`);
    const existing = orig.classIds.get(cls);
    if (existing !== undefined) return existing;
    const items: { id: number; weight: number }[] = [];
    for (const it of orig.items) {
      if (it.id >= 0) {
        if (this.devices.get(it.id)?.deviceClass === cls) items.push({ id: it.id, weight: it.weight });
      } else {
        const child = this.cloneForClass(it.id, cls, old, usedIds);
        items.push({ id: child, weight: bucketSum(this.buckets.get(child)!) });
      }
    }
    const id = old.get(origId)?.get(cls) ?? this.freeBucketId(usedIds);
    this.addBucket({
      id,
      name: `${orig.name}~${cls}`,
      typeId: orig.typeId,
      alg: orig.alg,
      items,
      shadowOf: { id: origId, deviceClass: cls },
    });
    orig.classIds.set(cls, id);
    return id;
  }
}

/** Sum of a draft bucket's item weights. */
export function bucketSum(b: { items: readonly { weight: number }[] }): number {
  let s = 0;
  for (const it of b.items) s += it.weight;
  return s;
}
