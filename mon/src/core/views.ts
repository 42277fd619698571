/**
 * Read-only views of the monitor state, shaped as Ceph's JSON output (`ceph -s -f json`,
 * `ceph health detail`, `ceph osd tree`, `ceph osd dump`, `ceph pg dump`) so operators'
 * scripts carry over. Pure functions of the state plus the live quorum.
 */
import { AspenError } from '@aspen/shared';
import type { OsdInfo, OsdMap, Pool } from '@aspen/shared/osdmap/types.ts';
import { WEIGHT_IN } from '@aspen/shared/osdmap/types.ts';
import { formatRemovedSnaps } from '@aspen/shared/osdmap/snaps.ts';
import type { MonState, PgStat } from './state.ts';
import * as crushOps from './crush-ops.ts';

/** Live Raft facts the views need (not part of the replicated state). */
export interface QuorumInfo {
  leader: string | null;
  /** Monitors the leader has heard from recently (itself included), sorted. */
  quorum: string[];
  term: number;
  commitIndex: number;
}

export type HealthStatus = 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR';

/** One health check (Ceph health check codes: MON_DOWN, OSD_DOWN, PG_DEGRADED …). */
export interface HealthCheck {
  severity: Exclude<HealthStatus, 'HEALTH_OK'>;
  summary: string;
  detail: string[];
}

/** All PG ids of a pool, as Ceph numbers them (`pool.seedhex`). */
export function poolPgIds(pool: Pool): string[] {
  const out: string[] = [];
  for (let s = 0; s < pool.pgNum; s++) out.push(`${pool.id}.${s.toString(16)}`);
  return out;
}

/** The PG state to show: the primary's report if it is current, else `unknown`. */
function pgState(state: MonState, pgid: string): string {
  return state.pgStats.get(pgid)?.state ?? 'unknown';
}

/** PG counts by state string, as `pgs_by_state`. */
export function pgsByState(state: MonState): { state_name: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const pool of state.osdMap.pools.values()) {
    for (const pgid of poolPgIds(pool)) {
      const s = pgState(state, pgid);
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
  }
  return [...counts].map(([state_name, count]) => ({ state_name, count })).sort((a, b) => b.count - a.count || a.state_name.localeCompare(b.state_name));
}

/** Detail lines kept per health check (Ceph also truncates long detail lists). */
export const HEALTH_DETAIL_LINES_MAX = 50;

function capDetail(lines: string[]): string[] {
  if (lines.length <= HEALTH_DETAIL_LINES_MAX) return lines;
  return [...lines.slice(0, HEALTH_DETAIL_LINES_MAX), `... and ${lines.length - HEALTH_DETAIL_LINES_MAX} more`];
}

/** Ceph-style health checks. */
export function healthChecks(state: MonState, q: QuorumInfo): Record<string, HealthCheck> {
  const checks: Record<string, HealthCheck> = {};
  const map = state.osdMap;
  const down = state.monMap.mons.filter((m) => !q.quorum.includes(m.name));
  if (down.length > 0) {
    checks.MON_DOWN = {
      severity: 'HEALTH_WARN',
      summary: `${down.length}/${state.monMap.mons.length} mons down, quorum ${q.quorum.join(',')}`,
      detail: down.map((m) => `mon.${m.name} (rank ${state.monMap.mons.indexOf(m)}) addr ${m.addr} is down (out of quorum)`),
    };
  }
  const osds = [...map.osds.values()].filter((o) => o.exists);
  const downOsds = osds.filter((o) => !o.up && o.weight > 0);
  if (downOsds.length > 0) {
    checks.OSD_DOWN = { severity: 'HEALTH_WARN', summary: `${downOsds.length} osds down`, detail: downOsds.map((o) => `osd.${o.id} (host ${o.host || '?'}) is down`) };
  }
  // As Ceph's OSDMap::get_full_osd_counts: only up and in OSDs count.
  const full = osds.filter((o) => o.up && o.weight > 0 && o.full);
  if (full.length > 0) checks.OSD_FULL = { severity: 'HEALTH_ERR', summary: `${full.length} full osd(s)`, detail: full.map((o) => `osd.${o.id} is full`) };
  const nearfull = osds.filter((o) => o.up && o.weight > 0 && !o.full && o.nearfull);
  if (nearfull.length > 0) checks.OSD_NEARFULL = { severity: 'HEALTH_WARN', summary: `${nearfull.length} nearfull osd(s)`, detail: nearfull.map((o) => `osd.${o.id} is near full`) };
  if (map.flags.size > 0) {
    checks.OSDMAP_FLAGS = { severity: 'HEALTH_WARN', summary: `${[...map.flags].sort().join(',')} flag(s) set`, detail: [] };
  }
  const inactive: string[] = [];
  const unknown: string[] = [];
  const degraded: string[] = [];
  const inconsistent: string[] = [];
  for (const pool of map.pools.values()) {
    for (const pgid of poolPgIds(pool)) {
      const s = pgState(state, pgid);
      if (s === 'unknown') unknown.push(pgid);
      else if (!s.split('+').includes('active')) inactive.push(`pg ${pgid} is ${s}`);
      if (s.includes('degraded') || s.includes('undersized')) degraded.push(`pg ${pgid} is ${s}`);
      if (s.includes('inconsistent')) inconsistent.push(`pg ${pgid} is ${s}`);
    }
  }
  if (inactive.length + unknown.length > 0) {
    const parts = [];
    if (inactive.length > 0) parts.push(`${inactive.length} pgs inactive`);
    if (unknown.length > 0) parts.push(`${unknown.length} pgs unknown`);
    checks.PG_AVAILABILITY = { severity: 'HEALTH_WARN', summary: `Reduced data availability: ${parts.join(', ')}`, detail: [...inactive, ...unknown.map((p) => `pg ${p} is unknown`)] };
  }
  if (degraded.length > 0) checks.PG_DEGRADED = { severity: 'HEALTH_WARN', summary: `Degraded data redundancy: ${degraded.length} pgs degraded`, detail: degraded };
  if (inconsistent.length > 0) checks.PG_DAMAGED = { severity: 'HEALTH_ERR', summary: `Possible data damage: ${inconsistent.length} pgs inconsistent`, detail: inconsistent };
  const noRedundancy = [...map.pools.values()].filter((p) => p.type === 'replicated' && p.size === 1);
  if (noRedundancy.length > 0) {
    checks.POOL_NO_REDUNDANCY = { severity: 'HEALTH_WARN', summary: `${noRedundancy.length} pool(s) have no replicas configured`, detail: noRedundancy.map((p) => `pool '${p.name}' has no replicas configured`) };
  }
  const maxSize = Math.max(0, ...[...map.pools.values()].map((p) => p.size));
  if (map.pools.size > 0 && osds.length < maxSize) {
    checks.TOO_FEW_OSDS = { severity: 'HEALTH_WARN', summary: `OSD count ${osds.length} < largest pool size ${maxSize}`, detail: [] };
  }
  for (const c of Object.values(checks)) c.detail = capDetail(c.detail);
  return checks;
}

/** Overall health status: the worst check's severity. */
export function healthStatus(checks: Record<string, HealthCheck>): HealthStatus {
  const sev = Object.values(checks).map((c) => c.severity);
  if (sev.includes('HEALTH_ERR')) return 'HEALTH_ERR';
  return sev.length > 0 ? 'HEALTH_WARN' : 'HEALTH_OK';
}

/** Totals over reported PG stats (primaries only report each PG once). */
function usage(state: MonState): { numObjects: number; dataBytes: number } {
  let numObjects = 0;
  let dataBytes = 0;
  for (const s of state.pgStats.values()) {
    numObjects += s.numObjects;
    dataBytes += s.numBytes;
  }
  return { numObjects, dataBytes };
}

/** `ceph -s -f json` equivalent. */
export function statusView(state: MonState, q: QuorumInfo): Record<string, unknown> {
  const checks = healthChecks(state, q);
  const map = state.osdMap;
  const osds = [...map.osds.values()].filter((o) => o.exists);
  const { numObjects, dataBytes } = usage(state);
  let recoveryMissing = 0;
  for (const s of state.pgStats.values()) recoveryMissing += s.recoveryObjectsMissing;
  let numPgs = 0;
  for (const p of map.pools.values()) numPgs += p.pgNum;
  return {
    fsid: state.fsid,
    health: { status: healthStatus(checks), checks: Object.fromEntries(Object.entries(checks).map(([k, c]) => [k, { severity: c.severity, summary: { message: c.summary } }])) },
    election_epoch: q.term,
    quorum_names: q.quorum,
    quorum_leader_name: q.leader,
    monmap: { epoch: state.monMap.epoch, num_mons: state.monMap.mons.length, mons: state.monMap.mons },
    osdmap: { epoch: map.epoch, num_osds: osds.length, num_up_osds: osds.filter((o) => o.up).length, num_in_osds: osds.filter((o) => o.weight > 0).length, flags: [...map.flags].sort() },
    pgmap: { pgs_by_state: pgsByState(state), num_pgs: numPgs, num_pools: map.pools.size, num_objects: numObjects, data_bytes: dataBytes, recovery_objects_missing: recoveryMissing },
  };
}

/** `ceph health detail -f json` equivalent. */
export function healthView(state: MonState, q: QuorumInfo, detail: boolean): Record<string, unknown> {
  const checks = healthChecks(state, q);
  return {
    status: healthStatus(checks),
    checks: Object.fromEntries(Object.entries(checks).map(([k, c]) => [k, {
      severity: c.severity, summary: { message: c.summary }, ...(detail ? { detail: c.detail.map((message) => ({ message })) } : {}),
    }])),
  };
}

/** An OSD's state names as Ceph's `osd dump` lists them (`exists`, `up`, `full`, `nearfull`). */
export function osdStateNames(o: OsdInfo): string[] {
  const names: string[] = [];
  if (o.exists) names.push('exists');
  if (o.up) names.push('up');
  if (o.full) names.push('full');
  if (o.nearfull) names.push('nearfull');
  return names;
}

/** `ceph osd dump -f json` equivalent. */
export function osdDumpView(map: OsdMap): Record<string, unknown> {
  return {
    epoch: map.epoch, fsid: map.fsid, created_ms: map.createdMs, modified_ms: map.modifiedMs, flags: [...map.flags].sort().join(','),
    max_osd: map.maxOsd, pool_max: map.poolMax,
    pools: [...map.pools.values()].map(poolView),
    osds: [...map.osds.values()].map((o) => ({
      osd: o.id, uuid: o.uuid, up: o.up ? 1 : 0, in: o.weight > 0 ? 1 : 0, weight: o.weight / WEIGHT_IN, addr: o.addr, host: o.host,
      up_from: o.upFrom, down_at: o.downAt, state: osdStateNames(o),
    })),
    pg_temp: [...map.pgTemp].map(([pgid, osds]) => ({ pgid, osds })),
    erasure_code_profiles: Object.fromEntries([...map.ecProfiles].map(([n, p]) => [n, p])),
  };
}

/** A pool as `ceph osd pool ls detail -f json` shows it. */
export function poolView(p: Pool): Record<string, unknown> {
  return {
    pool: p.id, pool_name: p.name, type: p.type, size: p.size, min_size: p.minSize, pg_num: p.pgNum, pgp_num: p.pgpNum,
    crush_rule: p.crushRule, erasure_code_profile: p.erasureCodeProfile, application_metadata: Object.fromEntries(p.applications.map((a) => [a, {}])),
    flags_names: [...(p.hashPsPool ? ['hashpspool'] : []), ...(p.snapSeq > 0 ? ['selfmanaged_snaps'] : [])].join(','),
    create_epoch: p.createdEpoch, last_change: p.lastChangeEpoch, snap_seq: p.snapSeq, removed_snaps: formatRemovedSnaps(p.removedSnaps),
  };
}

/** `ceph osd pool get POOL VAR` equivalent. @throws AspenError ENOENT / EINVAL */
export function poolGetView(map: OsdMap, name: string, variable: string): Record<string, unknown> {
  const pool = [...map.pools.values()].find((p) => p.name === name);
  if (pool === undefined) throw new AspenError('ENOENT', `unrecognized pool '${name}'`);
  const all: Record<string, unknown> = {
    size: pool.size, min_size: pool.minSize, pg_num: pool.pgNum, pgp_num: pool.pgpNum,
    crush_rule: crushOps.ruleName(map.crush, pool.crushRule) ?? pool.crushRule, erasure_code_profile: pool.erasureCodeProfile, type: pool.type,
    snap_seq: pool.snapSeq, removed_snaps: formatRemovedSnaps(pool.removedSnaps),
  };
  if (variable === 'all') return { pool: name, ...all };
  if (!(variable in all)) throw new AspenError('EINVAL', `unknown pool variable '${variable}' (one of: ${Object.keys(all).join(', ')}, all)`);
  return { pool: name, [variable]: all[variable] };
}

/** One PG row for `pg dump`. */
export interface PgRow {
  pgid: string;
  state: string;
  up: number[];
  acting: number[];
  up_primary: number;
  acting_primary: number;
  num_objects: number;
  num_bytes: number;
  reported_epoch: number;
  last_scrub_ms: number;
  last_deep_scrub_ms: number;
}

/** `ceph pg dump pgs -f json` equivalent: every PG with its mapping at the current epoch. */
export function pgDumpView(state: MonState, mapPg: (pgid: string) => { up: readonly number[]; upPrimary: number; acting: readonly number[]; actingPrimary: number }): { pg_stats: PgRow[] } {
  const rows: PgRow[] = [];
  for (const pool of state.osdMap.pools.values()) {
    for (const pgid of poolPgIds(pool)) {
      const s: PgStat | undefined = state.pgStats.get(pgid);
      const m = mapPg(pgid);
      rows.push({
        pgid, state: s?.state ?? 'unknown', up: [...m.up], acting: [...m.acting], up_primary: m.upPrimary, acting_primary: m.actingPrimary,
        num_objects: s?.numObjects ?? 0, num_bytes: s?.numBytes ?? 0, reported_epoch: s?.reportedEpoch ?? 0,
        last_scrub_ms: s?.lastScrubMs ?? 0, last_deep_scrub_ms: s?.lastDeepScrubMs ?? 0,
      });
    }
  }
  return { pg_stats: rows };
}
