/** Ceph-shaped read views: health checks, `status`, `osd tree`, `pg dump`/`pg map`, pool get, config. */
import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import { executeRead, osdTreeView } from '../../src/core/read-commands.ts';
import { HEALTH_DETAIL_LINES_MAX, healthChecks, healthStatus, statusView, type QuorumInfo } from '../../src/core/views.ts';
import { Driver, osdUuid } from './helpers.ts';

const Q: QuorumInfo = { leader: 'a', quorum: ['a', 'b', 'c'], term: 4, commitIndex: 99 };

function clean(d: Driver): void {
  const pgs = [];
  for (const p of d.map.pools.values()) for (let s = 0; s < p.pgNum; s++) pgs.push({ pgid: `${p.id}.${s.toString(16)}`, state: 'active+clean', up: [0], acting: [0], num_objects: 2, num_bytes: 100 });
  d.ok({ prefix: 'pg stats', osd: 0, epoch: d.map.epoch, pgs });
}

function readErr(d: Driver, cmd: Record<string, unknown>): AspenError {
  try {
    executeRead(d.state, cmd, Q);
  } catch (err) {
    expect(err).toBeInstanceOf(AspenError);
    return err as AspenError;
  }
  throw new Error(`read ${JSON.stringify(cmd)} succeeded`);
}

describe('health checks', () => {
  it('a fresh cluster with every mon in quorum is HEALTH_OK with no checks', () => {
    const d = new Driver();
    expect(healthChecks(d.state, Q)).toEqual({});
    expect(executeRead(d.state, { prefix: 'health' }, Q).data).toEqual({ status: 'HEALTH_OK', checks: {} });
  });

  it('MON_DOWN names the monitors out of quorum', () => {
    const d = new Driver();
    const h = executeRead(d.state, { prefix: 'health', detail: true }, { ...Q, quorum: ['a', 'b'] }).data as { status: string; checks: Record<string, { severity: string; summary: { message: string }; detail: { message: string }[] }> };
    expect(h.status).toBe('HEALTH_WARN');
    expect(h.checks.MON_DOWN).toEqual({ severity: 'HEALTH_WARN', summary: { message: '1/3 mons down, quorum a,b' }, detail: [{ message: 'mon.c (rank 2) addr 127.0.0.1:6791 is down (out of quorum)' }] });
    // Without `detail` the detail lines are left out.
    expect(executeRead(d.state, { prefix: 'health' }, { ...Q, quorum: ['a', 'b'] }).data).toEqual({ status: 'HEALTH_WARN', checks: { MON_DOWN: { severity: 'HEALTH_WARN', summary: { message: '1/3 mons down, quorum a,b' } } } });
  });

  it('OSD_DOWN counts down OSDs that are still in; OSDMAP_FLAGS lists flags', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.addOsd(1, 'h1');
    d.addOsd(2, 'h2');
    d.ok({ prefix: 'osd down', ids: [1, 2] });
    d.ok({ prefix: 'osd out', ids: [2] });
    d.ok({ prefix: 'osd set', key: 'noout' });
    d.ok({ prefix: 'osd set', key: 'nodown' });
    const c = healthChecks(d.state, Q);
    expect(c.OSD_DOWN).toEqual({ severity: 'HEALTH_WARN', summary: '1 osds down', detail: ['osd.1 (host h1) is down'] });
    expect(c.OSDMAP_FLAGS!.summary).toBe('nodown,noout flag(s) set');
  });

  it('PG checks: unknown and inactive PGs, degraded, inconsistent (HEALTH_ERR)', () => {
    const d = new Driver();
    for (let i = 0; i < 3; i++) d.addOsd(i, `h${i}`);
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 4 });
    let c = healthChecks(d.state, Q);
    expect(c.PG_AVAILABILITY).toMatchObject({ summary: 'Reduced data availability: 4 pgs unknown', detail: ['pg 1.0 is unknown', 'pg 1.1 is unknown', 'pg 1.2 is unknown', 'pg 1.3 is unknown'] });
    const st = (pgid: string, state: string) => ({ pgid, state, up: [0], acting: [0], num_objects: 0, num_bytes: 0 });
    d.ok({ prefix: 'pg stats', osd: 0, epoch: d.map.epoch, pgs: [st('1.0', 'peering'), st('1.1', 'active+undersized+degraded'), st('1.2', 'active+clean+inconsistent'), st('1.3', 'active+clean')] });
    c = healthChecks(d.state, Q);
    expect(c.PG_AVAILABILITY).toMatchObject({ summary: 'Reduced data availability: 1 pgs inactive', detail: ['pg 1.0 is peering'] });
    expect(c.PG_DEGRADED).toMatchObject({ summary: 'Degraded data redundancy: 1 pgs degraded', detail: ['pg 1.1 is active+undersized+degraded'] });
    expect(c.PG_DAMAGED).toMatchObject({ severity: 'HEALTH_ERR', summary: 'Possible data damage: 1 pgs inconsistent' });
    expect(healthStatus(c)).toBe('HEALTH_ERR');
  });

  it('POOL_NO_REDUNDANCY and TOO_FEW_OSDS', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.ok({ prefix: 'osd pool create', pool: 'single', pg_num: 1, size: 1 });
    d.ok({ prefix: 'osd pool create', pool: 'triple', pg_num: 1 });
    clean(d);
    const c = healthChecks(d.state, Q);
    expect(Object.keys(c).sort()).toEqual(['POOL_NO_REDUNDANCY', 'TOO_FEW_OSDS']);
    expect(c.POOL_NO_REDUNDANCY).toMatchObject({ summary: '1 pool(s) have no replicas configured', detail: ["pool 'single' has no replicas configured"] });
    expect(c.TOO_FEW_OSDS!.summary).toBe('OSD count 1 < largest pool size 3');
  });

  it(`caps detail lists at ${HEALTH_DETAIL_LINES_MAX} lines`, () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 60 });
    const detail = healthChecks(d.state, Q).PG_AVAILABILITY!.detail;
    expect(detail).toHaveLength(HEALTH_DETAIL_LINES_MAX + 1);
    expect(detail.at(-1)).toBe('... and 10 more');
  });
});

describe('status', () => {
  it('summarizes mons, OSDs, pools and PGs as `ceph -s -f json`', () => {
    const d = new Driver();
    for (let i = 0; i < 3; i++) d.addOsd(i, `h${i}`);
    d.ok({ prefix: 'osd new', uuid: osdUuid(3), id: 3 });
    d.ok({ prefix: 'osd out', ids: [3] });
    d.ok({ prefix: 'osd pool create', pool: 'a', pg_num: 8 });
    d.ok({ prefix: 'osd pool create', pool: 'b', pg_num: 4 });
    const st = (pgid: string, state: string) => ({ pgid, state, up: [0], acting: [0], num_objects: 5, num_bytes: 1000, recovery_objects_missing: 2 });
    d.ok({ prefix: 'pg stats', osd: 0, epoch: d.map.epoch, pgs: [st('1.0', 'active+clean'), st('1.1', 'active+clean'), st('2.0', 'peering')] });
    const s = statusView(d.state, { ...Q, quorum: ['a', 'c'] }) as Record<string, Record<string, unknown>>;
    expect(s.fsid).toBe(d.state.fsid);
    expect(s.quorum_names).toEqual(['a', 'c']);
    expect(s.quorum_leader_name).toBe('a');
    expect(s.election_epoch).toBe(4);
    expect(s.health!.status).toBe('HEALTH_WARN');
    expect(s.monmap).toMatchObject({ epoch: 1, num_mons: 3 });
    expect(s.osdmap).toEqual({ epoch: d.map.epoch, num_osds: 4, num_up_osds: 3, num_in_osds: 3, flags: [] });
    expect(s.pgmap).toEqual({
      pgs_by_state: [{ state_name: 'unknown', count: 9 }, { state_name: 'active+clean', count: 2 }, { state_name: 'peering', count: 1 }],
      num_pgs: 12, num_pools: 2, num_objects: 15, data_bytes: 3000, recovery_objects_missing: 6,
    });
  });
});

describe('osd tree', () => {
  it('shows root → hosts → OSDs with status, reweight and CRUSH weights, and never-booted OSDs as stray', () => {
    const d = new Driver();
    d.addOsd(0, 'node1');
    d.addOsd(1, 'node1');
    d.addOsd(2, 'node2');
    d.ok({ prefix: 'osd crush reweight', id: 2, weight: 2 });
    d.ok({ prefix: 'osd down', ids: [1] });
    d.ok({ prefix: 'osd reweight', id: 1, weight: 0.5 });
    d.ok({ prefix: 'osd new', uuid: osdUuid(7), id: 7 });
    const t = osdTreeView(d.state);
    const byName = new Map(t.nodes.map((n) => [n.name, n]));
    expect(t.nodes[0]).toMatchObject({ id: -1, name: 'default', type: 'root', crush_weight: 4 });
    const node1 = byName.get('node1')!;
    expect(node1).toMatchObject({ type: 'host', crush_weight: 2 });
    expect(node1.children).toEqual([0, 1]);
    expect(byName.get('node2')).toMatchObject({ type: 'host', crush_weight: 2, children: [2] });
    expect(byName.get('osd.0')).toMatchObject({ type: 'osd', type_id: 0, status: 'up', reweight: 1, crush_weight: 1 });
    expect(byName.get('osd.1')).toMatchObject({ status: 'down', reweight: 0.5 });
    expect(byName.get('osd.2')).toMatchObject({ status: 'up', crush_weight: 2 });
    expect(t.nodes.map((n) => n.name)).toEqual(['default', 'node1', 'osd.0', 'osd.1', 'node2', 'osd.2']);
    expect(t.stray).toEqual([expect.objectContaining({ id: 7, name: 'osd.7', status: 'down', crush_weight: 0 })]);
  });
});

describe('read commands', () => {
  it('pg dump has one row per PG (sum of pg_num) with its mapping; pg map answers one PG', () => {
    const d = new Driver();
    for (let i = 0; i < 3; i++) d.addOsd(i, `h${i}`);
    d.ok({ prefix: 'osd pool create', pool: 'a', pg_num: 8 });
    d.ok({ prefix: 'osd pool create', pool: 'b', pg_num: 16 });
    const rows = (executeRead(d.state, { prefix: 'pg dump' }, Q).data as { pg_stats: { pgid: string; up: number[]; acting: number[]; up_primary: number; state: string }[] }).pg_stats;
    expect(rows).toHaveLength(24);
    expect(new Set(rows.map((r) => r.pgid)).size).toBe(24);
    for (const r of rows) {
      expect(new Set(r.up).size).toBe(3);
      expect(r.acting).toEqual(r.up);
      expect(r.up_primary).toBe(r.up[0]);
      expect(r.state).toBe('unknown');
    }
    const m = executeRead(d.state, { prefix: 'pg map', pgid: '2.f' }, Q);
    const row = rows.find((r) => r.pgid === '2.f')!;
    expect(m.message).toBe(`osdmap e${d.map.epoch} pg 2.f (2.f) -> up [${row.up.join(',')}] acting [${row.acting.join(',')}]`);
    expect(readErr(d, { prefix: 'pg map', pgid: '2.10' }).code).toBe('ENOENT');
    expect(readErr(d, { prefix: 'pg map', pgid: '9.0' }).code).toBe('ENOENT');
    const om = executeRead(d.state, { prefix: 'osd map', pool: 'a', object: 'obj1' }, Q).data as { pgid: string; up: number[] };
    expect(om.pgid).toMatch(/^1\.[0-7]$/);
    expect(om.up).toEqual(rows.find((r) => r.pgid === om.pgid)!.up);
  });

  it('osd pool get / ls, erasure-code-profile get, config get, and their refusals', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 16 });
    expect(executeRead(d.state, { prefix: 'osd pool get', pool: 'p', var: 'size' }, Q).data).toEqual({ pool: 'p', size: 3 });
    expect(executeRead(d.state, { prefix: 'osd pool get', pool: 'p', var: 'all' }, Q).data).toEqual({ pool: 'p', size: 3, min_size: 2, pg_num: 16, pgp_num: 16, crush_rule: 'replicated_rule', erasure_code_profile: '', type: 'replicated', snap_seq: 0, removed_snaps: '[]' });
    expect(readErr(d, { prefix: 'osd pool get', pool: 'p', var: 'colour' })).toMatchObject({ code: 'EINVAL' });
    expect(readErr(d, { prefix: 'osd pool get', pool: 'q', var: 'size' }).message).toMatch(/unrecognized pool 'q'/);
    expect(executeRead(d.state, { prefix: 'osd pool ls' }, Q).data).toEqual(['p']);
    expect((executeRead(d.state, { prefix: 'osd pool ls', detail: true }, Q).data as unknown[])[0]).toMatchObject({ pool: 1, pool_name: 'p', flags_names: 'hashpspool' });
    expect(executeRead(d.state, { prefix: 'osd erasure-code-profile get', name: 'default' }, Q).data).toEqual({ k: '2', m: '1', stripe_unit: '4096', 'crush-failure-domain': 'host', plugin: 'jerasure', technique: 'reed_sol_van' });
    expect(readErr(d, { prefix: 'osd erasure-code-profile get', name: 'x' }).code).toBe('ENOENT');
    d.ok({ prefix: 'config set', who: 'global', name: 'mon_osd_down_out_interval', value: '2' });
    expect(executeRead(d.state, { prefix: 'config get', who: 'mon', name: 'mon_osd_down_out_interval' }, Q).data).toBe('2'); // falls back to global
    expect(readErr(d, { prefix: 'config get', who: 'mon', name: 'nope' }).code).toBe('ENOENT');
    expect(executeRead(d.state, { prefix: 'config dump' }, Q).data).toEqual([{ section: 'global', name: 'mon_osd_down_out_interval', value: '2' }]);
    expect(readErr(d, { prefix: 'osd pool create', pool: 'x' }).code).toBe('EINVAL');
  });
});
