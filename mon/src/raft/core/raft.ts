/**
 * The Raft state machine (etcd-raft raft.go): roles follower / pre_candidate / candidate /
 * leader, driven by `step(message)` and `tick()`, producing messages in `msgs` and log
 * changes in `log` that {@link RawNode} turns into a `Ready`.
 *
 * Follows the Raft paper (Ongaro & Ousterhout 2014) and Ongaro's thesis (2014):
 * election §5.2 with randomized timeouts, the election restriction §5.4.1, commit of
 * current-term entries only §5.4.2 (Fig. 8), pre-vote §9.6, check-quorum and leader lease
 * for votes §6.2/§9.6, leadership transfer §3.10, ReadIndex §6.4, single-server membership
 * changes §4.1 (taking effect when applied, as etcd does), InstallSnapshot §7 (Raft paper).
 */
import { assert, assertNever } from '@aspen/shared';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, RaftConfig, RaftStorage, ReadState, Role, Snapshot, SoftState } from '../types.ts';
import { applyConfChangeToConfState, decodeConfChange } from '../confchange.ts';
import { RaftLog } from './log.ts';
import { Progress, committedIndex, voteResult } from './progress.ts';
import type { VoteResult } from './progress.ts';
import { READ_INDEX_PENDING_MAX, ReadOnly } from './read-only.ts';
import { buildMessage, bytesEqual, entriesSizeBytes, makeMessage } from './util.ts';
import type { MessageInit } from './util.ts';

/** Why a proposal (or read) was dropped; null from `step` means accepted/handled. */
export type DropReason =
  | 'no_leader'
  | 'transfer_in_progress'
  | 'not_member'
  | 'uncommitted_limit'
  | 'read_index_limit'
  | 'empty_proposal';

/** Context of a MsgVote sent because of MsgTimeoutNow: bypasses the leader lease (§3.10). */
export const CAMPAIGN_TRANSFER_CONTEXT = new TextEncoder().encode('CampaignTransfer');

/** Bytes of committed entries handed to the state machine per Ready at most. */
export const MAX_APPLYING_BYTES = 64 * 1024 * 1024;

type CampaignKind = 'pre_election' | 'election' | 'transfer';

/** One Raft member's protocol state; driven through {@link RawNode}. */
export class Raft {
  readonly id: NodeId;
  readonly log: RaftLog;
  term = 0;
  vote: NodeId | null = null;
  lead: NodeId | null = null;
  role: Role = 'follower';
  confState: ConfState = { voters: [], learners: [] };
  /** Progress of every voter and learner (including ourselves). */
  prs = new Map<NodeId, Progress>();
  /** Outbox: drained by RawNode.ready(). */
  msgs: Message[] = [];
  /** ReadIndex results for local requests: drained by RawNode.ready(). */
  readStates: ReadState[] = [];
  /** Votes received in the current (pre-)campaign. */
  private readonly votes = new Map<NodeId, boolean>();
  electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  leadTransferee: NodeId | null = null;
  /** Index of the latest conf change entry appended by this leader; a new one waits until it is applied. */
  pendingConfIndex = 0;
  private uncommittedSizeBytes = 0;
  private readOnly = new ReadOnly();
  /** ReadIndex requests that arrived before this leader committed an entry in its term. */
  private pendingReadIndexMessages: Message[] = [];

  constructor(
    readonly config: RaftConfig,
    storage: RaftStorage,
  ) {
    assert(config.heartbeatTick > 0 && config.electionTick > config.heartbeatTick, 'need 0 < heartbeatTick < electionTick');
    assert(config.maxInflightMsgs >= 1 && config.maxSizePerMsgBytes > 0, 'need maxInflightMsgs >= 1 and maxSizePerMsgBytes > 0');
    this.id = config.id;
    this.log = new RaftLog(storage, MAX_APPLYING_BYTES);
    const { hardState, confState } = storage.initialState();
    if (hardState.term !== 0 || hardState.vote !== null || hardState.commit !== 0) {
      assert(hardState.commit <= this.log.lastIndex(), `hard state commit ${hardState.commit} beyond last index ${this.log.lastIndex()}`);
      // The commit index is only a hint (persisted without fsync when only it changed); it may
      // lag the snapshot after a crash, and everything up to the snapshot is committed.
      this.log.committed = Math.max(hardState.commit, this.log.committed);
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    const applied = Math.max(config.applied, this.log.applied);
    assert(applied <= this.log.lastIndex(), `applied ${applied} beyond the last persisted entry ${this.log.lastIndex()}`);
    // Only committed entries are ever applied: the persisted commit hint may lag behind.
    if (applied > this.log.committed) this.log.committed = applied;
    // Membership = storage's conf state plus the conf changes already applied after it.
    let cs = confState;
    if (applied >= this.log.firstIndex()) {
      for (const e of this.log.slice(this.log.firstIndex(), applied + 1, Number.MAX_SAFE_INTEGER)) {
        const cc = e.type === 'conf_change' ? tryDecodeConfChange(e.data) : null;
        if (cc) cs = applyConfChangeToConfState(cs, cc);
      }
    }
    this.log.appliedTo(applied);
    this.setConfState(cs);
    this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------- state snapshots

  /** Volatile role and leader. */
  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  /** What must be persisted: term, vote, commit. */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** Current voters (sorted). */
  get voters(): readonly NodeId[] {
    return this.confState.voters;
  }

  /** Whether this node may campaign: a voter with no snapshot waiting to be persisted. */
  promotable(): boolean {
    const pr = this.prs.get(this.id);
    return pr !== undefined && !pr.isLearner && this.log.unstable.snapshot === null;
  }

  // ---------------------------------------------------------------- role transitions

  private resetRandomizedElectionTimeout(): void {
    const et = this.config.electionTick;
    const r = this.config.randomInt(et);
    assert(Number.isInteger(r) && r >= 0 && r < et, `randomInt(${et}) returned ${r}`);
    this.randomizedElectionTimeout = et + r;
  }

  private reset(term: number): void {
    if (this.term !== term) {
      assert(term > this.term, `term must not go backwards (${this.term} -> ${term})`);
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.votes.clear();
    const last = this.log.lastIndex();
    for (const [id, old] of this.prs) {
      const pr = new Progress(last + 1, this.config.maxInflightMsgs, old.isLearner);
      if (id === this.id) {
        pr.match = last;
        pr.recentActive = true;
      }
      this.prs.set(id, pr);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSizeBytes = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  /** Becomes a follower of `lead` (or of nobody yet) in `term` (≥ the current term). */
  becomeFollower(term: number, lead: NodeId | null): void {
    assert(term >= this.term, `becomeFollower(${term}) below current term ${this.term}`);
    assert(lead !== this.id, 'a follower does not follow itself');
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    // Pre-vote changes neither term nor vote (§9.6): a partitioned node does not disrupt.
    this.votes.clear();
    this.lead = null;
    this.role = 'pre_candidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', `only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const self = this.prs.get(this.id);
    assert(self !== undefined, 'leader must be a member');
    self.becomeReplicate();
    // The no-op entry of the new term (§5.4.2, §6.4): commits everything before it.
    const ok = this.appendEntry([{ type: 'normal', data: new Uint8Array(0) }]);
    assert(ok, 'the empty leader entry is never dropped');
    this.uncommittedSizeBytes = 0;
    // No membership change until the no-op is applied: the tail may hold an unapplied change,
    // and a leader must commit an entry of its term before changing the configuration
    // (the fix to single-server changes in Ongaro's raft-dev post of 2015).
    this.pendingConfIndex = this.log.lastIndex();
  }

  // ---------------------------------------------------------------- ticks

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: 'MsgHup', from: this.id, to: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTick) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) this.checkQuorumActive();
      // A transfer not done within an election timeout is abandoned (§3.10).
      if (this.role === 'leader' && this.leadTransferee !== null) this.abortLeaderTransfer();
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.config.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: 'MsgBeat', from: this.id, to: this.id }));
    }
  }

  /** Check-quorum (§6.2): a leader that has not heard from a quorum in an election timeout steps down. */
  private checkQuorumActive(): void {
    let active = 0;
    for (const id of this.voters) {
      if (id === this.id || this.prs.get(id)?.recentActive) active++;
    }
    if (active < Math.floor(this.voters.length / 2) + 1) this.becomeFollower(this.term, null);
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
  }

  // ---------------------------------------------------------------- sending

  private send(init: Omit<MessageInit, 'from'>): void {
    assert(init.to !== this.id, 'never send to ourselves');
    let term = init.term ?? 0;
    const t = init.type;
    if (t === 'MsgVote' || t === 'MsgPreVote' || t === 'MsgVoteResp' || t === 'MsgPreVoteResp') {
      assert(term !== 0, `${t} must carry a term`);
    } else if (t === 'MsgProp' || t === 'MsgReadIndex') {
      // Forwarded like local messages: no term, so a term change on the way does not reject them.
      term = 0;
    } else {
      term = this.term;
    }
    this.msgs.push(buildMessage(init, this.id, term));
  }

  /** Sends MsgApp (or MsgSnap when the entries are compacted) to `to`; true when something was sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    assert(pr !== undefined, `no progress for ${to}`);
    if (pr.isPaused()) return false;
    assert(pr.next >= 1 && pr.next <= this.log.lastIndex() + 1, `progress next ${pr.next} out of range`);
    const prevTerm = this.log.term(pr.next - 1);
    const ents = this.log.entriesFrom(pr.next, this.config.maxSizePerMsgBytes);
    if (ents !== null && ents.length === 0 && !sendIfEmpty) return false;
    if (prevTerm === null || ents === null) {
      // The follower needs compacted entries: InstallSnapshot (Raft §7).
      if (!pr.recentActive) return false;
      const snap = this.log.snapshot();
      if (snap.metadata.index === 0) return false; // storage has none yet
      pr.becomeSnapshot(snap.metadata.index);
      this.send({ type: 'MsgSnap', to, snapshot: snap });
      return true;
    }
    this.send({ type: 'MsgApp', to, index: pr.next - 1, logTerm: prevTerm, entries: ents, commit: this.log.committed });
    pr.sentEntries(ents.length);
    return true;
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | null): void {
    const pr = this.prs.get(to);
    assert(pr !== undefined, `no progress for ${to}`);
    // Never tell a follower to commit beyond what it is known to hold.
    const commit = Math.min(pr.match, this.log.committed);
    this.send({ type: 'MsgHeartbeat', to, commit, ...(ctx ? { context: ctx } : {}) });
  }

  private bcastHeartbeat(ctx: Uint8Array | null): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  // ---------------------------------------------------------------- log helpers

  private appendEntry(ents: readonly { type: Entry['type']; data: Uint8Array }[]): boolean {
    const li = this.log.lastIndex();
    const full: Entry[] = ents.map((e, i) => ({ term: this.term, index: li + 1 + i, type: e.type, data: e.data }));
    const size = entriesSizeBytes(full);
    const max = this.config.maxUncommittedEntriesSizeBytes;
    if (max > 0 && this.uncommittedSizeBytes > 0 && this.uncommittedSizeBytes + size > max) return false;
    this.uncommittedSizeBytes += size;
    const last = this.log.append(full);
    const self = this.prs.get(this.id);
    assert(self !== undefined, 'the appending leader is a member');
    self.maybeUpdate(last);
    this.maybeCommit();
    return true;
  }

  /** Lowers the uncommitted-size budget by entries now applied (leader only). */
  reduceUncommittedSize(ents: readonly Entry[]): void {
    if (this.role !== 'leader') return;
    this.uncommittedSizeBytes = Math.max(0, this.uncommittedSizeBytes - entriesSizeBytes(ents));
  }

  /** Advances commit to the quorum match if that entry is from our term (§5.4.2). */
  private maybeCommit(): boolean {
    const mci = committedIndex(this.voters, (id) => this.prs.get(id)?.match ?? 0);
    const advanced = this.log.maybeCommit(mci, this.term);
    if (advanced && this.role === 'leader' && this.committedEntryInCurrentTerm()) this.releasePendingReadIndexMessages();
    return advanced;
  }

  /** Whether the commit index is an entry of our term (a new leader's no-op committed, §6.4). */
  committedEntryInCurrentTerm(): boolean {
    return this.log.termOrZero(this.log.committed) === this.term;
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    for (const e of this.log.slice(lo, this.log.committed + 1, Number.MAX_SAFE_INTEGER)) {
      if (e.type === 'conf_change') return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- elections

  private hup(kind: 'election' | 'transfer'): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) return;
    // A committed but unapplied membership change may change who we must ask for votes.
    if (this.hasUnappliedConfChanges()) return;
    if (kind === 'transfer') this.campaign('transfer');
    else this.campaign(this.config.preVote ? 'pre_election' : 'election');
  }

  private campaign(kind: CampaignKind): void {
    assert(this.promotable(), 'only a promotable node campaigns');
    let voteType: 'MsgVote' | 'MsgPreVote';
    let term: number;
    if (kind === 'pre_election') {
      this.becomePreCandidate();
      voteType = 'MsgPreVote';
      term = this.term + 1; // the term we would campaign in; ours does not change yet
    } else {
      this.becomeCandidate();
      voteType = 'MsgVote';
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // Single voter: win at once.
      if (kind === 'pre_election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({
        type: voteType,
        to: id,
        term,
        index: lastIndex,
        logTerm: lastTerm,
        ...(kind === 'transfer' ? { context: CAMPAIGN_TRANSFER_CONTEXT } : {}),
      });
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    return voteResult(this.voters, this.votes);
  }

  // ---------------------------------------------------------------- step

  /**
   * Consumes one message (or local event). Returns null when handled, or why a proposal /
   * read was dropped (only MsgProp and MsgReadIndex are ever dropped with a reason).
   */
  step(m: Message): DropReason | null {
    assert(m.to === this.id || m.term === 0, `message for ${m.to} stepped on ${this.id}`);
    assert(m.from !== this.id || m.term === 0, 'a node never receives its own network message');
    if (m.term === 0) {
      // Local message, or a forwarded MsgProp/MsgReadIndex.
    } else if (m.term > this.term) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER_CONTEXT);
        // Leader lease (§6.2 + §9.6): while we heard from a leader within the minimum election
        // timeout, ignore vote requests, so a rejoining node cannot depose a healthy leader.
        const inLease = this.config.checkQuorum && this.lead !== null && this.electionElapsed < this.config.electionTick;
        if (!force && inLease) return null;
      }
      if (m.type === 'MsgPreVote') {
        // Never change our term in response to a pre-vote.
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // A granted pre-vote carries the future term; our term moves when we win the pre-vote.
      } else if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.config.checkQuorum || this.config.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
        // A stale leader (e.g. healed from a partition) learns our term from this and steps down;
        // without it, pre-vote would keep us from ever raising its term.
        this.send({ type: 'MsgAppResp', to: m.from });
      } else if (m.type === 'MsgPreVote') {
        this.send({ type: 'MsgPreVoteResp', to: m.from, term: this.term, reject: true });
      }
      return null;
    }

    switch (m.type) {
      case 'MsgHup':
        this.hup('election');
        return null;
      case 'MsgVote':
      case 'MsgPreVote': {
        const canVote =
          this.vote === m.from ||
          (this.vote === null && this.lead === null) ||
          (m.type === 'MsgPreVote' && m.term > this.term);
        const respType = m.type === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp';
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          this.send({ type: respType, to: m.from, term: m.term });
          if (m.type === 'MsgVote') {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send({ type: respType, to: m.from, term: this.term, reject: true });
        }
        return null;
      }
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        return this.stepLeader(m);
      case 'candidate':
      case 'pre_candidate':
        return this.stepCandidate(m);
      case 'follower':
        return this.stepFollower(m);
      default:
        return assertNever(this.role, 'role');
    }
  }

  private stepLeader(m: Message): DropReason | null {
    assert(this.role === 'leader' && this.lead === this.id, 'stepLeader on a leader');
    switch (m.type) {
      case 'MsgBeat':
        this.bcastHeartbeat(this.readOnly.lastPendingRequestCtx());
        return null;
      case 'MsgProp':
        return this.leaderPropose(m);
      case 'MsgReadIndex':
        return this.leaderReadIndex(m);
      default:
        break;
    }
    const pr = this.prs.get(m.from);
    if (pr === undefined) return null; // not (or no longer) a member
    switch (m.type) {
      case 'MsgAppResp':
        pr.recentActive = true;
        this.leaderHandleAppResp(m, pr);
        return null;
      case 'MsgHeartbeatResp':
        this.leaderHandleHeartbeatResp(m, pr);
        return null;
      case 'MsgSnapStatus':
        if (pr.state !== 'snapshot') return null;
        pr.becomeProbe();
        // Wait for a heartbeat answer or MsgAppResp before probing again.
        pr.probeSent = true;
        return null;
      case 'MsgUnreachable':
        // Optimistic pipelining to an unreachable peer is pointless: fall back to probing.
        if (pr.state === 'replicate') pr.becomeProbe();
        return null;
      case 'MsgTransferLeader':
        this.leaderTransfer(m.from, pr);
        return null;
      case 'MsgHup':
      case 'MsgApp':
      case 'MsgVote':
      case 'MsgVoteResp':
      case 'MsgPreVote':
      case 'MsgPreVoteResp':
      case 'MsgSnap':
      case 'MsgHeartbeat':
      case 'MsgTimeoutNow':
      case 'MsgReadIndexResp':
        return null; // not meaningful for a leader at its own term
      default:
        return assertNever(m.type, 'message type');
    }
  }

  private leaderPropose(m: Message): DropReason | null {
    if (m.entries.length === 0) return 'empty_proposal';
    if (!this.prs.has(this.id)) return 'not_member';
    if (this.leadTransferee !== null) return 'transfer_in_progress';
    const ents = m.entries.map((e, i) => {
      if (e.type !== 'conf_change') return { type: e.type, data: e.data };
      // Only one membership change may be pending (§4.1); a refused or malformed one becomes a no-op.
      const cc = tryDecodeConfChange(e.data);
      if (cc === null || this.pendingConfIndex > this.log.applied || !this.confChangeKeepsAVoter(cc)) {
        return { type: 'normal' as const, data: new Uint8Array(0) };
      }
      this.pendingConfIndex = this.log.lastIndex() + i + 1;
      return { type: e.type, data: e.data };
    });
    if (!this.appendEntry(ents)) return 'uncommitted_limit';
    this.bcastAppend();
    return null;
  }

  /** Whether applying `cc` would leave at least one voter. */
  confChangeKeepsAVoter(cc: ConfChange): boolean {
    const others = this.confState.voters.filter((v) => v !== cc.nodeId).length;
    return others > 0 || cc.type === 'add_voter';
  }

  private leaderReadIndex(m: Message): DropReason | null {
    // A new leader does not know the commit index until it commits an entry of its term (§6.4 step 1).
    if (!this.committedEntryInCurrentTerm()) {
      if (this.pendingReadIndexMessages.length >= READ_INDEX_PENDING_MAX) return 'read_index_limit';
      this.pendingReadIndexMessages.push(m);
      return null;
    }
    return this.sendReadIndexResponse(m);
  }

  private sendReadIndexResponse(m: Message): DropReason | null {
    if (this.voters.length === 1 && this.voters[0] === this.id) {
      this.respondToReadIndex(m, this.log.committed);
      return null;
    }
    if (!this.readOnly.addRequest(this.log.committed, m)) return 'read_index_limit';
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeat(m.context);
    return null;
  }

  private releasePendingReadIndexMessages(): void {
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.sendReadIndexResponse(m);
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context });
    } else {
      this.send({ type: 'MsgReadIndexResp', to: req.from, index, context: req.context });
    }
  }

  private leaderHandleAppResp(m: Message, pr: Progress): void {
    if (m.reject) {
      // Fast backtracking: jump over the follower's conflicting term in one step.
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    switch (pr.state) {
      case 'probe':
        pr.becomeReplicate();
        break;
      case 'snapshot':
        if (pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case 'replicate':
        pr.inflights.freeLE(m.index);
        break;
      default:
        assertNever(pr.state, 'progress state');
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Pipelining: fill the inflight window.
    while (this.prs.get(m.from) === pr && this.maybeSendAppend(m.from, false)) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send({ type: 'MsgTimeoutNow', to: m.from });
    }
  }

  private leaderHandleHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === null) return;
    const votes = new Map<NodeId, boolean>();
    for (const id of acks) votes.set(id, true);
    if (voteResult(this.voters, votes) !== 'won') return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
  }

  private leaderTransfer(target: NodeId, pr: Progress): void {
    if (pr.isLearner) return;
    if (this.leadTransferee !== null) {
      if (this.leadTransferee === target) return;
      this.abortLeaderTransfer();
    }
    if (target === this.id) return;
    // The transfer must finish within an election timeout (§3.10).
    this.electionElapsed = 0;
    this.leadTransferee = target;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'MsgTimeoutNow', to: target });
    else this.sendAppend(target);
  }

  /** Gives up a leadership transfer in progress (proposals are accepted again). */
  abortLeaderTransfer(): void {
    this.leadTransferee = null;
  }

  private stepCandidate(m: Message): DropReason | null {
    assert(this.role === 'candidate' || this.role === 'pre_candidate', 'stepCandidate on a (pre-)candidate');
    const myVoteResp = this.role === 'pre_candidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    switch (m.type) {
      case 'MsgProp':
        return 'no_leader';
      case 'MsgReadIndex':
        return 'no_leader';
      case 'MsgApp':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return null;
      case 'MsgHeartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return null;
      case 'MsgSnap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return null;
      case 'MsgVoteResp':
      case 'MsgPreVoteResp': {
        if (m.type !== myVoteResp) return null;
        const res = this.poll(m.from, !m.reject);
        if (res === 'won') {
          if (this.role === 'pre_candidate') {
            this.campaign('election');
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === 'lost') {
          // A rejecting pre-vote may come from a higher term, already adopted in step().
          this.becomeFollower(this.term, null);
        }
        return null;
      }
      case 'MsgHup':
      case 'MsgBeat':
      case 'MsgAppResp':
      case 'MsgVote':
      case 'MsgPreVote':
      case 'MsgHeartbeatResp':
      case 'MsgUnreachable':
      case 'MsgSnapStatus':
      case 'MsgTransferLeader':
      case 'MsgTimeoutNow':
      case 'MsgReadIndexResp':
        return null;
      default:
        return assertNever(m.type, 'message type');
    }
  }

  private stepFollower(m: Message): DropReason | null {
    assert(this.role === 'follower', 'stepFollower on a follower');
    switch (m.type) {
      case 'MsgProp':
      case 'MsgReadIndex':
      case 'MsgTransferLeader':
        if (this.lead === null) return 'no_leader';
        // Forwarded as-is (sender kept, no term: proposals and reads are not bound to a term).
        this.msgs.push(buildMessage({ type: m.type, to: this.lead, entries: m.entries, context: m.context }, m.from, 0));
        return null;
      case 'MsgApp':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return null;
      case 'MsgHeartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return null;
      case 'MsgSnap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return null;
      case 'MsgTimeoutNow':
        // The leader asks us to start an election at once, skipping pre-vote (§3.10).
        this.hup('transfer');
        return null;
      case 'MsgReadIndexResp':
        this.readStates.push({ index: m.index, requestCtx: m.context });
        return null;
      case 'MsgHup':
      case 'MsgBeat':
      case 'MsgAppResp':
      case 'MsgVote':
      case 'MsgVoteResp':
      case 'MsgPreVote':
      case 'MsgPreVoteResp':
      case 'MsgHeartbeatResp':
      case 'MsgUnreachable':
      case 'MsgSnapStatus':
        return null;
      default:
        return assertNever(m.type, 'message type');
    }
  }

  // ---------------------------------------------------------------- follower handlers

  private handleAppendEntries(m: Message): void {
    assert(m.term === this.term && this.role === 'follower', 'appends are handled by a follower of the same term');
    if (m.index < this.log.committed) {
      this.send({ type: 'MsgAppResp', to: m.from, index: this.log.committed });
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== null) {
      assert(this.log.lastIndex() >= lastNew && this.log.committed <= this.log.lastIndex(), 'append result within the log');
      this.send({ type: 'MsgAppResp', to: m.from, index: lastNew });
      return;
    }
    // Reject with a hint: the last index at or before m.index whose term is ≤ m.logTerm, so the
    // leader can skip a whole conflicting term per round trip.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({ type: 'MsgAppResp', to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  private handleHeartbeat(m: Message): void {
    assert(m.term === this.term && this.role === 'follower', 'heartbeats are handled by a follower of the same term');
    // The leader never sends a commit beyond our match, so it is within our log.
    this.log.commitTo(m.commit);
    this.send({ type: 'MsgHeartbeatResp', to: m.from, context: m.context });
  }

  private handleSnapshot(m: Message): void {
    assert(m.term === this.term && this.role === 'follower', 'snapshots are handled by a follower of the same term');
    const snap = m.snapshot;
    if (snap === null) return;
    if (this.restore(snap)) {
      this.send({ type: 'MsgAppResp', to: m.from, index: this.log.lastIndex() });
    } else {
      this.send({ type: 'MsgAppResp', to: m.from, index: this.log.committed });
    }
  }

  /** InstallSnapshot receiver (Raft §7): returns true when the snapshot replaced our log. */
  private restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.log.committed) return false;
    if (this.role !== 'follower') {
      // Only a follower restores; callers made us one. Defensive, as etcd.
      this.becomeFollower(this.term + 1, null);
      return false;
    }
    if (this.log.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the snapshot's last entry: just fast-forward commit.
      this.log.commitTo(s.metadata.index);
      return false;
    }
    this.log.restore(s);
    this.prs = new Map();
    this.setConfState(s.metadata.confState);
    assert(this.log.lastIndex() === s.metadata.index, 'log ends at the restored snapshot');
    return true;
  }

  // ---------------------------------------------------------------- membership

  /** Installs a membership, keeping the progress of members that stay. */
  private setConfState(cs: ConfState): void {
    const next = new Map<NodeId, Progress>();
    const last = this.log.lastIndex();
    const add = (id: NodeId, isLearner: boolean): void => {
      let pr = this.prs.get(id);
      if (pr === undefined) {
        pr = new Progress(last + 1, this.config.maxInflightMsgs, isLearner);
        // A new member counts as active so check-quorum does not depose us before it speaks.
        pr.recentActive = true;
        if (id === this.id) pr.match = last;
      }
      pr.isLearner = isLearner;
      next.set(id, pr);
    };
    for (const id of cs.voters) add(id, false);
    for (const id of cs.learners) add(id, true);
    this.prs = next;
    this.confState = { voters: [...cs.voters].sort(), learners: [...cs.learners].sort() };
    assert(this.prs.size === cs.voters.length + cs.learners.length, 'voters and learners are disjoint');
  }

  /**
   * Applies a committed membership change (called when its entry is applied, thesis §4.1 as
   * etcd). A removed or demoted leader steps down; a leader whose quorum shrank may commit more.
   */
  applyConfChange(cc: ConfChange): ConfState {
    this.setConfState(applyConfChangeToConfState(this.confState, cc));
    if (this.role !== 'leader') return this.confState;
    const self = this.prs.get(this.id);
    if (self === undefined || self.isLearner) {
      this.becomeFollower(this.term, null);
      return this.confState;
    }
    if (this.leadTransferee !== null && !this.confState.voters.includes(this.leadTransferee)) this.abortLeaderTransfer();
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else {
      for (const id of this.prs.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    return this.confState;
  }
}

/** Decodes a conf change entry's data, or null when malformed (treated as a no-op everywhere). */
export function tryDecodeConfChange(data: Uint8Array): ConfChange | null {
  try {
    return decodeConfChange(data);
  } catch {
    return null;
  }
}
