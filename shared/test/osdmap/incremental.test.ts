import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AssertionFailure } from '../../src/assert.ts';
import { crushAddOsd } from '../../src/crush/builder.ts';
import { applyIncremental, isOsdIn, isOsdUp } from '../../src/osdmap/incremental.ts';
import { incrementalFromBytes, incrementalToBytes, osdMapFromBytes, osdMapToBytes } from '../../src/osdmap/codec.ts';
import { WEIGHT_IN, emptyIncremental, type OsdMap, type OsdMapIncremental } from '../../src/osdmap/types.ts';
import { arbOsdMap, sampleIncremental, sampleOsdMap } from './gen.ts';

const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** One step a monitor could take, turned into an incremental valid against `map`. */
type Op =
  | { kind: 'newOsd' } | { kind: 'up'; pick: number } | { kind: 'down'; pick: number } | { kind: 'weight'; pick: number; w: number }
  | { kind: 'rmOsd'; pick: number } | { kind: 'newPool'; pgNum: number } | { kind: 'rmPool'; pick: number }
  | { kind: 'pgTemp'; pick: number; seed: number; clear: boolean } | { kind: 'flags'; flags: string[] } | { kind: 'ec'; k: number }
  | { kind: 'full'; pick: number; full: boolean; nearfull: boolean };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.constant({ kind: 'newOsd' as const }),
  fc.record({ kind: fc.constant('up' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('down' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('weight' as const), pick: fc.nat(), w: fc.integer({ min: 0, max: WEIGHT_IN }) }),
  fc.record({ kind: fc.constant('rmOsd' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('newPool' as const), pgNum: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('rmPool' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('pgTemp' as const), pick: fc.nat(), seed: fc.nat({ max: 63 }), clear: fc.boolean() }),
  fc.record({ kind: fc.constant('flags' as const), flags: fc.uniqueArray(fc.constantFrom('noout', 'nodown', 'noup'), { maxLength: 3 }) }),
  fc.record({ kind: fc.constant('ec' as const), k: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('full' as const), pick: fc.nat(), full: fc.boolean(), nearfull: fc.boolean() }),
);

function buildInc(map: OsdMap, op: Op, stampMs: number): OsdMapIncremental {
  const inc = emptyIncremental(map.epoch + 1, stampMs);
  const osds = [...map.osds.keys()];
  const pools = [...map.pools.keys()];
  const pickOsd = (p: number): number | undefined => (osds.length === 0 ? undefined : osds[p % osds.length]);
  switch (op.kind) {
    case 'newOsd': {
      const id = map.maxOsd;
      inc.newOsds.push({ id, uuid: uuid(id) });
      inc.newMaxOsd = id + 1;
      inc.crush = crushAddOsd(map.crush, id, 1, { host: `h${id % 3}`, root: 'default' });
      break;
    }
    case 'up': { const id = pickOsd(op.pick); if (id !== undefined) inc.newUp.push({ id, addr: `10.0.0.${id}:6800`, host: `h${id % 3}` }); break; }
    case 'down': { const id = pickOsd(op.pick); if (id !== undefined) inc.newDown.push(id); break; }
    case 'weight': { const id = pickOsd(op.pick); if (id !== undefined) inc.newWeight.push({ id, weight: op.w, autoOutExempt: op.w === WEIGHT_IN }); break; }
    case 'rmOsd': { const id = pickOsd(op.pick); if (id !== undefined) inc.oldOsds.push(id); break; }
    case 'newPool': {
      const id = map.poolMax + 1;
      inc.newPools.push({ id, name: `p${id}`, type: 'replicated', size: 3, minSize: 2, pgNum: op.pgNum, pgpNum: op.pgNum, crushRule: 0, erasureCodeProfile: '', applications: [], hashPsPool: true, createdEpoch: inc.epoch, lastChangeEpoch: inc.epoch, snapSeq: 0, removedSnaps: [] });
      inc.newPoolMax = id;
      break;
    }
    case 'rmPool': { if (pools.length > 0) inc.oldPools.push(pools[op.pick % pools.length]!); break; }
    case 'pgTemp': {
      if (pools.length === 0) break;
      const pgid = `${pools[op.pick % pools.length]!}.${op.seed.toString(16)}`;
      inc.newPgTemp.push({ pgid, osds: op.clear ? [] : osds.slice(0, 2) });
      break;
    }
    case 'flags': inc.newFlags = op.flags; break;
    case 'full': { const id = pickOsd(op.pick); if (id !== undefined) inc.newFullState.push({ id, full: op.full, nearfull: op.nearfull }); break; }
    case 'ec': inc.newEcProfiles.push({ name: `k${op.k}`, k: op.k, m: 1, stripeUnitBytes: 4096, crushFailureDomain: 'host', plugin: 'jerasure', technique: 'reed_sol_van' }); break;
  }
  return inc;
}

const freshMap = (): OsdMap => {
  const m = sampleOsdMap();
  m.epoch = 1;
  return m;
};

describe('applyIncremental', () => {
  it('refuses any incremental whose epoch is not map.epoch + 1 and leaves the map untouched (property)', () => {
    fc.assert(fc.property(arbOsdMap.filter((m) => m.epoch < 0xfffffff0), fc.integer({ min: -5, max: 5 }).filter((d) => d !== 1), (map, d) => {
      const before = osdMapToBytes(map);
      const inc = emptyIncremental(Math.max(0, map.epoch + d), 1);
      inc.newFlags = ['pause'];
      expect(() => applyIncremental(map, inc)).toThrow(AssertionFailure);
      expect(osdMapToBytes(map)).toEqual(before);
    }), { numRuns: 100 });
  });

  it('advances the epoch by exactly one per incremental, and applying decode(encode(inc)) gives byte-identical maps (property)', () => {
    fc.assert(fc.property(fc.array(arbOp, { maxLength: 40 }), (ops) => {
      const direct = freshMap();
      const viaBytes = osdMapFromBytes(osdMapToBytes(freshMap()));
      ops.forEach((op, i) => {
        const inc = buildInc(direct, op, 1000 + i);
        applyIncremental(direct, inc);
        applyIncremental(viaBytes, incrementalFromBytes(incrementalToBytes(inc)));
        expect(direct.epoch).toBe(2 + i);
      });
      expect(osdMapToBytes(viaBytes)).toEqual(osdMapToBytes(direct));
      // A full map round-trips at every point as well.
      expect(osdMapToBytes(osdMapFromBytes(osdMapToBytes(direct)))).toEqual(osdMapToBytes(direct));
    }), { numRuns: 100 });
  });

  it('boot, down and reweight set the fields subscribers rely on', () => {
    const map = freshMap();
    const inc = emptyIncremental(2, 5000);
    inc.newDown.push(0);
    inc.newUp.push({ id: 2, addr: '10.9.9.9:1', host: 'node3' });
    inc.newWeight.push({ id: 1, weight: 0, autoOutExempt: false });
    applyIncremental(map, inc);
    expect(map.osds.get(0)).toMatchObject({ up: false, downAt: 2, downStampMs: 5000 });
    expect(map.osds.get(2)).toMatchObject({ up: true, addr: '10.9.9.9:1', upFrom: 2 });
    expect([isOsdUp(map, 0), isOsdUp(map, 2), isOsdIn(map, 1), isOsdIn(map, 0)]).toEqual([false, true, false, true]);
    expect(map.modifiedMs).toBe(5000);
  });

  it('a full-state change sets full/nearfull; a later boot of that OSD clears them (its new incarnation reports afresh)', () => {
    const map = freshMap();
    const inc = emptyIncremental(2, 1);
    inc.newFullState.push({ id: 0, full: true, nearfull: false }, { id: 1, full: false, nearfull: true });
    applyIncremental(map, inc);
    expect(map.osds.get(0)).toMatchObject({ full: true, nearfull: false });
    expect(map.osds.get(1)).toMatchObject({ full: false, nearfull: true });
    const boot = emptyIncremental(3, 2);
    boot.newUp.push({ id: 0, addr: '10.9.9.9:1', host: 'node1' });
    applyIncremental(map, boot);
    expect(map.osds.get(0)).toMatchObject({ up: true, full: false, nearfull: false });
    expect(map.osds.get(1)).toMatchObject({ nearfull: true });
  });

  it('deleting pool 1 drops only its pg_temp entries (not those of pool 11)', () => {
    const map = freshMap();
    map.pgTemp = new Map([['1.0', [0]], ['1.1f', [1]], ['11.0', [2]]]);
    const inc = emptyIncremental(2, 1);
    inc.oldPools.push(1);
    applyIncremental(map, inc);
    expect([...map.pgTemp.keys()]).toEqual(['11.0']);
    expect(map.pools.has(1)).toBe(false);
  });

  it('does not alias the incremental: later edits of the incremental do not change the map', () => {
    const map = freshMap();
    map.epoch = 12;
    const inc = sampleIncremental();
    inc.oldEcProfiles = [];
    applyIncremental(map, inc);
    const before = osdMapToBytes(map);
    inc.newPools[0]!.size = 1;
    inc.newPools[0]!.applications.push('x');
    inc.newEcProfiles[0]!.k = 9;
    inc.newPgTemp.push({ pgid: '3.0', osds: [1] });
    expect(osdMapToBytes(map)).toEqual(before);
  });

  it('refuses (asserts) an incremental naming an OSD that does not exist', () => {
    for (const edit of [
      (i: OsdMapIncremental) => i.newUp.push({ id: 99, addr: 'x:1', host: 'h' }),
      (i: OsdMapIncremental) => i.newDown.push(99),
      (i: OsdMapIncremental) => i.newWeight.push({ id: 99, weight: 0, autoOutExempt: false }),
      (i: OsdMapIncremental) => i.newOsds.push({ id: 99, uuid: uuid(99) }), // beyond max_osd without newMaxOsd
    ]) {
      const map = freshMap();
      const inc = emptyIncremental(2, 1);
      edit(inc);
      expect(() => applyIncremental(map, inc)).toThrow(AssertionFailure);
    }
  });
});
