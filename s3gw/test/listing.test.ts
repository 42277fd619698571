/**
 * ListObjects semantics against a brute-force model: for random key sets, prefixes,
 * delimiters and page sizes, paging through with `next` yields exactly the model's keys and
 * common prefixes, each once, in order.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { listKeys, type PageReader } from '../src/core/listing.ts';

function reader(keys: string[]): PageReader<string> {
  const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return async (after, prefix, max) => {
    const all = sorted.filter((k) => k.startsWith(prefix) && (after === '' || Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0));
    return { entries: all.slice(0, max).map((k): [string, string] => [k, k]), more: all.length > max };
  };
}

function model(keys: string[], prefix: string, delimiter: string): string[] {
  const out = new Set<string>();
  for (const k of [...new Set(keys)].sort()) {
    if (!k.startsWith(prefix)) continue;
    const i = delimiter === '' ? -1 : k.indexOf(delimiter, prefix.length);
    out.add(i >= 0 ? `P:${k.slice(0, i + delimiter.length)}` : `K:${k}`);
  }
  return [...out];
}

describe('listKeys', () => {
  it('property: paging with any max-keys returns the model listing exactly once, in order', async () => {
    const key = fc.array(fc.constantFrom('a', 'b', '/', 'c', '-'), { minLength: 1, maxLength: 6 }).map((x) => x.join(''));
    await fc.assert(fc.asyncProperty(fc.uniqueArray(key, { maxLength: 40 }), fc.constantFrom('', 'a', 'a/', 'b'), fc.constantFrom('', '/', '-'), fc.integer({ min: 1, max: 7 }), async (keys, prefix, delimiter, maxKeys) => {
      const got: string[] = [];
      let after = '';
      for (let i = 0; i < 100; i++) {
        const r = await listKeys({ prefix, delimiter, maxKeys, startAfter: after }, reader(keys));
        got.push(...r.contents.map(([k]) => `K:${k}`), ...r.commonPrefixes.map((p) => `P:${p}`));
        expect(r.contents.length + r.commonPrefixes.length).toBeLessThanOrEqual(maxKeys);
        if (!r.isTruncated) break;
        after = r.next;
      }
      const sortKey = (s: string): string => s.slice(2);
      expect(got.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1))).toEqual(model(keys, prefix, delimiter).sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1)));
    }), { numRuns: 300 });
  });
});
