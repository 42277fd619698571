/**
 * Encoding of the whole {@link MonState} for Raft snapshots (InstallSnapshot) and log
 * compaction. A versioned struct; the maps use their own codecs, the small tables
 * (PG stats, config, sessions) are JSON inside it.
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import { decodeIncremental, decodeMonMap, decodeOsdMap, encodeIncremental, encodeMonMap, encodeOsdMap } from '@aspen/shared/osdmap/codec.ts';
import type { ClientSession, MonState, PgStat } from './state.ts';
import { decodeS3Users, encodeS3Users } from './s3-users.ts';
import { decodeFsMap, encodeFsMap } from './fs-codec.ts';
import { emptyFsMap } from './fs-commands.ts';

// v2 appends the S3 users (read as empty from v1); v3 the filesystems (empty from v1, v2).
const MON_STATE_V = 3;

/** Encodes the state; the bytes include everything `decodeMonState` needs. */
export function encodeMonState(s: MonState): Uint8Array {
  const e = new Encoder(64 * 1024);
  e.struct(MON_STATE_V, 1, () => {
    e.string(s.fsid).u53(s.appliedIndex);
    encodeMonMap(s.monMap, e);
    encodeOsdMap(s.osdMap, e);
    e.array(s.incrementals, (ee, inc) => encodeIncremental(inc, ee));
    e.string(JSON.stringify([...s.pgStats.values()]));
    e.string(JSON.stringify([...s.config].map(([who, m]) => [who, [...m]])));
    e.string(JSON.stringify([...s.sessions].map(([id, x]) => [id, { floorSeq: x.floorSeq, lastUsedIndex: x.lastUsedIndex, results: [...x.results] }])));
    e.string(encodeS3Users(s.s3Users));
    encodeFsMap(s.fsMap, e);
  });
  return e.finish();
}

/**
 * Decodes a state snapshot.
 * @throws AspenError E_DECODE/E_UNSUPPORTED on malformed bytes, E_CORRUPT on inconsistent contents.
 */
export function decodeMonState(bytes: Uint8Array): MonState {
  const d = new Decoder(bytes);
  const s = d.struct(MON_STATE_V, 'mon state', (_d, version) => {
    const fsid = d.string();
    const appliedIndex = d.u53();
    const monMap = decodeMonMap(d);
    const osdMap = decodeOsdMap(d);
    const incrementals = d.array((dd) => decodeIncremental(dd));
    try {
      const pgStats = new Map((JSON.parse(d.string()) as PgStat[]).map((p) => [p.pgid, p] as const));
      const config = new Map((JSON.parse(d.string()) as [string, [string, string][]][]).map(([who, kv]) => [who, new Map(kv)] as const));
      const rawSessions = JSON.parse(d.string()) as [string, { floorSeq: number; lastUsedIndex: number; results: [number, string][] }][];
      const sessions = new Map<string, ClientSession>(rawSessions.map(([id, x]) => [id, { floorSeq: x.floorSeq, lastUsedIndex: x.lastUsedIndex, results: new Map(x.results) }]));
      const s3Users = version >= 2 ? decodeS3Users(d.string()) : new Map();
      const fsMap = version >= 3 ? decodeFsMap(d) : emptyFsMap();
      return { fsid, appliedIndex, monMap, osdMap, incrementals, pgStats, config, sessions, s3Users, fsMap };
    } catch (err) {
      if (err instanceof AspenError) throw err;
      throw new AspenError('E_DECODE', `mon state tables are not valid JSON: ${String(err)}`);
    }
  });
  d.done('mon state');
  if (s.osdMap.fsid !== s.fsid || s.monMap.fsid !== s.fsid) throw new AspenError('E_CORRUPT', 'mon state snapshot mixes cluster fsids');
  assert(s.incrementals.length === 0 || s.incrementals.at(-1)!.epoch === s.osdMap.epoch, 'snapshot incrementals end at the map epoch');
  return s;
}
