/**
 * Versioned codecs for what a PG persists and sends (CONVENTIONS item 4): log entries, the
 * log, pg_info (with history) and the missing set, framed as Ceph's ENCODE_START structs
 * (`pg_log_entry_t::encode`, `pg_info_t::encode`, `pg_missing_t::encode`). For the store's
 * incremental meta layout (osd/src/io/osd-store.ts) also: the small part kept in one xattr
 * ({@link encodePgMetaBase}) and one log entry or dup as an omap value.
 *
 * Version 1 of each. Decoders accept a newer writer's struct whose compat version is 1
 * (they skip fields they do not know) and throw `E_DECODE` on malformed bytes.
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { Eversion, LogEntry, LogOp, Missing, MissingItem, PgHistory, PgInfo, PgLogState, PgMeta, ReqId } from './types.ts';

/** One dup of a PG log: a trimmed entry's request id and version (Ceph `pg_log_dup_t`). */
export type PgLogDup = PgLogState['dups'][number];

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

function encDupFields(e: Encoder, dup: PgLogDup): void {
  encReqid(e, dup.reqid);
  encEv(e, dup.version);
}
function decDupFields(d: Decoder): PgLogDup {
  return { reqid: decReqid(d), version: decEv(d) };
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
    b.array(log.dups, encDupFields);
  });
}

/** Decodes a PG log. @throws AspenError E_DECODE when entries are out of order. */
export function decodePgLog(d: Decoder): PgLogState {
  return d.struct(V1, 'pg_log', (b) => {
    const tail = decEv(b);
    const head = decEv(b);
    const entries = b.array(decodeLogEntry);
    const dups = b.array(decDupFields);
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

/**
 * The small part of a PG's meta that the store rewrites whole on every setMeta: info, the
 * log's tail and head, how many entries and dups the log has (kept elsewhere, one per key,
 * so a load can tell a lost key), and the missing set (usually empty).
 */
export interface PgMetaBase {
  readonly info: PgInfo;
  readonly tail: Eversion;
  readonly head: Eversion;
  readonly entryCount: number;
  readonly dupCount: number;
  readonly missing: Missing;
}

/** Encodes a {@link PgMetaBase} (struct v1). */
export function encodePgMetaBase(base: PgMetaBase): Uint8Array {
  assert(Number.isSafeInteger(base.entryCount) && base.entryCount >= 0, 'entry count');
  assert(Number.isSafeInteger(base.dupCount) && base.dupCount >= 0, 'dup count');
  const e = new Encoder(256);
  e.struct(V1, V1, (b) => {
    encodePgInfo(b, base.info);
    encEv(b, base.tail);
    encEv(b, base.head);
    b.u53(base.entryCount).u53(base.dupCount);
    encodeMissing(b, base.missing);
  });
  return e.finish();
}

/** Decodes {@link encodePgMetaBase}'s bytes. @throws AspenError E_DECODE on malformed or trailing bytes. */
export function decodePgMetaBase(bytes: Uint8Array): PgMetaBase {
  const d = new Decoder(bytes);
  const base = d.struct(V1, 'pg_meta_base', (b) => ({
    info: decodePgInfo(b), tail: decEv(b), head: decEv(b), entryCount: b.u53(), dupCount: b.u53(), missing: decodeMissing(b),
  }));
  d.done('pg_meta_base');
  return base;
}

/** One log entry as a value of its own (the {@link encodeLogEntry} struct). */
export function encodeLogEntryValue(entry: LogEntry): Uint8Array {
  const e = new Encoder(64 + entry.object.length * 3);
  encodeLogEntry(e, entry);
  return e.finish();
}

/** Decodes {@link encodeLogEntryValue}'s bytes. @throws AspenError E_DECODE on malformed or trailing bytes. */
export function decodeLogEntryValue(bytes: Uint8Array): LogEntry {
  const d = new Decoder(bytes);
  const entry = decodeLogEntry(d);
  d.done('pg_log_entry');
  return entry;
}

/** One dup as a value of its own (struct v1: request id, version). */
export function encodeDupValue(dup: PgLogDup): Uint8Array {
  const e = new Encoder(32 + dup.reqid.client.length * 3);
  e.struct(V1, V1, (b) => encDupFields(b, dup));
  return e.finish();
}

/** Decodes {@link encodeDupValue}'s bytes. @throws AspenError E_DECODE on malformed or trailing bytes. */
export function decodeDupValue(bytes: Uint8Array): PgLogDup {
  const d = new Decoder(bytes);
  const dup = d.struct(V1, 'pg_log_dup', decDupFields);
  d.done('pg_log_dup');
  return dup;
}
