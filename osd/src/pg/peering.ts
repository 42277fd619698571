/**
 * Peering decisions, pure (Ceph src/osd/PeeringState.cc, osd_types.cc `PastIntervals`):
 * interval boundaries, past intervals and the prior set, `find_best_info`, and
 * `calc_replicated_acting`. The state machine that uses them lives in ./pg.ts.
 *
 * Simplification relative to Ceph (ADR 0006): there is no `up_thru`, so every past
 * interval whose acting set reached `min_size` is assumed to have accepted writes
 * (`maybe_went_rw`). That is conservative — it can only make a PG wait (`down`) longer.
 */
import { assert } from '@aspen/shared';
import { mergeLog } from './pg-log.ts';
import { evCmp, shardOf, type MapHistory, type PgInfo, type PgMapping, type PgMeta } from './types.ts';

/** A past interval (Ceph `PastIntervals::pg_interval_t`): epochs [first, last] with one mapping. */
export interface PastInterval {
  readonly first: number;
  readonly last: number;
  readonly up: readonly number[];
  readonly acting: readonly number[];
  readonly primary: number;
  /** Whether the interval may have accepted writes: its acting set reached min_size. */
  readonly maybeWentRw: boolean;
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Whether moving from mapping `a` to `b` starts a new interval (Ceph
 * `PastIntervals::is_new_interval`): up or acting set, either primary, size or min_size changed.
 */
export function isNewInterval(a: PgMapping, b: PgMapping): boolean {
  return !sameSet(a.up, b.up) || !sameSet(a.acting, b.acting) || a.upPrimary !== b.upPrimary ||
    a.actingPrimary !== b.actingPrimary || a.size !== b.size || a.minSize !== b.minSize;
}

/**
 * The first epoch of the interval that contains `epoch` (Ceph `same_interval_since`).
 * @throws AssertionFailure when the PG has no mapping at `epoch`.
 */
export function intervalStart(history: MapHistory, pgid: string, epoch: number): number {
  const cur = history.mappingAt(pgid, epoch);
  assert(cur !== undefined, `no mapping of ${pgid} at epoch ${epoch}`);
  let e = epoch;
  while (e > 1) {
    const prev = history.mappingAt(pgid, e - 1);
    if (prev === undefined || isNewInterval(prev, cur)) break;
    e--;
  }
  assert(e >= 1 && e <= epoch, 'interval start within [1, epoch]');
  return e;
}

/**
 * The intervals covering epochs [from, before) (Ceph `PastIntervals::check_new_interval`
 * applied epoch by epoch). Epochs at which the PG did not exist are skipped.
 */
export function pastIntervals(history: MapHistory, pgid: string, from: number, before: number): PastInterval[] {
  assert(from >= 1, 'epochs start at 1');
  const out: PastInterval[] = [];
  let first = -1;
  let cur: PgMapping | undefined;
  const close = (last: number): void => {
    if (cur === undefined) return;
    out.push({
      first, last, up: cur.up, acting: cur.acting, primary: cur.actingPrimary,
      maybeWentRw: cur.actingPrimary >= 0 && cur.acting.length >= cur.minSize,
    });
  };
  for (let e = from; e < before; e++) {
    const m = history.mappingAt(pgid, e);
    if (m === undefined) {
      close(e - 1);
      cur = undefined;
      continue;
    }
    if (cur === undefined || isNewInterval(cur, m)) {
      close(e - 1);
      cur = m;
      first = e;
    }
  }
  close(before - 1);
  assert(out.every((i) => i.first <= i.last), 'intervals are non-empty');
  return out;
}

/** Ceph `PastIntervals::PriorSet`: whom to probe, and whether peering is blocked. */
export interface PriorSet {
  /** Up OSDs whose info the primary must have before choosing (includes the current up and acting sets). */
  readonly probe: ReadonlySet<number>;
  /** Down OSDs of past intervals that may have accepted writes. */
  readonly down: ReadonlySet<number>;
  /** An interval that may have accepted writes has no member up now: the PG is `down`. */
  readonly blocked: boolean;
}

/**
 * Builds the prior set (Ceph `PastIntervals::PriorSet` / `build_prior`): for every past
 * interval ending at or after `lastEpochStarted` that may have gone read-write, at least one
 * of its acting members must be up now — they are all probed; if none is, the PG is blocked
 * (`down`) until one returns, because only they can prove which writes were acknowledged.
 */
export function buildPriorSet(intervals: readonly PastInterval[], current: PgMapping, lastEpochStarted: number): PriorSet {
  const ecK = current.ec?.k ?? 0;
  const probe = new Set<number>();
  const down = new Set<number>();
  for (const o of [...current.up, ...current.acting]) if (o >= 0 && current.isUp(o)) probe.add(o);
  let blocked = false;
  for (const iv of intervals) {
    if (iv.last < lastEpochStarted || !iv.maybeWentRw) continue;
    // Ceph IsPGRecoverablePredicate: one copy of a replicated interval, k distinct shards of an EC one.
    const upShards = new Set<number>();
    for (const o of iv.acting) {
      if (o < 0) continue;
      if (current.isUp(o)) {
        probe.add(o);
        upShards.add(ecK > 0 ? shardOf(o) : 0);
      } else down.add(o);
    }
    if (upShards.size < Math.max(1, ecK)) blocked = true;
  }
  assert(!blocked || down.size > 0, 'a blocked prior set names down OSDs');
  assert([...probe].every((o) => current.isUp(o)), 'only up OSDs are probed');
  return { probe, down, blocked };
}

/**
 * Ceph `PeeringState::find_best_info`: among complete copies (not mid-backfill), the newest
 * `last_epoch_started`, then the newest `last_update`, then the longest log (oldest tail),
 * then the current primary, then the lowest OSD id. Undefined when no copy is complete.
 *
 * Erasure-coded PGs (`ecK` = k > 0): an entry is only worth keeping if k shards have it
 * (fewer cannot rebuild the object), so the last_update chosen is the k-th newest among the
 * complete members of the newest last_epoch_started (the oldest when fewer than k): entries
 * beyond it are rolled back on the members that have them. Ceph's EC pools pick the oldest
 * last_update and roll back with per-shard stashes (`require_rollback`); without stashes,
 * picking the k-th newest keeps every entry that is reconstructible, and an acknowledged
 * write always is (all acting members had it, and peering waits for k of them — see
 * {@link buildPriorSet}).
 */
export function findBestInfo(infos: ReadonlyMap<number, PgInfo>, primary: number, ecK = 0): number | undefined {
  let best: number | undefined;
  let bestInfo: PgInfo | undefined;
  let candidates = [...infos.entries()].sort((a, b) => a[0] - b[0]);
  if (ecK > 0) {
    const complete = candidates.filter(([, i]) => i.lastBackfill === null);
    const maxLes = Math.max(-1, ...complete.map(([, i]) => i.lastEpochStarted));
    const newest = complete.filter(([, i]) => i.lastEpochStarted === maxLes).map(([, i]) => i.lastUpdate).sort((a, b) => evCmp(b, a));
    const bound = newest[Math.min(ecK, newest.length) - 1];
    // Keep only copies not beyond the bound; among them the newest wins as usual.
    if (bound !== undefined) candidates = candidates.filter(([, i]) => i.lastEpochStarted !== maxLes || evCmp(i.lastUpdate, bound) <= 0);
  }
  for (const [osd, info] of candidates) {
    if (info.lastBackfill !== null) continue;
    if (bestInfo === undefined) {
      best = osd;
      bestInfo = info;
      continue;
    }
    const les = info.lastEpochStarted - bestInfo.lastEpochStarted;
    const lu = evCmp(info.lastUpdate, bestInfo.lastUpdate);
    const tail = evCmp(bestInfo.logTail, info.logTail);
    const better = les !== 0 ? les > 0 : lu !== 0 ? lu > 0 : tail !== 0 ? tail > 0 : osd === primary && best !== primary;
    if (better) {
      best = osd;
      bestInfo = info;
    }
  }
  assert(best === undefined || infos.get(best)?.lastBackfill === null, 'the best copy is complete');
  assert((best === undefined) === (bestInfo === undefined), 'best and its info agree');
  return best;
}

/** Whether a member's copy can be brought up to `auth` by log-based recovery. */
export function canLogRecover(peer: PgMeta, auth: PgMeta): boolean {
  if (peer.info.lastBackfill !== null) return false;
  return mergeLog(peer.log, peer.missing, auth.log).overlap;
}

/** The acting set the primary wants and the up members to backfill (Ceph `calc_replicated_acting`). */
export interface ActingChoice {
  /** Wanted acting set, primary first. */
  readonly want: readonly number[];
  /** Up members that need a backfill (not in `want`). */
  readonly backfill: readonly number[];
}

/**
 * Ceph `calc_replicated_acting`: the up primary stays primary if it can be log-recovered,
 * otherwise the authoritative member leads; then every up member that can be log-recovered;
 * then, if short of `size`, usable members of the current acting set and other peers. Up
 * members left out are backfilled while the wanted set serves (through pg_temp).
 */
export function chooseActing(
  current: PgMapping, metas: ReadonlyMap<number, PgMeta>, authOsd: number, size: number,
): ActingChoice {
  const auth = metas.get(authOsd);
  assert(auth !== undefined, `no meta for the authoritative osd.${authOsd}`);
  const usable = (o: number): boolean => {
    const m = metas.get(o);
    return m !== undefined && current.isUp(o) && (o === authOsd || canLogRecover(m, auth));
  };
  const primary = current.upPrimary >= 0 && usable(current.upPrimary) ? current.upPrimary : authOsd;
  const want: number[] = [primary];
  for (const o of current.up) if (o !== primary && usable(o) && want.length < size) want.push(o);
  const backfill = current.up.filter((o) => !want.includes(o));
  const extra = [...current.acting, ...[...metas.keys()].sort((a, b) => a - b)];
  for (const o of extra) if (want.length < size && !want.includes(o) && usable(o)) want.push(o);
  assert(want.length >= 1 && want.length <= Math.max(size, 1), 'wanted acting set within [1, size]');
  return { want, backfill };
}

/**
 * Ceph `calc_ec_acting`: position by position (shard i), the up member if it can be
 * log-recovered, else the current acting member of that shard, else any other peer holding
 * that shard that can; a position with none stays a hole. Up members left out are
 * backfilled (their shard is rebuilt from the others) while the wanted set serves.
 */
export function chooseActingEc(current: PgMapping, metas: ReadonlyMap<number, PgMeta>, authMember: number, size: number): ActingChoice {
  const auth = metas.get(authMember);
  assert(auth !== undefined && current.ec !== undefined, `no meta for the authoritative member ${authMember}`);
  const usable = (o: number): boolean => {
    const m = metas.get(o);
    return m !== undefined && current.isUp(o) && (o === authMember || canLogRecover(m, auth));
  };
  const want: number[] = [];
  const backfill: number[] = [];
  const peers = [...metas.keys()].sort((a, b) => a - b);
  for (let shard = 0; shard < size; shard++) {
    const up = current.up.find((o) => shardOf(o) === shard);
    const acting = current.acting.find((o) => shardOf(o) === shard);
    const pick = [up, acting, ...peers.filter((o) => shardOf(o) === shard)].find((o) => o !== undefined && usable(o));
    if (pick !== undefined) want.push(pick);
    if (up !== undefined && up !== pick) backfill.push(up);
  }
  assert(want.every((o, i) => i === 0 || shardOf(o) > shardOf(want[i - 1]!)), 'wanted members in shard order');
  return { want, backfill };
}

/** Whether two OSD lists are equal, in order. */
export function sameOsds(a: readonly number[], b: readonly number[]): boolean {
  return sameSet(a, b);
}
