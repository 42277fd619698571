/**
 * The monitors' replicated state machine: applies committed Raft entries (command
 * envelopes and membership changes) to {@link MonState}. Deterministic — the same entries
 * give the same state and results on every member; the only clock is the leader's stamp
 * carried in each envelope. Exactly-once per client session (Raft thesis §6.3): a retried
 * (clientId, seq) gets the first application's result, never a second application.
 */
import { AspenError, assert, assertNever } from '@aspen/shared';
import { applyIncremental } from '@aspen/shared/osdmap/incremental.ts';
import type { MonMap, OsdMap, OsdMapIncremental } from '@aspen/shared/osdmap/types.ts';
import type { ConfChange } from '../raft/types.ts';
import type { CommandEnvelope, CommandResult, MutatingCommand } from './command.ts';
import { prepareOsdMapCommand, type OsdMapCommandOptions } from './osd-commands.ts';
import { CLIENT_SESSIONS_MAX, INCREMENTALS_KEPT_MAX, SESSION_RESULTS_MAX, type MonState, type PgStat } from './state.ts';
import * as crushOps from './crush-ops.ts';
import { applyS3Command } from './s3-users.ts';
import { applyFsCommand, emptyFsMap, fsUsingPool } from './fs-commands.ts';

/**
 * The state machine's part of a membership change (the `context` of a Raft ConfChange):
 * the member's address and the proposer's clock, JSON. A bare address (no JSON) is accepted.
 */
export interface ConfChangeContext {
  addr: string;
  stampMs: number;
}

/** Encodes a ConfChange context. */
export function encodeConfChangeContext(ctx: ConfChangeContext): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(ctx));
}

/** Decodes a ConfChange context; malformed input yields an empty address and `fallbackStampMs`. */
export function decodeConfChangeContext(bytes: Uint8Array, fallbackStampMs: number): ConfChangeContext {
  const text = new TextDecoder().decode(bytes);
  if (!text.startsWith('{')) return { addr: text, stampMs: fallbackStampMs };
  try {
    const v = JSON.parse(text) as Partial<ConfChangeContext>;
    return {
      addr: typeof v.addr === 'string' ? v.addr : '',
      stampMs: typeof v.stampMs === 'number' && Number.isSafeInteger(v.stampMs) && v.stampMs >= 0 ? v.stampMs : fallbackStampMs,
    };
  } catch {
    return { addr: '', stampMs: fallbackStampMs };
  }
}

/** Effects of applying one entry that the daemon acts on (notify subscribers etc.). */
export interface ApplyEffects {
  /** New OSDMap incrementals, in epoch order. */
  incrementals: OsdMapIncremental[];
  monMapChanged: boolean;
  configChanged: boolean;
}

/** Creates the initial state of a new cluster (`aspen-mon --mkfs`). */
export function initialMonState(fsid: string, mons: { name: string; addr: string }[], createdMs: number): MonState {
  assert(mons.length > 0, 'a cluster needs at least one monitor');
  const monMap: MonMap = { fsid, epoch: 1, mons: mons.map((m) => ({ ...m })), modifiedMs: createdMs };
  const osdMap: OsdMap = {
    fsid, epoch: 1, createdMs, modifiedMs: createdMs, maxOsd: 0, osds: new Map(), pools: new Map(), poolMax: 0,
    ecProfiles: new Map([['default', { name: 'default', k: 2, m: 1, stripeUnitBytes: 4096, crushFailureDomain: 'host', plugin: 'jerasure', technique: 'reed_sol_van' }]]),
    crush: crushOps.initialCrushMap(), pgTemp: new Map(), flags: new Set(),
  };
  return { fsid, monMap, osdMap, incrementals: [], pgStats: new Map(), config: new Map(), sessions: new Map(), s3Users: new Map(), fsMap: emptyFsMap(), appliedIndex: 0 };
}

/** Reads a boolean config option with Ceph's spelling (`true`/`false`/`1`/`0`). */
function configBool(state: MonState, name: string, dflt: boolean): boolean {
  const v = state.config.get('mon')?.get(name) ?? state.config.get('global')?.get(name);
  if (v === undefined) return dflt;
  return v === 'true' || v === '1' || v === 'yes';
}

/**
 * Numeric options the monitors interpret, and the values they accept. As Ceph does, a bad
 * value is refused at `config set`: a pool built from `osd_pool_default_pg_num = -5` would
 * be committed and then fail to encode on every monitor.
 */
export const CONFIG_NUMERIC_OPTIONS: Readonly<Record<string, { min: number; max: number; integer: boolean }>> = {
  osd_pool_default_size: { min: 1, max: 16, integer: true },
  osd_pool_default_min_size: { min: 0, max: 16, integer: true },
  osd_pool_default_pg_num: { min: 1, max: 65536, integer: true },
  mon_osd_min_down_reporters: { min: 1, max: 10_000, integer: true },
  mon_osd_down_out_interval: { min: 0, max: 1e9, integer: false },
  mon_osd_report_timeout: { min: 0, max: 1e9, integer: false },
};
const CONFIG_BOOL_OPTIONS: ReadonlySet<string> = new Set(['mon_allow_pool_delete']);
const BOOL_VALUES: ReadonlySet<string> = new Set(['true', 'false', '1', '0', 'yes', 'no']);

/** Whether `value` is acceptable for option `name` (unknown options accept anything). */
function configValueError(name: string, value: string): string | null {
  const range = CONFIG_NUMERIC_OPTIONS[name];
  if (range !== undefined) {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isFinite(n) || n < range.min || n > range.max || (range.integer && !Number.isInteger(n))) {
      return `error parsing value: '${value}' for ${name}: expected ${range.integer ? 'an integer' : 'a number'} in [${range.min}, ${range.max}]`;
    }
  }
  if (CONFIG_BOOL_OPTIONS.has(name) && !BOOL_VALUES.has(value)) return `error parsing value: '${value}' for ${name}: expected true or false`;
  return null;
}

function configInt(state: MonState, who: string, name: string, dflt: number): number {
  const v = state.config.get(who)?.get(name) ?? state.config.get('global')?.get(name);
  if (v === undefined || configValueError(name, v) !== null) return dflt;
  return Number(v);
}

/** Command options derived from the replicated config. */
export function osdMapCommandOptions(state: MonState): OsdMapCommandOptions {
  return {
    allowPoolDelete: configBool(state, 'mon_allow_pool_delete', false),
    defaultSize: configInt(state, 'osd', 'osd_pool_default_size', 3),
    defaultMinSize: configInt(state, 'osd', 'osd_pool_default_min_size', 0),
    defaultPgNum: configInt(state, 'osd', 'osd_pool_default_pg_num', 32),
  };
}

/** The state machine. Owns `state`; the daemon reads it between applies. */
export class MonStateMachine {
  constructor(public state: MonState) {}

  /**
   * Applies a command envelope committed at Raft `index`.
   * Refusals (AspenError) become a failed result; the state is unchanged by a refusal.
   * @throws AssertionFailure if `index` does not follow the last applied index.
   */
  applyCommand(index: number, env: CommandEnvelope): { result: CommandResult; effects: ApplyEffects } {
    assert(index === this.state.appliedIndex + 1, `apply index ${index} after ${this.state.appliedIndex}`);
    const effects: ApplyEffects = { incrementals: [], monMapChanged: false, configChanged: false };
    this.state.appliedIndex = index;
    const session = env.clientId === '' ? undefined : this.state.sessions.get(env.clientId);
    if (session !== undefined) {
      const cached = session.results.get(env.seq);
      if (cached !== undefined) {
        session.lastUsedIndex = index;
        return { result: JSON.parse(cached) as CommandResult, effects };
      }
      if (env.seq <= session.floorSeq) {
        return { result: { code: 'EINVAL', message: `stale request seq ${env.seq} (results at or below ${session.floorSeq} are forgotten)`, data: null }, effects };
      }
    }
    let result: CommandResult;
    try {
      result = this.execute(env.command, env.stampMs, effects);
    } catch (err) {
      if (!(err instanceof AspenError)) throw err;
      result = { code: err.code, message: err.message, data: err.details };
    }
    if (env.clientId !== '') this.recordSession(env.clientId, env.seq, result, index);
    assert(this.state.incrementals.length === 0 || this.state.incrementals.at(-1)!.epoch === this.state.osdMap.epoch, 'incrementals end at the map epoch');
    return { result, effects };
  }

  private recordSession(clientId: string, seq: number, result: CommandResult, index: number): void {
    let session = this.state.sessions.get(clientId);
    if (session === undefined) {
      session = { floorSeq: 0, results: new Map(), lastUsedIndex: index };
      this.state.sessions.set(clientId, session);
    }
    session.results.set(seq, JSON.stringify(result));
    session.lastUsedIndex = index;
    if (session.results.size > SESSION_RESULTS_MAX) {
      // Drop the lowest seq (not the first applied: a window may apply out of order).
      let min = Infinity;
      for (const s of session.results.keys()) min = Math.min(min, s);
      session.results.delete(min);
      session.floorSeq = Math.max(session.floorSeq, min);
    }
    if (this.state.sessions.size > CLIENT_SESSIONS_MAX) {
      // Deterministic eviction: the least recently used session (ties impossible: indexes are unique).
      let oldest: string | null = null;
      let oldestIndex = Infinity;
      for (const [id, s] of this.state.sessions) if (s.lastUsedIndex < oldestIndex) { oldest = id; oldestIndex = s.lastUsedIndex; }
      if (oldest !== null) this.state.sessions.delete(oldest);
    }
  }

  private commitIncremental(inc: OsdMapIncremental, effects: ApplyEffects): void {
    applyIncremental(this.state.osdMap, inc);
    this.state.incrementals.push(inc);
    if (this.state.incrementals.length > INCREMENTALS_KEPT_MAX) this.state.incrementals.shift();
    effects.incrementals.push(inc);
  }

  private execute(cmd: MutatingCommand, stampMs: number, effects: ApplyEffects): CommandResult {
    switch (cmd.prefix) {
      case 'mon init':
        return { code: 0, message: 'cluster already initialized', data: {} };
      case 'pg stats':
        return this.applyPgStats(cmd, stampMs);
      case 'config set':
      case 'config rm': {
        if (cmd.prefix === 'config set') {
          const bad = configValueError(cmd.name, cmd.value);
          if (bad !== null) throw new AspenError('EINVAL', bad);
        }
        const section = this.state.config.get(cmd.who) ?? new Map<string, string>();
        if (cmd.prefix === 'config set') section.set(cmd.name, cmd.value);
        else section.delete(cmd.name);
        if (section.size === 0) this.state.config.delete(cmd.who);
        else this.state.config.set(cmd.who, section);
        effects.configChanged = true;
        return { code: 0, message: '', data: {} };
      }
      case 's3 user create':
      case 's3 user rm':
      case 's3 key create':
      case 's3 key rm':
        return applyS3Command(this.state.s3Users, cmd, stampMs);
      case 'fs new':
      case 'fs rm':
      case 'fs mknod':
      case 'fs mkdir':
      case 'fs symlink':
      case 'fs link':
      case 'fs unlink':
      case 'fs rmdir':
      case 'fs rename':
      case 'fs setattr':
      case 'fs setxattr':
      case 'fs removexattr':
      case 'fs purge-inode':
        return applyFsCommand(this.state.fsMap, this.state.osdMap, cmd, stampMs);
      default: {
        if (cmd.prefix === 'osd pool rm') {
          // Ceph: a pool a filesystem uses cannot be deleted (EBUSY) until the filesystem is removed.
          const pool = [...this.state.osdMap.pools.values()].find((p) => p.name === cmd.pool);
          const user = pool === undefined ? undefined : fsUsingPool(this.state.fsMap, pool.id);
          if (user !== undefined) throw new AspenError('EBUSY', `pool '${cmd.pool}' is in use by filesystem '${user}'`);
        }
        const out = prepareOsdMapCommand(this.state.osdMap, cmd, stampMs, osdMapCommandOptions(this.state));
        if (out.inc !== null) this.commitIncremental(out.inc, effects);
        if (cmd.prefix === 'osd pool rm' && out.inc !== null) {
          const poolId = out.inc.oldPools[0]!;
          for (const pgid of [...this.state.pgStats.keys()]) if (pgid.startsWith(`${poolId}.`)) this.state.pgStats.delete(pgid);
        }
        return { code: 0, message: out.message, data: out.data };
      }
    }
  }

  private applyPgStats(cmd: Extract<MutatingCommand, { prefix: 'pg stats' }>, stampMs: number): CommandResult {
    let accepted = 0;
    for (const pg of cmd.pgs) {
      const pool = this.state.osdMap.pools.get(Number(pg.pgid.split('.')[0]));
      if (pool === undefined || parseInt(pg.pgid.split('.')[1]!, 16) >= pool.pgNum) continue;
      const old = this.state.pgStats.get(pg.pgid);
      // Ignore a report older than what we have from a newer epoch (a stale primary).
      if (old !== undefined && old.reportedEpoch > cmd.epoch) continue;
      const stat: PgStat = {
        pgid: pg.pgid, state: pg.state, up: pg.up, acting: pg.acting, numObjects: pg.num_objects, numBytes: pg.num_bytes,
        lastScrubMs: pg.last_scrub_ms ?? old?.lastScrubMs ?? 0, lastDeepScrubMs: pg.last_deep_scrub_ms ?? old?.lastDeepScrubMs ?? 0,
        recoveryObjectsMissing: pg.recovery_objects_missing ?? 0, reporter: cmd.osd, reportedEpoch: cmd.epoch, reportedMs: stampMs,
      };
      this.state.pgStats.set(pg.pgid, stat);
      accepted++;
    }
    return { code: 0, message: `accepted ${accepted} of ${cmd.pgs.length} pg stats`, data: { accepted } };
  }

  /**
   * Applies a committed membership change at Raft `index`: updates the MonMap
   * (context = the new member's address as UTF-8).
   */
  applyConfChange(index: number, cc: ConfChange): ApplyEffects {
    assert(index === this.state.appliedIndex + 1, `apply index ${index} after ${this.state.appliedIndex}`);
    this.state.appliedIndex = index;
    const monMap = this.state.monMap;
    const ctx = decodeConfChangeContext(cc.context, monMap.modifiedMs);
    const stampMs = ctx.stampMs;
    const mons = monMap.mons.filter((m) => m.name !== cc.nodeId);
    switch (cc.type) {
      case 'add_voter':
      case 'add_learner': {
        const addr = ctx.addr;
        const old = monMap.mons.find((m) => m.name === cc.nodeId);
        mons.push({ name: cc.nodeId, addr: addr !== '' ? addr : old?.addr ?? '' });
        mons.sort((a, b) => a.name.localeCompare(b.name));
        break;
      }
      case 'remove_node':
        break;
      default:
        assertNever(cc.type, 'conf change type');
    }
    this.state.monMap = { ...monMap, epoch: monMap.epoch + 1, mons, modifiedMs: stampMs };
    return { incrementals: [], monMapChanged: true, configChanged: false };
  }

  /** Marks an entry with no state effect (the leader's no-op) as applied. */
  applyNoop(index: number): void {
    assert(index === this.state.appliedIndex + 1, `apply index ${index} after ${this.state.appliedIndex}`);
    this.state.appliedIndex = index;
  }
}
