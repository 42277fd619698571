/**
 * The PG host of `aspen-osd`: drives one {@link PgCore} per PG this OSD holds (as the
 * simulator in osd/test/sim/cluster.ts does, with real I/O) and performs its outboxes.
 *
 * - Maps: every OSDMap epoch received is recorded as a per-PG mapping table (the
 *   {@link MapHistory}) and stored ({@link OsdMapStore}); after a restart the stored epochs
 *   are reloaded, so past intervals reach back before the restart (epochs the OSD never
 *   received — the monitors keep the last 500 — stay unknown). PGs where this OSD is up or
 *   acting are created, and every PG gets a `map` input. Epochs are trimmed (memory and
 *   disk) once older than every local PG's last_epoch_started, interval start and
 *   last_epoch_clean and than the newest {@link MAP_HISTORY_KEPT_MIN} epochs.
 * - Outbox, in order: transactions are queued to the PG's collection ({@link PgStore}) and
 *   reported `committed` when durable; reads run after the transactions before them; peer
 *   messages go out over the messenger (one-way, {@link MSG_PG}; the core resends what is
 *   lost); client replies resolve the waiting request; pg_temp requests go to the mons.
 * - Time: `tick(nowMs)` with a monotonic clock, every {@link PG_TICK_INTERVAL_MS}.
 * - Scheduled scrubs (Ceph OSD::sched_scrub): an active+clean PG this OSD is the primary of
 *   is scrubbed once `osd_scrub_min_interval` has passed since its last scrub, deeply once
 *   `osd_deep_scrub_interval` has passed since its last deep scrub, at most
 *   {@link OSD_MAX_SCRUBS} at a time. Stamps live in memory: after a (re)start each PG's
 *   clocks start at a point staggered by its id, so the PGs do not all scrub at once.
 *
 * A store transaction that fails (ENOSPC, EIO) is fatal (`onFatal`): the core assumes its
 * transactions are applied in order, so the daemon must restart from what is on disk.
 */
import { AspenError, assert } from '@aspen/shared';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { Messenger } from '@aspen/shared/io/msgr-client.ts';
import type { MonClient } from '@aspen/shared/io/monclient.ts';
import type { Logger } from 'pino';
import { PgCore, PG_CONFIG_DEFAULTS, type PgConfig } from '../pg/pg.ts';
import { LocalReserver } from '../pg/recovery.ts';
import { encodePgMessage } from '../pg/msg-codec.ts';
import type { ClientOp, ClientReply, MapHistory, Outbox, PgInput, PgMapping, PgMessage } from '../pg/types.ts';
import type { ObjectStore } from '../store/types.ts';
import { PgStore, loadPgs } from './osd-store.ts';
import { OsdMapStore } from './osd-maps.ts';

/** Messenger type of a PG message between OSDs (one-way). */
export const MSG_PG = 0x100;
/** Messenger type of a heartbeat ping between OSDs (request/reply). */
export const MSG_OSD_PING = 0x101;
/** PG ticks (retries, timeouts, throttles), ms. */
export const PG_TICK_INTERVAL_MS = 100;
/** A client op waits at most this long for the core's reply beyond the core's own block timeout, ms. */
export const CLIENT_REPLY_GRACE_MS = 5_000;
/** Backfills this OSD takes part in at once (Ceph osd_max_backfills). */
export const OSD_MAX_BACKFILLS = 1;
/** Newest epochs of map history always kept (as many as the monitors keep incrementals). */
export const MAP_HISTORY_KEPT_MIN = 500;
/** Trim the map history every this many epochs. */
const MAP_TRIM_EVERY_EPOCHS = 50;

/** PG scrubs this OSD runs at once as primary (Ceph osd_max_scrubs). */
export const OSD_MAX_SCRUBS = 1;
/** Ceph osd_scrub_min_interval: 1 day, ms. */
export const OSD_SCRUB_MIN_INTERVAL_MS = 24 * 3600_000;
/** Ceph osd_deep_scrub_interval: 1 week, ms. */
export const OSD_DEEP_SCRUB_INTERVAL_MS = 7 * 24 * 3600_000;

/** Scrub intervals, ms (Ceph osd_scrub_min_interval, osd_deep_scrub_interval). */
export interface ScrubSchedule {
  readonly minIntervalMs: number;
  readonly deepIntervalMs: number;
}

/** When each PG was last scrubbed (shallow or deep) and deep-scrubbed, monotonic ms. */
export interface ScrubStamps {
  lastScrubMs: number;
  lastDeepScrubMs: number;
}

/**
 * Which scrub is due for a PG (Ceph OSD::sched_scrub / PG::sched_scrub): deep once
 * `deepIntervalMs` passed since the last deep scrub, else shallow once `minIntervalMs`
 * passed since the last scrub of either kind, else none.
 */
export function dueScrub(nowMs: number, stamps: ScrubStamps, schedule: ScrubSchedule): 'deep' | 'shallow' | null {
  if (nowMs - stamps.lastDeepScrubMs >= schedule.deepIntervalMs) return 'deep';
  if (nowMs - stamps.lastScrubMs >= schedule.minIntervalMs) return 'shallow';
  return null;
}

/**
 * Stamps for a PG first seen at `nowMs`: as if last scrubbed a fraction of each interval
 * ago, the fraction fixed by the PG id (so a restarted OSD's PGs come due spread out).
 */
export function initialScrubStamps(pgid: string, nowMs: number, schedule: ScrubSchedule): ScrubStamps {
  let h = 2166136261;
  for (let i = 0; i < pgid.length; i++) h = Math.imul(h ^ pgid.charCodeAt(i), 16777619) >>> 0;
  const frac = h / 2 ** 32;
  return { lastScrubMs: nowMs - frac * schedule.minIntervalMs, lastDeepScrubMs: nowMs - frac * schedule.deepIntervalMs };
}

/** PG config of the daemon: Ceph-like defaults with a shorter log (the whole meta is rewritten per transaction). */
export const DAEMON_PG_CONFIG: PgConfig = { ...PG_CONFIG_DEFAULTS, pgLogMaxEntries: 300, pgLogDupsMax: 1000, peerRetryMs: 500 };

interface PgEntry {
  core: PgCore;
  readonly store: PgStore;
}

/** What a PG reports in `pg stats`. */
export interface PgStatReport {
  pgid: string;
  state: string;
  up: number[];
  acting: number[];
  num_objects: number;
  num_bytes: number;
}

/** Options of {@link OsdPgs}. */
export interface OsdPgsOptions {
  readonly whoami: number;
  readonly store: ObjectStore;
  readonly msgr: Messenger;
  readonly mon: MonClient;
  readonly log: Logger;
  /** Monotonic clock, ms. */
  readonly clock: () => number;
  readonly onFatal: (err: unknown) => void;
  readonly config?: PgConfig;
  /** Scrub intervals; default Ceph's (1 day, 1 week). */
  readonly scrubSchedule?: ScrubSchedule;
}

/** Every PG of this OSD. */
export class OsdPgs {
  readonly whoami: number;
  private readonly o: OsdPgsOptions;
  private readonly cfg: PgConfig;
  private readonly pgs = new Map<string, PgEntry>();
  /** PgStore per PG, kept across core instances so store work stays ordered. */
  private readonly stores = new Map<string, PgStore>();
  private readonly mappings = new Map<number, Map<string, PgMapping>>();
  private readonly history: MapHistory;
  private readonly reserver = new LocalReserver(OSD_MAX_BACKFILLS);
  private readonly waiting = new Map<string, ((r: ClientReply) => void)[]>();
  private readonly scrubStamps = new Map<string, ScrubStamps>();
  private readonly scrubSchedule: ScrubSchedule;
  private map: OsdMap | null = null;
  private epoch = 0;
  private readonly mapStore: OsdMapStore;
  private lastTrimEpoch = 0;

  constructor(o: OsdPgsOptions) {
    this.o = o;
    this.whoami = o.whoami;
    this.cfg = o.config ?? DAEMON_PG_CONFIG;
    this.scrubSchedule = o.scrubSchedule ?? { minIntervalMs: OSD_SCRUB_MIN_INTERVAL_MS, deepIntervalMs: OSD_DEEP_SCRUB_INTERVAL_MS };
    const mappings = this.mappings;
    this.history = { mappingAt: (pgid, e) => mappings.get(e)?.get(pgid) };
    this.mapStore = new OsdMapStore(o.store);
  }

  /** The newest epoch this host has applied. */
  get currentEpoch(): number {
    return this.epoch;
  }

  /**
   * Loads the stored map history and every PG found in the store (restart). Call once,
   * before the first map.
   * @returns the PG count and the newest stored map (subscribe from it), or null.
   */
  async load(): Promise<{ pgs: number; newestMap: OsdMap | null }> {
    const maps = await this.mapStore.loadAll();
    for (const m of maps) this.mappings.set(m.epoch, this.mappingTable(m));
    const loaded = await loadPgs(this.o.store);
    for (const l of loaded) {
      const store = new PgStore(this.o.store, l.pgid, { objects: [...l.objects.keys(), '\u0000pgmeta'], clones: l.clones });
      this.stores.set(l.pgid, store);
      this.create(l.pgid, { meta: l.meta, objects: l.objects });
    }
    return { pgs: loaded.length, newestMap: maps.at(-1) ?? null };
  }

  private storeOf(pgid: string): PgStore {
    let s = this.stores.get(pgid);
    if (s === undefined) {
      s = new PgStore(this.o.store, pgid);
      this.stores.set(pgid, s);
    }
    return s;
  }

  private create(pgid: string, loaded?: ConstructorParameters<typeof PgCore>[0]['loaded']): PgEntry {
    assert(!this.pgs.has(pgid), `pg ${pgid} created twice`);
    const core = new PgCore({ pgid, whoami: this.whoami, config: this.cfg, history: this.history, reserver: this.reserver, ...(loaded !== undefined ? { loaded } : {}) });
    const entry: PgEntry = { core, store: this.storeOf(pgid) };
    this.pgs.set(pgid, entry);
    this.perform(pgid, entry, core.tick(this.o.clock()));
    return entry;
  }

  /** Applies a new OSDMap epoch: records its mappings, creates PGs mapped here, steps every PG. */
  onMap(map: OsdMap): void {
    if (map.epoch <= this.epoch) return;
    this.map = map;
    const table = this.mappingTable(map);
    this.mappings.set(map.epoch, table);
    this.mapStore.save(map).catch((err: unknown) => this.o.log.warn({ epoch: map.epoch, err: String(err) }, 'could not store the OSDMap'));
    this.epoch = map.epoch;
    for (const [pgid, m] of table) {
      if (!this.pgs.has(pgid) && (m.up.includes(this.whoami) || m.acting.includes(this.whoami))) this.create(pgid);
    }
    for (const [pgid, entry] of [...this.pgs]) {
      if (this.pgs.get(pgid) === entry) this.step(pgid, entry, { kind: 'map', epoch: map.epoch });
    }
    if (map.epoch - this.lastTrimEpoch >= MAP_TRIM_EVERY_EPOCHS) this.trimMaps();
  }

  /** Drops map epochs no local PG can need any more (see the module docs). */
  private trimMaps(): void {
    this.lastTrimEpoch = this.epoch;
    let keepFrom = this.epoch - MAP_HISTORY_KEPT_MIN;
    for (const { core } of this.pgs.values()) {
      const h = core.info.history;
      keepFrom = Math.min(keepFrom, h.lastEpochStarted, h.sameIntervalSince, h.lastEpochClean, core.info.lastEpochStarted);
    }
    keepFrom -= 1; // an interval start is found by looking one epoch further back
    if (keepFrom <= 1) return;
    for (const e of [...this.mappings.keys()]) if (e < keepFrom) this.mappings.delete(e);
    this.mapStore.trimBefore(keepFrom).catch((err: unknown) => this.o.log.warn({ err: String(err) }, 'could not trim stored OSDMaps'));
  }

  /** Every PG's placement at `map`'s epoch (replicated pools). */
  private mappingTable(map: OsdMap): Map<string, PgMapping> {
    const up = new Set<number>();
    for (const o of map.osds.values()) if (o.up) up.add(o.id);
    const isUp = (osd: number): boolean => up.has(osd);
    const table = new Map<string, PgMapping>();
    for (const pool of map.pools.values()) {
      if (pool.type !== 'replicated') continue;
      for (let seed = 0; seed < pool.pgNum; seed++) {
        const pgid = `${pool.id}.${seed.toString(16)}`;
        const m = mapPg(map, pgid);
        table.set(pgid, {
          epoch: map.epoch, up: [...m.up], upPrimary: m.upPrimary, acting: [...m.acting], actingPrimary: m.actingPrimary,
          size: pool.size, minSize: pool.minSize, isUp,
        });
      }
    }
    return table;
  }

  /** Delivers a peer's message (a query for an unknown PG creates it, as a stray). */
  onMessage(from: number, msg: PgMessage): void {
    let entry = this.pgs.get(msg.pgid);
    if (entry === undefined) {
      if (msg.kind !== 'query' || this.epoch === 0 || !this.mappings.get(this.epoch)?.has(msg.pgid)) return;
      entry = this.create(msg.pgid);
      this.step(msg.pgid, entry, { kind: 'map', epoch: this.epoch });
    }
    this.step(msg.pgid, entry, { kind: 'message', from, msg });
  }

  /**
   * Hands a client op to the PG's core and waits for its reply.
   * @returns the core's reply; ESTALE when the PG is not here; ETIMEDOUT when the core did
   *   not answer in time.
   */
  clientOp(pgid: string, op: ClientOp): Promise<ClientReply> {
    const entry = this.pgs.get(pgid);
    if (entry === undefined) return Promise.resolve({ reqid: op.reqid, ok: false, code: 'ESTALE', message: `osd.${this.whoami} has no pg ${pgid}` });
    const key = `${op.reqid.client}/${op.reqid.tid}`;
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: ClientReply): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        const list = this.waiting.get(key);
        if (list !== undefined) {
          const i = list.indexOf(finish);
          if (i >= 0) list.splice(i, 1);
          if (list.length === 0) this.waiting.delete(key);
        }
        finish({ reqid: op.reqid, ok: false, code: 'ETIMEDOUT', message: `pg ${pgid} did not answer in time` });
      }, this.cfg.clientOpBlockTimeoutMs + CLIENT_REPLY_GRACE_MS);
      const list = this.waiting.get(key) ?? [];
      list.push(finish);
      this.waiting.set(key, list);
      this.step(pgid, entry, { kind: 'clientOp', op });
    });
  }

  /**
   * An operator request for a PG this OSD is the acting primary of (`pg scrub`,
   * `pg deep-scrub`, `pg repair`).
   * @throws AspenError ESTALE when this OSD is not its primary.
   */
  operator(pgid: string, input: Extract<PgInput, { kind: 'scrub' | 'repair' }>): string {
    const entry = this.pgs.get(pgid);
    if (entry === undefined || entry.core.role !== 'primary') throw new AspenError('ESTALE', `osd.${this.whoami} is not the primary of ${pgid}`);
    if (input.kind === 'scrub') this.stampScrub(pgid, input.deep);
    this.step(pgid, entry, input);
    return entry.core.stateString;
  }

  /**
   * The primary's copy of `object` failed a read (EIO): the PG's core marks it missing and
   * pulls it from a member (no-op when this OSD does not hold the PG).
   */
  objectError(pgid: string, object: string): void {
    const entry = this.pgs.get(pgid);
    if (entry !== undefined) this.step(pgid, entry, { kind: 'objectError', object });
  }

  /** Advances every PG's clock; starts a scheduled scrub when one is due and a slot is free. */
  tick(): void {
    const now = this.o.clock();
    for (const [pgid, entry] of [...this.pgs]) {
      if (this.pgs.get(pgid) === entry) this.perform(pgid, entry, entry.core.tick(now));
    }
    this.scheduleScrubs(now);
  }

  private scheduleScrubs(now: number): void {
    let running = 0;
    for (const { core } of this.pgs.values()) if (core.role === 'primary' && core.stateString.includes('scrubbing')) running++;
    for (const [pgid, entry] of this.pgs) {
      if (running >= OSD_MAX_SCRUBS) return;
      // Clean PGs only (an inconsistent one too: its next scrub clears the flag once mended).
      const st = entry.core.stateString;
      if (entry.core.role !== 'primary' || (st !== 'active+clean' && st !== 'active+clean+inconsistent')) continue;
      let stamps = this.scrubStamps.get(pgid);
      if (stamps === undefined) {
        stamps = initialScrubStamps(pgid, now, this.scrubSchedule);
        this.scrubStamps.set(pgid, stamps);
      }
      const due = dueScrub(now, stamps, this.scrubSchedule);
      if (due === null) continue;
      this.stampScrub(pgid, due === 'deep');
      this.o.log.info({ pgid, deep: due === 'deep' }, 'scheduled scrub');
      this.step(pgid, entry, { kind: 'scrub', deep: due === 'deep' });
      running++;
    }
  }

  private stampScrub(pgid: string, deep: boolean): void {
    const now = this.o.clock();
    const s = this.scrubStamps.get(pgid) ?? { lastScrubMs: now, lastDeepScrubMs: now };
    s.lastScrubMs = now;
    if (deep) s.lastDeepScrubMs = now;
    this.scrubStamps.set(pgid, s);
  }

  /** The PG's store, if this OSD ever held it (PGLS). */
  pgStore(pgid: string): PgStore | undefined {
    return this.pgs.has(pgid) ? this.stores.get(pgid) : undefined;
  }

  /** OSDs this one shares a PG with at the current epoch (heartbeat peers). */
  peers(): Set<number> {
    const out = new Set<number>();
    const table = this.mappings.get(this.epoch);
    if (table === undefined) return out;
    for (const pgid of this.pgs.keys()) {
      const m = table.get(pgid);
      if (m === undefined) continue;
      for (const o of [...m.up, ...m.acting]) if (o !== this.whoami && o >= 0) out.add(o);
    }
    return out;
  }

  /** States of the PGs this OSD is the acting primary of (`pg stats`). */
  stats(): PgStatReport[] {
    const out: PgStatReport[] = [];
    for (const [pgid, { core }] of this.pgs) {
      const m = core.mapping;
      if (core.role !== 'primary' || m === undefined) continue;
      let bytes = 0;
      for (const s of core.objects.values()) bytes += s.sizeBytes;
      out.push({ pgid, state: core.stateString, up: [...m.up], acting: [...m.acting], num_objects: core.objects.size, num_bytes: bytes });
    }
    return out;
  }

  /** PGs by `role state` (metrics). */
  stateCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { core } of this.pgs.values()) {
      const key = `${core.role} ${core.stateString}`;
      out.set(key, (out.get(key) ?? 0) + 1);
    }
    return out;
  }

  private step(pgid: string, entry: PgEntry, input: PgInput): void {
    this.perform(pgid, entry, entry.core.step(input));
  }

  private perform(pgid: string, entry: PgEntry, out: Outbox): void {
    const core = entry.core;
    for (const t of out.transactions) {
      entry.store.commit(t.ops).then(
        () => {
          if (this.pgs.get(pgid) === entry) this.step(pgid, entry, { kind: 'committed', txnId: t.txnId });
        },
        (err: unknown) => this.o.onFatal(err),
      );
    }
    for (const r of out.reads) {
      entry.store.read(r).then(
        (result) => {
          if (this.pgs.get(pgid) === entry) this.step(pgid, entry, { kind: 'readDone', readId: r.readId, result });
        },
        (err: unknown) => this.o.log.error({ pgid, err: String(err), read: r.kind }, 'store read failed'),
      );
    }
    for (const m of out.messages) this.send(m.to, m.msg);
    for (const r of out.replies) {
      const key = `${r.reqid.client}/${r.reqid.tid}`;
      const list = this.waiting.get(key);
      const w = list?.shift();
      if (list !== undefined && list.length === 0) this.waiting.delete(key);
      w?.(r);
    }
    for (const t of out.pgTemp) {
      this.o.mon.command({ prefix: 'osd pg-temp', pgid: t.pgid, osds: [...t.osds] }).catch((err: unknown) => {
        this.o.log.warn({ pgid: t.pgid, err: String(err) }, 'pg-temp request failed');
      });
    }
    if (out.state !== null) this.o.log.info({ pgid, state: out.state, epoch: this.epoch, role: core.role }, 'pg state');
    if (out.deleted) {
      this.pgs.delete(pgid);
      this.o.log.info({ pgid }, 'pg purged');
    }
  }

  private send(to: number, msg: PgMessage): void {
    const addr = this.map?.osds.get(to)?.addr;
    if (addr === undefined || addr === '') return;
    try {
      const enc = encodePgMessage(this.whoami, msg);
      this.o.msgr.send(addr, MSG_PG, enc.meta, enc.data);
    } catch (err) {
      // Lost: the core resends after peerRetryMs.
      if (!(err instanceof AspenError)) throw err;
      this.o.log.debug({ to, kind: msg.kind, err: err.message }, 'pg message not sent');
    }
  }
}
