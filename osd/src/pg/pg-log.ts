/**
 * The PG log and missing sets (Ceph src/osd/PGLog.cc, PGLog.h; osd_types.h `pg_log_t`,
 * `pg_missing_t`): append, trim to a bounded length, dedup lookups, and merging a peer's
 * log with the authoritative one, rolling divergent entries back.
 *
 * Pure functions over immutable values: every function returns a new log or missing set.
 */
import { assert } from '@aspen/shared';
import { EVERSION_ZERO, evCmp, evStr, type Eversion, type LogEntry, type Missing, type MissingItem, type PgLogState, type ReqId } from './types.ts';

/** Default bound on log entries kept (Ceph `osd_min_pg_log_entries`; small so backfill happens). */
export const PG_LOG_MAX_ENTRIES_DEFAULT = 3000;
/** Default bound on dup entries kept for resent-op dedup after trimming (Ceph `osd_pg_log_dups_tracked`). */
export const PG_LOG_DUPS_MAX_DEFAULT = 3000;

/** An empty log at version zero. */
export function emptyLog(): PgLogState {
  return { tail: EVERSION_ZERO, head: EVERSION_ZERO, entries: [], dups: [] };
}

/**
 * Appends `entry` (Ceph `PGLog::add`).
 * @throws AssertionFailure when the entry is not newer than the head.
 */
export function appendEntry(log: PgLogState, entry: LogEntry): PgLogState {
  assert(evCmp(entry.version, log.head) > 0, `log entry ${evStr(entry.version)} not after head ${evStr(log.head)}`);
  assert(evCmp(entry.priorVersion, entry.version) < 0, 'prior version must precede the entry');
  return { tail: log.tail, head: entry.version, entries: [...log.entries, entry], dups: log.dups };
}

/**
 * Trims entries at or below `to` (Ceph `PGLog::trim`), remembering their request ids as dups
 * (at most `dupsMax`, oldest dropped first).
 * @throws AssertionFailure when `to` is beyond the head.
 */
export function trimLog(log: PgLogState, to: Eversion, dupsMax: number): PgLogState {
  assert(evCmp(to, log.head) <= 0, `trim to ${evStr(to)} beyond head ${evStr(log.head)}`);
  assert(dupsMax >= 0, 'dupsMax must be non-negative');
  if (evCmp(to, log.tail) <= 0) return log;
  const keep: LogEntry[] = [];
  const dups = [...log.dups];
  for (const e of log.entries) {
    if (evCmp(e.version, to) <= 0) {
      if (e.reqid !== null) dups.push({ reqid: e.reqid, version: e.version });
    } else keep.push(e);
  }
  return { tail: to, head: log.head, entries: keep, dups: dups.slice(Math.max(0, dups.length - dupsMax)) };
}

/**
 * The version to trim to so at most `maxEntries` remain, never beyond `limit` (the newest
 * version every member has persisted: Ceph's `min_last_complete_ondisk`). Returns the tail
 * when nothing should be trimmed.
 */
export function trimTarget(log: PgLogState, maxEntries: number, limit: Eversion): Eversion {
  assert(maxEntries >= 1, 'maxEntries must be at least 1');
  const excess = log.entries.length - maxEntries;
  if (excess <= 0) return log.tail;
  let to = log.entries[excess - 1]!.version;
  if (evCmp(to, limit) > 0) {
    // Trim only what every member has: the newest entry at or below the limit.
    to = log.tail;
    for (const e of log.entries) if (evCmp(e.version, limit) <= 0) to = e.version;
  }
  assert(evCmp(to, log.head) <= 0, 'trim target beyond head');
  return to;
}

/** Same request (Ceph `osd_reqid_t ==`). */
export function sameReqid(a: ReqId, b: ReqId): boolean {
  return a.client === b.client && a.tid === b.tid;
}

/** The version that request `reqid` got, from the log or its dups (Ceph `PGLog::get_request`). */
export function findReqid(log: PgLogState, reqid: ReqId): Eversion | undefined {
  assert(Number.isInteger(reqid.tid) && reqid.tid >= 0, 'request tids are non-negative integers');
  assert(log.dups.length === 0 || log.entries.length === 0 || evCmp(log.dups[log.dups.length - 1]!.version, log.entries[0]!.version) < 0, 'dups precede the log');
  for (let i = log.entries.length - 1; i >= 0; i--) {
    const e = log.entries[i]!;
    if (e.reqid !== null && sameReqid(e.reqid, reqid)) return e.version;
  }
  for (const d of log.dups) if (sameReqid(d.reqid, reqid)) return d.version;
  return undefined;
}

/** The newest entry for `object` in the log, if any. */
export function lastEntryFor(log: PgLogState, object: string): LogEntry | undefined {
  for (let i = log.entries.length - 1; i >= 0; i--) if (log.entries[i]!.object === object) return log.entries[i];
  return undefined;
}

/**
 * Ceph's last_complete: the newest version such that every object is present up to it
 * (the version just before the oldest missing need, or the head when nothing is missing).
 */
export function computeLastComplete(log: PgLogState, missing: Missing): Eversion {
  if (missing.size === 0) return log.head;
  let oldest: Eversion | undefined;
  for (const m of missing.values()) if (oldest === undefined || evCmp(m.need, oldest) < 0) oldest = m.need;
  let lc = log.tail;
  for (const e of log.entries) {
    if (evCmp(e.version, oldest!) >= 0) break;
    lc = e.version;
  }
  assert(evCmp(lc, log.head) <= 0, 'last_complete beyond head');
  return lc;
}

/** The outcome of {@link mergeLog}. */
export interface MergeResult {
  /** False when the logs do not overlap: the member must be backfilled instead. */
  readonly overlap: boolean;
  /** The member's new log (the authoritative one). */
  readonly log: PgLogState;
  /** The member's new missing set. */
  readonly missing: Missing;
  /** Objects the member must remove (deleted in the authoritative history, or created only by divergent entries). */
  readonly removals: readonly string[];
  /** The member's entries the authoritative log does not have, rolled back. */
  readonly divergent: readonly LogEntry[];
}

/**
 * Merges the authoritative log `auth` into a member's `local` log and missing set (Ceph
 * `PGLog::merge_log`, `_merge_divergent_entries`, and `proc_replica_log` on the primary,
 * which runs the same computation for a peer).
 *
 * Local entries newer than the last version both logs share are divergent: for each object
 * they touched with no newer authoritative entry, the object returns to the version before
 * the first divergent entry (missing at that version, or removed when it did not exist).
 * Authoritative entries after the shared point make their objects missing (modify) or
 * removed (delete). When the shared point precedes `auth.tail`, nothing is merged and
 * `overlap` is false.
 */
export function mergeLog(local: PgLogState, localMissing: Missing, auth: PgLogState): MergeResult {
  assert(evCmp(auth.tail, auth.head) <= 0 && evCmp(local.tail, local.head) <= 0, 'log tail after head');
  const authVersions = new Set(auth.entries.map((e) => evStr(e.version)));
  let i = local.entries.length - 1;
  const divergent: LogEntry[] = [];
  for (; i >= 0; i--) {
    const e = local.entries[i]!;
    if (evCmp(e.version, auth.tail) <= 0 || authVersions.has(evStr(e.version))) break;
    divergent.unshift(e);
  }
  let common = i >= 0 ? local.entries[i]!.version : local.tail;
  // An empty (or fully divergent) log whose tail is past the authoritative head agrees up to it.
  if (evCmp(common, auth.head) > 0) common = auth.head;
  if (evCmp(common, auth.tail) < 0) {
    return { overlap: false, log: local, missing: localMissing, removals: [], divergent };
  }
  const missing = new Map<string, MissingItem>(localMissing);
  const removals = new Set<string>();
  const newer = auth.entries.filter((e) => evCmp(e.version, common) > 0);
  const touchedByAuth = new Set(newer.map((e) => e.object));
  const rolledBack = new Set<string>();
  for (const d of divergent) {
    if (touchedByAuth.has(d.object) || rolledBack.has(d.object)) continue;
    rolledBack.add(d.object);
    if (evCmp(d.priorVersion, EVERSION_ZERO) === 0) {
      missing.delete(d.object);
      removals.add(d.object);
    } else {
      missing.set(d.object, { need: d.priorVersion, have: EVERSION_ZERO });
    }
  }
  for (const e of newer) {
    if (e.op !== 'modify') {
      missing.delete(e.object);
      removals.add(e.object);
    } else {
      const have = missing.get(e.object)?.have ?? e.priorVersion;
      missing.set(e.object, { need: e.version, have });
    }
  }
  // A removal followed by a re-creation keeps the removal (stale bytes go) and the missing item.
  const log: PgLogState = { tail: auth.tail, head: auth.head, entries: auth.entries, dups: auth.dups };
  assert(evCmp(log.head, auth.head) === 0, 'merged head is the authoritative head');
  return { overlap: true, log, missing, removals: [...removals], divergent };
}
