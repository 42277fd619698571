/**
 * A pool's self-managed snapshots (Ceph pg_pool_t::add_unmanaged_snap / remove_unmanaged_snap /
 * is_removed_snap). Removed snap ids are kept as Ceph keeps them, an interval set: sorted,
 * disjoint, non-adjacent runs `[start, length]` (Ceph prints them `[start~len,...]`). Pure.
 */
import { assert } from '../assert.ts';
import type { Pool, SnapInterval } from './types.ts';

/** Index of the last interval whose start is <= `id`, or -1. Binary search. */
function floorIndex(intervals: readonly SnapInterval[], id: number): number {
  let lo = 0;
  let hi = intervals.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (intervals[mid]![0] <= id) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * Whether snap `snapId` of `pool` has been removed (Ceph pg_pool_t::is_removed_snap).
 * Accepts a number or a wire `bigint`; ids beyond 2^53 (SNAP_HEAD, SNAP_DIR) are never removed.
 * O(log intervals).
 */
export function isSnapRemoved(pool: Pick<Pool, 'removedSnaps'>, snapId: number | bigint): boolean {
  if (typeof snapId === 'bigint') {
    if (snapId < 1n || snapId > BigInt(Number.MAX_SAFE_INTEGER)) return false;
    snapId = Number(snapId);
  }
  const i = floorIndex(pool.removedSnaps, snapId);
  if (i < 0) return false;
  const [start, length] = pool.removedSnaps[i]!;
  return snapId < start + length;
}

/**
 * Whether `intervals` is a well-formed removed-snaps set: each `[start, length]` has safe
 * integers `start >= 1`, `length >= 1`; sorted; disjoint and not adjacent (adjacent runs must
 * be merged); the last id at or below `maxId` (the pool's snapSeq).
 */
export function removedSnapsWellFormed(intervals: readonly SnapInterval[], maxId: number): boolean {
  let prevEnd = 0; // one past the previous run's last id
  for (const iv of intervals) {
    if (iv.length !== 2) return false;
    const [start, length] = iv;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 1 || length < 1) return false;
    if (start <= prevEnd) return false; // overlapping, unsorted or adjacent
    prevEnd = start + length;
    if (!Number.isSafeInteger(prevEnd)) return false;
  }
  return prevEnd - 1 <= maxId;
}

/**
 * Returns `intervals` with `snapId` added, merging it into a neighbouring run where it touches
 * one (Ceph interval_set::insert). A new array; the input is not modified. Inserting an id
 * already present returns an equal copy.
 * @throws AssertionFailure if `snapId` is not a safe integer >= 1 or the input is malformed.
 */
export function insertRemovedSnap(intervals: readonly SnapInterval[], snapId: number): SnapInterval[] {
  assert(Number.isSafeInteger(snapId) && snapId >= 1, `snap id must be a positive integer, got ${snapId}`);
  assert(removedSnapsWellFormed(intervals, Number.MAX_SAFE_INTEGER), 'removed snaps are sorted disjoint intervals');
  const out: SnapInterval[] = intervals.map(([s, l]) => [s, l]);
  const i = floorIndex(out, snapId);
  const prev = i >= 0 ? out[i]! : undefined;
  const next = out[i + 1];
  if (prev !== undefined && snapId < prev[0] + prev[1]) return out; // already removed
  const joinsPrev = prev !== undefined && prev[0] + prev[1] === snapId;
  const joinsNext = next !== undefined && next[0] === snapId + 1;
  if (joinsPrev && joinsNext) {
    prev[1] += 1 + next[1];
    out.splice(i + 1, 1);
  } else if (joinsPrev) prev[1] += 1;
  else if (joinsNext) {
    next[0] = snapId;
    next[1] += 1;
  } else out.splice(i + 1, 0, [snapId, 1]);
  assert(removedSnapsWellFormed(out, Number.MAX_SAFE_INTEGER), 'insert keeps the set well formed');
  return out;
}

/** Ceph's text form of an interval set: `[1~3,6~1]` (`[]` when empty). */
export function formatRemovedSnaps(intervals: readonly SnapInterval[]): string {
  return `[${intervals.map(([s, l]) => `${s}~${l}`).join(',')}]`;
}
