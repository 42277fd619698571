/**
 * State-changing OSDMap commands: each validates against the current map and returns the
 * incremental that carries it out (Ceph OSDMonitor::prepare_command_impl), or throws.
 * Pure: the caller applies the incremental.
 */
import { AspenError, assertNever } from '@aspen/shared';
import type { ErasureCodeProfile, OsdMap, OsdMapIncremental, Pool } from '@aspen/shared/osdmap/types.ts';
import { WEIGHT_IN, WEIGHT_OUT, emptyIncremental } from '@aspen/shared/osdmap/types.ts';
import { insertRemovedSnap, isSnapRemoved } from '@aspen/shared/osdmap/snaps.ts';
import type { MutatingCommand } from './command.ts';
import * as crushOps from './crush-ops.ts';
import { CRUSH_ITEM_NONE } from '@aspen/shared/crush/types.ts';

/** Extract of the command union for OSDMap commands. */
export type OsdMapCommand = Exclude<MutatingCommand, { prefix: 'pg stats' | 'config set' | 'config rm' | 'mon init' | 's3 user create' | 's3 user rm' | 's3 key create' | 's3 key rm' } | { prefix: `fs ${string}` }>;

/** Tunables of command handling that come from config (Ceph option names in comments). */
export interface OsdMapCommandOptions {
  /** mon_allow_pool_delete */
  allowPoolDelete: boolean;
  /** osd_pool_default_size */
  defaultSize: number;
  /** osd_pool_default_min_size (0 = size - size/2) */
  defaultMinSize: number;
  /** osd_pool_default_pg_num */
  defaultPgNum: number;
}

/** What a handler returns: the incremental (null when nothing changes) and the reply. */
export interface OsdMapCommandOutcome {
  inc: OsdMapIncremental | null;
  message: string;
  data: unknown;
}

function poolByName(map: OsdMap, name: string): Pool {
  for (const p of map.pools.values()) if (p.name === name) return p;
  throw new AspenError('ENOENT', `unrecognized pool '${name}'`);
}

function requireOsd(map: OsdMap, id: number): void {
  if (!map.osds.get(id)?.exists) throw new AspenError('ENOENT', `osd.${id} does not exist`);
}

/** Parses `k=4 m=2 ...` pairs of `osd erasure-code-profile set` into a profile. @throws AspenError EINVAL */
export function parseEcProfile(name: string, pairs: readonly string[]): ErasureCodeProfile {
  const kv = new Map<string, string>();
  for (const pair of pairs) {
    const m = /^([a-z_-]+)=(.+)$/.exec(pair);
    if (!m) throw new AspenError('EINVAL', `bad profile field '${pair}' (expected key=value)`);
    kv.set(m[1]!.replace(/_/g, '-'), m[2]!);
  }
  const int = (key: string, dflt: number, min: number, max: number): number => {
    const v = kv.get(key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new AspenError('EINVAL', `${key}=${v} must be an integer in [${min}, ${max}]`);
    return n;
  };
  // The OSDs' Reed-Solomon codec (@ronomon/reed-solomon, ADR 0008) takes k ≤ 24, m ≤ 6 and
  // stripe units that are powers of two (osd/src/ec/layout.ts).
  const k = int('k', 2, 1, 24);
  const m = int('m', 1, 1, 6);
  const stripeUnitBytes = int('stripe-unit', 4096, 512, 16 << 20);
  if ((stripeUnitBytes & (stripeUnitBytes - 1)) !== 0) throw new AspenError('EINVAL', 'stripe_unit must be a power of two');
  const plugin = kv.get('plugin') ?? 'jerasure';
  const technique = kv.get('technique') ?? 'reed_sol_van';
  if (plugin !== 'jerasure' || technique !== 'reed_sol_van') {
    throw new AspenError('E_UNSUPPORTED', `only plugin=jerasure technique=reed_sol_van (Reed-Solomon) is supported, got ${plugin}/${technique}`);
  }
  return { name, k, m, stripeUnitBytes, crushFailureDomain: kv.get('crush-failure-domain') ?? 'host', plugin, technique };
}

function parseUint(v: string, what: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new AspenError('EINVAL', `${what} must be an integer in [${min}, ${max}], got '${v}'`);
  return n;
}

/**
 * Builds the incremental for `cmd` against `map` at the leader's time `stampMs`.
 * @throws AspenError with EINVAL/ENOENT/EEXIST/EPERM/EBUSY for refusals; nothing changes then.
 */
export function prepareOsdMapCommand(map: OsdMap, cmd: OsdMapCommand, stampMs: number, opts: OsdMapCommandOptions): OsdMapCommandOutcome {
  const inc = emptyIncremental(map.epoch + 1, stampMs);
  switch (cmd.prefix) {
    case 'osd new': {
      for (const o of map.osds.values()) {
        if (o.uuid === cmd.uuid) return { inc: null, message: `${o.id}`, data: { osdid: o.id } }; // idempotent, as Ceph
      }
      let id = cmd.id;
      if (id === undefined) {
        id = 0;
        while (map.osds.has(id)) id++;
      } else if (map.osds.has(id)) throw new AspenError('EEXIST', `osd.${id} already exists with another uuid`);
      inc.newOsds.push({ id, uuid: cmd.uuid });
      if (id >= map.maxOsd) inc.newMaxOsd = id + 1;
      return { inc, message: `${id}`, data: { osdid: id } };
    }
    case 'osd boot': {
      const osd = map.osds.get(cmd.id);
      if (!osd?.exists) throw new AspenError('ENOENT', `osd.${cmd.id} does not exist (run mkfs first)`);
      if (osd.uuid !== cmd.uuid) throw new AspenError('E_WRONG_CLUSTER', `osd.${cmd.id} uuid ${cmd.uuid} does not match the map's ${osd.uuid}`);
      if (map.flags.has('noup')) throw new AspenError('EPERM', 'noup flag is set');
      if (osd.up && osd.addr === cmd.addr) return { inc: null, message: `osd.${cmd.id} already up`, data: { epoch: map.epoch } };
      inc.newUp.push({ id: cmd.id, addr: cmd.addr, host: cmd.host });
      // osd_crush_update_on_start: place the OSD under its host if it is not in CRUSH yet.
      const crush = crushOps.ensureOsdLocated(map.crush, cmd.id, cmd.host, cmd.weight ?? 1);
      if (crush !== null) inc.crush = crush;
      return { inc, message: `osd.${cmd.id} boot`, data: { epoch: inc.epoch } };
    }
    case 'osd down': {
      const ids = cmd.ids.filter((id) => (requireOsd(map, id), map.osds.get(id)!.up));
      if (ids.length === 0) return { inc: null, message: `osd ${cmd.ids.join(',')} already down`, data: {} };
      inc.newDown.push(...ids);
      return { inc, message: `marked down osd ${ids.map((i) => `osd.${i}`).join(', ')}`, data: { ids } };
    }
    case 'osd out':
    case 'osd in': {
      const target = cmd.prefix === 'osd out' ? WEIGHT_OUT : WEIGHT_IN;
      const auto = cmd.prefix === 'osd out' && cmd.auto === true;
      const ids: number[] = [];
      for (const id of cmd.ids) {
        requireOsd(map, id);
        const osd = map.osds.get(id)!;
        if (auto && (osd.autoOutExempt || map.flags.has('noout') || osd.up)) continue;
        if ((target === WEIGHT_OUT) === (osd.weight === WEIGHT_OUT)) continue;
        // An operator's `in` of a down OSD holds until it next boots; an up OSD needs no exemption
        // (one set now would outlive its next failure).
        inc.newWeight.push({ id, weight: target, autoOutExempt: !auto && target === WEIGHT_IN && !osd.up });
        ids.push(id);
      }
      if (ids.length === 0) return { inc: null, message: `osd ${cmd.ids.join(',')} already ${cmd.prefix.slice(4)}`, data: { ids } };
      return { inc, message: `marked ${cmd.prefix.slice(4)} ${ids.map((i) => `osd.${i}`).join(', ')}`, data: { ids } };
    }
    case 'osd reweight': {
      requireOsd(map, cmd.id);
      inc.newWeight.push({ id: cmd.id, weight: Math.round(cmd.weight * WEIGHT_IN), autoOutExempt: false });
      return { inc, message: `reweighted osd.${cmd.id} to ${cmd.weight}`, data: {} };
    }
    case 'osd crush reweight': {
      requireOsd(map, cmd.id);
      inc.crush = crushOps.reweightOsd(map.crush, cmd.id, cmd.weight);
      return { inc, message: `reweighted item id ${cmd.id} name 'osd.${cmd.id}' to ${cmd.weight} in crush map`, data: {} };
    }
    case 'osd rm': {
      let crush = map.crush;
      for (const id of cmd.ids) {
        requireOsd(map, id);
        if (map.osds.get(id)!.up) throw new AspenError('EBUSY', `osd.${id} is still up; mark it down first`);
        inc.oldOsds.push(id);
        crush = crushOps.removeOsd(crush, id) ?? crush;
      }
      if (crush !== map.crush) inc.crush = crush;
      return { inc, message: `removed ${cmd.ids.map((i) => `osd.${i}`).join(', ')}`, data: {} };
    }
    case 'osd set':
    case 'osd unset': {
      const flags = new Set(map.flags);
      if (cmd.prefix === 'osd set') flags.add(cmd.key);
      else flags.delete(cmd.key);
      inc.newFlags = [...flags].sort();
      return { inc, message: `${cmd.key} is ${cmd.prefix === 'osd set' ? 'set' : 'unset'}`, data: {} };
    }
    case 'osd pool create': {
      for (const p of map.pools.values()) {
        if (p.name !== cmd.pool) continue;
        // As Ceph: idempotent, unless the type asked for differs.
        if (cmd.pool_type !== undefined && cmd.pool_type !== p.type) throw new AspenError('EINVAL', `pool '${cmd.pool}' cannot change to type ${cmd.pool_type}`);
        return { inc: null, message: `pool '${cmd.pool}' already exists`, data: { pool_id: p.id } };
      }
      const type = cmd.pool_type ?? 'replicated';
      const pgNum = cmd.pg_num ?? opts.defaultPgNum;
      const pgpNum = cmd.pgp_num ?? pgNum;
      if (pgpNum > pgNum) throw new AspenError('EINVAL', `pgp_num ${pgpNum} exceeds pg_num ${pgNum}`);
      const id = map.poolMax + 1;
      let size: number;
      let minSize: number;
      let profileName = '';
      let crushRule: number;
      if (type === 'erasure') {
        profileName = cmd.erasure_code_profile ?? 'default';
        const profile = map.ecProfiles.get(profileName);
        if (profile === undefined) throw new AspenError('ENOENT', `erasure-code-profile ${profileName} does not exist`);
        size = profile.k + profile.m;
        minSize = cmd.min_size ?? Math.min(size, profile.k + 1);
        if (minSize < profile.k) throw new AspenError('EINVAL', `min_size ${minSize} below k=${profile.k}`);
        const added = crushOps.ensureErasureRule(map.crush, cmd.pool, profile.crushFailureDomain);
        crushRule = added.ruleId;
        if (added.crush !== null) inc.crush = added.crush;
      } else {
        size = cmd.size ?? opts.defaultSize;
        minSize = cmd.min_size ?? (opts.defaultMinSize > 0 ? opts.defaultMinSize : size - Math.floor(size / 2));
        crushRule = cmd.crush_rule ?? crushOps.replicatedRuleId(map.crush);
      }
      if (minSize > size) throw new AspenError('EINVAL', `min_size ${minSize} exceeds size ${size}`);
      if (!crushOps.ruleExists(inc.crush ?? map.crush, crushRule)) throw new AspenError('ENOENT', `crush rule ${crushRule} does not exist`);
      // As Ceph's rule_valid_for_pool_type: an EC pool needs an erasure rule, a replicated pool a replicated one.
      if (crushOps.ruleType(inc.crush ?? map.crush, crushRule) !== type) throw new AspenError('EINVAL', `crush rule ${crushRule} type does not match pool`);
      const pool: Pool = {
        id, name: cmd.pool, type, size, minSize, pgNum, pgpNum, crushRule, erasureCodeProfile: profileName,
        applications: [], hashPsPool: true, createdEpoch: inc.epoch, lastChangeEpoch: inc.epoch, snapSeq: 0, removedSnaps: [],
      };
      inc.newPools.push(pool);
      inc.newPoolMax = id;
      return { inc, message: `pool '${cmd.pool}' created`, data: { pool_id: id } };
    }
    case 'osd pool rm': {
      const pool = poolByName(map, cmd.pool);
      if (cmd.pool2 !== cmd.pool || cmd.yes_i_really_really_mean_it !== true) {
        throw new AspenError('EPERM', `WARNING: this will *PERMANENTLY DESTROY* all data stored in pool ${cmd.pool}. If you are *ABSOLUTELY CERTAIN* that is what you want, pass the pool name *twice*, followed by --yes-i-really-really-mean-it.`);
      }
      if (!opts.allowPoolDelete) throw new AspenError('EPERM', 'pool deletion is disabled; you must first set the mon_allow_pool_delete config option to true before you can destroy a pool');
      inc.oldPools.push(pool.id);
      return { inc, message: `pool '${cmd.pool}' removed`, data: {} };
    }
    case 'osd pool rename': {
      const pool = poolByName(map, cmd.srcpool);
      for (const p of map.pools.values()) if (p.name === cmd.destpool) throw new AspenError('EEXIST', `pool '${cmd.destpool}' already exists`);
      inc.newPools.push({ ...pool, name: cmd.destpool, lastChangeEpoch: inc.epoch });
      return { inc, message: `pool '${cmd.srcpool}' renamed to '${cmd.destpool}'`, data: {} };
    }
    case 'osd pool set': {
      const pool = poolByName(map, cmd.pool);
      const next: Pool = { ...pool, applications: [...pool.applications], lastChangeEpoch: inc.epoch };
      switch (cmd.var) {
        case 'size': {
          if (pool.type === 'erasure') throw new AspenError('EINVAL', 'can not change the size of an erasure-coded pool');
          next.size = parseUint(cmd.val, 'size', 1, 16);
          if (next.minSize > next.size) next.minSize = next.size;
          break;
        }
        case 'min_size': {
          next.minSize = parseUint(cmd.val, 'min_size', 1, pool.size);
          if (pool.type === 'erasure') {
            const k = map.ecProfiles.get(pool.erasureCodeProfile)?.k ?? 1;
            if (next.minSize < k) throw new AspenError('EINVAL', `min_size must be at least k=${k}`);
          }
          break;
        }
        case 'pg_num': {
          next.pgNum = parseUint(cmd.val, 'pg_num', 1, 65536);
          if (next.pgNum < pool.pgNum) throw new AspenError('E_UNSUPPORTED', 'decreasing pg_num (PG merging) is not supported yet');
          next.pgpNum = next.pgNum; // as Ceph's autoscale-era behaviour: pgp_num follows pg_num
          break;
        }
        case 'pgp_num':
          next.pgpNum = parseUint(cmd.val, 'pgp_num', 1, pool.pgNum);
          break;
        case 'crush_rule': {
          const rule = crushOps.ruleIdByName(map.crush, cmd.val);
          if (rule === null) throw new AspenError('ENOENT', `crush rule ${cmd.val} does not exist`);
          if (crushOps.ruleType(map.crush, rule) !== pool.type) throw new AspenError('EINVAL', `crush rule ${cmd.val} type does not match pool`);
          next.crushRule = rule;
          break;
        }
        default:
          assertNever(cmd.var, 'pool variable');
      }
      inc.newPools.push(next);
      return { inc, message: `set pool ${pool.id} ${cmd.var} to ${cmd.val}`, data: {} };
    }
    case 'osd pool application enable': {
      const pool = poolByName(map, cmd.pool);
      if (pool.applications.includes(cmd.app)) return { inc: null, message: `enabled application '${cmd.app}' on pool '${cmd.pool}'`, data: {} };
      inc.newPools.push({ ...pool, applications: [...pool.applications, cmd.app].sort(), lastChangeEpoch: inc.epoch });
      return { inc, message: `enabled application '${cmd.app}' on pool '${cmd.pool}'`, data: {} };
    }
    case 'osd pool selfmanaged-snap create': {
      // Ceph pg_pool_t::add_unmanaged_snap: snapid = ++snap_seq. Exactly-once under retries comes
      // from the session table (a retried request gets this reply, not a second id).
      const pool = poolByName(map, cmd.pool);
      const snapid = pool.snapSeq + 1;
      inc.newPools.push({ ...pool, applications: [...pool.applications], removedSnaps: pool.removedSnaps.map(([a, b]) => [a, b]), snapSeq: snapid, lastChangeEpoch: inc.epoch });
      return { inc, message: `created pool ${pool.id} snap ${snapid}`, data: { snapid, epoch: inc.epoch } };
    }
    case 'osd pool selfmanaged-snap rm': {
      // Ceph OSDMonitor POOL_OP_DELETE_UNMANAGED_SNAP: removing an already removed snap succeeds
      // without a new epoch. (Ceph answers ENOENT for snapid > snap_seq; Aspen refuses 0 and
      // unallocated ids alike with EINVAL.) Unlike Ceph, snap_seq is not bumped by a removal.
      const pool = poolByName(map, cmd.pool);
      if (cmd.snapid === 0 || cmd.snapid > pool.snapSeq) throw new AspenError('EINVAL', `snap ${cmd.snapid} was never allocated in pool '${cmd.pool}' (snap_seq ${pool.snapSeq})`);
      if (isSnapRemoved(pool, cmd.snapid)) return { inc: null, message: `pool ${pool.id} snap ${cmd.snapid} already removed`, data: { epoch: map.epoch } };
      inc.newPools.push({ ...pool, applications: [...pool.applications], removedSnaps: insertRemovedSnap(pool.removedSnaps, cmd.snapid), lastChangeEpoch: inc.epoch });
      return { inc, message: `removed pool ${pool.id} snap ${cmd.snapid}`, data: { epoch: inc.epoch } };
    }
    case 'osd full': {
      const osd = map.osds.get(cmd.id);
      if (!osd?.exists) throw new AspenError('ENOENT', `osd.${cmd.id} does not exist`);
      if (osd.full === cmd.full && osd.nearfull === cmd.nearfull) return { inc: null, message: '', data: { epoch: map.epoch } };
      inc.newFullState.push({ id: cmd.id, full: cmd.full, nearfull: cmd.nearfull });
      return { inc, message: `osd.${cmd.id} ${cmd.full ? 'full' : cmd.nearfull ? 'nearfull' : 'not full'}`, data: { epoch: inc.epoch } };
    }
    case 'osd erasure-code-profile set': {
      const profile = parseEcProfile(cmd.name, cmd.profile);
      const old = map.ecProfiles.get(cmd.name);
      if (old !== undefined) {
        if (JSON.stringify(old) === JSON.stringify(profile)) return { inc: null, message: '', data: {} };
        const inUse = [...map.pools.values()].some((p) => p.erasureCodeProfile === cmd.name);
        if (inUse || cmd.force !== true) throw new AspenError('EPERM', `will not override erasure code profile ${cmd.name} because the existing profile ${JSON.stringify(old)} is different from the proposed profile`);
      }
      inc.newEcProfiles.push(profile);
      return { inc, message: '', data: {} };
    }
    case 'osd erasure-code-profile rm': {
      if (!map.ecProfiles.has(cmd.name)) return { inc: null, message: `erasure-code-profile ${cmd.name} does not exist`, data: {} };
      const user = [...map.pools.values()].find((p) => p.erasureCodeProfile === cmd.name);
      if (user) throw new AspenError('EBUSY', `erasure-code-profile ${cmd.name} is in use by pool '${user.name}'`);
      inc.oldEcProfiles.push(cmd.name);
      return { inc, message: '', data: {} };
    }
    case 'osd pg-temp': {
      const pool = Number(cmd.pgid.split('.')[0]);
      if (!map.pools.has(pool)) throw new AspenError('ENOENT', `pool ${pool} does not exist`);
      // An EC pool's pg_temp keeps positions: CRUSH_ITEM_NONE marks a hole (Ceph allows it for EC).
      for (const id of cmd.osds) if (!(id === CRUSH_ITEM_NONE && map.pools.get(pool)!.type === 'erasure')) requireOsd(map, id);
      inc.newPgTemp.push({ pgid: cmd.pgid, osds: cmd.osds });
      return { inc, message: `set ${cmd.pgid} pg_temp mapping to [${cmd.osds.join(',')}]`, data: {} };
    }
    default:
      return assertNever(cmd, 'osdmap command');
  }
}
