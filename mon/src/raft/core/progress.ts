/**
 * The leader's view of each follower (etcd-raft tracker/progress.go, tracker/inflights.go) and
 * the quorum arithmetic over voters (etcd quorum/majority.go).
 *
 * A follower's progress is in one of three states:
 * - `probe`: we do not know where its log matches; send one MsgApp per heartbeat interval and
 *   wait for the answer (fast backtracking moves `next` by whole terms).
 * - `replicate`: logs match up to `match`; stream MsgApps optimistically (`next` advances on
 *   send: pipelining), at most `maxInflightMsgs` unacknowledged.
 * - `snapshot`: it needs entries we compacted; a MsgSnap is in flight, send nothing else.
 */
import { assert, assertNever } from '@aspen/shared';
import type { NodeId } from '../types.ts';

/** Replication state of a follower (see the file comment). */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded window of in-flight MsgApp (by last index sent), oldest first. */
export class Inflights {
  private readonly items: number[] = [];
  /** @param maxInflightMsgs window size (RaftConfig.maxInflightMsgs); at least 1. */
  constructor(readonly maxInflightMsgs: number) {
    assert(Number.isSafeInteger(maxInflightMsgs) && maxInflightMsgs >= 1, 'maxInflightMsgs must be >= 1');
  }
  /** Records a MsgApp whose last entry is `index`. */
  add(index: number): void {
    assert(!this.full(), 'cannot add to a full inflights window');
    const last = this.items[this.items.length - 1];
    assert(last === undefined || index > last, `inflight index ${index} not increasing`);
    this.items.push(index);
  }
  /** Frees every in-flight message up to and including `index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.items.length && this.items[n]! <= index) n++;
    if (n > 0) this.items.splice(0, n);
  }
  /** Frees the oldest in-flight message (a heartbeat answer shows the peer is alive). */
  freeFirstOne(): void {
    this.items.shift();
  }
  /** Whether the window is full (no more MsgApp may be sent). */
  full(): boolean {
    return this.items.length >= this.maxInflightMsgs;
  }
  /** Messages in flight. */
  get count(): number {
    return this.items.length;
  }
  /** Forgets every in-flight message (state change). */
  reset(): void {
    this.items.length = 0;
  }
}

/** Replication state of one member as tracked by the leader. */
export class Progress {
  /** Highest index known replicated on the member. */
  match = 0;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = 'probe';
  /** In `snapshot` state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Whether we heard from the member during the current check-quorum period (§6.2). */
  recentActive = false;
  /** In `probe` state: a MsgApp was sent and is awaiting its answer. */
  probeSent = false;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflightMsgs: number,
    public isLearner: boolean,
  ) {
    assert(next >= 1, 'progress next must be >= 1');
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to probing from `match + 1` (or past a snapshot just sent). */
  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  /** Logs match up to `match`: stream optimistically from `match + 1`. */
  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  /** A MsgSnap at `snapshotIndex` is on its way: send nothing until it is reported. */
  becomeSnapshot(snapshotIndex: number): void {
    assert(snapshotIndex > 0, 'snapshot index must be positive');
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement up to `n`: returns true if `match` advanced. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the MsgApp whose previous index was `rejected`; `matchHint` is the
   * leader's best guess of where the logs may match. Returns false when the rejection is
   * stale (answers an older MsgApp).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    assert(this.next > this.match, 'next stays above match');
    return true;
  }

  /** Bookkeeping after sending a MsgApp carrying `entries` entries starting at `next`. */
  sentEntries(entries: number): void {
    switch (this.state) {
      case 'replicate':
        if (entries > 0) {
          const last = this.next + entries - 1;
          this.next = last + 1;
          this.inflights.add(last);
        }
        break;
      case 'probe':
        this.probeSent = true;
        break;
      case 'snapshot':
        assert(false, 'sending entries in snapshot state');
        break;
      default:
        assertNever(this.state, 'progress state');
    }
  }

  /** Whether we must not send MsgApp to this member now (flow control). */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
      default:
        return assertNever(this.state, 'progress state');
    }
  }
}

/** Majority size of `n` voters. */
export function quorumSize(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Outcome of counting votes (etcd quorum.VoteResult). */
export type VoteResult = 'won' | 'lost' | 'pending';

/** Counts `votes` (true = granted) among `voters`; missing voters may still vote. */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won'; // by convention (etcd): an empty config wins everything
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = quorumSize(voters.length);
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}

/**
 * The highest index replicated on a majority of `voters` given each voter's `match`
 * (Raft §5.3). Voters without progress count as 0.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  assert(voters.length > 0, 'committedIndex needs at least one voter');
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  const idx = matches[quorumSize(voters.length) - 1];
  assert(idx !== undefined && idx >= 0, 'quorum match index');
  return idx;
}
