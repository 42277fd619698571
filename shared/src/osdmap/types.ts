/**
 * The cluster maps the monitors hold (DESIGN.md "Cluster state"), after Ceph's MonMap,
 * OSDMap and OSDMap::Incremental. Every change to a map is an incremental that takes it
 * from epoch `e` to `e + 1`; the monitors commit incrementals through Raft and subscribers
 * receive them in order (or a full map when too far behind).
 *
 * The maps are plain data (mutable in place by {@link ./incremental.ts}); codecs live in
 * `./codec.ts`.
 */
import type { CrushMap } from '../crush/types.ts';

/** 16.16 fixed-point weight meaning 1.0 — an OSD that is fully `in` (Ceph CEPH_OSD_IN). */
export const WEIGHT_IN = 0x10000;
/** Reweight 0 — the OSD is `out` (Ceph CEPH_OSD_OUT). */
export const WEIGHT_OUT = 0;

/** One monitor: its name and the address (host:port) of its gRPC endpoint. */
export interface MonInfo {
  name: string;
  addr: string;
}

/** The monitor membership (Ceph MonMap). Changes with every committed membership change. */
export interface MonMap {
  fsid: string;
  epoch: number;
  mons: MonInfo[];
  /** When the map was last changed, ms since the Unix epoch (the leader's clock). */
  modifiedMs: number;
}

/** An erasure-code profile (Ceph `osd erasure-code-profile set`). */
export interface ErasureCodeProfile {
  name: string;
  /** Data chunks per stripe. */
  k: number;
  /** Coding chunks per stripe. */
  m: number;
  /** Bytes of one chunk of one stripe (Ceph `stripe_unit`), default 4096. */
  stripeUnitBytes: number;
  /** CRUSH bucket type the chunks are spread over, default `host`. */
  crushFailureDomain: string;
  /** Ceph's plugin/technique names, kept for operators; Aspen implements reed_sol_van. */
  plugin: string;
  technique: string;
}

export type PoolType = 'replicated' | 'erasure';

/** A pool (Ceph pg_pool_t): how its objects are placed and protected. */
export interface Pool {
  id: number;
  name: string;
  type: PoolType;
  /** Replicas (replicated) or k+m chunks (erasure). */
  size: number;
  /** Members required for the PG to accept I/O. */
  minSize: number;
  pgNum: number;
  /** Placement PG count (Ceph pgp_num), <= pgNum. */
  pgpNum: number;
  crushRule: number;
  /** EC profile name for erasure pools, '' otherwise. */
  erasureCodeProfile: string;
  /** Application tags (`rbd`, `rgw`, `cephfs`), Ceph `osd pool application enable`. */
  applications: string[];
  /** Ceph FLAG_HASHPSPOOL: placement seed mixes the pool id (always true for new pools). */
  hashPsPool: boolean;
  createdEpoch: number;
  lastChangeEpoch: number;
  /**
   * Newest self-managed snap id allocated in this pool (Ceph pg_pool_t::snap_seq); 0 before
   * the first `osd pool selfmanaged-snap create`. Ids are allocated as `snapSeq + 1` and never reused.
   */
  snapSeq: number;
  /**
   * Removed snap ids (Ceph pg_pool_t::removed_snaps, an interval_set): sorted, disjoint,
   * non-adjacent intervals `[start, length]` covering ids `start .. start + length - 1`, each
   * `start >= 1`, `length >= 1`, ending at or below `snapSeq`. Kept compact by
   * `insertRemovedSnap` (./snaps.ts), which merges neighbours; query with `isSnapRemoved`.
   */
  removedSnaps: SnapInterval[];
}

/** A run of snap ids `[start, length]`: ids `start .. start + length - 1` (Ceph interval_set's `start~len`). */
export type SnapInterval = [start: number, length: number];

/** One OSD's entry in the OSDMap. */
export interface OsdInfo {
  id: number;
  /** Random uuid chosen at mkfs; a boot with another uuid for the same id is refused. */
  uuid: string;
  exists: boolean;
  up: boolean;
  /** Reweight, 16.16 fixed point: WEIGHT_IN (in) .. WEIGHT_OUT (out). */
  weight: number;
  /** Data-plane address host:port ('' when never booted). */
  addr: string;
  /** Host name the OSD reported; its CRUSH location. */
  host: string;
  /** Epoch at which the OSD last came up. */
  upFrom: number;
  /** Epoch at which the OSD was last marked down (0 = never). */
  downAt: number;
  /** Leader's clock when marked down, ms since the Unix epoch (drives down→out). */
  downStampMs: number;
  /** Set by an operator's `osd in`: automatic `out` does not undo it until the OSD next boots. */
  autoOutExempt: boolean;
  /**
   * The OSD reported its store past the full ratio (Ceph CEPH_OSD_FULL, from MOSDFull; here
   * from `osd beacon`). Cleared when the OSD boots: the new incarnation reports afresh.
   */
  full: boolean;
  /** The OSD reported its store past the nearfull ratio (Ceph CEPH_OSD_NEARFULL). Cleared on boot. */
  nearfull: boolean;
}

/** The OSDMap: OSDs, pools, CRUSH and temporary PG mappings at one epoch. */
export interface OsdMap {
  fsid: string;
  epoch: number;
  createdMs: number;
  modifiedMs: number;
  /** Highest OSD id + 1. */
  maxOsd: number;
  osds: Map<number, OsdInfo>;
  pools: Map<number, Pool>;
  /** Highest pool id ever allocated (ids are never reused). */
  poolMax: number;
  ecProfiles: Map<string, ErasureCodeProfile>;
  crush: CrushMap;
  /** Overrides of the acting set while backfilling, keyed by PG id text (`1.1f`). */
  pgTemp: Map<string, number[]>;
  /** Cluster-wide flags (`noout`, `noup`, `nodown`, `full` …). */
  flags: Set<string>;
}

/** A change to one pool's settings, or a new pool (full record). */
export type PoolUpdate = Pool;

/**
 * The change from epoch `epoch - 1` to `epoch` (Ceph OSDMap::Incremental). Fields are
 * applied in declaration order by `applyIncremental`.
 */
export interface OsdMapIncremental {
  epoch: number;
  modifiedMs: number;
  newMaxOsd: number | null;
  /** New or changed pools (full records). */
  newPools: Pool[];
  /** Deleted pool ids. */
  oldPools: number[];
  newPoolMax: number | null;
  newEcProfiles: ErasureCodeProfile[];
  oldEcProfiles: string[];
  /** OSDs created (exists=true) with their uuid. */
  newOsds: { id: number; uuid: string }[];
  /** OSDs destroyed. */
  oldOsds: number[];
  /** OSDs that booted: marked up at `addr`. */
  newUp: { id: number; addr: string; host: string }[];
  /** OSDs marked down. */
  newDown: number[];
  /** Reweights (16.16); 0 marks out, 0x10000 marks in. */
  newWeight: { id: number; weight: number; autoOutExempt: boolean }[];
  /** The whole new CRUSH map when it changed (Ceph also ships it whole). */
  crush: CrushMap | null;
  /** pg_temp set (non-empty osds) or cleared (empty osds). */
  newPgTemp: { pgid: string; osds: number[] }[];
  newFlags: string[] | null;
  /** OSDs whose reported full/nearfull state changed (Ceph new_state FULL/NEARFULL bits). */
  newFullState: { id: number; full: boolean; nearfull: boolean }[];
}

/** An empty incremental for `epoch` — the builder fills it in. */
export function emptyIncremental(epoch: number, modifiedMs: number): OsdMapIncremental {
  return {
    epoch, modifiedMs, newMaxOsd: null, newPools: [], oldPools: [], newPoolMax: null,
    newEcProfiles: [], oldEcProfiles: [], newOsds: [], oldOsds: [], newUp: [], newDown: [],
    newWeight: [], crush: null, newPgTemp: [], newFlags: null, newFullState: [],
  };
}
