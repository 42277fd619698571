/**
 * Deterministic simulation of a Raft cluster (TigerBeetle VOPR / FoundationDB style): one
 * seed drives a fake clock, a fake network that drops, delays, duplicates, reorders and
 * partitions messages, nodes that crash and restart from what they persisted, membership
 * changes and leader transfers, and clients running put/get/cas against a KV state machine.
 *
 * Durability is modelled on the Ready contract: a node's new entries and hard state reach its
 * {@link MemoryStorage} only when it "syncs" (processes its Ready, a separate event some
 * milliseconds after the step that produced it); a crash in between loses them, as an fsync
 * that never happened would.
 *
 * A run has a safety phase (faults on) and a liveness phase (network healed, every node up,
 * faults off) that must end with a leader, every client op completed, and all members
 * converged. Invariants are checked after every event; client histories are checked for
 * linearizability at the end.
 */
import { AspenError } from '@aspen/shared';
import { RawNode } from '../../src/raft/rawnode.ts';
import { MemoryStorage } from '../../src/raft/memory-storage.ts';
import { BOOTSTRAP_HARD_STATE, applyConfChangeToConfState, bootstrapSnapshot, decodeConfChange } from '../../src/raft/confchange.ts';
import type { ConfState, HardState, Message, NodeId, RaftConfig } from '../../src/raft/types.ts';
import { Prng } from '@aspen/test/prng.ts';
import { KvStore, decodeCommand, encodeCommand } from './kv.ts';
import type { KvOp, KvResult } from './kv.ts';
import { Invariants } from './invariants.ts';
import type { LogView } from './invariants.ts';
import { checkKvHistory } from './linearizability.ts';
import type { HistoryOp } from './linearizability.ts';

/** Seeds at or above this run the long schedule. */
export const LONG_SEED_BASE = 2 ** 30;

/** Everything a run does is a function of its seed (printed on failure). */
export interface SimParams {
  readonly seed: number;
  readonly long: boolean;
  readonly voters: number;
  readonly safetyMs: number;
  readonly livenessMs: number;
  readonly tickMs: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly dropRate: number;
  readonly dupRate: number;
  readonly maxDelayMs: number;
  readonly fsyncMaxMs: number;
  /** Per chaos step (every tickMs): probability of each fault. */
  readonly crashRate: number;
  readonly partitionRate: number;
  readonly confChangeRate: number;
  readonly transferRate: number;
  /** Probability that a new leader crashes within a few round trips of winning (Fig. 8 territory). */
  readonly leaderFlapRate: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxSizePerMsgBytes: number;
  readonly maxInflightMsgs: number;
  /** The leader's uncommitted-entries budget (0 = unlimited); beyond it proposals are dropped. */
  readonly maxUncommittedEntriesSizeBytes: number;
  readonly snapshotEvery: number;
  readonly clients: number;
  readonly keys: number;
  readonly opTimeoutMs: number;
}

/** Derives a run's parameters (fault rates, sizes, lengths) from its seed. */
export function deriveParams(seed: number): SimParams {
  const r = new Prng(seed ^ 0x5eed5eed);
  const long = seed >= LONG_SEED_BASE;
  return {
    seed,
    long,
    voters: r.chance(0.7) ? 3 : 5,
    safetyMs: long ? r.range(4000, 8000) : r.range(400, 1400),
    livenessMs: long ? 2500 : 1500,
    tickMs: 10,
    electionTick: 10,
    heartbeatTick: 2,
    dropRate: r.pick([0, 0.02, 0.1, 0.3]),
    dupRate: r.pick([0, 0.02, 0.1]),
    maxDelayMs: r.pick([1, 5, 15, 40]),
    fsyncMaxMs: r.pick([0, 2, 8]),
    crashRate: r.pick([0, 0.003, 0.01, 0.03]),
    partitionRate: r.pick([0, 0.01, 0.03, 0.06]),
    confChangeRate: r.pick([0, 0.01, 0.03]),
    transferRate: r.pick([0, 0.005, 0.02]),
    leaderFlapRate: r.pick([0, 0, 0.2, 0.5]),
    preVote: r.chance(0.8),
    checkQuorum: r.chance(0.8),
    maxSizePerMsgBytes: r.pick([64, 1024, 1 << 20]),
    maxInflightMsgs: r.pick([1, 4, 256]),
    maxUncommittedEntriesSizeBytes: r.pick([0, 0, 0, 400]),
    snapshotEvery: r.pick([4, 20, 1000]),
    clients: r.range(2, 5),
    keys: r.pick([1, 1, 2, 3]),
    opTimeoutMs: 400,
  };
}

interface MutableHistoryOp {
  id: number;
  clientId: string;
  seq: number;
  op: KvOp;
  call: number;
  ret: number;
  result: KvResult | null;
  /** Failed for sure (never took effect) or a read that timed out: not part of the history. */
  discarded: boolean;
}

interface PendingOp {
  readonly client: Client;
  readonly hist: MutableHistoryOp;
  readonly node: NodeId;
  readonly ctx: string;
  readonly seq: number;
  readonly proposal: { index: number; term: number } | null;
  readIndex: number | null;
}

interface Client {
  readonly id: string;
  seq: number;
  pending: PendingOp | null;
  okAfterHeal: number;
  /** An attempt is scheduled (liveness phase retry). */
  retrying: boolean;
}

interface SimNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raw: RawNode | null;
  incarnation: number;
  readyScheduled: boolean;
  kv: KvStore;
  applied: number;
  confState: ConfState;
  readonly waitingWrites: Map<string, PendingOp>;
  readonly waitingReads: Map<string, PendingOp>;
  restartScheduled: boolean;
  /** The hard state as of the last fsync; commit-only changes (mustSync false) are not synced. */
  syncedHardState: HardState | null;
  /** Removed from the cluster and shut down by the "operator": never restarted. */
  decommissioned: boolean;
}

interface Event {
  readonly t: number;
  readonly seq: number;
  readonly run: () => void;
}

/** A binary min-heap of events ordered by (time, insertion). */
class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;
  push(t: number, run: () => void): void {
    const h = this.heap;
    h.push({ t, seq: this.seq++, run });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Event, b: Event): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq);
}

const te = new TextEncoder();
const td = new TextDecoder();

/** Deliberate bugs the simulator can inject to test its own checkers. */
export type SimMutation = 'local_reads';

export interface SimOptions {
  /** Print every trace line as it happens. */
  readonly traceAll?: boolean;
  readonly mutation?: SimMutation;
}

/** The outcome of one run. */
export interface SimResult {
  readonly params: SimParams;
  readonly violations: readonly string[];
  readonly stats: {
    readonly events: number;
    readonly opsOk: number;
    readonly opsUnknown: number;
    readonly maxTerm: number;
    readonly commit: number;
    readonly crashes: number;
    readonly confChanges: number;
    readonly transfers: number;
    readonly snapshotsSent: number;
  };
  /** The last trace lines (for a failure report). */
  readonly trace: readonly string[];
}

export class Simulation {
  readonly params: SimParams;
  private readonly rng: Prng;
  private readonly netRng: Prng;
  private readonly clientRng: Prng;
  private readonly q = new EventQueue();
  now = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clients: Client[] = [];
  private readonly history: MutableHistoryOp[] = [];
  /** First (non-duplicate) application of every client command, by "client:seq": result and time. */
  private readonly appliedCommands = new Map<string, { result: KvResult; atMs: number }>();
  readonly inv = new Invariants();
  private partition: Map<NodeId, number> | null = null;
  private phase: 'safety' | 'liveness' | 'quiet' = 'safety';
  private nextNodeNum: number;
  private events = 0;
  private readonly traceLines: string[] = [];
  private readonly traceAll: boolean;
  private livenessStart = Infinity;
  private attempts = 0;
  private stats = { crashes: 0, confChanges: 0, transfers: 0, snapshotsSent: 0 };
  private dropRate: number;
  private dupRate: number;

  /** A deliberate bug to inject, to show the checkers can fail (see checkers.test.ts). */
  private readonly mutation: SimMutation | null;

  constructor(params: SimParams, opts: SimOptions = {}) {
    this.params = params;
    this.mutation = opts.mutation ?? null;
    this.traceAll = opts.traceAll ?? false;
    const root = new Prng(params.seed);
    this.rng = root.fork();
    this.netRng = root.fork();
    this.clientRng = root.fork();
    this.dropRate = params.dropRate;
    this.dupRate = params.dupRate;
    const voters = Array.from({ length: params.voters }, (_, i) => `n${i}`);
    this.nextNodeNum = voters.length;
    for (const id of voters) this.createNode(id, voters);
    for (let i = 0; i < params.clients; i++) this.clients.push({ id: `c${i}`, seq: 0, pending: null, okAfterHeal: 0, retrying: false });
  }

  private trace(line: string): void {
    const s = `${String(this.now).padStart(6)} ${line}`;
    if (this.traceAll) console.log(s);
    this.traceLines.push(s);
    if (this.traceLines.length > 400) this.traceLines.splice(0, 200);
  }

  private config(id: NodeId, applied: number): RaftConfig {
    const r = this.rng.fork();
    return {
      id,
      electionTick: this.params.electionTick,
      heartbeatTick: this.params.heartbeatTick,
      preVote: this.params.preVote,
      checkQuorum: this.params.checkQuorum,
      maxSizePerMsgBytes: this.params.maxSizePerMsgBytes,
      maxInflightMsgs: this.params.maxInflightMsgs,
      maxUncommittedEntriesSizeBytes: this.params.maxUncommittedEntriesSizeBytes,
      applied,
      randomInt: (n) => r.int(n),
    };
  }

  private createNode(id: NodeId, bootstrapVoters: readonly NodeId[] | null): SimNode {
    const storage = new MemoryStorage();
    if (bootstrapVoters) {
      storage.applySnapshot(bootstrapSnapshot(bootstrapVoters));
      storage.setHardState(BOOTSTRAP_HARD_STATE);
    }
    const snap = storage.snapshot();
    const n: SimNode = {
      id,
      storage,
      raw: null,
      incarnation: 0,
      readyScheduled: false,
      kv: new KvStore(),
      applied: snap.metadata.index,
      confState: snap.metadata.confState,
      waitingWrites: new Map(),
      waitingReads: new Map(),
      restartScheduled: false,
      decommissioned: false,
      syncedHardState: null,
    };
    this.nodes.set(id, n);
    this.start(n);
    // Each node ticks on its own phase so ticks interleave.
    const phase = this.rng.int(this.params.tickMs);
    const tick = (): void => {
      if (n.raw) {
        n.raw.tick();
        this.touched(n);
      }
      this.q.push(this.now + this.params.tickMs, tick);
    };
    this.q.push(this.now + phase + 1, tick);
    return n;
  }

  /** Starts (or restarts) a node from its storage: state machine from the snapshot, log replayed by Raft. */
  private start(n: SimNode): void {
    const snap = n.storage.snapshot();
    n.raw = new RawNode(this.config(n.id, snap.metadata.index), n.storage);
    n.incarnation++;
    n.kv = KvStore.decode(snap.data);
    n.applied = snap.metadata.index;
    n.confState = snap.metadata.confState;
    n.readyScheduled = false;
    n.restartScheduled = false;
    this.trace(`${n.id} start (snapshot ${snap.metadata.index}, log ${n.storage.firstIndex()}..${n.storage.lastIndex()})`);
    this.touched(n);
  }

  private crash(n: SimNode): void {
    if (!n.raw) return;
    n.raw = null;
    n.incarnation++;
    n.readyScheduled = false;
    n.waitingWrites.clear();
    n.waitingReads.clear();
    this.stats.crashes++;
    // A commit-only hard state change was written without fsync: the crash may lose it.
    const synced = n.syncedHardState;
    const cur = n.storage.getHardState();
    if (synced && synced.commit < cur.commit && this.rng.chance(0.5)) {
      if (synced.term !== cur.term || synced.vote !== cur.vote) {
        this.inv.violations.push(`${n.id}: term/vote changed without mustSync (${JSON.stringify(synced)} -> ${JSON.stringify(cur)})`);
      }
      n.storage.setHardState(synced);
      this.trace(`${n.id} lost unsynced commit ${cur.commit} -> ${synced.commit}`);
    }
    this.trace(`${n.id} CRASH (persisted log ${n.storage.firstIndex()}..${n.storage.lastIndex()}, term ${n.storage.getHardState().term})`);
  }

  /** After anything happened on `n`: check election safety and schedule its sync. */
  private touched(n: SimNode): void {
    const raw = n.raw;
    if (!raw) return;
    const st = raw.basicStatus();
    if (st.role === 'leader') this.inv.observeLeader(n.id, st.term);
    if (!n.readyScheduled && raw.hasReady()) {
      n.readyScheduled = true;
      const inc = n.incarnation;
      this.q.push(this.now + this.netRng.int(this.params.fsyncMaxMs + 1), () => {
        if (n.incarnation !== inc || !n.raw) return;
        n.readyScheduled = false;
        this.processReady(n);
      });
    }
  }

  private logView(n: SimNode): LogView {
    const s = n.storage;
    return {
      firstIndex: () => s.firstIndex(),
      lastIndex: () => s.lastIndex(),
      termAt: (i) => {
        try {
          return s.term(i);
        } catch {
          return null;
        }
      },
    };
  }

  /** The Ready contract: persist (the "fsync"), send, apply, advance. */
  private processReady(n: SimNode): void {
    const raw = n.raw!;
    while (raw.hasReady()) {
      const rd = raw.ready();
      if ((rd.snapshot || rd.entries.length > 0) && !rd.mustSync) this.inv.violations.push(`${n.id}: Ready with entries/snapshot but mustSync false`);
      if (rd.snapshot) {
        n.storage.applySnapshot(rd.snapshot);
        this.inv.observeSnapshot(n.id, rd.snapshot.metadata.index, rd.snapshot.metadata.term);
      }
      if (rd.entries.length > 0) {
        n.storage.append(rd.entries);
        this.inv.observePersisted(n.id, rd.entries, this.logView(n));
      }
      if (rd.hardState) {
        n.storage.setHardState(rd.hardState);
        if (rd.mustSync || rd.snapshot) n.syncedHardState = rd.hardState;
      } else if (rd.mustSync || rd.snapshot) {
        n.syncedHardState = n.storage.getHardState();
      }
      for (const m of rd.messages) this.send(m);
      if (rd.softState) {
        this.trace(`${n.id} ${rd.softState.role} lead=${rd.softState.leader} term=${raw.basicStatus().term}`);
        if (rd.softState.role === 'leader' && this.phase === 'safety' && this.rng.chance(this.params.leaderFlapRate)) {
          // Crash the new leader while it is still replicating older entries and its own no-op.
          const inc = n.incarnation;
          this.q.push(this.now + this.rng.int(2 * this.params.maxDelayMs + 2), () => {
            if (n.incarnation !== inc || !n.raw) return;
            this.crash(n);
            this.scheduleRestart(n, this.rng.range(5, 200));
          });
        }
      }
      if (rd.snapshot) {
        const s = rd.snapshot;
        n.kv = KvStore.decode(s.data);
        n.applied = s.metadata.index;
        n.confState = s.metadata.confState;
        this.trace(`${n.id} installed snapshot ${s.metadata.index}@${s.metadata.term}`);
      }
      const term = raw.basicStatus().term;
      for (const e of rd.committedEntries) {
        if (e.index !== n.applied + 1) this.inv.violations.push(`${n.id} applied ${e.index} after ${n.applied}`);
        this.inv.observeApplied(n.id, e, term);
        n.applied = e.index;
        if (e.type === 'conf_change') {
          const cc = decodeConfChange(e.data);
          n.confState = applyConfChangeToConfState(n.confState, cc);
          this.trace(`${n.id} applied conf change ${cc.type} ${cc.nodeId} at ${e.index}`);
          if (cc.type === 'remove_node') this.decommission(cc.nodeId);
        } else if (e.data.length > 0) {
          this.applyCommand(n, e.data);
        }
        for (const p of n.waitingWrites.values()) {
          if (p.proposal && p.proposal.index === e.index && p.proposal.term !== e.term) {
            // Our entry was overwritten: it can never commit.
            this.finish(p, 'failed');
          }
        }
      }
      for (const rs of rd.readStates) {
        const p = n.waitingReads.get(td.decode(rs.requestCtx));
        if (p) p.readIndex = rs.index;
      }
      raw.advance();
      for (const p of [...n.waitingReads.values()]) {
        if (p.readIndex !== null && p.readIndex <= n.applied) {
          this.finish(p, { kind: 'get', value: n.kv.get(p.hist.op.key) });
        }
      }
    }
    const st = raw.basicStatus();
    if (st.role === 'leader') {
      this.inv.observeLeader(n.id, st.term);
      this.inv.checkLeaderCompleteness(n.id, st.term, this.logView(n));
    }
    this.maybeSnapshot(n);
  }

  private applyCommand(n: SimNode, data: Uint8Array): void {
    const cmd = decodeCommand(data);
    const { result, duplicate } = n.kv.apply(cmd);
    const key = `${cmd.clientId}:${cmd.seq}`;
    if (!duplicate && !this.appliedCommands.has(key)) this.appliedCommands.set(key, { result, atMs: this.now });
    const p = n.waitingWrites.get(`${cmd.clientId}:${cmd.seq}`);
    // The first application answers (a retried or duplicated copy is de-duplicated).
    if (p) this.finish(p, result);
  }

  private maybeSnapshot(n: SimNode): void {
    const snapIndex = n.storage.snapshot().metadata.index;
    if (n.applied - snapIndex < this.params.snapshotEvery) return;
    n.storage.createSnapshot(n.applied, n.confState, n.kv.encode());
    const keep = this.rng.int(4);
    const compactTo = n.applied - keep;
    if (compactTo >= n.storage.firstIndex()) n.storage.compact(compactTo);
    const raw = n.raw;
    if (raw) {
      const cs = raw.status().confState;
      if (cs.voters.join() !== n.confState.voters.join() || cs.learners.join() !== n.confState.learners.join()) {
        this.inv.violations.push(`${n.id} raft conf ${JSON.stringify(cs)} differs from applied conf ${JSON.stringify(n.confState)}`);
      }
    }
  }

  // ------------------------------------------------------------------ network

  private connected(a: NodeId, b: NodeId): boolean {
    if (!this.partition) return true;
    return (this.partition.get(a) ?? 0) === (this.partition.get(b) ?? 0);
  }

  private send(m: Message): void {
    const r = this.netRng;
    if (m.type === 'MsgSnap') this.stats.snapshotsSent++;
    const dropped = !this.connected(m.from, m.to) || r.chance(this.dropRate);
    if (dropped) {
      if (m.type === 'MsgSnap') this.reportSnapshot(m, false);
      else if (r.chance(0.2)) {
        const from = this.nodes.get(m.from);
        if (from?.raw) {
          from.raw.reportUnreachable(m.to);
          this.touched(from);
        }
      }
      return;
    }
    const copies = r.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.q.push(this.now + 1 + r.int(this.params.maxDelayMs), () => this.deliver(m));
    }
  }

  private deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    if (!to?.raw || !this.connected(m.from, m.to)) {
      if (m.type === 'MsgSnap') this.reportSnapshot(m, false);
      return;
    }
    to.raw.step(m);
    this.touched(to);
    if (m.type === 'MsgSnap') this.reportSnapshot(m, true);
  }

  private reportSnapshot(m: Message, ok: boolean): void {
    const from = this.nodes.get(m.from);
    if (!from?.raw) return;
    from.raw.reportSnapshot(m.to, ok);
    this.touched(from);
  }

  // ------------------------------------------------------------------ faults

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.raw !== null);
  }

  /** The up leader of the highest term, if any. */
  private leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      const st = n.raw?.basicStatus();
      if (st && st.role === 'leader' && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  private chaos(): void {
    const p = this.params;
    const r = this.rng;
    if (r.chance(p.crashRate)) {
      const up = this.upNodes();
      if (up.length > 0) {
        // Half of the crashes hit the leader: that is where the interesting interleavings are.
        const l = this.leader();
        const n = l && r.chance(0.5) ? l : r.pick(up);
        this.crash(n);
        this.scheduleRestart(n, r.range(5, 400));
      }
    }
    if (r.chance(p.partitionRate)) {
      if (this.partition && r.chance(0.5)) {
        this.partition = null;
        this.trace('network healed');
      } else {
        const part = new Map<NodeId, number>();
        const ids = [...this.nodes.keys()];
        const kind = r.int(3);
        const l = this.leader();
        if (kind === 0 && l) {
          // Strand the leader in a minority (alone or with one follower): it keeps believing it
          // leads until check-quorum, while the majority elects another.
          const buddy = r.chance(0.5) ? r.pick(ids) : l.id;
          for (const id of ids) part.set(id, id === l.id || id === buddy ? 1 : 0);
        } else if (kind === 1) {
          const lone = r.pick(ids);
          for (const id of ids) part.set(id, id === lone ? 1 : 0);
        } else {
          for (const id of ids) part.set(id, r.int(2));
        }
        this.partition = part;
        this.trace(`partition ${JSON.stringify([...part])}`);
      }
    }
    if (r.chance(p.confChangeRate)) this.randomConfChange();
    if (r.chance(p.transferRate)) {
      const l = this.leader();
      if (l?.raw) {
        const voters = l.raw.status().confState.voters.filter((v) => v !== l.id);
        if (voters.length > 0) {
          const to = r.pick(voters);
          this.trace(`${l.id} transfer leadership to ${to}`);
          this.stats.transfers++;
          l.raw.transferLeadership(to);
          this.touched(l);
        }
      }
    }
  }

  private scheduleRestart(n: SimNode, afterMs: number): void {
    if (n.restartScheduled) return;
    n.restartScheduled = true;
    this.q.push(this.now + afterMs, () => {
      if (!n.raw && !n.decommissioned) this.start(n);
    });
  }

  /**
   * Once a removal is committed the operator shuts the removed mon down (after a while), as
   * with `ceph mon remove`: a removed node that never learns of its removal would otherwise
   * keep campaigning (the disruptive-server problem, thesis §4.2.3) when pre-vote is off.
   */
  private decommission(id: NodeId): void {
    const n = this.nodes.get(id);
    if (!n || n.decommissioned) return;
    n.decommissioned = true;
    this.q.push(this.now + this.rng.int(200), () => {
      this.trace(`${id} decommissioned`);
      this.crash(n);
    });
  }

  private randomConfChange(): void {
    const l = this.leader();
    if (!l?.raw) return;
    const r = this.rng;
    const cs = l.raw.status().confState;
    const choices: { type: 'add_voter' | 'add_learner' | 'remove_node'; nodeId: NodeId }[] = [];
    if (cs.voters.length + cs.learners.length < 6) choices.push({ type: 'add_learner', nodeId: `n${this.nextNodeNum}` });
    for (const id of cs.learners) choices.push({ type: 'add_voter', nodeId: id });
    if (cs.voters.length > 3) for (const id of cs.voters) choices.push({ type: 'remove_node', nodeId: id });
    for (const id of cs.learners) choices.push({ type: 'remove_node', nodeId: id });
    if (choices.length === 0) return;
    const c = r.pick(choices);
    try {
      l.raw.proposeConfChange({ type: c.type, nodeId: c.nodeId, context: new Uint8Array(0) });
    } catch (err) {
      if (!(err instanceof AspenError)) throw err;
      this.trace(`${l.id} conf change ${c.type} ${c.nodeId} refused: ${err.code}`);
      return;
    }
    this.stats.confChanges++;
    this.trace(`${l.id} propose conf change ${c.type} ${c.nodeId}`);
    if (c.type === 'add_learner') {
      this.nextNodeNum++;
      this.createNode(c.nodeId, null);
    }
    this.touched(l);
  }

  // ------------------------------------------------------------------ clients

  private clientNext(c: Client, delayMs: number): void {
    this.q.push(this.now + delayMs, () => this.clientIssue(c));
  }

  /** Starts the client's next operation (none once the run is quiet). */
  private clientIssue(c: Client): void {
    if (this.phase === 'quiet' || c.pending || c.retrying) return;
    const r = this.clientRng;
    c.seq++;
    const key = `k${r.int(this.params.keys)}`;
    const value = `${c.id}.${c.seq}`;
    const roll = r.int(100);
    const op: KvOp =
      roll < 40 ? { kind: 'put', key, value } : roll < 75 ? { kind: 'get', key } : { kind: 'cas', key, expected: this.guessValue(key), value };
    const hist: MutableHistoryOp = { id: this.history.length, clientId: c.id, seq: c.seq, op, call: this.now, ret: Infinity, result: null, discarded: false };
    this.history.push(hist);
    this.attempt(c, hist, c.seq);
  }

  /**
   * One attempt of an operation. In the safety phase a client gives up after one attempt
   * (the outcome of a write is then unknown); after the network heals it retries the same
   * (client, seq) until it completes — the state machine's de-duplication makes that safe.
   */
  private attempt(c: Client, hist: MutableHistoryOp, seq: number): void {
    c.retrying = false;
    const r = this.clientRng;
    let target: SimNode | null;
    if (this.phase !== 'safety') {
      target = this.leader();
    } else {
      const up = this.upNodes();
      target = up.length > 0 ? r.pick(up) : null;
    }
    const retryable = hist.call >= this.livenessStart;
    if (!target?.raw) {
      if (retryable) this.retryLater(c, hist, seq);
      else {
        hist.discarded = true;
        this.clientNext(c, 20);
      }
      return;
    }
    const op = hist.op;
    const ctx = `${c.id}:${seq}:${this.attempts++}`;
    const raw = target.raw;
    let p: PendingOp;
    try {
      if (op.kind === 'get' && this.mutation === 'local_reads') {
        // Deliberate bug (checker self-test): serve reads from the local state machine.
        hist.ret = this.now;
        hist.result = { kind: 'get', value: target.kv.get(op.key) };
        this.clientNext(c, r.int(15));
        return;
      }
      if (op.kind === 'get') {
        p = { client: c, hist, seq, node: target.id, ctx, proposal: null, readIndex: null };
        raw.readIndex(te.encode(ctx));
        target.waitingReads.set(ctx, p);
      } else {
        const res = raw.propose(encodeCommand({ clientId: c.id, seq, op }));
        p = { client: c, hist, seq, node: target.id, ctx, proposal: res, readIndex: null };
        target.waitingWrites.set(`${c.id}:${seq}`, p);
      }
    } catch (err) {
      if (!(err instanceof AspenError)) throw err;
      // Refused synchronously: this attempt never entered any log.
      this.touched(target);
      if (retryable) this.retryLater(c, hist, seq);
      else {
        hist.discarded = true;
        this.clientNext(c, 10 + r.int(20));
      }
      return;
    }
    c.pending = p;
    this.touched(target);
    this.q.push(this.now + this.params.opTimeoutMs, () => {
      if (c.pending !== p) return;
      this.trace(`${c.id} ${JSON.stringify(op)} timed out on ${p.node}`);
      this.finish(p, 'timeout');
    });
  }

  private retryLater(c: Client, hist: MutableHistoryOp, seq: number): void {
    c.retrying = true;
    this.q.push(this.now + 20, () => this.attempt(c, hist, seq));
  }

  /** A value some client wrote to `key` (recent), or null: a plausible cas guess. */
  private guessValue(key: string): string | null {
    for (let i = this.history.length - 1; i >= 0 && i >= this.history.length - 10; i--) {
      const h = this.history[i]!;
      if (h.op.key === key && h.op.kind !== 'get' && this.clientRng.chance(0.6)) return h.op.value;
    }
    return null;
  }

  private finish(p: PendingOp, outcome: KvResult | 'timeout' | 'failed'): void {
    const c = p.client;
    if (c.pending !== p) return;
    c.pending = null;
    const n = this.nodes.get(p.node);
    n?.waitingWrites.delete(`${c.id}:${p.seq}`);
    n?.waitingReads.delete(p.ctx);
    if (outcome === 'timeout' || outcome === 'failed') {
      if (p.hist.call >= this.livenessStart) {
        this.retryLater(c, p.hist, p.seq);
        return;
      }
      // A write that timed out may or may not have happened (unknown); a failed write or a
      // read that never returned did nothing.
      if (outcome === 'failed' || p.hist.op.kind === 'get') p.hist.discarded = true;
    } else {
      p.hist.ret = this.now;
      p.hist.result = outcome;
      if (this.now >= this.livenessStart) c.okAfterHeal++;
    }
    this.clientNext(c, this.clientRng.int(15));
  }

  // ------------------------------------------------------------------ run

  /** Runs the schedule and all checks. */
  run(): SimResult {
    const p = this.params;
    const safetyEnd = p.safetyMs;
    const livenessEnd = safetyEnd + p.livenessMs;
    const quietAt = livenessEnd - 400;
    this.livenessStart = safetyEnd;
    const chaosLoop = (): void => {
      if (this.phase !== 'safety') return;
      this.chaos();
      this.q.push(this.now + p.tickMs, chaosLoop);
    };
    this.q.push(p.tickMs, chaosLoop);
    for (const c of this.clients) this.clientNext(c, this.clientRng.int(50));
    this.q.push(safetyEnd, () => {
      this.phase = 'liveness';
      this.partition = null;
      this.dropRate = 0;
      this.dupRate = 0;
      for (const n of this.nodes.values()) if (!n.raw && !n.decommissioned) this.start(n);
      this.trace('--- liveness phase: network healed, all nodes up, faults off');
    });
    this.q.push(quietAt, () => {
      this.phase = 'quiet';
    });
    // After the clients stop, give the cluster up to `convergeMs` to converge (slow links with
    // 1-entry messages and a 1-message window catch up slowly), checking every tick.
    const convergeMs = 4000;
    let converged = false;
    const convergeLoop = (): void => {
      if (this.checkLiveness().length === 0) {
        converged = true;
        return;
      }
      this.q.push(this.now + p.tickMs, convergeLoop);
    };
    this.q.push(livenessEnd, convergeLoop);
    const maxEvents = p.long ? 3_000_000 : 400_000;
    for (;;) {
      const e = this.q.pop();
      if (!e || converged || e.t > livenessEnd + convergeMs) break;
      this.now = e.t;
      e.run();
      if (++this.events > maxEvents) {
        this.inv.violations.push(`event budget exhausted (${maxEvents}): livelock?`);
        break;
      }
      if (this.inv.violations.length > 0) break;
    }
    const violations = [...this.inv.violations];
    if (violations.length === 0) violations.push(...this.checkLiveness());
    let opsUnknown = 0;
    let opsOk = 0;
    const hist: HistoryOp[] = [];
    for (const h of this.history) {
      if (h.discarded) continue;
      if (h.result === null && h.op.kind !== 'get') {
        // A write whose client gave up: the committed log says whether it took effect. If it
        // never did, it is not part of the history; if it did, it took effect no later than its
        // first application anywhere, with the result computed there. (Without this, dozens of
        // unknown writes with infinite response times make the search blow up.)
        opsUnknown++;
        const applied = this.appliedCommands.get(`${h.clientId}:${h.seq}`);
        if (applied === undefined) continue;
        h.result = applied.result;
        h.ret = applied.atMs;
      } else {
        opsOk++;
      }
      hist.push({ id: h.id, clientId: h.clientId, op: h.op, call: h.call, ret: h.ret, result: h.result });
    }
    if (violations.length === 0) {
      const lin = checkKvHistory(hist);
      if (!lin.ok) violations.push(`linearizability: history of key ${lin.badKey} is not linearizable`);
      else if (lin.timedOut) violations.push(`linearizability: search budget exhausted on key ${lin.badKey}`);
    }
    let maxTerm = 0;
    let commit = 0;
    for (const n of this.nodes.values()) {
      maxTerm = Math.max(maxTerm, n.storage.getHardState().term);
      commit = Math.max(commit, n.storage.getHardState().commit);
    }
    return {
      params: p,
      violations,
      stats: { events: this.events, opsOk, opsUnknown, maxTerm, commit, ...this.stats },
      trace: this.traceLines.slice(-120),
    };
  }

  private checkLiveness(): string[] {
    const out: string[] = [];
    const l = this.leader();
    if (!l?.raw) return ['liveness: no leader at the end of the liveness phase'];
    const st = l.raw.status();
    if (!st.confState.voters.includes(l.id)) out.push(`liveness: leader ${l.id} is not a voter`);
    for (const id of [...st.confState.voters, ...st.confState.learners]) {
      const n = this.nodes.get(id);
      const s = n?.raw?.basicStatus();
      if (!s) {
        out.push(`liveness: member ${id} is down`);
        continue;
      }
      if (st.confState.voters.includes(id) && s.lead !== l.id) out.push(`liveness: voter ${id} follows ${s.lead}, not ${l.id}`);
      if (n!.applied !== st.commit) out.push(`liveness: member ${id} applied ${n!.applied}, leader committed ${st.commit}`);
    }
    for (const c of this.clients) {
      if (c.okAfterHeal === 0) out.push(`liveness: client ${c.id} completed no operation after the network healed`);
    }
    for (const h of this.history) {
      if (h.call >= this.livenessStart && !h.discarded && h.result === null) {
        out.push(`liveness: ${h.clientId} ${JSON.stringify(h.op)} invoked at ${h.call} after healing did not complete`);
        break;
      }
    }
    return out;
  }
}

/** Runs one seed. */
export function runSeed(seed: number, opts: SimOptions = {}): SimResult {
  return new Simulation(deriveParams(seed), opts).run();
}

/** A failure report: the violations, parameters, the end of the trace and the replay line. */
export function formatFailure(r: SimResult): string {
  return [
    `simulation seed ${r.params.seed} failed:`,
    ...r.violations.map((v) => `  - ${v}`),
    `params: ${JSON.stringify(r.params)}`,
    `stats: ${JSON.stringify(r.stats)}`,
    'trace (last lines):',
    ...r.trace,
    `reproduce: ASPEN_SEED=${r.params.seed} npm run sim`,
  ].join('\n');
}
