/**
 * Raft types shared by the pure core (`core/`), its storage (`../io/raft-storage.ts`),
 * its transport (`../io/raft-transport.ts`) and the deterministic simulator (`../../test/sim/`).
 *
 * The design follows etcd-io/raft (raft.go, rawnode.go, storage.go): a pure state machine
 * that consumes messages and ticks and returns a {@link Ready}; the caller persists, sends,
 * applies and then calls `advance()`. Terms follow the Raft paper (Ongaro & Ousterhout 2014)
 * and Ongaro's thesis (2014): pre-vote §9.6, check-quorum §6.2, leadership transfer §3.10,
 * ReadIndex §6.4, single-server membership changes §4.1.
 *
 * All indexes and terms are non-negative safe integers (JS numbers); index 0 / term 0 is the
 * empty log's sentinel.
 */

/** A Raft member's id: the monitor name (e.g. `a`). */
export type NodeId = string;

/** Kinds of log entry. `conf_change` carries an encoded {@link ConfChange} in `data`. */
export type EntryType = 'normal' | 'conf_change';

/** One log entry. `data` is opaque to Raft (a state-machine command); an empty normal entry is the leader's no-op. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/**
 * What must be on stable storage before any message of the same Ready is sent
 * (Raft paper Fig. 2 "Persistent state on all servers"; commit is persisted as a hint).
 */
export interface HardState {
  readonly term: number;
  /** Candidate voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: number;
}

/** The cluster membership as of some log position. */
export interface ConfState {
  /** Members that vote and count towards quorum. */
  readonly voters: readonly NodeId[];
  /** Members that receive the log but do not vote (catching up before promotion). */
  readonly learners: readonly NodeId[];
}

/**
 * A single-server membership change (thesis §4.1): at most one is pending (appended but not
 * committed) at a time. It takes effect on every node when the entry is *applied* (as etcd does);
 * `context` carries opaque data for the state machine (the new member's address).
 */
export interface ConfChange {
  readonly type: 'add_voter' | 'add_learner' | 'remove_node';
  readonly nodeId: NodeId;
  readonly context: Uint8Array;
}

/** A state-machine snapshot with the log position and membership it includes. */
export interface Snapshot {
  readonly metadata: {
    readonly index: number;
    readonly term: number;
    readonly confState: ConfState;
  };
  readonly data: Uint8Array;
}

/**
 * Message types. Local-only messages (never sent on the wire) are marked; the rest travel
 * between members (names as etcd-raft's raftpb.MessageType).
 */
export type MessageType =
  | 'MsgHup' // local: start an election (campaign)
  | 'MsgBeat' // local: leader sends heartbeats
  | 'MsgProp' // propose entries (follower forwards to leader)
  | 'MsgApp'
  | 'MsgAppResp'
  | 'MsgVote'
  | 'MsgVoteResp'
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  | 'MsgSnap'
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  | 'MsgUnreachable' // local: transport reports a peer unreachable
  | 'MsgSnapStatus' // local: transport reports a snapshot send finished/failed
  | 'MsgTransferLeader'
  | 'MsgTimeoutNow'
  | 'MsgReadIndex'
  | 'MsgReadIndexResp';

/** A Raft message; fields not used by a type are zero/empty. */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** Term of the entry at `index` (MsgApp: the previous entry; votes: candidate's last log term). */
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** On a rejected MsgAppResp: the follower's hint of where logs may match (fast backtracking). */
  readonly rejectHint: number;
  readonly snapshot: Snapshot | null;
  /** Opaque request context: ReadIndex request ids, heartbeat read contexts, transfer flag on votes. */
  readonly context: Uint8Array;
}

/** A linearizable read point (ReadIndex, thesis §6.4): safe to serve once `appliedIndex >= index`. */
export interface ReadState {
  readonly index: number;
  readonly requestCtx: Uint8Array;
}

export type Role = 'follower' | 'pre_candidate' | 'candidate' | 'leader';

/** Volatile state that callers may display or use for routing (not persisted). */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * The outbox of one step of the core. The caller must, in order:
 * 1. persist `snapshot` (if any), then `entries` (truncating any conflicting suffix at
 *    `entries[0].index`), then `hardState` (if any) — durably (fsync) when `mustSync`;
 * 2. send `messages`;
 * 3. apply `snapshot` (if any) then `committedEntries` to the state machine, and serve
 *    `readStates` once applied;
 * 4. call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /** True when `entries` or `snapshot` is present or `hardState`'s term/vote changed: must fsync before sending. */
  readonly mustSync: boolean;
}

/**
 * The read side of stable storage, as the core sees it (etcd-raft's Storage interface).
 * Synchronous: better-sqlite3 is synchronous and the simulator is in memory.
 * The log held by storage spans `[firstIndex(), lastIndex()]`; entries before
 * `firstIndex()` have been compacted into the latest snapshot.
 */
export interface RaftStorage {
  /** The persisted hard state and membership at start-up. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in `[lo, hi)`, limited to about `maxSizeBytes` (at least one entry is returned
   * if any is in range).
   * @throws LogCompactedError when `lo < firstIndex()`; LogUnavailableError when `hi > lastIndex()+1`.
   */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** Term of entry `index`; `index` may be `firstIndex()-1` (the snapshot's index). @throws LogCompactedError, LogUnavailableError */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot (index 0 when none). */
  snapshot(): Snapshot;
}

/** Thrown by storage when the requested index has been compacted away (etcd ErrCompacted). */
export class LogCompactedError extends Error {
  override name = 'LogCompactedError';
}
/** Thrown by storage when the requested index is past the last entry (etcd ErrUnavailable). */
export class LogUnavailableError extends Error {
  override name = 'LogUnavailableError';
}

/** Configuration of one Raft node. Tick counts are in units of `tick()` calls. */
export interface RaftConfig {
  readonly id: NodeId;
  /** Followers start an election after a random timeout in [electionTick, 2*electionTick). */
  readonly electionTick: number;
  /** Leader sends heartbeats every `heartbeatTick` ticks; must be < electionTick. */
  readonly heartbeatTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Max bytes of entries in one MsgApp (batching). */
  readonly maxSizePerMsgBytes: number;
  /** Max MsgApp in flight per follower in replicate state (pipelining). */
  readonly maxInflightMsgs: number;
  /** Max bytes of uncommitted entries the leader accepts before dropping proposals (0 = no limit). */
  readonly maxUncommittedEntriesSizeBytes: number;
  /** Index of the last entry applied to the state machine at start-up. */
  readonly applied: number;
  /** Seeded PRNG for randomized election timeouts: returns an integer in [0, n). */
  readonly randomInt: (n: number) => number;
}
