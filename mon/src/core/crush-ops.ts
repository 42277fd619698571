/**
 * The CRUSH edits the monitors make when applying commands, over shared/src/crush's
 * immutable builder (each returns a new map, or null when nothing changes).
 */
import { AspenError } from '@aspen/shared';
import { crushBucketWeight, crushWeightFromFloat, crushWeightToFloat, type CrushMap } from '@aspen/shared/crush/types.ts';
import { crushAddOsd, crushAddSimpleRule, crushItemId, crushRemoveOsd, crushReweightOsd, defaultCrushMap } from '@aspen/shared/crush/builder.ts';

/** The CRUSH map of a new cluster: root `default`, rule 0 `replicated_rule` over hosts. */
export function initialCrushMap(): CrushMap {
  return defaultCrushMap();
}

/**
 * Places `osd.<id>` under `host=<host> root=default` with CRUSH weight `weight` unless it
 * is already in the map (Ceph osd_crush_update_on_start with an unchanged location).
 */
export function ensureOsdLocated(crush: CrushMap, id: number, host: string, weight: number): CrushMap | null {
  if (crush.devices.some((d) => d.id === id)) return null;
  checkWeightFits(crush, id, weight);
  return crushAddOsd(crush, id, weight, { host, root: 'default' });
}

/** `osd crush reweight`. @throws AspenError ENOENT when the OSD is not in CRUSH; EINVAL (see checkWeightFits). */
export function reweightOsd(crush: CrushMap, id: number, weight: number): CrushMap {
  checkWeightFits(crush, id, weight);
  return crushReweightOsd(crush, id, weight);
}

/**
 * Refuses a weight that would not fit the 16.16 u32 weight of the OSD's buckets (the builder
 * asserts on it, and an assertion while applying a committed command stops every monitor).
 * Conservative: checks the heaviest bucket, which is at least any of the OSD's ancestors.
 * @throws AspenError EINVAL
 */
function checkWeightFits(crush: CrushMap, id: number, weight: number): void {
  const w16 = crushWeightFromFloat(weight);
  let old = 0;
  let heaviest = 0;
  for (const b of crush.buckets) {
    if (b.shadowOf) continue;
    heaviest = Math.max(heaviest, crushBucketWeight(b));
    for (const it of b.items) if (it.id === id) old = Math.max(old, it.weight);
  }
  if (w16 > CRUSH_WEIGHT_U32_MAX || heaviest - old + w16 > CRUSH_WEIGHT_U32_MAX) {
    throw new AspenError('EINVAL', `CRUSH weight ${weight} for osd.${id} would overflow a bucket weight (at most ${crushWeightToFloat(CRUSH_WEIGHT_U32_MAX)} per bucket)`);
  }
}

/** Largest 16.16 CRUSH weight of an item or bucket (u32). */
const CRUSH_WEIGHT_U32_MAX = 0xffffffff;

/** Removes an OSD from CRUSH; null when it was not there. */
export function removeOsd(crush: CrushMap, id: number): CrushMap | null {
  if (!crush.devices.some((d) => d.id === id) && !crush.buckets.some((b) => b.items.some((it) => it.id === id))) return null;
  return crushRemoveOsd(crush, id);
}

/** The id of rule `replicated_rule`, or the lowest replicated rule. */
export function replicatedRuleId(crush: CrushMap): number {
  const byName = crush.rules.find((r) => r.name === 'replicated_rule');
  return byName?.id ?? crush.rules.find((r) => r.type === 'replicated')?.id ?? 0;
}

/** The type of rule `id` (`replicated`/`erasure`), undefined when absent. */
export function ruleType(crush: CrushMap, id: number): 'replicated' | 'erasure' | undefined {
  return crush.rules.find((r) => r.id === id)?.type;
}

export function ruleExists(crush: CrushMap, id: number): boolean {
  return crush.rules.some((r) => r.id === id);
}

/** Rule id by name or numeric text; null when absent. */
export function ruleIdByName(crush: CrushMap, nameOrId: string): number | null {
  const r = crush.rules.find((x) => x.name === nameOrId || String(x.id) === nameOrId);
  return r?.id ?? null;
}

export function ruleName(crush: CrushMap, id: number): string | undefined {
  return crush.rules.find((r) => r.id === id)?.name;
}

/**
 * The erasure rule for a new EC pool, named after the pool as Ceph does
 * (`chooseleaf indep 0 type <failure domain>` under `default`), created if missing.
 */
export function ensureErasureRule(crush: CrushMap, poolName: string, failureDomain: string): { ruleId: number; crush: CrushMap | null } {
  const existing = crush.rules.find((r) => r.name === poolName);
  if (existing !== undefined) return { ruleId: existing.id, crush: null };
  if (crushItemId(crush, 'default') === undefined) return { ruleId: -1, crush: null };
  const next = crushAddSimpleRule(crush, { name: poolName, root: 'default', failureDomain, mode: 'indep', ruleType: 'erasure' });
  return { ruleId: next.rules.find((r) => r.name === poolName)!.id, crush: next };
}
