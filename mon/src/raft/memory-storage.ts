/**
 * An in-memory {@link RaftStorage} (etcd-raft storage.go MemoryStorage), used by tests and the
 * deterministic simulator. Its mutation methods are the ones the SQLite storage
 * (`../io/raft-storage.ts`) also provides, and callers use them in the order of the Ready
 * contract: `applySnapshot`, then `append`, then `setHardState`.
 *
 * Layout: `ents[0]` is a dummy entry at the snapshot's (index, term); real entries follow,
 * so `firstIndex() = ents[0].index + 1` and `lastIndex() = ents[0].index + ents.length - 1`.
 */
import { assert } from '@aspen/shared';
import { LogCompactedError, LogUnavailableError } from './types.ts';
import type { ConfState, Entry, HardState, RaftStorage, Snapshot } from './types.ts';
import { limitedEnd } from './core/util.ts';

const EMPTY_SNAPSHOT: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };

/** In-memory Raft storage: durable for the lifetime of the object (the simulator's "disk"). */
export class MemoryStorage implements RaftStorage {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snap: Snapshot = EMPTY_SNAPSHOT;
  private ents: Entry[] = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];

  /** The membership of the latest snapshot (what `initialState` reports). */
  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  /** The persisted hard state (tests and the simulator). */
  getHardState(): HardState {
    return this.hardState;
  }

  private get offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  term(index: number): number {
    const off = this.offset;
    if (index < off) throw new LogCompactedError(`index ${index} compacted (first ${off + 1})`);
    if (index - off >= this.ents.length) throw new LogUnavailableError(`index ${index} beyond last ${this.lastIndex()}`);
    const e = this.ents[index - off];
    assert(e !== undefined && e.index === index, `entry ${index} misplaced`);
    return e.term;
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const off = this.offset;
    if (lo <= off) throw new LogCompactedError(`index ${lo} compacted (first ${off + 1})`);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(`entries up to ${hi - 1} beyond last ${this.lastIndex()}`);
    assert(lo <= hi, `entries [${lo}, ${hi}) is an inverted range`);
    const out = this.ents.slice(lo - off, limitedEnd(this.ents, lo - off, hi - off, maxSizeBytes));
    assert(out.length === 0 || out[0]!.index === lo, 'entries start at lo');
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Sets the persisted term/vote/commit. */
  setHardState(hs: HardState): void {
    assert(hs.term >= this.hardState.term, `hard state term went backwards (${this.hardState.term} -> ${hs.term})`);
    this.hardState = hs;
  }

  /**
   * Replaces the whole log by `snap` (InstallSnapshot, or bootstrap).
   * @throws AssertionFailure when `snap` is not newer than the current snapshot.
   */
  applySnapshot(snap: Snapshot): void {
    assert(snap.metadata.index > this.snap.metadata.index, `snapshot ${snap.metadata.index} is not newer than ${this.snap.metadata.index}`);
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 'normal', data: new Uint8Array(0) }];
    assert(this.firstIndex() === snap.metadata.index + 1, 'log restarts after the snapshot');
  }

  /**
   * Records a snapshot of the state machine as of applied index `index` (≤ lastIndex) with
   * `confState` (the membership as of `index`) and state-machine `data`. Entries are kept until
   * {@link compact}. Returns the snapshot; a request older than the current one is ignored and
   * the current one returned.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) return this.snap;
    assert(index <= this.lastIndex(), `snapshot ${index} beyond last index ${this.lastIndex()}`);
    const term = this.term(index);
    this.snap = { metadata: { index, term, confState }, data };
    return this.snap;
  }

  /**
   * Discards entries before `index` (which becomes the new dummy entry). Compacting to an
   * index at or below the current first index is a no-op; callers compact only applied entries.
   */
  compact(index: number): void {
    const off = this.offset;
    if (index <= off) return;
    assert(index <= this.lastIndex(), `compact ${index} beyond last index ${this.lastIndex()}`);
    const dummy = this.ents[index - off]!;
    this.ents = [{ term: dummy.term, index: dummy.index, type: 'normal', data: new Uint8Array(0) }, ...this.ents.slice(index - off + 1)];
    assert(this.offset === index, 'compaction moved the dummy entry');
  }

  /**
   * Appends `entries` (consecutive), truncating any existing suffix from `entries[0].index`.
   * Entries already compacted are skipped.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return;
    let ents = entries;
    if (first > ents[0]!.index) ents = ents.slice(first - ents[0]!.index);
    const at = ents[0]!.index - this.offset;
    assert(at <= this.ents.length, `missing log entries: last ${this.lastIndex()}, appending at ${ents[0]!.index}`);
    this.ents.length = at;
    for (const e of ents) this.ents.push(e);
    assert(this.lastIndex() === last, 'append ends at the last new entry');
  }

  /** Every stored entry (tests and checkers). */
  allEntries(): Entry[] {
    return this.ents.slice(1);
  }
}
