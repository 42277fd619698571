/**
 * Shapes shared by the pure PG core (osd/src/pg): versions, log entries, PG info, missing
 * sets, peer messages, inputs and the outbox. Follows Ceph's osd_types.h (`eversion_t`,
 * `pg_log_entry_t`, `pg_info_t`, `pg_history_t`, `pg_missing_t`, `osd_reqid_t`) and the
 * message set of PeeringState/PrimaryLogPG/ReplicatedBackend, simplified (ADR 0006).
 *
 * Everything here is plain data: the core never touches a socket, a disk or a clock. The
 * daemon (or the simulator) delivers inputs, performs the outbox's transactions and reads
 * against the local object store, and sends its messages.
 */
import type { ErrorCode } from '@aspen/shared';

/** A PG log version (Ceph `eversion_t`): map epoch of the primary that ordered it, then a counter. */
export interface Eversion {
  readonly epoch: number;
  readonly version: number;
}

/** The zero version: before any write (Ceph `eversion_t()`). */
export const EVERSION_ZERO: Eversion = Object.freeze({ epoch: 0, version: 0 });

/** Total order on versions: epoch first, then counter. Returns <0, 0, >0. */
export function evCmp(a: Eversion, b: Eversion): number {
  return a.epoch !== b.epoch ? a.epoch - b.epoch : a.version - b.version;
}

/** Formats a version as Ceph prints it: `12'34`. */
export function evStr(v: Eversion): string {
  return `${v.epoch}'${v.version}`;
}

/** A client request id (Ceph `osd_reqid_t`): resends of one op carry the same id. */
export interface ReqId {
  readonly client: string;
  readonly tid: number;
}

/**
 * Kinds of log entry (Ceph `pg_log_entry_t::MODIFY`, `DELETE`, `LOST_DELETE`). `lostDelete`
 * removes an object whose data was given up by `mark_unfound_lost`: the writes before it
 * must not be reported as successful to a resending client.
 */
export type LogOp = 'modify' | 'delete' | 'lostDelete';

/** One PG log entry (Ceph `pg_log_entry_t`). Entries never carry object data. */
export interface LogEntry {
  readonly version: Eversion;
  readonly op: LogOp;
  readonly object: string;
  /** The object's version before this entry (zero: it did not exist). */
  readonly priorVersion: Eversion;
  /** The client request that made it, for dedup of resends; null for internal entries. */
  readonly reqid: ReqId | null;
}

/** A PG log (Ceph `pg_log_t`): entries in (tail, head], ascending. Immutable by convention. */
export interface PgLogState {
  readonly tail: Eversion;
  readonly head: Eversion;
  readonly entries: readonly LogEntry[];
  /** Request ids of trimmed entries, newest last (Ceph `pg_log_dup_t`), bounded by pgLogDupsMax. */
  readonly dups: readonly { readonly reqid: ReqId; readonly version: Eversion }[];
}

/** One missing object (Ceph `pg_missing_item`): the version needed and the one on hand. */
export interface MissingItem {
  readonly need: Eversion;
  readonly have: Eversion;
}

/** Objects a member lacks at the version the log says it should have (Ceph `pg_missing_t`). */
export type Missing = ReadonlyMap<string, MissingItem>;

/** The slice of a PG's history every member agrees on (Ceph `pg_history_t`), epochs. */
export interface PgHistory {
  readonly epochCreated: number;
  /** Newest epoch in which an interval finished activating (all acting members). */
  readonly lastEpochStarted: number;
  /** Newest epoch in which the PG was active+clean. */
  readonly lastEpochClean: number;
  /** Start of the current interval. */
  readonly sameIntervalSince: number;
}

/**
 * A member's summary of its copy of a PG (Ceph `pg_info_t`). `lastBackfill` null means the
 * copy is complete (Ceph `hobject_t::get_max()`); a string means only objects named `<=`
 * it are present ('' — none).
 */
export interface PgInfo {
  readonly pgid: string;
  readonly lastUpdate: Eversion;
  /** Every object is present up to this version (== lastUpdate when nothing is missing). */
  readonly lastComplete: Eversion;
  readonly logTail: Eversion;
  /** The interval start in which this member last activated. */
  readonly lastEpochStarted: number;
  readonly lastBackfill: string | null;
  readonly history: PgHistory;
}

/** What a member persists about a PG besides objects: info, log and missing set. */
export interface PgMeta {
  readonly info: PgInfo;
  readonly log: PgLogState;
  readonly missing: Missing;
}

/** An object as the member's index knows it: version and size. */
export interface ObjectStat {
  readonly version: Eversion;
  readonly sizeBytes: number;
}

// ---------------------------------------------------------------------------------------
// Store interface (described as data, performed by the daemon)

/**
 * One operation of a store transaction. Transactions are atomic and complete (become
 * durable) in submission order; the daemon reports `{kind:'committed', txnId}` once the
 * whole transaction is on disk. Object ops also set the object's version attribute.
 */
export type StoreOp =
  | { readonly kind: 'writeFull'; readonly object: string; readonly data: Uint8Array; readonly version: Eversion }
  | { readonly kind: 'write'; readonly object: string; readonly offsetBytes: number; readonly data: Uint8Array; readonly version: Eversion }
  /**
   * A store transaction planned by the primary's op execution (osd/src/core/op-exec.ts),
   * encoded by osd/src/store/txn-codec.ts (`meta` + `data` segments), applied as is; the
   * object's data size is then `sizeBytes`.
   */
  | { readonly kind: 'txn'; readonly object: string; readonly meta: Uint8Array; readonly data: Uint8Array; readonly sizeBytes: number; readonly version: Eversion }
  /** `version` is the log version of a client delete; null for rollbacks, backfill and purges. */
  | { readonly kind: 'remove'; readonly object: string; readonly version: Eversion | null }
  | { readonly kind: 'setMeta'; readonly meta: PgMeta }
  /**
   * EC: undo this shard's last write to `object` from its rollback stash (the object returns
   * to version `prior`); a no-op when the shard holds no stash for it.
   */
  | { readonly kind: 'ecRollback'; readonly object: string; readonly prior: Eversion }
  /** EC: every write up to `to` is durable on every shard: their rollback stashes go (Ceph roll_forward_to). */
  | { readonly kind: 'rollForward'; readonly to: Eversion }
  /** Removes the PG's collection: every object and the meta. */
  | { readonly kind: 'removePg' };

/** A transaction against the PG's collection. */
export interface StoreTxn {
  readonly txnId: number;
  readonly ops: readonly StoreOp[];
}

/**
 * A read of the local store; its result comes back as a `readDone` input. Reads observe
 * every transaction submitted before them (applied, even if not yet durable).
 */
export type StoreRead =
  | {
      readonly kind: 'read'; readonly readId: number; readonly object: string;
      /**
       * EC pools: not a local read but shard `shard`'s whole state of the object at version
       * `need`, reconstructed from the other members' shards (any k at that version; Ceph
       * ECBackend recovery reads). Answers `exists: false, unavailable: true` when fewer
       * than k members could supply it.
       */
      readonly ec?: { readonly shard: number; readonly need: Eversion };
    }
  /** Every object of the PG with metadata; `deep` also re-reads data for `dataCrc`. */
  | { readonly kind: 'list'; readonly readId: number; readonly deep: boolean };

/** Metadata of one object from a `list` read (scrub). */
export interface ScrubObject {
  readonly object: string;
  readonly version: Eversion;
  readonly sizeBytes: number;
  /**
   * crc32c of the whole object recorded when it was written whole (Ceph object_info_t
   * data_digest); null once a partial write made it unknown (Ceph clears the digest then).
   */
  readonly storedCrc: number | null;
  /** crc32c recomputed from the bytes on disk (deep reads only). */
  readonly dataCrc?: number;
  /** A deep read of this copy failed (a block failed its checksum: EIO): the copy is bad. */
  readonly readError?: boolean;
  /**
   * EC deep scrub, on the primary's own map only: shard positions whose bytes disagree with
   * the parity of the others (the primary re-encoded the object from all its shards).
   */
  readonly ecBadShards?: readonly number[];
}

/** Result of a {@link StoreRead}. */
export type StoreReadResult =
  | { readonly kind: 'read'; readonly exists: false; readonly unavailable?: boolean }
  | { readonly kind: 'read'; readonly exists: true; readonly version: Eversion; readonly data: Uint8Array }
  | { readonly kind: 'list'; readonly objects: readonly ScrubObject[] };

// ---------------------------------------------------------------------------------------
// Client ops

/**
 * The mutation or read of one client op.
 * - `txn`: an opaque store transaction planned by the primary against the object at
 *   `priorVersion` (the log version it read; zero: absent). The core runs it only if the
 *   object is still at that version, else it answers EAGAIN (the caller re-plans).
 * - `delete` with `priorVersion`: the same check.
 * - `probe`: waits like a read until the object is readable here (not missing, recovering,
 *   scrubbing or being written) and answers its log version (zero: absent) without reading
 *   the store; not logged. With `dupOf`, a request id already in the PG log (a resend of a
 *   write that was applied, Ceph's dup detection before do_osd_ops) is answered instead:
 *   `dup: true` and that write's log version (EIO if mark_unfound_lost discarded it).
 */
export type ClientOpBody =
  | { readonly kind: 'writeFull'; readonly data: Uint8Array }
  | { readonly kind: 'write'; readonly offsetBytes: number; readonly data: Uint8Array }
  | {
      readonly kind: 'txn'; readonly meta: Uint8Array; readonly data: Uint8Array; readonly sizeBytes: number; readonly priorVersion: Eversion;
      /**
       * EC pools: the transaction of each shard position (index = shard); `meta`/`data` are
       * then ignored and every member applies its own shard's (Ceph ECTransaction).
       */
      readonly shards?: readonly { readonly meta: Uint8Array; readonly data: Uint8Array }[];
    }
  | { readonly kind: 'delete'; readonly priorVersion?: Eversion }
  | { readonly kind: 'read' }
  | { readonly kind: 'probe'; readonly dupOf?: ReqId };

/** Whether a body only reads (not logged, not replicated). */
export function isReadBody(body: ClientOpBody): body is Extract<ClientOpBody, { kind: 'read' | 'probe' }> {
  return body.kind === 'read' || body.kind === 'probe';
}

/** A client op addressed to this PG's primary. */
export interface ClientOp {
  readonly reqid: ReqId;
  readonly object: string;
  readonly body: ClientOpBody;
}

/** The answer to a client op. `version` is the log version of a write (or the read copy's). */
export type ClientReply =
  | { readonly reqid: ReqId; readonly ok: true; readonly version: Eversion; readonly data?: Uint8Array; readonly dup?: boolean }
  | { readonly reqid: ReqId; readonly ok: false; readonly code: ErrorCode; readonly message: string };

// ---------------------------------------------------------------------------------------
// Peer messages (all carry the sender's interval start; a receiver in another interval drops them)

/** Why an object copy is pushed. */
export type PushMode = 'recovery' | 'backfill' | 'repair';

interface MsgBase {
  readonly pgid: string;
  /** The sender's `sameIntervalSince`. */
  readonly interval: number;
}

/** Messages between the members of a PG. */
export type PgMessage =
  | (MsgBase & { readonly kind: 'query' })
  | (MsgBase & { readonly kind: 'notify'; readonly meta: PgMeta })
  | (MsgBase & { readonly kind: 'activate'; readonly log: PgLogState; readonly lastEpochStarted: number; readonly backfill: boolean; readonly history: PgHistory })
  | (MsgBase & { readonly kind: 'activateAck'; readonly missing: Missing; readonly backfill: boolean })
  /** `rollForwardTo` (EC): writes up to it are durable on every member (their stashes may go). */
  | (MsgBase & { readonly kind: 'repop'; readonly prev: Eversion; readonly entry: LogEntry; readonly body: ClientOpBody; readonly applyData: boolean; readonly trimTo: Eversion; readonly rollForwardTo?: Eversion })
  | (MsgBase & { readonly kind: 'repopAck'; readonly version: Eversion })
  | (MsgBase & { readonly kind: 'pull'; readonly object: string; readonly need: Eversion })
  | (MsgBase & { readonly kind: 'pullReply'; readonly object: string; readonly version: Eversion | null; readonly data: Uint8Array | null })
  /**
   * A full copy of an object at `version`, or (data null) its removal decided when the
   * primary's log head was `version`. A late duplicate is ignored: never over a newer write
   * of this interval; recovery pushes only to objects still missing, backfill pushes only
   * before the backfill completes, repair pushes only when the copy is not newer.
   */
  | (MsgBase & { readonly kind: 'push'; readonly object: string; readonly version: Eversion; readonly data: Uint8Array | null; readonly mode: PushMode })
  | (MsgBase & { readonly kind: 'pushAck'; readonly object: string; readonly mode: PushMode })
  | (MsgBase & { readonly kind: 'backfillScan'; readonly after: string; readonly upTo: string | null })
  | (MsgBase & { readonly kind: 'backfillScanReply'; readonly after: string; readonly objects: readonly (readonly [string, Eversion])[] })
  | (MsgBase & { readonly kind: 'backfillDone' })
  | (MsgBase & { readonly kind: 'backfillDoneAck' })
  | (MsgBase & { readonly kind: 'scrubReq'; readonly deep: boolean; readonly scrubId: number })
  | (MsgBase & { readonly kind: 'scrubMap'; readonly scrubId: number; readonly objects: readonly ScrubObject[] })
  | (MsgBase & { readonly kind: 'purge' })
  /**
   * EC: every write up to `to` is durable on every member (their rollback stashes may go),
   * sent by an idle primary (busy ones piggyback it on repops; Ceph's roll-forward no-op).
   */
  | (MsgBase & { readonly kind: 'rollForward'; readonly to: Eversion });

// ---------------------------------------------------------------------------------------
// Inputs and outbox

/** One PG's placement at an epoch, as the OSDMap gives it. */
export interface PgMapping {
  readonly epoch: number;
  readonly up: readonly number[];
  readonly upPrimary: number;
  readonly acting: readonly number[];
  readonly actingPrimary: number;
  readonly size: number;
  readonly minSize: number;
  /** OSDs up at this epoch (for the prior set: who can answer a query now). */
  readonly isUp: (osd: number) => boolean;
  /**
   * Erasure-coded pools: `k` data chunks (of `size` = k+m). Then every OSD list of the
   * mapping holds *members* ({@link ecMember}: OSD and shard position, Ceph `pg_shard_t`),
   * in shard order without the holes of down positions; the PG instance of a member holds
   * that shard only. Omitted: a replicated pool (members are OSD ids).
   */
  readonly ec?: { readonly k: number };
}

/** Shard positions per OSD in a member id of an EC PG (ids are `osd * EC_MEMBER_STRIDE + shard`). */
export const EC_MEMBER_STRIDE = 256;

/** The member id of `osd` holding shard `shard` of an EC PG (Ceph `pg_shard_t`). */
export function ecMember(osd: number, shard: number): number {
  return osd * EC_MEMBER_STRIDE + shard;
}

/** The shard position of an EC member id. */
export function shardOf(member: number): number {
  return member % EC_MEMBER_STRIDE;
}

/** The OSD of an EC member id. */
export function osdOfMember(member: number): number {
  return Math.floor(member / EC_MEMBER_STRIDE);
}

/**
 * The OSDMap history a PG needs (Ceph's OSD map cache): the PG's mapping at any epoch in
 * [1, latest]. Pure and immutable for past epochs; undefined for an unknown epoch or a PG
 * that did not exist then.
 */
export interface MapHistory {
  mappingAt(pgid: string, epoch: number): PgMapping | undefined;
}

/** Inputs of {@link PgCore.step}. */
export type PgInput =
  | { readonly kind: 'map'; readonly epoch: number }
  | { readonly kind: 'message'; readonly from: number; readonly msg: PgMessage }
  | { readonly kind: 'clientOp'; readonly op: ClientOp }
  | { readonly kind: 'committed'; readonly txnId: number }
  | { readonly kind: 'readDone'; readonly readId: number; readonly result: StoreReadResult }
  | { readonly kind: 'scrub'; readonly deep: boolean }
  | { readonly kind: 'repair' }
  /** Ceph `pg mark_unfound_lost delete`: give up on objects no reachable member has. */
  | { readonly kind: 'markUnfoundLost' }
  /**
   * The primary's own copy of `object` failed a read (EIO: a block failed its checksum).
   * Ceph `rep_repair_primary_object`: it becomes missing here and is pulled from a member.
   */
  | { readonly kind: 'objectError'; readonly object: string };

/** What a step asks the caller to do: persist, then send, then reply (CONVENTIONS item 1). */
export interface Outbox {
  readonly transactions: StoreTxn[];
  readonly reads: StoreRead[];
  readonly messages: { readonly to: number; readonly msg: PgMessage }[];
  readonly replies: ClientReply[];
  /** pg_temp wanted from the mons: a list of OSDs, or empty to clear it. */
  readonly pgTemp: { readonly pgid: string; readonly osds: readonly number[] }[];
  /** The Ceph-style state string when it changed (e.g. `active+clean`). */
  state: string | null;
  /** The PG was purged here: the caller drops this instance once the removePg txn commits. */
  deleted: boolean;
}

/** A fresh, empty outbox. */
export function emptyOutbox(): Outbox {
  return { transactions: [], reads: [], messages: [], replies: [], pgTemp: [], state: null, deleted: false };
}
