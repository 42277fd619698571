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
import { ecMember, osdOfMember, shardOf, type ClientOp, type ClientReply, type MapHistory, type Outbox, type PgInput, type PgMapping, type PgMessage, type ScrubObject, type StoreRead, type StoreReadResult } from '../pg/types.ts';
import { CRUSH_ITEM_NONE } from '@aspen/shared/crush/types.ts';
import { Encoder, Decoder } from '@aspen/shared';
import type { ObjectStore } from '../store/types.ts';
import { PgStore, loadPgs } from './osd-store.ts';
import { OsdMapStore } from './osd-maps.ts';

/** Messenger type of a PG message between OSDs (one-way). */
export const MSG_PG = 0x100;
/** Messenger type of a heartbeat ping between OSDs (request/reply). */
export const MSG_OSD_PING = 0x101;
/**
 * Messenger type of a PG message between members of an erasure-coded PG (one-way): meta =
 * struct v1 {u32 to member, bytes inner meta}, data = the inner data; the inner message is
 * {@link MSG_PG}'s encoding with the sender's member id.
 */
export const MSG_PG_EC = 0x103;

/** The instance key of a PG on this OSD: the pgid, or for an EC shard `<pgid>s<shard>` (Ceph spg_t). */
export function pgKey(pgid: string, shard: number): string {
  return shard < 0 ? pgid : `${pgid}s${shard}`;
}

/** Splits an instance key into pgid and shard (-1: not a shard). */
export function parsePgKey(key: string): { pgid: string; shard: number } {
  const m = /^(\d+\.[0-9a-f]+)(?:s(\d+))?$/.exec(key);
  assert(m !== null, `bad pg key ${key}`);
  return { pgid: m[1]!, shard: m[2] === undefined ? -1 : Number(m[2]) };
}

/** Wraps an encoded PG message for {@link MSG_PG_EC}. */
export function encodeEcEnvelope(toMember: number, innerMeta: Uint8Array): Uint8Array {
  return new Encoder(innerMeta.length + 16).struct(1, 1, (e) => e.u32(toMember).bytes(innerMeta)).finish();
}

/** Unwraps {@link encodeEcEnvelope}. @throws AspenError E_DECODE on malformed bytes. */
export function decodeEcEnvelope(meta: Uint8Array): { toMember: number; innerMeta: Uint8Array } {
  const d = new Decoder(meta);
  const r = d.struct(1, 'ec pg envelope', (b) => ({ toMember: b.u32(), innerMeta: b.bytes() }));
  d.done('ec pg envelope');
  return r;
}

/**
 * Performs the EC reads of the PG cores (`StoreRead` with `ec`): rebuilds shard `shard` of
 * `object` at `need` from `sources` (member ids that may hold shards, acting first).
 */
export type EcRebuilder = (pgid: string, sources: readonly number[], r: Extract<StoreRead, { kind: 'read' }>) => Promise<StoreReadResult>;
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
  /** The PG id (without shard). */
  readonly pgid: string;
  /** This OSD's member id in the PG: the OSD id, or for an EC shard its ecMember. */
  readonly member: number;
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
  /** Performs EC shard rebuilds (required once an EC pool exists). */
  readonly ecRebuild?: EcRebuilder;
  /** EC deep scrub at the primary: marks shards that disagree with the parity (osd-ec.ts verifyParity). */
  readonly ecVerify?: (pgid: string, sources: readonly number[], objects: readonly ScrubObject[]) => Promise<ScrubObject[]>;
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

  /** Creates the PG instance `key` (a pgid, or `<pgid>s<shard>` for an EC shard). */
  private create(key: string, loaded?: ConstructorParameters<typeof PgCore>[0]['loaded']): PgEntry {
    assert(!this.pgs.has(key), `pg ${key} created twice`);
    const { pgid, shard } = parsePgKey(key);
    const member = shard < 0 ? this.whoami : ecMember(this.whoami, shard);
    const core = new PgCore({ pgid, whoami: member, config: this.cfg, history: this.history, reserver: this.reserver, ...(loaded !== undefined ? { loaded } : {}) });
    const entry: PgEntry = { core, store: this.storeOf(key), pgid, member };
    this.pgs.set(key, entry);
    this.perform(key, entry, core.tick(this.o.clock()));
    return entry;
  }

  /** Instance keys of this OSD's members in mapping `m` of `pgid` (up or acting). */
  private localKeys(pgid: string, m: PgMapping): string[] {
    if (m.ec === undefined) return m.up.includes(this.whoami) || m.acting.includes(this.whoami) ? [pgid] : [];
    const keys = new Set<string>();
    for (const o of [...m.up, ...m.acting]) if (osdOfMember(o) === this.whoami) keys.add(pgKey(pgid, shardOf(o)));
    return [...keys];
  }

  /** The instance that is the acting primary of `pgid` here, if any (else any instance of it). */
  private primaryEntry(pgid: string): { key: string; entry: PgEntry } | undefined {
    const direct = this.pgs.get(pgid);
    if (direct !== undefined) return { key: pgid, entry: direct };
    let any: { key: string; entry: PgEntry } | undefined;
    for (let shard = 0; shard < 64; shard++) {
      const key = pgKey(pgid, shard);
      const entry = this.pgs.get(key);
      if (entry === undefined) continue;
      if (entry.core.role === 'primary') return { key, entry };
      any ??= { key, entry };
    }
    return any;
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
      for (const key of this.localKeys(pgid, m)) if (!this.pgs.has(key)) this.create(key);
    }
    for (const [key, entry] of [...this.pgs]) {
      if (this.pgs.get(key) === entry) this.step(key, entry, { kind: 'map', epoch: map.epoch });
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

  /**
   * Every PG's placement at `map`'s epoch. EC pools are given in member ids (OSD and shard
   * position, holes left out; see PgMapping.ec).
   */
  private mappingTable(map: OsdMap): Map<string, PgMapping> {
    const up = new Set<number>();
    for (const o of map.osds.values()) if (o.up) up.add(o.id);
    const isUp = (osd: number): boolean => up.has(osd);
    const isMemberUp = (member: number): boolean => up.has(osdOfMember(member));
    const table = new Map<string, PgMapping>();
    for (const pool of map.pools.values()) {
      const k = pool.type === 'erasure' ? map.ecProfiles.get(pool.erasureCodeProfile)?.k : undefined;
      if (pool.type === 'erasure' && k === undefined) continue;
      for (let seed = 0; seed < pool.pgNum; seed++) {
        const pgid = `${pool.id}.${seed.toString(16)}`;
        const m = mapPg(map, pgid);
        if (k === undefined) {
          table.set(pgid, {
            epoch: map.epoch, up: [...m.up], upPrimary: m.upPrimary, acting: [...m.acting], actingPrimary: m.actingPrimary,
            size: pool.size, minSize: pool.minSize, isUp,
          });
          continue;
        }
        const members = (list: readonly number[]): number[] => list.flatMap((o, i) => (o === CRUSH_ITEM_NONE || o < 0 ? [] : [ecMember(o, i)]));
        const primaryOf = (list: readonly number[], osd: number): number => (osd < 0 || osd === CRUSH_ITEM_NONE ? -1 : ecMember(osd, list.indexOf(osd)));
        table.set(pgid, {
          epoch: map.epoch, up: members(m.up), upPrimary: primaryOf(m.up, m.upPrimary), acting: members(m.acting),
          actingPrimary: primaryOf(m.acting, m.actingPrimary), size: pool.size, minSize: pool.minSize, isUp: isMemberUp, ec: { k },
        });
      }
    }
    return table;
  }

  /** The pool size of an EC PG's mapping at the current epoch (for pg_temp lists with holes). */
  private currentMapping(pgid: string): PgMapping | undefined {
    return this.mappings.get(this.epoch)?.get(pgid);
  }

  /**
   * Delivers a peer's message (a query for an unknown PG creates it, as a stray). `toMember`:
   * the addressed member of an EC PG (its shard picks the instance).
   */
  onMessage(from: number, msg: PgMessage, toMember?: number): void {
    const key = toMember === undefined ? msg.pgid : pgKey(msg.pgid, shardOf(toMember));
    if (toMember !== undefined && osdOfMember(toMember) !== this.whoami) return;
    let entry = this.pgs.get(key);
    if (entry === undefined) {
      if (msg.kind !== 'query' || this.epoch === 0 || !this.mappings.get(this.epoch)?.has(msg.pgid)) return;
      entry = this.create(key);
      this.step(key, entry, { kind: 'map', epoch: this.epoch });
    }
    this.step(key, entry, { kind: 'message', from, msg });
  }

  /**
   * Hands a client op to the PG's core and waits for its reply.
   * @returns the core's reply; ESTALE when the PG is not here; ETIMEDOUT when the core did
   *   not answer in time.
   */
  clientOp(pgid: string, op: ClientOp): Promise<ClientReply> {
    const found = this.primaryEntry(pgid);
    const entry = found?.entry;
    if (found === undefined || entry === undefined) return Promise.resolve({ reqid: op.reqid, ok: false, code: 'ESTALE', message: `osd.${this.whoami} has no pg ${pgid}` });
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
      this.step(found.key, entry, { kind: 'clientOp', op });
    });
  }

  /**
   * An operator request for a PG this OSD is the acting primary of (`pg scrub`,
   * `pg deep-scrub`, `pg repair`).
   * @throws AspenError ESTALE when this OSD is not its primary.
   */
  operator(pgid: string, input: Extract<PgInput, { kind: 'scrub' | 'repair' }>): string {
    const found = this.primaryEntry(pgid);
    if (found === undefined || found.entry.core.role !== 'primary') throw new AspenError('ESTALE', `osd.${this.whoami} is not the primary of ${pgid}`);
    if (input.kind === 'scrub') this.stampScrub(found.key, input.deep);
    this.step(found.key, found.entry, input);
    return found.entry.core.stateString;
  }

  /**
   * The primary's copy of `object` failed a read (EIO): the PG's core marks it missing and
   * pulls it from a member (no-op when this OSD does not hold the PG).
   */
  objectError(pgid: string, object: string): void {
    const found = this.primaryEntry(pgid);
    if (found !== undefined) this.step(found.key, found.entry, { kind: 'objectError', object });
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

  /** The PG's store (for an EC PG: the primary shard's here), if this OSD holds it (PGLS, op execution). */
  pgStore(pgid: string): PgStore | undefined {
    const found = this.primaryEntry(pgid);
    return found === undefined ? undefined : this.stores.get(found.key);
  }

  /** The store of shard `shard` of EC PG `pgid` here, if this OSD holds that shard. */
  shardStore(pgid: string, shard: number): PgStore | undefined {
    const key = pgKey(pgid, shard);
    return this.pgs.has(key) ? this.stores.get(key) : undefined;
  }

  /**
   * The acting members (OSD, shard) of EC PG `pgid` as its primary here sees them in its
   * current interval, or undefined when this OSD is not its primary.
   */
  ecActing(pgid: string): { osd: number; shard: number }[] | undefined {
    const found = this.primaryEntry(pgid);
    const m = found?.entry.core.mapping;
    if (found === undefined || found.entry.core.role !== 'primary' || m?.ec === undefined) return undefined;
    return m.acting.map((o) => ({ osd: osdOfMember(o), shard: shardOf(o) }));
  }

  /** OSDs this one shares a PG with at the current epoch (heartbeat peers). */
  peers(): Set<number> {
    const out = new Set<number>();
    const table = this.mappings.get(this.epoch);
    if (table === undefined) return out;
    for (const { pgid } of this.pgs.values()) {
      const m = table.get(pgid);
      if (m === undefined) continue;
      for (const o of [...m.up, ...m.acting]) {
        const osd = m.ec === undefined ? o : osdOfMember(o);
        if (osd !== this.whoami && osd >= 0) out.add(osd);
      }
    }
    return out;
  }

  /** States of the PGs this OSD is the acting primary of (`pg stats`). */
  stats(): PgStatReport[] {
    const out: PgStatReport[] = [];
    for (const { pgid, core } of this.pgs.values()) {
      const m = core.mapping;
      if (core.role !== 'primary' || m === undefined) continue;
      let bytes = 0;
      for (const s of core.objects.values()) bytes += s.sizeBytes;
      const up = m.ec === undefined ? [...m.up] : this.osdList(m.up, m.size);
      const acting = m.ec === undefined ? [...m.acting] : this.osdList(m.acting, m.size);
      out.push({ pgid, state: core.stateString, up, acting, num_objects: core.objects.size, num_bytes: bytes });
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

  /** EC members → the OSD list by position with CRUSH_ITEM_NONE holes (Ceph's EC up/acting/pg_temp form). */
  private osdList(members: readonly number[], size: number): number[] {
    const out = new Array<number>(size).fill(CRUSH_ITEM_NONE);
    for (const o of members) if (shardOf(o) < size) out[shardOf(o)] = osdOfMember(o);
    return out;
  }

  private step(key: string, entry: PgEntry, input: PgInput): void {
    this.perform(key, entry, entry.core.step(input));
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
      const ecRead = r.kind === 'read' && r.ec !== undefined ? r : undefined;
      const rebuild = this.o.ecRebuild;
      const verify = this.o.ecVerify;
      const ecDeepList = r.kind === 'list' && r.deep && core.role === 'primary' && core.mapping?.ec !== undefined && verify !== undefined;
      const sources = core.ecSources();
      const local = ecDeepList
        ? entry.store.read(r).then(async (res): Promise<StoreReadResult> => (res.kind === 'list' ? { kind: 'list', objects: await verify(entry.pgid, sources, res.objects) } : res))
        : entry.store.read(r);
      const p = ecRead === undefined ? local
        : rebuild === undefined ? Promise.reject(new AspenError('E_UNSUPPORTED', 'no EC rebuilder'))
          : rebuild(entry.pgid, core.ecSources(), ecRead);
      p.then(
        (result) => {
          if (this.pgs.get(pgid) === entry) this.step(pgid, entry, { kind: 'readDone', readId: r.readId, result });
        },
        (err: unknown) => {
          this.o.log.error({ pgid, err: String(err), read: r.kind }, 'store read failed');
          // An EC rebuild that failed is answered as unavailable (the core retries later).
          if (ecRead !== undefined && this.pgs.get(pgid) === entry) this.step(pgid, entry, { kind: 'readDone', readId: r.readId, result: { kind: 'read', exists: false, unavailable: true } });
        },
      );
    }
    for (const m of out.messages) this.send(entry, m.to, m.msg);
    for (const r of out.replies) {
      const key = `${r.reqid.client}/${r.reqid.tid}`;
      const list = this.waiting.get(key);
      const w = list?.shift();
      if (list !== undefined && list.length === 0) this.waiting.delete(key);
      w?.(r);
    }
    for (const t of out.pgTemp) {
      const m = core.mapping;
      const osds = m?.ec === undefined || t.osds.length === 0 ? [...t.osds] : this.osdList(t.osds, m.size);
      this.o.mon.command({ prefix: 'osd pg-temp', pgid: t.pgid, osds }).catch((err: unknown) => {
        this.o.log.warn({ pgid: t.pgid, err: String(err) }, 'pg-temp request failed');
      });
    }
    if (out.state !== null) this.o.log.info({ pgid, state: out.state, epoch: this.epoch, role: core.role }, 'pg state');
    if (out.deleted) {
      this.pgs.delete(pgid);
      this.o.log.info({ pgid }, 'pg purged');
    }
  }

  private send(entry: PgEntry, to: number, msg: PgMessage): void {
    const ec = entry.core.mapping?.ec !== undefined;
    const addr = this.map?.osds.get(ec ? osdOfMember(to) : to)?.addr;
    if (addr === undefined || addr === '') return;
    try {
      const enc = encodePgMessage(entry.member, msg);
      if (ec) this.o.msgr.send(addr, MSG_PG_EC, encodeEcEnvelope(to, enc.meta), enc.data);
      else this.o.msgr.send(addr, MSG_PG, enc.meta, enc.data);
    } catch (err) {
      // Lost: the core resends after peerRetryMs.
      if (!(err instanceof AspenError)) throw err;
      this.o.log.debug({ to, kind: msg.kind, err: err.message }, 'pg message not sent');
    }
  }
}
