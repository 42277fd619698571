/**
 * Binary codecs for MonMap, OSDMap and OSDMap incrementals (CONVENTIONS.md item 4):
 * each is a versioned struct (Ceph ENCODE_START style, see ../codec.ts) so older readers
 * skip fields appended later. Sample encodings live in shared/testdata/osdmap/ and must
 * keep decoding.
 */
import type { Decoder, Encoder } from '../codec.ts';
import { Decoder as Dec, Encoder as Enc } from '../codec.ts';
import { decodeCrushMap, encodeCrushMap } from '../crush/codec.ts';
import { AspenError } from '../errors.ts';
import { removedSnapsWellFormed } from './snaps.ts';
import type { ErasureCodeProfile, MonMap, OsdInfo, OsdMap, OsdMapIncremental, Pool, SnapInterval } from './types.ts';

/** v2 appends snapSeq and removedSnaps (v1 decodes with none). */
const POOL_V = 2;
const EC_PROFILE_V = 1;
/** v2 appends full and nearfull (v1 decodes as not full). */
const OSD_INFO_V = 2;
const OSDMAP_V = 1;
/** v2 appends newFullState (v1 decodes with none). */
const INC_V = 2;
const MONMAP_V = 1;

function encPool(e: Encoder, p: Pool): void {
  e.struct(POOL_V, 1, () => {
    e.u32(p.id).string(p.name).u8(p.type === 'erasure' ? 1 : 0).u8(p.size).u8(p.minSize)
      .u32(p.pgNum).u32(p.pgpNum).i32(p.crushRule).string(p.erasureCodeProfile)
      .array(p.applications, (ee, a) => ee.string(a)).bool(p.hashPsPool)
      .u32(p.createdEpoch).u32(p.lastChangeEpoch)
      .u53(p.snapSeq).array(p.removedSnaps, (ee, [start, length]) => ee.u53(start).u53(length));
  });
}
function decPoolType(d: Decoder): Pool['type'] {
  const t = d.u8();
  if (t > 1) throw new AspenError('E_DECODE', `unknown pool type ${t}`);
  return t === 1 ? 'erasure' : 'replicated';
}
function decPool(d: Decoder): Pool {
  return d.struct(POOL_V, 'pool', (_, version) => {
    const base = {
      id: d.u32(), name: d.string(), type: decPoolType(d), size: d.u8(), minSize: d.u8(),
      pgNum: d.u32(), pgpNum: d.u32(), crushRule: d.i32(), erasureCodeProfile: d.string(),
      applications: d.array((dd) => dd.string()), hashPsPool: d.bool(),
      createdEpoch: d.u32(), lastChangeEpoch: d.u32(),
    };
    if (version < 2) return { ...base, snapSeq: 0, removedSnaps: [] };
    const snapSeq = d.u53();
    const removedSnaps = d.array((dd): SnapInterval => [dd.u53(), dd.u53()]);
    if (!removedSnapsWellFormed(removedSnaps, snapSeq)) throw new AspenError('E_DECODE', `pool ${base.id} removed_snaps are not sorted disjoint intervals within snap_seq ${snapSeq}`);
    return { ...base, snapSeq, removedSnaps };
  });
}

function encEcProfile(e: Encoder, p: ErasureCodeProfile): void {
  e.struct(EC_PROFILE_V, 1, () => {
    e.string(p.name).u8(p.k).u8(p.m).u32(p.stripeUnitBytes).string(p.crushFailureDomain).string(p.plugin).string(p.technique);
  });
}
function decEcProfile(d: Decoder): ErasureCodeProfile {
  return d.struct(EC_PROFILE_V, 'erasure-code profile', () => ({
    name: d.string(), k: d.u8(), m: d.u8(), stripeUnitBytes: d.u32(), crushFailureDomain: d.string(),
    plugin: d.string(), technique: d.string(),
  }));
}

function encOsdInfo(e: Encoder, o: OsdInfo): void {
  e.struct(OSD_INFO_V, 1, () => {
    e.u32(o.id).string(o.uuid).bool(o.exists).bool(o.up).u32(o.weight).string(o.addr).string(o.host)
      .u32(o.upFrom).u32(o.downAt).u53(o.downStampMs).bool(o.autoOutExempt)
      .bool(o.full).bool(o.nearfull);
  });
}
function decOsdInfo(d: Decoder): OsdInfo {
  return d.struct(OSD_INFO_V, 'osd info', (_, version) => ({
    id: d.u32(), uuid: d.string(), exists: d.bool(), up: d.bool(), weight: d.u32(), addr: d.string(), host: d.string(),
    upFrom: d.u32(), downAt: d.u32(), downStampMs: d.u53(), autoOutExempt: d.bool(),
    full: version >= 2 ? d.bool() : false, nearfull: version >= 2 ? d.bool() : false,
  }));
}

const encPgTemp = (e: Encoder, t: { pgid: string; osds: number[] }): void => {
  e.string(t.pgid).array(t.osds, (ee, o) => ee.i32(o));
};
const decPgTemp = (d: Decoder): { pgid: string; osds: number[] } => ({ pgid: d.string(), osds: d.array((dd) => dd.i32()) });

/** Encodes a full OSDMap. */
export function encodeOsdMap(m: OsdMap, e: Encoder = new Enc(4096)): Encoder {
  return e.struct(OSDMAP_V, 1, () => {
    e.string(m.fsid).u32(m.epoch).u53(m.createdMs).u53(m.modifiedMs).u32(m.maxOsd)
      .array([...m.osds.values()], encOsdInfo)
      .array([...m.pools.values()], encPool)
      .u32(m.poolMax)
      .array([...m.ecProfiles.values()], encEcProfile);
    encodeCrushMap(e, m.crush);
    e.array([...m.pgTemp].map(([pgid, osds]) => ({ pgid, osds })), encPgTemp)
      .array([...m.flags].sort(), (ee, f) => ee.string(f));
  });
}

/** Decodes a full OSDMap. @throws AspenError E_DECODE / E_UNSUPPORTED on bad bytes. */
export function decodeOsdMap(d: Decoder): OsdMap {
  return d.struct(OSDMAP_V, 'osdmap', () => {
    const fsid = d.string();
    const epoch = d.u32();
    const createdMs = d.u53();
    const modifiedMs = d.u53();
    const maxOsd = d.u32();
    const osds = new Map(d.array(decOsdInfo).map((o) => [o.id, o] as const));
    const pools = new Map(d.array(decPool).map((p) => [p.id, p] as const));
    const poolMax = d.u32();
    const ecProfiles = new Map(d.array(decEcProfile).map((p) => [p.name, p] as const));
    const crush = decodeCrushMap(d);
    const pgTemp = new Map(d.array(decPgTemp).map((t) => [t.pgid, t.osds] as const));
    const flags = new Set(d.array((dd) => dd.string()));
    return { fsid, epoch, createdMs, modifiedMs, maxOsd, osds, pools, poolMax, ecProfiles, crush, pgTemp, flags };
  });
}

/** Encodes an OSDMap incremental. */
export function encodeIncremental(inc: OsdMapIncremental, e: Encoder = new Enc(256)): Encoder {
  return e.struct(INC_V, 1, () => {
    e.u32(inc.epoch).u53(inc.modifiedMs)
      .optional(inc.newMaxOsd ?? undefined, (ee, v) => ee.u32(v))
      .array(inc.newPools, encPool)
      .array(inc.oldPools, (ee, v) => ee.u32(v))
      .optional(inc.newPoolMax ?? undefined, (ee, v) => ee.u32(v))
      .array(inc.newEcProfiles, encEcProfile)
      .array(inc.oldEcProfiles, (ee, v) => ee.string(v))
      .array(inc.newOsds, (ee, v) => ee.u32(v.id).string(v.uuid))
      .array(inc.oldOsds, (ee, v) => ee.u32(v))
      .array(inc.newUp, (ee, v) => ee.u32(v.id).string(v.addr).string(v.host))
      .array(inc.newDown, (ee, v) => ee.u32(v))
      .array(inc.newWeight, (ee, v) => ee.u32(v.id).u32(v.weight).bool(v.autoOutExempt))
      .optional(inc.crush ?? undefined, (ee, v) => encodeCrushMap(ee, v))
      .array(inc.newPgTemp, encPgTemp)
      .optional(inc.newFlags ?? undefined, (ee, v) => ee.array(v, (e3, f) => e3.string(f)))
      .array(inc.newFullState, (ee, v) => ee.u32(v.id).bool(v.full).bool(v.nearfull));
  });
}

/** Decodes an OSDMap incremental. @throws AspenError E_DECODE / E_UNSUPPORTED on bad bytes. */
export function decodeIncremental(d: Decoder): OsdMapIncremental {
  return d.struct(INC_V, 'osdmap incremental', (_, version) => ({
    epoch: d.u32(),
    modifiedMs: d.u53(),
    newMaxOsd: d.optional((dd) => dd.u32()) ?? null,
    newPools: d.array(decPool),
    oldPools: d.array((dd) => dd.u32()),
    newPoolMax: d.optional((dd) => dd.u32()) ?? null,
    newEcProfiles: d.array(decEcProfile),
    oldEcProfiles: d.array((dd) => dd.string()),
    newOsds: d.array((dd) => ({ id: dd.u32(), uuid: dd.string() })),
    oldOsds: d.array((dd) => dd.u32()),
    newUp: d.array((dd) => ({ id: dd.u32(), addr: dd.string(), host: dd.string() })),
    newDown: d.array((dd) => dd.u32()),
    newWeight: d.array((dd) => ({ id: dd.u32(), weight: dd.u32(), autoOutExempt: dd.bool() })),
    crush: d.optional((dd) => decodeCrushMap(dd)) ?? null,
    newPgTemp: d.array(decPgTemp),
    newFlags: d.optional((dd) => dd.array((d3) => d3.string())) ?? null,
    newFullState: version >= 2 ? d.array((dd) => ({ id: dd.u32(), full: dd.bool(), nearfull: dd.bool() })) : [],
  }));
}

/** Encodes a MonMap. */
export function encodeMonMap(m: MonMap, e: Encoder = new Enc(128)): Encoder {
  return e.struct(MONMAP_V, 1, () => {
    e.string(m.fsid).u32(m.epoch).u53(m.modifiedMs).array(m.mons, (ee, mon) => ee.string(mon.name).string(mon.addr));
  });
}

/** Decodes a MonMap. @throws AspenError E_DECODE / E_UNSUPPORTED on bad bytes. */
export function decodeMonMap(d: Decoder): MonMap {
  return d.struct(MONMAP_V, 'monmap', () => ({
    fsid: d.string(), epoch: d.u32(), modifiedMs: d.u53(),
    mons: d.array((dd) => ({ name: dd.string(), addr: dd.string() })),
  }));
}

/** Whole-buffer helpers. */
export const osdMapToBytes = (m: OsdMap): Uint8Array => encodeOsdMap(m).finish();
export const osdMapFromBytes = (b: Uint8Array): OsdMap => {
  const d = new Dec(b);
  const m = decodeOsdMap(d);
  d.done('osdmap');
  return m;
};
export const incrementalToBytes = (i: OsdMapIncremental): Uint8Array => encodeIncremental(i).finish();
export const incrementalFromBytes = (b: Uint8Array): OsdMapIncremental => {
  const d = new Dec(b);
  const i = decodeIncremental(d);
  d.done('osdmap incremental');
  return i;
};
