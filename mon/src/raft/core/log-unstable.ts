/**
 * The unstable part of the Raft log: entries (and possibly an incoming snapshot) that the
 * core has accepted but the caller has not yet persisted (etcd-raft log_unstable.go).
 *
 * Invariant: when `snapshot` is set, `offset === snapshot.metadata.index + 1`; `entries[i]`
 * has index `offset + i`.
 */
import { assert } from '@aspen/shared';
import type { Entry, Snapshot } from '../types.ts';
import { limitedEnd } from './util.ts';

/** Accepted-but-unpersisted log suffix (and snapshot); see the file comment for its invariant. */
export class Unstable {
  /** An incoming snapshot not yet persisted. */
  snapshot: Snapshot | null = null;
  /** Entries not yet persisted; `entries[i].index === offset + i`. */
  entries: Entry[] = [];
  /** Index of `entries[0]` (or where it would be). */
  offset: number;

  /** @param offset index of the first entry that will be held here (storage's lastIndex + 1). */
  constructor(offset: number) {
    assert(Number.isSafeInteger(offset) && offset >= 1, `unstable offset must be >= 1, got ${offset}`);
    this.offset = offset;
  }

  /** First index the unstable part knows about: only defined by a pending snapshot. */
  maybeFirstIndex(): number | null {
    return this.snapshot ? this.snapshot.metadata.index + 1 : null;
  }

  /** Last index held here (entries, else the pending snapshot), or null. */
  maybeLastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : null;
  }

  /** Term of `i` if the unstable part knows it, else null. */
  maybeTerm(i: number): number | null {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return null;
    }
    const last = this.maybeLastIndex();
    if (last === null || i > last) return null;
    const e = this.entries[i - this.offset];
    assert(e !== undefined && e.index === i, `unstable entry ${i} missing`);
    return e.term;
  }

  /**
   * Marks entries up to `i` (with term `t`) persisted. Ignored when the entry at `i` was since
   * replaced (different term) or is older than the offset (a snapshot superseded it).
   */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === null || gt !== t || i < this.offset) return;
    const drop = i + 1 - this.offset;
    this.entries = this.entries.slice(drop);
    this.offset = i + 1;
    assert(this.entries.length === 0 || this.entries[0]!.index === this.offset, 'unstable offset matches first entry');
  }

  /** Marks the pending snapshot at index `i` persisted. */
  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = null;
  }

  /** Replaces everything by an incoming snapshot. */
  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  /** Appends `ents`, truncating any conflicting suffix at `ents[0].index`. */
  truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // Replaces everything unstable; the storage suffix from `after` is truncated on persist.
      this.offset = after;
      this.entries = [...ents];
    } else {
      this.entries = [...this.slice(this.offset, after), ...ents];
    }
    assert(this.entries[0]!.index === this.offset, 'unstable entries start at offset');
  }

  /**
   * Entries `[lo, hi)`, which must lie within the unstable part, limited to `maxSizeBytes`
   * counting `usedBytes` already taken (at least one entry when `usedBytes` is 0).
   */
  slice(lo: number, hi: number, maxSizeBytes = Number.MAX_SAFE_INTEGER, usedBytes = 0): Entry[] {
    assert(lo <= hi && lo >= this.offset, `unstable slice [${lo},${hi}) below offset ${this.offset}`);
    assert(hi <= this.offset + this.entries.length, `unstable slice [${lo},${hi}) out of range`);
    const start = lo - this.offset;
    return this.entries.slice(start, limitedEnd(this.entries, start, hi - this.offset, maxSizeBytes, usedBytes));
  }
}
