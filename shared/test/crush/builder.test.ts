import { describe, expect, it } from 'vitest';
import {
  buildCrushMap,
  crushAddOsd,
  crushAddSimpleRule,
  crushItemId,
  crushRemoveOsd,
  crushReweightOsd,
  crushSetDeviceClass,
  defaultCrushMap,
  crushBucketWeight,
  type CrushMap,
} from '../../src/crush/index.ts';
import { AspenError } from '../../src/errors.ts';
import { readFileSync } from 'node:fs';
import { formatCrushText } from '../../src/crush/index.ts';

const fixture = (name: string): string => readFileSync(new URL(`../../testdata/crush/${name}`, import.meta.url), 'utf8');

function bucket(map: CrushMap, name: string) {
  const b = map.buckets.find((x) => x.name === name);
  if (!b) throw new Error(`no bucket ${name}`);
  return b;
}

describe('crush builder', () => {
  it('defaultCrushMap has root default and replicated_rule', () => {
    const m = defaultCrushMap();
    expect(m.buckets.map((b) => b.name)).toEqual(['default']);
    expect(m.rules[0]).toMatchObject({ id: 0, name: 'replicated_rule', type: 'replicated', minSize: 1, maxSize: 10 });
    expect(m.rules[0]!.steps).toEqual([{ op: 'take', item: -1 }, { op: 'chooseleaf_firstn', num: 0, typeId: 1 }, { op: 'emit' }]);
  });

  it('crushAddOsd creates hosts, sums weights up the tree, and is pure', () => {
    const m0 = defaultCrushMap();
    let m = crushAddOsd(m0, 0, 1, { host: 'a', root: 'default' });
    m = crushAddOsd(m, 1, 0.5, { host: 'a', root: 'default' });
    m = crushAddOsd(m, 2, 2, { host: 'b', rack: 'r1', root: 'default' });
    expect(m0.buckets).toHaveLength(1);
    expect(bucket(m, 'a').items).toEqual([{ id: 0, weight: 0x10000 }, { id: 1, weight: 0x8000 }]);
    expect(bucket(m, 'a').id).toBe(-2);
    expect(bucket(m, 'b').id).toBe(-3);
    expect(bucket(m, 'r1').id).toBe(-4);
    expect(bucket(m, 'default').items).toEqual([{ id: -2, weight: 0x18000 }, { id: -4, weight: 0x20000 }]);
    expect(m.maxDevices).toBe(3);
    expect(() => crushAddOsd(m, 1, 1, { host: 'a', root: 'default' })).toThrow(AspenError);
    expect(() => crushAddOsd(m, 5, 1, { host: 'default' })).toThrow(/not a bucket of type host/);

    const r = crushReweightOsd(m, 2, 3);
    expect(crushBucketWeight(bucket(r, 'default'))).toBe(0x18000 + 0x30000);
    const x = crushRemoveOsd(r, 0);
    expect(bucket(x, 'a').items).toEqual([{ id: 1, weight: 0x8000 }]);
    expect(crushBucketWeight(bucket(x, 'default'))).toBe(0x8000 + 0x30000);
    expect(x.devices.map((d) => d.id)).toEqual([1, 2]);
    expect(() => crushRemoveOsd(x, 0)).toThrow(/not in the CRUSH map/);
  });

  it('device classes build shadow trees as Ceph populate_classes does', () => {
    let m = defaultCrushMap();
    m = crushAddOsd(m, 0, 1, { host: 'a', root: 'default' }, 'ssd');
    m = crushAddOsd(m, 1, 1, { host: 'a', root: 'default' }, 'hdd');
    m = crushAddOsd(m, 2, 1, { host: 'b', root: 'default' }, 'hdd');
    expect(m.classes).toEqual(['ssd', 'hdd']);
    const ssdRoot = bucket(m, 'default~ssd');
    expect(bucket(m, 'default').classIds).toEqual({ ssd: ssdRoot.id, hdd: bucket(m, 'default~hdd').id });
    expect(bucket(m, 'a~ssd').items).toEqual([{ id: 0, weight: 0x10000 }]);
    expect(bucket(m, 'b~ssd').items).toEqual([]);
    // Shadow ids survive rebuilds.
    const m2 = crushSetDeviceClass(m, 2, 'ssd');
    expect(bucket(m2, 'default~ssd').id).toBe(ssdRoot.id);
    expect(bucket(m2, 'b~ssd').items).toEqual([{ id: 2, weight: 0x10000 }]);
    const withRule = crushAddSimpleRule(m2, { name: 'fast', root: 'default', failureDomain: 'host', deviceClass: 'ssd' });
    expect(withRule.rules[1]!.steps[0]).toEqual({ op: 'take', item: -1, deviceClass: 'ssd' });
  });

  it('buildCrushMap matches crushtool --build naming and ids', () => {
    const m = buildCrushMap(36, [
      { name: 'host', alg: 'straw2', size: 3 },
      { name: 'rack', alg: 'straw2', size: 4 },
      { name: 'root', alg: 'straw2', size: 0 },
    ]);
    expect(crushItemId(m, 'host0')).toBe(-1);
    expect(crushItemId(m, 'host11')).toBe(-12);
    expect(crushItemId(m, 'rack2')).toBe(-15);
    expect(crushItemId(m, 'root')).toBe(-16);
    expect(bucket(m, 'root').items).toEqual([-13, -14, -15].map((id) => ({ id, weight: 12 * 0x10000 })));
  });

  it('buildCrushMap and add/reweight/remove produce the same text maps as crushtool', () => {
    const m = buildCrushMap(36, [
      { name: 'host', alg: 'straw2', size: 3 },
      { name: 'rack', alg: 'straw2', size: 4 },
      { name: 'root', alg: 'straw2', size: 0 },
    ]);
    expect(formatCrushText(m)).toBe(fixture('build-36.txt'));
    // crushtool --add-item 36 1.5 osd.36 --loc host host12 --loc rack rack3 --loc root root
    expect(formatCrushText(crushAddOsd(m, 36, 1.5, { host: 'host12', rack: 'rack3', root: 'root' }))).toBe(fixture('build-36-add.txt'));
    // crushtool --reweight-item osd.7 0.25
    expect(formatCrushText(crushReweightOsd(m, 7, 0.25))).toBe(fixture('build-36-reweight.txt'));
    // crushtool --remove-item osd.4
    expect(formatCrushText(crushRemoveOsd(m, 4))).toBe(fixture('build-36-remove.txt'));
    // crushtool --set-subtree-class host0 ssd --set-subtree-class rack1 hdd --reclassify:
    // the same classes and the same shadow bucket ids.
    let c = m;
    for (const o of [0, 1, 2]) c = crushSetDeviceClass(c, o, 'ssd');
    for (let o = 12; o < 24; o++) c = crushSetDeviceClass(c, o, 'hdd');
    expect(formatCrushText(c)).toBe(fixture('build-36-classes.txt'));
  });
});
