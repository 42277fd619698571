/**
 * The replicated write path (Ceph src/osd/PrimaryLogPG.cc `do_op`/`execute_ctx`/`issue_repop`,
 * ReplicatedBackend.cc `submit_transaction`/`do_repop`/`repop_commit`).
 *
 * The primary orders each client write in the PG log (version = current map epoch, head
 * counter + 1), applies it locally and sends it to every acting replica (and to backfill
 * targets, with data only for objects already backfilled), and acknowledges the client only
 * once ALL of them reported the write durable — replies go out in log order. Ops wait (then
 * fail after `clientOpBlockTimeoutMs`) while the PG is not active, and wait per object while
 * the object is missing somewhere, being recovered or backfilled, or the PG is scrubbing.
 * A resent op (same reqid) found in the log or its dups is answered with the first result.
 */
import { assert } from '@aspen/shared';
import { appendEntry, findReqid, sameReqid, trimTarget } from './pg-log.ts';
import type { PgCore } from './pg.ts';
import {
  EVERSION_ZERO, evCmp, isReadBody, evStr, shardOf, type ClientOp, type ReqId, type ClientOpBody, type Eversion, type LogEntry, type LogOp, type PgMessage, type StoreOp,
} from './types.ts';
import { inBackfillScan, watermarkCovers } from './recovery.ts';

/** A write ordered in the log and waiting for its acks. */
export interface InflightOp {
  /** The client op; null for an internal entry (mark_unfound_lost). */
  readonly op: ClientOp | null;
  readonly entry: LogEntry;
  /** Members (this OSD included) that have not yet reported the write durable. */
  readonly waiting: Set<number>;
  /** Resends of the same request waiting for this result. */
  readonly dupOps: ClientOp[];
  /** The repop per peer, for resending. */
  readonly repops: Map<number, Extract<PgMessage, { kind: 'repop' }>>;
  sentAtMs: number;
  /** Already answered (only with the test-only debugUnsafeAckOnPrimaryCommit). */
  replied: boolean;
}

/** Handles a client op delivered to this OSD for this PG. */
export function onClientOp(pg: PgCore, op: ClientOp): void {
  assert(op.object.length > 0, 'object names are non-empty');
  assert(op.reqid.client.length > 0 && op.reqid.tid >= 0, 'a client op has a request id');
  if (pg.role !== 'primary') {
    pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'ESTALE', message: `osd.${pg.whoami} is not the primary of ${pg.pgid} at epoch ${pg.epoch}` });
    return;
  }
  // A resend of a request already queued or in flight is answered with it (one reply per reqid).
  if (pg.waitingOps.some((w) => sameReqid(w.op.reqid, op.reqid))) return;
  if (!isReadBody(op.body) && pg.inflight.some((f) => f.op !== null && sameReqid(f.op.reqid, op.reqid))) return;
  const queued = pg.waitingOps.length + pg.inflight.length;
  if (queued >= pg.cfg.clientOpsQueuedMax) {
    pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'EBUSY', message: `pg ${pg.pgid} has ${queued} ops queued or in flight` });
    return;
  }
  pg.waitingOps.push({ op, deadlineMs: pg.nowMs + pg.cfg.clientOpBlockTimeoutMs });
  // pg.finish() runs executeWaiting when active.
}

/** Whether a write (or read) of `object` must wait (Ceph `is_degraded_or_backfilling_object`, scrub blocking). */
export function objectBlocked(pg: PgCore, object: string, forRead: boolean): boolean {
  if (pg.scrub !== undefined || pg.missing.has(object) || pg.recovering.has(object)) return true;
  for (const pm of pg.peerMissing.values()) if (pm.has(object)) return true;
  if (inBackfillScan(pg, object)) return true;
  if (forRead && pg.inflight.some((f) => f.entry.object === object)) return true;
  return false;
}

/** Runs queued ops that can run, in arrival order per object. */
export function executeWaiting(pg: PgCore): void {
  if (pg.waitingOps.length === 0) return;
  const blockedObjects = new Set<string>();
  const keep: typeof pg.waitingOps = [];
  for (const w of pg.waitingOps) {
    const op = w.op;
    const isRead = isReadBody(op.body);
    // Blocked first, then dedup (Ceph do_op's order): a resend of a write whose object is
    // still missing somewhere is answered only once the object is whole again.
    if (blockedObjects.has(op.object) || objectBlocked(pg, op.object, isRead)) {
      blockedObjects.add(op.object);
      keep.push(w);
      continue;
    }
    if (dedup(pg, op)) continue;
    if (op.body.kind === 'probe') probe(pg, op, op.body.dupOf);
    else if (isRead) pg.read(op.object, { kind: 'clientRead', interval: pg.interval, op });
    else execute(pg, op);
  }
  pg.waitingOps = keep;
  assert(pg.waitingOps.length <= pg.cfg.clientOpsQueuedMax, 'queued ops within limit');
}

/** Answers a probe: the object's version, or (dupOf in the log) that write's version. */
function probe(pg: PgCore, op: ClientOp, dupOf: ReqId | undefined): void {
  const v = dupOf === undefined ? undefined : findReqid(pg.log, dupOf);
  if (v === undefined) {
    pg.out.replies.push({ reqid: op.reqid, ok: true, version: pg.objects.get(op.object)?.version ?? EVERSION_ZERO });
    return;
  }
  // Not in flight: the object is readable, so every write to it has completed.
  const lost = pg.log.entries.some((e) => e.op === 'lostDelete' && e.object === op.object && evCmp(e.priorVersion, v) >= 0);
  if (lost) pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'EIO', message: `the write ${evStr(v)} to ${op.object} was lost (mark_unfound_lost)` });
  else pg.out.replies.push({ reqid: op.reqid, ok: true, version: v, dup: true });
}

/** Answers a resend from the log (Ceph `PrimaryLogPG::check_in_progress_op` / dup detection). */
function dedup(pg: PgCore, op: ClientOp): boolean {
  if (isReadBody(op.body)) return false;
  const v = findReqid(pg.log, op.reqid);
  if (v === undefined) return false;
  const f = pg.inflight.find((x) => evCmp(x.entry.version, v) === 0);
  const lost = pg.log.entries.some((e) => e.op === 'lostDelete' && e.object === op.object && evCmp(e.priorVersion, v) >= 0);
  if (lost) pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'EIO', message: `the write ${evStr(v)} to ${op.object} was lost (mark_unfound_lost)` });
  else if (f !== undefined) {
    if (!(f.op !== null && sameReqid(f.op.reqid, op.reqid)) && !f.dupOps.some((d) => sameReqid(d.reqid, op.reqid))) f.dupOps.push(op);
  }
  else pg.out.replies.push({ reqid: op.reqid, ok: true, version: v });
  return true;
}

function execute(pg: PgCore, op: ClientOp): void {
  const body = op.body;
  assert(!isReadBody(body), 'reads are not logged');
  const cur = pg.objects.get(op.object);
  if ((body.kind === 'txn' || body.kind === 'delete') && body.priorVersion !== undefined && evCmp(body.priorVersion, cur?.version ?? EVERSION_ZERO) !== 0) {
    // Planned against another version of the object (it changed between the plan and now).
    pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'EAGAIN', message: `object ${op.object} is at ${evStr(cur?.version ?? EVERSION_ZERO)}, not ${evStr(body.priorVersion)}` });
    return;
  }
  if (body.kind === 'delete' && cur === undefined) {
    pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'ENOENT', message: `object ${op.object} does not exist` });
    return;
  }
  submitWrite(pg, op, op.object, body, cur?.version ?? EVERSION_ZERO);
}

/**
 * Ceph `mark_unfound_lost delete`: every object missing on the primary that no reachable
 * member could supply is deleted through the log (a `lostDelete` entry), so the PG can
 * recover and become clean. A no-op unless this is the primary of an active (or peered) PG.
 */
export function markUnfoundLost(pg: PgCore): void {
  if (pg.role !== 'primary' || pg.phase !== 'active') return;
  for (const o of [...pg.unfound].sort()) {
    const item = pg.missing.get(o);
    const rec = pg.recovering.get(o);
    if (item === undefined || (rec?.kind === 'pull' && rec.salvage === true)) continue;
    pg.recovering.delete(o); // a pull still asking around is abandoned; its reply will be ignored
    // A newer copy (a rolled-back write) supersedes the lost version instead of a delete
    // (replicated pools only: one shard of an EC object is not the object).
    const own = pg.ecK > 0 ? undefined : pg.objects.get(o);
    if (own !== undefined && evCmp(own.version, item.need) > 0) {
      pg.recovering.set(o, { kind: 'pull', source: pg.whoami, need: own.version, sentAtMs: pg.nowMs, salvage: true });
      pg.read(o, { kind: 'salvageRead', interval: pg.interval, object: o });
      continue;
    }
    const newer = pg.ecK > 0 ? undefined : pg.newerCopies.get(o);
    if (newer !== undefined && pg.mapping!.isUp(newer.osd)) {
      pg.recovering.set(o, { kind: 'pull', source: newer.osd, need: newer.version, sentAtMs: pg.nowMs, salvage: true });
      pg.send(newer.osd, { kind: 'pull', object: o, need: newer.version });
      continue;
    }
    pg.unfound.delete(o);
    pg.badSources.delete(o);
    for (const pm of pg.peerMissing.values()) pm.delete(o);
    pg.missing.delete(o);
    submitWrite(pg, null, o, { kind: 'delete' }, item.need, 'lostDelete');
    assert(!pg.missing.has(o) && !pg.objects.has(o), 'a lost object is gone');
  }
}

/**
 * The primary's copy of `object` failed a read (Ceph `rep_repair_primary_object`): it is
 * marked missing here (needed at its current version) and recovery pulls it from a member
 * that has it; ops on it wait meanwhile. A no-op unless this is an active primary holding
 * the object and not already recovering it.
 */
export function onObjectError(pg: PgCore, object: string): void {
  if (pg.role !== 'primary' || pg.phase !== 'active') return;
  const cur = pg.objects.get(object);
  if (cur === undefined || pg.missing.has(object) || pg.recovering.has(object)) return;
  pg.missing.set(object, { need: cur.version, have: EVERSION_ZERO });
  pg.persist([], { kind: 'none' });
}

/** Whether mark_unfound_lost would keep a newer copy of `object` rather than delete it. */
export function hasSalvageCopy(pg: PgCore, object: string): boolean {
  const item = pg.missing.get(object);
  if (item === undefined) return false;
  const own = pg.objects.get(object);
  return (own !== undefined && evCmp(own.version, item.need) > 0) || pg.newerCopies.has(object);
}

/** A log entry ordered by the primary itself (no client): salvage and lost deletes. */
export function submitInternalWrite(
  pg: PgCore, object: string, body: Exclude<ClientOpBody, { kind: 'read' | 'probe' }>, priorVersion: Eversion, logOp: LogOp,
): void {
  submitWrite(pg, null, object, body, priorVersion, logOp);
}

function submitWrite(
  pg: PgCore, op: ClientOp | null, object: string, body: Exclude<ClientOpBody, { kind: 'read' | 'probe' }>, priorVersion: Eversion,
  logOp: LogOp = body.kind === 'delete' ? 'delete' : 'modify',
): void {
  const version: Eversion = { epoch: pg.epoch, version: pg.log.head.version + 1 };
  const entry: LogEntry = {
    version, op: logOp, object,
    priorVersion, reqid: op?.reqid ?? null,
  };
  const prev = pg.log.head;
  pg.log = appendEntry(pg.log, entry);
  const trimTo = trimTarget(pg.log, pg.cfg.pgLogMaxEntries, pg.committedTo);
  pg.trimTo(trimTo);
  const ops = applyBody(pg, entry, bodyForShard(body, pg.shard));
  // EC: writes durable on every member no longer need their rollback stashes.
  const rollForwardTo = pg.ecK > 0 ? pg.committedTo : undefined;
  if (rollForwardTo !== undefined) {
    ops.unshift({ kind: 'rollForward', to: rollForwardTo });
    pg.rolledForwardTo = rollForwardTo;
  }
  pg.lastWriteMs = pg.nowMs;
  pg.persist(ops, { kind: 'write', interval: pg.interval, version });
  const f: InflightOp = {
    op, entry, waiting: new Set([pg.whoami, ...pg.writePeers()]), dupOps: [], repops: new Map(), sentAtMs: pg.nowMs, replied: false,
  };
  const repBody: ClientOpBody = body.kind === 'delete' ? { kind: 'delete' } : body;
  for (const p of pg.writePeers()) {
    const applyData = !pg.backfillTargets.includes(p) || watermarkCovers(pg, p, object);
    const msg = {
      kind: 'repop', prev, entry, body: bodyForShard(repBody, pg.ecK > 0 ? shardOf(p) : -1), applyData, trimTo, pgid: pg.pgid, interval: pg.interval,
      ...(rollForwardTo !== undefined ? { rollForwardTo } : {}),
    } as const;
    f.repops.set(p, msg);
    pg.out.messages.push({ to: p, msg });
  }
  pg.inflight.push(f);
  assert(evCmp(pg.log.head, version) === 0, 'the new entry is the head');
}

/**
 * The body a member applies: an EC `txn` carries one transaction per shard position and
 * shard `shard` applies its own (Ceph ECTransaction); every other body is the same for all.
 */
function bodyForShard<B extends ClientOpBody>(body: B, shard: number): B {
  if (body.kind !== 'txn' || body.shards === undefined) return body;
  const mine = body.shards[shard];
  assert(mine !== undefined, `an EC transaction has no part for shard ${shard}`);
  return { kind: 'txn', meta: mine.meta, data: mine.data, sizeBytes: body.sizeBytes, priorVersion: body.priorVersion } as B;
}

/** Store ops for one logged op, and the member's object index update. */
export function applyBody(pg: PgCore, entry: LogEntry, body: ClientOpBody): StoreOp[] {
  const o = entry.object;
  switch (body.kind) {
    case 'writeFull':
      pg.objects.set(o, { version: entry.version, sizeBytes: body.data.length });
      return [{ kind: 'writeFull', object: o, data: body.data, version: entry.version }];
    case 'write': {
      const size = Math.max(pg.objects.get(o)?.sizeBytes ?? 0, body.offsetBytes + body.data.length);
      pg.objects.set(o, { version: entry.version, sizeBytes: size });
      return [{ kind: 'write', object: o, offsetBytes: body.offsetBytes, data: body.data, version: entry.version }];
    }
    case 'txn':
      pg.objects.set(o, { version: entry.version, sizeBytes: body.sizeBytes });
      return [{ kind: 'txn', object: o, meta: body.meta, data: body.data, sizeBytes: body.sizeBytes, version: entry.version }];
    case 'delete':
      pg.objects.delete(o);
      return [{ kind: 'remove', object: o, version: entry.version }];
    case 'read':
    case 'probe':
      assert(false, 'reads are not logged');
      return [];
    default:
      return assertNeverBody(body);
  }
}

function assertNeverBody(body: never): never {
  throw new Error(`unexpected op body ${JSON.stringify(body)}`);
}

/** The primary's own transaction for `version` is durable. */
export function onWriteCommitted(pg: PgCore, version: Eversion): void {
  assert(pg.role === 'primary', 'only a primary commits client writes');
  assert(evCmp(version, pg.log.head) <= 0, 'a committed write is in the log');
  const f = pg.inflight.find((x) => evCmp(x.entry.version, version) === 0);
  if (f === undefined) return;
  f.waiting.delete(pg.whoami);
  if (pg.cfg.debugUnsafeAckOnPrimaryCommit === true && !f.replied && f.op !== null) {
    // The deliberately broken rule: acknowledge before the replicas have it.
    f.replied = true;
    pg.out.replies.push({ reqid: f.op.reqid, ok: true, version: f.entry.version });
  }
  completeInOrder(pg);
}

/** A replica reported `version` durable. */
export function onRepopAck(pg: PgCore, from: number, version: Eversion): void {
  assert(from !== pg.whoami, 'a primary does not ack itself over the wire');
  if (pg.role !== 'primary') return;
  const f = pg.inflight.find((x) => evCmp(x.entry.version, version) === 0);
  if (f === undefined) return;
  f.waiting.delete(from);
  assert(!f.waiting.has(from), 'ack recorded');
  completeInOrder(pg);
}

/** Replies to every write at the front of the log whose members all have it durable. */
function completeInOrder(pg: PgCore): void {
  while (pg.inflight.length > 0 && pg.inflight[0]!.waiting.size === 0) {
    const f = pg.inflight.shift()!;
    assert(evCmp(f.entry.version, pg.committedTo) > 0, 'writes complete in log order');
    pg.committedTo = f.entry.version;
    const ops = f.replied || f.op === null ? f.dupOps : [f.op, ...f.dupOps];
    for (const op of ops) pg.out.replies.push({ reqid: op.reqid, ok: true, version: f.entry.version });
  }
}

/** Resends repops not yet acknowledged (lost or dropped as out of order). */
export function resendRepops(pg: PgCore): void {
  for (const f of pg.inflight) {
    if (pg.nowMs - f.sentAtMs < pg.cfg.peerRetryMs) continue;
    f.sentAtMs = pg.nowMs;
    for (const [p, msg] of f.repops) if (f.waiting.has(p)) pg.out.messages.push({ to: p, msg });
  }
}

/**
 * A new interval: ops in flight or queued are requeued when this OSD stays primary (the
 * log answers those already ordered), otherwise answered ESTALE so the client resends.
 */
export function requeueOrReject(pg: PgCore, staysPrimary: boolean): { op: ClientOp; deadlineMs: number }[] {
  const all = [...pg.inflight.flatMap((f) => (f.op === null ? f.dupOps : [f.op, ...f.dupOps])), ...pg.waitingOps.map((w) => w.op)];
  const ops = all.filter((op, i) => all.findIndex((o) => sameReqid(o.reqid, op.reqid)) === i);
  if (staysPrimary) {
    const keep = ops.slice(0, pg.cfg.clientOpsQueuedMax);
    for (const op of ops.slice(keep.length)) {
      pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'EBUSY', message: `pg ${pg.pgid} has too many ops queued` });
    }
    return keep.map((op) => ({ op, deadlineMs: pg.nowMs + pg.cfg.clientOpBlockTimeoutMs }));
  }
  for (const op of ops) {
    pg.out.replies.push({ reqid: op.reqid, ok: false, code: 'ESTALE', message: `pg ${pg.pgid} changed primary; resend` });
  }
  return [];
}

/** A replica (or backfill target) applies a repop in log order and acks once durable. */
export function onRepop(pg: PgCore, from: number, msg: Extract<PgMessage, { kind: 'repop' }>): void {
  if (pg.role !== 'replica' || !pg.activated || from !== pg.mapping!.actingPrimary) return;
  const e = msg.entry;
  if (evCmp(e.version, pg.log.head) <= 0) {
    // A resend of something we have: ack once our copy is durable.
    if (!pg.pendingRepops.has(evStr(e.version))) pg.send(from, { kind: 'repopAck', version: e.version });
    return;
  }
  if (evCmp(msg.prev, pg.log.head) !== 0) return; // out of order: the primary resends
  pg.log = appendEntry(pg.log, e);
  pg.trimTo(msg.trimTo);
  // The primary holds writes to objects missing anywhere until they are recovered; only
  // mark_unfound_lost replaces (salvage) or deletes a missing object.
  assert(!msg.applyData || !pg.missing.has(e.object) || (e.reqid === null && msg.body.kind !== 'write'),
    `repop for ${e.object}, which this replica is missing`);
  if (msg.applyData) pg.missing.delete(e.object);
  const ops = msg.applyData ? applyBody(pg, e, msg.body) : [];
  if (msg.rollForwardTo !== undefined && pg.ecK > 0) ops.unshift({ kind: 'rollForward', to: msg.rollForwardTo });
  if (msg.applyData) pg.writtenThisInterval.set(e.object, e.version);
  pg.pendingRepops.add(evStr(e.version));
  pg.persist(ops, { kind: 'repop', interval: pg.interval, version: e.version, primary: from });
  assert(evCmp(pg.log.head, e.version) === 0, 'repop appended');
}

/** Whether `a` and `b` are the same request (re-exported for the simulator's client). */
export { sameReqid };
