/**
 * Versioning plans (core/versioning.ts) and ListObjectVersions (core/listing.ts) over an
 * in-memory bucket index that applies plans as the store does, against a model of S3
 * versioning: per key a stack of versions, newest first.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cmpUtf8, listVersions, type PageReader } from '../src/core/listing.ts';
import {
  RevClock, findVersion, planDeleteLatest, planDeleteVersion, planNewHead, versionIdOf, type KeyView, type Planned, type Versioning,
} from '../src/core/versioning.ts';
import { HEADS_AFTER, VERSIONS_NS, versionsPrefix, type ObjectEntry } from '../src/store/layout.ts';

/** The bucket index as omap: applies plans whole, as the store's one CAS op does. */
class MemIndex {
  readonly m = new Map<string, ObjectEntry>();
  private readonly revs: RevClock;
  private nowMs = 1_700_000_000_000;
  garbage: ObjectEntry[] = [];
  constructor(seed: number) {
    let x = seed >>> 0 || 1;
    this.revs = new RevClock(() => (x = (x * 1103515245 + 12345) >>> 0));
  }

  private view(key: string, extra: string[], newest: boolean): KeyView {
    const nc = newest ? [...this.m.keys()].filter((k) => k.startsWith(versionsPrefix(key))).sort(cmpUtf8)[0] : undefined;
    return {
      key, head: this.m.get(key) ?? null, others: new Map(extra.map((k) => [k, this.m.get(k) ?? null])),
      newest: nc === undefined ? null : { indexKey: nc, entry: this.m.get(nc)! },
    };
  }

  mutate<R>(key: string, newest: boolean, plan: (v: KeyView) => Planned<R>): R {
    const extra: string[] = [];
    for (;;) {
      const p = plan(this.view(key, extra, newest));
      if ('need' in p) {
        expect(p.need.every((k) => !extra.includes(k)), 'a plan asks for each key once').toBe(true);
        extra.push(...p.need);
        continue;
      }
      for (const k of p.rm) this.m.delete(k);
      for (const [k, e] of p.set) this.m.set(k, e);
      this.garbage.push(...p.garbage);
      return p.result;
    }
  }

  find(key: string, versionId: string): ObjectEntry | null {
    const extra: string[] = [];
    for (;;) {
      const r = findVersion(this.view(key, extra, false), versionId);
      if (r === null || !('need' in r)) return r;
      extra.push(...r.need);
    }
  }

  entry(tag: string, marker = false): ObjectEntry {
    this.nowMs += 1;
    return { v: 1, sizeBytes: marker ? 0 : 1, etag: tag, mtimeMs: this.nowMs, owner: 'u', headers: {}, meta: {}, segments: marker ? [] : [{ id: tag, sizeBytes: 1 }], ...(marker ? { deleteMarker: true as const } : {}) };
  }

  put(mode: Versioning, key: string, tag: string): ObjectEntry {
    return this.mutate(key, false, (v) => {
      const rev = this.revs.next(this.nowMs);
      return planNewHead(mode, v, { ...this.entry(tag), rev, ...(mode === 'Enabled' ? { versionId: rev } : {}) });
    });
  }

  del(mode: Versioning, key: string): ObjectEntry | null {
    return this.mutate(key, false, (v) => {
      const rev = this.revs.next(this.nowMs);
      return planDeleteLatest(mode, v, { ...this.entry('', true), rev, ...(mode === 'Enabled' ? { versionId: rev } : {}) });
    });
  }

  delVersion(key: string, versionId: string): void {
    this.mutate(key, true, (v) => planDeleteVersion(v, versionId));
  }

  reader(): PageReader<ObjectEntry> {
    return async (after, prefix, max) => {
      if (!prefix.startsWith(VERSIONS_NS) && cmpUtf8(after, HEADS_AFTER) < 0) after = HEADS_AFTER;
      const all = [...this.m.keys()].filter((k) => k.startsWith(prefix) && (after === '' || cmpUtf8(k, after) > 0)).sort(cmpUtf8);
      return { entries: all.slice(0, max).map((k): [string, ObjectEntry] => [k, this.m.get(k)!]), more: all.length > max };
    };
  }

  /** Every version via ListObjectVersions paged by `pageKeys`, as "key:tag|DM:latest?". */
  async listAll(pageKeys: number, prefix = '', delimiter = ''): Promise<string[]> {
    const out: string[] = [];
    let keyMarker = '';
    let versionIdMarker = '';
    for (let pages = 0; pages < 10_000; pages++) {
      let revMarker: string | null = null;
      if (versionIdMarker !== '') {
        const head = this.m.get(keyMarker)!;
        revMarker = versionIdOf(head) === versionIdMarker ? '' : versionIdMarker === 'null' ? head.nullRev! : versionIdMarker;
      }
      const r = await listVersions({ prefix, delimiter, maxKeys: pageKeys, keyMarker, revMarker }, this.reader(), this.reader());
      const rows = r.rows.map((x) => `${x.key}:${x.entry.deleteMarker === true ? 'DM' : x.entry.etag}${x.isLatest ? '*' : ''}`);
      out.push(...rows, ...r.commonPrefixes.map((p) => `P:${p}`));
      expect(r.rows.length + r.commonPrefixes.length).toBeLessThanOrEqual(pageKeys);
      if (!r.isTruncated) return out;
      keyMarker = r.next.key;
      versionIdMarker = r.next.row === null ? '' : versionIdOf(r.next.row.entry);
    }
    throw new Error('listing did not end');
  }
}

describe('RevClock', () => {
  it('revs strictly decrease (newest sorts first), also within one millisecond and when the clock steps back', () => {
    const c = new RevClock(() => 0xffffffff);
    const revs = [c.next(1000), c.next(1000), c.next(999), c.next(1001)];
    for (let i = 1; i < revs.length; i++) expect(revs[i]! < revs[i - 1]!).toBe(true);
  });
});

describe('versioning plans', () => {
  it('Enabled: versions stack up, a delete adds a marker, deleting versions by id promotes the next newest', async () => {
    const ix = new MemIndex(1);
    const v1 = ix.put('Enabled', 'k', 'a');
    const v2 = ix.put('Enabled', 'k', 'b');
    expect(ix.m.get('k')!.etag).toBe('b');
    expect(await ix.listAll(1000)).toEqual(['k:b*', 'k:a']);
    const marker = ix.del('Enabled', 'k')!;
    expect(ix.m.get('k')!.deleteMarker).toBe(true);
    expect(await ix.listAll(1000)).toEqual(['k:DM*', 'k:b', 'k:a']);
    expect(ix.find('k', v1.versionId!)!.etag).toBe('a');
    ix.delVersion('k', marker.versionId!);
    expect(ix.m.get('k')!.etag).toBe('b');
    ix.delVersion('k', v2.versionId!);
    expect(ix.m.get('k')!.etag).toBe('a');
    ix.delVersion('k', v1.versionId!);
    expect(ix.m.size).toBe(0);
    expect(ix.garbage.map((e) => e.etag)).toEqual(['', 'b', 'a']);
  });

  it('the null version: kept when versioning is enabled, replaced by a new null version when suspended', async () => {
    const ix = new MemIndex(2);
    ix.put('Unversioned', 'k', 'n1');
    ix.put('Unversioned', 'k', 'n2');
    expect(ix.garbage.map((e) => e.etag)).toEqual(['n1']);
    const v1 = ix.put('Enabled', 'k', 'v1');
    expect(ix.m.get('k')!.nullRev).toBeDefined();
    expect(ix.find('k', 'null')!.etag).toBe('n2');
    expect(await ix.listAll(1000)).toEqual(['k:v1*', 'k:n2']);
    ix.put('Suspended', 'k', 'n3');
    expect(ix.garbage.map((e) => e.etag)).toEqual(['n1', 'n2']);
    expect(await ix.listAll(1000)).toEqual(['k:n3*', 'k:v1']);
    ix.del('Suspended', 'k');
    expect(ix.garbage.map((e) => e.etag)).toEqual(['n1', 'n2', 'n3']);
    expect(await ix.listAll(1000)).toEqual(['k:DM*', 'k:v1']);
    ix.delVersion('k', 'null');
    expect(await ix.listAll(1000)).toEqual(['k:v1*']);
    expect(ix.m.get('k')!.versionId).toBe(v1.versionId);
    expect(() => ix.delVersion('k', 'nonsense')).toThrow(/Invalid version id/);
  });

  it('property: any sequence of puts and deletes under any versioning states lists as the model, paged at any size, with no version lost or leaked', async () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('put' as const), key: fc.constantFrom('a', 'a/b', 'a/c', 'b', 'ab'), mode: fc.constantFrom<Versioning>('Enabled', 'Suspended') }),
      fc.record({ t: fc.constant('del' as const), key: fc.constantFrom('a', 'a/b', 'b'), mode: fc.constantFrom<Versioning>('Enabled', 'Suspended') }),
      fc.record({ t: fc.constant('delv' as const), key: fc.constantFrom('a', 'a/b', 'b', 'ab'), pick: fc.nat(5) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 30 }), fc.integer({ min: 1, max: 4 }), fc.integer(), async (ops, pageKeys, seed) => {
      const ix = new MemIndex(seed);
      /** Model: key → versions newest first ({id, tag}). */
      const model = new Map<string, { id: string; tag: string }[]>();
      const made: ObjectEntry[] = [];
      let n = 0;
      for (const o of ops) {
        const stack = model.get(o.key) ?? [];
        if (o.t === 'put' || o.t === 'del') {
          const e = o.t === 'put' ? ix.put(o.mode, o.key, `t${n++}`) : ix.del(o.mode, o.key)!;
          made.push(e);
          const id = versionIdOf(e);
          model.set(o.key, [{ id, tag: e.deleteMarker === true ? 'DM' : e.etag }, ...stack.filter((x) => id !== 'null' || x.id !== 'null')]);
        } else {
          const victim = stack[o.pick % Math.max(1, stack.length)];
          if (victim === undefined) continue;
          ix.delVersion(o.key, victim.id);
          model.set(o.key, stack.filter((x) => x !== victim));
        }
      }
      const expected = [...model.keys()].sort(cmpUtf8).flatMap((k) => model.get(k)!.map((x, i) => `${k}:${x.tag}${i === 0 ? '*' : ''}`));
      expect(await ix.listAll(pageKeys)).toEqual(expected);
      // Every version made is either listed or was garbage, never both.
      const live = new Set([...ix.m.values()].map((e) => e.rev));
      for (const e of made) expect(live.has(e.rev) !== ix.garbage.some((g) => g.rev === e.rev)).toBe(true);
      // With a delimiter, keys under a/ roll up into one common prefix.
      const rolled = await ix.listAll(pageKeys, '', '/');
      expect(rolled.filter((x) => x === 'P:a/').length).toBe([...model.keys()].some((k) => k.startsWith('a/') && model.get(k)!.length > 0) ? 1 : 0);
      expect(rolled.filter((x) => x.startsWith('a/'))).toEqual([]);
    }), { numRuns: 300 });
  });
});
