/**
 * The monitor state machine's OSDMap commands: each command's happy path, its refusals
 * (with Ceph's errno and wording), and idempotency where Ceph is idempotent.
 */
import { describe, expect, it } from 'vitest';
import { AspenError, AssertionFailure } from '@aspen/shared';
import { WEIGHT_IN } from '@aspen/shared/osdmap/types.ts';
import { decodeEnvelope, encodeEnvelope, isReadPrefix, parseCommand, parseReadCommand } from '../../src/core/command.ts';
import { Driver, T0, osdUuid } from './helpers.ts';
import { encodeConfChangeContext } from '../../src/core/state-machine.ts';

const crushWeightOf = (d: Driver, id: number): number | undefined => {
  for (const b of d.map.crush.buckets) for (const it of b.items) if (it.id === id && !b.shadowOf) return it.weight;
  return undefined;
};

describe('command validation (the edge and the apply path share it)', () => {
  it('refuses unknown prefixes and bad fields with EINVAL naming the field', () => {
    const bad = (raw: unknown, re: RegExp): void => {
      try {
        parseCommand(raw);
        expect.fail(`accepted ${JSON.stringify(raw)}`);
      } catch (err) {
        expect(err).toBeInstanceOf(AspenError);
        expect((err as AspenError).code).toBe('EINVAL');
        expect((err as AspenError).message).toMatch(re);
      }
    };
    bad({ prefix: 'osd frobnicate' }, /invalid command/);
    bad({ prefix: 'osd pool create', pool: 'a b' }, /pool: only letters/);
    bad({ prefix: 'osd pool create', pool: 'p', pg_num: 0 }, /pg_num/);
    bad({ prefix: 'osd new', uuid: 'not-a-uuid' }, /uuid/);
    bad({ prefix: 'osd boot', id: 1, uuid: osdUuid(1), addr: 'nohostport', host: 'h' }, /addr: expected host:port/);
    bad({ prefix: 'osd pg-temp', pgid: '1.xyz', osds: [] }, /pgid: expected POOL.SEEDHEX/);
    bad({ prefix: 'osd reweight', id: 1, weight: 1.5 }, /weight/);
    bad({ prefix: 'status' }, /invalid command/); // a read is not a mutation
    expect(() => parseReadCommand({ prefix: 'osd pool create', pool: 'x' })).toThrow(/EINVAL/);
    expect(isReadPrefix('osd tree')).toBe(true);
    expect(isReadPrefix('osd pool create')).toBe(false);
  });

  it('round-trips a command envelope and refuses a corrupt one with E_DECODE', () => {
    const env = { clientId: 'c', seq: 7, stampMs: T0, command: parseCommand({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 }) };
    expect(decodeEnvelope(encodeEnvelope(env))).toEqual(env);
    const bytes = encodeEnvelope(env);
    expect(() => decodeEnvelope(bytes.subarray(0, bytes.length - 3))).toThrow(expect.objectContaining({ code: 'E_DECODE' }));
  });

  it('asserts that entries are applied in index order', () => {
    const d = new Driver();
    const command = parseCommand({ prefix: 'osd set', key: 'noout' });
    expect(() => d.sm.applyCommand(5, { clientId: 'x', seq: 1, stampMs: T0, command })).toThrow(AssertionFailure);
    expect(() => d.sm.applyNoop(3)).toThrow(AssertionFailure);
  });

  it('a refusal changes nothing (no epoch, no incremental), and success emits exactly one incremental', () => {
    const d = new Driver();
    const { result, effects } = d.apply({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 });
    expect(result.code).toBe(0);
    expect(effects.incrementals.map((i) => i.epoch)).toEqual([2]);
    expect(d.state.incrementals.at(-1)!.epoch).toBe(d.map.epoch);
    d.refused({ prefix: 'osd pool rename', srcpool: 'nope', destpool: 'x' }, 'ENOENT', /^ENOENT: unrecognized pool 'nope'$/);
  });
});

describe('osd new / boot', () => {
  it('allocates the lowest free id, or the requested one, and raises max_osd', () => {
    const d = new Driver();
    expect(d.ok({ prefix: 'osd new', uuid: osdUuid(100) }).data).toEqual({ osdid: 0 });
    expect(d.ok({ prefix: 'osd new', uuid: osdUuid(101), id: 5 }).data).toEqual({ osdid: 5 });
    expect(d.ok({ prefix: 'osd new', uuid: osdUuid(102) }).data).toEqual({ osdid: 1 });
    expect(d.map.maxOsd).toBe(6);
    expect(d.map.osds.get(5)).toMatchObject({ exists: true, up: false, weight: WEIGHT_IN, uuid: osdUuid(101) });
  });

  it('is idempotent for the same uuid (Ceph: returns the existing id, no new epoch)', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd new', uuid: osdUuid(7), id: 3 });
    const epoch = d.map.epoch;
    const { result, effects } = d.apply({ prefix: 'osd new', uuid: osdUuid(7) });
    expect(result).toMatchObject({ code: 0, message: '3', data: { osdid: 3 } });
    expect(effects.incrementals).toEqual([]);
    expect(d.map.epoch).toBe(epoch);
  });

  it('refuses an id taken by another uuid with EEXIST', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd new', uuid: osdUuid(1), id: 1 });
    d.refused({ prefix: 'osd new', uuid: osdUuid(2), id: 1 }, 'EEXIST', /osd\.1 already exists with another uuid/);
  });

  it('boot marks the OSD up at its address and places it under its host in CRUSH', () => {
    const d = new Driver();
    d.addOsd(0, 'node1');
    expect(d.map.osds.get(0)).toMatchObject({ up: true, addr: '10.0.0.0:6800', host: 'node1', upFrom: d.map.epoch });
    const host = d.map.crush.buckets.find((b) => b.name === 'node1')!;
    expect(host.items.map((i) => i.id)).toEqual([0]);
    expect(crushWeightOf(d, 0)).toBe(0x10000);
    // Booting again at the same address is a no-op; at a new address it is a new epoch but CRUSH is unchanged.
    const crush = d.map.crush;
    const epoch = d.map.epoch;
    expect(d.ok({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '10.0.0.0:6800', host: 'node1' }).message).toBe('osd.0 already up');
    expect(d.map.epoch).toBe(epoch);
    d.ok({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '10.0.0.0:6801', host: 'node1' });
    expect(d.map.epoch).toBe(epoch + 1);
    expect(d.map.crush).toBe(crush);
  });

  it('refuses a boot of an unknown OSD (ENOENT), with a wrong uuid (E_WRONG_CLUSTER), and under noup (EPERM)', () => {
    const d = new Driver();
    d.refused({ prefix: 'osd boot', id: 4, uuid: osdUuid(4), addr: '1.2.3.4:5', host: 'h' }, 'ENOENT', /osd\.4 does not exist \(run mkfs first\)/);
    d.ok({ prefix: 'osd new', uuid: osdUuid(4), id: 4 });
    d.refused({ prefix: 'osd boot', id: 4, uuid: osdUuid(5), addr: '1.2.3.4:5', host: 'h' }, 'E_WRONG_CLUSTER', /does not match/);
    d.ok({ prefix: 'osd set', key: 'noup' });
    d.refused({ prefix: 'osd boot', id: 4, uuid: osdUuid(4), addr: '1.2.3.4:5', host: 'h' }, 'EPERM', /noup flag is set/);
    d.ok({ prefix: 'osd unset', key: 'noup' });
    d.ok({ prefix: 'osd boot', id: 4, uuid: osdUuid(4), addr: '1.2.3.4:5', host: 'h' });
  });

  it('refuses a host name that is a CRUSH bucket of another type (EINVAL), never asserting', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd new', uuid: osdUuid(0), id: 0 });
    d.refused({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '1.2.3.4:5', host: 'default' }, 'EINVAL', /default is not a bucket of type host/);
  });
});

describe('osd down / out / in / reweight / rm / flags', () => {
  it('down marks up OSDs down and is idempotent; unknown OSDs are ENOENT', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.addOsd(1, 'h1');
    d.nowMs = T0 + 5000;
    expect(d.ok({ prefix: 'osd down', ids: [0, 1] }).message).toBe('marked down osd osd.0, osd.1');
    expect(d.map.osds.get(0)).toMatchObject({ up: false, downAt: d.map.epoch, downStampMs: T0 + 5000 });
    const epoch = d.map.epoch;
    expect(d.ok({ prefix: 'osd down', ids: [0] }).message).toBe('osd 0 already down');
    expect(d.map.epoch).toBe(epoch);
    d.refused({ prefix: 'osd down', ids: [0, 9] }, 'ENOENT', /osd\.9 does not exist/);
  });

  it('out/in set the reweight; an operator `in` is exempt from auto-out, an auto out never undoes it', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.ok({ prefix: 'osd down', ids: [0] });
    expect(d.ok({ prefix: 'osd out', ids: [0] }).message).toBe('marked out osd.0');
    expect(d.map.osds.get(0)).toMatchObject({ weight: 0, autoOutExempt: false });
    expect(d.ok({ prefix: 'osd out', ids: [0] }).message).toBe('osd 0 already out');
    d.ok({ prefix: 'osd in', ids: [0] });
    expect(d.map.osds.get(0)).toMatchObject({ weight: WEIGHT_IN, autoOutExempt: true });
    const epoch = d.map.epoch;
    expect(d.ok({ prefix: 'osd out', ids: [0], auto: true }).message).toBe('osd 0 already out');
    expect(d.map.epoch).toBe(epoch);
    expect(d.map.osds.get(0)!.weight).toBe(WEIGHT_IN);
    d.refused({ prefix: 'osd in', ids: [3] }, 'ENOENT', /osd\.3 does not exist/);
  });

  it('an automatic out skips up OSDs and is suppressed by noout', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.addOsd(1, 'h1');
    expect(d.ok({ prefix: 'osd out', ids: [0], auto: true }).message).toBe('osd 0 already out'); // up: skipped
    d.ok({ prefix: 'osd down', ids: [0, 1] });
    d.ok({ prefix: 'osd set', key: 'noout' });
    d.ok({ prefix: 'osd out', ids: [0], auto: true });
    expect(d.map.osds.get(0)!.weight).toBe(WEIGHT_IN);
    d.ok({ prefix: 'osd unset', key: 'noout' });
    d.ok({ prefix: 'osd out', ids: [0, 1], auto: true });
    expect([d.map.osds.get(0)!.weight, d.map.osds.get(1)!.weight]).toEqual([0, 0]);
  });

  it('a boot after an operator `in` ends its exemption: the next failure is auto-outed again', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.ok({ prefix: 'osd down', ids: [0] });
    d.ok({ prefix: 'osd out', ids: [0], auto: true });
    d.ok({ prefix: 'osd in', ids: [0] }); // the operator brings it back in while it is down
    expect(d.map.osds.get(0)).toMatchObject({ weight: WEIGHT_IN, autoOutExempt: true });
    d.ok({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '10.0.0.0:6800', host: 'h0' });
    d.ok({ prefix: 'osd down', ids: [0] }); // a later, unrelated failure
    d.ok({ prefix: 'osd out', ids: [0], auto: true });
    expect(d.map.osds.get(0)!.weight).toBe(0);
  });

  it('an operator `in` of an up OSD (after draining it) does not exempt its later failures from auto-out', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.ok({ prefix: 'osd out', ids: [0] });
    d.ok({ prefix: 'osd in', ids: [0] });
    expect(d.map.osds.get(0)).toMatchObject({ weight: WEIGHT_IN, autoOutExempt: false });
    d.ok({ prefix: 'osd down', ids: [0] });
    d.ok({ prefix: 'osd out', ids: [0], auto: true });
    expect(d.map.osds.get(0)!.weight).toBe(0);
  });

  it('reweight sets 16.16 weights; crush reweight changes the CRUSH weight', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.ok({ prefix: 'osd reweight', id: 0, weight: 0.5 });
    expect(d.map.osds.get(0)!.weight).toBe(0x8000);
    expect(d.ok({ prefix: 'osd crush reweight', id: 0, weight: 2 }).message).toBe("reweighted item id 0 name 'osd.0' to 2 in crush map");
    expect(crushWeightOf(d, 0)).toBe(0x20000);
    expect(d.map.crush.buckets.find((b) => b.name === 'default')!.items[0]!.weight).toBe(0x20000);
    d.refused({ prefix: 'osd reweight', id: 7, weight: 0.5 }, 'ENOENT', /osd\.7 does not exist/);
    d.ok({ prefix: 'osd new', uuid: osdUuid(1), id: 1 }); // never booted: not in CRUSH
    d.refused({ prefix: 'osd crush reweight', id: 1, weight: 1 }, 'ENOENT', /osd\.1 is not in any bucket/);
  });

  it('refuses CRUSH weights that would overflow a bucket (EINVAL) instead of asserting while applying', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd new', uuid: osdUuid(0), id: 0 });
    d.refused({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '1.2.3.4:5', host: 'h0', weight: 1e6 }, 'EINVAL', /CRUSH weight 1000000 for osd\.0 would overflow/);
    d.ok({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '1.2.3.4:5', host: 'h0', weight: 40_000 });
    d.addOsd(1, 'h1');
    d.refused({ prefix: 'osd crush reweight', id: 1, weight: 40_000 }, 'EINVAL', /would overflow a bucket weight/);
    d.ok({ prefix: 'osd crush reweight', id: 0, weight: 60_000 }); // replaces its own 40000: still fits
    d.ok({ prefix: 'osd crush reweight', id: 1, weight: 5000 });
  });

  it('rm refuses an up OSD (EBUSY), removes a down one from the map and CRUSH', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.refused({ prefix: 'osd rm', ids: [0] }, 'EBUSY', /osd\.0 is still up; mark it down first/);
    d.refused({ prefix: 'osd rm', ids: [5] }, 'ENOENT', /osd\.5 does not exist/);
    d.ok({ prefix: 'osd down', ids: [0] });
    expect(d.ok({ prefix: 'osd rm', ids: [0] }).message).toBe('removed osd.0');
    expect(d.map.osds.has(0)).toBe(false);
    expect(d.map.crush.devices.some((x) => x.id === 0)).toBe(false);
    expect(crushWeightOf(d, 0)).toBeUndefined();
    // The id is free again.
    expect(d.ok({ prefix: 'osd new', uuid: osdUuid(50) }).data).toEqual({ osdid: 0 });
  });

  it('set/unset flags', () => {
    const d = new Driver();
    expect(d.ok({ prefix: 'osd set', key: 'noout' }).message).toBe('noout is set');
    d.ok({ prefix: 'osd set', key: 'nodown' });
    expect([...d.map.flags].sort()).toEqual(['nodown', 'noout']);
    expect(d.ok({ prefix: 'osd unset', key: 'noout' }).message).toBe('noout is unset');
    expect([...d.map.flags]).toEqual(['nodown']);
  });
});

describe('pools', () => {
  it('creates a replicated pool with the defaults (size 3, min_size 2, pg_num 32, replicated_rule)', () => {
    const d = new Driver();
    const r = d.ok({ prefix: 'osd pool create', pool: 'rbd' });
    expect(r).toMatchObject({ message: "pool 'rbd' created", data: { pool_id: 1 } });
    expect(d.map.pools.get(1)).toMatchObject({ name: 'rbd', type: 'replicated', size: 3, minSize: 2, pgNum: 32, pgpNum: 32, crushRule: 0, hashPsPool: true, createdEpoch: d.map.epoch });
    expect(d.map.poolMax).toBe(1);
  });

  it('takes pool defaults from config (osd_pool_default_size / _min_size / _pg_num)', () => {
    const d = new Driver();
    d.ok({ prefix: 'config set', who: 'global', name: 'osd_pool_default_size', value: '2' });
    d.ok({ prefix: 'config set', who: 'osd', name: 'osd_pool_default_pg_num', value: '8' });
    d.ok({ prefix: 'osd pool create', pool: 'a' });
    expect(d.map.pools.get(1)).toMatchObject({ size: 2, minSize: 1, pgNum: 8 });
    d.ok({ prefix: 'config set', who: 'osd', name: 'osd_pool_default_min_size', value: '2' });
    d.ok({ prefix: 'osd pool create', pool: 'b' });
    expect(d.map.pools.get(2)).toMatchObject({ size: 2, minSize: 2 });
  });

  it('creating an existing pool is idempotent (Ceph: "already exists", retval 0, no new epoch)', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 });
    const epoch = d.map.epoch;
    expect(d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 64 })).toMatchObject({ message: "pool 'rbd' already exists", data: { pool_id: 1 } });
    expect(d.map.epoch).toBe(epoch);
    expect(d.map.pools.get(1)!.pgNum).toBe(8);
  });

  it('refuses re-creating an existing pool as another type (EINVAL, as Ceph)', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 });
    d.refused({ prefix: 'osd pool create', pool: 'rbd', pool_type: 'erasure' }, 'EINVAL', /pool 'rbd' cannot change to type erasure/);
  });

  it('refuses a CRUSH rule of the wrong type for the pool (EINVAL, as Ceph\'s rule_valid_for_pool_type)', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'ec', pg_num: 4, pool_type: 'erasure' });
    const ecRule = d.map.pools.get(1)!.crushRule;
    d.refused({ prefix: 'osd pool create', pool: 'rbd', pg_num: 4, crush_rule: ecRule }, 'EINVAL', new RegExp(`crush rule ${ecRule} type does not match pool`));
    d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 4 });
    d.refused({ prefix: 'osd pool set', pool: 'rbd', var: 'crush_rule', val: 'ec' }, 'EINVAL', /crush rule ec type does not match pool/);
    d.refused({ prefix: 'osd pool set', pool: 'ec', var: 'crush_rule', val: 'replicated_rule' }, 'EINVAL', /type does not match pool/);
    // An EC pool named like an existing replicated rule must not adopt that rule.
    d.refused({ prefix: 'osd pool create', pool: 'replicated_rule', pool_type: 'erasure' }, 'EINVAL', /type does not match pool/);
  });

  it('refuses bad pool parameters', () => {
    const d = new Driver();
    d.refused({ prefix: 'osd pool create', pool: 'p', pg_num: 8, pgp_num: 16 }, 'EINVAL', /pgp_num 16 exceeds pg_num 8/);
    d.refused({ prefix: 'osd pool create', pool: 'p', size: 2, min_size: 3 }, 'EINVAL', /min_size 3 exceeds size 2/);
    d.refused({ prefix: 'osd pool create', pool: 'p', crush_rule: 7 }, 'ENOENT', /crush rule 7 does not exist/);
    d.refused({ prefix: 'osd pool create', pool: 'p', pool_type: 'erasure', erasure_code_profile: 'nope' }, 'ENOENT', /erasure-code-profile nope does not exist/);
    expect(d.map.poolMax).toBe(0);
  });

  it('creates an EC pool from a profile: size k+m, min_size k+1, its own indep erasure rule', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd erasure-code-profile set', name: 'k4m2', profile: ['k=4', 'm=2', 'crush-failure-domain=osd'] });
    d.ok({ prefix: 'osd pool create', pool: 'ecpool', pg_num: 16, pool_type: 'erasure', erasure_code_profile: 'k4m2' });
    const pool = d.map.pools.get(1)!;
    expect(pool).toMatchObject({ type: 'erasure', size: 6, minSize: 5, erasureCodeProfile: 'k4m2' });
    const rule = d.map.crush.rules.find((r) => r.id === pool.crushRule)!;
    expect(rule).toMatchObject({ name: 'ecpool', type: 'erasure' });
    expect(rule.steps.map((s) => s.op)).toEqual(['set_chooseleaf_tries', 'set_choose_tries', 'take', 'choose_indep', 'emit']);
    // The default profile (k=2 m=1, host failure domain) gives size 3, min_size 3, chooseleaf indep over hosts.
    d.ok({ prefix: 'osd pool create', pool: 'ec2', pool_type: 'erasure' });
    const p2 = d.map.pools.get(2)!;
    expect(p2).toMatchObject({ size: 3, minSize: 3, erasureCodeProfile: 'default' });
    expect(d.map.crush.rules.find((r) => r.id === p2.crushRule)!.steps.find((s) => s.op === 'chooseleaf_indep')).toBeDefined();
    d.refused({ prefix: 'osd pool create', pool: 'ec3', pool_type: 'erasure', erasure_code_profile: 'k4m2', min_size: 3 }, 'EINVAL', /min_size 3 below k=4/);
    d.refused({ prefix: 'osd pool set', pool: 'ecpool', var: 'size', val: '4' }, 'EINVAL', /can not change the size of an erasure-coded pool/);
    d.refused({ prefix: 'osd pool set', pool: 'ecpool', var: 'min_size', val: '3' }, 'EINVAL', /min_size must be at least k=4/);
  });

  it('pool rm needs the name twice, the confirmation flag and mon_allow_pool_delete (EPERM with Ceph\'s warnings)', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 4 });
    d.ok({ prefix: 'osd pool create', pool: 'keep', pg_num: 4 });
    d.ok({ prefix: 'pg stats', osd: 0, epoch: d.map.epoch, pgs: [1, 2].map((p) => ({ pgid: `${p}.0`, state: 'active+clean', up: [0], acting: [0], num_objects: 1, num_bytes: 10 })) });
    d.refused({ prefix: 'osd pool rm', pool: 'rbd' }, 'EPERM', /\*PERMANENTLY DESTROY\* all data stored in pool rbd.*--yes-i-really-really-mean-it/);
    d.refused({ prefix: 'osd pool rm', pool: 'rbd', pool2: 'rbd' }, 'EPERM', /PERMANENTLY DESTROY/);
    d.refused({ prefix: 'osd pool rm', pool: 'rbd', pool2: 'other', yes_i_really_really_mean_it: true }, 'EPERM', /PERMANENTLY DESTROY/);
    d.refused({ prefix: 'osd pool rm', pool: 'rbd', pool2: 'rbd', yes_i_really_really_mean_it: true }, 'EPERM', /mon_allow_pool_delete config option to true/);
    d.ok({ prefix: 'config set', who: 'mon', name: 'mon_allow_pool_delete', value: 'true' });
    d.refused({ prefix: 'osd pool rm', pool: 'nope', pool2: 'nope', yes_i_really_really_mean_it: true }, 'ENOENT', /unrecognized pool 'nope'/);
    expect(d.ok({ prefix: 'osd pool rm', pool: 'rbd', pool2: 'rbd', yes_i_really_really_mean_it: true }).message).toBe("pool 'rbd' removed");
    expect([...d.map.pools.values()].map((p) => p.name)).toEqual(['keep']);
    expect([...d.state.pgStats.keys()]).toEqual(['2.0']);
    // Pool ids are never reused.
    expect(d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 4 }).data).toEqual({ pool_id: 3 });
  });

  it('rename: ok, EEXIST onto an existing name, ENOENT for a missing source', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'a', pg_num: 4 });
    d.ok({ prefix: 'osd pool create', pool: 'b', pg_num: 4 });
    d.refused({ prefix: 'osd pool rename', srcpool: 'a', destpool: 'b' }, 'EEXIST', /pool 'b' already exists/);
    expect(d.ok({ prefix: 'osd pool rename', srcpool: 'a', destpool: 'c' }).message).toBe("pool 'a' renamed to 'c'");
    expect(d.map.pools.get(1)).toMatchObject({ name: 'c', lastChangeEpoch: d.map.epoch });
    d.refused({ prefix: 'osd pool rename', srcpool: 'zz', destpool: 'yy' }, 'ENOENT', /unrecognized pool 'zz'/);
  });

  it('pool set: size clamps min_size, pg_num raises pgp_num, crush_rule by name; refusals', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 8 });
    expect(d.ok({ prefix: 'osd pool set', pool: 'p', var: 'size', val: '2' }).message).toBe('set pool 1 size to 2');
    expect(d.map.pools.get(1)).toMatchObject({ size: 2, minSize: 2 });
    d.ok({ prefix: 'osd pool set', pool: 'p', var: 'size', val: '1' });
    expect(d.map.pools.get(1)).toMatchObject({ size: 1, minSize: 1 });
    d.ok({ prefix: 'osd pool set', pool: 'p', var: 'size', val: '3' });
    d.ok({ prefix: 'osd pool set', pool: 'p', var: 'min_size', val: '2' });
    d.ok({ prefix: 'osd pool set', pool: 'p', var: 'pg_num', val: '16' });
    expect(d.map.pools.get(1)).toMatchObject({ pgNum: 16, pgpNum: 16 });
    d.ok({ prefix: 'osd pool set', pool: 'p', var: 'pgp_num', val: '12' });
    expect(d.map.pools.get(1)!.pgpNum).toBe(12);
    d.ok({ prefix: 'osd pool set', pool: 'p', var: 'crush_rule', val: 'replicated_rule' });
    d.refused({ prefix: 'osd pool set', pool: 'p', var: 'min_size', val: '4' }, 'EINVAL', /min_size must be an integer in \[1, 3\], got '4'/);
    d.refused({ prefix: 'osd pool set', pool: 'p', var: 'size', val: 'three' }, 'EINVAL', /size must be an integer/);
    d.refused({ prefix: 'osd pool set', pool: 'p', var: 'pg_num', val: '8' }, 'E_UNSUPPORTED', /decreasing pg_num/);
    d.refused({ prefix: 'osd pool set', pool: 'p', var: 'pgp_num', val: '32' }, 'EINVAL', /pgp_num must be an integer in \[1, 16\]/);
    d.refused({ prefix: 'osd pool set', pool: 'p', var: 'crush_rule', val: 'nope' }, 'ENOENT', /crush rule nope does not exist/);
    d.refused({ prefix: 'osd pool set', pool: 'q', var: 'size', val: '2' }, 'ENOENT', /unrecognized pool 'q'/);
  });

  it('application enable is idempotent', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 8 });
    d.ok({ prefix: 'osd pool application enable', pool: 'p', app: 'rbd' });
    const epoch = d.map.epoch;
    expect(d.ok({ prefix: 'osd pool application enable', pool: 'p', app: 'rbd' }).message).toBe("enabled application 'rbd' on pool 'p'");
    expect(d.map.epoch).toBe(epoch);
    expect(d.map.pools.get(1)!.applications).toEqual(['rbd']);
  });
});

describe('erasure-code profiles', () => {
  it('set is idempotent for an identical profile and refuses to override a different one (EPERM)', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd erasure-code-profile set', name: 'p', profile: ['k=3', 'm=2'] });
    expect(d.map.ecProfiles.get('p')).toMatchObject({ k: 3, m: 2, stripeUnitBytes: 4096, crushFailureDomain: 'host', plugin: 'jerasure', technique: 'reed_sol_van' });
    const epoch = d.map.epoch;
    d.ok({ prefix: 'osd erasure-code-profile set', name: 'p', profile: ['k=3', 'm=2'] });
    expect(d.map.epoch).toBe(epoch);
    d.refused({ prefix: 'osd erasure-code-profile set', name: 'p', profile: ['k=4', 'm=2'] }, 'EPERM', /will not override erasure code profile p/);
    d.ok({ prefix: 'osd erasure-code-profile set', name: 'p', profile: ['k=4', 'm=2'], force: true });
    expect(d.map.ecProfiles.get('p')!.k).toBe(4);
    d.ok({ prefix: 'osd pool create', pool: 'e', pool_type: 'erasure', erasure_code_profile: 'p' });
    d.refused({ prefix: 'osd erasure-code-profile set', name: 'p', profile: ['k=5', 'm=2'], force: true }, 'EPERM', /will not override/);
  });

  it('refuses malformed or unsupported profiles', () => {
    const d = new Driver();
    d.refused({ prefix: 'osd erasure-code-profile set', name: 'x', profile: ['k=0'] }, 'EINVAL', /k=0 must be an integer in \[1, 24\]/);
    d.refused({ prefix: 'osd erasure-code-profile set', name: 'x', profile: ['k'] }, 'EINVAL', /bad profile field 'k'/);
    d.refused({ prefix: 'osd erasure-code-profile set', name: 'x', profile: ['stripe_unit=1000'] }, 'EINVAL', /stripe_unit must be a power of two/);
    d.refused({ prefix: 'osd erasure-code-profile set', name: 'x', profile: ['plugin=isa'] }, 'E_UNSUPPORTED', /only plugin=jerasure/);
  });

  it('rm refuses a profile in use (EBUSY) and is idempotent for a missing one', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd erasure-code-profile set', name: 'p', profile: ['k=2', 'm=2'] });
    d.ok({ prefix: 'osd pool create', pool: 'e', pool_type: 'erasure', erasure_code_profile: 'p' });
    d.refused({ prefix: 'osd erasure-code-profile rm', name: 'p' }, 'EBUSY', /erasure-code-profile p is in use by pool 'e'/);
    expect(d.ok({ prefix: 'osd erasure-code-profile rm', name: 'nope' }).message).toBe('erasure-code-profile nope does not exist');
    d.ok({ prefix: 'osd erasure-code-profile rm', name: 'default' });
    expect([...d.map.ecProfiles.keys()]).toEqual(['p']);
  });
});

describe('pg-temp, pg stats, config', () => {
  it('pg-temp sets and clears a mapping; unknown pools/OSDs are ENOENT', () => {
    const d = new Driver();
    d.addOsd(0, 'h0');
    d.addOsd(1, 'h1');
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 8 });
    expect(d.ok({ prefix: 'osd pg-temp', pgid: '1.3', osds: [1, 0] }).message).toBe('set 1.3 pg_temp mapping to [1,0]');
    expect(d.map.pgTemp.get('1.3')).toEqual([1, 0]);
    d.ok({ prefix: 'osd pg-temp', pgid: '1.3', osds: [] });
    expect(d.map.pgTemp.has('1.3')).toBe(false);
    d.refused({ prefix: 'osd pg-temp', pgid: '9.0', osds: [0] }, 'ENOENT', /pool 9 does not exist/);
    d.refused({ prefix: 'osd pg-temp', pgid: '1.0', osds: [5] }, 'ENOENT', /osd\.5 does not exist/);
  });

  it('pg stats keeps the newest report per PG and ignores unknown PGs and stale epochs', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'p', pg_num: 2 });
    const pg = (pgid: string, state: string) => ({ pgid, state, up: [0], acting: [0], num_objects: 3, num_bytes: 30, last_scrub_ms: 5 });
    expect(d.ok({ prefix: 'pg stats', osd: 0, epoch: 10, pgs: [pg('1.0', 'active+clean'), pg('1.2', 'active'), pg('7.0', 'active')] }).data).toEqual({ accepted: 1 });
    expect(d.ok({ prefix: 'pg stats', osd: 1, epoch: 9, pgs: [pg('1.0', 'peering')] }).data).toEqual({ accepted: 0 });
    d.ok({ prefix: 'pg stats', osd: 1, epoch: 11, pgs: [{ pgid: '1.0', state: 'active+degraded', up: [1], acting: [1], num_objects: 4, num_bytes: 40 }] });
    expect(d.state.pgStats.get('1.0')).toMatchObject({ state: 'active+degraded', reporter: 1, reportedEpoch: 11, lastScrubMs: 5, numObjects: 4 });
  });

  it('config set refuses values the monitors cannot use (EINVAL), so no pool is built from them', () => {
    const d = new Driver();
    for (const [name, value] of [['osd_pool_default_pg_num', '-5'], ['osd_pool_default_pg_num', '1.5'], ['osd_pool_default_size', '0'], ['osd_pool_default_size', '300'],
      ['mon_osd_down_out_interval', 'soon'], ['mon_osd_report_timeout', '-1'], ['mon_osd_min_down_reporters', '0'], ['mon_allow_pool_delete', 'sure']] as const) {
      const { result } = d.apply({ prefix: 'config set', who: 'global', name, value });
      expect(result.code, `${name}=${value}`).toBe('EINVAL');
      expect(result.message).toContain(`error parsing value: '${value}' for ${name}`);
    }
    expect(d.state.config.size).toBe(0);
    d.ok({ prefix: 'config set', who: 'osd', name: 'osd_pool_default_pg_num', value: '16' });
    d.ok({ prefix: 'config set', who: 'mon', name: 'mon_osd_down_out_interval', value: '2.5' });
    d.ok({ prefix: 'config set', who: 'mon', name: 'some_unknown_option', value: 'anything' });
    d.ok({ prefix: 'osd pool create', pool: 'p' });
    expect(d.map.pools.get(1)!.pgNum).toBe(16);
  });

  it('a bad value already in the config (from an older build) falls back to the default', () => {
    const d = new Driver();
    d.state.config.set('global', new Map([['osd_pool_default_pg_num', '-5'], ['osd_pool_default_size', '300']]));
    d.ok({ prefix: 'osd pool create', pool: 'p' });
    expect(d.map.pools.get(1)).toMatchObject({ pgNum: 32, size: 3 });
  });

  it('config set/rm', () => {
    const d = new Driver();
    const { effects } = d.apply({ prefix: 'config set', who: 'osd.3', name: 'debug', value: '5' });
    expect(effects.configChanged).toBe(true);
    expect(d.state.config.get('osd.3')?.get('debug')).toBe('5');
    d.ok({ prefix: 'config rm', who: 'osd.3', name: 'debug' });
    expect(d.state.config.has('osd.3')).toBe(false);
  });

  it("'mon init' on an initialized cluster is a no-op", () => {
    const d = new Driver();
    const epoch = d.map.epoch;
    expect(d.ok({ prefix: 'mon init', fsid: '11111111-2222-4333-8444-555555555555', mons: [{ name: 'z', addr: 'h:1' }] }).message).toBe('cluster already initialized');
    expect(d.map.epoch).toBe(epoch);
    expect(d.state.monMap.mons.map((m) => m.name)).toEqual(['a', 'b', 'c']);
  });
});

describe('membership changes update the MonMap', () => {
  it('add_voter adds (sorted, with its address), remove_node removes, each bumping the epoch', () => {
    const d = new Driver();
    const e = d.state.monMap.epoch;
    d.sm.applyConfChange(1, { type: 'add_voter', nodeId: 'd', context: encodeConfChangeContext({ addr: '127.0.0.1:7000', stampMs: T0 + 1 }) });
    expect(d.state.monMap.mons.map((m) => `${m.name}=${m.addr}`)).toEqual(['a=127.0.0.1:6789', 'b=127.0.0.1:6790', 'c=127.0.0.1:6791', 'd=127.0.0.1:7000']);
    d.sm.applyConfChange(2, { type: 'remove_node', nodeId: 'b', context: encodeConfChangeContext({ addr: '', stampMs: T0 + 2 }) });
    // A bare address (no JSON) is accepted; the stamp then stays.
    d.sm.applyConfChange(3, { type: 'add_voter', nodeId: 'e', context: new TextEncoder().encode('127.0.0.1:7001') });
    expect(d.state.monMap).toMatchObject({ epoch: e + 3, modifiedMs: T0 + 2 });
    d.sm.applyConfChange(4, { type: 'remove_node', nodeId: 'e', context: new Uint8Array(0) });
    expect(d.state.monMap.mons.map((m) => m.name)).toEqual(['a', 'c', 'd']);
  });
});
