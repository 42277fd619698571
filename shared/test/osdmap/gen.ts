/**
 * fast-check generators and fixed samples for OSDMap/MonMap/incremental codec tests.
 * The CRUSH field is built with the real builder (shared/src/crush/builder.ts) so the
 * generated maps are the shape the monitors produce.
 */
import fc from 'fast-check';
import { crushAddOsd, crushAddSimpleRule, defaultCrushMap } from '../../src/crush/builder.ts';
import type { CrushMap } from '../../src/crush/types.ts';
import type { ErasureCodeProfile, MonMap, OsdInfo, OsdMap, OsdMapIncremental, Pool, SnapInterval } from '../../src/osdmap/types.ts';
import { WEIGHT_IN } from '../../src/osdmap/types.ts';

const u32 = fc.nat({ max: 0xffffffff });
const ms = fc.maxSafeNat();
const text = fc.string({ maxLength: 12, unit: 'grapheme' });
const smallId = fc.nat({ max: 200 });
const flagName = fc.constantFrom('noout', 'noin', 'noup', 'nodown', 'pause', 'full', 'norecover');

/**
 * A well-formed removed-snaps set and a snap_seq at or above its last id: runs built from
 * (gap >= 1, length >= 1) pairs so they are sorted, disjoint and never adjacent.
 */
export const arbSnaps: fc.Arbitrary<{ snapSeq: number; removedSnaps: SnapInterval[] }> = fc.record({
  runs: fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 1000 })), { maxLength: 4 }),
  extra: fc.nat({ max: 1000 }),
}).map(({ runs, extra }) => {
  const removedSnaps: SnapInterval[] = [];
  let next = 0; // one past the previous run
  for (const [gap, length] of runs) {
    removedSnaps.push([next + gap, length]);
    next += gap + length;
  }
  return { snapSeq: Math.max(0, next - 1) + extra, removedSnaps };
});

export const arbPool = (id?: number): fc.Arbitrary<Pool> => fc.tuple(fc.record({
  id: id === undefined ? u32 : fc.constant(id), name: text, type: fc.constantFrom('replicated', 'erasure'),
  size: fc.integer({ min: 1, max: 16 }), minSize: fc.integer({ min: 1, max: 16 }),
  pgNum: fc.integer({ min: 1, max: 65536 }), pgpNum: fc.integer({ min: 1, max: 65536 }),
  crushRule: fc.integer({ min: -1, max: 255 }), erasureCodeProfile: text, applications: fc.array(text, { maxLength: 3 }),
  hashPsPool: fc.boolean(), createdEpoch: u32, lastChangeEpoch: u32,
}), arbSnaps).map(([p, snaps]) => ({ ...p, ...snaps }));

export const arbEcProfile = (name?: string): fc.Arbitrary<ErasureCodeProfile> => fc.record({
  name: name === undefined ? text : fc.constant(name), k: fc.integer({ min: 1, max: 32 }), m: fc.integer({ min: 1, max: 16 }),
  stripeUnitBytes: u32, crushFailureDomain: text, plugin: text, technique: text,
});

const arbOsdInfo = (id: number): fc.Arbitrary<OsdInfo> => fc.record({
  id: fc.constant(id), uuid: fc.uuid(), exists: fc.boolean(), up: fc.boolean(), weight: fc.integer({ min: 0, max: WEIGHT_IN }),
  addr: text, host: text, upFrom: u32, downAt: u32, downStampMs: ms, autoOutExempt: fc.boolean(),
  full: fc.boolean(), nearfull: fc.boolean(),
});

/** A CRUSH map grown by the builder: OSDs under hosts (and optionally racks) plus an EC rule. */
export const arbCrush: fc.Arbitrary<CrushMap> = fc.record({
  osds: fc.uniqueArray(fc.record({ id: smallId, host: fc.integer({ min: 0, max: 5 }), rack: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }), weight: fc.integer({ min: 0, max: 800 }) }), { selector: (o) => o.id, maxLength: 12 }),
  ecRule: fc.boolean(),
}).map(({ osds, ecRule }) => {
  let m = defaultCrushMap();
  for (const o of osds) {
    // A host stays in the rack it was first placed in (a bucket has one parent).
    const rack = o.rack === undefined ? undefined : `rack${o.host % 3}`;
    m = crushAddOsd(m, o.id, o.weight / 100, { host: `host${o.host}`, ...(rack === undefined ? {} : { rack }), root: 'default' });
  }
  return ecRule ? crushAddSimpleRule(m, { name: 'ec', root: 'default', failureDomain: 'host', mode: 'indep' }) : m;
});

const arbPgTemp = fc.array(fc.tuple(fc.tuple(smallId, fc.nat({ max: 0xffff })).map(([p, s]) => `${p}.${s.toString(16)}`), fc.array(fc.integer({ min: -1, max: 1000 }), { maxLength: 5 })), { maxLength: 6 })
  .map((pairs) => new Map(pairs));

/** A random full OSDMap (fields within their encoded ranges). */
export const arbOsdMap: fc.Arbitrary<OsdMap> = fc.record({
  fsid: fc.uuid(), epoch: u32, createdMs: ms, modifiedMs: ms, maxOsd: u32,
  osdIds: fc.uniqueArray(smallId, { maxLength: 10 }), poolIds: fc.uniqueArray(u32, { maxLength: 6 }),
  poolMax: u32, ecNames: fc.uniqueArray(text, { maxLength: 4 }), crush: arbCrush, pgTemp: arbPgTemp,
  flags: fc.uniqueArray(flagName, { maxLength: 4 }),
}).chain((r) => fc.record({
  osds: fc.tuple(...r.osdIds.map(arbOsdInfo)), pools: fc.tuple(...r.poolIds.map((id) => arbPool(id))),
  ecs: fc.tuple(...r.ecNames.map((n) => arbEcProfile(n))),
}).map(({ osds, pools, ecs }): OsdMap => ({
  fsid: r.fsid, epoch: r.epoch, createdMs: r.createdMs, modifiedMs: r.modifiedMs, maxOsd: r.maxOsd,
  osds: new Map(osds.map((o) => [o.id, o])), pools: new Map(pools.map((p) => [p.id, p])), poolMax: r.poolMax,
  ecProfiles: new Map(ecs.map((p) => [p.name, p])), crush: r.crush, pgTemp: r.pgTemp, flags: new Set(r.flags),
})));

/** A random incremental (not necessarily applicable to any map: codec tests only). */
export const arbIncremental: fc.Arbitrary<OsdMapIncremental> = fc.record({
  epoch: u32, modifiedMs: ms, newMaxOsd: fc.option(u32, { nil: null }), newPools: fc.array(arbPool(), { maxLength: 3 }),
  oldPools: fc.array(u32, { maxLength: 3 }), newPoolMax: fc.option(u32, { nil: null }), newEcProfiles: fc.array(arbEcProfile(), { maxLength: 2 }),
  oldEcProfiles: fc.array(text, { maxLength: 2 }), newOsds: fc.array(fc.record({ id: u32, uuid: fc.uuid() }), { maxLength: 3 }),
  oldOsds: fc.array(u32, { maxLength: 3 }), newUp: fc.array(fc.record({ id: u32, addr: text, host: text }), { maxLength: 3 }),
  newDown: fc.array(u32, { maxLength: 3 }), newWeight: fc.array(fc.record({ id: u32, weight: fc.integer({ min: 0, max: WEIGHT_IN }), autoOutExempt: fc.boolean() }), { maxLength: 3 }),
  crush: fc.option(arbCrush, { nil: null }),
  newPgTemp: fc.array(fc.record({ pgid: text, osds: fc.array(fc.integer({ min: -0x80000000, max: 0x7fffffff }), { maxLength: 4 }) }), { maxLength: 3 }),
  newFlags: fc.option(fc.array(flagName, { maxLength: 3 }), { nil: null }),
  newFullState: fc.array(fc.record({ id: u32, full: fc.boolean(), nearfull: fc.boolean() }), { maxLength: 3 }),
});

export const arbMonMap: fc.Arbitrary<MonMap> = fc.record({
  fsid: fc.uuid(), epoch: u32, modifiedMs: ms, mons: fc.array(fc.record({ name: text, addr: text }), { maxLength: 7 }),
});

// ---------------------------------------------------------------------------------------
// Fixed samples whose v1 encodings are saved in shared/testdata/osdmap/.

const FSID = '5f0c2d7e-8a1b-4c3d-9e6f-0a1b2c3d4e5f';

export function sampleMonMap(): MonMap {
  return { fsid: FSID, epoch: 3, modifiedMs: 1_700_000_000_123, mons: [{ name: 'a', addr: '10.0.0.1:6789' }, { name: 'b', addr: '10.0.0.2:6789' }, { name: 'c', addr: '[::1]:6789' }] };
}

export function sampleCrush(): CrushMap {
  let m = defaultCrushMap();
  m = crushAddOsd(m, 0, 1, { host: 'node1', root: 'default' });
  m = crushAddOsd(m, 1, 1, { host: 'node2', root: 'default' });
  m = crushAddOsd(m, 2, 0.5, { host: 'node3', root: 'default' });
  return crushAddSimpleRule(m, { name: 'ecpool', root: 'default', failureDomain: 'host', mode: 'indep', ruleType: 'erasure' });
}

export function sampleOsdMap(): OsdMap {
  const osd = (id: number, up: boolean, weight: number): OsdInfo => ({
    id, uuid: `00000000-0000-4000-8000-00000000000${id}`, exists: true, up, weight, addr: up ? `10.0.1.${id}:6800` : '', host: `node${id + 1}`,
    upFrom: 4 + id, downAt: up ? 0 : 9, downStampMs: up ? 0 : 1_700_000_100_000, autoOutExempt: id === 2, full: false, nearfull: false,
  });
  return {
    fsid: FSID, epoch: 12, createdMs: 1_700_000_000_000, modifiedMs: 1_700_000_200_000, maxOsd: 3,
    osds: new Map([[0, osd(0, true, WEIGHT_IN)], [1, osd(1, true, 0x8000)], [2, osd(2, false, 0)]]),
    pools: new Map([
      [1, { id: 1, name: 'rbd', type: 'replicated', size: 3, minSize: 2, pgNum: 32, pgpNum: 32, crushRule: 0, erasureCodeProfile: '', applications: ['rbd'], hashPsPool: true, createdEpoch: 5, lastChangeEpoch: 7, snapSeq: 0, removedSnaps: [] }],
      [2, { id: 2, name: 'ecpool', type: 'erasure', size: 3, minSize: 3, pgNum: 8, pgpNum: 8, crushRule: 1, erasureCodeProfile: 'default', applications: [], hashPsPool: true, createdEpoch: 8, lastChangeEpoch: 8, snapSeq: 0, removedSnaps: [] }],
    ]),
    poolMax: 2,
    ecProfiles: new Map([['default', { name: 'default', k: 2, m: 1, stripeUnitBytes: 4096, crushFailureDomain: 'host', plugin: 'jerasure', technique: 'reed_sol_van' }]]),
    crush: sampleCrush(), pgTemp: new Map([['1.1f', [1, 0]]]), flags: new Set(['noout']),
  };
}

export function sampleIncremental(): OsdMapIncremental {
  return {
    epoch: 13, modifiedMs: 1_700_000_300_000, newMaxOsd: 4,
    newPools: [{ id: 3, name: 'cephfs_data', type: 'replicated', size: 2, minSize: 1, pgNum: 16, pgpNum: 16, crushRule: 0, erasureCodeProfile: '', applications: ['cephfs'], hashPsPool: true, createdEpoch: 13, lastChangeEpoch: 13, snapSeq: 0, removedSnaps: [] }],
    oldPools: [2], newPoolMax: 3,
    newEcProfiles: [{ name: 'k4m2', k: 4, m: 2, stripeUnitBytes: 8192, crushFailureDomain: 'osd', plugin: 'jerasure', technique: 'reed_sol_van' }],
    oldEcProfiles: ['old'], newOsds: [{ id: 3, uuid: '00000000-0000-4000-8000-000000000003' }], oldOsds: [],
    newUp: [{ id: 2, addr: '10.0.1.2:6800', host: 'node3' }], newDown: [1], newWeight: [{ id: 2, weight: WEIGHT_IN, autoOutExempt: true }],
    crush: crushAddOsd(sampleCrush(), 3, 2, { host: 'node4', root: 'default' }), newPgTemp: [{ pgid: '1.1f', osds: [] }], newFlags: [],
    newFullState: [],
  };
}

// v2 samples (pool snap_seq/removed_snaps, OSD full/nearfull, incremental newFullState);
// their encodings are saved as *-v2.bin. The v1 samples above carry v2's defaults, so the
// saved v1 bytes still decode to them.

export function sampleOsdMapV2(): OsdMap {
  const m = sampleOsdMap();
  Object.assign(m.pools.get(1)!, { snapSeq: 9, removedSnaps: [[1, 3], [6, 2]] });
  Object.assign(m.osds.get(0)!, { full: true });
  Object.assign(m.osds.get(1)!, { nearfull: true });
  return m;
}

export function sampleIncrementalV2(): OsdMapIncremental {
  const inc = sampleIncremental();
  Object.assign(inc.newPools[0]!, { snapSeq: 4, removedSnaps: [[2, 1]] });
  inc.newFullState = [{ id: 0, full: true, nearfull: false }, { id: 1, full: false, nearfull: true }];
  return inc;
}
