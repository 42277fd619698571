/**
 * Fuzzing the text map parser: any input either parses (and then round-trips and maps
 * without crashing) or fails with AspenError EINVAL `line N: …` (E_UNSUPPORTED for
 * choose_args) — never an error of another kind.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CrushMapper, crushDefaultWeights, formatCrushText, parseCrushText } from '../../src/crush/index.ts';
import { AspenError } from '../../src/errors.ts';

const dir = new URL('../../testdata/crush/', import.meta.url);
const SOURCES = ['racks.txt', 'classes.txt', 'legacy.txt', 'algs.txt', 'chooseargs.txt', 'straw0.txt'].map((f) => readFileSync(new URL(f, dir), 'utf8'));
const JUNK = ['{', '}', '[', ']', '#', 'id', 'item', 'weight', 'pos', 'class', 'step', 'take', 'emit', 'rule', 'type', 'device', 'host',
  'alg', 'straw2', 'uniform', 'tree', 'straw', 'chooseleaf', 'firstn', 'indep', '-1', '0', '99999999999', '-0', '1e40', '0.5', 'nan',
  'osd.0', 'root', 'default', 'tunable', 'choose_args', 'bucket_id', 'weight_set', 'ids', '18446744073709551615', 'ruleset', 'min_size', '~', 'a~b', '\t', '\n', 'toString', '__proto__', 'constructor'];

/** Checks the parser's contract on `text`. */
function check(text: string): void {
  let map;
  try {
    map = parseCrushText(text);
  } catch (e) {
    expect(e).toBeInstanceOf(AspenError);
    const err = e as AspenError;
    expect(['EINVAL', 'E_UNSUPPORTED']).toContain(err.code);
    expect(err.message).toMatch(/^(EINVAL|E_UNSUPPORTED): line \d+: /);
    const line = err.details.line as number;
    expect(line).toBeGreaterThanOrEqual(0);
    expect(line).toBeLessThanOrEqual(text.split('\n').length);
    return;
  }
  // Writing is a fixed point after one round (class ids follow the order classes first
  // appear in the text, as in Ceph, so the first rewrite may reorder `id … class …` lines).
  const again = formatCrushText(parseCrushText(formatCrushText(map)));
  expect(formatCrushText(parseCrushText(again))).toBe(again);
  let mapper: CrusherOrNull = null;
  try {
    mapper = new CrushMapper(map);
  } catch (e) {
    expect(e).toBeInstanceOf(AspenError);
    expect((e as AspenError).code).toBe('EINVAL');
  }
  if (mapper) {
    const out = new Int32Array(8);
    const w = crushDefaultWeights(map);
    const other = new CrushMapper(parseCrushText(again));
    const out2 = new Int32Array(8);
    for (const r of map.rules) {
      for (let x = 0; x < 5; x++) {
        const n = mapper.doRule(r.id, x, out, 1 + (x % 8), w);
        const n2 = other.doRule(r.id, x, out2, 1 + (x % 8), w);
        expect(Array.from(out2.subarray(0, n2))).toEqual(Array.from(out.subarray(0, n)));
      }
    }
  }
}
type CrusherOrNull = CrushMapper | null;

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), junk: fc.constantFrom(...JUNK) }),
  fc.record({ kind: fc.constant('insertRandom' as const), at: fc.nat(), junk: fc.string({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swapLines' as const), a: fc.nat(), b: fc.nat() }),
);

function mutate(text: string, muts: readonly fc.Arbitrary<unknown>[] | readonly { kind: string; [k: string]: unknown }[]): string {
  let t = text;
  for (const m of muts as { kind: string; at?: number; len?: number; junk?: string; a?: number; b?: number }[]) {
    const at = (m.at ?? 0) % (t.length + 1);
    if (m.kind === 'delete') t = t.slice(0, at) + t.slice(at + (m.len ?? 1));
    else if (m.kind === 'insert') t = `${t.slice(0, at)} ${m.junk} ${t.slice(at)}`;
    else if (m.kind === 'insertRandom') t = t.slice(0, at) + (m.junk ?? '') + t.slice(at);
    else if (m.kind === 'truncate') t = t.slice(0, at);
    else {
      const lines = t.split('\n');
      const a = (m.a ?? 0) % lines.length;
      const b = (m.b ?? 0) % lines.length;
      [lines[a], lines[b]] = [lines[b]!, lines[a]!];
      t = lines.join('\n');
    }
  }
  return t;
}

describe('text map parser fuzzing', () => {
  it('mutated real maps either parse (and round-trip and map) or fail with EINVAL and a line number', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SOURCES), fc.array(mutation, { minLength: 1, maxLength: 4 }), (src, muts) => {
        check(mutate(src, muts));
      }),
      { numRuns: 1500 },
    );
  });

  it('arbitrary strings fail with EINVAL and a line number (or are an empty map)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => check(s)),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...JUNK), { maxLength: 30 }), (words) => check(words.join(' '))),
      { numRuns: 1000 },
    );
  });
});
