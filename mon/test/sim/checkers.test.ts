/**
 * The simulator's checkers must be able to fail (CONVENTIONS.md item 15): known-bad histories
 * and logs are flagged, known-good ones pass, and a simulator with a deliberately injected bug
 * is caught.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkKvHistory, checkRegister } from './linearizability.ts';
import type { HistoryOp } from './linearizability.ts';
import { Invariants } from './invariants.ts';
import type { LogView } from './invariants.ts';
import { Prng } from '@aspen/test/prng.ts';
import { KvStore } from './kv.ts';
import type { KvOp, KvResult } from './kv.ts';
import { runSeed } from './simulator.ts';
import type { Entry } from '../../src/raft/types.ts';

let nextId = 0;
function op(clientId: string, o: KvOp, call: number, ret: number, result: KvResult | null): HistoryOp {
  return { id: nextId++, clientId, op: o, call, ret, result };
}
const put = (k: string, v: string): KvOp => ({ kind: 'put', key: k, value: v });
const get = (k: string): KvOp => ({ kind: 'get', key: k });
const cas = (k: string, e: string | null, v: string): KvOp => ({ kind: 'cas', key: k, expected: e, value: v });
const PUT: KvResult = { kind: 'put' };
const got = (v: string | null): KvResult => ({ kind: 'get', value: v });

describe('linearizability checker', () => {
  it('flags a stale read after a completed write', () => {
    const h = [op('a', put('x', '1'), 0, 10, PUT), op('b', get('x'), 20, 30, got(null))];
    expect(checkKvHistory(h).ok).toBe(false);
  });

  it('accepts a read concurrent with a write returning either value', () => {
    for (const v of [null, '1']) {
      const h = [op('a', put('x', '1'), 0, 30, PUT), op('b', get('x'), 10, 20, got(v))];
      expect(checkKvHistory(h).ok).toBe(true);
    }
  });

  it('flags a read that goes back in time (new then old value, sequential reads)', () => {
    const h = [
      op('a', put('x', '1'), 0, 100, PUT),
      op('b', get('x'), 10, 20, got('1')),
      op('b', get('x'), 30, 40, got(null)),
    ];
    expect(checkKvHistory(h).ok).toBe(false);
  });

  it('an unknown write may take effect late or never', () => {
    const late = [op('a', put('x', '1'), 0, Infinity, null), op('b', get('x'), 10, 20, got(null)), op('b', get('x'), 30, 40, got('1'))];
    expect(checkKvHistory(late).ok).toBe(true);
    const never = [op('a', put('x', '1'), 0, Infinity, null), op('b', get('x'), 10, 20, got(null))];
    expect(checkKvHistory(never).ok).toBe(true);
    // …but not before it was invoked.
    const early = [op('b', get('x'), 0, 5, got('1')), op('a', put('x', '1'), 10, Infinity, null)];
    expect(checkKvHistory(early).ok).toBe(false);
  });

  it('checks cas outcomes against the register', () => {
    const ok = [op('a', put('x', '1'), 0, 10, PUT), op('b', cas('x', '1', '2'), 20, 30, { kind: 'cas', ok: true }), op('c', get('x'), 40, 50, got('2'))];
    expect(checkKvHistory(ok).ok).toBe(true);
    const bad = [op('a', put('x', '1'), 0, 10, PUT), op('b', cas('x', '1', '2'), 20, 30, { kind: 'cas', ok: false })];
    expect(checkKvHistory(bad).ok).toBe(false);
    const twoWinners = [
      op('a', put('x', '0'), 0, 5, PUT),
      op('b', cas('x', '0', 'b'), 10, 30, { kind: 'cas', ok: true }),
      op('c', cas('x', '0', 'c'), 10, 30, { kind: 'cas', ok: true }),
    ];
    expect(checkKvHistory(twoWinners).ok).toBe(false);
  });

  it('partitions per key: a violation on one key is reported with that key', () => {
    const h = [op('a', put('y', '1'), 0, 10, PUT), op('a', put('x', '1'), 0, 10, PUT), op('b', get('x'), 20, 30, got(null))];
    expect(checkKvHistory(h)).toEqual({ ok: false, badKey: 'x' });
  });

  it('property: any history produced by a sequential execution is linearizable (and its timeline-reversed reads are not, when they differ)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), (seed) => {
        const r = new Prng(seed);
        const kv = new KvStore();
        const h: HistoryOp[] = [];
        let t = 0;
        for (let i = 0; i < 30; i++) {
          const k = 'x';
          const roll = r.int(3);
          const o: KvOp = roll === 0 ? put(k, `v${i}`) : roll === 1 ? get(k) : cas(k, r.chance(0.5) ? `v${i - 1}` : null, `v${i}`);
          const res = kv.exec(o);
          h.push(op(`c${r.int(3)}`, o, t, t + 5, res));
          t += 10;
        }
        expect(checkRegister(h)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });
});

function view(entries: readonly Entry[]): LogView {
  return {
    firstIndex: () => 1,
    lastIndex: () => entries.length,
    termAt: (i) => (i === 0 ? 0 : (entries[i - 1]?.term ?? null)),
  };
}
const ent = (index: number, term: number, data: string): Entry => ({ index, term, type: 'normal', data: new TextEncoder().encode(data) });

describe('Raft invariant checkers', () => {
  it('election safety: two leaders in one term are flagged', () => {
    const inv = new Invariants();
    inv.observeLeader('a', 3);
    inv.observeLeader('a', 3);
    inv.observeLeader('b', 4);
    expect(inv.violations).toEqual([]);
    inv.observeLeader('b', 3);
    expect(inv.violations[0]).toMatch(/election safety/);
  });

  it('log matching: a deliberately broken log (same index and term, different entry) is flagged', () => {
    const inv = new Invariants();
    const a = [ent(1, 1, 'x'), ent(2, 1, 'y')];
    const b = [ent(1, 1, 'x'), ent(2, 1, 'Z')];
    inv.observePersisted('a', a, view(a));
    inv.observePersisted('b', b, view(b));
    expect(inv.violations[0]).toMatch(/log matching/);
  });

  it('log matching: same (index, term) after different previous terms is flagged', () => {
    const inv = new Invariants();
    const a = [ent(1, 1, 'x'), ent(2, 3, 'y')];
    const b = [ent(1, 2, 'w'), ent(2, 3, 'y')];
    inv.observePersisted('a', a, view(a));
    inv.observePersisted('b', b.slice(1), view(b));
    expect(inv.violations.some((v) => /follows term/.test(v))).toBe(true);
  });

  it('state-machine safety: different entries applied at one index are flagged', () => {
    const inv = new Invariants();
    inv.observeApplied('a', ent(2, 1, 'x'), 1);
    inv.observeApplied('b', ent(2, 1, 'x'), 1);
    expect(inv.violations).toEqual([]);
    inv.observeApplied('c', ent(2, 2, 'y'), 2);
    expect(inv.violations[0]).toMatch(/state-machine safety/);
  });

  it('leader completeness: a later-term leader missing a committed entry is flagged', () => {
    const inv = new Invariants();
    inv.observeApplied('a', ent(2, 1, 'x'), 1);
    inv.observeApplied('a', ent(3, 1, 'y'), 1);
    const good = [ent(1, 1, ''), ent(2, 1, 'x'), ent(3, 1, 'y')];
    inv.checkLeaderCompleteness('b', 2, view(good));
    expect(inv.violations).toEqual([]);
    const bad = [ent(1, 1, ''), ent(2, 1, 'x'), ent(3, 2, 'other')];
    inv.checkLeaderCompleteness('c', 3, view(bad));
    expect(inv.violations[0]).toMatch(/leader completeness/);
  });
});

describe('simulator self-test', () => {
  it('a simulator with a deliberately injected bug (reads served locally, without ReadIndex) is caught', () => {
    let caught = 0;
    for (let seed = 1; seed <= 60 && caught === 0; seed++) {
      const r = runSeed(seed, { mutation: 'local_reads' });
      if (r.violations.some((v) => v.startsWith('linearizability'))) caught++;
    }
    expect(caught).toBeGreaterThan(0);
  });

  it('the same seeds pass without the injected bug, and a seed replays identically', () => {
    const a = runSeed(7);
    const b = runSeed(7);
    expect(a.violations).toEqual([]);
    expect(a.stats).toEqual(b.stats);
    expect(a.trace).toEqual(b.trace);
  });
});
