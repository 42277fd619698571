/**
 * The public face of the pure Raft core (etcd-raft rawnode.go). Single-threaded and
 * synchronous: the daemon (or the simulator) calls `tick()` on a timer, `step()` for each
 * message from a peer, `propose()`/`readIndex()` for clients, and drains the outbox:
 *
 * ```
 * while (node.hasReady()) {
 *   const rd = node.ready();
 *   storage.applySnapshot(rd.snapshot) / append(rd.entries) / setHardState(rd.hardState);  // fsync if rd.mustSync
 *   transport.send(rd.messages);
 *   stateMachine.restore(rd.snapshot); stateMachine.apply(rd.committedEntries); serve rd.readStates;
 *   node.advance();
 * }
 * ```
 *
 * Membership changes take effect inside `advance()` for every `conf_change` entry handed out in
 * that Ready's `committedEntries` (thesis §4.1 "when applied", as etcd); the state machine only
 * records them (see `applyConfChangeToConfState` in confchange.ts to track the ConfState).
 */
import { AspenError, assert } from '@aspen/shared';
import type { ConfChange, ConfState, EntryType, HardState, Message, NodeId, RaftConfig, RaftStorage, Ready, Role, SoftState } from './types.ts';
import { Raft, tryDecodeConfChange } from './core/raft.ts';
import type { DropReason } from './core/raft.ts';
import type { ProgressState } from './core/progress.ts';
import { encodeConfChange } from './confchange.ts';
import { isLocalMessage, makeMessage } from './core/util.ts';

/** Where a proposal accepted by the leader was placed in the log. */
export interface ProposalResult {
  readonly index: number;
  readonly term: number;
}

/** A follower's replication state as seen by the leader. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly recentActive: boolean;
  readonly isLearner: boolean;
}

/** The node's role and log positions (cheap to read on every event). */
export interface BasicStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lead: NodeId | null;
  readonly role: Role;
}

/** A snapshot of the node's state for display, routing and tests. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lead: NodeId | null;
  readonly role: Role;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId | null;
  /** Per-member progress; only filled on the leader. */
  readonly progress: Readonly<Record<NodeId, ProgressStatus>>;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

interface Outstanding {
  readonly ready: Ready;
}

/** A Raft member as the caller drives it (see the file comment for the loop). */
export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | null = null;

  /**
   * Restarts (or starts) a node from `storage`. A brand-new initial member's storage holds
   * `bootstrapSnapshot(voters)`; a joining member starts from empty storage and an empty
   * membership (it never campaigns until it is added and learns the log).
   * `config.applied` is the state machine's applied index (at least the snapshot's).
   */
  constructor(config: RaftConfig, storage: RaftStorage) {
    this.raft = new Raft(config, storage);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = storage.initialState().hardState;
    assert(this.prevHardState.term === this.raft.term, 'hard state loaded');
  }

  /** Advances logical time one tick (elections, heartbeats, check-quorum, transfer timeout). */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first if enabled). No-op on a leader or a non-voter. */
  campaign(): void {
    this.raft.step(makeMessage({ type: 'MsgHup', from: this.raft.id, to: this.raft.id }));
  }

  /**
   * Proposes a state-machine command (§5.3). On the leader, appends it and returns its
   * (index, term): it is committed iff the entry at that index later commits with that term.
   * On a follower with a known leader, forwards it (MsgProp) and returns null: the outcome is
   * only visible when it is applied (the leader may still drop it silently).
   * @throws AspenError ENOT_LEADER (details.leaderHint null) when no leader is known;
   *   E_PROPOSAL_DROPPED (details.reason, details.leaderHint) when the leader refuses it
   *   (transfer in progress, removed from the cluster, uncommitted-size limit).
   */
  propose(data: Uint8Array): ProposalResult | null {
    return this.proposeEntry('normal', data);
  }

  /**
   * Proposes a single-server membership change (thesis §4.1). Same results as {@link propose}.
   * @throws AspenError E_CONFIG_CHANGE_PENDING on the leader when an earlier change is not yet
   *   applied; EINVAL when it would leave no voter. A forwarded change that the leader refuses
   *   for these reasons is committed as an empty entry instead.
   */
  proposeConfChange(cc: ConfChange): ProposalResult | null {
    const r = this.raft;
    if (r.role === 'leader') {
      if (r.pendingConfIndex > r.log.applied) {
        throw new AspenError('E_CONFIG_CHANGE_PENDING', `a membership change (index ${r.pendingConfIndex}) is not yet applied`, {
          pendingIndex: r.pendingConfIndex,
          applied: r.log.applied,
        });
      }
      if (!r.confChangeKeepsAVoter(cc)) {
        throw new AspenError('EINVAL', `removing ${cc.nodeId} would leave no voter`);
      }
    }
    return this.proposeEntry('conf_change', encodeConfChange(cc));
  }

  private proposeEntry(type: EntryType, data: Uint8Array): ProposalResult | null {
    const r = this.raft;
    if (r.role !== 'leader' && r.lead === null) {
      throw new AspenError('ENOT_LEADER', `mon ${r.id} knows no leader (term ${r.term})`, { leaderHint: null });
    }
    const before = r.log.lastIndex();
    const m = makeMessage({ type: 'MsgProp', from: r.id, to: r.id, entries: [{ term: 0, index: 0, type, data }] });
    const dropped = r.step(m);
    if (dropped !== null) throw this.dropError(dropped);
    if (r.role !== 'leader') return null;
    const index = r.log.lastIndex();
    assert(index === before + 1, 'the leader appended exactly one entry');
    return { index, term: r.term };
  }

  private dropError(reason: DropReason): AspenError {
    const r = this.raft;
    if (reason === 'no_leader') return new AspenError('ENOT_LEADER', `mon ${r.id} knows no leader`, { leaderHint: null });
    return new AspenError('E_PROPOSAL_DROPPED', `proposal dropped by mon ${r.id}: ${reason}`, {
      reason,
      leaderHint: r.leadTransferee ?? r.lead,
    });
  }

  /**
   * Consumes a message from a peer.
   * @throws AspenError EINVAL for local-only message types arriving from the network.
   */
  step(msg: Message): void {
    if (isLocalMessage(msg.type)) throw new AspenError('EINVAL', `${msg.type} is local-only and cannot come from a peer`);
    assert(msg.to === this.raft.id, `message for ${msg.to} delivered to ${this.raft.id}`);
    this.raft.step(msg);
  }

  /**
   * Requests a linearizable read point (ReadIndex, thesis §6.4). `ctx` must be unique across
   * the cluster (e.g. mon id + counter); the answer appears in a later Ready's `readStates`
   * with the same ctx: serve the read once the state machine applied `readState.index`.
   * Requests may be lost (leader change): callers retry after a timeout.
   * @throws AspenError ENOT_LEADER when no leader is known; E_PROPOSAL_DROPPED when the leader's queue is full.
   */
  readIndex(ctx: Uint8Array): void {
    const r = this.raft;
    if (r.role !== 'leader' && r.lead === null) {
      throw new AspenError('ENOT_LEADER', `mon ${r.id} knows no leader`, { leaderHint: null });
    }
    const dropped = r.step(makeMessage({ type: 'MsgReadIndex', from: r.id, to: r.id, context: ctx }));
    if (dropped !== null) throw this.dropError(dropped);
  }

  /**
   * Asks the leader to hand leadership to `to` (thesis §3.10): it catches `to` up, then sends
   * MsgTimeoutNow; proposals are dropped meanwhile; abandoned after an election timeout.
   * On a follower the request is forwarded to the leader.
   */
  transferLeadership(to: NodeId): void {
    this.raft.step(makeMessage({ type: 'MsgTransferLeader', from: to, to: this.raft.id }));
  }

  /** The transport failed to reach `id`: stop pipelining to it. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(makeMessage({ type: 'MsgUnreachable', from: id, to: this.raft.id }));
  }

  /** The transport finished (`ok`) or failed sending a MsgSnap to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(makeMessage({ type: 'MsgSnapStatus', from: id, to: this.raft.id, reject: !ok }));
  }

  /** Whether `ready()` has anything; false while a Ready is outstanding (not yet advanced). */
  hasReady(): boolean {
    if (this.outstanding) return false;
    const r = this.raft;
    const ss = r.softState();
    if (ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role) return true;
    if (!hardStateEqual(r.hardState(), this.prevHardState)) return true;
    if (r.log.unstable.snapshot !== null) return true;
    if (r.log.unstableEntries().length > 0) return true;
    if (r.log.hasNextCommittedEnts()) return true;
    return r.msgs.length > 0 || r.readStates.length > 0;
  }

  /**
   * Takes the outbox (see the Ready contract in types.ts). Must be followed by `advance()`
   * before the next `ready()`; `step`/`tick`/`propose` may be called in between.
   */
  ready(): Ready {
    assert(this.outstanding === null, 'ready() called twice without advance()');
    const r = this.raft;
    const ss = r.softState();
    const softChanged = ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role;
    const hs = r.hardState();
    const hardChanged = !hardStateEqual(hs, this.prevHardState);
    const entries = [...r.log.unstableEntries()];
    const snapshot = r.log.unstable.snapshot;
    const committedEntries = r.log.nextCommittedEnts();
    // A restored snapshot is acknowledged to the leader (match = its index) like appended
    // entries, so it must be as durable as they are.
    const mustSync =
      entries.length > 0 ||
      snapshot !== null ||
      (hardChanged && (hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote));
    const rd: Ready = {
      softState: softChanged ? ss : null,
      hardState: hardChanged ? hs : null,
      entries,
      snapshot,
      committedEntries,
      messages: r.msgs,
      readStates: r.readStates,
      mustSync,
    };
    r.msgs = [];
    r.readStates = [];
    if (softChanged) this.prevSoftState = ss;
    if (hardChanged) this.prevHardState = hs;
    if (snapshot) r.log.acceptApplying(snapshot.metadata.index);
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted) r.log.acceptApplying(lastCommitted.index);
    this.outstanding = { ready: rd };
    return rd;
  }

  /**
   * Acknowledges the last Ready: its entries/snapshot are persisted and its committed entries
   * applied. Applies the membership changes among them.
   */
  advance(): void {
    const o = this.outstanding;
    assert(o !== null, 'advance() without ready()');
    this.outstanding = null;
    const r = this.raft;
    const rd = o.ready;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) r.log.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot) {
      r.log.stableSnapTo(rd.snapshot.metadata.index);
      r.log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.committedEntries.length > 0) {
      for (const e of rd.committedEntries) {
        if (e.type !== 'conf_change') continue;
        const cc = tryDecodeConfChange(e.data);
        if (cc) r.applyConfChange(cc);
      }
      r.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1]!.index);
      r.reduceUncommittedSize(rd.committedEntries);
    }
  }

  /** The cheap part of {@link status} (no copies of membership or progress). */
  basicStatus(): BasicStatus {
    const r = this.raft;
    return { id: r.id, term: r.term, vote: r.vote, commit: r.log.committed, applied: r.log.applied, lead: r.lead, role: r.role };
  }

  /** Current state (a copy). */
  status(): RaftStatus {
    const r = this.raft;
    const progress: Record<NodeId, ProgressStatus> = {};
    if (r.role === 'leader') {
      for (const [id, pr] of r.prs) {
        progress[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, isLearner: pr.isLearner };
      }
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      lead: r.lead,
      role: r.role,
      confState: r.confState,
      leadTransferee: r.leadTransferee,
      progress,
    };
  }
}
