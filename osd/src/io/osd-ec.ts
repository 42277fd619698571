/**
 * The I/O of erasure-coded PGs between OSDs (Ceph ECBackend sub-reads, `ECSubRead` /
 * `ECSubReadReply`): a primary reads byte ranges of shard objects, or a shard's whole state,
 * from the members holding them, each read checked against the object version the PG log
 * names — a shard at another version (behind, or written by a write that did not complete)
 * is never combined with the others.
 *
 * - {@link OsdEc.shardReader}: the gather of client reads and of read-modify-write
 *   (../core/ec-exec.ts `ShardReader`).
 * - {@link OsdEc.rebuild}: what the PG core's EC reads ask (recovery, backfill, repair): the
 *   state blob of one shard rebuilt from k others (decode, re-encode, take that shard).
 * - {@link OsdEc.verifyParity}: the EC half of a deep scrub at the primary (parity against data).
 * - {@link OsdEc.handle}: serves {@link MSG_EC_READ} from the local shard stores.
 *
 * Wire: MSG_EC_READ request meta struct v1 {string pgid, u8 shard, string object (core
 * name), bool head, u64 snap, u8 mode (0 range, 1 whole state), u53 offset, u53 length, u32
 * need epoch, u53 need version}; reply meta struct v1 {bool ok, u32 epoch, u53 version}, data
 * the bytes (empty unless ok).
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { Messenger } from '@aspen/shared/io/msgr-client.ts';
import type { MsgrMessage, MsgrReply } from '@aspen/shared/io/msgr-server.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { Logger } from 'pino';
import { cloneOid } from '../core/op-exec.ts';
import { RS_CODEC, shardSizeBytes, type EcCodec, type EcLayout, type ShardReader } from '../core/ec-exec.ts';
import { decodeObjectState, encodeObjectState, type ObjectState } from '../pg/object-state.ts';
import { evCmp, osdOfMember, shardOf, type Eversion, type ScrubObject, type StoreRead, type StoreReadResult } from '../pg/types.ts';
import type { ObjectId } from '../store/oid.ts';
import { oidOf } from './osd-store.ts';
import type { OsdPgs } from './osd-pgs.ts';

/** Messenger type of an EC sub-read (request/reply). */
export const MSG_EC_READ = 0x102;
/** A sub-read not answered in this long counts as a missing shard, ms. */
export const EC_SUBREAD_TIMEOUT_MS = 10_000;

/** One sub-read. */
export interface EcSubRead {
  readonly pgid: string;
  readonly shard: number;
  /** Core object name (`namespace\0name` or `name`). */
  readonly object: string;
  /** The store object: the head (null) or a clone id. */
  readonly snap: bigint | null;
  readonly mode: 'range' | 'state';
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  /** The log version the shard must have. */
  readonly need: Eversion;
}

/** Its answer: `ok` false when the shard is absent here, at another version, or unreadable. */
export interface EcSubReadReply {
  readonly ok: boolean;
  readonly version: Eversion;
  readonly data: Uint8Array;
}

/** Encodes a sub-read request's meta. */
export function encodeEcSubRead(r: EcSubRead): Uint8Array {
  return new Encoder(96 + r.object.length * 3).struct(1, 1, (e) => {
    e.string(r.pgid).u8(r.shard).string(r.object).bool(r.snap === null).u64(r.snap ?? 0n).u8(r.mode === 'range' ? 0 : 1)
      .u53(r.offsetBytes).u53(r.lengthBytes).u32(r.need.epoch).u53(r.need.version);
  }).finish();
}

/** Decodes {@link encodeEcSubRead}. @throws AspenError E_DECODE on malformed bytes. */
export function decodeEcSubRead(meta: Uint8Array): EcSubRead {
  const d = new Decoder(meta);
  const r = d.struct(1, 'ec sub-read', (b): EcSubRead => {
    const pgid = b.string();
    const shard = b.u8();
    const object = b.string();
    const head = b.bool();
    const snap = b.u64();
    const mode = b.u8();
    if (mode > 1) throw new AspenError('E_DECODE', `ec sub-read mode ${mode}`);
    return {
      pgid, shard, object, snap: head ? null : snap, mode: mode === 0 ? 'range' : 'state',
      offsetBytes: b.u53(), lengthBytes: b.u53(), need: { epoch: b.u32(), version: b.u53() },
    };
  });
  d.done('ec sub-read');
  return r;
}

/** Encodes a sub-read reply's meta. */
export function encodeEcSubReadReply(r: EcSubReadReply): Uint8Array {
  return new Encoder(32).struct(1, 1, (e) => e.bool(r.ok).u32(r.version.epoch).u53(r.version.version)).finish();
}

/** Decodes {@link encodeEcSubReadReply} (data from the message's data segment). @throws AspenError E_DECODE. */
export function decodeEcSubReadReply(meta: Uint8Array, data: Uint8Array): EcSubReadReply {
  const d = new Decoder(meta);
  const r = d.struct(1, 'ec sub-read reply', (b) => ({ ok: b.bool(), version: { epoch: b.u32(), version: b.u53() }, data }));
  d.done('ec sub-read reply');
  return r;
}

const NO_VERSION: Eversion = { epoch: 0, version: 0 };

/** The layout of pool `poolId`'s EC profile, or undefined for a replicated or unknown pool. */
export function ecLayoutOf(map: OsdMap, poolId: number): EcLayout | undefined {
  const pool = map.pools.get(poolId);
  if (pool === undefined || pool.type !== 'erasure') return undefined;
  const p = map.ecProfiles.get(pool.erasureCodeProfile);
  return p === undefined ? undefined : { k: p.k, m: p.m, stripeUnitBytes: p.stripeUnitBytes };
}

/** EC sub-reads and shard rebuilds of one OSD. */
export class OsdEc {
  constructor(
    private readonly whoami: number,
    private readonly pgs: () => OsdPgs,
    private readonly msgr: Messenger,
    private readonly currentMap: () => OsdMap | null,
    private readonly log: Logger,
    private readonly codec: EcCodec = RS_CODEC,
  ) {}

  /** Serves a sub-read from a local shard store. */
  async serve(r: EcSubRead): Promise<EcSubReadReply> {
    const store = this.pgs().shardStore(r.pgid, r.shard);
    const no = (version: Eversion = NO_VERSION): EcSubReadReply => ({ ok: false, version, data: new Uint8Array(0) });
    if (store === undefined) return no();
    try {
      const version = await store.objectVersion(r.object);
      if (version === null || evCmp(version, r.need) !== 0) return no(version ?? NO_VERSION);
      if (r.mode === 'state') {
        const res = await store.read({ kind: 'read', readId: 0, object: r.object });
        if (res.kind !== 'read' || !res.exists || evCmp(res.version, r.need) !== 0) return no(version);
        return { ok: true, version, data: res.data };
      }
      const head = oidOf(r.object);
      const oid = r.snap === null ? head : cloneOid(head, r.snap);
      return { ok: true, version, data: await store.readRange(oid, r.offsetBytes, r.lengthBytes) };
    } catch (err) {
      if (err instanceof AspenError && (err.code === 'EIO' || err.code === 'ENOENT')) {
        this.log.warn({ pgid: r.pgid, shard: r.shard, object: r.object, err: err.message }, 'ec sub-read failed here');
        return no();
      }
      throw err;
    }
  }

  /** The MsgrServer handler of {@link MSG_EC_READ}. */
  handle = async (msg: MsgrMessage): Promise<MsgrReply> => {
    if (!msg.session.entity.startsWith('osd.')) throw new AspenError('EPERM', `ec sub-reads are for OSDs, not ${msg.session.entity}`);
    const r = await this.serve(decodeEcSubRead(msg.meta));
    return { meta: encodeEcSubReadReply(r), data: r.data };
  };

  /** One sub-read to `osd` (this OSD: served locally). Null when it cannot answer. */
  private async subRead(osd: number, r: EcSubRead): Promise<Uint8Array | null> {
    if (osd === this.whoami) {
      const res = await this.serve(r);
      return res.ok ? res.data : null;
    }
    const addr = this.currentMap()?.osds.get(osd)?.addr;
    if (addr === undefined || addr === '') return null;
    try {
      const resp = await this.msgr.connection(addr, `osd.${osd}`).request(MSG_EC_READ, encodeEcSubRead(r), undefined, { timeoutMs: EC_SUBREAD_TIMEOUT_MS });
      const rep = decodeEcSubReadReply(resp.meta, resp.data);
      return rep.ok ? rep.data : null;
    } catch (err) {
      if (!(err instanceof AspenError)) throw err;
      this.log.debug({ osd, pgid: r.pgid, object: r.object, err: err.message }, 'ec sub-read failed');
      return null;
    }
  }

  /**
   * A ShardReader for one request: shard ranges of `object` from `members` (the PG's acting
   * members as (osd, shard)), each checked at `need`.
   */
  shardReader(pgid: string, members: readonly { osd: number; shard: number }[], object: string, need: Eversion): ShardReader {
    return async (shard: number, oid: ObjectId, offsetBytes: number, lengthBytes: number) => {
      const holder = members.find((x) => x.shard === shard);
      if (holder === undefined) return null;
      const snap = oid.snap === undefined || oid.snap === 'head' ? null : oid.snap;
      return this.subRead(holder.osd, { pgid, shard, object, snap, mode: 'range', offsetBytes, lengthBytes, need });
    };
  }

  /**
   * EC deep scrub at the primary: for each object of its deep-scrub map, reads every shard's
   * state at the object's version (from `candidates`, acting first) and checks that the
   * parity shards equal the encoding of the data shards, head and clones. When they do not,
   * the bad shard is found by leaving each out in turn (the others must then agree with one
   * another); when no single shard explains it (m = 1 cannot tell), the parity shards are
   * named (the data shards are taken as authoritative). Shards that cannot be read are left
   * to their own members' checks. Returns the map with `ecBadShards` set where needed.
   */
  verifyParity = async (pgid: string, candidates: readonly number[], objects: readonly ScrubObject[]): Promise<ScrubObject[]> => {
    const map = this.currentMap();
    const layout = map === null ? undefined : ecLayoutOf(map, Number(pgid.split('.')[0]));
    if (layout === undefined) return [...objects];
    const n = layout.k + layout.m;
    const out: ScrubObject[] = [];
    for (const o of objects) {
      if (o.readError === true) {
        out.push(o);
        continue;
      }
      const states: (ObjectState | null)[] = new Array<ObjectState | null>(n).fill(null);
      await Promise.all(Array.from({ length: n }, async (_, shard) => {
        for (const m of candidates.filter((x) => shardOf(x) === shard)) {
          const data = await this.subRead(osdOfMember(m), { pgid, shard, object: o.object, snap: null, mode: 'state', offsetBytes: 0, lengthBytes: 0, need: o.version });
          if (data === null) continue;
          try {
            states[shard] = decodeObjectState(data);
            return;
          } catch (err) {
            if (!(err instanceof AspenError)) throw err;
          }
        }
      }));
      if (states.some((x) => x === null)) {
        out.push(o); // not every shard readable now: nothing to compare against
        continue;
      }
      const full = states as ObjectState[];
      const parts: { size: number; data: Uint8Array[] }[] = [{ size: full[0]!.ecSizeBytes ?? 0, data: full.map((x) => x.data) }];
      for (const c of full[0]!.clones ?? []) {
        const cs = full.map((x) => x.clones?.find((y) => y.cloneId === c.cloneId));
        if (cs.some((x) => x === undefined)) continue;
        parts.push({ size: c.ecSizeBytes ?? 0, data: cs.map((x) => x!.data) });
      }
      const bad = new Set<number>();
      for (const part of parts) for (const b of await this.badShards(layout, part.size, part.data)) bad.add(b);
      out.push(bad.size === 0 ? o : { ...o, ecBadShards: [...bad].sort((a, b) => a - b) });
      if (bad.size > 0) this.log.warn({ pgid, object: o.object, badShards: [...bad] }, 'ec deep scrub: shards disagree with the parity');
    }
    return out;
  };

  /** The shards of one object part (all k+m buffers) that disagree with the code; [] when consistent. */
  private async badShards(l: EcLayout, sizeBytes: number, raw: readonly Uint8Array[]): Promise<number[]> {
    const len = shardSizeBytes(l, sizeBytes);
    if (len === 0) return [];
    const shards = raw.map((b) => {
      const x = new Uint8Array(len);
      x.set(b.subarray(0, len));
      return x;
    });
    const equal = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;
    /** Whether the shards other than `skip` are one codeword. */
    const consistent = async (skip: number): Promise<boolean> => {
      const use = shards.map((b, i) => (i === skip ? null : b));
      const enc = await this.codec.encode(l, await this.codec.decode(l, use));
      return enc.every((b, i) => i === skip || equal(b, shards[i]!));
    };
    if (await consistent(-1)) return [];
    if (l.m >= 2) {
      for (let j = 0; j < shards.length; j++) if (await consistent(j)) return [j];
    }
    return Array.from({ length: l.m }, (_, i) => l.k + i);
  }

  /**
   * Rebuilds shard `r.ec.shard` of `r.object` at `r.ec.need` from the members of `acting`
   * (member ids): the whole state of k other shards at that version (data shards first),
   * decoded and re-encoded — the head and every clone.
   */
  rebuild = async (pgid: string, candidates: readonly number[], r: Extract<StoreRead, { kind: 'read' }>): Promise<StoreReadResult> => {
    assert(r.ec !== undefined, 'a rebuild names its shard');
    const map = this.currentMap();
    const layout = map === null ? undefined : ecLayoutOf(map, Number(pgid.split('.')[0]));
    const unavailable: StoreReadResult = { kind: 'read', exists: false, unavailable: true };
    if (layout === undefined) return unavailable;
    const target = r.ec.shard;
    const need = r.ec.need;
    // Holders per shard, in the order given (acting first, then strays).
    const holders = new Map<number, number[]>();
    for (const m of candidates) {
      if (shardOf(m) === target || shardOf(m) >= layout.k + layout.m) continue;
      holders.set(shardOf(m), [...(holders.get(shardOf(m)) ?? []), m]);
    }
    const sources = [...holders.keys()].sort((a, b) => a - b);
    const states = new Map<number, ObjectState>();
    /** Reads one shard's state from its first holder that has it at `need`. */
    const ask = async (shard: number): Promise<void> => {
      for (const m of holders.get(shard)!) {
        const data = await this.subRead(osdOfMember(m), { pgid, shard, object: r.object, snap: null, mode: 'state', offsetBytes: 0, lengthBytes: 0, need });
        if (data === null) continue;
        try {
          states.set(shard, decodeObjectState(data));
          return;
        } catch (err) {
          if (!(err instanceof AspenError)) throw err;
          this.log.warn({ pgid, object: r.object, shard, err: err.message }, 'bad shard state in a rebuild');
        }
      }
    };
    let next = 0;
    while (states.size < layout.k && next < sources.length) {
      const wave = sources.slice(next, next + (layout.k - states.size));
      next += wave.length;
      await Promise.all(wave.map(ask));
    }
    if (states.size < layout.k) {
      this.log.warn({ pgid, object: r.object, shard: target, need: `${need.epoch}'${need.version}`, answered: [...states.keys()], asked: sources }, 'ec rebuild: fewer than k shards at the needed version');
      return unavailable;
    }
    const base = states.values().next().value!;
    const rebuildData = async (pick: (s: ObjectState) => { data: Uint8Array; sizeBytes: number } | undefined): Promise<Uint8Array | null> => {
      const shards: (Uint8Array | null)[] = new Array<Uint8Array | null>(layout.k + layout.m).fill(null);
      let have = 0;
      let len = -1;
      for (const [shard, s] of states) {
        const p = pick(s);
        if (p === undefined) continue;
        len = shardSizeBytes(layout, p.sizeBytes);
        const b = new Uint8Array(len);
        b.set(p.data.subarray(0, len));
        shards[shard] = b;
        have++;
      }
      if (have < layout.k) {
        this.log.warn({ pgid, object: r.object, shard: target, have }, 'ec rebuild: a clone is on fewer than k shards');
        return null;
      }
      if (len === 0) return new Uint8Array(0);
      const logical = await this.codec.decode(layout, shards);
      return (await this.codec.encode(layout, logical))[target]!;
    };
    const headData = await rebuildData((s) => ({ data: s.data, sizeBytes: s.ecSizeBytes ?? 0 }));
    if (headData === null) return unavailable;
    const out: ObjectState = { ...base, data: headData };
    if (base.clones !== undefined) {
      out.clones = [];
      for (const c of base.clones) {
        const data = await rebuildData((s) => {
          const x = s.clones?.find((y) => y.cloneId === c.cloneId);
          return x === undefined ? undefined : { data: x.data, sizeBytes: x.ecSizeBytes ?? 0 };
        });
        if (data === null) return unavailable;
        out.clones.push({ ...c, data });
      }
    }
    return { kind: 'read', exists: true, version: need, data: encodeObjectState(out) };
  };
}

