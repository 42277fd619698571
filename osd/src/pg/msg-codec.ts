/**
 * Wire codec of {@link PgMessage} (the OSD ↔ OSD peering, replication, recovery and scrub
 * messages) for the messenger (ADR 0005): a versioned struct in the frame's metadata and at
 * most one bulk byte string (a repop body's data, a push or pull reply's object copy) in the
 * data segment, so large objects are never copied into the metadata.
 *
 * Struct v1 (compat 1): from (u32 OSD id), pgid, interval, kind (u8 index into
 * {@link KINDS}), then the kind's fields. Nested log/meta/missing/history structures reuse
 * the persisted codecs of ./codec.ts. Decoders accept a newer writer's struct with compat 1
 * and throw AspenError `E_DECODE` on malformed bytes (never an assertion: the input is
 * untrusted).
 */
import { AspenError, Decoder, Encoder, assert, assertNever } from '@aspen/shared';
import { decodeLogEntry, decodeMissing, decodePgLog, encodeLogEntry, encodeMissing, encodePgLog } from './codec.ts';
import { decodePgMeta, encodePgMeta } from './codec.ts';
import type { ClientOpBody, Eversion, PgHistory, PgMessage, PushMode, ScrubObject } from './types.ts';



/** Message kinds in wire order (append only). */
const KINDS: readonly PgMessage['kind'][] = [
  'query', 'notify', 'activate', 'activateAck', 'repop', 'repopAck', 'pull', 'pullReply', 'push', 'pushAck',
  'backfillScan', 'backfillScanReply', 'backfillDone', 'backfillDoneAck', 'scrubReq', 'scrubMap', 'purge', 'rollForward',
];
const KIND_CODE = new Map(KINDS.map((k, i) => [k, i] as const));
const BODY_KINDS: readonly ClientOpBody['kind'][] = ['writeFull', 'write', 'delete', 'read', 'txn', 'probe'];
/** Struct version written (v2: scrub objects with an optional stored crc and a read-error flag; txn bodies). */
const V2 = 2;
/** Struct v3: a repop carrying rollForwardTo (EC), appended; every other message stays v2. */
const V3 = 3;
const PUSH_MODES: readonly PushMode[] = ['recovery', 'backfill', 'repair'];

/** A PG message as the messenger carries it. */
export interface EncodedPgMessage {
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
}

/** A decoded PG message with its sender. */
export interface DecodedPgMessage {
  readonly from: number;
  readonly msg: PgMessage;
}

const EMPTY = new Uint8Array(0);

function encEv(e: Encoder, v: Eversion): void {
  e.u32(v.epoch).u53(v.version);
}
function decEv(d: Decoder): Eversion {
  return { epoch: d.u32(), version: d.u53() };
}
function encHistory(e: Encoder, h: PgHistory): void {
  e.u32(h.epochCreated).u32(h.lastEpochStarted).u32(h.lastEpochClean).u32(h.sameIntervalSince);
}
function decHistory(d: Decoder): PgHistory {
  return { epochCreated: d.u32(), lastEpochStarted: d.u32(), lastEpochClean: d.u32(), sameIntervalSince: d.u32() };
}
function encScrubObject(e: Encoder, o: ScrubObject): void {
  e.string(o.object);
  encEv(e, o.version);
  e.u53(o.sizeBytes).optional(o.storedCrc ?? undefined, (x, c) => x.u32(c)).optional(o.dataCrc, (x, c) => x.u32(c)).bool(o.readError === true);
}
/** v1 (older peers): a stored crc always, no read-error flag. */
function decScrubObject(d: Decoder, structVersion: number): ScrubObject {
  const object = d.string();
  const version = decEv(d);
  const sizeBytes = d.u53();
  const storedCrc = structVersion < 2 ? d.u32() : d.optional((x) => x.u32()) ?? null;
  const dataCrc = d.optional((x) => x.u32());
  const readError = structVersion < 2 ? false : d.bool();
  const o: ScrubObject = dataCrc === undefined ? { object, version, sizeBytes, storedCrc } : { object, version, sizeBytes, storedCrc, dataCrc };
  return readError ? { ...o, readError } : o;
}
function pushModeOf(i: number): PushMode {
  const m = PUSH_MODES[i];
  if (m === undefined) throw new AspenError('E_DECODE', `unknown push mode ${i}`);
  return m;
}

/**
 * Encodes `msg` from OSD `from`. The returned data segment aliases the message's bulk bytes
 * (do not modify them until sent).
 */
export function encodePgMessage(from: number, msg: PgMessage): EncodedPgMessage {
  assert(Number.isInteger(from) && from >= 0, 'the sender is an OSD id');
  assert(KIND_CODE.has(msg.kind), `unknown pg message kind ${msg.kind}`);
  let data: Uint8Array = EMPTY;
  const e = new Encoder(256);
  e.struct(msg.kind === 'repop' && msg.rollForwardTo !== undefined ? V3 : V2, V2, (b) => {
    b.u32(from).string(msg.pgid).u32(msg.interval).u8(KIND_CODE.get(msg.kind)!);
    switch (msg.kind) {
      case 'query': case 'backfillDone': case 'backfillDoneAck': case 'purge':
        break;
      case 'notify': b.bytes(encodePgMeta(msg.meta)); break;
      case 'activate':
        encodePgLog(b, msg.log);
        b.u32(msg.lastEpochStarted).bool(msg.backfill);
        encHistory(b, msg.history);
        break;
      case 'activateAck': encodeMissing(b, msg.missing); b.bool(msg.backfill); break;
      case 'repop': {
        encEv(b, msg.prev);
        encodeLogEntry(b, msg.entry);
        const body = msg.body;
        b.u8(BODY_KINDS.indexOf(body.kind));
        if (body.kind === 'write') b.u53(body.offsetBytes);
        if (body.kind === 'txn') {
          b.bytes(body.meta).u53(body.sizeBytes);
          encEv(b, body.priorVersion);
        }
        if (body.kind === 'write' || body.kind === 'writeFull' || body.kind === 'txn') {
          b.u53(body.data.length);
          data = body.data;
        }
        b.bool(msg.applyData);
        encEv(b, msg.trimTo);
        if (msg.rollForwardTo !== undefined) encEv(b, msg.rollForwardTo);
        break;
      }
      case 'repopAck': encEv(b, msg.version); break;
      case 'rollForward': encEv(b, msg.to); break;
      case 'pull': b.string(msg.object); encEv(b, msg.need); break;
      case 'pullReply':
        b.string(msg.object).optional(msg.version ?? undefined, encEv).optional(msg.data ?? undefined, (x, v) => x.u53(v.length));
        data = msg.data ?? EMPTY;
        break;
      case 'push':
        b.string(msg.object);
        encEv(b, msg.version);
        b.optional(msg.data ?? undefined, (x, v) => x.u53(v.length)).u8(PUSH_MODES.indexOf(msg.mode));
        data = msg.data ?? EMPTY;
        break;
      case 'pushAck': b.string(msg.object).u8(PUSH_MODES.indexOf(msg.mode)); break;
      case 'backfillScan': b.string(msg.after).optional(msg.upTo ?? undefined, (x, s) => x.string(s)); break;
      case 'backfillScanReply':
        b.string(msg.after).array(msg.objects, (x, [name, v]) => {
          x.string(name);
          encEv(x, v);
        });
        break;
      case 'scrubReq': b.bool(msg.deep).u53(msg.scrubId); break;
      case 'scrubMap': b.u53(msg.scrubId).array(msg.objects, encScrubObject); break;
      default: assertNever(msg, 'pg message');
    }
  });
  return { meta: e.finish(), data };
}

/**
 * Takes exactly `n` bytes of the data segment. A segment that is its whole buffer is kept as
 * is: the messenger assembles a segment spanning received chunks in a buffer of its own and
 * never reuses it (shared/src/msgr/frame.ts), so a 4 MiB repop is not copied again. A segment
 * sharing a buffer (a slice of a socket chunk, a pooled allocation) is copied, so it does not
 * keep the rest of that buffer alive.
 */
function takeData(data: Uint8Array, n: number): Uint8Array {
  if (n !== data.length) throw new AspenError('E_DECODE', `data segment is ${data.length} bytes, message says ${n}`);
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && n > 0) return data;
  return data.slice();
}

/**
 * Decodes a PG message and its sender.
 * @throws AspenError E_DECODE on malformed bytes or a data segment that does not match;
 *   E_UNSUPPORTED for a struct that needs a newer reader.
 */
export function decodePgMessage(meta: Uint8Array, data: Uint8Array = EMPTY): DecodedPgMessage {
  const d = new Decoder(meta);
  let usedData = false;
  const out = d.struct(V3, 'pg message', (b, structVersion): DecodedPgMessage => {
    const from = b.u32();
    const pgid = b.string();
    const interval = b.u32();
    const code = b.u8();
    const kind = KINDS[code];
    if (kind === undefined) throw new AspenError('E_DECODE', `unknown pg message kind ${code}`);
    const base = { pgid, interval };
    const m = ((): PgMessage => {
      switch (kind) {
        case 'query': case 'backfillDone': case 'backfillDoneAck': case 'purge':
          return { ...base, kind };
        case 'notify': return { ...base, kind, meta: decodePgMeta(b.bytes()) };
        case 'activate': {
          const log = decodePgLog(b);
          return { ...base, kind, log, lastEpochStarted: b.u32(), backfill: b.bool(), history: decHistory(b) };
        }
        case 'activateAck': return { ...base, kind, missing: decodeMissing(b), backfill: b.bool() };
        case 'repop': {
          const prev = decEv(b);
          const entry = decodeLogEntry(b);
          const bk = BODY_KINDS[b.u8()];
          let body: ClientOpBody;
          switch (bk) {
            case 'writeFull': usedData = true; body = { kind: bk, data: takeData(data, b.u53()) }; break;
            case 'write': {
              const offsetBytes = b.u53();
              usedData = true;
              body = { kind: bk, offsetBytes, data: takeData(data, b.u53()) };
              break;
            }
            case 'txn': {
              const txMeta = b.bytes();
              const sizeBytes = b.u53();
              const priorVersion = decEv(b);
              usedData = true;
              body = { kind: bk, meta: txMeta, sizeBytes, priorVersion, data: takeData(data, b.u53()) };
              break;
            }
            case 'delete': case 'read': case 'probe': body = { kind: bk }; break;
            case undefined: throw new AspenError('E_DECODE', 'unknown repop body kind');
            default: return assertNever(bk, 'body kind');
          }
          const applyData = b.bool();
          const trimTo = decEv(b);
          const rollForwardTo = structVersion >= V3 ? decEv(b) : undefined;
          return { ...base, kind, prev, entry, body, applyData, trimTo, ...(rollForwardTo !== undefined ? { rollForwardTo } : {}) };
        }
        case 'repopAck': return { ...base, kind, version: decEv(b) };
        case 'rollForward': return { ...base, kind, to: decEv(b) };
        case 'pull': return { ...base, kind, object: b.string(), need: decEv(b) };
        case 'pullReply': {
          const object = b.string();
          const version = b.optional(decEv) ?? null;
          const n = b.optional((x) => x.u53());
          if (n !== undefined) usedData = true;
          return { ...base, kind, object, version, data: n === undefined ? null : takeData(data, n) };
        }
        case 'push': {
          const object = b.string();
          const version = decEv(b);
          const n = b.optional((x) => x.u53());
          if (n !== undefined) usedData = true;
          const pushed = n === undefined ? null : takeData(data, n);
          return { ...base, kind, object, version, data: pushed, mode: pushModeOf(b.u8()) };
        }
        case 'pushAck': return { ...base, kind, object: b.string(), mode: pushModeOf(b.u8()) };
        case 'backfillScan': return { ...base, kind, after: b.string(), upTo: b.optional((x) => x.string()) ?? null };
        case 'backfillScanReply': return { ...base, kind, after: b.string(), objects: b.array((x) => [x.string(), decEv(x)] as const) };
        case 'scrubReq': return { ...base, kind, deep: b.bool(), scrubId: b.u53() };
        case 'scrubMap': return { ...base, kind, scrubId: b.u53(), objects: b.array((x) => decScrubObject(x, structVersion)) };
        default: return assertNever(kind, 'pg message kind');
      }
    })();
    return { from, msg: m };
  });
  d.done('pg message');
  if (!usedData && data.length > 0) throw new AspenError('E_DECODE', `${data.length} unreferenced bytes in the data segment`);
  return out;
}
