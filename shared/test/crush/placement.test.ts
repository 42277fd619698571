/**
 * PG placement against Ceph's osdmaptool (testdata/crush/*.pgs.txt, objects.txt; see
 * regen.sh) plus the parts osdmaptool cannot set up (down OSDs, erasure holes, pg_temp,
 * primary_temp, primary affinity), checked against OSDMap.cc's rules.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CRUSH_ITEM_NONE, crushReweightOsd, parseCrushText, type CrushMap } from '../../src/crush/index.ts';
import {
  cephStableMod,
  cephStrHashRjenkins,
  objectToPg,
  pgNumMask,
  pgToUpActingOsds,
  forEachPgMapping,
  type PlacementOsds,
  type PlacementPool,
} from '../../src/osdmap/placement.ts';
import { formatPgId } from '../../src/ids.ts';

const dir = new URL('../../testdata/crush/', import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, dir), 'utf8');

function allUpIn(n: number, out: number[] = []): PlacementOsds {
  const weight = new Uint32Array(n).fill(0x10000);
  for (const o of out) weight[o] = 0;
  return { maxOsd: n, exists: new Uint8Array(n).fill(1), up: new Uint8Array(n).fill(1), weight };
}

/** osdmaptool --createsimple N --with-default-pool: pool 1 'rbd', size 3, rule 0, pg_num = N << pg_bits. */
function simplePool(osds: number, pgBits: number, pgpBits: number): PlacementPool {
  return { id: 1, type: 'replicated', size: 3, pgNum: osds << pgBits, pgpNum: osds << pgpBits, crushRule: 0 };
}

/** osdmaptool --mark-up-in also gives every OSD whose CRUSH weight is 0 a weight of 1.0. */
function markUpInCrush(map: CrushMap): CrushMap {
  let out = map;
  for (const d of map.devices) {
    const w = map.buckets.find((b) => !b.shadowOf && b.items.some((it) => it.id === d.id))?.items.find((it) => it.id === d.id)?.weight;
    if (w === 0) out = crushReweightOsd(out, d.id, 1);
  }
  return out;
}

const setOf = (s: string): number[] => (s === '' ? [] : s.split(',').map(Number));

describe('PG placement matches Ceph osdmaptool', () => {
  for (const name of ['racks', 'mixed', 'classes', 'legacy', 'chooseargs']) {
    it(`${name}: raw, up, acting and primaries of every PG of pool 1`, () => {
      const text = read(`${name}.pgs.txt`);
      const head = /^# osds (\d+) pg_bits (\d+) pgp_bits (\d+) out (\d+)$/m.exec(text)!;
      const [n, pgBits, pgpBits, out] = head.slice(1).map(Number) as [number, number, number, number];
      const crush = markUpInCrush(parseCrushText(read(`${name}.txt`)));
      const pool = simplePool(n, pgBits, pgpBits);
      const osds = allUpIn(n, [out]);
      let checked = 0;
      for (const m of text.matchAll(/^1\.([0-9a-f]+) raw \(\[([\d,]*)\], p(-?\d+)\) up \(\[([\d,]*)\], p(-?\d+)\) acting \(\[([\d,]*)\], p(-?\d+)\)$/gm)) {
        const seed = parseInt(m[1]!, 16);
        const got = pgToUpActingOsds(crush, pool, osds, seed);
        expect({ pg: m[1], raw: got.raw, up: got.up, upPrimary: got.upPrimary, acting: got.acting, actingPrimary: got.actingPrimary }).toEqual({
          pg: m[1], raw: setOf(m[2]!), up: setOf(m[4]!), upPrimary: Number(m[5]), acting: setOf(m[6]!), actingPrimary: Number(m[7]),
        });
        checked++;
      }
      expect(checked).toBe(pool.pgNum);
      // The whole-pool fast path agrees.
      forEachPgMapping(crush, pool, osds, (seed, up, primary) => {
        const ref = pgToUpActingOsds(crush, pool, osds, seed);
        expect([Array.from(up), primary]).toEqual([ref.up, ref.upPrimary]);
      });
    });
  }

  it('objects: name -> PG -> acting set, as osdmaptool --test-map-object', () => {
    const crush = parseCrushText(read('racks.txt'));
    const pool = simplePool(36, 4, 4);
    const osds = allUpIn(36, [3]);
    const lines = [...read('objects.txt').matchAll(/^ object '(.*)' -> (\d+\.[0-9a-f]+) -> \[([\d,]*)\]$/gm)];
    expect(lines.length).toBeGreaterThan(15);
    for (const [, obj, pgid, acting] of lines) {
      const pg = objectToPg(pool, obj!);
      expect(formatPgId(pg)).toBe(pgid);
      expect(pgToUpActingOsds(crush, pool, osds, pg.seed).acting).toEqual(setOf(acting!));
    }
  });
});

describe('placement rules of OSDMap.cc', () => {
  const crush = parseCrushText(read('racks.txt'));
  const ec: PlacementPool = { id: 2, type: 'erasure', size: 6, pgNum: 64, pgpNum: 64, crushRule: 1 };
  const rep: PlacementPool = { id: 3, type: 'replicated', size: 3, pgNum: 64, pgpNum: 64, crushRule: 0 };

  it('ceph_stable_mod and pg_num masks', () => {
    expect(pgNumMask(1)).toBe(0);
    expect(pgNumMask(576)).toBe(1023);
    expect(pgNumMask(1024)).toBe(1023);
    expect(cephStableMod(1000, 576, 1023)).toBe(1000 & 511);
    expect(cephStableMod(500, 576, 1023)).toBe(500);
    expect(cephStrHashRjenkins('')).toBe(cephStrHashRjenkins(new Uint8Array(0)));
  });

  it('a down OSD leaves a hole in an erasure up set and is dropped from a replicated one', () => {
    const osds = allUpIn(36);
    const before = pgToUpActingOsds(crush, ec, osds, 5);
    const victim = before.up[2]!;
    const up = new Uint8Array(36).fill(1);
    up[victim] = 0;
    const after = pgToUpActingOsds(crush, ec, { ...osds, up }, 5);
    expect(after.raw).toEqual(before.raw);
    expect(after.up).toEqual(before.up.map((o) => (o === victim ? CRUSH_ITEM_NONE : o)));
    const r0 = pgToUpActingOsds(crush, rep, osds, 7);
    const up2 = new Uint8Array(36).fill(1);
    up2[r0.up[0]!] = 0;
    const r1 = pgToUpActingOsds(crush, rep, { ...osds, up: up2 }, 7);
    expect(r1.up).toEqual(r0.up.slice(1));
    expect(r1.upPrimary).toBe(r0.up[1]);
  });

  it('pg_temp overrides acting (dropping down members), primary_temp overrides the primary', () => {
    const up = new Uint8Array(36).fill(1);
    up[9] = 0;
    const osds = { ...allUpIn(36), up };
    const m = pgToUpActingOsds(crush, rep, osds, 7, { pgTemp: (pg) => (pg.seed === 7 ? [9, 4, 20] : undefined) });
    expect(m.acting).toEqual([4, 20]);
    expect(m.actingPrimary).toBe(4);
    const e = pgToUpActingOsds(crush, ec, osds, 7, { pgTemp: () => [9, 4, 20, 1, 2, 3], primaryTemp: () => 20 });
    expect(e.acting).toEqual([CRUSH_ITEM_NONE, 4, 20, 1, 2, 3]);
    expect(e.actingPrimary).toBe(20);
    const p = pgToUpActingOsds(crush, rep, osds, 7, { primaryTemp: () => 33 });
    expect(p.acting).toEqual(p.up);
    expect(p.actingPrimary).toBe(33);
  });

  it('primary affinity 0 moves primaryship away; replicated pools move the primary to the front', () => {
    const osds = allUpIn(36);
    const base = pgToUpActingOsds(crush, rep, osds, 11);
    const aff = new Uint32Array(36).fill(0x10000);
    aff[base.up[0]!] = 0;
    const m = pgToUpActingOsds(crush, rep, { ...osds, primaryAffinity: aff }, 11);
    expect(m.upPrimary).toBe(base.up[1]);
    expect(m.up).toEqual([base.up[1], base.up[0], base.up[2]]);
    const e0 = pgToUpActingOsds(crush, ec, osds, 11);
    aff.fill(0x10000);
    aff[e0.up[0]!] = 0;
    const e = pgToUpActingOsds(crush, ec, { ...osds, primaryAffinity: aff }, 11);
    expect(e.up).toEqual(e0.up);
    expect(e.upPrimary).toBe(e0.up[1]);
  });

  it('pg_upmap replaces the raw set unless a target is out; pg_upmap_items swap single members', () => {
    const osds = allUpIn(36, [30]);
    const base = pgToUpActingOsds(crush, rep, osds, 7);
    const m = pgToUpActingOsds(crush, rep, osds, 7, { pgUpmap: (pg) => (pg.seed === 7 ? [1, 2, 3] : undefined) });
    expect([m.raw, m.up, m.upPrimary]).toEqual([[1, 2, 3], [1, 2, 3], 1]);
    const ignored = pgToUpActingOsds(crush, rep, osds, 7, { pgUpmap: () => [1, 30, 3] });
    expect(ignored.raw).toEqual(base.raw);
    const [a, b] = [base.raw[0]!, base.raw[1]!];
    const spare = [0, 1, 2, 4, 5].find((o) => !base.raw.includes(o))!;
    const items = pgToUpActingOsds(crush, rep, osds, 7, { pgUpmapItems: () => [[a, spare], [b, base.raw[2]!], [99, 98]] });
    // a -> spare applies; b -> raw[2] is skipped (target already present); unknown from is a no-op.
    expect(items.raw).toEqual([spare, b, base.raw[2]]);
    const toOut = pgToUpActingOsds(crush, rep, osds, 7, { pgUpmapItems: () => [[a, 30]] });
    expect(toOut.raw).toEqual(base.raw);
  });
});
