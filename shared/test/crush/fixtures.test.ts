/**
 * Exactness against Ceph: every mapping `crushtool --test --show-mappings` printed for the
 * committed fixture maps (shadow trees, weights, rules, tunables; see testdata/crush/regen.sh)
 * must be reproduced, and the text maps must round-trip byte for byte.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crushDefaultWeights, crushMapperFor, formatCrushText, parseCrushText } from '../../src/crush/index.ts';

const dir = new URL('../../testdata/crush/', import.meta.url);
const FIXTURES = ['racks', 'flat', 'algs', 'mixed', 'classes', 'legacy', 'straw0', 'straw1', 'chooseargs'] as const;

/** crushtool's `--weight dev w`: `(int)(w * 0x10000)` in float, clamped to [0, 0x10000]. */
function testerWeight(f: number): number {
  return Math.min(0x10000, Math.max(0, Math.trunc(Math.fround(Math.fround(f) * 0x10000))));
}

describe('CRUSH mappings are exactly those of Ceph crushtool', () => {
  for (const name of FIXTURES) {
    it(`${name}: text map round-trips and every crushtool mapping matches`, () => {
      const text = readFileSync(new URL(`${name}.txt`, dir), 'utf8');
      const map = parseCrushText(text);
      expect(formatCrushText(map)).toBe(text);
      const mapper = crushMapperFor(map);
      const lines = gunzipSync(readFileSync(new URL(`${name}.mappings.gz`, dir))).toString('utf8').split('\n');
      let weights = crushDefaultWeights(map);
      let numRep = 0;
      const out = new Int32Array(16);
      let checked = 0;
      const mismatches: string[] = [];
      for (const line of lines) {
        if (!line) continue;
        const head = /^# weights: (.*) num-rep: (\d+)$/.exec(line);
        if (head) {
          weights = crushDefaultWeights(map);
          for (const pair of head[1]!.trim().split(/\s+/).filter(Boolean)) {
            const [dev, w] = pair.split('=');
            weights[Number(dev)] = testerWeight(Number(w));
          }
          numRep = Number(head[2]);
          continue;
        }
        const m = /^CRUSH rule (\d+) x (\d+) \[([-\d,]*)\]$/.exec(line);
        if (!m) throw new Error(`unparsed fixture line ${line}`);
        const n = mapper.doRule(Number(m[1]), Number(m[2]), out, numRep, weights);
        const got = Array.from(out.subarray(0, n)).join(',');
        if (got !== m[3] && mismatches.length < 10) mismatches.push(`${line} (rep ${numRep}) got [${got}]`);
        checked++;
      }
      expect(mismatches).toEqual([]);
      expect(checked).toBeGreaterThan(10_000);
    });
  }
});
