/**
 * Applying an OSDMap incremental (Ceph OSDMap::apply_incremental). Pure; mutates `map`
 * in place, which the caller owns.
 */
import { assert } from '../assert.ts';
import type { OsdMap, OsdMapIncremental, OsdInfo } from './types.ts';
import { WEIGHT_IN } from './types.ts';

/** A fresh OSD entry as `osd create` makes it: exists, down, in, not full. */
export function newOsdInfo(id: number, uuid: string): OsdInfo {
  return {
    id, uuid, exists: true, up: false, weight: WEIGHT_IN, addr: '', host: '',
    upFrom: 0, downAt: 0, downStampMs: 0, autoOutExempt: false, full: false, nearfull: false,
  };
}

/**
 * Applies `inc` to `map`, advancing it to `inc.epoch`.
 * @throws AssertionFailure if `inc.epoch !== map.epoch + 1` or the incremental names an
 *   OSD that does not exist — both are bugs in whoever built the incremental.
 */
export function applyIncremental(map: OsdMap, inc: OsdMapIncremental): void {
  assert(inc.epoch === map.epoch + 1, `incremental epoch ${inc.epoch} does not follow map epoch ${map.epoch}`);
  const epoch = inc.epoch;
  if (inc.newMaxOsd !== null) map.maxOsd = inc.newMaxOsd;
  if (inc.newPoolMax !== null) map.poolMax = inc.newPoolMax;
  for (const pool of inc.newPools) map.pools.set(pool.id, structuredClone(pool));
  for (const id of inc.oldPools) {
    map.pools.delete(id);
    for (const pgid of map.pgTemp.keys()) if (pgid.startsWith(`${id}.`)) map.pgTemp.delete(pgid);
  }
  for (const p of inc.newEcProfiles) map.ecProfiles.set(p.name, { ...p });
  for (const name of inc.oldEcProfiles) map.ecProfiles.delete(name);
  for (const { id, uuid } of inc.newOsds) {
    assert(id < map.maxOsd, `new osd.${id} beyond max_osd ${map.maxOsd}`);
    map.osds.set(id, newOsdInfo(id, uuid));
  }
  for (const id of inc.oldOsds) map.osds.delete(id);
  for (const { id, addr, host } of inc.newUp) {
    const osd = map.osds.get(id);
    assert(osd !== undefined, `boot of nonexistent osd.${id}`);
    osd.up = true;
    osd.addr = addr;
    osd.host = host;
    osd.upFrom = epoch;
    // An operator's `osd in` exempts the OSD from auto-out while it is down; once it is back
    // up that decision is spent, or a later failure would never be auto-outed.
    osd.autoOutExempt = false;
    // The full state was the previous incarnation's report; the new one beacons its own.
    osd.full = false;
    osd.nearfull = false;
  }
  for (const id of inc.newDown) {
    const osd = map.osds.get(id);
    assert(osd !== undefined, `down of nonexistent osd.${id}`);
    osd.up = false;
    osd.downAt = epoch;
    osd.downStampMs = inc.modifiedMs;
  }
  for (const { id, weight, autoOutExempt } of inc.newWeight) {
    const osd = map.osds.get(id);
    assert(osd !== undefined, `reweight of nonexistent osd.${id}`);
    assert(weight >= 0 && weight <= WEIGHT_IN, `reweight out of range: ${weight}`);
    osd.weight = weight;
    osd.autoOutExempt = autoOutExempt;
  }
  if (inc.crush !== null) map.crush = inc.crush; // CrushMap values are immutable: share, do not copy
  for (const { pgid, osds } of inc.newPgTemp) {
    if (osds.length === 0) map.pgTemp.delete(pgid);
    else map.pgTemp.set(pgid, [...osds]);
  }
  if (inc.newFlags !== null) map.flags = new Set(inc.newFlags);
  for (const { id, full, nearfull } of inc.newFullState) {
    const osd = map.osds.get(id);
    assert(osd !== undefined, `full state of nonexistent osd.${id}`);
    osd.full = full;
    osd.nearfull = nearfull;
  }
  map.epoch = epoch;
  map.modifiedMs = inc.modifiedMs;
  assert(map.epoch === inc.epoch, 'epoch advanced');
}

/** Whether OSD `id` is up in `map`. */
export function isOsdUp(map: OsdMap, id: number): boolean {
  return map.osds.get(id)?.up === true;
}

/** Whether OSD `id` is in (reweight > 0), as Ceph's `is_in`. */
export function isOsdIn(map: OsdMap, id: number): boolean {
  const osd = map.osds.get(id);
  return osd !== undefined && osd.exists && osd.weight > 0;
}
