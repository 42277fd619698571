/**
 * Watch/notify at a PG's acting primary (Ceph PrimaryLogPG's CEPH_OSD_OP_WATCH / NOTIFY /
 * NOTIFY_ACK with the Watch and Notify classes of src/osd/Watch.cc), for the message types
 * MSG_WATCH, MSG_NOTIFY and MSG_NOTIFY_ACK; notifications go out as one-way MSG_WATCH_NOTIFY
 * on the watcher's messenger connection.
 *
 * - A watch is (object, clientId, cookie), kept in memory at the primary with the watcher's
 *   messenger session and current connection. It expires when no ping (or reconnect, or
 *   ack) arrives for its timeout (Ceph osd_client_watch_timeout, 30 s by default); a closed
 *   connection is not dropped at once, so the client's reconnect within the timeout resumes
 *   it, and notifications that could not be written meanwhile are sent again on the new
 *   connection (Ceph Watch::connect re-sends in-progress notifies). An expired watch leaves a
 *   tombstone: a later `reconnect` gets ENOTCONN (the watcher may have missed notifications),
 *   as Ceph answers a reconnect of an unknown watch.
 * - Watches are not persisted (Ceph keeps them in object_info_t and replicates them): when
 *   this OSD stops being the PG's acting primary its watches are dropped without tombstones,
 *   and a `reconnect` of a watch this OSD does not know is registered as a new watch (the
 *   client re-establishes its watches on the new primary). Notifications sent while no primary
 *   knew a watch are not delivered to it.
 * - A notify (Ceph Notify) sends the payload to every watch of the object, waits for each
 *   ack or the notify's timeout, and answers the acks (with reply bytes) and the watchers that
 *   timed out, sorted by (watcherId, cookie). A watch removed meanwhile (unwatch, expiry, PG
 *   moved) counts as neither (Ceph Notify::complete_watcher_remove).
 *
 * Not the primary at the request's epoch → ESTALE with our epoch (same rule as MSG_OSD_OP);
 * an object that does not exist → ENOENT for watch and notify (Ceph checks obs.exists).
 */
import { AspenError, type ErrorCode } from '@aspen/shared';
import { assert } from '@aspen/shared/assert.ts';
import { MSG_NOTIFY, MSG_NOTIFY_ACK, MSG_WATCH, MSG_WATCH_NOTIFY } from '@aspen/shared/client/messages.ts';
import {
  decodeNotifyAck, decodeNotifyRequest, decodeWatchRequest, encodeNotifyEvent, encodeNotifyReply, encodeWatchReply,
  type NotifyAckEntry, type NotifyReply, type WatchReply,
} from '@aspen/shared/client/watch-codec.ts';
import type { MsgrMessage, MsgrReply, MsgrSession, ServerConnection } from '@aspen/shared/io/msgr-server.ts';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { Logger } from 'pino';
import { normalizeOid } from '../store/oid.ts';

/** Default watch timeout, ms (Ceph osd_client_watch_timeout). */
export const WATCH_TIMEOUT_DEFAULT_MS = 30_000;
/** Largest watch timeout a client may ask for, ms. */
export const WATCH_TIMEOUT_MAX_MS = 3_600_000;
/** Default notify timeout, ms (Ceph osd_default_notify_timeout). */
export const NOTIFY_TIMEOUT_DEFAULT_MS = 30_000;
/** Largest notify timeout a client may ask for, ms. */
export const NOTIFY_TIMEOUT_MAX_MS = 600_000;
/** Watches one OSD keeps; beyond it a new watch gets EBUSY. */
export const WATCHES_MAX = 65_536;
/** Notifies in progress at one OSD; beyond it a notify gets EBUSY. */
export const NOTIFIES_INFLIGHT_MAX = 1024;
/** Tombstones of expired watches remembered (oldest forgotten first). */
export const EXPIRED_WATCHES_MAX = 4096;
/** How long a request for a newer epoch waits for that map, ms (as MSG_OSD_OP). */
export const WATCH_MAP_WAIT_MS = 2_000;

/** The map source: an OsdMapTracker. */
export interface WatchMapSource {
  readonly current: OsdMap | null;
  waitForEpoch(epoch: number): Promise<OsdMap>;
}

/** Options of a {@link WatchService}. */
export interface WatchServiceOptions {
  readonly whoami: number;
  readonly tracker: WatchMapSource;
  readonly log: Logger;
  /** Monotonic clock, ms. */
  readonly clock: () => number;
  /**
   * Whether `object` (the core's key: `name`, or `namespace\0name`) exists in PG `pgid`,
   * read through the PG (so it waits for recovery): 0, or an error code (ENOENT, ESTALE when
   * the PG is not here, ETIMEDOUT…).
   */
  readonly objectExists: (pgid: string, object: string) => Promise<0 | ErrorCode>;
  /** Timeout of a watch that asks for 0, ms; default {@link WATCH_TIMEOUT_DEFAULT_MS}. */
  readonly watchTimeoutMs?: number;
  /** Timeout of a notify that asks for 0, ms; default {@link NOTIFY_TIMEOUT_DEFAULT_MS}. */
  readonly notifyTimeoutMs?: number;
}

interface Watch {
  /** `clientId/cookie@objKey`. */
  readonly key: string;
  readonly clientId: string;
  readonly cookie: bigint;
  readonly pgid: string;
  readonly objKey: string;
  session: string;
  conn: ServerConnection;
  timeoutMs: number;
  lastPingMs: number;
  /** Notifies waiting for this watch's ack. */
  readonly inflight: Set<Notify>;
}

interface Notify {
  readonly id: bigint;
  readonly notifierId: string;
  readonly payload: Uint8Array;
  readonly epoch: number;
  /** Watches that have not acked yet, by key. */
  readonly pending: Map<string, Watch>;
  /** The connection each pending watch was last sent the event on. */
  readonly sentOn: Map<string, ServerConnection>;
  readonly acks: NotifyAckEntry[];
  timer: NodeJS.Timeout | undefined;
  resolve: ((r: MsgrReply) => void) | undefined;
}

const sessionKeyOf = (s: MsgrSession): string => `${s.entity}/${s.sessionId.toString(16)}`;

/** Watches and notifies of the PGs this OSD is the acting primary of. */
export class WatchService {
  private readonly watches = new Map<string, Watch>();
  private readonly byObject = new Map<string, Map<string, Watch>>();
  private readonly bySession = new Map<string, Set<Watch>>();
  private readonly notifies = new Map<bigint, Notify>();
  private readonly expired = new Map<string, true>();
  private notifySeq = 0n;
  private readonly watchTimeoutMs: number;
  private readonly notifyTimeoutMs: number;

  constructor(private readonly o: WatchServiceOptions) {
    this.watchTimeoutMs = o.watchTimeoutMs ?? WATCH_TIMEOUT_DEFAULT_MS;
    this.notifyTimeoutMs = o.notifyTimeoutMs ?? NOTIFY_TIMEOUT_DEFAULT_MS;
    assert(this.watchTimeoutMs > 0 && this.watchTimeoutMs <= WATCH_TIMEOUT_MAX_MS, 'watch timeout out of range');
    assert(this.notifyTimeoutMs > 0 && this.notifyTimeoutMs <= NOTIFY_TIMEOUT_MAX_MS, 'notify timeout out of range');
  }

  /** Whether messages of `type` belong to this service. */
  static handles(type: number): boolean {
    return type === MSG_WATCH || type === MSG_NOTIFY || type === MSG_NOTIFY_ACK;
  }

  /** Watches held (for tests and metrics). */
  get watchCount(): number {
    return this.watches.size;
  }

  /**
   * The MsgrServer handler for MSG_WATCH, MSG_NOTIFY and MSG_NOTIFY_ACK.
   * @throws AspenError EINVAL on a malformed message or another message type.
   */
  handle(conn: ServerConnection, msg: MsgrMessage): Promise<MsgrReply | void> | MsgrReply | void {
    this.noteConnection(conn, msg.session);
    switch (msg.type) {
      case MSG_WATCH: return this.watchOp(conn, msg);
      case MSG_NOTIFY: return this.notify(msg);
      case MSG_NOTIFY_ACK: return this.ack(msg);
      default: throw new AspenError('EINVAL', `message type ${msg.type} is not a watch/notify message`);
    }
  }

  /**
   * Records that `session` now speaks on `conn` (call for every message the server gets):
   * its watches follow the connection, and notifications whose event could not be written
   * on the old, closed connection are sent again on this one.
   */
  noteConnection(conn: ServerConnection, session: MsgrSession): void {
    const set = this.bySession.get(sessionKeyOf(session));
    if (set === undefined) return;
    for (const w of set) {
      if (w.conn === conn) continue;
      w.conn = conn;
      for (const n of w.inflight) {
        const was = n.sentOn.get(w.key);
        if (was === undefined || was.isClosed) this.sendEvent(w, n);
      }
    }
  }

  /** Expires watches whose client has not pinged within their timeout; call about once a second. */
  tick(): void {
    const now = this.o.clock();
    for (const w of [...this.watches.values()]) {
      if (now - w.lastPingMs <= w.timeoutMs) continue;
      this.o.log.info({ object: w.objKey, watcher: w.clientId, cookie: w.cookie.toString(), connected: !w.conn.isClosed }, 'watch expired (no ping within its timeout)');
      this.remove(w);
      this.expired.set(w.key, true);
      if (this.expired.size > EXPIRED_WATCHES_MAX) this.expired.delete(this.expired.keys().next().value!);
    }
  }

  /** Drops the watches of PGs this OSD is no longer the acting primary of (call on every new map). */
  onMap(map: OsdMap): void {
    const primary = new Map<string, boolean>();
    for (const w of [...this.watches.values()]) {
      let mine = primary.get(w.pgid);
      if (mine === undefined) {
        mine = map.pools.has(Number(w.pgid.split('.')[0])) && mapPg(map, w.pgid).actingPrimary === this.o.whoami;
        primary.set(w.pgid, mine);
      }
      if (mine) continue;
      this.o.log.info({ object: w.objKey, watcher: w.clientId, cookie: w.cookie.toString(), epoch: map.epoch }, 'watch dropped: no longer the primary');
      this.remove(w);
    }
  }

  /** Fails every notify in progress and drops every watch (shutdown). */
  close(): void {
    for (const w of [...this.watches.values()]) this.remove(w);
    assert(this.notifies.size === 0 && this.byObject.size === 0, 'watch state left after close');
  }

  // --- requests --------------------------------------------------------------------------

  private async mapAtLeast(epoch: number): Promise<OsdMap> {
    const cur = this.o.tracker.current;
    if (cur !== null && cur.epoch >= epoch) return cur;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.o.tracker.waitForEpoch(epoch), new Promise<void>((r) => { timer = setTimeout(r, WATCH_MAP_WAIT_MS); })]);
    clearTimeout(timer);
    const m = this.o.tracker.current;
    if (m === null) throw new AspenError('ESTALE', `osd.${this.o.whoami} has no OSDMap yet`);
    return m;
  }

  /**
   * The checks every request passes: the client id belongs to the session, the pool exists,
   * this OSD is the acting primary at the request's epoch, the names are valid.
   * @returns the PG and the core's object key, or an error code and message.
   */
  private async target(msg: MsgrMessage, r: { epoch: number; pool: number; pgSeed: number; namespace: string; object: string; clientId: string }): Promise<{ map: OsdMap; pgid: string; object: string } | { map: OsdMap | null; code: ErrorCode; message: string }> {
    if (!r.clientId.startsWith(`${msg.session.entity}.`)) return { map: this.o.tracker.current, code: 'EINVAL', message: `client id ${r.clientId} is not of ${msg.session.entity}` };
    const map = await this.mapAtLeast(r.epoch);
    const pool = map.pools.get(r.pool);
    if (pool === undefined) return { map, code: 'ENOENT', message: `pool ${r.pool} does not exist` };
    if (r.pgSeed >= pool.pgNum) return { map, code: 'ESTALE', message: `pool ${r.pool} has no pg seed ${r.pgSeed} at epoch ${map.epoch}` };
    const pgid = `${r.pool}.${r.pgSeed.toString(16)}`;
    if (mapPg(map, pgid).actingPrimary !== this.o.whoami || r.epoch > map.epoch) {
      return { map, code: 'ESTALE', message: `osd.${this.o.whoami} is not the primary of ${pgid} at epoch ${map.epoch}` };
    }
    try {
      normalizeOid({ name: r.object, namespace: r.namespace });
    } catch (e) {
      if (e instanceof AspenError) return { map, code: e.code, message: e.message };
      throw e;
    }
    return { map, pgid, object: r.namespace === '' ? r.object : `${r.namespace}\u0000${r.object}` };
  }

  private watchReply(map: OsdMap | null, r: Omit<WatchReply, 'epoch'>): MsgrReply {
    const enc = encodeWatchReply({ ...r, epoch: this.o.tracker.current?.epoch ?? map?.epoch ?? 0 });
    return { meta: enc.meta };
  }

  private async watchOp(conn: ServerConnection, msg: MsgrMessage): Promise<MsgrReply> {
    const req = decodeWatchRequest(msg.meta, msg.data);
    const t = await this.target(msg, req);
    const fail = (code: ErrorCode, message: string): MsgrReply => this.watchReply(t.map, { code, message, timeoutMs: 0 });
    if ('code' in t) return fail(t.code, t.message);
    if (req.timeoutMs > WATCH_TIMEOUT_MAX_MS) return fail('EINVAL', `watch timeout must be at most ${WATCH_TIMEOUT_MAX_MS} ms`);
    const timeoutMs = req.timeoutMs === 0 ? this.watchTimeoutMs : req.timeoutMs;
    const objKey = `${t.pgid}/${t.object}`;
    const key = `${req.clientId}/${req.cookie.toString(16)}@${objKey}`;
    const ok = (): MsgrReply => this.watchReply(t.map, { code: 0, message: '', timeoutMs });
    const existing = this.watches.get(key);
    switch (req.op) {
      case 'ping':
        if (existing === undefined) return fail('ENOTCONN', `osd.${this.o.whoami} has no watch ${req.cookie} of ${req.clientId} on ${req.object}`);
        existing.lastPingMs = this.o.clock();
        return ok();
      case 'unwatch':
        if (existing !== undefined) this.remove(existing);
        this.expired.delete(key);
        return ok();
      case 'reconnect':
        if (this.expired.has(key)) return fail('ENOTCONN', `watch ${req.cookie} of ${req.clientId} on ${req.object} expired`);
        break;
      case 'watch':
        this.expired.delete(key);
        break;
      default: {
        const never: never = req.op;
        throw new AspenError('EINVAL', `bad watch op ${String(never)}`);
      }
    }
    if (existing !== undefined) {
      existing.timeoutMs = timeoutMs;
      existing.lastPingMs = this.o.clock();
      this.rebind(existing, sessionKeyOf(msg.session), conn);
      return ok();
    }
    const exists = await this.o.objectExists(t.pgid, t.object);
    if (exists !== 0) return fail(exists, exists === 'ENOENT' ? `object ${req.object} does not exist` : `cannot check object ${req.object}: ${exists}`);
    // The map may have moved on while the object was read: register only as the primary.
    const now = this.o.tracker.current;
    if (now !== null && mapPg(now, t.pgid).actingPrimary !== this.o.whoami) return fail('ESTALE', `osd.${this.o.whoami} is no longer the primary of ${t.pgid}`);
    const again = this.watches.get(key);
    if (again !== undefined) {
      again.lastPingMs = this.o.clock();
      this.rebind(again, sessionKeyOf(msg.session), conn);
      return ok();
    }
    if (this.watches.size >= WATCHES_MAX) return fail('EBUSY', `osd.${this.o.whoami} holds ${WATCHES_MAX} watches`);
    const w: Watch = { key, clientId: req.clientId, cookie: req.cookie, pgid: t.pgid, objKey, session: sessionKeyOf(msg.session), conn, timeoutMs, lastPingMs: this.o.clock(), inflight: new Set() };
    this.add(w);
    this.o.log.debug({ object: objKey, watcher: w.clientId, cookie: w.cookie.toString(), op: req.op, timeoutMs }, 'watch registered');
    return ok();
  }

  private async notify(msg: MsgrMessage): Promise<MsgrReply> {
    const req = decodeNotifyRequest(msg.meta, msg.data);
    const t = await this.target(msg, req);
    const fail = (code: ErrorCode, message: string): MsgrReply => this.notifyReply(t.map, { code, message, notifyId: 0n, acks: [], timeouts: [] });
    if ('code' in t) return fail(t.code, t.message);
    if (req.timeoutMs > NOTIFY_TIMEOUT_MAX_MS) return fail('EINVAL', `notify timeout must be at most ${NOTIFY_TIMEOUT_MAX_MS} ms`);
    const exists = await this.o.objectExists(t.pgid, t.object);
    if (exists !== 0) return fail(exists, exists === 'ENOENT' ? `object ${req.object} does not exist` : `cannot check object ${req.object}: ${exists}`);
    if (this.notifies.size >= NOTIFIES_INFLIGHT_MAX) return fail('EBUSY', `osd.${this.o.whoami} has ${NOTIFIES_INFLIGHT_MAX} notifies in progress`);
    const n: Notify = {
      id: ++this.notifySeq, notifierId: req.clientId, payload: req.payload.slice(), epoch: t.map.epoch,
      pending: new Map(), sentOn: new Map(), acks: [], timer: undefined, resolve: undefined,
    };
    for (const w of this.byObject.get(`${t.pgid}/${t.object}`)?.values() ?? []) {
      n.pending.set(w.key, w);
      w.inflight.add(n);
    }
    const timeoutMs = req.timeoutMs === 0 ? this.notifyTimeoutMs : req.timeoutMs;
    this.o.log.debug({ notifyId: n.id.toString(), object: req.object, watchers: n.pending.size, timeoutMs }, 'notify');
    const done = new Promise<MsgrReply>((resolve) => { n.resolve = resolve; });
    this.notifies.set(n.id, n);
    n.timer = setTimeout(() => this.finish(n), timeoutMs);
    for (const w of n.pending.values()) this.sendEvent(w, n);
    if (n.pending.size === 0) this.finish(n);
    return done;
  }

  private ack(msg: MsgrMessage): void {
    const a = decodeNotifyAck(msg.meta, msg.data);
    const n = this.notifies.get(a.notifyId);
    if (n === undefined) return; // late: the notify completed or timed out
    const session = sessionKeyOf(msg.session);
    for (const w of n.pending.values()) {
      if (w.cookie !== a.cookie || w.session !== session) continue;
      n.pending.delete(w.key);
      n.sentOn.delete(w.key);
      w.inflight.delete(n);
      w.lastPingMs = this.o.clock();
      n.acks.push({ watcherId: w.clientId, cookie: w.cookie, reply: a.reply.slice() });
      if (n.pending.size === 0) this.finish(n);
      return;
    }
  }

  private notifyReply(map: OsdMap | null, r: Omit<NotifyReply, 'epoch'>): MsgrReply {
    const enc = encodeNotifyReply({ ...r, epoch: this.o.tracker.current?.epoch ?? map?.epoch ?? 0 });
    return { meta: enc.meta, data: enc.data };
  }

  // --- state -----------------------------------------------------------------------------

  private sendEvent(w: Watch, n: Notify): void {
    assert(n.pending.get(w.key) === w, 'event for a watch the notify does not wait for');
    if (w.conn.isClosed) return; // sent again when the session reconnects (noteConnection)
    const enc = encodeNotifyEvent({ notifyId: n.id, cookie: w.cookie, notifierId: n.notifierId, payload: n.payload });
    w.conn.send(MSG_WATCH_NOTIFY, enc.meta, enc.data);
    n.sentOn.set(w.key, w.conn);
  }

  private finish(n: Notify): void {
    if (this.notifies.get(n.id) !== n) return;
    this.notifies.delete(n.id);
    clearTimeout(n.timer);
    const timeouts = [...n.pending.values()].map((w) => ({ watcherId: w.clientId, cookie: w.cookie }));
    for (const w of n.pending.values()) w.inflight.delete(n);
    n.pending.clear();
    const order = (a: { watcherId: string; cookie: bigint }, b: { watcherId: string; cookie: bigint }): number =>
      a.watcherId < b.watcherId ? -1 : a.watcherId > b.watcherId ? 1 : a.cookie < b.cookie ? -1 : a.cookie > b.cookie ? 1 : 0;
    const reply = this.notifyReply(null, { code: 0, message: '', notifyId: n.id, acks: [...n.acks].sort(order), timeouts: timeouts.sort(order) });
    this.o.log.debug({ notifyId: n.id.toString(), acks: n.acks.length, timeouts: timeouts.length }, 'notify complete');
    n.resolve!(reply);
  }

  private add(w: Watch): void {
    assert(!this.watches.has(w.key), 'watch registered twice');
    this.watches.set(w.key, w);
    const objs = this.byObject.get(w.objKey) ?? new Map<string, Watch>();
    objs.set(w.key, w);
    this.byObject.set(w.objKey, objs);
    const ses = this.bySession.get(w.session) ?? new Set<Watch>();
    ses.add(w);
    this.bySession.set(w.session, ses);
  }

  /** Moves a watch to the session and connection it was re-registered from. */
  private rebind(w: Watch, session: string, conn: ServerConnection): void {
    if (w.session !== session) {
      const old = this.bySession.get(w.session)!;
      old.delete(w);
      if (old.size === 0) this.bySession.delete(w.session);
      w.session = session;
      const ses = this.bySession.get(session) ?? new Set<Watch>();
      ses.add(w);
      this.bySession.set(session, ses);
    }
    if (w.conn === conn) return;
    w.conn = conn;
    for (const n of w.inflight) {
      const was = n.sentOn.get(w.key);
      if (was === undefined || was !== conn) this.sendEvent(w, n);
    }
  }

  private remove(w: Watch): void {
    assert(this.watches.get(w.key) === w, 'removing an unknown watch');
    this.watches.delete(w.key);
    const objs = this.byObject.get(w.objKey)!;
    objs.delete(w.key);
    if (objs.size === 0) this.byObject.delete(w.objKey);
    const ses = this.bySession.get(w.session)!;
    ses.delete(w);
    if (ses.size === 0) this.bySession.delete(w.session);
    for (const n of [...w.inflight]) {
      n.pending.delete(w.key);
      n.sentOn.delete(w.key);
      if (n.pending.size === 0) this.finish(n);
    }
    w.inflight.clear();
  }
}
