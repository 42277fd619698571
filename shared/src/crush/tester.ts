/**
 * `crushtool --test`, as Ceph's CrushTester::test (src/crush/CrushTester.cc) prints it:
 * per rule and result size, the mappings (`CRUSH rule R x X [a,b,c]`), bad mappings,
 * result-size statistics and per-device utilization with the expected counts. Pure: it
 * returns the output lines; the CLI (src/bin/aspen-crushtool.ts) writes them.
 */
import { crushHash32_2 } from './hash.ts';
import { crushMapperFor } from './mapper.ts';
import { CRUSH_ITEM_NONE, CRUSH_MAX_RESULT, type CrushMap } from './types.ts';

/** Options of {@link crushTest}, after crushtool's flags. */
export interface CrushTestOptions {
  /** `--rule R` (min = max); default: every rule. */
  readonly minRule?: number;
  readonly maxRule?: number;
  /** `--num-rep N`; default: each rule's min_size..max_size. */
  readonly minRep?: number;
  readonly maxRep?: number;
  /** `--min-x`/`--max-x` (`--x X` sets both); default (or when only one is given) 0..1023. */
  readonly minX?: number;
  readonly maxX?: number;
  /** `--pool-id P`: map `crush_hash32_2(x, P)` instead of x. */
  readonly poolId?: number;
  /** `--weight dev w` overrides, 16.16 (crushtool: `(int)(w * 0x10000)` clamped to [0, 0x10000]). */
  readonly deviceWeights?: ReadonlyMap<number, number>;
  readonly showMappings?: boolean;
  readonly showBadMappings?: boolean;
  readonly showStatistics?: boolean;
  readonly showUtilization?: boolean;
  readonly showUtilizationAll?: boolean;
}

/** crushtool's `--weight` conversion: `(int)(f * 0x10000)` in float, clamped to [0, 0x10000]. */
export function crushTesterWeight(f: number): number {
  return Math.min(0x10000, Math.max(0, Math.trunc(Math.fround(Math.fround(f) * 0x10000))));
}

/** C++ `ostream << float` with the default precision (6 significant digits, %g style). */
export function formatCppFloat(v: number): string {
  v = Math.fround(v);
  if (v === 0) return '0';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : v < 0 ? '-inf' : 'nan';
  const exp = Math.floor(Math.log10(Math.abs(Number(v.toPrecision(6)))));
  if (exp < -4 || exp >= 6) {
    const [mant, e] = v.toExponential(5).split('e') as [string, string];
    const m = mant.includes('.') ? mant.replace(/\.?0+$/, '') : mant;
    const en = Number(e);
    return `${m}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  }
  const s = v.toPrecision(6);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** CrushTester::get_maximum_affected_by_rule, quirks included (set_* steps count as type 0). */
function maximumAffectedByRule(map: CrushMap, ruleId: number): number {
  const rule = map.rules.find((r) => r.id === ruleId)!;
  const affected: number[] = [];
  const replications = new Map<number, number>();
  for (const s of rule.steps) {
    if (s.op === 'take' || s.op === 'emit' || s.op === 'noop') continue;
    const [arg1, arg2] = 'num' in s ? [s.num, s.typeId] : [s.value, 0];
    affected.push(arg2);
    replications.set(arg2, arg1);
  }
  const maxOfType = new Map<number, number>();
  for (const t of affected) {
    let n = maxOfType.get(t) ?? 0;
    for (const b of map.buckets) if (b.typeId === t) n++;
    maxOfType.set(t, n);
  }
  for (const t of affected) {
    const rep = replications.get(t)!;
    if (rep > 0 && rep < maxOfType.get(t)!) maxOfType.set(t, rep);
  }
  const maxBuckets = map.buckets.reduce((m, b) => Math.max(m, -b.id), 0);
  let maxAffected = Math.max(maxBuckets, map.maxDevices);
  for (const t of affected) {
    const n = maxOfType.get(t)!;
    if (n > 0 && n < maxAffected) maxAffected = n;
  }
  return maxAffected;
}

/**
 * Runs crushtool's test loop and returns its output lines (without newlines).
 * Rules are visited from minRule to maxRule; for each, result sizes minRep..maxRep.
 */
export function crushTest(map: CrushMap, opts: CrushTestOptions): string[] {
  const lines: string[] = [];
  const maxRules = map.rules.reduce((m, r) => Math.max(m, r.id + 1), 0);
  // As CrushTester: a range applies only when both of its ends are given.
  const ruleRange = opts.minRule !== undefined && opts.maxRule !== undefined;
  const minRule = ruleRange ? opts.minRule! : 0;
  const maxRule = ruleRange ? opts.maxRule! : maxRules - 1;
  const xRange = opts.minX !== undefined && opts.maxX !== undefined;
  const minX = xRange ? opts.minX! : 0;
  const maxX = xRange ? opts.maxX! : 1023;
  const present = new Set<number>();
  for (const b of map.buckets) for (const it of b.items) if (it.id >= 0) present.add(it.id);
  const weight = new Uint32Array(map.maxDevices);
  for (let o = 0; o < map.maxDevices; o++) weight[o] = opts.deviceWeights?.get(o) ?? (present.has(o) ? 0x10000 : 0);
  if (opts.showUtilizationAll) lines.push(`devices weights (hex): [${Array.from(weight, (w) => w.toString(16)).join(',')}]`);
  const statistics = opts.showStatistics || opts.showUtilization || opts.showUtilizationAll;
  const mapper = crushMapperFor(map);
  const out = new Int32Array(CRUSH_MAX_RESULT);
  for (let r = minRule; r < maxRules && r <= maxRule; r++) {
    const rule = map.rules.find((x) => x.id === r);
    if (!rule) {
      if (statistics) lines.push(`rule ${r} dne`);
      continue;
    }
    const repRange = opts.minRep !== undefined && opts.maxRep !== undefined;
    const minr = repRange ? opts.minRep! : rule.minSize;
    const maxr = repRange ? opts.maxRep! : rule.maxSize;
    if (statistics) lines.push(`rule ${r} (${rule.name}), x = ${minX}..${maxX}, numrep = ${minr}..${maxr}`);
    for (let nr = minr; nr <= maxr; nr++) {
      const per = new Array<number>(map.maxDevices).fill(0);
      const sizes = new Map<number, number>();
      let totalWeight = 0;
      for (const w of weight) totalWeight += w;
      if (totalWeight === 0 || nr < 1) continue;
      const numObjects = maxX - minX + 1;
      const expectedObjects = Math.fround(Math.min(nr, maximumAffectedByRule(map, r)) * numObjects);
      for (let x = minX; x <= maxX; x++) {
        const realX = opts.poolId !== undefined && opts.poolId !== -1 ? crushHash32_2(x, opts.poolId) : x;
        const n = mapper.doRule(r, realX, out, Math.min(nr, CRUSH_MAX_RESULT), weight);
        const res = Array.from(out.subarray(0, n));
        if (opts.showMappings) lines.push(`CRUSH rule ${r} x ${x} [${res.join(',')}]`);
        let hasNone = false;
        for (const o of res) {
          if (o === CRUSH_ITEM_NONE) hasNone = true;
          else if (o >= 0 && o < per.length) per[o]!++;
        }
        sizes.set(n, (sizes.get(n) ?? 0) + 1);
        if (opts.showBadMappings && (n !== nr || hasNone)) {
          lines.push(`bad mapping rule ${r} x ${x} num_rep ${nr} result [${res.join(',')}]`);
        }
      }
      if (statistics) {
        for (const [size, count] of [...sizes].sort((a, b) => a[0] - b[0])) {
          lines.push(`rule ${r} (${rule.name}) num_rep ${nr} result size == ${size}:\t${count}/${numObjects}`);
        }
        for (let i = 0; i < per.length; i++) {
          const expected = Math.fround(Math.fround(Math.fround(weight[i]!) / Math.fround(totalWeight)) * expectedObjects);
          if ((opts.showUtilization && expected > 0 && per[i]! > 0) || (!opts.showUtilization && opts.showUtilizationAll)) {
            lines.push(`  device ${i}:\t\t stored : ${per[i]}\t expected : ${formatCppFloat(expected)}`);
          }
        }
      }
    }
  }
  return lines;
}
