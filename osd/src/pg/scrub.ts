/**
 * Scrub, deep scrub and repair (Ceph src/osd/scrubber/pg_scrubber.cc, scrub_backend.cc
 * `select_auth_object`, `compare_obj_in_maps`; PrimaryLogPG repair through recovery).
 *
 * The primary of an active+clean PG holds writes, collects every acting member's object
 * list with metadata (version, size, stored data crc; deep scrub also re-reads the data and
 * recomputes the crc) and compares them. A copy is valid when its data matches its stored
 * crc (deep scrub); the authoritative copy is the one most valid copies agree on, the
 * primary's winning ties. Objects whose copies differ make the PG `inconsistent`; `repair`
 * marks the bad copies missing at the authoritative version (pulling it to the primary from
 * the authoritative member when the primary's copy is bad) and lets recovery rewrite them,
 * then scrubs again.
 *
 * Erasure-coded PGs: shards differ by design, so copies are compared by version and logical
 * size, and each shard's bytes against its own recorded crc and block checksums (a flipped
 * byte reads as EIO); a deep scrub's primary also re-encodes every object from all its
 * shards and names the shards that disagree with the parity (`ecBadShards`); repair rebuilds
 * the bad shards from the others through recovery.
 *
 * Simplification: the whole PG is scrubbed as one chunk (Ceph scrubs ranges of objects).
 */
import { assert } from '@aspen/shared';
import type { PgCore } from './pg.ts';
import { evStr, shardOf, type Eversion, type ScrubObject } from './types.ts';

/** A scrub in progress on the primary. */
export interface ScrubState {
  readonly scrubId: number;
  readonly deep: boolean;
  readonly maps: Map<number, readonly ScrubObject[]>;
  readonly repairAfter: boolean;
  sentAtMs: number;
}

/** One object whose copies disagree. `authOsd` null: the object should not exist. */
export interface Inconsistency {
  readonly authOsd: number | null;
  readonly authVersion: Eversion | null;
  /** Members whose copy differs from the authoritative one or fails its checksum. */
  readonly bad: readonly number[];
}

/**
 * Compares scrub maps (Ceph `ScrubBackend::compare_smaps`): per object, each member's copy
 * is keyed by (version, size) — with `deep`, also by the crc recomputed from its bytes — or
 * absent. A copy that failed its read (EIO) or whose recomputed crc differs from a recorded
 * whole-object crc is invalid. The authoritative key is the majority's (ties: the
 * primary's). Returns the objects with bad copies.
 */
export function compareScrubMaps(
  maps: ReadonlyMap<number, readonly ScrubObject[]>, primary: number, deep: boolean, ec = false,
): Map<string, Inconsistency> {
  assert(maps.has(primary), 'the primary scrubbed itself');
  const names = new Set<string>();
  const byOsd = new Map<number, Map<string, ScrubObject>>();
  for (const [osd, list] of maps) {
    byOsd.set(osd, new Map(list.map((o) => [o.object, o])));
    for (const o of list) names.add(o.object);
  }
  const out = new Map<string, Inconsistency>();
  const osds = [...maps.keys()].sort((a, b) => a - b);
  for (const name of [...names].sort()) {
    const keyOf = new Map<number, string | null>(); // null: invalid copy
    const parityBad = new Set(ec ? (byOsd.get(primary)!.get(name)?.ecBadShards ?? []) : []);
    for (const osd of osds) {
      const o = byOsd.get(osd)!.get(name);
      if (o === undefined) keyOf.set(osd, 'absent');
      else if (parityBad.has(shardOf(osd))) keyOf.set(osd, null);
      else if (o.readError === true || (deep && o.dataCrc !== undefined && o.storedCrc !== null && o.dataCrc !== o.storedCrc)) keyOf.set(osd, null);
      // EC shards hold different bytes: each is checked against its own recorded crc only.
      else keyOf.set(osd, `${evStr(o.version)}/${o.sizeBytes}${deep && !ec && o.dataCrc !== undefined ? `/${o.dataCrc}` : ''}`);
    }
    const votes = new Map<string, number>();
    for (const k of keyOf.values()) if (k !== null) votes.set(k, (votes.get(k) ?? 0) + 1);
    if (votes.size === 1 && [...keyOf.values()].every((k) => k !== null)) continue;
    let authKey: string | null = null;
    let best = 0;
    const primaryKey = keyOf.get(primary) ?? null;
    for (const [k, n] of votes) {
      if (n > best || (n === best && k === primaryKey)) {
        authKey = k;
        best = n;
      }
    }
    const bad = osds.filter((o) => keyOf.get(o) !== authKey);
    if (authKey === null) {
      out.set(name, { authOsd: null, authVersion: null, bad: [] }); // no valid copy anywhere
      continue;
    }
    const authOsd = authKey === 'absent' ? null : osds.find((o) => keyOf.get(o) === authKey)!;
    const authVersion = authOsd === null ? null : byOsd.get(authOsd)!.get(name)!.version;
    out.set(name, { authOsd, authVersion, bad });
  }
  assert(out.size <= names.size, 'at most one finding per object');
  return out;
}

/** Input `scrub`: run now if the PG is clean and idle, otherwise when it becomes so. */
export function requestScrub(pg: PgCore, deep: boolean): void {
  if (pg.role !== 'primary') return;
  pg.scrubWanted = { deep: deep || (pg.scrubWanted?.deep ?? false), repair: pg.scrubWanted?.repair ?? false };
  maybeStartScrub(pg);
}

/** Input `repair`: scrub deeply, then repair what differs (Ceph `pg repair`). */
export function repairPg(pg: PgCore): void {
  if (pg.role !== 'primary') return;
  if (pg.inconsistent.size > 0) {
    applyRepair(pg);
    return;
  }
  pg.scrubWanted = { deep: true, repair: true };
  maybeStartScrub(pg);
}

/** Starts a wanted scrub when nothing else is going on. */
export function maybeStartScrub(pg: PgCore): void {
  if (pg.scrubWanted === null || pg.scrub !== undefined || pg.phase !== 'active') return;
  if (pg.inflight.length > 0 || pg.recovering.size > 0 || pg.missing.size > 0 || pg.backfill.size > 0) return;
  for (const pm of pg.peerMissing.values()) if (pm.size > 0) return;
  const { deep, repair: repairAfter } = pg.scrubWanted;
  pg.scrubWanted = null;
  pg.scrub = { scrubId: pg.nextScrubId++, deep, maps: new Map(), repairAfter, sentAtMs: pg.nowMs };
  assert(pg.scrub.maps.size === 0 && pg.inflight.length === 0, 'a scrub starts with no maps and no writes in flight');
  for (const p of pg.actingPeers()) pg.send(p, { kind: 'scrubReq', deep, scrubId: pg.scrub.scrubId });
  pg.list(deep, { kind: 'scrub', interval: pg.interval, scrubId: pg.scrub.scrubId, to: pg.whoami });
}

/** Replica: build its scrub map. */
export function onScrubReq(pg: PgCore, from: number, deep: boolean, scrubId: number): void {
  if (pg.role !== 'replica' || !pg.activated || from !== pg.mapping!.actingPrimary) return;
  pg.list(deep, { kind: 'scrub', interval: pg.interval, scrubId, to: from });
}

/** A local list for scrub finished: the primary keeps it, a replica sends it. */
export function onScrubListDone(pg: PgCore, scrubId: number, to: number, objects: readonly ScrubObject[]): void {
  if (to === pg.whoami) onScrubMap(pg, pg.whoami, scrubId, objects);
  else pg.send(to, { kind: 'scrubMap', scrubId, objects });
}

/** Primary: a member's scrub map; compare once all are in. */
export function onScrubMap(pg: PgCore, from: number, scrubId: number, objects: readonly ScrubObject[]): void {
  const s = pg.scrub;
  if (pg.role !== 'primary' || s === undefined || s.scrubId !== scrubId) return;
  assert(pg.actingPeers().includes(from) || from === pg.whoami, 'scrub maps come from acting members');
  s.maps.set(from, objects);
  const members = [pg.whoami, ...pg.actingPeers()];
  if (!members.every((o) => s.maps.has(o))) return;
  pg.scrub = undefined;
  pg.inconsistent = compareScrubMaps(s.maps, pg.whoami, s.deep, pg.ecK > 0);
  if (s.repairAfter && pg.inconsistent.size > 0) applyRepair(pg);
}

/** Resends scrub requests that went unanswered. */
export function retryScrub(pg: PgCore): void {
  const s = pg.scrub;
  if (s === undefined || pg.nowMs - s.sentAtMs < pg.cfg.peerRetryMs) return;
  s.sentAtMs = pg.nowMs;
  for (const p of pg.actingPeers()) if (!s.maps.has(p)) pg.send(p, { kind: 'scrubReq', deep: s.deep, scrubId: s.scrubId });
}

/** Marks bad copies missing at the authoritative version; recovery rewrites them. */
function applyRepair(pg: PgCore): void {
  const removals: string[] = [];
  for (const [name, inc] of pg.inconsistent) {
    if (inc.authVersion === null || inc.authOsd === null) {
      for (const o of inc.bad) {
        if (o === pg.whoami) removals.push(name);
        else pg.send(o, { kind: 'push', object: name, version: pg.log.head, data: null, mode: 'repair' });
      }
      continue;
    }
    const item = { need: inc.authVersion, have: inc.authVersion };
    for (const o of inc.bad) {
      if (o === pg.whoami) {
        pg.missing.set(name, item);
        pg.sourceHint.set(name, inc.authOsd);
      } else {
        pg.peerMissing.get(o)?.set(name, item);
        pg.repairing.add(name);
      }
    }
  }
  if (removals.length > 0) {
    for (const n of removals) pg.objects.delete(n);
    pg.persist(removals.map((object) => ({ kind: 'remove', object, version: null })), { kind: 'none' });
  } else if (pg.missing.size > 0) {
    pg.persist([], { kind: 'none' });
  }
  pg.inconsistent = new Map();
  pg.scrubWanted = { deep: true, repair: false };
}
