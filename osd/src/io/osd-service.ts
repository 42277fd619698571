/**
 * The messenger handler of `aspen-osd`: client ops (MSG_OSD_OP), PG listing (MSG_PG_LS), PG
 * messages from peers (MSG_PG) and heartbeat pings (MSG_OSD_PING).
 *
 * Client ops (Ceph PrimaryLogPG::do_op, simplified): a request for an epoch newer than ours
 * waits for that map (up to {@link CLIENT_MAP_WAIT_MS}); a request for a PG whose acting
 * primary is not this OSD gets ESTALE with our epoch (the client refreshes and resends).
 * The op list (Ceph PrimaryLogPG::do_osd_ops): a `probe` through the core waits until the
 * object is readable here (not missing, recovering, scrubbed or written) and gives its log
 * version; the ops then run against the local store (../core/op-exec.ts: guards first,
 * reads answered from the store, mutations planned into ONE store transaction). A mutation
 * is handed to the core as that transaction (`txn`, or a `delete`) under the client's
 * request id, stamped with the log version it was planned against: the core logs it,
 * replicates it to every acting member and answers once all have it durable, or answers
 * EAGAIN if the object changed meanwhile (re-planned here). Requests on one object are
 * serialized here. A read that hits a block failing its checksum (EIO) reports the object
 * to the core, which pulls a good copy from a replica (Ceph rep_repair_primary_object);
 * the request then runs again.
 *
 * Self-managed snapshots (Ceph PrimaryLogPG): a request's snap context, less the snaps the
 * pool has removed (Ceph filter_snapc), drives cloning in op-exec.ts; a read at a snap id
 * runs against the clone that serves it. The snap trimmer ({@link OsdService.onMap}): when a
 * pool's removed snaps change, the primary of each of its PGs runs an internal trim mutation
 * (reqid client `osd.N.trim`) through the same path on every object that has clones,
 * {@link TRIM_OBJECTS_INFLIGHT_MAX} at a time, retrying a PG after {@link TRIM_RETRY_MS}
 * when one fails (peering, not primary any more).
 */
import { AspenError, Decoder, Encoder, isErrorCode } from '@aspen/shared';
import { MSG_OSD_COMMAND, MSG_OSD_OP, MSG_PG_LS } from '@aspen/shared/client/messages.ts';
import { decodeOsdRequest, encodeOsdReply, isMutation, type OsdReply } from '@aspen/shared/client/ops.ts';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { isSnapRemoved } from '@aspen/shared/osdmap/snaps.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { MsgrMessage, MsgrReply } from '@aspen/shared/io/msgr-server.ts';
import type { OsdMapTracker } from '@aspen/shared/io/osdmap-tracker.ts';
import type { Logger } from 'pino';
import { decodePgMessage } from '../pg/msg-codec.ts';
import { normalizeOid } from '../store/oid.ts';
import { executeOps, trimObject, type ExecOutcome, type ObjectReader } from '../core/op-exec.ts';
import { EcObjectView, RS_CODEC, translateEcTransaction, type EcLayout, type ShardReader } from '../core/ec-exec.ts';
import { collectionName } from '../store/oid.ts';
import type { Transaction } from '../store/transaction.ts';
import { encodeTransaction } from '../store/txn-codec.ts';
import { osdOfMember, type ClientOpBody, type ClientReply, type Eversion } from '../pg/types.ts';
import { oidOf } from './osd-store.ts';
import { MSG_OSD_PING, MSG_PG, MSG_PG_EC, decodeEcEnvelope, type OsdPgs } from './osd-pgs.ts';
import { MSG_EC_READ, ecLayoutOf, type OsdEc } from './osd-ec.ts';

/** How long a client op for a newer epoch waits for that map, ms. */
export const CLIENT_MAP_WAIT_MS = 2_000;
/** Largest PGLS page, objects. */
export const PGLS_PAGE_MAX = 10_000;
/**
 * Successful mutation replies remembered per OSD for resends (the reply Ceph rebuilds from
 * the PG log's user_version): a resend is answered with the first answer instead of being
 * re-executed against the newer state (its guards could fail, its version would differ).
 */
export const COMPLETED_REPLIES_MAX = 8192;
/** Re-plans of one request after EAGAIN (object changed) or EIO (primary copy repaired) before giving up. */
export const EXEC_ATTEMPTS_MAX = 5;
/** Snap-trim mutations in flight per OSD (Ceph osd_pg_max_concurrent_snap_trims). */
export const TRIM_OBJECTS_INFLIGHT_MAX = 2;
/** Delay before a PG whose trim failed (peering, map change) is tried again, ms. */
export const TRIM_RETRY_MS = 2_000;

/**
 * Plans one mutation or read against the primary's store (a client op list, or a snap trim):
 * the local store, or for an EC pool the object's logical view (../core/ec-exec.ts).
 */
type Planner = (store: ObjectReader, coll: string, oid: ReturnType<typeof oidOf>) => Promise<ExecOutcome>;

/** Serves one OSD's messenger traffic. */
export class OsdService {
  private readonly locks = new Map<string, Promise<void>>();
  /** `client/tid` → the successful reply of a mutation, oldest first, at most {@link COMPLETED_REPLIES_MAX}. */
  private readonly completed = new Map<string, Omit<OsdReply, 'epoch'>>();
  private execTid = 0;
  /** Snap trimmer: pgid → the pool's removed snaps (formatted) this PG was fully trimmed against, while we are its primary. */
  private readonly trimmedAgainst = new Map<string, string>();
  /** PGs waiting to be trimmed (FIFO) and the one being trimmed. */
  private readonly trimQueue = new Set<string>();
  private trimming = false;
  private trimRetry: NodeJS.Timeout | null = null;
  private closed = false;
  /** Tids of trim mutations: seeded from the clock so reqids stay unique across restarts (the PG log detects duplicates). */
  private trimTid: number;

  constructor(
    private readonly whoami: number,
    private readonly pgs: OsdPgs,
    private readonly tracker: OsdMapTracker,
    private readonly log: Logger,
    private readonly wallClock: () => number,
    /** Called once per answered client op (metrics). */
    private readonly onOp: (kind: 'read' | 'write', code: 0 | string, latencyMs: number) => void = () => undefined,
    /** Whether the local store is full: writes that add data are refused with ENOSPC (deletes still run). */
    private readonly isFull: () => boolean = () => false,
    /** EC sub-reads and rebuilds (required for erasure-coded pools). */
    private readonly ec: OsdEc | null = null,
  ) {
    this.trimTid = Math.max(0, Math.floor(wallClock())) * 1000;
  }

  /**
   * Feeds the snap trimmer a new OSDMap (call on every epoch, after the PG host has it).
   * Queues each PG this OSD is the acting primary of whose pool's removed snaps changed since
   * it was last trimmed here (all such PGs after a restart or on becoming primary).
   */
  onMap(map: OsdMap): void {
    const primaryOf = new Set<string>();
    for (const pool of map.pools.values()) {
      if (pool.removedSnaps.length === 0) continue;
      const key = JSON.stringify(pool.removedSnaps);
      for (let seed = 0; seed < pool.pgNum; seed++) {
        const pgid = `${pool.id}.${seed.toString(16)}`;
        if (mapPg(map, pgid).actingPrimary !== this.whoami) continue;
        primaryOf.add(pgid);
        if (this.trimmedAgainst.get(pgid) !== key) this.trimQueue.add(pgid);
      }
    }
    for (const pgid of [...this.trimmedAgainst.keys()]) if (!primaryOf.has(pgid)) this.trimmedAgainst.delete(pgid);
    for (const pgid of [...this.trimQueue]) if (!primaryOf.has(pgid)) this.trimQueue.delete(pgid);
    this.kickTrimmer();
  }

  /** Stops the snap trimmer (a running trim finishes its current objects). */
  close(): void {
    this.closed = true;
    if (this.trimRetry !== null) clearTimeout(this.trimRetry);
    this.trimRetry = null;
    this.trimQueue.clear();
  }

  private kickTrimmer(): void {
    if (this.trimming || this.closed || this.trimQueue.size === 0) return;
    const pgid = this.trimQueue.values().next().value!;
    this.trimQueue.delete(pgid);
    this.trimming = true;
    void this.trimPg(pgid).then((ok) => {
      this.trimming = false;
      if (!ok && !this.closed) {
        // Try again later unless a newer map re-queued or dropped it meanwhile.
        this.trimRetry ??= setTimeout(() => {
          this.trimRetry = null;
          const m = this.tracker.current;
          if (m !== null) this.onMap(m);
        }, TRIM_RETRY_MS);
        this.trimRetry.unref();
      }
      this.kickTrimmer();
    });
  }

  /** Trims every cloned object of one PG against its pool's current removed snaps. @returns whether all succeeded. */
  private async trimPg(pgid: string): Promise<boolean> {
    const map = this.tracker.current;
    const pool = map?.pools.get(Number(pgid.split('.')[0]));
    const store = this.pgs.pgStore(pgid);
    if (map === null || pool === undefined || store === undefined || mapPg(map, pgid).actingPrimary !== this.whoami) return false;
    const key = JSON.stringify(pool.removedSnaps);
    const objects = store.clonedObjects();
    let ok = true;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < objects.length && !this.closed) {
        const object = objects[next++]!;
        const isRemoved = (snap: bigint): boolean => isSnapRemoved(pool, snap);
        try {
          const r = await this.locked(`${pgid}/${object}`, () => this.execute(pgid, object, { client: `osd.${this.whoami}.trim`, tid: ++this.trimTid },
            (st, coll, oid) => trimObject({ store: st, coll, oid, nowMs: this.wallClock() }, isRemoved)));
          if (r.code !== 0) {
            ok = false;
            this.log.info({ pgid, object, code: r.code, err: r.message }, 'snap trim of an object failed; will retry');
          }
        } catch (err) {
          ok = false;
          this.log.warn({ pgid, object, err: err instanceof Error ? err.message : String(err) }, 'snap trim of an object failed; will retry');
        }
      }
    };
    await Promise.all(Array.from({ length: TRIM_OBJECTS_INFLIGHT_MAX }, worker));
    if (ok && !this.closed) {
      this.trimmedAgainst.set(pgid, key);
      this.log.debug({ pgid, objects: objects.length, removedSnaps: key }, 'snap trim done');
    }
    return ok;
  }

  /** The MsgrServer handler. */
  handle = async (msg: MsgrMessage): Promise<MsgrReply | void> => {
    switch (msg.type) {
      case MSG_PG: {
        const { from, msg: m } = decodePgMessage(msg.meta, msg.data);
        // The sender's id must be the authenticated peer's (a message claims no one else's PG role).
        if (msg.session.entity !== `osd.${from}`) throw new AspenError('EINVAL', `pg message from ${msg.session.entity} claims to be osd.${from}`);
        this.pgs.onMessage(from, m);
        return;
      }
      case MSG_PG_EC: {
        const { toMember, innerMeta } = decodeEcEnvelope(msg.meta);
        const { from, msg: m } = decodePgMessage(innerMeta, msg.data);
        if (msg.session.entity !== `osd.${osdOfMember(from)}`) throw new AspenError('EINVAL', `pg message from ${msg.session.entity} claims to be osd.${osdOfMember(from)}`);
        this.pgs.onMessage(from, m, toMember);
        return;
      }
      case MSG_EC_READ:
        if (this.ec === null) throw new AspenError('E_UNSUPPORTED', 'this OSD serves no EC reads');
        return this.ec.handle(msg);
      case MSG_OSD_PING:
        return { meta: msg.meta.slice() };
      case MSG_OSD_OP:
        return this.osdOp(msg);
      case MSG_PG_LS:
        return this.pgls(msg);
      case MSG_OSD_COMMAND:
        return this.command(msg);
      default:
        throw new AspenError('EINVAL', `unknown message type ${msg.type}`);
    }
  };

  private async mapAtLeast(epoch: number): Promise<OsdMap> {
    const cur = this.tracker.current;
    if (cur !== null && cur.epoch >= epoch && this.pgs.currentEpoch >= epoch) return cur;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.tracker.waitForEpoch(epoch),
      new Promise<void>((r) => { timer = setTimeout(r, CLIENT_MAP_WAIT_MS); }),
    ]);
    clearTimeout(timer);
    const m = this.tracker.current;
    if (m === null) throw new AspenError('ESTALE', `osd.${this.whoami} has no OSDMap yet`);
    return m;
  }

  private async osdOp(msg: MsgrMessage): Promise<MsgrReply> {
    const req = decodeOsdRequest(msg.meta, msg.data);
    const map = await this.mapAtLeast(req.epoch);
    const reply = (r: Omit<OsdReply, 'epoch'>): MsgrReply => {
      const enc = encodeOsdReply({ ...r, epoch: map.epoch });
      return { meta: enc.meta, data: enc.data };
    };
    const err = (code: string, message: string): MsgrReply => reply({ code, message, version: 0n, results: [] });
    const pool = map.pools.get(req.pool);
    if (pool === undefined) return err('ENOENT', `pool ${req.pool} does not exist`);
    const layout = ecLayoutOf(map, req.pool);
    if (pool.type !== 'replicated' && (layout === undefined || this.ec === null)) return err('E_UNSUPPORTED', `pool ${pool.name} has no usable erasure-code profile`);
    const pgid = `${req.pool}.${req.pgSeed.toString(16)}`;
    const m = mapPg(map, pgid);
    if (m.actingPrimary !== this.whoami || req.epoch > map.epoch) {
      return err('ESTALE', `osd.${this.whoami} is not the primary of ${pgid} at epoch ${map.epoch}`);
    }
    // Untrusted names: the store's rules (non-empty, no NUL, bounded) before the core sees them.
    if (req.reqid.client === '' || req.reqid.client.startsWith('osd.')) return err('EINVAL', 'a request needs a client name (not osd.*)');
    try {
      normalizeOid({ name: req.object, namespace: req.namespace });
    } catch (e) {
      if (e instanceof AspenError) return err(e.code, e.message);
      throw e;
    }
    const object = req.namespace === '' ? req.object : `${req.namespace}\u0000${req.object}`;
    const key = `${req.reqid.client}/${req.reqid.tid}`;
    const mutating = req.ops.some(isMutation);
    const startMs = this.wallClock();
    return this.locked(`${pgid}/${object}`, async () => {
      const done = this.completed.get(key);
      if (done !== undefined) return reply(done);
      // Ceph filter_snapc: snaps the pool has removed (at our current map) get no clones.
      const cur = this.tracker.current?.pools.get(req.pool) ?? pool;
      const snapc = { seq: req.snapc.seq, snaps: req.snapc.snaps.filter((s) => !isSnapRemoved(cur, s)) };
      if (req.reqid.tid > BigInt(Number.MAX_SAFE_INTEGER)) throw new AspenError('EINVAL', 'request tid out of range');
      const r = await this.execute(pgid, object, { client: req.reqid.client, tid: Number(req.reqid.tid) },
        (store, coll, oid) => executeOps({ store, coll, oid, nowMs: this.wallClock(), snapc, snapId: req.snapId }, req.ops));
      if (r.code === 0 && mutating) {
        this.completed.set(key, r);
        if (this.completed.size > COMPLETED_REPLIES_MAX) this.completed.delete(this.completed.keys().next().value!);
      }
      this.onOp(mutating ? 'write' : 'read', r.code, Math.max(0, this.wallClock() - startMs));
      return reply(r);
    });
  }

  /** Runs `fn` after every earlier request on the same key. */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    const chained = prev.then(() => mine);
    this.locks.set(key, chained);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === chained) this.locks.delete(key);
    }
  }

  /**
   * Runs `plan` at this primary and, for a mutation, has the core log and replicate it under
   * `reqid`; re-plans on EAGAIN (the object changed) and after repairing an EIO.
   */
  private async execute(pgid: string, object: string, reqid: { client: string; tid: number }, plan: Planner): Promise<Omit<OsdReply, 'epoch'>> {
    const fail = (r: Extract<ClientReply, { ok: false }>): Omit<OsdReply, 'epoch'> => ({ code: r.code, message: r.message, version: 0n, results: [] });
    let last: Omit<OsdReply, 'epoch'> | null = null;
    for (let attempt = 0; attempt < EXEC_ATTEMPTS_MAX; attempt++) {
      // A resend of a write already in the PG log (e.g. after a primary change) is answered
      // from the log, never re-executed (its guards or an exclusive create would now fail).
      const probe = await this.pgs.clientOp(pgid, { reqid: this.internalReqid(), object, body: { kind: 'probe', dupOf: reqid } });
      if (!probe.ok) return fail(probe);
      if (probe.dup === true) return { code: 0, message: '', version: 0n, results: [] };
      const store = this.pgs.pgStore(pgid);
      if (store === undefined) return { code: 'ESTALE', message: `osd.${this.whoami} no longer holds ${pgid}`, version: 0n, results: [] };
      const ec = this.ecContext(pgid, object, probe.version);
      let outcome: ExecOutcome & { ecShards?: Transaction[] };
      try {
        if (ec === null) outcome = await plan(store.objectStore, store.coll, oidOf(object));
        else {
          // EC (Ceph ECBackend): the ops run against the object's logical view, and the
          // logical transaction becomes one transaction per shard.
          const oid = oidOf(object);
          const view = new EcObjectView(store.objectStore, ec.layout, RS_CODEC, ec.reader);
          outcome = await plan(view, store.coll, oid);
          if (outcome.code === 0 && outcome.tx !== null && !outcome.removes) {
            const exists = await store.objectStore.exists(store.coll, oid);
            const oldSize = exists ? (await view.stat(store.coll, oid)).sizeBytes : 0;
            const oldAttrs = exists ? await store.objectStore.getattrs(store.coll, oid) : null;
            outcome = { ...outcome, ecShards: await translateEcTransaction(ec.layout, RS_CODEC, ec.reader, outcome.tx, normalizeOid(oid), oldSize, ec.colls, oldAttrs) };
          }
        }
      } catch (err) {
        if (err instanceof AspenError && err.code === 'E_UNSUPPORTED') return { code: err.code, message: err.message, version: 0n, results: [] };
        // EC: too few shards answered; nothing here to repair locally (scrub finds bad shards).
        if (err instanceof AspenError && err.code === 'EIO' && ec !== null) return { code: 'EIO', message: err.message, version: 0n, results: [] };
        if (!(err instanceof AspenError) || err.code !== 'EIO') throw err;
        // Our copy is damaged: have the core pull a good one, then run the request again.
        this.log.warn({ pgid, object, err: err.message }, 'read error on the primary copy: repairing it from a replica');
        this.pgs.objectError(pgid, object);
        last = { code: 'EIO', message: err.message, version: 0n, results: [] };
        continue;
      }
      if (outcome.code !== 0) {
        return { code: isErrorCode(outcome.code) ? outcome.code : 'EIO', message: outcome.message, version: outcome.version, results: outcome.results };
      }
      if (outcome.tx === null) return { code: 0, message: '', version: outcome.version, results: outcome.results };
      const fullMember = outcome.removes ? null : this.fullActingMember(pgid);
      if (fullMember !== null) {
        // Ceph refuses (or blocks) writes while an OSD they would land on is full; a full
        // store would fail the transaction. Deletes still run.
        return { code: 'ENOSPC', message: `osd.${fullMember} is full: only deletes are accepted`, version: outcome.version, results: [] };
      }
      const priorVersion: Eversion = probe.version;
      let body: ClientOpBody;
      if (outcome.removes) body = { kind: 'delete', priorVersion };
      else if (outcome.ecShards !== undefined) {
        const shards = outcome.ecShards.map((t) => encodeTransaction(t));
        body = { kind: 'txn', meta: new Uint8Array(0), data: new Uint8Array(0), sizeBytes: outcome.sizeBytes, priorVersion, shards };
      } else {
        const enc = encodeTransaction(outcome.tx);
        body = { kind: 'txn', meta: enc.meta, data: enc.data, sizeBytes: outcome.sizeBytes, priorVersion };
      }
      const w = await this.pgs.clientOp(pgid, { reqid, object, body });
      if (w.ok) return { code: 0, message: '', version: outcome.version, results: outcome.results };
      if (w.code !== 'EAGAIN') return fail(w);
      last = fail(w);
    }
    return last ?? { code: 'EAGAIN', message: `request on ${object} could not be applied`, version: 0n, results: [] };
  }

  /**
   * Whether `object` exists at head here, once it is readable (watch registration, Ceph
   * checks the object context first): 0, or the error code (ENOENT for an absent object or
   * a whiteout kept for its clones; ESTALE, E_PG_INCOMPLETE … from the PG).
   */
  async objectExists(pgid: string, object: string): Promise<0 | string> {
    const r = await this.execute(pgid, object, this.internalReqid(), (store, coll, oid) => executeOps({ store, coll, oid, nowMs: this.wallClock() }, [{ op: 'assert_exists' }]));
    return r.code;
  }

  /** This OSD if its store is full, else an acting member the OSDMap marks full, else null. */
  private fullActingMember(pgid: string): number | null {
    if (this.isFull()) return this.whoami;
    const map = this.tracker.current;
    if (map === null) return null;
    // Placement is computed only when some OSD is full (not on every write).
    let anyFull = false;
    for (const info of map.osds.values()) if (info.full) { anyFull = true; break; }
    if (!anyFull) return null;
    for (const o of mapPg(map, pgid).acting) if (o >= 0 && map.osds.get(o)?.full === true) return o;
    return null;
  }

  /** For an EC PG this OSD is the primary of: its layout, shard collections and a reader checked at `version`; else null. */
  private ecContext(pgid: string, object: string, version: Eversion): { layout: EcLayout; reader: ShardReader; colls: string[] } | null {
    const map = this.tracker.current;
    const [pool, seed] = pgid.split('.');
    const layout = map === null || this.ec === null ? undefined : ecLayoutOf(map, Number(pool));
    if (layout === undefined) return null;
    const members = this.pgs.ecActing(pgid);
    if (members === undefined) throw new AspenError('ESTALE', `osd.${this.whoami} is not the primary of ${pgid}`);
    const colls = Array.from({ length: layout.k + layout.m }, (_, i) => collectionName(Number(pool), parseInt(seed!, 16), { shard: i }));
    return { layout, reader: this.ec!.shardReader(pgid, members, object, version), colls };
  }

  private internalReqid(): { client: string; tid: number } {
    return { client: `osd.${this.whoami}.exec`, tid: ++this.execTid };
  }

  /**
   * Admin commands (`aspen tell`-style, meta = JSON): `{prefix: 'pg scrub' | 'pg deep-scrub'
   * | 'pg repair', pgid}` to the PG's acting primary. Replies JSON `{message, state}`.
   * @throws AspenError EINVAL for an unknown command; ESTALE when not the primary.
   */
  private command(msg: MsgrMessage): MsgrReply {
    let cmd: { prefix?: unknown; pgid?: unknown };
    try {
      cmd = JSON.parse(new TextDecoder().decode(msg.meta)) as typeof cmd;
    } catch {
      throw new AspenError('EINVAL', 'command must be JSON');
    }
    const pgid = typeof cmd.pgid === 'string' && /^\d+\.[0-9a-f]+$/.test(cmd.pgid) ? cmd.pgid : null;
    if (pgid === null) throw new AspenError('EINVAL', 'command needs pgid POOL.SEEDHEX');
    let state: string;
    switch (cmd.prefix) {
      case 'pg scrub': state = this.pgs.operator(pgid, { kind: 'scrub', deep: false }); break;
      case 'pg deep-scrub': state = this.pgs.operator(pgid, { kind: 'scrub', deep: true }); break;
      case 'pg repair': state = this.pgs.operator(pgid, { kind: 'repair' }); break;
      default: throw new AspenError('EINVAL', `unknown command ${JSON.stringify(cmd.prefix)}`);
    }
    this.log.info({ pgid, command: cmd.prefix }, 'operator command');
    return { meta: new TextEncoder().encode(JSON.stringify({ message: `instructing pg ${pgid} on osd.${this.whoami} to ${String(cmd.prefix).slice(3)}`, state })) };
  }

  private async pgls(msg: MsgrMessage): Promise<MsgrReply> {
    const d = new Decoder(msg.meta);
    const q = d.struct(1, 'pgls request', (b) => ({ epoch: b.u32(), pool: b.u32(), seed: b.u32(), cursor: b.string(), max: b.u32() }));
    const map = await this.mapAtLeast(q.epoch);
    const pgid = `${q.pool}.${q.seed.toString(16)}`;
    const m = mapPg(map, pgid);
    const store = this.pgs.pgStore(pgid);
    if (m.actingPrimary !== this.whoami || store === undefined) throw new AspenError('ESTALE', `osd.${this.whoami} is not the primary of ${pgid} at epoch ${map.epoch}`);
    const page = await store.listPage(q.cursor, Math.max(1, Math.min(q.max, PGLS_PAGE_MAX)));
    this.log.debug({ pgid, n: page.objects.length }, 'pgls');
    const meta = new Encoder(256).struct(1, 1, (e) => {
      e.array(page.objects, (x, s) => x.string(s));
      e.optional(page.next ?? undefined, (x, s) => x.string(s));
    }).finish();
    return { meta };
  }
}
