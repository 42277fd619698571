/**
 * Log-based recovery and backfill (Ceph src/osd/PrimaryLogPG.cc `start_recovery_ops`,
 * `recover_primary`, `recover_replicas`, `recover_backfill`; ReplicatedBackend.cc pulls and
 * pushes; src/common/AsyncReserver.h for `osd_max_backfills`).
 *
 * Recovery is object by object: first the primary pulls what it is missing from a member
 * that has the needed version, then it pushes objects to the replicas missing them. Backfill
 * (for up members whose log does not overlap the authoritative one) walks the primary's
 * objects in name order in batches: the target lists its objects in the batch's range, the
 * primary pushes what differs and removes what should not exist, then advances the target's
 * `last_backfill` watermark. Writes to objects in the batch being compared wait; writes below
 * the watermark reach the target, writes above it only update its log.
 *
 * Throttles (CONVENTIONS item 10): `recoveryOpsInflightMax` per PG (1 while client ops are in
 * flight, so client I/O keeps priority), a bytes-per-second token bucket for pushes, and a
 * per-OSD {@link BackfillReserver} with `osdMaxBackfills` slots.
 */
import { assert, assertNever } from '@aspen/shared';
import { lastEntryFor } from './pg-log.ts';
import type { PgCore, ReadTag } from './pg.ts';
import { evCmp, shardOf, type ClientOp, type Eversion, type PgMessage, type PushMode, type StoreOp, type StoreReadResult } from './types.ts';
import { resendRepops, submitInternalWrite } from './primary.ts';

/**
 * Per-OSD backfill slots (Ceph `AsyncReserver`, local side only): a PG asks before
 * backfilling and releases when done or when its interval ends. Owned by the OSD, shared by
 * its PGs; synchronous and pure.
 */
export interface BackfillReserver {
  /** True when `pgid` holds (or now got) a slot. */
  request(pgid: string): boolean;
  release(pgid: string): void;
}

/** A {@link BackfillReserver} with `osdMaxBackfills` slots, first come first served. */
export class LocalReserver implements BackfillReserver {
  private readonly holders = new Set<string>();
  constructor(readonly osdMaxBackfills: number) {
    assert(osdMaxBackfills >= 1, 'osdMaxBackfills must be at least 1');
  }
  request(pgid: string): boolean {
    if (this.holders.has(pgid)) return true;
    if (this.holders.size >= this.osdMaxBackfills) return false;
    this.holders.add(pgid);
    return true;
  }
  release(pgid: string): void {
    this.holders.delete(pgid);
  }
  /** Slots in use. */
  get inUse(): number {
    return this.holders.size;
  }
}

/** One object being recovered. */
export type RecoveryOp =
  /** `salvage`: fetching a newer (divergent) copy for mark_unfound_lost instead of the missing version. */
  | { readonly kind: 'pull'; readonly source: number; readonly need: Eversion; sentAtMs: number; readonly salvage?: boolean }
  /** `msgs`: the push per waiting peer once read (replicated: one copy for all; EC: each its own shard). */
  | { readonly kind: 'push'; readonly waiting: Set<number>; readonly msgs: Map<number, Extract<PgMessage, { kind: 'push' }>>; sentAtMs: number };

/** Backfill progress of one target. `watermark` null: complete. */
export interface BackfillState {
  watermark: string | null;
  phase: 'idle' | 'scanning' | 'pushing' | 'finishing' | 'done';
  /** Upper end of the batch being compared (null: to the end). */
  upTo: string | null;
  readonly pending: Set<string>;
  sentAtMs: number;
}

/** Whether a write to `object` reaches backfill target `target` with data. */
export function watermarkCovers(pg: PgCore, target: number, object: string): boolean {
  const b = pg.backfill.get(target);
  if (b === undefined) return true;
  return b.watermark === null || object <= b.watermark;
}

/** Whether `object` lies in a backfill batch being compared (writes to it wait). */
export function inBackfillScan(pg: PgCore, object: string): boolean {
  for (const b of pg.backfill.values()) {
    if (b.phase !== 'scanning' && b.phase !== 'pushing') continue;
    if (b.watermark !== null && object > b.watermark && (b.upTo === null || object <= b.upTo)) return true;
  }
  return false;
}

function evMax(a: Eversion, b: Eversion): Eversion {
  return evCmp(a, b) >= 0 ? a : b;
}

function refill(pg: PgCore): void {
  const dt = Math.max(0, pg.nowMs - pg.lastRefillMs);
  pg.lastRefillMs = pg.nowMs;
  pg.tokensBytes = Math.min(pg.cfg.recoveryBytesPerSec, pg.tokensBytes + (pg.cfg.recoveryBytesPerSec * dt) / 1000);
}

function recoveryLimit(pg: PgCore): number {
  const clientBusy = pg.inflight.length > 0 || pg.waitingOps.length > 0;
  return clientBusy ? 1 : pg.cfg.recoveryOpsInflightMax;
}

/** Starts whatever recovery or backfill the throttles allow. Primary, active only. */
export function kickRecovery(pg: PgCore): void {
  if (pg.role !== 'primary' || pg.phase !== 'active') return;
  assert(pg.activationCommitted && pg.mapping !== undefined, 'an active primary has durably activated');
  assert(pg.tokensBytes <= pg.cfg.recoveryBytesPerSec, 'the token bucket holds at most one second');
  refill(pg);
  const limit = recoveryLimit(pg);
  // Objects clients wait for go first.
  const wanted = new Set(pg.waitingOps.map((w) => w.op.object));
  const order = (names: Iterable<string>): string[] =>
    [...names].sort((a, b) => Number(wanted.has(b)) - Number(wanted.has(a)) || (a < b ? -1 : a > b ? 1 : 0));
  for (const o of order(pg.missing.keys())) {
    if (pg.recovering.size >= limit) return;
    if (pg.recovering.has(o)) continue;
    const need = pg.missing.get(o)!.need;
    if (pg.ecK > 0) {
      // EC: this member's shard is rebuilt from k others (no member has a copy of it to pull).
      if ((pg.ecPullAfterMs.get(o) ?? -Infinity) > pg.nowMs) continue;
      pg.ecPullAfterMs.delete(o);
      pg.recovering.set(o, { kind: 'pull', source: pg.whoami, need, sentAtMs: pg.nowMs, salvage: false });
      pg.read(o, { kind: 'ecPull', interval: pg.interval, object: o, need }, { shard: pg.shard, need });
      continue;
    }
    const source = chooseSource(pg, o, need);
    if (source === undefined) {
      pg.unfound.add(o); // for now: a peer that has it may yet report, or come back
      continue;
    }
    pg.recovering.set(o, { kind: 'pull', source, need, sentAtMs: pg.nowMs, salvage: false });
    pg.send(source, { kind: 'pull', object: o, need });
  }
  const peerObjects = new Set<string>();
  for (const pm of pg.peerMissing.values()) for (const o of pm.keys()) peerObjects.add(o);
  for (const o of order(peerObjects)) {
    if (pg.recovering.size >= limit || pg.tokensBytes <= 0) return;
    if (pg.recovering.has(o) || pg.missing.has(o)) continue;
    const waiting = new Set<number>();
    for (const [p, pm] of pg.peerMissing) if (pm.has(o)) waiting.add(p);
    pg.recovering.set(o, { kind: 'push', waiting, msgs: new Map(), sentAtMs: pg.nowMs });
    readForPush(pg, o, waiting);
  }
  if (pg.missing.size > 0 || peerObjects.size > 0 || pg.backfill.size === 0) return;
  kickBackfill(pg);
}

/** Reads what a push of `object` sends: the primary's copy once, or (EC) each target's shard rebuilt. */
function readForPush(pg: PgCore, object: string, targets: Iterable<number>): void {
  if (pg.ecK === 0) {
    pg.read(object, { kind: 'push', interval: pg.interval, object });
    return;
  }
  const stat = pg.objects.get(object);
  assert(stat !== undefined, `the primary knows the version of ${object} it pushes`);
  for (const t of targets) pg.read(object, { kind: 'push', interval: pg.interval, object, target: t }, { shard: shardOf(t), need: stat.version });
}

/** EC primary: its own shard of `object` was rebuilt (or could not be: too few members had it). */
export function onEcPulled(pg: PgCore, object: string, need: Eversion, result: Extract<StoreReadResult, { kind: 'read' }>): void {
  const rec = pg.recovering.get(object);
  if (pg.role !== 'primary' || rec === undefined || rec.kind !== 'pull' || rec.source !== pg.whoami) return;
  const item = pg.missing.get(object);
  if (item === undefined || evCmp(item.need, need) !== 0 || !result.exists || evCmp(result.version, need) !== 0) {
    pg.recovering.delete(object);
    if (item !== undefined) {
      pg.unfound.add(object); // retried after a while: a member may come back
      pg.ecPullAfterMs.set(object, pg.nowMs + pg.cfg.peerRetryMs);
    }
    return;
  }
  pg.missing.delete(object);
  pg.unfound.delete(object);
  pg.objects.set(object, { version: need, sizeBytes: pg.objects.get(object)?.sizeBytes ?? 0 });
  pg.persist([{ kind: 'writeFull', object, data: result.data, version: need }], { kind: 'pulled', interval: pg.interval, object });
  assert(!pg.missing.has(object), 'rebuilt shard no longer missing');
}

/** A member that has `object` at `need` (Ceph `MissingLoc`): acting peers not missing it, then other peers. */
function chooseSource(pg: PgCore, object: string, need: Eversion): number | undefined {
  const bad = pg.badSources.get(object);
  const m = pg.mapping!;
  const ok = (o: number): boolean => o !== pg.whoami && m.isUp(o) && !(bad?.has(o) ?? false);
  const hint = pg.sourceHint.get(object);
  if (hint !== undefined && ok(hint)) return hint;
  for (const p of pg.actingPeers()) if (ok(p) && !(pg.peerMissing.get(p)?.has(object) ?? true)) return p;
  for (const [o, meta] of [...pg.peerMetas].sort((a, b) => a[0] - b[0])) {
    if (!ok(o) || meta.info.lastBackfill !== null || meta.missing.has(object)) continue;
    if (evCmp(meta.info.lastUpdate, need) >= 0) return o;
  }
  // Unfound among the likely holders: ask everyone else in turn (Ceph `discover_all_missing`);
  // the pulled version is checked, so an incomplete or stale member cannot supply a wrong copy.
  const others = new Set([...pg.peerMetas.keys(), ...pg.backfillTargets, ...pg.actingPeers()]);
  return [...others].sort((a, b) => a - b).find(ok);
}

/** Any member: serve a pull by reading the object. */
export function onPull(pg: PgCore, from: number, object: string): void {
  assert(object.length > 0, 'pull of an empty name');
  pg.read(object, { kind: 'servePull', interval: pg.interval, to: from, object });
}

/** Primary: a pulled copy arrived; keep it if it is the version needed. */
export function onPullReply(
  pg: PgCore, from: number, msg: { object: string; version: Eversion | null; data: Uint8Array | null },
): void {
  const rec = pg.recovering.get(msg.object);
  if (pg.role !== 'primary' || rec === undefined || rec.kind !== 'pull' || rec.source !== from) return;
  const item = pg.missing.get(msg.object);
  if (rec.salvage === true) {
    pg.recovering.delete(msg.object);
    pg.newerCopies.delete(msg.object);
    if (item !== undefined && msg.version !== null && msg.data !== null && evCmp(msg.version, rec.need) === 0) {
      salvage(pg, msg.object, item.need, msg.data);
    }
    return;
  }
  if (item !== undefined && msg.version !== null && evCmp(msg.version, item.need) > 0) {
    // A newer copy than the log wants (a rolled-back, never acknowledged write): kept in
    // mind in case the wanted version turns out to be lost (mark_unfound_lost salvages it).
    const known = pg.newerCopies.get(msg.object);
    if (known === undefined || evCmp(msg.version, known.version) > 0) pg.newerCopies.set(msg.object, { osd: from, version: msg.version });
  }
  if (item === undefined || msg.version === null || msg.data === null || evCmp(msg.version, item.need) !== 0) {
    // That member has another version (divergent, stale or gone): try someone else.
    const bad = pg.badSources.get(msg.object) ?? new Set<number>();
    bad.add(from);
    pg.badSources.set(msg.object, bad);
    pg.recovering.delete(msg.object);
    return;
  }
  pg.missing.delete(msg.object);
  pg.unfound.delete(msg.object);
  pg.sourceHint.delete(msg.object);
  pg.objects.set(msg.object, { version: msg.version, sizeBytes: msg.data.length });
  pg.persist([{ kind: 'writeFull', object: msg.object, data: msg.data, version: msg.version }], {
    kind: 'pulled', interval: pg.interval, object: msg.object,
  });
  assert(!pg.missing.has(msg.object), 'pulled object no longer missing');
}

/**
 * mark_unfound_lost found a newer copy of a lost object (a rolled-back write that was never
 * acknowledged, still on some member): rather than delete the object, write that copy back
 * as a new log entry, so every acknowledged version is superseded, not lost.
 */
export function salvage(pg: PgCore, object: string, lostVersion: Eversion, data: Uint8Array): void {
  assert(pg.role === 'primary' && pg.missing.has(object), 'only a primary salvages a missing object');
  pg.missing.delete(object);
  pg.unfound.delete(object);
  pg.badSources.delete(object);
  for (const pm of pg.peerMissing.values()) pm.delete(object);
  submitInternalWrite(pg, object, { kind: 'writeFull', data }, lostVersion, 'modify');
  assert(!pg.missing.has(object), 'salvaged object no longer missing');
}

/** Primary: an object read finished — push it, or answer a client read. */
export function onObjectRead(pg: PgCore, tag: Extract<ReadTag, { kind: 'push' | 'backfillPush' | 'clientRead' }>, result: StoreReadResult): void {
  assert(result.kind === 'read', 'object reads return objects');
  switch (tag.kind) {
    case 'clientRead':
      replyRead(pg, tag.op, result);
      return;
    case 'push': {
      const rec = pg.recovering.get(tag.object);
      if (rec === undefined || rec.kind !== 'push') return;
      const stat = pg.objects.get(tag.object);
      if (tag.target !== undefined && (!result.exists || stat === undefined || evCmp(result.version, stat.version) !== 0)) {
        // EC: too few members could rebuild the shard now; retried on the tick.
        return;
      }
      assert(result.exists && stat !== undefined && evCmp(result.version, stat.version) === 0,
        `primary copy of ${tag.object} matches its index`);
      const mode: PushMode = pg.repairing.has(tag.object) ? 'repair' : 'recovery';
      const msg = { kind: 'push', object: tag.object, version: result.version, data: result.data, mode, pgid: pg.pgid, interval: pg.interval } as const;
      rec.sentAtMs = pg.nowMs;
      const targets = tag.target === undefined ? [...rec.waiting] : rec.waiting.has(tag.target) ? [tag.target] : [];
      for (const p of targets) {
        rec.msgs.set(p, msg);
        pg.tokensBytes -= result.data.length;
        pg.out.messages.push({ to: p, msg });
      }
      return;
    }
    case 'backfillPush': {
      const b = pg.backfill.get(tag.target);
      if (b === undefined || !b.pending.has(tag.object)) return;
      // A copy whose write is still in flight could reach the target before that write's log
      // entry does; if the write then died with this primary, the target would hold data its
      // log cannot roll back. Push only committed versions (the batch retries on the tick).
      if (result.exists && evCmp(result.version, pg.committedTo) > 0) return;
      const version = result.exists ? result.version : pg.log.head;
      const data = result.exists ? result.data : null;
      pg.tokensBytes -= data?.length ?? 0;
      pg.send(tag.target, { kind: 'push', object: tag.object, version, data, mode: 'backfill' });
      return;
    }
    default:
      assertNeverTag(tag);
  }
}

function assertNeverTag(tag: never): never {
  throw new Error(`unexpected read tag ${JSON.stringify(tag)}`);
}

function replyRead(pg: PgCore, op: ClientOp, result: Extract<StoreReadResult, { kind: 'read' }>): void {
  if (!result.exists) {
    pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'ENOENT', message: `object ${op.object} does not exist` });
    return;
  }
  pg.out.replies.push({ reqid: op.reqid, ok: true, version: result.version, data: result.data });
}

/**
 * Whether a push is a late duplicate that a newer write may already have superseded (the
 * network reorders and duplicates, and the primary resends unacknowledged pushes).
 */
function pushIsStale(pg: PgCore, msg: { object: string; version: Eversion; mode: PushMode }): boolean {
  // A write of this interval newer than the pushed copy (or than the removal decision) wins.
  const written = pg.writtenThisInterval.get(msg.object);
  if (written !== undefined && evCmp(written, msg.version) > 0) return true;
  switch (msg.mode) {
    case 'recovery':
      return !pg.missing.has(msg.object);
    case 'backfill':
      return pg.info.lastBackfill === null;
    case 'repair': {
      const cur = pg.objects.get(msg.object);
      const fence = evMax(msg.version, { epoch: pg.interval, version: 0 });
      const newer = lastEntryFor(pg.log, msg.object);
      return (cur !== undefined && evCmp(cur.version, fence) > 0) || (newer !== undefined && evCmp(newer.version, msg.version) > 0);
    }
    default:
      return assertNever(msg.mode, 'push mode');
  }
}

/** Replica or backfill target: store a pushed copy (or remove it) unless stale; ack once durable. */
export function onPush(
  pg: PgCore, from: number, msg: { object: string; version: Eversion; data: Uint8Array | null; mode: PushMode },
): void {
  if (pg.role !== 'replica' || !pg.activated || from !== pg.mapping!.actingPrimary) return;
  const ops: StoreOp[] = [];
  if (pushIsStale(pg, msg)) {
    // Already superseded: acknowledge without touching the copy.
  } else if (msg.data === null) {
    ops.push({ kind: 'remove', object: msg.object, version: null });
    pg.objects.delete(msg.object);
  } else {
    ops.push({ kind: 'writeFull', object: msg.object, data: msg.data, version: msg.version });
    pg.objects.set(msg.object, { version: msg.version, sizeBytes: msg.data.length });
  }
  pg.missing.delete(msg.object);
  pg.persist(ops, { kind: 'pushed', interval: pg.interval, object: msg.object, primary: from, mode: msg.mode });
  assert(!pg.missing.has(msg.object), 'pushed object no longer missing');
}

/** Primary: a push (recovery or backfill) is durable on `from`. */
export function onPushAck(pg: PgCore, from: number, object: string, mode: PushMode): void {
  assert(object.length > 0 && from !== pg.whoami, 'push acks name an object and come from a peer');
  if (pg.role !== 'primary') return;
  if (mode === 'backfill') {
    const b = pg.backfill.get(from);
    if (b === undefined || b.phase !== 'pushing' || !b.pending.delete(object)) return;
    if (b.pending.size === 0) advanceBackfill(pg, from, b);
    return;
  }
  const rec = pg.recovering.get(object);
  pg.peerMissing.get(from)?.delete(object);
  if (rec === undefined || rec.kind !== 'push') return;
  rec.waiting.delete(from);
  assert(!(pg.peerMissing.get(from)?.has(object) ?? false), 'an acked push leaves the peer complete for the object');
  if (rec.waiting.size === 0) {
    pg.recovering.delete(object);
    pg.repairing.delete(object);
  }
}

function kickBackfill(pg: PgCore): void {
  if (!pg.reserved) {
    pg.reserved = pg.reserver.request(pg.pgid);
    if (!pg.reserved) return;
  }
  for (const [t, b] of pg.backfill) if (b.phase === 'idle' && pg.tokensBytes > 0) startBatch(pg, t, b);
}

/** The primary's object names after `after`, in order. */
function namesAfter(pg: PgCore, after: string): string[] {
  return [...pg.objects.keys()].filter((n) => n > after).sort();
}

function startBatch(pg: PgCore, target: number, b: BackfillState): void {
  assert(b.watermark !== null && b.phase === 'idle', 'a batch starts from an idle, incomplete backfill');
  const names = namesAfter(pg, b.watermark);
  b.upTo = names.length > pg.cfg.backfillScanBatchMax ? names[pg.cfg.backfillScanBatchMax - 1]! : null;
  b.phase = 'scanning';
  b.sentAtMs = pg.nowMs;
  pg.send(target, { kind: 'backfillScan', after: b.watermark, upTo: b.upTo });
}

/** Backfill target: list its objects in (after, upTo]. */
export function onBackfillScan(pg: PgCore, from: number, after: string, upTo: string | null): void {
  if (pg.role !== 'replica' || !pg.activated || from !== pg.mapping!.actingPrimary) return;
  assert(upTo === null || upTo > after, 'a scan range is non-empty');
  if (pg.info.lastBackfill === null) return;
  const objects: (readonly [string, Eversion])[] = [];
  for (const [n, s] of pg.objects) if (n > after && (upTo === null || n <= upTo)) objects.push([n, s.version]);
  objects.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  pg.send(from, { kind: 'backfillScanReply', after, objects });
}

/** Primary: compare a batch and push the differences. */
export function onBackfillScanReply(pg: PgCore, from: number, after: string, objects: readonly (readonly [string, Eversion])[]): void {
  const b = pg.backfill.get(from);
  if (pg.role !== 'primary' || b === undefined || b.phase !== 'scanning' || b.watermark !== after) return;
  assert(b.pending.size === 0, 'no pushes outstanding while scanning');
  const inRange = (n: string): boolean => n > after && (b.upTo === null || n <= b.upTo);
  const theirs = new Map(objects.filter(([n]) => inRange(n)));
  b.phase = 'pushing';
  b.sentAtMs = pg.nowMs;
  for (const [n, stat] of pg.objects) {
    if (!inRange(n)) continue;
    const v = theirs.get(n);
    if (v !== undefined && evCmp(v, stat.version) === 0) continue;
    b.pending.add(n);
    readForBackfill(pg, n, from);
  }
  for (const n of theirs.keys()) {
    if (pg.objects.has(n)) continue;
    b.pending.add(n);
    pg.send(from, { kind: 'push', object: n, version: pg.log.head, data: null, mode: 'backfill' });
  }
  if (b.pending.size === 0) advanceBackfill(pg, from, b);
  assert((b.phase as BackfillState['phase']) !== 'scanning', 'a scan reply moves the batch on');
}

/** Reads the copy a backfill push of `object` sends `target`: the primary's, or (EC) the target's shard rebuilt. */
function readForBackfill(pg: PgCore, object: string, target: number): void {
  const tag = { kind: 'backfillPush', interval: pg.interval, object, target } as const;
  const stat = pg.objects.get(object);
  if (pg.ecK === 0 || stat === undefined) pg.read(object, tag);
  else pg.read(object, tag, { shard: shardOf(target), need: stat.version });
}

function advanceBackfill(pg: PgCore, target: number, b: BackfillState): void {
  assert(b.pending.size === 0, 'batch complete');
  if (b.upTo === null) {
    b.watermark = null;
    b.phase = 'finishing';
    b.sentAtMs = pg.nowMs;
    pg.send(target, { kind: 'backfillDone' });
    return;
  }
  b.watermark = b.upTo;
  b.phase = 'idle';
}

/** Backfill target: everything is copied; the copy is complete. */
export function onBackfillDone(pg: PgCore, from: number): void {
  if (pg.role !== 'replica' || !pg.activated || from !== pg.mapping!.actingPrimary) return;
  assert(pg.missing.size === 0, 'a backfill target tracks no missing objects');
  pg.info = { ...pg.info, lastBackfill: null };
  pg.persist([], { kind: 'backfillDone', interval: pg.interval, primary: from });
  assert(pg.info.lastBackfill === null, 'backfill complete is persisted');
}

/** Primary: a target finished; once all have, give the slot back and ask to drop pg_temp. */
export function onBackfillDoneAck(pg: PgCore, from: number): void {
  const b = pg.backfill.get(from);
  if (pg.role !== 'primary' || b === undefined || b.phase !== 'finishing') return;
  assert(b.pending.size === 0 && b.watermark === null, 'a finished backfill covered everything');
  b.phase = 'done';
  if ([...pg.backfill.values()].every((x) => x.phase === 'done')) {
    if (pg.reserved) pg.reserver.release(pg.pgid);
    pg.reserved = false;
    pg.requestPgTemp([]);
  }
}

/** Tick work of an active primary: resend what went unanswered. */
export function retryRecovery(pg: PgCore): void {
  assert(pg.role === 'primary' && pg.phase === 'active', 'only an active primary recovers');
  assert(pg.activationCommitted, 'an active primary has durably activated');
  resendRepops(pg);
  // Unfound objects: every member is worth asking again (one may have recovered it since).
  for (const o of pg.unfound) pg.badSources.delete(o);
  const stale = (t: number): boolean => pg.nowMs - t >= pg.cfg.peerRetryMs;
  for (const [o, rec] of pg.recovering) {
    if (!stale(rec.sentAtMs)) continue;
    rec.sentAtMs = pg.nowMs;
    if (rec.kind === 'pull') {
      if (rec.source === pg.whoami) continue; // a local salvage read: it will complete
      if (pg.mapping!.isUp(rec.source)) pg.send(rec.source, { kind: 'pull', object: o, need: rec.need });
      else pg.recovering.delete(o);
    } else {
      const unread: number[] = [];
      for (const p of rec.waiting) {
        const msg = rec.msgs.get(p);
        if (msg !== undefined) pg.out.messages.push({ to: p, msg });
        else unread.push(p);
      }
      // EC shards that could not be rebuilt yet: try again.
      if (pg.ecK > 0 && unread.length > 0) readForPush(pg, o, unread);
    }
  }
  for (const [t, b] of pg.backfill) {
    if (!stale(b.sentAtMs)) continue;
    b.sentAtMs = pg.nowMs;
    if (b.phase === 'scanning') pg.send(t, { kind: 'backfillScan', after: b.watermark!, upTo: b.upTo });
    else if (b.phase === 'finishing') pg.send(t, { kind: 'backfillDone' });
    else if (b.phase === 'pushing') {
      for (const n of b.pending) {
        if (pg.objects.has(n)) readForBackfill(pg, n, t);
        else pg.send(t, { kind: 'push', object: n, version: pg.log.head, data: null, mode: 'backfill' });
      }
    }
  }
  if (pg.pgTempWanted !== null && [...pg.backfill.values()].every((x) => x.phase === 'done') && pg.backfill.size > 0) {
    pg.requestPgTemp(pg.pgTempWanted);
  }
}
