/**
 * Versioned codecs for what a PG persists and sends (CONVENTIONS item 4): log entries, the
 * log, pg_info (with history) and the missing set, framed as Ceph's ENCODE_START structs
 * (`pg_log_entry_t::encode`, `pg_info_t::encode`, `pg_missing_t::encode`).
 *
 * Version 1 of each. Decoders accept a newer writer's struct whose compat version is 1
 * (they skip fields they do not know) and throw `E_DECODE` on malformed bytes.
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { Eversion, LogEntry, LogOp, Missing, MissingItem, PgHistory, PgInfo, PgLogState, PgMeta, ReqId } from './types.ts';

const V1 = 1;

function encEv(e: Encoder, v: Eversion): void {
  e.u32(v.epoch).u53(v.version);
}
function decEv(d: Decoder): Eversion {
  return { epoch: d.u32(), version: d.u53() };
}
function encReqid(e: Encoder, r: ReqId): void {
  e.string(r.client).u53(r.tid);
}
function decReqid(d: Decoder): ReqId {
  return { client: d.string(), tid: d.u53() };
}

const OPS: readonly LogOp[] = ['modify', 'delete', 'lostDelete'];

/** Encodes one log entry (struct v1). */
export function encodeLogEntry(e: Encoder, entry: LogEntry): void {
  const op = OPS.indexOf(entry.op);
  assert(op >= 0, `unknown log op ${entry.op}`);
  e.struct(V1, V1, (b) => {
    encEv(b, entry.version);
    b.u8(op).string(entry.object);
    encEv(b, entry.priorVersion);
    b.optional(entry.reqid ?? undefined, encReqid);
  });
}

/** Decodes one log entry. @throws AspenError E_DECODE / E_UNSUPPORTED. */
export function decodeLogEntry(d: Decoder): LogEntry {
  return d.struct(V1, 'pg_log_entry', (b) => {
    const version = decEv(b);
    const opIdx = b.u8();
    const op = OPS[opIdx];
    if (op === undefined) throw new AspenError('E_DECODE', `unknown log op ${opIdx}`);
    const object = b.string();
    const priorVersion = decEv(b);
    const reqid = b.optional(decReqid) ?? null;
    return { version, op, object, priorVersion, reqid };
  });
}

/** Encodes a PG log (struct v1): tail, head, entries, dups. */
export function encodePgLog(e: Encoder, log: PgLogState): void {
  e.struct(V1, V1, (b) => {
    encEv(b, log.tail);
    encEv(b, log.head);
    b.array(log.entries, encodeLogEntry);
    b.array(log.dups, (x, dup) => {
      encReqid(x, dup.reqid);
      encEv(x, dup.version);
    });
  });
}

/** Decodes a PG log. @throws AspenError E_DECODE when entries are out of order. */
export function decodePgLog(d: Decoder): PgLogState {
  return d.struct(V1, 'pg_log', (b) => {
    const tail = decEv(b);
    const head = decEv(b);
    const entries = b.array(decodeLogEntry);
    const dups = b.array((x) => ({ reqid: decReqid(x), version: decEv(x) }));
    let prev = tail;
    for (const en of entries) {
      if (en.version.epoch < prev.epoch || (en.version.epoch === prev.epoch && en.version.version <= prev.version)) {
        throw new AspenError('E_DECODE', 'pg_log entries out of order');
      }
      prev = en.version;
    }
    return { tail, head, entries, dups };
  });
}

function encHistory(e: Encoder, h: PgHistory): void {
  e.struct(V1, V1, (b) => b.u32(h.epochCreated).u32(h.lastEpochStarted).u32(h.lastEpochClean).u32(h.sameIntervalSince));
}
function decHistory(d: Decoder): PgHistory {
  return d.struct(V1, 'pg_history', (b) => ({
    epochCreated: b.u32(), lastEpochStarted: b.u32(), lastEpochClean: b.u32(), sameIntervalSince: b.u32(),
  }));
}

/** Encodes pg_info (struct v1) with its history. */
export function encodePgInfo(e: Encoder, info: PgInfo): void {
  e.struct(V1, V1, (b) => {
    b.string(info.pgid);
    encEv(b, info.lastUpdate);
    encEv(b, info.lastComplete);
    encEv(b, info.logTail);
    b.u32(info.lastEpochStarted);
    b.optional(info.lastBackfill ?? undefined, (x, s) => x.string(s));
    encHistory(b, info.history);
  });
}

/** Decodes pg_info. */
export function decodePgInfo(d: Decoder): PgInfo {
  return d.struct(V1, 'pg_info', (b) => ({
    pgid: b.string(),
    lastUpdate: decEv(b),
    lastComplete: decEv(b),
    logTail: decEv(b),
    lastEpochStarted: b.u32(),
    lastBackfill: b.optional((x) => x.string()) ?? null,
    history: decHistory(b),
  }));
}

/** Encodes a missing set (struct v1), objects in name order. */
export function encodeMissing(e: Encoder, missing: Missing): void {
  const items = [...missing.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  e.struct(V1, V1, (b) => b.array(items, (x, [name, item]) => {
    x.string(name);
    encEv(x, item.need);
    encEv(x, item.have);
  }));
}

/** Decodes a missing set. @throws AspenError E_DECODE on a duplicate object. */
export function decodeMissing(d: Decoder): Missing {
  return d.struct(V1, 'pg_missing', (b) => {
    const out = new Map<string, MissingItem>();
    for (const [name, item] of b.array((x) => [x.string(), { need: decEv(x), have: decEv(x) }] as const)) {
      if (out.has(name)) throw new AspenError('E_DECODE', `duplicate missing object ${name}`);
      out.set(name, item);
    }
    return out;
  });
}

/** Encodes everything a PG persists besides objects (info, log, missing) as one struct. */
export function encodePgMeta(meta: PgMeta): Uint8Array {
  const e = new Encoder(1024);
  e.struct(V1, V1, (b) => {
    encodePgInfo(b, meta.info);
    encodePgLog(b, meta.log);
    encodeMissing(b, meta.missing);
  });
  return e.finish();
}

/** Decodes {@link encodePgMeta}'s bytes. @throws AspenError E_DECODE on malformed or trailing bytes. */
export function decodePgMeta(bytes: Uint8Array): PgMeta {
  const d = new Decoder(bytes);
  const meta = d.struct(V1, 'pg_meta', (b) => ({ info: decodePgInfo(b), log: decodePgLog(b), missing: decodeMissing(b) }));
  d.done('pg_meta');
  return meta;
}
