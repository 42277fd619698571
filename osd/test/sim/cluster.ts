/**
 * Deterministic simulation of PGs on a small cluster (CONVENTIONS item 12; TigerBeetle VOPR
 * style): one seed drives a fake clock, a fake network that drops, delays, duplicates,
 * reorders and partitions messages, OSDs that crash (losing unsynced writes) and restart,
 * a fake monitor that turns failures into OSDMaps (down, then out after a while; boots;
 * pg_temp requests), and clients that write, overwrite, delete and read objects with
 * retries.
 *
 * A run has a safety phase (faults on) and a liveness phase (every OSD restarted and
 * reconnected, no more faults) that must end with every PG active+clean with `size`
 * identical copies, strays purged and every client op answered. Checked throughout: at every
 * acknowledgement each acting member has the entry on disk; reads never miss an acknowledged
 * write; no (object, version) is ever stored with two different contents; a resent op never
 * gets two different versions. Checked at the end: every acknowledged write (or a later
 * version) is on every copy.
 */
import { assert, assertNever, buildCrushMap } from '@aspen/shared';
import { applyIncremental, newOsdInfo } from '../../../shared/src/osdmap/incremental.ts';
import { mapObjectToPg, mapPg } from '../../../shared/src/osdmap/map-placement.ts';
import { WEIGHT_IN, emptyIncremental, type OsdMap, type Pool } from '../../../shared/src/osdmap/types.ts';
import { PgCore, type PgConfig } from '../../src/pg/pg.ts';
import { LocalReserver } from '../../src/pg/recovery.ts';
import { hasSalvageCopy } from '../../src/pg/primary.ts';
import { decodePgMeta, encodePgMeta } from '../../src/pg/codec.ts';
import { evCmp, evStr, type ClientOpBody, type ClientReply, type Eversion, type MapHistory, type Outbox, type PgInput, type PgMapping, type PgMessage, type ReqId } from '../../src/pg/types.ts';
import { Prng } from '@aspen/test/prng.ts';
import { ContentLedger, SimStore, bytesEqual } from './store.ts';

/** Everything a run does is a function of its seed. */
export interface SimParams {
  readonly seed: number;
  readonly osds: number;
  readonly pgNum: number;
  readonly size: number;
  readonly minSize: number;
  readonly safetyMs: number;
  readonly livenessMs: number;
  readonly tickMs: number;
  readonly dropRate: number;
  readonly dupRate: number;
  readonly maxDelayMs: number;
  readonly fsyncMaxMs: number;
  /** Per OSD per chaos step (tickMs). */
  readonly crashRate: number;
  readonly partitionRate: number;
  /** Per chaos step: an operator marks an up OSD out (or an operator-out OSD back in). */
  readonly reweightRate: number;
  readonly downDetectMs: number;
  readonly outAfterMs: number;
  readonly clients: number;
  readonly objects: number;
  readonly clientRetryMs: number;
  readonly pg: PgConfig;
  readonly osdMaxBackfills: number;
  /** Checker self-test: the core acks after the primary's own commit only. */
  readonly unsafeAck: boolean;
  /** Check at every acknowledgement that each acting member has the entry on disk. */
  readonly checkAckRule: boolean;
  /**
   * At healing one OSD is lost for good (marked down and out, never restarted); the PGs must
   * re-replicate. Only with min_size >= 2, where every acknowledged write has a second copy.
   */
  readonly loseOsd: boolean;
}

/** Derives a run's parameters from its seed. */
export function deriveParams(seed: number, overrides: Partial<SimParams> = {}): SimParams {
  const r = new Prng(seed ^ 0x9e3779b9);
  const osds = r.range(3, 6);
  const size = osds >= 4 && r.chance(0.8) ? 3 : r.chance(0.5) ? 3 : 2;
  const minSize = size === 3 ? 2 : r.pick([1, 2]);
  const base: SimParams = {
    seed, osds, size, minSize,
    pgNum: r.pick([2, 4, 4, 8]),
    safetyMs: r.range(1500, 5000),
    livenessMs: 4000,
    tickMs: 10,
    dropRate: r.pick([0, 0.01, 0.05, 0.15]),
    dupRate: r.pick([0, 0.02, 0.05]),
    maxDelayMs: r.pick([2, 5, 12, 25]),
    fsyncMaxMs: r.pick([0, 3, 10]),
    crashRate: r.pick([0, 0.002, 0.005, 0.01]),
    partitionRate: r.pick([0, 0.001, 0.004]),
    reweightRate: r.pick([0, 0.003, 0.01]),
    downDetectMs: r.range(20, 80),
    outAfterMs: r.pick([150, 400, 100_000]),
    clients: r.range(1, 8),
    objects: r.pick([4, 10, 24]),
    clientRetryMs: r.pick([80, 200]),
    pg: {
      pgLogMaxEntries: r.pick([4, 8, 30]),
      pgLogDupsMax: 200,
      peerRetryMs: r.pick([30, 60]),
      clientOpBlockTimeoutMs: 400,
      clientOpsQueuedMax: 64,
      recoveryOpsInflightMax: r.pick([1, 3]),
      recoveryBytesPerSec: r.pick([20_000, 1_000_000]),
      backfillScanBatchMax: r.pick([2, 8]),
    },
    osdMaxBackfills: r.pick([1, 2]),
    unsafeAck: false,
    checkAckRule: true,
    loseOsd: osds >= size + 1 && minSize >= 2 && r.chance(0.25),
  };
  const p = { ...base, ...overrides, pg: { ...base.pg, ...(overrides.pg ?? {}) } };
  return p.unsafeAck ? { ...p, pg: { ...p.pg, debugUnsafeAckOnPrimaryCommit: true } } : p;
}

interface Event {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** A binary min-heap of events by (time, insertion order). */
class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;
  get size(): number {
    return this.heap.length;
  }
  push(at: number, fn: () => void): void {
    const h = this.heap;
    h.push({ at, seq: this.seq++, fn });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const rr = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (rr < h.length && less(h[rr]!, h[m]!)) m = rr;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
function less(a: Event, b: Event): boolean {
  return a.at !== b.at ? a.at < b.at : a.seq < b.seq;
}

const POOL_ID = 1;

interface SimOsd {
  readonly id: number;
  alive: boolean;
  /** Bumped at every crash: events of an older incarnation are dropped. */
  incarnation: number;
  readonly store: SimStore;
  pgs: Map<string, PgCore>;
  reserver: LocalReserver;
  epoch: number;
  isolatedUntilMs: number;
  bootRequestedMs: number;
  restartAtMs: number;
}

interface AckRecord {
  readonly object: string;
  readonly version: Eversion;
  readonly kind: 'write' | 'delete';
  readonly atMs: number;
}

interface PendingOp {
  readonly reqid: ReqId;
  readonly object: string;
  readonly body: ClientOpBody;
  readonly firstSentMs: number;
  /** For reads: the newest acknowledged write/delete of the object before it was sent. */
  readonly ackedBefore: AckRecord | undefined;
  timer: number;
}

interface SimClient {
  readonly name: string;
  tid: number;
  op: PendingOp | undefined;
  readonly answered: Map<number, Eversion | null>;
}

/** The outcome of one run. */
export interface SimResult {
  readonly params: SimParams;
  readonly violations: string[];
  readonly stats: Record<string, number>;
  readonly trace: string[];
  readonly statesSeen: readonly string[];
}

/** A simulated cluster; `run()` plays the whole schedule. */
export class Cluster {
  readonly p: SimParams;
  private readonly rng: Prng;
  private readonly q = new EventQueue();
  nowMs = 0;
  private readonly map: OsdMap;
  private readonly pool: Pool;
  private readonly mappings: Map<string, PgMapping>[] = [];
  private readonly history: MapHistory;
  readonly osds: SimOsd[] = [];
  private readonly clients: SimClient[] = [];
  readonly ledger = new ContentLedger();
  readonly violations: string[] = [];
  private readonly acks = new Map<string, AckRecord[]>();
  private readonly pendingInc = { down: new Set<number>(), up: new Set<number>(), out: new Set<number>(), in: new Set<number>(), pgTemp: new Map<string, number[]>() };
  private commitScheduled = false;
  /** The newest map the clients have. */
  private clientEpoch = 1;
  /** The OSD lost for good at healing (-1: none). */
  private lostOsd = -1;
  private healedAtMs = Infinity;
  /** Objects the operator gave up on (mark_unfound_lost). */
  private readonly lostObjects = new Set<string>();
  private readonly downSinceMs = new Map<number, number>();
  private readonly unhealthySinceMs = new Map<number, number>();
  private readonly autoOut = new Set<number>();
  private readonly operatorOut = new Set<number>();
  /** Every reply clients received, in order (scenario tests). */
  readonly replyLog: ClientReply[] = [];
  private faults = true;
  readonly trace: string[] = [];
  readonly traceOn: boolean;
  /** Every state-string component any PG reported (coverage). */
  readonly statesSeen = new Set<string>();
  readonly stats = { events: 0, epochs: 0, acks: 0, reads: 0, crashes: 0, partitions: 0, messages: 0, dropped: 0, pgTemps: 0, lastMs: 0, livenessMs: 0, lostOsds: 0, markedLost: 0 };

  constructor(params: SimParams, opts: { trace?: boolean } = {}) {
    this.p = params;
    this.traceOn = opts.trace ?? false;
    this.rng = new Prng(params.seed);
    this.pool = {
      id: POOL_ID, name: 'sim', type: 'replicated', size: params.size, minSize: params.minSize, pgNum: params.pgNum,
      pgpNum: params.pgNum, crushRule: 0, erasureCodeProfile: '', applications: [], hashPsPool: true, createdEpoch: 1, lastChangeEpoch: 1, snapSeq: 0, removedSnaps: [],
    };
    const crush = buildCrushMap(params.osds, [{ name: 'host', alg: 'straw2', size: 1 }, { name: 'root', alg: 'straw2', size: 0 }]);
    const osds = new Map();
    for (let i = 0; i < params.osds; i++) {
      osds.set(i, { ...newOsdInfo(i, `uuid-${i}`), up: true, upFrom: 1, weight: WEIGHT_IN, addr: `osd${i}`, host: `host${i}` });
    }
    this.map = {
      fsid: 'sim', epoch: 1, createdMs: 0, modifiedMs: 0, maxOsd: params.osds, osds, pools: new Map([[POOL_ID, this.pool]]),
      poolMax: POOL_ID, ecProfiles: new Map(), crush, pgTemp: new Map(), flags: new Set(),
    };
    this.mappings[0] = new Map();
    this.recordMappings();
    const mappings = this.mappings;
    this.history = { mappingAt: (pgid, e) => mappings[e]?.get(pgid) };
    for (let i = 0; i < params.osds; i++) {
      this.osds.push({
        id: i, alive: true, incarnation: 0, store: new SimStore(i, this.ledger), pgs: new Map(),
        reserver: new LocalReserver(params.osdMaxBackfills), epoch: 0, isolatedUntilMs: 0, bootRequestedMs: -Infinity, restartAtMs: 0,
      });
    }
    for (let c = 0; c < params.clients; c++) this.clients.push({ name: `client.${c}`, tid: 0, op: undefined, answered: new Map() });
  }

  private log(s: string): void {
    if (this.traceOn) this.trace.push(`${this.nowMs}ms ${s}`);
  }

  private at(delayMs: number, fn: () => void): void {
    this.q.push(this.nowMs + delayMs, fn);
  }

  // ------------------------------------------------------------------ the monitor

  private recordMappings(): void {
    const e = this.map.epoch;
    const up = new Uint8Array(this.p.osds);
    for (const [id, o] of this.map.osds) up[id] = o.up ? 1 : 0;
    const isUp = (o: number): boolean => o >= 0 && o < up.length && up[o] === 1;
    const table = new Map<string, PgMapping>();
    for (let seed = 0; seed < this.p.pgNum; seed++) {
      const pgid = `${POOL_ID}.${seed.toString(16)}`;
      const m = mapPg(this.map, pgid);
      table.set(pgid, {
        epoch: e, up: [...m.up], upPrimary: m.upPrimary, acting: [...m.acting], actingPrimary: m.actingPrimary,
        size: this.pool.size, minSize: this.pool.minSize, isUp,
      });
    }
    this.mappings[e] = table;
  }

  private scheduleCommit(): void {
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    this.at(2, () => this.commitEpoch());
  }

  private commitEpoch(): void {
    this.commitScheduled = false;
    const pi = this.pendingInc;
    const inc = emptyIncremental(this.map.epoch + 1, this.nowMs);
    for (const id of pi.down) if (this.map.osds.get(id)!.up) inc.newDown.push(id);
    for (const id of pi.up) if (!this.map.osds.get(id)!.up && !pi.down.has(id)) inc.newUp.push({ id, addr: `osd${id}`, host: `host${id}` });
    for (const id of pi.out) if (!pi.in.has(id)) inc.newWeight.push({ id, weight: 0, autoOutExempt: false });
    for (const id of pi.in) inc.newWeight.push({ id, weight: WEIGHT_IN, autoOutExempt: false });
    for (const [pgid, osds] of pi.pgTemp) {
      const cur = this.map.pgTemp.get(pgid) ?? [];
      if (cur.length !== osds.length || cur.some((o, i) => o !== osds[i])) inc.newPgTemp.push({ pgid, osds });
    }
    // An OSD marked down in this epoch boots in the next one (Ceph never does both at once).
    const deferredUp = [...pi.up].filter((id) => pi.down.has(id));
    pi.down.clear();
    pi.up.clear();
    pi.out.clear();
    pi.in.clear();
    pi.pgTemp.clear();
    for (const id of deferredUp) pi.up.add(id);
    if (deferredUp.length > 0) this.scheduleCommit();
    if (inc.newDown.length + inc.newUp.length + inc.newWeight.length + inc.newPgTemp.length === 0) return;
    applyIncremental(this.map, inc);
    this.stats.epochs++;
    for (const id of inc.newDown) this.downSinceMs.set(id, this.nowMs);
    for (const u of inc.newUp) this.downSinceMs.delete(u.id);
    this.recordMappings();
    this.log(`mon: epoch ${this.map.epoch} down=[${inc.newDown}] up=[${inc.newUp.map((u) => u.id)}] weight=${JSON.stringify(inc.newWeight.map((w) => [w.id, w.weight]))} pgTemp=${JSON.stringify(inc.newPgTemp)}`);
    const epoch = this.map.epoch;
    // Clients learn maps late (Objecter): ops go to an old primary for a while.
    this.at(1 + this.rng.int(20), () => {
      this.clientEpoch = Math.max(this.clientEpoch, epoch);
    });
    for (const osd of this.osds) {
      if (!osd.alive) continue;
      const inc0 = osd.incarnation;
      this.at(1 + this.rng.int(4), () => {
        if (osd.alive && osd.incarnation === inc0) this.deliverMap(osd, epoch);
      });
    }
  }

  /** The mon's periodic checks: failure detection, down→out, boots. */
  private monTick(): void {
    for (const osd of this.osds) {
      const info = this.map.osds.get(osd.id)!;
      const healthy = osd.alive && osd.isolatedUntilMs <= this.nowMs;
      if (info.up && !healthy) {
        const since = this.unhealthySinceMs.get(osd.id) ?? this.nowMs;
        this.unhealthySinceMs.set(osd.id, since);
        if (this.nowMs - since >= this.p.downDetectMs) {
          this.pendingInc.down.add(osd.id);
          this.scheduleCommit();
        }
      } else this.unhealthySinceMs.delete(osd.id);
      const downSince = this.downSinceMs.get(osd.id);
      if (!healthy && !info.up && info.weight > 0 && downSince !== undefined && this.nowMs - downSince >= this.p.outAfterMs) {
        this.pendingInc.out.add(osd.id);
        this.autoOut.add(osd.id);
        this.scheduleCommit();
      }
      // A live, reachable OSD that the map has down boots (again).
      if (healthy && !info.up && osd.epoch > 0 && this.nowMs - osd.bootRequestedMs > 20) {
        osd.bootRequestedMs = this.nowMs;
        this.pendingInc.up.add(osd.id);
        if (this.autoOut.delete(osd.id)) this.pendingInc.in.add(osd.id);
        this.scheduleCommit();
      }
    }
  }

  // ------------------------------------------------------------------ OSDs

  private deliverMap(osd: SimOsd, epoch: number): void {
    if (epoch <= osd.epoch) return;
    osd.epoch = epoch;
    const table = this.mappings[epoch]!;
    for (const [pgid, m] of table) {
      if (osd.pgs.has(pgid)) continue;
      if (m.up.includes(osd.id) || m.acting.includes(osd.id)) this.createPg(osd, pgid);
    }
    for (const [pgid, pg] of [...osd.pgs]) this.stepPg(osd, pgid, pg, { kind: 'map', epoch });
  }

  private createPg(osd: SimOsd, pgid: string, loaded?: ConstructorParameters<typeof PgCore>[0]['loaded']): PgCore {
    const pg = new PgCore({
      pgid, whoami: osd.id, config: this.p.pg, history: this.history, reserver: osd.reserver,
      ...(loaded !== undefined ? { loaded } : {}),
    });
    pg.tick(this.nowMs);
    osd.pgs.set(pgid, pg);
    return pg;
  }

  private stepPg(osd: SimOsd, pgid: string, pg: PgCore, input: PgInput): void {
    let out: Outbox;
    try {
      out = pg.step(input);
    } catch (err) {
      this.violations.push(`osd.${osd.id} pg ${pgid}: ${(err as Error).stack ?? String(err)} on input ${describeInput(input)}`);
      throw err;
    }
    this.process(osd, pgid, pg, out);
  }

  private process(osd: SimOsd, pgid: string, pg: PgCore, out: Outbox): void {
    const inc = osd.incarnation;
    for (const t of out.transactions) {
      osd.store.submit(pgid, t.txnId, t.ops, pg);
      const delay = this.p.fsyncMaxMs === 0 ? 0 : this.rng.int(this.p.fsyncMaxMs + 1);
      this.at(delay, () => this.syncStore(osd, inc));
    }
    for (const r of out.reads) {
      const result = osd.store.read(pgid, r);
      this.at(this.rng.int(2), () => {
        const cur = osd.pgs.get(pgid);
        if (osd.alive && osd.incarnation === inc && cur === pg) this.stepPg(osd, pgid, pg, { kind: 'readDone', readId: r.readId, result });
      });
    }
    for (const m of out.messages) this.sendOsd(osd, m.to, m.msg);
    for (const r of out.replies) {
      if (r.ok && r.data === undefined && this.p.checkAckRule) this.checkAckDurable(pgid, pg, r.version);
      this.sendReply(osd, r);
    }
    for (const t of out.pgTemp) {
      this.stats.pgTemps++;
      this.at(1 + this.rng.int(3), () => {
        this.log(`mon: pg_temp ${t.pgid} -> [${t.osds}] from osd.${osd.id}`);
        this.pendingInc.pgTemp.set(t.pgid, [...t.osds]);
        this.scheduleCommit();
      });
    }
    if (out.state !== null) {
      this.log(`osd.${osd.id} pg ${pgid}: ${out.state}`);
      for (const part of out.state.split('+')) this.statesSeen.add(part);
    }
    if (out.deleted) {
      osd.pgs.delete(pgid);
      this.log(`osd.${osd.id} pg ${pgid}: purged`);
    }
  }

  /** The write rule itself: when a write is acknowledged, every acting member has its log entry on disk. */
  private checkAckDurable(pgid: string, pg: PgCore, v: Eversion): void {
    for (const o of pg.mapping?.acting ?? []) {
      const meta = this.osds[o]!.store.durableMeta(pgid);
      const has = meta !== undefined && evCmp(meta.log.head, v) >= 0 &&
        (evCmp(meta.log.tail, v) >= 0 || meta.log.entries.some((e) => evCmp(e.version, v) === 0));
      if (!has) this.violations.push(`pg ${pgid}: osd.${pg.whoami} acknowledged ${evStr(v)} before acting osd.${o} persisted it`);
    }
  }

  private syncStore(osd: SimOsd, inc: number): void {
    if (!osd.alive || osd.incarnation !== inc) return;
    const t = osd.store.syncOne();
    if (t === undefined) return;
    const pg = osd.pgs.get(t.pgid);
    // Commits go to the instance that submitted them (a purged PG may have been re-created since).
    if (pg !== undefined && pg === t.owner) this.stepPg(osd, t.pgid, pg, { kind: 'committed', txnId: t.txnId });
  }

  private reachable(a: SimOsd, b: SimOsd): boolean {
    return a.isolatedUntilMs <= this.nowMs && b.isolatedUntilMs <= this.nowMs;
  }

  private sendOsd(from: SimOsd, to: number, msg0: PgMessage): void {
    this.stats.messages++;
    // Peering payloads cross the wire through their codecs (and never alias the sender's state).
    const msg: PgMessage = msg0.kind === 'notify' ? { ...msg0, meta: decodePgMeta(encodePgMeta(msg0.meta)) } : msg0;
    const target = this.osds[to];
    if (target === undefined) return;
    const copies = this.faults && this.rng.chance(this.p.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.faults && this.rng.chance(this.p.dropRate)) {
        this.stats.dropped++;
        continue;
      }
      const fromInc = from.incarnation;
      this.at(1 + this.rng.int(this.p.maxDelayMs), () => {
        if (!from.alive || from.incarnation !== fromInc || !target.alive || !this.reachable(from, target)) return;
        this.deliverMessage(target, from.id, msg);
      });
    }
  }

  private deliverMessage(osd: SimOsd, from: number, msg: PgMessage): void {
    if (this.traceOn) this.log(`deliver osd.${from} -> osd.${osd.id} ${msg.pgid}/${msg.interval} ${describeMessage(msg)}`);
    let pg = osd.pgs.get(msg.pgid);
    if (pg === undefined) {
      if (msg.kind !== 'query' || osd.epoch === 0) return;
      pg = this.createPg(osd, msg.pgid);
      this.stepPg(osd, msg.pgid, pg, { kind: 'map', epoch: osd.epoch });
    }
    this.stepPg(osd, msg.pgid, pg, { kind: 'message', from, msg });
  }

  /** Crashes OSD `id` now; it restarts only when `restartAtMs` passes (settle() heals nothing). */
  crashOsd(id: number, restartAfterMs: number): void {
    const osd = this.osds[id]!;
    this.crash(osd);
    osd.restartAtMs = this.nowMs + restartAfterMs;
  }

  private crash(osd: SimOsd): void {
    this.stats.crashes++;
    osd.alive = false;
    osd.incarnation++;
    osd.store.crash();
    for (const pgid of osd.pgs.keys()) osd.reserver.release(pgid);
    osd.pgs = new Map();
    osd.epoch = 0;
    osd.restartAtMs = this.nowMs + 30 + this.rng.int(400);
    this.log(`osd.${osd.id}: crash (restart at ${osd.restartAtMs}ms)`);
  }

  private restart(osd: SimOsd): void {
    osd.alive = true;
    osd.reserver = new LocalReserver(this.p.osdMaxBackfills);
    for (const l of osd.store.loadAll()) this.createPg(osd, l.pgid, { meta: l.meta, objects: l.objects });
    this.log(`osd.${osd.id}: restart with ${osd.pgs.size} PGs`);
    // A restarted OSD is marked down (if the mon had not noticed) and boots once it has the map.
    if (this.map.osds.get(osd.id)!.up) {
      this.pendingInc.down.add(osd.id);
      this.scheduleCommit();
    }
    const inc = osd.incarnation;
    this.at(1 + this.rng.int(5), () => {
      if (osd.alive && osd.incarnation === inc) this.deliverMap(osd, this.map.epoch);
    });
  }

  private tickOsds(): void {
    for (const osd of this.osds) {
      if (!osd.alive) {
        if (this.nowMs >= osd.restartAtMs && (!this.faults || this.rng.chance(0.5))) this.restart(osd);
        continue;
      }
      if (osd.epoch < this.map.epoch && osd.isolatedUntilMs <= this.nowMs) this.deliverMap(osd, this.map.epoch);
      for (const [pgid, pg] of [...osd.pgs]) {
        if (osd.pgs.get(pgid) !== pg) continue;
        this.process(osd, pgid, pg, pg.tick(this.nowMs));
      }
    }
  }

  private chaos(): void {
    if (!this.faults) return;
    if (this.rng.chance(this.p.reweightRate)) {
      const osd = this.rng.pick(this.osds);
      const info = this.map.osds.get(osd.id)!;
      if (this.operatorOut.delete(osd.id)) this.pendingInc.in.add(osd.id);
      else if (info.up && info.weight > 0) {
        this.operatorOut.add(osd.id);
        this.pendingInc.out.add(osd.id);
      }
      this.log(`operator: osd.${osd.id} ${this.operatorOut.has(osd.id) ? 'out' : 'in'}`);
      this.scheduleCommit();
    }
    for (const osd of this.osds) {
      if (osd.alive && this.rng.chance(this.p.crashRate)) this.crash(osd);
      else if (osd.alive && osd.isolatedUntilMs <= this.nowMs && this.rng.chance(this.p.partitionRate)) {
        osd.isolatedUntilMs = this.nowMs + 30 + this.rng.int(300);
        this.stats.partitions++;
        this.log(`osd.${osd.id}: isolated until ${osd.isolatedUntilMs}ms`);
      }
    }
  }

  // ------------------------------------------------------------------ clients

  private clientTick(c: SimClient, allowNew: boolean): void {
    if (c.op !== undefined || !allowNew) return;
    const object = `obj-${this.rng.int(this.p.objects)}`;
    const roll = this.rng.float();
    const tid = ++c.tid;
    const payload = (): Uint8Array => {
      const tag = new TextEncoder().encode(`${c.name}:${tid}:`);
      const out = new Uint8Array(tag.length + this.rng.int(48));
      out.set(tag);
      for (let i = tag.length; i < out.length; i++) out[i] = this.rng.int(256);
      return out;
    };
    const body: ClientOpBody = roll < 0.5 ? { kind: 'writeFull', data: payload() }
      : roll < 0.62 ? { kind: 'write', offsetBytes: this.rng.int(40), data: payload() }
        : roll < 0.72 ? { kind: 'delete' } : { kind: 'read' };
    const prior = this.acks.get(object);
    c.op = {
      reqid: { client: c.name, tid }, object, body, firstSentMs: this.nowMs,
      ackedBefore: prior === undefined ? undefined : prior.reduce((a, b) => (evCmp(a.version, b.version) >= 0 ? a : b)),
      timer: 0,
    };
    this.sendOp(c);
  }

  private sendOp(c: SimClient): void {
    const op = c.op;
    if (op === undefined) return;
    const pgid = mapObjectToPg(this.pool, op.object);
    const primary = this.mappings[this.clientEpoch]!.get(pgid)!.actingPrimary;
    const timer = ++op.timer;
    this.at(this.p.clientRetryMs, () => {
      if (c.op === op && op.timer === timer) this.sendOp(c);
    });
    if (primary < 0) return;
    const osd = this.osds[primary]!;
    if (this.faults && this.rng.chance(this.p.dropRate)) return;
    this.at(1 + this.rng.int(this.p.maxDelayMs), () => {
      if (!osd.alive) return;
      const pg = osd.pgs.get(pgid);
      if (pg === undefined) {
        this.sendReply(osd, { reqid: op.reqid, ok: false, code: 'ESTALE', message: 'no such PG here' });
        return;
      }
      this.stepPg(osd, pgid, pg, { kind: 'clientOp', op: { reqid: op.reqid, object: op.object, body: op.body } });
    });
  }

  private sendReply(osd: SimOsd, r: ClientReply): void {
    if (this.faults && this.rng.chance(this.p.dropRate)) return;
    const c = this.clients.find((x) => x.name === r.reqid.client);
    assert(c !== undefined, `reply for unknown client ${r.reqid.client}`);
    this.at(1 + this.rng.int(this.p.maxDelayMs), () => this.onReply(c, osd.id, r));
  }

  private onReply(c: SimClient, from: number, r: ClientReply): void {
    this.replyLog.push(r);
    const tid = r.reqid.tid;
    const prev = c.answered.get(tid);
    if (prev !== undefined && r.ok && prev !== null && evCmp(prev, r.version) !== 0 && c.op?.reqid.tid !== tid) {
      if (c.answered.has(tid)) this.violations.push(`${c.name} tid ${tid}: answered ${evStr(prev)} then ${evStr(r.version)} (dedup broken)`);
    }
    const op = c.op;
    if (op === undefined || op.reqid.tid !== tid) return;
    if (!r.ok) {
      const retryable = r.code === 'ESTALE' || r.code === 'E_PG_INCOMPLETE' || r.code === 'ETIMEDOUT' || r.code === 'EBUSY';
      if (r.code === 'EIO' && this.lostObjects.has(op.object)) {
        this.finishOp(c, null); // a write given up with mark_unfound_lost (never acknowledged)
        return;
      }
      if (r.code === 'ENOENT') {
        if (op.body.kind === 'read') this.checkRead(op, null);
        this.finishOp(c, null);
        return;
      }
      if (!retryable) {
        this.violations.push(`${c.name} tid ${tid}: unexpected error ${r.code}: ${r.message}`);
        this.finishOp(c, null);
        return;
      }
      const timer = ++op.timer;
      this.at(r.code === 'ESTALE' ? 5 : 20, () => {
        if (c.op === op && op.timer === timer) this.sendOp(c);
      });
      return;
    }
    this.log(`${c.name} tid ${tid} ${op.body.kind} ${op.object} -> ${evStr(r.version)} from osd.${from}`);
    if (op.body.kind === 'read') {
      this.stats.reads++;
      this.checkRead(op, { version: r.version, data: r.data ?? new Uint8Array(0) });
      this.finishOp(c, null);
      return;
    }
    this.stats.acks++;
    const rec: AckRecord = { object: op.object, version: r.version, kind: op.body.kind === 'delete' ? 'delete' : 'write', atMs: this.nowMs };
    const list = this.acks.get(op.object) ?? [];
    list.push(rec);
    this.acks.set(op.object, list);
    const known = this.ledger.get(op.object, r.version);
    if (known === undefined) this.violations.push(`${c.name} tid ${tid}: acked ${op.object}@${evStr(r.version)} that no store ever applied`);
    this.finishOp(c, r.version);
  }

  private finishOp(c: SimClient, version: Eversion | null): void {
    c.answered.set(c.op!.reqid.tid, version);
    c.op = undefined;
  }

  /** A read must see the newest write acknowledged before it was sent, or something later. */
  private checkRead(op: PendingOp, got: { version: Eversion; data: Uint8Array } | null): void {
    const before = op.ackedBefore;
    if (got === null) {
      if (before === undefined || before.kind === 'delete') return;
      const laterDelete = (this.ledger.deletes.get(op.object) ?? []).some((v) => evCmp(v, before.version) > 0);
      if (!laterDelete) this.violations.push(`read ${op.object}: ENOENT but ${evStr(before.version)} was acknowledged before the read (lost write)`);
      return;
    }
    if (before !== undefined && evCmp(got.version, before.version) < 0) {
      this.violations.push(`read ${op.object}: got ${evStr(got.version)} older than acknowledged ${evStr(before.version)} (lost write)`);
    }
    const want = this.ledger.get(op.object, got.version);
    if (want === undefined || want === 'deleted' || !bytesEqual(want, got.data)) {
      this.violations.push(`read ${op.object}@${evStr(got.version)}: bytes differ from what that version wrote`);
    }
  }

  // ------------------------------------------------------------------ running and checking

  /** Whether every PG is active+clean on its primary and nothing is outstanding. */
  converged(): boolean {
    if (this.clients.some((c) => c.op !== undefined)) return false;
    const live = this.osds.filter((o) => o.id !== this.lostOsd);
    if (live.some((o) => !o.alive || o.epoch !== this.map.epoch || o.store.pending.length > 0)) return false;
    for (const [pgid, m] of this.mappings[this.map.epoch]!) {
      if (m.acting.length !== this.p.size || m.actingPrimary < 0) return false;
      const pg = this.osds[m.actingPrimary]!.pgs.get(pgid);
      if (pg === undefined || pg.stateString !== 'active+clean' || pg.inflight.length > 0 || pg.waitingOps.length > 0) return false;
      for (const o of m.acting) {
        const member = this.osds[o]!.pgs.get(pgid);
        if (member === undefined || evCmp(member.log.head, pg.log.head) !== 0) return false;
      }
      for (const osd of live) {
        if (m.acting.includes(osd.id)) continue;
        if ((osd.store.applied.get(pgid)?.objects.size ?? 0) > 0 || osd.pgs.has(pgid)) return false;
      }
    }
    return true;
  }

  /** Plays the safety phase then the liveness phase; returns the violations found. */
  run(): SimResult {
    const p = this.p;
    for (const osd of this.osds) this.deliverMap(osd, 1);
    const endSafety = p.safetyMs;
    const endAll = p.safetyMs + p.livenessMs;
    let nextTick = 0;
    let converged = false;
    try {
      while (this.violations.length === 0 && this.ledger.violations.length === 0) {
        const ev = this.q.pop();
        const t = ev === undefined ? nextTick : Math.min(ev.at, nextTick);
        if (ev !== undefined && ev.at > nextTick) this.q.push(ev.at, ev.fn);
        this.nowMs = t;
        if (t >= endAll) break;
        if (ev !== undefined && ev.at <= nextTick) {
          this.stats.events++;
          ev.fn();
          continue;
        }
        // Periodic work.
        nextTick = t + p.tickMs;
        if (this.faults && t >= endSafety) this.heal();
        this.chaos();
        this.monTick();
        this.tickOsds();
        if (!this.faults) this.operatorTick();
        for (const c of this.clients) this.clientTick(c, t < endSafety);
        if (!this.faults && this.converged()) {
          converged = true;
          break;
        }
      }
    } catch (err) {
      if (this.violations.length === 0) this.violations.push(`exception: ${(err as Error).stack ?? String(err)}`);
    }
    this.stats.lastMs = this.nowMs;
    this.stats.livenessMs = Math.max(0, this.nowMs - p.safetyMs);
    this.violations.push(...this.ledger.violations);
    if (this.violations.length === 0) {
      if (!converged) this.violations.push(`liveness: not converged after ${p.livenessMs}ms of healing: ${this.describeStates()}`);
      else this.checkFinal();
    }
    return { params: p, violations: this.violations, stats: { ...this.stats }, trace: this.trace, statesSeen: [...this.statesSeen] };
  }

  private heal(): void {
    this.faults = false;
    this.log('--- liveness phase: healing ---');
    for (const osd of this.osds) {
      osd.isolatedUntilMs = 0;
      if (!osd.alive) osd.restartAtMs = this.nowMs;
    }
    for (const id of this.operatorOut) this.pendingInc.in.add(id);
    this.operatorOut.clear();
    this.healedAtMs = this.nowMs;
    if (this.p.loseOsd) {
      const lost = this.rng.pick(this.osds);
      if (lost.alive) this.crash(lost);
      lost.restartAtMs = Infinity;
      this.lostOsd = lost.id;
      this.autoOut.delete(lost.id);
      this.pendingInc.in.delete(lost.id);
      this.pendingInc.down.add(lost.id);
      this.pendingInc.out.add(lost.id);
      this.log(`osd.${lost.id}: lost for good`);
      this.stats.lostOsds++;
    }
    this.scheduleCommit();
  }

  /**
   * After losing an OSD for good, objects whose only copy was there stay unfound; the operator
   * gives up on them (mark_unfound_lost) — but none of them may be an acknowledged write.
   */
  private operatorTick(): void {
    if (this.lostOsd < 0 || this.nowMs < this.healedAtMs + 1000) return;
    for (const [pgid, m] of this.mappings[this.map.epoch]!) {
      const pg = m.actingPrimary >= 0 ? this.osds[m.actingPrimary]!.pgs.get(pgid) : undefined;
      if (pg === undefined || pg.unfound.size === 0) continue;
      for (const o of pg.unfound) {
        if (hasSalvageCopy(pg, o)) continue; // a newer copy will supersede it
        const need = pg.missing.get(o)?.need;
        const acked = (this.acks.get(o) ?? []).find((a) => need !== undefined && evCmp(a.version, need) >= 0);
        // A later (never acknowledged) delete already applied somewhere: deleting honours it.
        const laterDelete = acked !== undefined && (this.ledger.deletes.get(o) ?? []).some((v) => evCmp(v, acked.version) > 0);
        if (acked !== undefined && !laterDelete) this.violations.push(`lost write: ${o}@${evStr(acked.version)} acknowledged, unfound after losing osd.${this.lostOsd}`);
      }
      this.log(`operator: pg ${pgid} mark_unfound_lost [${[...pg.unfound]}]`);
      for (const o of pg.unfound) this.lostObjects.add(o);
      this.stats.markedLost += pg.unfound.size;
      this.stepPg(this.osds[m.actingPrimary]!, pgid, pg, { kind: 'markUnfoundLost' });
    }
  }

  describeStates(): string {
    const parts: string[] = [];
    for (const [pgid, m] of this.mappings[this.map.epoch]!) {
      const pg = m.actingPrimary >= 0 ? this.osds[m.actingPrimary]!.pgs.get(pgid) : undefined;
      const holders = this.osds.filter((o) => (o.store.applied.get(pgid)?.objects.size ?? 0) > 0 || o.pgs.has(pgid)).map((o) => o.id);
      parts.push(`${pgid} up=[${m.up}] acting=[${m.acting}] ${pg?.stateString ?? 'no-primary'} holders=[${holders}]`);
    }
    const pending = this.clients.filter((c) => c.op !== undefined).map((c) => `${c.name}:${c.op!.body.kind} ${c.op!.object}`);
    return `epoch ${this.map.epoch}; ${parts.join('; ')}; pending ops: [${pending.join(', ')}]`;
  }

  /** After convergence: size identical copies, every acknowledged write present. */
  private checkFinal(): void {
    const table = this.mappings[this.map.epoch]!;
    for (const [pgid, m] of table) {
      const primary = this.osds[m.actingPrimary]!;
      const ref = primary.store.applied.get(pgid)?.objects ?? new Map();
      for (const o of m.acting) {
        const objs = this.osds[o]!.store.applied.get(pgid)?.objects ?? new Map();
        const names = new Set([...ref.keys(), ...objs.keys()]);
        for (const n of names) {
          const a = ref.get(n);
          const b = objs.get(n);
          if (a === undefined || b === undefined || evCmp(a.version, b.version) !== 0 || !bytesEqual(a.data, b.data)) {
            this.violations.push(`pg ${pgid}: ${n} differs between osd.${primary.id} (${a ? evStr(a.version) : 'absent'}) and osd.${o} (${b ? evStr(b.version) : 'absent'})`);
          }
        }
      }
      for (const [n, obj] of ref) {
        const want = this.ledger.get(n, obj.version);
        if (want === undefined || want === 'deleted' || !bytesEqual(want, obj.data)) this.violations.push(`pg ${pgid}: ${n}@${evStr(obj.version)} has bytes no write produced`);
      }
    }
    for (const [object, list] of this.acks) {
      const pgid = mapObjectToPg(this.pool, object);
      const m = table.get(pgid)!;
      const latest = list.reduce((a, b) => (evCmp(a.version, b.version) >= 0 ? a : b));
      const final = this.osds[m.actingPrimary]!.store.applied.get(pgid)?.objects.get(object);
      if (latest.kind === 'write') {
        if (final === undefined) {
          const laterDelete = (this.ledger.deletes.get(object) ?? []).some((v) => evCmp(v, latest.version) > 0);
          if (!laterDelete) this.violations.push(`lost write: ${object}@${evStr(latest.version)} acknowledged, object gone`);
        } else if (evCmp(final.version, latest.version) < 0) {
          this.violations.push(`lost write: ${object}@${evStr(latest.version)} acknowledged, copies hold ${evStr(final.version)}`);
        }
      } else if (final !== undefined && evCmp(final.version, latest.version) < 0) {
        this.violations.push(`lost delete: ${object} deleted at ${evStr(latest.version)}, copies hold ${evStr(final.version)}`);
      }
    }
  }

  // ------------------------------------------------------------------ scenario helpers (tests)

  /** Runs the clock without faults until converged or `limitMs` passes (`untilConverged` false: the whole time). */
  settle(limitMs: number, untilConverged = true): boolean {
    this.faults = false;
    const end = this.nowMs + limitMs;
    let nextTick = this.nowMs;
    while (this.nowMs < end) {
      const ev = this.q.pop();
      if (ev !== undefined && ev.at <= nextTick) {
        this.nowMs = ev.at;
        ev.fn();
        continue;
      }
      if (ev !== undefined) this.q.push(ev.at, ev.fn);
      this.nowMs = nextTick;
      nextTick += this.p.tickMs;
      this.monTick();
      this.tickOsds();
      if (untilConverged && this.converged()) return true;
    }
    return this.converged();
  }

  /** The PG core of `pgid`'s current primary. */
  primaryOf(pgid: string): PgCore | undefined {
    const m = this.mappings[this.map.epoch]!.get(pgid)!;
    return this.osds[m.actingPrimary]?.pgs.get(pgid);
  }

  /** Acting set of `pgid` now. */
  actingOf(pgid: string): readonly number[] {
    return this.mappings[this.map.epoch]!.get(pgid)!.acting;
  }

  /** Feeds an input to `pgid` on `osd` (e.g. scrub, repair, a client op). */
  inject(osdId: number, pgid: string, input: PgInput): void {
    const osd = this.osds[osdId]!;
    const pg = osd.pgs.get(pgid);
    assert(pg !== undefined, `osd.${osdId} has no ${pgid}`);
    this.stepPg(osd, pgid, pg, input);
  }

  /** Starts one client write of `object` and settles. */
  write(object: string, data: Uint8Array): void {
    const c = this.clients[0]!;
    assert(c.op === undefined, 'client idle');
    const tid = ++c.tid;
    c.op = { reqid: { client: c.name, tid }, object, body: { kind: 'writeFull', data }, firstSentMs: this.nowMs, ackedBefore: undefined, timer: 0 };
    this.sendOp(c);
  }
}

function describeMessage(msg: PgMessage): string {
  switch (msg.kind) {
    case 'repop': return `repop ${msg.entry.op} ${msg.entry.object}@${evStr(msg.entry.version)} prev ${evStr(msg.prev)} data=${msg.applyData}`;
    case 'repopAck': return `repopAck ${evStr(msg.version)}`;
    case 'push': return `push(${msg.mode}) ${msg.object}@${evStr(msg.version)}${msg.data === null ? ' remove' : ''}`;
    case 'pushAck': return `pushAck(${msg.mode}) ${msg.object}`;
    case 'pull': return `pull ${msg.object}@${evStr(msg.need)}`;
    case 'pullReply': return `pullReply ${msg.object}@${msg.version === null ? 'none' : evStr(msg.version)}`;
    case 'backfillScan': return `backfillScan (${msg.after}, ${msg.upTo ?? 'MAX'}]`;
    case 'backfillScanReply': return `backfillScanReply after ${msg.after}: ${msg.objects.map(([n, v]) => `${n}@${evStr(v)}`).join(',')}`;
    case 'activate': return `activate head ${evStr(msg.log.head)} backfill=${msg.backfill}`;
    case 'notify': return `notify lu ${evStr(msg.meta.info.lastUpdate)} les ${msg.meta.info.lastEpochStarted} lb ${msg.meta.info.lastBackfill}`;
    default: return msg.kind;
  }
}

function describeInput(input: PgInput): string {
  switch (input.kind) {
    case 'map': return `map ${input.epoch}`;
    case 'message': return `message ${input.msg.kind} from osd.${input.from}`;
    case 'clientOp': return `clientOp ${input.op.body.kind} ${input.op.object}`;
    case 'committed': return `committed ${input.txnId}`;
    case 'readDone': return `readDone ${input.readId}`;
    case 'scrub': return 'scrub';
    case 'repair': return 'repair';
    case 'markUnfoundLost': return 'markUnfoundLost';
    case 'objectError': return `objectError ${input.object}`;
    default: return assertNever(input, 'input');
  }
}

/** Runs one seed. */
export function runSeed(seed: number, opts: { trace?: boolean; overrides?: Partial<SimParams> } = {}): SimResult {
  const c = new Cluster(deriveParams(seed, opts.overrides ?? {}), { trace: opts.trace ?? false });
  return c.run();
}

/** The failure report: seed, parameters, violations, the command to replay it. */
export function formatFailure(r: SimResult): string {
  const { pg, ...rest } = r.params;
  return [
    `PG simulation seed ${r.params.seed} failed:`,
    ...r.violations.slice(0, 10).map((v) => `  - ${v}`),
    `params: ${JSON.stringify(rest)} pg: ${JSON.stringify(pg)}`,
    `stats: ${JSON.stringify(r.stats)}`,
    `reproduce: ASPEN_SEED=${r.params.seed} npx vitest run osd/test/sim   (ASPEN_TRACE=1 prints the event trace)`,
  ].join('\n');
}
