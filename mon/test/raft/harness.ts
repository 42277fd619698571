/**
 * A synchronous in-memory cluster of RawNodes for unit tests (like etcd-raft's `network`
 * in raft_test.go): every node drains its Ready following the contract (persist into its
 * MemoryStorage, send, apply, advance), and `stabilize()` delivers messages until quiet.
 * Links can be cut (`isolate`, `cut`) and messages filtered (`drop`).
 */
import { assert } from '@aspen/shared';
import { RawNode } from '../../src/raft/rawnode.ts';
import { MemoryStorage } from '../../src/raft/memory-storage.ts';
import { BOOTSTRAP_HARD_STATE, bootstrapSnapshot } from '../../src/raft/confchange.ts';
import type { Entry, Message, NodeId, RaftConfig, ReadState } from '../../src/raft/types.ts';

/** Deterministic `randomInt` for configs: a tiny LCG seeded per node. */
export function lcgRandomInt(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}

export function testConfig(id: NodeId, overrides: Partial<RaftConfig> = {}): RaftConfig {
  let seed = 7;
  for (const c of id) seed = seed * 31 + c.charCodeAt(0);
  return {
    id,
    electionTick: 10,
    heartbeatTick: 1,
    preVote: false,
    checkQuorum: false,
    maxSizePerMsgBytes: 1024 * 1024,
    maxInflightMsgs: 256,
    maxUncommittedEntriesSizeBytes: 0,
    applied: 0,
    randomInt: lcgRandomInt(seed),
    ...overrides,
  };
}

export interface TestNode {
  id: NodeId;
  node: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
  /** Number of snapshots restored. */
  snapshotsRestored: number;
}

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages in flight, FIFO. */
  queue: Message[] = [];
  private readonly cutLinks = new Set<string>();
  /** Optional filter: return false to drop a message. */
  filter: ((m: Message) => boolean) | null = null;
  /** Every message that was sent (for assertions). */
  readonly sent: Message[] = [];
  /** Messages lost to a cut link or the filter. */
  readonly dropped = new Set<Message>();

  constructor(
    ids: readonly NodeId[],
    readonly overrides: Partial<RaftConfig> = {},
  ) {
    for (const id of ids) this.addNode(id, ids);
  }

  /** Adds a node; `bootstrapVoters` null means a joining node with empty storage. */
  addNode(id: NodeId, bootstrapVoters: readonly NodeId[] | null, overrides: Partial<RaftConfig> = {}): TestNode {
    const storage = new MemoryStorage();
    if (bootstrapVoters) {
      storage.applySnapshot(bootstrapSnapshot(bootstrapVoters));
      storage.setHardState(BOOTSTRAP_HARD_STATE);
    }
    const node = new RawNode(testConfig(id, { ...this.overrides, ...overrides, applied: bootstrapVoters ? 1 : 0 }), storage);
    const tn: TestNode = { id, node, storage, applied: [], readStates: [], snapshotsRestored: 0 };
    this.nodes.set(id, tn);
    return tn;
  }

  /** Restarts `id` from its storage (losing nothing: everything was persisted). */
  restart(id: NodeId): void {
    const tn = this.get(id);
    const applied = tn.storage.snapshot().metadata.index;
    tn.node = new RawNode(testConfig(id, { ...this.overrides, applied }), tn.storage);
    tn.applied = tn.applied.filter((e) => e.index <= applied);
  }

  get(id: NodeId): TestNode {
    const tn = this.nodes.get(id);
    assert(tn !== undefined, `no node ${id}`);
    return tn;
  }

  node(id: NodeId): RawNode {
    return this.get(id).node;
  }

  private linkKey(a: NodeId, b: NodeId): string {
    return `${a}->${b}`;
  }

  cut(a: NodeId, b: NodeId): void {
    this.cutLinks.add(this.linkKey(a, b));
    this.cutLinks.add(this.linkKey(b, a));
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    this.cutLinks.clear();
  }

  /** Drains one node's Ready per the contract. */
  drain(tn: TestNode): void {
    while (tn.node.hasReady()) {
      const rd = tn.node.ready();
      // The contract: anything acknowledged to others must be fsynced.
      if ((rd.snapshot || rd.entries.length > 0) && !rd.mustSync) throw new Error(`${tn.id}: Ready with entries/snapshot but mustSync false`);
      const prev = tn.storage.getHardState();
      if (rd.hardState && (rd.hardState.term !== prev.term || rd.hardState.vote !== prev.vote) && !rd.mustSync) {
        throw new Error(`${tn.id}: term/vote changed without mustSync`);
      }
      if (rd.snapshot) tn.storage.applySnapshot(rd.snapshot);
      tn.storage.append(rd.entries);
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      for (const m of rd.messages) {
        this.sent.push(m);
        this.queue.push(m);
      }
      if (rd.snapshot) {
        tn.snapshotsRestored++;
        tn.applied = tn.applied.filter((e) => e.index <= rd.snapshot!.metadata.index);
      }
      for (const e of rd.committedEntries) tn.applied.push(e);
      tn.readStates.push(...rd.readStates);
      tn.node.advance();
    }
  }

  /** Delivers messages (and drains Readies) until nothing is left; returns messages delivered. */
  stabilize(maxRounds = 10_000): number {
    let delivered = 0;
    for (let round = 0; round < maxRounds; round++) {
      for (const tn of this.nodes.values()) this.drain(tn);
      if (this.queue.length === 0) return delivered;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (this.cutLinks.has(this.linkKey(m.from, m.to)) || (this.filter && !this.filter(m))) {
          this.dropped.add(m);
          continue;
        }
        const to = this.nodes.get(m.to);
        if (!to) continue;
        to.node.step(m);
        if (m.type === 'MsgSnap') {
          // The transport reports the snapshot sent.
          this.nodes.get(m.from)?.node.reportSnapshot(m.to, true);
        }
        delivered++;
      }
    }
    throw new Error('cluster did not stabilize');
  }

  /** Ticks every node `n` times, stabilizing after each tick. */
  tickAll(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) tn.node.tick();
      this.stabilize();
    }
  }

  /** Makes `id` campaign and stabilizes. */
  elect(id: NodeId): void {
    this.node(id).campaign();
    this.stabilize();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((tn) => tn.node.status().role === 'leader').map((tn) => tn.id);
  }

  /** Data of applied normal, non-empty entries as strings. */
  appliedData(id: NodeId): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === 'normal' && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
