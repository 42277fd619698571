/**
 * Self-managed snapshots (Ceph POOL_OP_CREATE_UNMANAGED_SNAP / DELETE_UNMANAGED_SNAP on
 * pg_pool_t snap_seq / removed_snaps) and the OSD full state (Ceph MOSDFull → CEPH_OSD_FULL,
 * health OSD_FULL / OSD_NEARFULL) as the monitor state machine, the leader's beacon handling
 * and the read views carry them.
 */
import { describe, expect, it } from 'vitest';
import { OsdLiveness, DEFAULT_LIVENESS_OPTIONS } from '../../src/core/liveness.ts';
import { executeRead } from '../../src/core/read-commands.ts';
import { decodeMonState, encodeMonState } from '../../src/core/snapshot.ts';
import { healthChecks, healthStatus, type QuorumInfo } from '../../src/core/views.ts';
import { INTERNAL_PREFIXES } from '../../src/core/command.ts';
import { Driver, T0 } from './helpers.ts';

const Q: QuorumInfo = { leader: 'a', quorum: ['a', 'b', 'c'], term: 4, commitIndex: 99 };
const CREATE = { prefix: 'osd pool selfmanaged-snap create', pool: 'rbd' };
const rm = (snapid: number): Record<string, unknown> => ({ prefix: 'osd pool selfmanaged-snap rm', pool: 'rbd', snapid });

function withPool(): Driver {
  const d = new Driver();
  d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 });
  return d;
}

describe('osd pool selfmanaged-snap create / rm', () => {
  it('a new pool has snap_seq 0 and no removed snaps; create allocates snap_seq + 1 in a new epoch', () => {
    const d = withPool();
    expect(d.map.pools.get(1)).toMatchObject({ snapSeq: 0, removedSnaps: [] });
    for (const want of [1, 2, 3]) {
      const epoch = d.map.epoch;
      const { result, effects } = d.apply(CREATE);
      expect(result).toMatchObject({ code: 0, data: { snapid: want, epoch: epoch + 1 } });
      expect(d.map.epoch).toBe(epoch + 1);
      expect(effects.incrementals).toHaveLength(1);
      expect(effects.incrementals[0]!.newPools[0]).toMatchObject({ id: 1, snapSeq: want, lastChangeEpoch: epoch + 1 });
    }
    expect(d.map.pools.get(1)!.snapSeq).toBe(3);
  });

  it('is exactly-once under client retries: a retried (clientId, seq) gets the same snap id and allocates nothing', () => {
    const d = withPool();
    const first = d.apply(CREATE, { seq: 50 }).result;
    const epoch = d.map.epoch;
    const again = d.apply(CREATE, { seq: 50 });
    expect(again.result).toEqual(first);
    expect(again.effects.incrementals).toEqual([]);
    expect(d.map.epoch).toBe(epoch);
    expect(d.map.pools.get(1)!.snapSeq).toBe(1);
    // And across a snapshot of the monitor state (a member restored from InstallSnapshot).
    const r = new Driver(decodeMonState(encodeMonState(d.state)), d.clientId);
    expect(r.apply(CREATE, { seq: 50 }).result).toEqual(first);
    expect(r.map.pools.get(1)!.snapSeq).toBe(1);
    expect(r.apply(CREATE, { seq: 51 }).result.data).toMatchObject({ snapid: 2 });
  });

  it('rm marks snaps removed as merged intervals; removing twice succeeds without a new epoch', () => {
    const d = withPool();
    for (let i = 0; i < 6; i++) d.ok(CREATE);
    for (const id of [1, 3, 2, 6]) {
      const epoch = d.map.epoch;
      expect(d.ok(rm(id)).data).toEqual({ epoch: epoch + 1 });
    }
    expect(d.map.pools.get(1)).toMatchObject({ snapSeq: 6, removedSnaps: [[1, 3], [6, 1]] });
    const epoch = d.map.epoch;
    const { result, effects } = d.apply(rm(2));
    expect(result).toMatchObject({ code: 0, data: { epoch } });
    expect(effects.incrementals).toEqual([]);
    expect(d.map.epoch).toBe(epoch);
  });

  it('refuses snap 0 and ids never allocated with EINVAL, unknown pools with ENOENT', () => {
    const d = withPool();
    d.refused(rm(1), 'EINVAL', /never allocated/);
    d.ok(CREATE);
    d.refused(rm(0), 'EINVAL');
    d.refused(rm(2), 'EINVAL');
    d.refused({ prefix: 'osd pool selfmanaged-snap create', pool: 'nope' }, 'ENOENT');
    d.refused({ prefix: 'osd pool selfmanaged-snap rm', pool: 'nope', snapid: 1 }, 'ENOENT');
  });

  it('other pool changes keep the snap state; views show snap_seq and removed_snaps as Ceph does', () => {
    const d = withPool();
    d.ok(CREATE);
    d.ok(CREATE);
    d.ok(rm(1));
    d.ok({ prefix: 'osd pool set', pool: 'rbd', var: 'size', val: '2' });
    d.ok({ prefix: 'osd pool rename', srcpool: 'rbd', destpool: 'rbd2' });
    d.ok({ prefix: 'osd pool rename', srcpool: 'rbd2', destpool: 'rbd' });
    expect(d.map.pools.get(1)).toMatchObject({ snapSeq: 2, removedSnaps: [[1, 1]] });
    const dump = executeRead(d.state, { prefix: 'osd dump' }, Q).data as { pools: Record<string, unknown>[] };
    expect(dump.pools[0]).toMatchObject({ snap_seq: 2, removed_snaps: '[1~1]', flags_names: 'hashpspool,selfmanaged_snaps' });
    const ls = executeRead(d.state, { prefix: 'osd pool ls', detail: true }, Q).data as Record<string, unknown>[];
    expect(ls[0]).toMatchObject({ snap_seq: 2, removed_snaps: '[1~1]' });
    expect(executeRead(d.state, { prefix: 'osd pool get', pool: 'rbd', var: 'snap_seq' }, Q).data).toEqual({ pool: 'rbd', snap_seq: 2 });
    expect(executeRead(d.state, { prefix: 'osd pool get', pool: 'rbd', var: 'all' }, Q).data).toMatchObject({ snap_seq: 2, removed_snaps: '[1~1]' });
  });
});

describe('OSD full state', () => {
  function cluster(): Driver {
    const d = new Driver();
    for (let i = 0; i < 3; i++) d.addOsd(i, `host${i}`);
    return d;
  }
  const internal = (d: Driver, cmd: Record<string, unknown>): ReturnType<Driver['apply']> => d.apply(cmd, { clientId: '', seq: 0 });

  it('`osd full` is internal to the monitors (the leader derives it from beacons)', () => {
    expect(INTERNAL_PREFIXES.has('osd full')).toBe(true);
  });

  it('records a change in a new epoch; the same state again changes nothing', () => {
    const d = cluster();
    const epoch = d.map.epoch;
    const { result, effects } = internal(d, { prefix: 'osd full', id: 1, full: true, nearfull: false });
    expect(result.code).toBe(0);
    expect(effects.incrementals[0]!.newFullState).toEqual([{ id: 1, full: true, nearfull: false }]);
    expect(d.map.epoch).toBe(epoch + 1);
    expect(d.map.osds.get(1)).toMatchObject({ full: true, nearfull: false });
    expect(internal(d, { prefix: 'osd full', id: 1, full: true, nearfull: false }).effects.incrementals).toEqual([]);
    expect(d.map.epoch).toBe(epoch + 1);
    expect(internal(d, { prefix: 'osd full', id: 7, full: true, nearfull: false }).result.code).toBe('ENOENT');
  });

  it('beacons: only a change of the reported state is proposed, once per pending window, and not for a down OSD', () => {
    const d = cluster();
    const lv = new OsdLiveness(DEFAULT_LIVENESS_OPTIONS);
    lv.reset(T0, d.map);
    expect(lv.onFullReport(0, { full: false, nearfull: false }, T0, d.map)).toBeNull(); // as the map says: no epoch
    const cmd = lv.onFullReport(0, { full: true, nearfull: false }, T0, d.map);
    expect(cmd).toEqual({ prefix: 'osd full', id: 0, full: true, nearfull: false });
    expect(lv.onFullReport(0, { full: true, nearfull: false }, T0 + 3000, d.map)).toBeNull(); // proposed, not applied yet
    internal(d, cmd as Record<string, unknown>);
    expect(lv.onFullReport(0, { full: true, nearfull: false }, T0 + 6000, d.map)).toBeNull();
    // Flipping back is proposed at once, even within the window of the earlier proposal.
    expect(lv.onFullReport(0, { full: false, nearfull: true }, T0 + 7000, d.map)).toEqual({ prefix: 'osd full', id: 0, full: false, nearfull: true });
    d.ok({ prefix: 'osd down', ids: [2] });
    expect(lv.onFullReport(2, { full: true, nearfull: false }, T0 + 8000, d.map)).toBeNull();
    expect(lv.onFullReport(9, { full: true, nearfull: false }, T0 + 8000, d.map)).toBeNull();
  });

  it('health: OSD_FULL is HEALTH_ERR "N full osd(s)", OSD_NEARFULL a warning; osd dump lists the state', () => {
    const d = cluster();
    internal(d, { prefix: 'osd full', id: 1, full: true, nearfull: false });
    internal(d, { prefix: 'osd full', id: 2, full: false, nearfull: true });
    const c = healthChecks(d.state, Q);
    expect(c.OSD_FULL).toEqual({ severity: 'HEALTH_ERR', summary: '1 full osd(s)', detail: ['osd.1 is full'] });
    expect(c.OSD_NEARFULL).toEqual({ severity: 'HEALTH_WARN', summary: '1 nearfull osd(s)', detail: ['osd.2 is near full'] });
    expect(healthStatus(c)).toBe('HEALTH_ERR');
    const status = executeRead(d.state, { prefix: 'status' }, Q).data as { health: { status: string; checks: Record<string, unknown> } };
    expect(status.health.status).toBe('HEALTH_ERR');
    expect(status.health.checks.OSD_FULL).toEqual({ severity: 'HEALTH_ERR', summary: { message: '1 full osd(s)' } });
    const dump = executeRead(d.state, { prefix: 'osd dump' }, Q).data as { osds: { osd: number; state: string[] }[] };
    expect(dump.osds.map((o) => o.state)).toEqual([['exists', 'up'], ['exists', 'up', 'full'], ['exists', 'up', 'nearfull']]);
  });

  it('a full OSD that is down or out does not count (as Ceph); its next boot clears the state', () => {
    const d = cluster();
    internal(d, { prefix: 'osd full', id: 1, full: true, nearfull: false });
    d.ok({ prefix: 'osd out', ids: [1] });
    expect(healthChecks(d.state, Q).OSD_FULL).toBeUndefined();
    d.ok({ prefix: 'osd in', ids: [1] });
    expect(healthChecks(d.state, Q).OSD_FULL).toBeDefined();
    d.ok({ prefix: 'osd down', ids: [1] });
    expect(healthChecks(d.state, Q).OSD_FULL).toBeUndefined();
    expect(d.map.osds.get(1)!.full).toBe(true);
    d.ok({ prefix: 'osd boot', id: 1, uuid: d.map.osds.get(1)!.uuid, addr: '10.0.0.1:6801', host: 'host1' });
    expect(d.map.osds.get(1)).toMatchObject({ up: true, full: false });
  });
});
