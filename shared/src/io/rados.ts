/**
 * The object client (as librados + Objecter): connects to the monitors, keeps the OSDMap
 * current, computes placement (object → PG → acting primary) with the same code as the
 * cluster, sends compound ops to the primary over the messenger, and resends — with the
 * same request id, so the OSD's PG log deduplicates — when the map changes, the primary
 * answers ESTALE, or the connection fails. An op that cannot complete within `opTimeoutMs`
 * fails with ETIMEDOUT (Ceph's rados_osd_op_timeout).
 */
import { randomUUID } from 'node:crypto';
import { AspenError, isErrorCode } from '../errors.ts';
import { Decoder, Encoder } from '../codec.ts';
import { formatPgId } from '../ids.ts';
import { decodeOsdReply, encodeOsdRequest, SNAP_HEAD, type OsdOp, type OsdOpResult, type OsdReply, type SnapContext } from '../client/ops.ts';
import { MSG_OSD_COMMAND, MSG_OSD_OP, MSG_PG_LS } from '../client/messages.ts';
import { mapPg } from '../osdmap/map-placement.ts';
import { objectToPg } from '../osdmap/placement.ts';
import type { OsdMap, Pool } from '../osdmap/types.ts';
import { MonClient } from './monclient.ts';
import { Messenger } from './msgr-client.ts';
import { OsdMapTracker } from './osdmap-tracker.ts';
import { RadosWatches, type NotifyCallback, type NotifyResult, type WatchHandle } from './rados-watch.ts';

/** Options of {@link RadosClient.connect}. */
export interface RadosClientOptions {
  monAddrs: string[];
  /** Entity name, e.g. `client.admin`. */
  entity?: string;
  /** Expected fsid; read from the monitors when omitted. */
  fsid?: string;
  /** Whole-op deadline including resends, ms (default 30 s). */
  opTimeoutMs?: number;
}

/** Options of one op. */
export interface OperateOptions {
  namespace?: string;
  snapc?: SnapContext;
  /** Read at this snap id (default the head). */
  snapId?: bigint;
  timeoutMs?: number;
}

/** `p`'s value, or undefined after `ms`; the timer is cleared either way (it never keeps a CLI alive). */
async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Error codes after which the op is resent (after a map refresh or a short wait). */
const RESEND_CODES = new Set(['ESTALE', 'ECONNREFUSED', 'ETIMEDOUT', 'E_PG_INCOMPLETE', 'EAGAIN_NO_QUORUM']);

/** A connected client. `close()` when done. */
export class RadosClient {
  private tid = 0n;
  /** This client instance's name (Ceph entity_name_t), `<entity>.<8 hex>`: reqids, watchers and notifiers are known by it. */
  readonly clientId: string;
  /** Watch/notify of this client (./rados-watch.ts); IoCtx.watch / IoCtx.notify use it. */
  readonly watches: RadosWatches;

  private constructor(
    readonly mon: MonClient,
    readonly tracker: OsdMapTracker,
    readonly msgr: Messenger,
    readonly fsid: string,
    private readonly opTimeoutMs: number,
    entity: string,
  ) {
    this.clientId = `${entity}.${randomUUID().slice(0, 8)}`;
    this.watches = new RadosWatches(this, opTimeoutMs);
  }

  /**
   * Connects: reads the fsid (unless given), subscribes to the OSDMap and waits for it.
   * @throws AspenError EAGAIN_NO_QUORUM when no monitor answers.
   */
  static async connect(o: RadosClientOptions): Promise<RadosClient> {
    const timeoutMs = o.opTimeoutMs ?? 30_000;
    const mon = new MonClient({ monAddrs: o.monAddrs, fsid: o.fsid ?? '', timeoutMs: Math.min(timeoutMs, 15_000) });
    try {
      const fsid = o.fsid ?? String(((await mon.command({ prefix: 'mon dump' })).data as { fsid: string }).fsid);
      const tracker = new OsdMapTracker(mon);
      tracker.start();
      if ((await withTimeout(tracker.waitForEpoch(1), timeoutMs)) === undefined) {
        tracker.close();
        throw new AspenError('EAGAIN_NO_QUORUM', 'no OSDMap received from the monitors');
      }
      const entity = o.entity ?? 'client.admin';
      // One-way messages from OSDs are watch notifications (MSG_WATCH_NOTIFY).
      const client: RadosClient = new RadosClient(mon, tracker, new Messenger({ fsid, entity, requestTimeoutMs: timeoutMs, onMessage: (m, from) => client.watches.onMessage(m, from) }), fsid, timeoutMs, entity);
      return client;
    } catch (err) {
      mon.close();
      throw err;
    }
  }

  /** The current OSDMap. */
  get osdMap(): OsdMap {
    return this.tracker.current!;
  }

  /** The pool named `name`. @throws AspenError ENOENT */
  pool(name: string): Pool {
    for (const p of this.osdMap.pools.values()) if (p.name === name) return p;
    throw new AspenError('ENOENT', `pool '${name}' does not exist`);
  }

  /** An I/O context on pool `name`. @throws AspenError ENOENT */
  ioctx(name: string, namespace = ''): IoCtx {
    this.pool(name);
    return new IoCtx(this, name, namespace);
  }

  /** Waits for a map newer than `epoch`, or `maxWaitMs`. */
  private async newerMap(epoch: number, maxWaitMs: number): Promise<void> {
    await withTimeout(this.tracker.waitForEpoch(epoch + 1), Math.max(0, maxWaitMs));
  }

  /**
   * Executes `ops` on `object` of pool `poolName` atomically at the PG's primary.
   * @returns the reply; a failed op is a reply with a non-zero code (use `check()`).
   * @throws AspenError ETIMEDOUT when no primary completed it in time; ENOENT for an unknown pool.
   */
  async operate(poolName: string, object: string, ops: OsdOp[], o: OperateOptions = {}): Promise<OsdReply> {
    const deadline = Date.now() + (o.timeoutMs ?? this.opTimeoutMs);
    const reqid = { client: this.clientId, tid: ++this.tid };
    let last = '';
    let backoffMs = 20;
    while (Date.now() < deadline) {
      const map = this.osdMap;
      const pool = this.pool(poolName);
      const pg = objectToPg(pool, object, o.namespace ?? '');
      const m = mapPg(map, formatPgId(pg));
      const primary = m.actingPrimary;
      const addr = primary >= 0 ? map.osds.get(primary)?.addr : undefined;
      if (addr === undefined || addr === '') {
        last = `pg ${formatPgId(pg)} has no primary at epoch ${map.epoch}`;
        await this.newerMap(map.epoch, Math.min(1000, deadline - Date.now()));
        continue;
      }
      const msg = encodeOsdRequest({
        reqid, epoch: map.epoch, pool: pool.id, pgSeed: pg.seed, object, namespace: o.namespace ?? '',
        snapId: o.snapId ?? SNAP_HEAD, snapc: o.snapc ?? { seq: 0n, snaps: [] }, ops,
      });
      try {
        const res = await this.msgr.request(addr, MSG_OSD_OP, msg.meta, msg.data, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), 10_000)) });
        const reply = decodeOsdReply(res.meta, res.data);
        if (reply.code !== 0 && RESEND_CODES.has(reply.code)) {
          last = `osd.${primary}: ${reply.message}`;
          if (reply.epoch > map.epoch) await this.tracker.waitForEpoch(reply.epoch);
          else await this.newerMap(map.epoch, Math.min(backoffMs, deadline - Date.now()));
          backoffMs = Math.min(1000, backoffMs * 2);
          continue;
        }
        return reply;
      } catch (err) {
        if (!(err instanceof AspenError) || !RESEND_CODES.has(err.code)) throw err;
        last = `osd.${primary} at ${addr}: ${err.message}`;
        await this.newerMap(map.epoch, Math.min(backoffMs, deadline - Date.now()));
        backoffMs = Math.min(1000, backoffMs * 2);
      }
    }
    throw new AspenError('ETIMEDOUT', `op on ${poolName}/${object} did not complete within ${o.timeoutMs ?? this.opTimeoutMs} ms (last: ${last || 'none'})`);
  }

  /**
   * Lists the objects of one PG from its primary, a page at a time (Ceph PGLS).
   * @throws AspenError ETIMEDOUT
   */
  async listPg(poolName: string, seed: number, cursor: string, max: number): Promise<{ objects: string[]; next: string | null }> {
    const deadline = Date.now() + this.opTimeoutMs;
    while (Date.now() < deadline) {
      const map = this.osdMap;
      const pool = this.pool(poolName);
      const m = mapPg(map, `${pool.id}.${seed.toString(16)}`);
      const addr = m.actingPrimary >= 0 ? map.osds.get(m.actingPrimary)?.addr : undefined;
      if (!addr) {
        await this.newerMap(map.epoch, 500);
        continue;
      }
      const meta = new Encoder(64).struct(1, 1, (e) => e.u32(map.epoch).u32(pool.id).u32(seed).string(cursor).u32(max)).finish();
      try {
        const res = await this.msgr.request(addr, MSG_PG_LS, meta, undefined, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), 10_000)) });
        const d = new Decoder(res.meta);
        return d.struct(1, 'pgls reply', () => {
          const objects = d.array((dd) => dd.string());
          const next = d.optional((dd) => dd.string()) ?? null;
          return { objects, next };
        });
      } catch (err) {
        if (!(err instanceof AspenError) || !RESEND_CODES.has(err.code)) throw err;
        await this.newerMap(map.epoch, 200);
      }
    }
    throw new AspenError('ETIMEDOUT', `listing pg ${poolName}.${seed.toString(16)} did not complete`);
  }

  /**
   * Sends an operator command (`pg scrub`, `pg deep-scrub`, `pg repair`) to PG `pgid`'s acting
   * primary, as `ceph pg scrub` does; retries on ESTALE after a map refresh.
   * @returns the OSD's reply `{message, state}`.
   * @throws AspenError ENOENT for an unknown PG, EINVAL, ETIMEDOUT.
   */
  async pgCommand(prefix: 'pg scrub' | 'pg deep-scrub' | 'pg repair', pgid: string): Promise<{ message: string; state: string }> {
    const deadline = Date.now() + this.opTimeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const map = this.osdMap;
      const m = mapPg(map, pgid);
      const addr = m.actingPrimary >= 0 ? map.osds.get(m.actingPrimary)?.addr : undefined;
      if (!addr) {
        last = `pg ${pgid} has no primary at epoch ${map.epoch}`;
        await this.newerMap(map.epoch, 500);
        continue;
      }
      try {
        const res = await this.msgr.request(addr, MSG_OSD_COMMAND, new TextEncoder().encode(JSON.stringify({ prefix, pgid })), undefined, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), 10_000)) });
        return JSON.parse(new TextDecoder().decode(res.meta)) as { message: string; state: string };
      } catch (err) {
        if (!(err instanceof AspenError) || !RESEND_CODES.has(err.code)) throw err;
        last = err.message;
        await this.newerMap(map.epoch, 300);
      }
    }
    throw new AspenError('ETIMEDOUT', `${prefix} ${pgid}: no primary answered (last: ${last || 'none'})`);
  }

  /**
   * Allocates a self-managed snap id in pool `poolName` (librados
   * `selfmanaged_snap_create`; Ceph POOL_OP_CREATE_UNMANAGED_SNAP): the monitors bump the
   * pool's `snap_seq` and return it. Resolves once this client's OSDMap has the epoch that
   * carries it, so a SnapContext built from it is valid at every OSD that has that map.
   * Exactly-once under retries (the mon session dedups the request).
   * @returns the new snap id (u64 on the wire).
   * @throws AspenError ENOENT for an unknown pool, EAGAIN_NO_QUORUM, ETIMEDOUT.
   */
  async selfmanagedSnapCreate(poolName: string): Promise<bigint> {
    const r = await this.mon.command({ prefix: 'osd pool selfmanaged-snap create', pool: poolName }, { timeoutMs: this.opTimeoutMs });
    const { snapid, epoch } = r.data as { snapid: number; epoch: number };
    await this.waitForMonEpoch(epoch, 'selfmanaged-snap create');
    return BigInt(snapid);
  }

  /**
   * Removes self-managed snap `snapId` of pool `poolName` (librados `selfmanaged_snap_remove`;
   * Ceph POOL_OP_DELETE_UNMANAGED_SNAP): the monitors add it to the pool's `removed_snaps`,
   * after which OSDs may trim its clones. Removing a removed snap succeeds. Resolves once this
   * client's OSDMap shows the removal.
   * @throws AspenError EINVAL for snap 0 or an id never allocated, ENOENT for an unknown pool,
   *   EAGAIN_NO_QUORUM, ETIMEDOUT.
   */
  async selfmanagedSnapRemove(poolName: string, snapId: bigint): Promise<void> {
    if (snapId < 0n || snapId > BigInt(Number.MAX_SAFE_INTEGER)) throw new AspenError('EINVAL', `snap id ${snapId} out of range`);
    const r = await this.mon.command({ prefix: 'osd pool selfmanaged-snap rm', pool: poolName, snapid: Number(snapId) }, { timeoutMs: this.opTimeoutMs });
    await this.waitForMonEpoch((r.data as { epoch: number }).epoch, 'selfmanaged-snap rm');
  }

  /** Waits until the tracked OSDMap reaches `epoch`. @throws AspenError ETIMEDOUT after opTimeoutMs. */
  private async waitForMonEpoch(epoch: number, what: string): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.tracker.waitForEpoch(epoch),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new AspenError('ETIMEDOUT', `${what}: OSDMap epoch ${epoch} not received within ${this.opTimeoutMs} ms`)), this.opTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.watches.close();
    this.tracker.close();
    this.mon.close();
    await this.msgr.close();
  }
}

/** Throws the reply's error as an AspenError. */
export function check(reply: OsdReply): OsdReply {
  if (reply.code === 0) return reply;
  throw new AspenError(isErrorCode(reply.code) ? reply.code : 'EIO', reply.message);
}

function dataOf(r: OsdOpResult | undefined): Uint8Array {
  if (r?.kind === 'data') return r.data;
  throw new AspenError('EIO', 'reply lacks read data');
}

/** Object operations on one pool (librados IoCtx). */
export class IoCtx {
  /** The snap context of this IoCtx's writes (librados selfmanaged_snap_set_write_ctx); none by default. */
  private writeSnapc: SnapContext = { seq: 0n, snaps: [] };

  constructor(readonly client: RadosClient, readonly poolName: string, readonly namespace: string) {}

  /**
   * Runs a compound op on `object` with this IoCtx's namespace and write snap context (an
   * explicit `o.snapc` wins).
   */
  operate(object: string, ops: OsdOp[], o: OperateOptions = {}): Promise<OsdReply> {
    return this.client.operate(this.poolName, object, ops, { namespace: this.namespace, snapc: this.writeSnapc, ...o });
  }

  /**
   * Sets the snap context of this IoCtx's later writes (librados
   * `selfmanaged_snap_set_write_ctx`): `seq` is the newest snap id (from
   * RadosClient.selfmanagedSnapCreate), `snaps` the existing snap ids, newest first. The first
   * write to an object after a new snap makes the OSD keep a clone serving those snaps (Ceph
   * make_writeable). The OSD answers EINVAL for writes under a malformed context.
   * @throws AspenError EINVAL unless `snaps` is strictly descending with every id in [1, seq].
   */
  setSelfmanagedSnapWrite(seq: bigint, snaps: bigint[]): void {
    let prev: bigint | null = null;
    for (const s of snaps) {
      if (s < 1n || s > seq || (prev !== null && s >= prev)) throw new AspenError('EINVAL', 'snap context: snaps must be strictly descending ids in [1, seq]');
      prev = s;
    }
    this.writeSnapc = { seq, snaps: [...snaps] };
  }

  /**
   * Reads `length` bytes at `offset` (length 0: to the end) of `object` as it was at
   * self-managed snap `snapId` (librados `snap_set_read` + read; Ceph find_object_context).
   * @throws AspenError ENOENT when the object did not exist at that snap or the snap was removed and trimmed.
   */
  async readAt(object: string, snapId: bigint, offset = 0, length = 0): Promise<Uint8Array> {
    return dataOf(check(await this.operate(object, [{ op: 'read', offset, length }], { snapId })).results[0]);
  }

  async writeFull(object: string, data: Uint8Array): Promise<void> {
    check(await this.operate(object, [{ op: 'writefull', data }]));
  }
  async write(object: string, data: Uint8Array, offset: number): Promise<void> {
    check(await this.operate(object, [{ op: 'write', offset, data }]));
  }
  async append(object: string, data: Uint8Array): Promise<void> {
    check(await this.operate(object, [{ op: 'append', data }]));
  }
  /** Reads `length` bytes at `offset` (length 0: to the end). @throws AspenError ENOENT */
  async read(object: string, offset = 0, length = 0): Promise<Uint8Array> {
    return dataOf(check(await this.operate(object, [{ op: 'read', offset, length }])).results[0]);
  }
  async stat(object: string): Promise<{ sizeBytes: number; mtimeMs: number }> {
    const r = check(await this.operate(object, [{ op: 'stat' }])).results[0];
    if (r?.kind !== 'stat') throw new AspenError('EIO', 'reply lacks stat');
    return { sizeBytes: r.sizeBytes, mtimeMs: r.mtimeMs };
  }
  async remove(object: string): Promise<void> {
    check(await this.operate(object, [{ op: 'remove' }]));
  }
  async setxattr(object: string, name: string, value: Uint8Array): Promise<void> {
    check(await this.operate(object, [{ op: 'setxattr', name, value }]));
  }
  async getxattr(object: string, name: string): Promise<Uint8Array> {
    return dataOf(check(await this.operate(object, [{ op: 'getxattr', name }])).results[0]);
  }
  async getxattrs(object: string): Promise<Map<string, Uint8Array>> {
    const r = check(await this.operate(object, [{ op: 'getxattrs' }])).results[0];
    return new Map(r?.kind === 'xattrs' ? r.entries : []);
  }
  async omapSet(object: string, entries: Map<string, Uint8Array>): Promise<void> {
    check(await this.operate(object, [{ op: 'omap_set', entries: [...entries] }]));
  }
  async omapRm(object: string, keys: string[]): Promise<void> {
    check(await this.operate(object, [{ op: 'omap_rm', keys }]));
  }
  /** One page of omap values after `startAfter`. */
  async omapGetVals(object: string, startAfter = '', max = 1000, prefix = ''): Promise<{ entries: [string, Uint8Array][]; more: boolean }> {
    const r = check(await this.operate(object, [{ op: 'omap_get_vals', startAfter, prefix, max }])).results[0];
    if (r?.kind !== 'omap') throw new AspenError('EIO', 'reply lacks omap values');
    return { entries: r.entries, more: r.more };
  }
  /** Every object name in the pool (PG by PG). */
  async listObjects(): Promise<string[]> {
    const pool = this.client.pool(this.poolName);
    const out: string[] = [];
    for (let seed = 0; seed < pool.pgNum; seed++) {
      let cursor = '';
      for (;;) {
        const page = await this.client.listPg(this.poolName, seed, cursor, 1000);
        out.push(...page.objects);
        if (page.next === null) break;
        cursor = page.next;
      }
    }
    return out;
  }
  /**
   * Watches `object` (librados rados_watch2): `onNotify` is called for every notification
   * sent to the object, one at a time, and its result is the reply bytes (≤ 1 MiB) acked to the
   * notifier. The client pings the watch and re-establishes it on a new primary by itself;
   * `onError` is called once if the watch is lost for good (ENOTCONN: it expired at the primary
   * and notifications may have been missed; ENOENT: the object is gone; ETIMEDOUT: no primary
   * accepted it) — watch again then, as librbd does.
   * @param timeoutMs the watch timeout, ms (default 30 s, Ceph osd_client_watch_timeout).
   * @throws AspenError ENOENT when the object does not exist; ETIMEDOUT; EINVAL.
   */
  watch(object: string, onNotify: NotifyCallback, onError?: (err: AspenError) => void, timeoutMs?: number): Promise<WatchHandle> {
    return this.client.watches.watch({ poolName: this.poolName, namespace: this.namespace, object }, onNotify, onError, timeoutMs);
  }
  /**
   * Notifies the watchers of `object` (librados rados_notify2) and waits up to `timeoutMs`
   * (default 30 s) for their acks.
   * @returns the acks (watcher id, cookie, reply bytes) and the watchers that timed out.
   * @throws AspenError ENOENT when the object does not exist; ETIMEDOUT; EINVAL for a payload over 1 MiB.
   */
  notify(object: string, payload: Uint8Array, timeoutMs?: number): Promise<NotifyResult> {
    return this.client.watches.notify({ poolName: this.poolName, namespace: this.namespace, object }, payload, timeoutMs);
  }
}
