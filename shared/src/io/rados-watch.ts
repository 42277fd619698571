/**
 * The client side of watch/notify (librados rados_watch2 / rados_notify2 / rados_notify_ack /
 * rados_unwatch2 over the Objecter's "linger" ops): registers watches at an object's acting
 * primary, keeps them alive, answers the notifications that arrive as one-way
 * MSG_WATCH_NOTIFY messages, and sends notifies.
 *
 * Keeping a watch (Ceph Objecter linger ping / _linger_reconnect):
 * - it is pinged every fifth of its timeout (the OSD expires a watch that is not pinged
 *   within its timeout, Ceph osd_client_watch_timeout);
 * - it is re-established with a `reconnect` op when a new OSDMap gives its PG another acting
 *   primary (or the primary another address), when the primary answers a ping with ESTALE or
 *   ENOTCONN, or when the messenger connection to the primary was re-established;
 * - the watch's `onError` is called (once; the watch is then dead, as librados' error
 *   callback) only when re-establishing fails: ENOTCONN when the primary knows the watch
 *   expired (notifications may have been missed), ENOENT when the object or pool is gone,
 *   ETIMEDOUT when no primary accepted it within the client's op timeout.
 *
 * Notifications of one watch are handed to `onNotify` one at a time, in arrival order; its
 * reply (or an empty reply if it throws or returns more than NOTIFY_PAYLOAD_MAX_BYTES) is
 * sent back as MSG_NOTIFY_ACK on the connection the notification came on. A notification the
 * OSD sends again after a connection reset is acked again with the first reply, without
 * calling `onNotify` twice.
 */
import { AspenError, isErrorCode } from '../errors.ts';
import { formatPgId } from '../ids.ts';
import { MSG_NOTIFY, MSG_NOTIFY_ACK, MSG_WATCH, MSG_WATCH_NOTIFY } from '../client/messages.ts';
import {
  NOTIFY_PAYLOAD_MAX_BYTES, decodeNotifyEvent, decodeNotifyReply, decodeWatchReply, encodeNotifyAck, encodeNotifyRequest, encodeWatchRequest,
  type NotifyAckEntry, type NotifyTimeoutEntry, type WatchOp,
} from '../client/watch-codec.ts';
import { mapPg } from '../osdmap/map-placement.ts';
import { objectToPg } from '../osdmap/placement.ts';
import type { OsdMap, Pool } from '../osdmap/types.ts';
import type { Messenger, MsgrClient, MsgrIncoming } from './msgr-client.ts';

/** Watch timeout asked for by default, ms (Ceph osd_client_watch_timeout). */
export const CLIENT_WATCH_TIMEOUT_MS = 30_000;
/** Notify timeout by default, ms (Ceph osd_default_notify_timeout). */
export const CLIENT_NOTIFY_TIMEOUT_MS = 30_000;
/** Replies remembered per watch to answer a re-sent notification again. */
const REPLIED_PER_WATCH_MAX = 64;
/** Notifications queued per watch before further ones are dropped (their notifier sees a timeout). */
export const NOTIFY_QUEUE_PER_WATCH_MAX = 1024;
/** Error codes after which a watch or notify request is sent again (after a map refresh or a short wait). */
const RESEND_CODES = new Set(['ESTALE', 'ECONNREFUSED', 'ETIMEDOUT', 'E_PG_INCOMPLETE', 'EAGAIN_NO_QUORUM', 'EAGAIN']);

const EMPTY = new Uint8Array(0);

/** A notification as the watcher's callback sees it. */
export interface WatchNotification {
  /** The primary's id of this notification. */
  readonly notifyId: bigint;
  /** The notifier's client id. */
  readonly notifierId: string;
  readonly payload: Uint8Array;
}

/** The watcher's callback: returns the reply bytes sent back in the ack (at most 1 MiB). */
export type NotifyCallback = (n: WatchNotification) => Uint8Array | Promise<Uint8Array>;

/** A registered watch (rados_watch2's handle). */
export interface WatchHandle {
  /** The watch's cookie (unique in this client). */
  readonly cookie: bigint;
  /**
   * Removes the watch at the primary (rados_unwatch2). No callback starts once it is called
   * (one already running finishes; its ack is not sent).
   * @throws AspenError ETIMEDOUT when no primary answered.
   */
  unwatch(): Promise<void>;
}

/** The result of a notify (rados_notify2's reply buffer). */
export interface NotifyResult {
  /** Watchers that acked, with their reply bytes, sorted by (watcherId, cookie). */
  readonly acks: readonly NotifyAckEntry[];
  /** Watchers that did not ack within the timeout. */
  readonly timeouts: readonly NotifyTimeoutEntry[];
}

/** What the watch client needs of the RadosClient. */
export interface WatchHost {
  readonly osdMap: OsdMap;
  readonly tracker: { waitForEpoch(epoch: number): Promise<OsdMap>; onMap(l: (m: OsdMap) => void): () => void };
  readonly msgr: Messenger;
  /** This client instance's name (Ceph entity_name_t), `<entity>.<random>`. */
  readonly clientId: string;
  pool(name: string): Pool;
}

/** Where an object lives. */
interface Target {
  readonly poolName: string;
  readonly namespace: string;
  readonly object: string;
}

interface WatchEntry extends Target {
  readonly cookie: bigint;
  readonly onNotify: NotifyCallback;
  readonly onError: ((err: AspenError) => void) | undefined;
  readonly requestedTimeoutMs: number;
  /** The timeout the primary applies, ms. */
  timeoutMs: number;
  primary: number;
  addr: string;
  /** Messenger connects to `addr` when the watch was last (re)registered. */
  connects: number;
  needReconnect: boolean;
  closed: boolean;
  running: Promise<void> | null;
  timer: NodeJS.Timeout | undefined;
  queue: Promise<void>;
  queued: number;
  /** `addr/notifyId` → the reply sent (or null while the callback runs). */
  readonly replied: Map<string, Uint8Array | null>;
}

/** Watches and notifies of one RadosClient. */
export class RadosWatches {
  private readonly watches = new Map<bigint, WatchEntry>();
  private cookieSeq = 0n;
  private unsubscribe: (() => void) | null = null;
  private closed = false;

  constructor(private readonly host: WatchHost, private readonly opTimeoutMs: number) {}

  /**
   * Registers a watch on `object` (rados_watch2) at its acting primary.
   * @param timeoutMs the watch timeout to ask for, ms (the primary expires the watch when
   *   not pinged for that long; default {@link CLIENT_WATCH_TIMEOUT_MS}).
   * @throws AspenError ENOENT when the object (or pool) does not exist; ETIMEDOUT when no
   *   primary answered within the op timeout; EINVAL for a bad name or timeout.
   */
  async watch(t: Target, onNotify: NotifyCallback, onError?: (err: AspenError) => void, timeoutMs = CLIENT_WATCH_TIMEOUT_MS): Promise<WatchHandle> {
    if (this.closed) throw new AspenError('ECONNREFUSED', 'the client is closed');
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new AspenError('EINVAL', `watch timeout must be a positive integer of ms, got ${timeoutMs}`);
    const w: WatchEntry = {
      ...t, cookie: ++this.cookieSeq, onNotify, onError, requestedTimeoutMs: timeoutMs, timeoutMs, primary: -1, addr: '', connects: 0,
      needReconnect: false, closed: false, running: null, timer: undefined, queue: Promise.resolve(), queued: 0, replied: new Map(),
    };
    // Registered before the op, so a notification racing the reply is not dropped.
    this.watches.set(w.cookie, w);
    try {
      await this.establish(w, 'watch');
    } catch (err) {
      this.watches.delete(w.cookie);
      w.closed = true;
      throw err;
    }
    this.unsubscribe ??= this.host.tracker.onMap((m) => this.onMap(m));
    this.schedulePing(w);
    return { cookie: w.cookie, unwatch: () => this.unwatch(w) };
  }

  /**
   * Notifies every watcher of `object` (rados_notify2) and waits for their acks or the timeout.
   * @throws AspenError ENOENT when the object (or pool) does not exist; ETIMEDOUT when no
   *   primary answered; EINVAL for an oversized payload or a bad timeout.
   */
  async notify(t: Target, payload: Uint8Array, timeoutMs = CLIENT_NOTIFY_TIMEOUT_MS): Promise<NotifyResult> {
    if (payload.length > NOTIFY_PAYLOAD_MAX_BYTES) throw new AspenError('EINVAL', `notify payload exceeds ${NOTIFY_PAYLOAD_MAX_BYTES} bytes`);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new AspenError('EINVAL', `notify timeout must be a positive integer of ms, got ${timeoutMs}`);
    const deadline = Date.now() + this.opTimeoutMs + timeoutMs;
    const reply = await this.send(t, deadline, timeoutMs + 10_000, (map, pool, pgSeed) => ({
      type: MSG_NOTIFY,
      ...encodeNotifyRequest({ epoch: map.epoch, pool: pool.id, pgSeed, namespace: t.namespace, object: t.object, clientId: this.host.clientId, payload, timeoutMs }),
    }), (meta, data) => decodeNotifyReply(meta, data));
    return { acks: reply.reply.acks, timeouts: reply.reply.timeouts };
  }

  /** Handles a one-way message from an OSD (the Messenger's `onMessage`). */
  onMessage(msg: MsgrIncoming, from: MsgrClient): void {
    if (msg.type !== MSG_WATCH_NOTIFY) return;
    let ev;
    try {
      ev = decodeNotifyEvent(msg.meta, msg.data);
    } catch {
      return; // a malformed event: its notifier sees a timeout
    }
    const w = this.watches.get(ev.cookie);
    if (w === undefined || w.closed) return;
    const key = `${from.address}/${ev.notifyId}`;
    const ack = (reply: Uint8Array): void => {
      const enc = encodeNotifyAck({ notifyId: ev.notifyId, cookie: ev.cookie, reply });
      try {
        from.send(MSG_NOTIFY_ACK, enc.meta, enc.data);
      } catch {
        // Connection closed or queue full: the OSD sends the notification again on reconnect.
      }
    };
    if (w.replied.has(key)) {
      const r = w.replied.get(key);
      if (r !== null && r !== undefined) ack(r);
      return;
    }
    if (w.queued >= NOTIFY_QUEUE_PER_WATCH_MAX) return;
    w.replied.set(key, null);
    if (w.replied.size > REPLIED_PER_WATCH_MAX) w.replied.delete(w.replied.keys().next().value!);
    const n: WatchNotification = { notifyId: ev.notifyId, notifierId: ev.notifierId, payload: ev.payload.slice() };
    w.queued++;
    w.queue = w.queue.then(async () => {
      let reply: Uint8Array = EMPTY;
      try {
        if (!w.closed) reply = await w.onNotify(n);
      } catch {
        reply = EMPTY;
      }
      if (!(reply instanceof Uint8Array) || reply.length > NOTIFY_PAYLOAD_MAX_BYTES) reply = EMPTY;
      w.queued--;
      w.replied.set(key, reply);
      if (!w.closed) ack(reply);
    });
  }

  /** Stops pinging; the primaries expire the watches after their timeout. */
  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    for (const w of this.watches.values()) {
      w.closed = true;
      clearTimeout(w.timer);
    }
    this.watches.clear();
  }

  // --- keeping watches ------------------------------------------------------------------

  private async unwatch(w: WatchEntry): Promise<void> {
    if (w.closed) return;
    w.closed = true;
    clearTimeout(w.timer);
    this.watches.delete(w.cookie);
    await w.running;
    try {
      await this.establish(w, 'unwatch');
    } catch (err) {
      // Gone already (object, pool, or the watch expired): nothing left to remove.
      if (!(err instanceof AspenError) || (err.code !== 'ENOENT' && err.code !== 'ENOTCONN')) throw err;
    }
  }

  private onMap(map: OsdMap): void {
    for (const w of this.watches.values()) {
      if (w.closed) continue;
      let primary = -1;
      let addr = '';
      try {
        const pool = this.host.pool(w.poolName);
        primary = mapPg(map, formatPgId(objectToPg(pool, w.object, w.namespace))).actingPrimary;
        addr = primary >= 0 ? map.osds.get(primary)?.addr ?? '' : '';
      } catch {
        // pool gone: the reconnect reports it
      }
      if (primary === w.primary && addr === w.addr) continue;
      w.needReconnect = true;
      this.kick(w);
    }
  }

  private schedulePing(w: WatchEntry): void {
    clearTimeout(w.timer);
    if (w.closed) return;
    const intervalMs = Math.max(50, Math.min(5_000, Math.floor(w.timeoutMs / 5)));
    w.timer = setTimeout(() => this.kick(w), intervalMs);
    w.timer.unref?.();
  }

  /** Runs one round of upkeep (reconnect if needed, else ping) unless one is running. */
  private kick(w: WatchEntry): void {
    if (w.closed || w.running !== null) return;
    w.running = this.upkeep(w).finally(() => {
      w.running = null;
      if (w.closed) return;
      if (w.needReconnect) this.kick(w);
      else this.schedulePing(w);
    });
  }

  private async upkeep(w: WatchEntry): Promise<void> {
    clearTimeout(w.timer);
    try {
      // The messenger had to connect again (the OSD lost our session state, or restarted).
      if (!w.needReconnect && this.host.msgr.connection(w.addr).stats.connects !== w.connects) w.needReconnect = true;
    } catch {
      return; // the messenger is closed: so is the client
    }
    if (!w.needReconnect) {
      const code = await this.ping(w);
      if (code === 0 || w.closed) return;
      w.needReconnect = true;
    }
    w.needReconnect = false;
    try {
      await this.establish(w, 'reconnect');
    } catch (err) {
      if (w.closed) return;
      const e = err instanceof AspenError ? err : new AspenError('EIO', String(err));
      w.closed = true;
      this.watches.delete(w.cookie);
      try {
        w.onError?.(e);
      } catch {
        // the application's callback failing is not ours to handle
      }
    }
  }

  /** One ping to the primary the watch is registered at: 0, or why it must be re-established. */
  private async ping(w: WatchEntry): Promise<0 | string> {
    const map = this.host.osdMap;
    let pool: Pool;
    try {
      pool = this.host.pool(w.poolName);
    } catch (err) {
      return err instanceof AspenError ? err.code : 'EIO';
    }
    const pg = objectToPg(pool, w.object, w.namespace);
    const enc = encodeWatchRequest({ epoch: map.epoch, pool: pool.id, pgSeed: pg.seed, namespace: w.namespace, object: w.object, clientId: this.host.clientId, cookie: w.cookie, op: 'ping', timeoutMs: w.requestedTimeoutMs });
    try {
      const res = await this.host.msgr.request(w.addr, MSG_WATCH, enc.meta, enc.data, { timeoutMs: Math.max(100, Math.floor(w.timeoutMs / 2)) });
      const r = decodeWatchReply(res.meta, res.data);
      if (r.code === 'ESTALE' && r.epoch > map.epoch) await this.waitEpoch(r.epoch, 2_000);
      return r.code;
    } catch (err) {
      return err instanceof AspenError ? err.code : 'EIO';
    }
  }

  /** Sends a watch op to the object's current acting primary until it is answered (or the op timeout). */
  private async establish(w: WatchEntry, op: WatchOp): Promise<void> {
    const deadline = Date.now() + Math.max(this.opTimeoutMs, w.timeoutMs);
    const { reply, primary, addr } = await this.send(w, deadline, 10_000, (map, pool, pgSeed) => ({
      type: MSG_WATCH,
      ...encodeWatchRequest({ epoch: map.epoch, pool: pool.id, pgSeed, namespace: w.namespace, object: w.object, clientId: this.host.clientId, cookie: w.cookie, op, timeoutMs: w.requestedTimeoutMs }),
    }), (meta, data) => decodeWatchReply(meta, data));
    w.primary = primary;
    w.addr = addr;
    w.timeoutMs = reply.timeoutMs > 0 ? reply.timeoutMs : w.requestedTimeoutMs;
    w.connects = this.host.msgr.connection(addr).stats.connects;
  }

  private async waitEpoch(epoch: number, maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.host.tracker.waitForEpoch(epoch), new Promise<void>((r) => { timer = setTimeout(r, Math.max(0, maxWaitMs)); })]);
    clearTimeout(timer);
  }

  /**
   * Sends a request to the acting primary of `t`'s PG and resends it (after a map refresh or
   * a backoff) on ESTALE, a dead connection or an inactive PG, as `RadosClient.operate` does.
   * @throws AspenError with the reply's code when it is not retryable; ETIMEDOUT at `deadline`.
   */
  private async send<R extends { code: 0 | string; message: string; epoch: number }>(
    t: Target, deadline: number, requestTimeoutMs: number,
    build: (map: OsdMap, pool: Pool, pgSeed: number) => { type: number; meta: Uint8Array; data: Uint8Array },
    decode: (meta: Uint8Array, data: Uint8Array) => R,
  ): Promise<{ reply: R; primary: number; addr: string }> {
    let last = '';
    let backoffMs = 20;
    const wait = async (epoch: number): Promise<void> => {
      await this.waitEpoch(epoch, Math.min(backoffMs, deadline - Date.now()));
      backoffMs = Math.min(1_000, backoffMs * 2);
    };
    while (Date.now() < deadline) {
      const map = this.host.osdMap;
      const pool = this.host.pool(t.poolName);
      const pg = objectToPg(pool, t.object, t.namespace);
      const primary = mapPg(map, formatPgId(pg)).actingPrimary;
      const addr = primary >= 0 ? map.osds.get(primary)?.addr : undefined;
      if (addr === undefined || addr === '') {
        last = `pg ${formatPgId(pg)} has no primary at epoch ${map.epoch}`;
        await wait(map.epoch + 1);
        continue;
      }
      const m = build(map, pool, pg.seed);
      try {
        const res = await this.host.msgr.request(addr, m.type, m.meta, m.data, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), requestTimeoutMs)) });
        const reply = decode(res.meta, res.data);
        if (reply.code === 0) return { reply, primary, addr };
        if (!RESEND_CODES.has(reply.code)) throw new AspenError(isErrorCode(reply.code) ? reply.code : 'EIO', reply.message);
        last = `osd.${primary}: ${reply.message}`;
        if (reply.epoch > map.epoch) await this.waitEpoch(reply.epoch, Math.max(0, deadline - Date.now()));
        else await wait(map.epoch + 1);
      } catch (err) {
        if (!(err instanceof AspenError) || !RESEND_CODES.has(err.code)) throw err;
        last = `osd.${primary} at ${addr}: ${err.message}`;
        await wait(map.epoch + 1);
      }
    }
    throw new AspenError('ETIMEDOUT', `${t.poolName}/${t.object}: no primary answered in time (last: ${last || 'none'})`);
  }
}
