/**
 * A monitor's Raft node at run time: drives the pure core (`RawNode`) with real storage
 * (SQLite), a transport (gRPC) and timers, and applies committed entries to the state
 * machine. It follows the Ready contract of ../raft/types.ts: persist (one fsynced SQLite
 * transaction per Ready — group commit) → send → apply → advance.
 *
 * Requests:
 * - `submit` proposes a command envelope and resolves with its result once the entry is
 *   applied *on this node* (a follower's proposal is forwarded to the leader by the core and
 *   resolved when the follower applies it); a retry with the same (clientId, seq) gets the
 *   first result (exactly-once, see ../core/state-machine.ts).
 * - `linearizableRead` waits for a ReadIndex (thesis §6.4) and for this node to apply up to
 *   it, so reads served afterwards are linearizable on any member.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AspenError, assert } from '@aspen/shared';
import { RawNode } from '../raft/rawnode.ts';
import { applyConfChangeToConfState, decodeConfChange, encodeConfChange } from '../raft/confchange.ts';
import type { ConfChange, ConfState, Message, NodeId, Ready, SoftState } from '../raft/types.ts';
import { decodeEnvelope, encodeEnvelope, type CommandResult, type MonCommand } from '../core/command.ts';
import { MonStateMachine, initialMonState, type ApplyEffects } from '../core/state-machine.ts';
import { decodeMonState, encodeMonState } from '../core/snapshot.ts';
import type { QuorumInfo } from '../core/views.ts';
import type { SqliteRaftStorage } from './raft-storage.ts';

/** What the node needs from a transport. */
export interface RaftMessageSink {
  send(messages: readonly Message[]): void;
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
}

/** Options of a {@link MonNode}. */
export interface MonNodeOptions {
  id: NodeId;
  fsid: string;
  storage: SqliteRaftStorage;
  transport: RaftMessageSink;
  logger: Logger;
  /** Monitors known at mkfs (initial members, or the MonMap read at join): addresses until the MonMap exists. */
  knownMons: { name: string; addr: string }[];
  tickIntervalMs: number;
  electionTick: number;
  heartbeatTick: number;
  /** Take a state snapshot and compact the log every this many applied entries. */
  snapshotEveryEntries: number;
  /** Entries kept behind a snapshot so slow followers catch up without a snapshot. */
  compactionTrailingEntries: number;
  /** How long a proposal may wait for its entry to apply before ETIMEDOUT (the client retries). */
  proposalTimeoutMs: number;
}

/** Message types a leader sends before its own write is durable (thesis §10.2.1). */
const LEADER_EARLY_TYPES: ReadonlySet<Message['type']> = new Set(['MsgApp', 'MsgHeartbeat', 'MsgSnap']);

/** Outstanding requests this node tracks at most (beyond: EBUSY). */
export const PENDING_REQUESTS_MAX = 100_000;

interface Waiter {
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}
interface ReadWaiter {
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** Set when the ReadIndex answer arrived: resolve once applied >= index. */
  index: number | null;
}

/** The running Raft member. */
export class MonNode {
  readonly rawNode: RawNode;
  sm: MonStateMachine | null = null;
  private confState: ConfState;
  private softState: SoftState = { leader: null, role: 'follower' };
  private applied: number;
  private lastSnapshotIndex: number;
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly readWaiters = new Map<string, ReadWaiter>();
  private confWaiters = new Map<string, Waiter[]>();
  private tickTimer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private stopped = false;
  private readonly effectListeners: ((e: ApplyEffects) => void)[] = [];
  private readonly leaderListeners: ((isLeader: boolean) => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly opts: MonNodeOptions) {
    this.log = opts.logger;
    const snap = opts.storage.snapshot();
    this.confState = snap.metadata.confState;
    if (snap.data.length > 0) this.sm = new MonStateMachine(decodeMonState(snap.data));
    this.applied = snap.metadata.index;
    this.lastSnapshotIndex = snap.metadata.index;
    this.rawNode = new RawNode({
      id: opts.id,
      electionTick: opts.electionTick,
      heartbeatTick: opts.heartbeatTick,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsgBytes: 1 << 20,
      maxInflightMsgs: 256,
      maxUncommittedEntriesSizeBytes: 64 << 20,
      applied: this.applied,
      randomInt: (n) => randomBytes(4).readUInt32LE(0) % n,
    }, opts.storage);
    this.updatePeers();
  }

  /** Starts ticking. */
  start(): void {
    this.tickTimer = setInterval(() => {
      this.rawNode.tick();
      this.schedule();
    }, this.opts.tickIntervalMs);
    this.schedule();
  }

  /** Stops timers and fails outstanding requests with ETIMEDOUT. Storage stays open. */
  stop(): void {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    const err = new AspenError('ETIMEDOUT', 'monitor is shutting down');
    for (const ws of [...this.waiters.values(), ...this.confWaiters.values()]) for (const w of ws) { clearTimeout(w.timer); w.reject(err); }
    for (const w of this.readWaiters.values()) { clearTimeout(w.timer); w.reject(err); }
    this.waiters.clear();
    this.confWaiters.clear();
    this.readWaiters.clear();
  }

  get isLeader(): boolean {
    return this.softState.role === 'leader';
  }
  get leader(): NodeId | null {
    return this.softState.leader;
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get members(): ConfState {
    return this.confState;
  }

  /** Subscribes to the effects of applied entries (new incrementals, monmap changes). */
  onApply(listener: (e: ApplyEffects) => void): void {
    this.effectListeners.push(listener);
  }
  /** Subscribes to leadership gains and losses of this node. */
  onLeaderChange(listener: (isLeader: boolean) => void): void {
    this.leaderListeners.push(listener);
  }

  /** Address of a member, from the MonMap (or the initial members before it exists). */
  addrOf(id: NodeId): string | undefined {
    return (this.sm?.state.monMap.mons ?? this.opts.knownMons).find((m) => m.name === id)?.addr;
  }

  /** Live quorum facts for status views. */
  quorumInfo(): QuorumInfo {
    const st = this.rawNode.status();
    const quorum = this.isLeader
      ? Object.entries(st.progress).filter(([id, p]) => !p.isLearner && (p.recentActive || id === this.opts.id)).map(([id]) => id).sort()
      : [];
    return { leader: this.leader, quorum, term: st.term, commitIndex: st.commit };
  }

  /** Feeds a message from a peer. */
  step(msg: Message): void {
    if (this.stopped) return;
    try {
      this.rawNode.step(msg);
    } catch (err) {
      if (err instanceof AspenError) return; // a stale or unknown-peer message: drop it
      throw err;
    }
    this.schedule();
  }

  reportUnreachable(id: NodeId): void {
    this.rawNode.reportUnreachable(id);
    this.schedule();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.rawNode.reportSnapshot(id, ok);
    this.schedule();
  }

  /**
   * Proposes `command` for session (clientId, seq) and resolves with its result once applied.
   * @throws AspenError EAGAIN_NO_QUORUM when no leader is known, E_PROPOSAL_DROPPED when the
   *   core drops it, ETIMEDOUT when it did not apply within proposalTimeoutMs (it may still
   *   apply later: retry with the same seq).
   */
  submit(command: MonCommand, clientId: string, seq: number, stampMs: number): Promise<CommandResult> {
    if (clientId === '') return Promise.reject(new AspenError('EINVAL', 'a client session id is required'));
    if (this.leader === null) return Promise.reject(new AspenError('EAGAIN_NO_QUORUM', 'no leader elected (no quorum)'));
    if (this.waiters.size >= PENDING_REQUESTS_MAX) return Promise.reject(new AspenError('EBUSY', 'too many requests in flight'));
    const key = `${clientId}:${seq}`;
    const envClient = clientId;
    return new Promise<CommandResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.removeWaiter(this.waiters, key, w);
        reject(new AspenError('ETIMEDOUT', `command not applied within ${this.opts.proposalTimeoutMs} ms`));
      }, this.opts.proposalTimeoutMs);
      const w: Waiter = { resolve, reject, timer };
      const list = this.waiters.get(key) ?? [];
      list.push(w);
      this.waiters.set(key, list);
      try {
        this.rawNode.propose(encodeEnvelope({ clientId: envClient, seq, stampMs, command }));
      } catch (err) {
        clearTimeout(timer);
        this.removeWaiter(this.waiters, key, w);
        reject(err instanceof AspenError ? err : new AspenError('E_PROPOSAL_DROPPED', String(err)));
        return;
      }
      this.schedule();
    });
  }

  /**
   * Proposes a command the monitors generate themselves (liveness decisions, `mon init`):
   * no session, no reply; dropped silently when there is no leader (it is re-derived later).
   */
  proposeInternal(command: MonCommand, stampMs: number): void {
    try {
      this.rawNode.propose(encodeEnvelope({ clientId: '', seq: 0, stampMs, command }));
    } catch (err) {
      if (!(err instanceof AspenError)) throw err;
      this.log.debug({ prefix: command.prefix, err: err.message }, 'internal proposal dropped');
    }
    this.schedule();
  }

  /**
   * Resolves when a read at this moment is linearizable here (ReadIndex then apply).
   * @throws AspenError EAGAIN_NO_QUORUM when no leader confirms within the timeout.
   */
  linearizableRead(timeoutMs = this.opts.proposalTimeoutMs): Promise<void> {
    if (this.leader === null) return Promise.reject(new AspenError('EAGAIN_NO_QUORUM', 'no leader elected (no quorum)'));
    const ctx = randomBytes(12);
    const key = ctx.toString('hex');
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readWaiters.delete(key);
        reject(new AspenError('EAGAIN_NO_QUORUM', `no quorum confirmed a read within ${timeoutMs} ms`));
      }, timeoutMs);
      this.readWaiters.set(key, { resolve, reject, timer, index: null });
      this.rawNode.readIndex(ctx);
      this.schedule();
    });
  }

  /**
   * Proposes a membership change and resolves once it is applied here.
   * @throws AspenError E_CONFIG_CHANGE_PENDING, ENOT_LEADER, ETIMEDOUT.
   */
  changeMembership(cc: ConfChange): Promise<void> {
    if (!this.isLeader) return Promise.reject(new AspenError('ENOT_LEADER', 'membership changes are proposed on the leader', { leader: this.leader }));
    const key = `${cc.type}:${cc.nodeId}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.removeWaiter(this.confWaiters, key, w);
        reject(new AspenError('ETIMEDOUT', `membership change not applied within ${this.opts.proposalTimeoutMs * 4} ms`));
      }, this.opts.proposalTimeoutMs * 4);
      const w: Waiter = { resolve: () => resolve(), reject, timer };
      const list = this.confWaiters.get(key) ?? [];
      list.push(w);
      this.confWaiters.set(key, list);
      try {
        this.rawNode.proposeConfChange(cc);
      } catch (err) {
        clearTimeout(timer);
        this.removeWaiter(this.confWaiters, key, w);
        reject(err instanceof AspenError ? err : new AspenError('E_PROPOSAL_DROPPED', String(err)));
        return;
      }
      this.schedule();
    });
  }

  /** Asks the core to hand leadership to `to` (thesis §3.10). */
  transferLeadership(to: NodeId): void {
    this.rawNode.transferLeadership(to);
    this.schedule();
  }

  private removeWaiter(map: Map<string, Waiter[]>, key: string, w: Waiter): void {
    const list = map.get(key);
    if (!list) return;
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) map.delete(key);
  }

  /** Runs the Ready loop soon, once per turn of the event loop (batching proposals: group commit). */
  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      try {
        this.processReady();
      } catch (err) {
        // A store that cannot persist (full disk, I/O error, corruption) must not let Raft go on:
        // acknowledging without durability would break every guarantee. Stop loudly.
        this.log.fatal({ err: String(err), stack: (err as Error)?.stack }, 'cannot persist or apply Raft state; stopping');
        this.stopped = true;
        process.exitCode = 1;
        setImmediate(() => process.exit(1));
      }
    });
  }

  private processReady(): void {
    while (!this.stopped && this.rawNode.hasReady()) {
      const rd = this.rawNode.ready();
      this.handleReady(rd);
      this.rawNode.advance();
    }
  }

  private handleReady(rd: Ready): void {
    // A leader may send its appends before writing them to its own disk (Raft thesis
    // §10.2.1): followers then persist in parallel with it. It is safe here because the
    // persist below is synchronous: no acknowledgement can be processed (and nothing can
    // be committed or applied) before this node's own write is durable. Everything else
    // (votes, append responses) waits for the fsync, as the Ready contract requires.
    const isLeader = (rd.softState?.role ?? this.softState.role) === 'leader';
    let later: readonly Message[] = rd.messages;
    if (isLeader && rd.messages.length > 0) {
      const early = rd.messages.filter((m) => LEADER_EARLY_TYPES.has(m.type));
      if (early.length > 0) {
        this.opts.transport.send(early);
        later = early.length === rd.messages.length ? [] : rd.messages.filter((m) => !LEADER_EARLY_TYPES.has(m.type));
      }
    }
    // 1. Persist (fsync when the Ready requires it).
    this.opts.storage.saveReady({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, sync: rd.mustSync });
    // 2. Send.
    if (later.length > 0) this.opts.transport.send(later);
    // 3. Apply.
    if (rd.softState !== null) this.onSoftState(rd.softState);
    if (rd.snapshot !== null && rd.snapshot.metadata.index > this.applied) {
      this.sm = rd.snapshot.data.length > 0 ? new MonStateMachine(decodeMonState(rd.snapshot.data)) : null;
      this.confState = rd.snapshot.metadata.confState;
      this.applied = rd.snapshot.metadata.index;
      this.lastSnapshotIndex = this.applied;
      this.updatePeers();
      this.log.info({ index: this.applied }, 'installed snapshot');
      this.emit({ incrementals: [], monMapChanged: true, configChanged: true });
    }
    for (const entry of rd.committedEntries) {
      if (entry.index <= this.applied) continue;
      assert(entry.index === this.applied + 1, `committed entry ${entry.index} does not follow applied ${this.applied}`);
      this.applyEntry(entry.index, entry.type, entry.data);
    }
    for (const rs of rd.readStates) {
      const w = this.readWaiters.get(Buffer.from(rs.requestCtx).toString('hex'));
      if (w) w.index = rs.index;
    }
    this.resolveReads();
    this.maybeSnapshot();
  }

  private onSoftState(ss: SoftState): void {
    const wasLeader = this.isLeader;
    this.softState = ss;
    if (wasLeader !== this.isLeader) {
      this.log.info({ role: ss.role, leader: ss.leader, term: this.rawNode.status().term }, this.isLeader ? 'became leader' : 'lost leadership');
      for (const l of this.leaderListeners) l(this.isLeader);
    }
  }

  private applyEntry(index: number, type: 'normal' | 'conf_change', data: Uint8Array): void {
    if (type === 'conf_change') {
      const cc = decodeConfChange(data);
      this.confState = applyConfChangeToConfState(this.confState, cc);
      if (this.sm) this.emit(this.sm.applyConfChange(index, cc));
      this.applied = index;
      this.updatePeers();
      const key = `${cc.type}:${cc.nodeId}`;
      for (const w of this.confWaiters.get(key) ?? []) { clearTimeout(w.timer); w.resolve({ code: 0, message: '', data: null }); }
      this.confWaiters.delete(key);
      return;
    }
    if (data.length === 0) {
      // The leader's no-op of a new term.
      this.sm?.applyNoop(index);
      this.applied = index;
      return;
    }
    let env;
    try {
      env = decodeEnvelope(data);
    } catch (err) {
      // A committed entry every member decodes the same way: refusing it everywhere is deterministic.
      this.log.error({ index, err: String(err) }, 'undecodable committed entry skipped');
      this.sm?.applyNoop(index);
      this.applied = index;
      return;
    }
    let result: CommandResult;
    if (env.command.prefix === 'mon init') {
      if (this.sm === null) {
        this.sm = new MonStateMachine(initialMonState(env.command.fsid, env.command.mons, env.stampMs));
        this.sm.state.appliedIndex = index;
        result = { code: 0, message: 'cluster initialized', data: {} };
        this.updatePeers();
        this.emit({ incrementals: [], monMapChanged: true, configChanged: true });
      } else {
        this.sm.applyNoop(index);
        result = { code: 0, message: 'already initialized', data: {} };
      }
    } else if (this.sm === null) {
      result = { code: 'EAGAIN_NO_QUORUM', message: 'cluster maps not initialized yet', data: null };
    } else {
      const out = this.sm.applyCommand(index, env);
      result = out.result;
      this.emit(out.effects);
    }
    this.applied = index;
    const key = `${env.clientId}:${env.seq}`;
    const ws = this.waiters.get(key);
    if (ws) {
      this.waiters.delete(key);
      for (const w of ws) { clearTimeout(w.timer); w.resolve(result); }
    }
  }

  private resolveReads(): void {
    for (const [key, w] of this.readWaiters) {
      if (w.index !== null && w.index <= this.applied) {
        clearTimeout(w.timer);
        this.readWaiters.delete(key);
        w.resolve();
      }
    }
  }

  private emit(e: ApplyEffects): void {
    if (e.monMapChanged) this.updatePeers();
    for (const l of this.effectListeners) l(e);
  }

  private updatePeers(): void {
    const peers = new Map<NodeId, string>();
    // Members, plus every monitor we know an address of: a joining mon must be able to
    // answer the leader before it has learned the membership.
    const known = (this.sm?.state.monMap.mons ?? this.opts.knownMons).map((m) => m.name);
    for (const id of new Set([...this.confState.voters, ...this.confState.learners, ...known])) {
      const addr = this.addrOf(id);
      if (addr !== undefined && id !== this.opts.id) peers.set(id, addr);
    }
    this.opts.transport.setPeers(peers);
  }

  private maybeSnapshot(): void {
    if (this.sm === null || this.applied - this.lastSnapshotIndex < this.opts.snapshotEveryEntries) return;
    assert(this.sm.state.appliedIndex <= this.applied, 'state machine ahead of the node');
    const data = encodeMonState(this.sm.state);
    this.opts.storage.createSnapshot(this.applied, this.confState, data);
    this.lastSnapshotIndex = this.applied;
    const compactTo = this.applied - this.opts.compactionTrailingEntries;
    if (compactTo > this.opts.storage.firstIndex()) this.opts.storage.compact(compactTo);
    this.log.info({ index: this.applied, bytes: data.length }, 'snapshot taken, log compacted');
  }

  /** Encodes a conf change (exposed for the API layer). */
  static encodeConfChange(cc: ConfChange): Uint8Array {
    return encodeConfChange(cc);
  }
}
