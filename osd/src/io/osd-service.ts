/**
 * The messenger handler of `aspen-osd`: client ops (MSG_OSD_OP), PG listing (MSG_PG_LS), PG
 * messages from peers (MSG_PG) and heartbeat pings (MSG_OSD_PING).
 *
 * Client ops (Ceph PrimaryLogPG::do_op, simplified): a request for an epoch newer than ours
 * waits for that map (up to {@link CLIENT_MAP_WAIT_MS}); a request for a PG whose acting
 * primary is not this OSD gets ESTALE with our epoch (the client refreshes and resends).
 * The op list runs as read-modify-write of the object's whole state (../pg/object-state.ts):
 * the current state is read through the core (so it waits for recovery of a missing
 * object), the ops are applied in memory (guards first), and a mutation is handed to the core
 * as a `writeFull` of the new state (or a `delete`) under the client's request id (the core
 * deduplicates resends through its log). Requests on one object are serialized here, so two
 * read-modify-writes never interleave.
 */
import { AspenError, Decoder, Encoder, isErrorCode } from '@aspen/shared';
import { MSG_OSD_COMMAND, MSG_OSD_OP, MSG_PG_LS } from '@aspen/shared/client/messages.ts';
import { decodeOsdRequest, encodeOsdReply, isMutation, SNAP_HEAD, type OsdReply, type OsdRequest } from '@aspen/shared/client/ops.ts';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { MsgrMessage, MsgrReply } from '@aspen/shared/io/msgr-server.ts';
import type { OsdMapTracker } from '@aspen/shared/io/osdmap-tracker.ts';
import type { Logger } from 'pino';
import { decodePgMessage } from '../pg/msg-codec.ts';
import { normalizeOid } from '../store/oid.ts';
import { applyOsdOps, decodeObjectState, encodeObjectState } from '../pg/object-state.ts';
import type { ClientReply } from '../pg/types.ts';
import { MSG_OSD_PING, MSG_PG, type OsdPgs } from './osd-pgs.ts';

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

/** Serves one OSD's messenger traffic. */
export class OsdService {
  private readonly locks = new Map<string, Promise<void>>();
  /** `client/tid` → the successful reply of a mutation, oldest first, at most {@link COMPLETED_REPLIES_MAX}. */
  private readonly completed = new Map<string, Omit<OsdReply, 'epoch'>>();
  private rmwTid = 0;

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
  ) {}

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
    if (pool.type !== 'replicated') return err('E_UNSUPPORTED', `pool ${pool.name} is not replicated`);
    if (req.snapId !== SNAP_HEAD) return err('E_UNSUPPORTED', 'reads at a snapshot are not supported yet');
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
      const r = await this.rmw(pgid, object, req);
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

  private async rmw(pgid: string, object: string, req: OsdRequest): Promise<Omit<OsdReply, 'epoch'>> {
    const fail = (r: Extract<ClientReply, { ok: false }>): Omit<OsdReply, 'epoch'> => ({ code: r.code, message: r.message, version: 0n, results: [] });
    const read = await this.pgs.clientOp(pgid, { reqid: { client: `osd.${this.whoami}.rmw`, tid: ++this.rmwTid }, object, body: { kind: 'read' } });
    let cur = null;
    if (read.ok) cur = decodeObjectState(read.data ?? new Uint8Array(0));
    else if (read.code !== 'ENOENT') return fail(read);
    const outcome = applyOsdOps(cur, req.ops, this.wallClock());
    if (outcome.code !== 0) {
      return { code: isErrorCode(outcome.code) ? outcome.code : 'EIO', message: outcome.message, version: outcome.version, results: outcome.results };
    }
    if (!outcome.mutates) return { code: 0, message: '', version: outcome.version, results: outcome.results };
    if (outcome.next !== null && this.isFull()) {
      // Ceph answers ENOSPC (or blocks) when the OSD is full; a full store would fail the transaction.
      return { code: 'ENOSPC', message: `osd.${this.whoami} is full: only deletes are accepted`, version: outcome.version, results: [] };
    }
    const body = outcome.next === null || outcome.next === undefined ? { kind: 'delete' as const } : { kind: 'writeFull' as const, data: encodeObjectState(outcome.next) };
    if (req.reqid.tid > BigInt(Number.MAX_SAFE_INTEGER)) throw new AspenError('EINVAL', 'request tid out of range');
    const w = await this.pgs.clientOp(pgid, { reqid: { client: req.reqid.client, tid: Number(req.reqid.tid) }, object, body });
    if (!w.ok) return fail(w);
    return { code: 0, message: '', version: outcome.version, results: outcome.results };
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
