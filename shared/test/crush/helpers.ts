import { crushAddOsd, crushAddSimpleRule, defaultCrushMap, type CrushMap } from '../../src/crush/index.ts';

/** The map whose v1 bytes are committed in testdata/crush/crushmap-v1.bin. */
export function sampleCrushMap(): CrushMap {
  let m = defaultCrushMap();
  m = crushAddOsd(m, 0, 1, { host: 'a', rack: 'r1', root: 'default' }, 'ssd');
  m = crushAddOsd(m, 1, 0.5, { host: 'a', rack: 'r1', root: 'default' }, 'hdd');
  m = crushAddOsd(m, 2, 2, { host: 'b', root: 'default' }, 'hdd');
  return crushAddSimpleRule(m, { name: 'ec', root: 'default', failureDomain: 'host', deviceClass: 'hdd', mode: 'indep' });
}

