/**
 * The Raft log as the core sees it: stable entries in {@link RaftStorage} followed by the
 * {@link Unstable} suffix not yet persisted (etcd-raft log.go). Tracks `committed` (highest
 * index known committed, Raft Fig. 2) and `applied`/`applying` (handed to the state machine).
 *
 * Invariant: `applied <= applying <= committed <= lastIndex()`, and
 * `firstIndex() - 1 <= applied` (compacted entries were applied).
 */
import { assert } from '@aspen/shared';
import { LogCompactedError, LogUnavailableError } from '../types.ts';
import type { Entry, RaftStorage, Snapshot } from '../types.ts';
import { Unstable } from './log-unstable.ts';
import { entriesSizeBytes } from './util.ts';

/** The log over storage + unstable entries, with commit/apply positions (invariant in the file comment). */
export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be committed. */
  committed: number;
  /** Highest index handed to the state machine in a Ready (not yet acknowledged by advance()). */
  applying: number;
  /** Highest index the state machine acknowledged applying. */
  applied: number;

  /**
   * @param storage the persisted log
   * @param maxApplyingBytes limit on the bytes of committed entries handed out per Ready
   */
  constructor(
    readonly storage: RaftStorage,
    readonly maxApplyingBytes: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    assert(first >= 1 && last >= first - 1, `storage bounds first=${first} last=${last}`);
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  /** Index of the first entry still held (after the latest snapshot). */
  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  /** Index of the last entry (persisted or not); the snapshot's index for an empty log. */
  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term of the last entry. */
  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== null, 'the last entry must have a term');
    return t;
  }

  /**
   * Term of entry `i`, or null when `i` is compacted or past the end. Index `firstIndex()-1`
   * (the snapshot's index) has the snapshot's term; index 0 has term 0.
   */
  term(i: number): number | null {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return null;
    const u = this.unstable.maybeTerm(i);
    if (u !== null) return u;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (err instanceof LogCompactedError || err instanceof LogUnavailableError) return null;
      throw err;
    }
  }

  /** Term of `i`, with 0 for compacted/unavailable indexes (etcd zeroTermOnOutOfBounds). */
  termOrZero(i: number): number {
    return this.term(i) ?? 0;
  }

  /** Whether our entry `i` exists and has term `t` (the AppendEntries consistency check). */
  matchTerm(i: number, t: number): boolean {
    const got = this.term(i);
    return got !== null && got === t;
  }

  /**
   * Whether a log ending at (`lastIndex`, `lastTerm`) is at least as up-to-date as ours
   * (Raft §5.4.1: the election restriction).
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower side of AppendEntries (Raft Fig. 2 receiver rules 2–5): if our log has
   * (`index`,`logTerm`), append `ents` after it, truncating the first conflicting suffix, and
   * advance commit to min(`committed`, last new index). Returns the last new index, or null
   * when the consistency check fails.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[]): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, `entry ${ci} conflicts with committed entry (committed=${this.committed})`);
      const from = ci - (index + 1);
      assert(from >= 0 && from < ents.length, 'conflict index lies within the appended entries');
      this.append(ents.slice(from));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends entries (the leader's path, or after a conflict); returns the new last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    assert(after >= this.committed, `append after ${after} would overwrite committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    const last = this.lastIndex();
    assert(last === ents[ents.length - 1]!.index, 'last index after append');
    return last;
  }

  /**
   * Index of the first entry in `ents` whose term differs from ours, or the first new entry
   * beyond our log; 0 when all entries are already present.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * For fast backtracking (etcd findConflictByTerm, thesis §5.3 optimisation): the largest
   * index ≤ `index` whose term is ≤ `term`, with that term. Returns (`index`, 0) when the term
   * there is unknown (compacted).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = index;
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t === null) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  /** Entries not yet persisted, to go into the next Ready. */
  unstableEntries(): readonly Entry[] {
    return this.unstable.entries;
  }

  /** Whether committed entries are waiting to be handed to the state machine. */
  hasNextCommittedEnts(): boolean {
    if (this.unstable.snapshot) return false; // apply the snapshot first
    return this.committed > this.applying;
  }

  /** Committed entries in `(applying, committed]`, limited to `maxApplyingBytes`. */
  nextCommittedEnts(): Entry[] {
    if (!this.hasNextCommittedEnts()) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const ents = this.slice(lo, this.committed + 1, this.maxApplyingBytes);
    assert(ents.length > 0 && ents[0]!.index === lo, 'committed entries start after applying');
    return ents;
  }

  /** The snapshot to restore from: the pending unstable one, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Raises the commit index (never lowers it). */
  commitTo(c: number): void {
    if (c <= this.committed) return;
    assert(c <= this.lastIndex(), `commit ${c} out of range (last ${this.lastIndex()}); log corrupted, truncated or lost`);
    this.committed = c;
  }

  /** Commits `maxIndex` if it is from `term` (Raft §5.4.2: only count current-term entries). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Records that entries up to `i` were handed to the state machine. */
  acceptApplying(i: number): void {
    assert(i >= this.applying && i <= this.committed, `applying ${i} outside [${this.applying}, ${this.committed}]`);
    this.applying = i;
  }

  /** Records that the state machine applied up to `i`. */
  appliedTo(i: number): void {
    if (i === 0) return;
    assert(i <= this.committed && i >= this.applied, `applied ${i} outside [${this.applied}, ${this.committed}]`);
    this.applied = i;
    if (this.applying < i) this.applying = i;
  }

  /** Entries up to (`i`, `t`) were persisted by the caller. */
  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  /** The snapshot at `i` was persisted by the caller. */
  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Entries from `i` to the end, limited to `maxSizeBytes`; null if `i` is compacted. */
  entriesFrom(i: number, maxSizeBytes: number): Entry[] | null {
    if (i > this.lastIndex()) return [];
    if (i < this.firstIndex()) return null;
    return this.slice(i, this.lastIndex() + 1, maxSizeBytes);
  }

  /** Every entry from firstIndex() to the end (tests and checkers). */
  allEntries(): Entry[] {
    return this.entriesFrom(this.firstIndex(), Number.MAX_SAFE_INTEGER) ?? [];
  }

  /** Replaces the log by a snapshot (follower InstallSnapshot, Raft §7). */
  restore(s: Snapshot): void {
    assert(s.metadata.index > this.committed, 'restoring a snapshot must move commit forward');
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /**
   * Entries `[lo, hi)` across storage and unstable, limited to `maxSizeBytes` (at least one).
   * `lo` must be ≥ firstIndex() and `hi` ≤ lastIndex()+1.
   */
  slice(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    assert(lo >= this.firstIndex() && hi <= this.lastIndex() + 1 && lo <= hi, `slice [${lo},${hi}) out of bounds`);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const uOff = this.unstable.offset;
    if (lo < uOff) {
      const stored = this.storage.entries(lo, Math.min(hi, uOff), maxSizeBytes);
      assert(stored.length > 0 && stored[0]!.index === lo, `storage returned no entries for [${lo}, ${Math.min(hi, uOff)})`);
      if (stored.length < Math.min(hi, uOff) - lo) return stored; // size limit hit
      ents = stored;
    }
    if (hi > uOff) {
      const used = entriesSizeBytes(ents);
      if (ents.length > 0 && used >= maxSizeBytes) return ents;
      const u = this.unstable.slice(Math.max(lo, uOff), hi, maxSizeBytes, used);
      ents = ents.length > 0 ? ents.concat(u) : u;
    }
    assert(ents.length > 0 && ents[0]!.index === lo, 'a non-empty slice starts at lo');
    return ents;
  }
}
