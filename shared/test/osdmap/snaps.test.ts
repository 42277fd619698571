/**
 * Removed-snaps interval sets (Ceph interval_set<snapid_t> in pg_pool_t): insertion merges
 * into sorted, disjoint, non-adjacent runs and membership agrees with a plain set.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatRemovedSnaps, insertRemovedSnap, isSnapRemoved, removedSnapsWellFormed } from '../../src/osdmap/snaps.ts';
import type { SnapInterval } from '../../src/osdmap/types.ts';
import { AssertionFailure } from '../../src/assert.ts';

const build = (ids: readonly number[]): SnapInterval[] => ids.reduce<SnapInterval[]>((acc, id) => insertRemovedSnap(acc, id), []);
const members = (intervals: readonly SnapInterval[]): number[] => intervals.flatMap(([s, l]) => Array.from({ length: l }, (_, i) => s + i));

describe('removed snaps interval set', () => {
  it('after any insertions (any order, repeats) the set is well formed and holds exactly the inserted ids (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), (ids) => {
      const set = build(ids);
      expect(removedSnapsWellFormed(set, 60)).toBe(true);
      const expected = [...new Set(ids)].sort((a, b) => a - b);
      expect(members(set)).toEqual(expected);
      for (let id = 0; id <= 62; id++) {
        expect(isSnapRemoved({ removedSnaps: set }, id)).toBe(expected.includes(id));
        expect(isSnapRemoved({ removedSnaps: set }, BigInt(id))).toBe(expected.includes(id));
      }
    }), { numRuns: 300 });
  });

  it('the result does not depend on insertion order: it is the unique compact form (property)', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 40 }), fc.nat(), (ids, seed) => {
      const shuffled = [...ids].sort((a, b) => ((a * 7919 + seed) % 101) - ((b * 7919 + seed) % 101));
      expect(build(shuffled)).toEqual(build([...ids].sort((a, b) => a - b)));
    }), { numRuns: 200 });
  });

  it('insertion does not modify its input', () => {
    const before: SnapInterval[] = [[1, 2], [5, 1]];
    const after = insertRemovedSnap(before, 3);
    expect(before).toEqual([[1, 2], [5, 1]]);
    expect(after).toEqual([[1, 3], [5, 1]]);
    expect(insertRemovedSnap(after, 4)).toEqual([[1, 5]]); // joins both neighbours
    expect(insertRemovedSnap(after, 2)).toEqual(after); // already present
  });

  it('merges neighbours as Ceph prints them', () => {
    expect(formatRemovedSnaps([])).toBe('[]');
    expect(formatRemovedSnaps(build([3, 1, 2, 7, 6, 10]))).toBe('[1~3,6~2,10~1]');
  });

  it('ids beyond 2^53 (SNAP_HEAD) and 0 are never removed', () => {
    const set = build([1, 2, 3]);
    expect(isSnapRemoved({ removedSnaps: set }, 0)).toBe(false);
    expect(isSnapRemoved({ removedSnaps: set }, 0xfffffffffffffffen)).toBe(false);
  });

  it('well-formedness refuses overlap, adjacency, disorder, empty runs, id 0 and ids past snap_seq', () => {
    expect(removedSnapsWellFormed([[1, 3], [6, 1]], 6)).toBe(true);
    expect(removedSnapsWellFormed([[1, 3], [3, 1]], 10)).toBe(false);
    expect(removedSnapsWellFormed([[1, 3], [4, 1]], 10)).toBe(false);
    expect(removedSnapsWellFormed([[6, 1], [1, 3]], 10)).toBe(false);
    expect(removedSnapsWellFormed([[1, 0]], 10)).toBe(false);
    expect(removedSnapsWellFormed([[0, 1]], 10)).toBe(false);
    expect(removedSnapsWellFormed([[1, 3], [6, 1]], 5)).toBe(false);
    expect(() => insertRemovedSnap([], 0)).toThrow(AssertionFailure);
  });
});
