import { crushAddOsd, crushAddSimpleRule, defaultCrushMap, type CrushMap } from '../../src/crush/index.ts';


/** The map whose v1 bytes are committed in testdata/crush/crushmap-v1.bin. */
export function sampleCrushMap(): CrushMap {
  let m = defaultCrushMap();
  m = crushAddOsd(m, 0, 1, { host: 'a', rack: 'r1', root: 'default' }, 'ssd');
  m = crushAddOsd(m, 1, 0.5, { host: 'a', rack: 'r1', root: 'default' }, 'hdd');
  m = crushAddOsd(m, 2, 2, { host: 'b', root: 'default' }, 'hdd');
  return crushAddSimpleRule(m, { name: 'ec', root: 'default', failureDomain: 'host', deviceClass: 'hdd', mode: 'indep' });
}


/** The map whose v2 bytes are committed in testdata/crush/crushmap-v2.bin: v1's plus choose_args. */
export function sampleCrushMapV2(): CrushMap {
  const m = sampleCrushMap();
  const root = m.buckets.find((b) => b.name === 'default')!;
  return Object.freeze({
    ...m,
    chooseArgs: [
      { index: -1, args: [{ bucketId: root.id, weightSet: [root.items.map((it) => it.weight), root.items.map(() => 0x8000)] }] },
      { index: 3, args: [{ bucketId: root.id, ids: root.items.map((it) => it.id - 100) }] },
    ],
  });
}
