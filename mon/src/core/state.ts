/**
 * The monitors' replicated state: what every member's state machine holds after applying
 * the same committed Raft entries (DESIGN.md "Cluster state").
 */
import type { MonMap, OsdMap, OsdMapIncremental } from '@aspen/shared/osdmap/types.ts';
import type { S3User } from './s3-users.ts';
import type { FsMap } from './fs-commands.ts';

/** Statistics a PG's primary reports (Ceph pg_stat_t, abridged). */
export interface PgStat {
  pgid: string;
  /** Ceph state string, e.g. `active+clean`, `active+undersized+degraded`. */
  state: string;
  up: number[];
  acting: number[];
  numObjects: number;
  numBytes: number;
  lastScrubMs: number;
  lastDeepScrubMs: number;
  /** Objects still to recover (0 when clean). */
  recoveryObjectsMissing: number;
  /** OSD that reported it and at which map epoch. */
  reporter: number;
  reportedEpoch: number;
  /** Leader's clock at apply, ms since the Unix epoch. */
  reportedMs: number;
}

/**
 * A client session's dedup record (Raft thesis §6.3). A client may have several requests
 * in flight, so the session keeps the results of its most recent
 * {@link SESSION_RESULTS_MAX} sequence numbers; a seq at or below `floorSeq` whose result
 * was dropped is refused as stale rather than applied twice.
 */
export interface ClientSession {
  /** Seqs <= floorSeq that are not in `results` are stale. */
  floorSeq: number;
  /** seq → encoded JSON of its result, returned again on a retry. */
  results: Map<number, string>;
  /** Raft index of the last use, for deterministic eviction of the oldest sessions. */
  lastUsedIndex: number;
}

/** Results remembered per client session (its in-flight window). */
export const SESSION_RESULTS_MAX = 256;

/** The whole replicated state. */
export interface MonState {
  fsid: string;
  monMap: MonMap;
  osdMap: OsdMap;
  /** Recent incrementals, oldest first, contiguous and ending at osdMap.epoch. */
  incrementals: OsdMapIncremental[];
  pgStats: Map<string, PgStat>;
  /** Config keys: `who` (`global`, `mon`, `osd`, `osd.3`) → name → value. */
  config: Map<string, Map<string, string>>;
  sessions: Map<string, ClientSession>;
  /** S3 users by uid (s3-users.ts). */
  s3Users: Map<string, S3User>;
  /** Filesystems and their namespaces (fs-commands.ts, fs-namespace.ts). */
  fsMap: FsMap;
  /** Raft index of the last applied entry. */
  appliedIndex: number;
}

/** How many incrementals the monitors keep for subscribers before sending full maps. */
export const INCREMENTALS_KEPT_MAX = 500;
/** How many client sessions are kept; beyond it the least recently used are evicted. */
export const CLIENT_SESSIONS_MAX = 10_000;
