/**
 * Read-only monitor commands (`status`, `osd tree`, `pg dump` …): pure functions of the
 * applied state, served after a ReadIndex so they are linearizable.
 */
import { AspenError, assertNever } from '@aspen/shared';
import { crushWeightToFloat } from '@aspen/shared/crush/types.ts';
import { parseReadCommand } from './command.ts';
import { executeS3Read } from './s3-users.ts';
import { executeFsRead } from './fs-commands.ts';
import type { MonState } from './state.ts';
import { healthView, osdDumpView, pgDumpView, poolGetView, poolView, statusView, type QuorumInfo } from './views.ts';
import { mapObjectToPg, mapPg } from '@aspen/shared/osdmap/map-placement.ts';

/** A read's reply: a status line and structured data. */
export interface ReadResult {
  message: string;
  data: unknown;
}

/** One row of `osd tree` (Ceph's `nodes` array). */
export interface OsdTreeNode {
  id: number;
  name: string;
  type: string;
  type_id: number;
  crush_weight: number;
  children?: number[];
  status?: 'up' | 'down' | 'destroyed';
  reweight?: number;
  device_class?: string;
}

/** `ceph osd tree -f json` equivalent: buckets and OSDs, plus `stray` OSDs not in CRUSH. */
export function osdTreeView(state: MonState): { nodes: OsdTreeNode[]; stray: OsdTreeNode[] } {
  const map = state.osdMap;
  const crush = map.crush;
  const typeName = (id: number): string => crush.types.find((t) => t.id === id)?.name ?? `type${id}`;
  const nodes: OsdTreeNode[] = [];
  const seen = new Set<number>();
  const weights = new Map<number, number>();
  for (const b of crush.buckets) for (const it of b.items) if (!b.shadowOf) weights.set(it.id, it.weight);
  const osdNode = (id: number): OsdTreeNode => {
    const o = map.osds.get(id);
    const dev = crush.devices.find((d) => d.id === id);
    return {
      id, name: `osd.${id}`, type: 'osd', type_id: 0, crush_weight: crushWeightToFloat(weights.get(id) ?? 0),
      status: o === undefined || !o.exists ? 'destroyed' : o.up ? 'up' : 'down', reweight: (o?.weight ?? 0) / 0x10000,
      ...(dev?.deviceClass ? { device_class: dev.deviceClass } : {}),
    };
  };
  const visit = (id: number): void => {
    if (seen.has(id)) return;
    seen.add(id);
    if (id >= 0) {
      nodes.push(osdNode(id));
      return;
    }
    const b = crush.buckets.find((x) => x.id === id);
    if (!b) return;
    let total = 0;
    for (const it of b.items) total += it.weight;
    nodes.push({ id, name: b.name, type: typeName(b.typeId), type_id: b.typeId, crush_weight: crushWeightToFloat(total), children: b.items.map((i) => i.id) });
    for (const it of b.items) visit(it.id);
  };
  const childIds = new Set(crush.buckets.flatMap((b) => b.items.map((i) => i.id)));
  for (const b of crush.buckets) if (!b.shadowOf && !childIds.has(b.id)) visit(b.id);
  const stray = [...map.osds.values()].filter((o) => o.exists && !seen.has(o.id)).map((o) => osdNode(o.id));
  return { nodes, stray };
}

/**
 * Executes a read command against `state`.
 * @throws AspenError EINVAL for a malformed command, ENOENT for unknown pools/PGs/keys.
 */
export function executeRead(state: MonState, raw: unknown, q: QuorumInfo): ReadResult {
  const cmd = parseReadCommand(raw);
  const map = state.osdMap;
  switch (cmd.prefix) {
    case 'status':
      return { message: '', data: statusView(state, q) };
    case 'health':
      return { message: '', data: healthView(state, q, cmd.detail === true) };
    case 'mon stat':
      return { message: '', data: { epoch: state.monMap.epoch, num_mons: state.monMap.mons.length, leader: q.leader, quorum: q.quorum, mons: state.monMap.mons, election_epoch: q.term, commit_index: q.commitIndex } };
    case 'mon dump':
      return { message: '', data: { fsid: state.fsid, epoch: state.monMap.epoch, modified_ms: state.monMap.modifiedMs, mons: state.monMap.mons } };
    case 'osd tree':
      return { message: '', data: osdTreeView(state) };
    case 'osd dump':
      return { message: '', data: osdDumpView(map) };
    case 'osd stat': {
      const osds = [...map.osds.values()].filter((o) => o.exists);
      return { message: '', data: { epoch: map.epoch, num_osds: osds.length, num_up_osds: osds.filter((o) => o.up).length, num_in_osds: osds.filter((o) => o.weight > 0).length } };
    }
    case 'osd pool ls':
      return { message: '', data: cmd.detail === true ? [...map.pools.values()].map(poolView) : [...map.pools.values()].map((p) => p.name) };
    case 'osd pool get':
      return { message: '', data: poolGetView(map, cmd.pool, cmd.var) };
    case 'osd erasure-code-profile ls':
      return { message: '', data: [...map.ecProfiles.keys()].sort() };
    case 'osd erasure-code-profile get': {
      const p = map.ecProfiles.get(cmd.name);
      if (!p) throw new AspenError('ENOENT', `unknown erasure code profile '${cmd.name}'`);
      return { message: '', data: { k: String(p.k), m: String(p.m), stripe_unit: String(p.stripeUnitBytes), 'crush-failure-domain': p.crushFailureDomain, plugin: p.plugin, technique: p.technique } };
    }
    case 'osd crush dump':
      return { message: '', data: map.crush };
    case 'pg dump':
      return { message: '', data: pgDumpView(state, (pgid) => mapPg(map, pgid)) };
    case 'pg map': {
      const pool = map.pools.get(Number(cmd.pgid.split('.')[0]));
      if (!pool || parseInt(cmd.pgid.split('.')[1]!, 16) >= pool.pgNum) throw new AspenError('ENOENT', `pg ${cmd.pgid} does not exist`);
      const m = mapPg(map, cmd.pgid);
      return { message: `osdmap e${map.epoch} pg ${cmd.pgid} (${cmd.pgid}) -> up [${m.up.join(',')}] acting [${m.acting.join(',')}]`, data: { epoch: map.epoch, pgid: cmd.pgid, up: m.up, acting: m.acting, up_primary: m.upPrimary, acting_primary: m.actingPrimary } };
    }
    case 'osd map': {
      const pool = [...map.pools.values()].find((p) => p.name === cmd.pool);
      if (!pool) throw new AspenError('ENOENT', `pool ${cmd.pool} does not exist`);
      const pgid = mapObjectToPg(pool, cmd.object);
      const m = mapPg(map, pgid);
      return {
        message: `osdmap e${map.epoch} pool '${pool.name}' (${pool.id}) object '${cmd.object}' -> pg ${pgid} -> up ([${m.up.join(',')}], p${m.upPrimary}) acting ([${m.acting.join(',')}], p${m.actingPrimary})`,
        data: { epoch: map.epoch, pool: pool.name, pool_id: pool.id, objname: cmd.object, pgid, up: m.up, up_primary: m.upPrimary, acting: m.acting, acting_primary: m.actingPrimary },
      };
    }
    case 'config get': {
      const section = state.config.get(cmd.who);
      if (cmd.name === undefined) return { message: '', data: Object.fromEntries(section ?? []) };
      const v = section?.get(cmd.name) ?? state.config.get('global')?.get(cmd.name);
      if (v === undefined) throw new AspenError('ENOENT', `config option ${cmd.name} is not set for ${cmd.who}`);
      return { message: v, data: v };
    }
    case 'config dump':
      return { message: '', data: [...state.config].flatMap(([section, kv]) => [...kv].map(([name, value]) => ({ section, name, value }))) };
    case 's3 user ls':
    case 's3 user info':
    case 's3 key get':
      return executeS3Read(state.s3Users, cmd);
    case 'fs ls':
    case 'fs get':
    case 'fs lookup':
    case 'fs getattr':
    case 'fs readdir':
    case 'fs readlink':
    case 'fs getxattr':
    case 'fs listxattr':
    case 'fs statfs':
      return executeFsRead(state.fsMap, map, cmd);
    default:
      return assertNever(cmd, 'read command');
  }
}
