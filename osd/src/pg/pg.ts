/**
 * The pure PG core: one placement group's copy on one OSD (Ceph's PG + PeeringState +
 * PrimaryLogPG for replicated pools, simplified; ADR 0006).
 *
 * `step(input)` and `tick(nowMs)` return an {@link Outbox}: transactions to submit to the
 * local store (the caller reports `committed` once each is durable, in order), store reads,
 * messages to peers, client replies, pg_temp requests and the state string. The core never
 * blocks, sleeps or does I/O; every retry is driven by `tick`.
 *
 * Roles per interval: the acting primary peers (./peering.ts decisions), activates the
 * members, serves writes (./primary.ts), recovers and backfills (./recovery.ts) and scrubs
 * (./scrub.ts); replicas answer queries and apply what the primary sends; strays (members of
 * old intervals) answer queries and are purged once the PG is clean.
 *
 * Every message carries the sender's interval start: a member accepts only messages of the
 * interval it is in. A member that has not yet seen the new map drops the message and the
 * sender retries — so a replica that has moved to a new interval can never again acknowledge
 * a write of the old one (what Ceph gets by waiting for maps before answering).
 */
import { assert, assertNever } from '@aspen/shared';
import { computeLastComplete, mergeLog, trimLog, type MergeResult } from './pg-log.ts';
import {
  buildPriorSet, chooseActing, chooseActingEc, findBestInfo, intervalStart, pastIntervals, sameOsds, type PastInterval, type PriorSet,
} from './peering.ts';
import {
  EVERSION_ZERO, emptyOutbox, evCmp, shardOf, type ClientOp, type Eversion, type MapHistory, type MissingItem, type ObjectStat,
  type Outbox, type PgInfo, type PushMode, type PgInput, type PgLogState, type PgMapping, type PgMessage, type PgMeta, type StoreOp,
  type StoreReadResult,
} from './types.ts';
import { emptyLog } from './pg-log.ts';
import { expireWaiting, pgStateString, purgeStrays } from './state.ts';
import { executeWaiting, markUnfoundLost, onClientOp, onObjectError, onRepop, onRepopAck, onWriteCommitted, requeueOrReject, type InflightOp } from './primary.ts';
import {
  kickRecovery, onBackfillDone, onBackfillDoneAck, onBackfillScan, onBackfillScanReply, onEcPulled, onPull, onPullReply, onPush,
  onObjectRead, onPushAck, retryRecovery, salvage, type BackfillReserver, type BackfillState, type RecoveryOp,
} from './recovery.ts';
import {
  maybeStartScrub, onScrubListDone, onScrubMap, onScrubReq, repairPg, requestScrub, retryScrub, type Inconsistency, type ScrubState,
} from './scrub.ts';

/** Named limits and timings of the PG core (CONVENTIONS item 10). */
export interface PgConfig {
  /** Log entries kept after trimming (Ceph osd_min_pg_log_entries). */
  readonly pgLogMaxEntries: number;
  /** Trimmed request ids kept for dedup (Ceph osd_pg_log_dups_tracked). */
  readonly pgLogDupsMax: number;
  /** Resend an unanswered query, activation, repop, pull, push or scan after this long, ms. */
  readonly peerRetryMs: number;
  /** A client op that cannot run (PG not active, object unrecoverable) fails after this long, ms. */
  readonly clientOpBlockTimeoutMs: number;
  /** Client ops queued while blocked; beyond it new ops fail with EBUSY. */
  readonly clientOpsQueuedMax: number;
  /** Recovery ops (pulls + pushes) in flight per PG; 1 while client ops are in flight. */
  readonly recoveryOpsInflightMax: number;
  /** Recovery/backfill push budget, bytes per second (token bucket, one second of burst). */
  readonly recoveryBytesPerSec: number;
  /** Objects compared per backfill scan. */
  readonly backfillScanBatchMax: number;
  /**
   * TEST ONLY: acknowledge a write once the primary alone has it durable. Breaks the
   * "ack only when every acting member persisted" rule so the simulator's checker can
   * prove it catches lost writes. Never set it in a daemon.
   */
  readonly debugUnsafeAckOnPrimaryCommit?: boolean;
}

/** Defaults for a daemon. */
export const PG_CONFIG_DEFAULTS: PgConfig = {
  pgLogMaxEntries: 3000,
  pgLogDupsMax: 3000,
  peerRetryMs: 1000,
  clientOpBlockTimeoutMs: 30_000,
  clientOpsQueuedMax: 1024,
  recoveryOpsInflightMax: 3,
  recoveryBytesPerSec: 100 * 1024 * 1024,
  backfillScanBatchMax: 64,
};

/** The PG's role in its current interval. */
export type PgRole = 'primary' | 'replica' | 'stray';

/** The primary's peering phase (Ceph PeeringState states, collapsed). */
export type PeeringPhase =
  | 'idle' | 'getInfo' | 'down' | 'incomplete' | 'waitActing' | 'activating' | 'active';

/** What a transaction's commit means (its continuation, as data). */
export type TxnTag =
  | { readonly kind: 'none' }
  | { readonly kind: 'selfActivate'; readonly interval: number }
  | { readonly kind: 'write'; readonly interval: number; readonly version: Eversion }
  | { readonly kind: 'repop'; readonly interval: number; readonly version: Eversion; readonly primary: number }
  | { readonly kind: 'replicaActivate'; readonly interval: number; readonly primary: number; readonly backfill: boolean }
  | { readonly kind: 'pulled'; readonly interval: number; readonly object: string }
  | { readonly kind: 'pushed'; readonly interval: number; readonly object: string; readonly primary: number; readonly mode: PushMode }
  | { readonly kind: 'backfillDone'; readonly interval: number; readonly primary: number };

/** What a read's result is for. */
export type ReadTag =
  | { readonly kind: 'servePull'; readonly interval: number; readonly to: number; readonly object: string }
  /** mark_unfound_lost reads this primary's own newer copy of a lost object. */
  | { readonly kind: 'salvageRead'; readonly interval: number; readonly object: string }
  /** Replicated: the primary's copy to push to every waiting peer; EC: `target`'s shard rebuilt for it. */
  | { readonly kind: 'push'; readonly interval: number; readonly object: string; readonly target?: number }
  /** EC: this primary's own missing shard of `object`, rebuilt from the other members at `need`. */
  | { readonly kind: 'ecPull'; readonly interval: number; readonly object: string; readonly need: Eversion }
  | { readonly kind: 'backfillPush'; readonly interval: number; readonly object: string; readonly target: number }
  | { readonly kind: 'clientRead'; readonly interval: number; readonly op: ClientOp }
  | { readonly kind: 'scrub'; readonly interval: number; readonly scrubId: number; readonly to: number };

/** What a restarted OSD loaded for this PG from its store. */
export interface PgLoaded {
  readonly meta: PgMeta;
  /** Every object in the PG's collection: version and size. */
  readonly objects: ReadonlyMap<string, ObjectStat>;
}

/** Construction parameters of {@link PgCore}. */
export interface PgCoreOptions {
  readonly pgid: string;
  readonly whoami: number;
  readonly config: PgConfig;
  readonly history: MapHistory;
  readonly reserver: BackfillReserver;
  readonly loaded?: PgLoaded;
}

/** A fresh pg_info for a PG this OSD never held. */
export function emptyInfo(pgid: string): PgInfo {
  return {
    pgid, lastUpdate: EVERSION_ZERO, lastComplete: EVERSION_ZERO, logTail: EVERSION_ZERO, lastEpochStarted: 0,
    lastBackfill: null, history: { epochCreated: 0, lastEpochStarted: 0, lastEpochClean: 0, sameIntervalSince: 0 },
  };
}

/**
 * One PG on one OSD. Fields are public for the sibling modules of this directory (they are
 * the PG's state, split by concern as Ceph splits PeeringState/PrimaryLogPG); callers use
 * only `step`, `tick` and the read-only getters.
 */
export class PgCore {
  readonly pgid: string;
  readonly whoami: number;
  readonly cfg: PgConfig;
  readonly history: MapHistory;
  readonly reserver: BackfillReserver;

  nowMs = 0;
  epoch = 0;
  interval = 0;
  mapping: PgMapping | undefined;
  role: PgRole = 'stray';

  // Persistent state (mirrored to the store by every transaction's setMeta).
  info: PgInfo;
  log: PgLogState;
  missing = new Map<string, MissingItem>();
  /** The objects this member's store holds: version and size (the store applies in order). */
  objects = new Map<string, ObjectStat>();

  // Replica side of the current interval.
  activated = false;
  activationCommitted = false;
  pendingRepops = new Set<string>();
  /** Replica: the newest version each object got from a repop with data this interval (push staleness). */
  writtenThisInterval = new Map<string, Eversion>();
  lastNotifyMs = 0;

  // Primary peering.
  phase: PeeringPhase = 'idle';
  peerMetas = new Map<number, PgMeta>();
  lastQueryMs = -Infinity;
  private cachedIntervals: { from: number; list: PastInterval[] } | undefined;
  prior: PriorSet | undefined;
  backfillTargets: number[] = [];
  peerActivated = new Set<number>();
  lastActivateMs = 0;
  peerMissing = new Map<number, Map<string, MissingItem>>();
  pgTempWanted: readonly number[] | null = null;
  lastPgTempMs = -Infinity;
  purged = new Set<number>();

  // Write path.
  inflight: InflightOp[] = [];
  waitingOps: { op: ClientOp; deadlineMs: number }[] = [];
  committedTo: Eversion = EVERSION_ZERO;

  // Recovery, backfill, scrub.
  recovering = new Map<string, RecoveryOp>();
  badSources = new Map<string, Set<number>>();
  /** Missing objects for which no reachable member had the needed version at the last try. */
  unfound = new Set<string>();
  /** Missing objects seen on some member at a newer (rolled-back) version: salvage candidates. */
  newerCopies = new Map<string, { osd: number; version: Eversion }>();
  sourceHint = new Map<string, number>();
  /** EC primary: the newest roll-forward point sent to the members (piggybacked or alone). */
  rolledForwardTo: Eversion = EVERSION_ZERO;
  /** When the last write was submitted here, ms (an idle EC primary rolls forward on its own). */
  lastWriteMs = 0;
  /** EC: objects whose shard could not be rebuilt, and when to try again (ms). */
  ecPullAfterMs = new Map<string, number>();
  tokensBytes = 0;
  lastRefillMs = 0;
  backfill = new Map<number, BackfillState>();
  reserved = false;
  scrub: ScrubState | undefined;
  scrubWanted: { deep: boolean; repair: boolean } | null = null;
  nextScrubId = 1;
  inconsistent = new Map<string, Inconsistency>();
  /** Objects whose bad replica copies repair is rewriting (pushed in `repair` mode). */
  repairing = new Set<string>();

  // Outstanding store work.
  nextTxnId = 1;
  /** Newest transaction reported durable (they complete in order). */
  lastCommittedTxn = 0;
  /** A new interval waits until every transaction of the old one is durable (Ceph's peering flush). */
  flushUntilTxn = 0;
  pendingTxns = new Map<number, TxnTag>();
  nextReadId = 1;
  pendingReads = new Map<number, ReadTag>();

  out: Outbox = emptyOutbox();
  private lastState = '';

  constructor(opts: PgCoreOptions) {
    this.pgid = opts.pgid;
    this.whoami = opts.whoami;
    this.cfg = opts.config;
    this.history = opts.history;
    this.reserver = opts.reserver;
    assert(opts.config.pgLogMaxEntries >= 1 && opts.config.recoveryOpsInflightMax >= 1, 'PG limits must be positive');
    if (opts.loaded !== undefined) {
      assert(opts.loaded.meta.info.pgid === opts.pgid, 'loaded meta belongs to another PG');
      this.info = opts.loaded.meta.info;
      this.log = opts.loaded.meta.log;
      this.missing = new Map(opts.loaded.meta.missing);
      this.objects = new Map(opts.loaded.objects);
    } else {
      this.info = emptyInfo(opts.pgid);
      this.log = emptyLog();
    }
    assert(evCmp(this.log.head, this.info.lastUpdate) === 0, 'loaded log head matches info.last_update');
  }

  // ------------------------------------------------------------------ public API

  /** Feeds one input; returns what to do. */
  step(input: PgInput): Outbox {
    this.out = emptyOutbox();
    switch (input.kind) {
      case 'map': this.onMap(input.epoch); break;
      case 'message': this.onMessage(input.from, input.msg); break;
      case 'clientOp': onClientOp(this, input.op); break;
      case 'committed': this.onCommitted(input.txnId); break;
      case 'readDone': this.onReadDone(input.readId, input.result); break;
      case 'scrub': requestScrub(this, input.deep); break;
      case 'repair': repairPg(this); break;
      case 'markUnfoundLost': markUnfoundLost(this); break;
      case 'objectError': onObjectError(this, input.object); break;
      default: assertNever(input, 'PG input');
    }
    return this.finish();
  }

  /** Advances the clock: retries, timeouts, throttles. `nowMs` never goes backwards. */
  tick(nowMs: number): Outbox {
    assert(nowMs >= this.nowMs, 'time went backwards');
    this.out = emptyOutbox();
    this.nowMs = nowMs;
    this.retry();
    return this.finish();
  }

  /** The Ceph-style state string (e.g. `active+clean`, `peering`, `down`). */
  get stateString(): string {
    return pgStateString(this);
  }

  /** What this member would persist now. */
  meta(): PgMeta {
    return { info: this.info, log: this.log, missing: new Map(this.missing) };
  }

  // ------------------------------------------------------------------ helpers for siblings

  /** Submits a transaction: `ops` then the PG meta (info, log, missing) as of now. */
  persist(ops: readonly StoreOp[], tag: TxnTag): void {
    this.info = {
      ...this.info, lastUpdate: this.log.head, logTail: this.log.tail,
      lastComplete: computeLastComplete(this.log, this.missing),
    };
    const txnId = this.nextTxnId++;
    this.out.transactions.push({ txnId, ops: [...ops, { kind: 'setMeta', meta: this.meta() }] });
    this.pendingTxns.set(txnId, tag);
    assert(evCmp(this.info.lastUpdate, this.log.head) === 0, 'info follows the log');
  }

  /** Queues a store read tagged with its purpose (`ec`: a shard rebuilt from the members, see StoreRead). */
  read(object: string, tag: ReadTag, ec?: { shard: number; need: Eversion }): void {
    const readId = this.nextReadId++;
    this.out.reads.push(ec === undefined ? { kind: 'read', readId, object } : { kind: 'read', readId, object, ec });
    this.pendingReads.set(readId, tag);
  }

  /** Queues a `list` read (scrub). */
  list(deep: boolean, tag: ReadTag): void {
    const readId = this.nextReadId++;
    this.out.reads.push({ kind: 'list', readId, deep });
    this.pendingReads.set(readId, tag);
  }

  /** Sends a message of the current interval. */
  send(to: number, msg: DistributiveOmit<PgMessage, 'pgid' | 'interval'>): void {
    assert(to !== this.whoami, 'a PG does not message itself');
    this.out.messages.push({ to, msg: { ...msg, pgid: this.pgid, interval: this.interval } as PgMessage });
  }

  /** Applies a log merge to this member: new log and missing set, removals into `ops`. */
  applyMerge(r: MergeResult, ops: StoreOp[]): void {
    assert(r.overlap, 'applying a merge without overlap');
    this.log = r.log;
    this.missing = new Map(r.missing);
    if (this.ecK > 0) {
      // EC: a divergent write may be on fewer than k shards, and so may the version before
      // it: each shard undoes its own from its rollback stash (Ceph rollback of divergent
      // EC entries). The object stays missing here, so recovery still checks it; the shards
      // rolled back are what it rebuilds from.
      // A shard keeps one stash per object (its last write; writes to an object are serialized),
      // so only an object with exactly one divergent entry can be undone this way.
      const count = new Map<string, number>();
      for (const d of r.divergent) count.set(d.object, (count.get(d.object) ?? 0) + 1);
      for (const d of r.divergent) {
        if (count.get(d.object) !== 1 || evCmp(d.priorVersion, EVERSION_ZERO) === 0 || !r.missing.has(d.object)) continue;
        ops.push({ kind: 'ecRollback', object: d.object, prior: d.priorVersion });
      }
    }
    for (const o of r.removals) {
      ops.push({ kind: 'remove', object: o, version: null });
      this.objects.delete(o);
    }
    assert(evCmp(this.log.head, r.log.head) === 0, 'merged log installed');
  }

  /** Trims the local log to `to` when that is newer than the tail. */
  trimTo(to: Eversion): void {
    if (evCmp(to, this.log.tail) > 0 && evCmp(to, this.log.head) <= 0) this.log = trimLog(this.log, to, this.cfg.pgLogDupsMax);
  }

  /** k of an erasure-coded PG (its members hold shards, see PgMapping.ec); 0 for a replicated one. */
  get ecK(): number {
    return this.mapping?.ec?.k ?? 0;
  }

  /** This member's shard position in an EC PG (-1 for a replicated one). */
  get shard(): number {
    return this.ecK > 0 ? shardOf(this.whoami) : -1;
  }

  /** Whether the acting set is below min_size: the PG may recover but not serve I/O. */
  isPeered(): boolean {
    const m = this.mapping;
    return m !== undefined && m.acting.length < m.minSize;
  }

  /**
   * EC: every member known to hold a shard of this PG — the acting set, then members of
   * past intervals heard during peering (strays keep their shards until purged): the
   * sources a shard rebuild may read (Ceph MissingLoc counts stray shards too).
   */
  ecSources(): number[] {
    return [...new Set([...(this.mapping?.acting ?? []), ...[...this.peerMetas.keys()].sort((a, b) => a - b)])];
  }

  /** Acting members other than this one. */
  actingPeers(): number[] {
    return (this.mapping?.acting ?? []).filter((o) => o !== this.whoami);
  }

  /** Peers a write goes to: acting replicas and backfill targets. */
  writePeers(): number[] {
    return [...this.actingPeers(), ...this.backfillTargets.filter((o) => o !== this.whoami)];
  }

  // ------------------------------------------------------------------ maps and intervals

  private onMap(epoch: number): void {
    assert(Number.isInteger(epoch) && epoch >= 1, `bad epoch ${epoch}`);
    if (epoch <= this.epoch) return;
    const m = this.history.mappingAt(this.pgid, epoch);
    if (m === undefined) return;
    this.epoch = epoch;
    const start = intervalStart(this.history, this.pgid, epoch);
    if (start !== this.interval) {
      this.startInterval(m, start);
      assert(this.interval === start && this.epoch === epoch, 'the new interval is current');
      return;
    }
    this.mapping = m;
    if (this.role === 'primary' && this.phase !== 'active' && this.phase !== 'activating' && this.phase !== 'idle') this.peer();
  }

  /** A new interval: drop volatile state, pick the role, start peering or notify the primary. */
  private startInterval(m: PgMapping, start: number): void {
    assert(start > this.interval, 'intervals only move forward');
    const ops = requeueOrReject(this, m.actingPrimary === this.whoami);
    if (this.reserved) this.reserver.release(this.pgid);
    this.reserved = false;
    this.interval = start;
    this.mapping = m;
    this.info = { ...this.info, history: { ...this.info.history, sameIntervalSince: start } };
    this.role = m.actingPrimary === this.whoami ? 'primary' : m.acting.includes(this.whoami) ? 'replica' : 'stray';
    this.activated = false;
    this.activationCommitted = false;
    this.pendingRepops.clear();
    this.writtenThisInterval = new Map();
    this.phase = 'idle';
    this.peerMetas = new Map();
    this.cachedIntervals = undefined;
    this.prior = undefined;
    this.backfillTargets = [];
    this.peerActivated = new Set();
    this.peerMissing = new Map();
    this.pgTempWanted = null;
    this.lastPgTempMs = -Infinity;
    this.purged = new Set();
    this.inflight = [];
    this.waitingOps = ops;
    this.recovering = new Map();
    this.badSources = new Map();
    this.unfound = new Set();
    this.newerCopies = new Map();
    this.ecPullAfterMs = new Map();
    this.backfill = new Map();
    this.scrub = undefined;
    this.repairing = new Set();
    this.pendingReads.clear();
    for (const [id, tag] of this.pendingTxns) if (tag.kind !== 'none') this.pendingTxns.set(id, { kind: 'none' });
    this.flushUntilTxn = this.nextTxnId - 1;
    if (this.flushed) this.beginPeering();
    assert((this.role === 'primary') === (m.actingPrimary === this.whoami), 'role follows the map');
  }

  /**
   * Whether everything submitted before this interval began is durable. Until then the
   * member neither reports its info nor peers: what it reports must survive a crash, or a
   * primary could build the authoritative log from entries that are about to vanish.
   */
  get flushed(): boolean {
    return this.lastCommittedTxn >= this.flushUntilTxn;
  }

  private beginPeering(): void {
    assert(this.flushed && this.phase === 'idle', 'peering starts once, after the flush');
    if (this.role === 'primary') {
      this.phase = 'getInfo';
      this.peerMetas.set(this.whoami, this.meta());
      this.lastQueryMs = -Infinity;
      this.peer();
    } else {
      this.notifyPrimary();
    }
  }

  private notifyPrimary(): void {
    const p = this.mapping?.actingPrimary ?? -1;
    if (p >= 0 && p !== this.whoami) this.send(p, { kind: 'notify', meta: this.meta() });
    this.lastNotifyMs = this.nowMs;
  }

  /** The newest history.last_epoch_started known from this member and the peers heard. */
  private knownLes(): number {
    let les = this.info.history.lastEpochStarted;
    for (const m of this.peerMetas.values()) les = Math.max(les, m.info.history.lastEpochStarted);
    return les;
  }

  /** GetInfo → GetLog → GetMissing → Activate, re-run whenever a peer's info arrives. */
  peer(): void {
    const m = this.mapping;
    assert(m !== undefined && this.role === 'primary', 'only a primary peers');
    const les = this.knownLes();
    const from = Math.max(1, les);
    if (this.cachedIntervals === undefined || this.cachedIntervals.from !== from) {
      this.cachedIntervals = { from, list: pastIntervals(this.history, this.pgid, from, this.interval) };
    }
    this.prior = buildPriorSet(this.cachedIntervals.list, m, les);
    if (this.prior.blocked) {
      this.phase = 'down';
      return;
    }
    const waiting = [...this.prior.probe].filter((o) => !this.peerMetas.has(o));
    if (waiting.length > 0) {
      this.phase = 'getInfo';
      if (this.nowMs - this.lastQueryMs >= this.cfg.peerRetryMs) {
        for (const o of waiting) this.send(o, { kind: 'query' });
        this.lastQueryMs = this.nowMs;
      }
      return;
    }
    const infos = new Map([...this.peerMetas].map(([o, meta]) => [o, meta.info] as const));
    const auth = findBestInfo(infos, this.whoami, this.ecK);
    if (auth === undefined) {
      this.phase = 'incomplete';
      return;
    }
    // Fewer than min_size usable members still activate, "peered": they recover and backfill
    // but serve no client I/O and do not advance last_epoch_started (Ceph since Octopus).
    const choice = this.ecK > 0 ? chooseActingEc(m, this.peerMetas, auth, m.size) : chooseActing(m, this.peerMetas, auth, m.size);
    if (!sameOsds(choice.want, m.acting)) {
      this.phase = 'waitActing';
      this.requestPgTemp(sameOsds(choice.want, m.up) ? [] : choice.want);
      return;
    }
    assert(choice.want[0] === this.whoami, 'the wanted acting set is led by this primary');
    this.activate(auth, choice.backfill);
  }

  /** Asks the mons for pg_temp (empty: clear it); repeated by tick until the map changes. */
  requestPgTemp(osds: readonly number[]): void {
    this.pgTempWanted = osds;
    if (this.nowMs - this.lastPgTempMs < this.cfg.peerRetryMs) return;
    this.out.pgTemp.push({ pgid: this.pgid, osds: [...osds] });
    this.lastPgTempMs = this.nowMs;
  }

  /** Activate: adopt the authoritative log, compute every member's missing set, send activations. */
  private activate(authOsd: number, backfill: readonly number[]): void {
    const ops: StoreOp[] = [];
    if (authOsd !== this.whoami) {
      const auth = this.peerMetas.get(authOsd);
      assert(auth !== undefined, 'authoritative meta present');
      this.applyMerge(mergeLog(this.log, this.missing, auth.log), ops);
    }
    // A peered interval (acting below min_size) accepts no writes: it must not look like one that did.
    const authLes = this.peerMetas.get(authOsd)!.info.lastEpochStarted;
    this.info = {
      ...this.info, lastEpochStarted: this.isPeered() ? Math.max(authLes, this.info.lastEpochStarted) : this.interval,
      history: { ...this.info.history, lastEpochStarted: Math.max(this.knownLes(), this.info.history.lastEpochStarted) },
    };
    this.backfillTargets = [...backfill];
    for (const p of this.actingPeers()) {
      const pm = this.peerMetas.get(p);
      assert(pm !== undefined, `meta of acting osd.${p}`);
      const r = mergeLog(pm.log, pm.missing, this.log);
      assert(r.overlap, `acting osd.${p} can be log-recovered`);
      this.peerMissing.set(p, new Map(r.missing));
    }
    for (const t of this.backfillTargets) {
      this.peerMissing.set(t, new Map());
      this.backfill.set(t, { watermark: '', phase: 'idle', upTo: null, pending: new Set(), sentAtMs: 0 });
    }
    this.committedTo = this.log.head;
    this.persist(ops, { kind: 'selfActivate', interval: this.interval });
    this.phase = 'activating';
    this.lastActivateMs = -Infinity;
    this.sendActivations();
  }

  private sendActivations(): void {
    if (this.nowMs - this.lastActivateMs < this.cfg.peerRetryMs) return;
    this.lastActivateMs = this.nowMs;
    for (const p of this.writePeers()) {
      if (this.peerActivated.has(p)) continue;
      this.send(p, {
        kind: 'activate', log: this.log, lastEpochStarted: this.info.lastEpochStarted,
        backfill: this.backfillTargets.includes(p), history: this.info.history,
      });
    }
  }

  private checkActivated(): void {
    assert(this.role === 'primary', 'only a primary activates others');
    if (this.phase !== 'activating' || !this.activationCommitted) return;
    if (!this.writePeers().every((p) => this.peerActivated.has(p))) return;
    assert(this.inflight.length === 0, 'no write is ordered before activation completes');
    this.phase = 'active';
    if (!this.isPeered()) this.info = { ...this.info, history: { ...this.info.history, lastEpochStarted: this.interval } };
    this.persist([], { kind: 'none' });
  }

  // ------------------------------------------------------------------ messages

  private onMessage(from: number, msg: PgMessage): void {
    assert(msg.pgid === this.pgid, `message for ${msg.pgid} delivered to ${this.pgid}`);
    if (msg.interval !== this.interval || this.mapping === undefined || !this.flushed) return;
    switch (msg.kind) {
      case 'query': this.send(from, { kind: 'notify', meta: this.meta() }); break;
      case 'notify': this.onNotify(from, msg.meta); break;
      case 'activate': this.onActivate(from, msg); break;
      case 'activateAck':
        if (this.role !== 'primary' || this.phase !== 'activating' || this.peerActivated.has(from)) break;
        this.peerActivated.add(from);
        if (!msg.backfill) this.peerMissing.set(from, new Map(msg.missing));
        this.checkActivated();
        break;
      case 'repop': onRepop(this, from, msg); break;
      case 'repopAck': onRepopAck(this, from, msg.version); break;
      case 'pull': onPull(this, from, msg.object); break;
      case 'pullReply': onPullReply(this, from, msg); break;
      case 'push': onPush(this, from, msg); break;
      case 'pushAck': onPushAck(this, from, msg.object, msg.mode); break;
      case 'backfillScan': onBackfillScan(this, from, msg.after, msg.upTo); break;
      case 'backfillScanReply': onBackfillScanReply(this, from, msg.after, msg.objects); break;
      case 'backfillDone': onBackfillDone(this, from); break;
      case 'backfillDoneAck': onBackfillDoneAck(this, from); break;
      case 'scrubReq': onScrubReq(this, from, msg.deep, msg.scrubId); break;
      case 'scrubMap': onScrubMap(this, from, msg.scrubId, msg.objects); break;
      case 'purge': this.onPurge(from); break;
      case 'rollForward':
        if (this.role === 'replica' && this.activated && from === this.mapping!.actingPrimary && this.ecK > 0) {
          this.persist([{ kind: 'rollForward', to: msg.to }], { kind: 'none' });
        }
        break;
      default: assertNever(msg, 'PG message');
    }
  }

  private onNotify(from: number, meta: PgMeta): void {
    assert(meta.info.pgid === this.pgid, `notify for ${meta.info.pgid} reached ${this.pgid}`);
    assert(from !== this.whoami, 'a PG does not notify itself');
    if (this.role !== 'primary') return;
    const known = this.peerMetas.has(from);
    if (this.phase === 'active' || this.phase === 'activating') {
      // A late stray: remember it so it is purged once the PG is clean.
      if (!known && !this.mapping!.acting.includes(from) && !this.mapping!.up.includes(from)) this.peerMetas.set(from, meta);
      if (known && this.purged.has(from)) this.purged.delete(from);
      return;
    }
    this.peerMetas.set(from, meta);
    this.peer();
  }

  private onActivate(from: number, msg: Extract<PgMessage, { kind: 'activate' }>): void {
    if (this.role === 'primary' || from !== this.mapping!.actingPrimary) return;
    if (this.activated) {
      if (this.activationCommitted) this.send(from, { kind: 'activateAck', missing: new Map(this.missing), backfill: msg.backfill });
      return;
    }
    const ops: StoreOp[] = [];
    if (msg.backfill) {
      this.log = msg.log;
      this.missing = new Map();
      this.info = { ...this.info, lastBackfill: '' };
    } else {
      const r = mergeLog(this.log, this.missing, msg.log);
      assert(r.overlap, 'the primary activated a replica whose log does not overlap');
      this.applyMerge(r, ops);
    }
    const h = this.info.history;
    this.info = {
      ...this.info, lastEpochStarted: msg.lastEpochStarted,
      history: { ...h, lastEpochStarted: Math.max(h.lastEpochStarted, msg.history.lastEpochStarted), epochCreated: msg.history.epochCreated },
    };
    this.role = 'replica';
    this.activated = true;
    this.persist(ops, { kind: 'replicaActivate', interval: this.interval, primary: from, backfill: msg.backfill });
    assert(evCmp(this.log.head, msg.log.head) === 0, 'an activated replica has the primary\'s log');
  }

  private onPurge(from: number): void {
    if (this.role !== 'stray' || this.activated || from !== this.mapping!.actingPrimary) return;
    assert(this.inflight.length === 0 && this.recovering.size === 0, 'a stray has no work in flight');
    assert(!this.mapping!.acting.includes(this.whoami) && !this.mapping!.up.includes(this.whoami), 'only strays are purged');
    this.out.transactions.push({ txnId: this.nextTxnId++, ops: [{ kind: 'removePg' }] });
    this.objects.clear();
    this.out.deleted = true;
  }

  // ------------------------------------------------------------------ store completions

  private onCommitted(txnId: number): void {
    assert(txnId > this.lastCommittedTxn && txnId < this.nextTxnId, `transactions commit in order (${txnId} after ${this.lastCommittedTxn})`);
    const wasFlushed = this.flushed;
    this.lastCommittedTxn = txnId;
    if (!wasFlushed && this.flushed && this.mapping !== undefined) this.beginPeering();
    const tag = this.pendingTxns.get(txnId);
    if (tag === undefined) return;
    this.pendingTxns.delete(txnId);
    if (tag.kind !== 'none' && tag.interval !== this.interval) return;
    switch (tag.kind) {
      case 'none': break;
      case 'selfActivate':
        this.activationCommitted = true;
        this.checkActivated();
        break;
      case 'write': onWriteCommitted(this, tag.version); break;
      case 'repop':
        this.pendingRepops.delete(`${tag.version.epoch}'${tag.version.version}`);
        this.send(tag.primary, { kind: 'repopAck', version: tag.version });
        break;
      case 'replicaActivate':
        this.activationCommitted = true;
        this.send(tag.primary, { kind: 'activateAck', missing: new Map(this.missing), backfill: tag.backfill });
        break;
      case 'pulled':
        this.recovering.delete(tag.object);
        break;
      case 'pushed': this.send(tag.primary, { kind: 'pushAck', object: tag.object, mode: tag.mode }); break;
      case 'backfillDone': this.send(tag.primary, { kind: 'backfillDoneAck' }); break;
      default: assertNever(tag, 'txn tag');
    }
  }

  private onReadDone(readId: number, result: StoreReadResult): void {
    const tag = this.pendingReads.get(readId);
    if (tag === undefined) return;
    this.pendingReads.delete(readId);
    if (tag.interval !== this.interval) return;
    switch (tag.kind) {
      case 'servePull':
        assert(result.kind === 'read', 'pull reads an object');
        this.send(tag.to, {
          kind: 'pullReply', object: tag.object,
          version: result.exists ? result.version : null, data: result.exists ? result.data : null,
        });
        break;
      case 'salvageRead': {
        assert(result.kind === 'read', 'salvage reads an object');
        const item = this.missing.get(tag.object);
        this.recovering.delete(tag.object);
        if (result.exists && item !== undefined && evCmp(result.version, item.need) > 0) salvage(this, tag.object, item.need, result.data);
        break;
      }
      case 'push':
      case 'backfillPush':
      case 'clientRead':
        onObjectRead(this, tag, result);
        break;
      case 'ecPull':
        assert(result.kind === 'read', 'an EC pull rebuilds an object');
        onEcPulled(this, tag.object, tag.need, result);
        break;
      case 'scrub':
        assert(result.kind === 'list', 'scrub lists objects');
        onScrubListDone(this, tag.scrubId, tag.to, result.objects);
        break;
      default: assertNever(tag, 'read tag');
    }
  }

  // ------------------------------------------------------------------ retries and state

  private retry(): void {
    if (this.mapping === undefined || !this.flushed) return;
    if (this.role !== 'primary') {
      if (this.nowMs - this.lastNotifyMs >= 2 * this.cfg.peerRetryMs && !this.activated) this.notifyPrimary();
      return;
    }
    switch (this.phase) {
      case 'getInfo': case 'down': case 'incomplete': this.peer(); break;
      case 'waitActing': if (this.pgTempWanted !== null) this.requestPgTemp(this.pgTempWanted); break;
      case 'activating': this.sendActivations(); break;
      case 'active':
        retryRecovery(this);
        retryScrub(this);
        this.rollForwardIfIdle();
        break;
      case 'idle': break;
      default: assertNever(this.phase, 'peering phase');
    }
  }

  /**
   * EC primary: once writes stopped for a while, tells the members (and applies) that every
   * write up to `committedTo` is durable everywhere, so the rollback stashes of the last writes
   * go — deleted objects' space included (Ceph queues a no-op for the same reason). Not acked:
   * a lost message leaves the stashes to the next write's piggyback.
   */
  private rollForwardIfIdle(): void {
    if (this.ecK === 0 || this.inflight.length > 0 || evCmp(this.committedTo, this.rolledForwardTo) <= 0) return;
    if (this.nowMs - this.lastWriteMs < this.cfg.peerRetryMs) return;
    const to = this.committedTo;
    this.rolledForwardTo = to;
    for (const p of this.writePeers()) this.send(p, { kind: 'rollForward', to });
    this.persist([{ kind: 'rollForward', to }], { kind: 'none' });
  }

  /** Common tail of step/tick: run what became runnable, expire ops, report the state. */
  private finish(): Outbox {
    assert(this.role === 'primary' || this.inflight.length === 0, 'only a primary has writes in flight');
    assert(this.phase === 'idle' || this.role === 'primary', 'only a primary has a peering phase');
    if (this.role === 'primary' && this.phase === 'active') {
      if (!this.isPeered()) executeWaiting(this);
      kickRecovery(this);
      maybeStartScrub(this);
    }
    expireWaiting(this);
    const s = pgStateString(this);
    if (s === 'active+clean') purgeStrays(this);
    if (s !== this.lastState) {
      this.lastState = s;
      this.out.state = s;
      if (s === 'active+clean') this.info = { ...this.info, history: { ...this.info.history, lastEpochClean: this.epoch } };
    }
    return this.out;
  }
}

/** Omit over each member of a union. */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
