/**
 * Wire codecs of watch/notify (librados rados_watch2 / rados_notify2 / rados_notify_ack /
 * rados_unwatch2; Ceph CEPH_OSD_OP_WATCH, CEPH_OSD_OP_NOTIFY, CEPH_OSD_OP_NOTIFY_ACK and
 * MWatchNotify), carried by the message types MSG_WATCH, MSG_NOTIFY, MSG_WATCH_NOTIFY and
 * MSG_NOTIFY_ACK of ./messages.ts.
 *
 * Each message is a versioned struct (CONVENTIONS.md item 4) in the frame's meta segment;
 * bulk bytes (notify payloads, ack replies) travel in the data segment, their lengths in the
 * meta, and decoded bytes alias the input. Bytes come from untrusted peers: every decoder
 * throws `AspenError('EINVAL')` on malformed input (truncated, trailing bytes, unknown enum,
 * newer incompatible version, data segment not fully referenced), never anything else.
 */
import { AspenError } from '../errors.ts';
import { assert } from '../assert.ts';
import { Decoder, Encoder } from '../codec.ts';

/** A message split into the frame's two segments. */
export interface WatchEncoded {
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
}

/** Sub-operation of a watch request (Ceph CEPH_OSD_WATCH_OP_*). */
export type WatchOp = 'watch' | 'reconnect' | 'unwatch' | 'ping';
const WATCH_OPS: readonly WatchOp[] = ['watch', 'reconnect', 'unwatch', 'ping'];

/** Largest notify payload and ack reply, bytes (Ceph bounds them by the message size). */
export const NOTIFY_PAYLOAD_MAX_BYTES = 1024 * 1024;
/** Largest client id (the watcher/notifier name, Ceph entity_name_t), bytes. */
export const CLIENT_ID_MAX_BYTES = 256;

/**
 * Registers, resumes, removes or keeps alive a watch at the object's acting primary.
 * `clientId` names the client instance (Ceph's entity_name_t, e.g. `client.admin.1a2b3c4d`;
 * it must start with the messenger entity name followed by `.`): (clientId, cookie)
 * identifies the watch, and is what notifiers see as the watcher id.
 */
export interface WatchRequest {
  /** OSDMap epoch the client computed the primary with. */
  readonly epoch: number;
  readonly pool: number;
  /** PG seed of the object (the placement the client computed). */
  readonly pgSeed: number;
  readonly namespace: string;
  readonly object: string;
  readonly clientId: string;
  /** Client-chosen watch id, unique per client (Ceph's linger cookie), u64. */
  readonly cookie: bigint;
  readonly op: WatchOp;
  /** The watch expires when no ping arrives for this long, ms; 0 = the OSD's default (Ceph osd_client_watch_timeout, 30 s). */
  readonly timeoutMs: number;
}

/** The answer to a {@link WatchRequest}: code 0 or an AspenError code (ESTALE, ENOENT, ENOTCONN, EINVAL…). */
export interface WatchReply {
  readonly code: 0 | string;
  readonly message: string;
  /** The OSD's epoch; on ESTALE the client waits for it and resends to the new primary. */
  readonly epoch: number;
  /** The timeout the OSD applies to this watch, ms (0 when the request failed). */
  readonly timeoutMs: number;
}

/** Sends `payload` to every watcher of the object and waits for their acks (rados_notify2). */
export interface NotifyRequest {
  readonly epoch: number;
  readonly pool: number;
  readonly pgSeed: number;
  readonly namespace: string;
  readonly object: string;
  /** The notifier's client id (see {@link WatchRequest.clientId}). */
  readonly clientId: string;
  /** At most {@link NOTIFY_PAYLOAD_MAX_BYTES}. */
  readonly payload: Uint8Array;
  /** How long the primary waits for acks, ms; 0 = the OSD's default. */
  readonly timeoutMs: number;
}

/** One watcher's answer to a notification. */
export interface NotifyAckEntry {
  readonly watcherId: string;
  readonly cookie: bigint;
  readonly reply: Uint8Array;
}

/** A watcher that did not ack within the notify's timeout. */
export interface NotifyTimeoutEntry {
  readonly watcherId: string;
  readonly cookie: bigint;
}

/**
 * The answer to a {@link NotifyRequest} (rados_notify2's reply buffer: the acks with their
 * reply bytes, then the watchers that timed out), each list sorted by (watcherId, cookie).
 */
export interface NotifyReply {
  readonly code: 0 | string;
  readonly message: string;
  readonly epoch: number;
  /** The id the primary gave this notification (0 when it failed before being sent). */
  readonly notifyId: bigint;
  readonly acks: readonly NotifyAckEntry[];
  readonly timeouts: readonly NotifyTimeoutEntry[];
}

/** A notification delivered to one watch (one-way, OSD → client). */
export interface NotifyEvent {
  readonly notifyId: bigint;
  /** The watch it is for. */
  readonly cookie: bigint;
  /** The notifier's client id. */
  readonly notifierId: string;
  readonly payload: Uint8Array;
}

/** A watcher's reply to a notification (one-way, client → OSD). */
export interface NotifyAck {
  readonly notifyId: bigint;
  readonly cookie: bigint;
  /** At most {@link NOTIFY_PAYLOAD_MAX_BYTES}. */
  readonly reply: Uint8Array;
}

const V = 1;
const EMPTY = new Uint8Array(0);

/** Runs a decoder; any failure becomes EINVAL (the one error malformed input may cause). */
function decoding<T>(what: string, meta: Uint8Array, data: Uint8Array, body: (d: Decoder, blobs: BlobReader) => T): T {
  try {
    const d = new Decoder(meta);
    const blobs = new BlobReader(data);
    const v = d.struct(V, what, () => body(d, blobs));
    d.done(what);
    blobs.done(what);
    return v;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new AspenError('EINVAL', `malformed ${what}: ${msg}`);
  }
}

/** Takes consecutive byte ranges of the data segment, lengths read from the meta. */
class BlobReader {
  private offset = 0;
  constructor(private readonly data: Uint8Array) {}
  take(d: Decoder, maxBytes: number): Uint8Array {
    const n = d.u32();
    if (n > maxBytes) throw new AspenError('EINVAL', `blob of ${n} bytes exceeds ${maxBytes}`);
    if (n > this.data.length - this.offset) throw new AspenError('EINVAL', 'blob beyond the data segment');
    const v = this.data.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  done(what: string): void {
    if (this.offset !== this.data.length) throw new AspenError('EINVAL', `${this.data.length - this.offset} unreferenced bytes in the data segment of ${what}`);
  }
}

function joinBlobs(blobs: readonly Uint8Array[]): Uint8Array {
  if (blobs.length === 0) return EMPTY;
  if (blobs.length === 1) return blobs[0]!;
  return Buffer.concat(blobs);
}

function code(d: Decoder): 0 | string {
  const c = d.string();
  return c === '' ? 0 : c;
}

function checkClientId(id: string): void {
  if (id === '' || new TextEncoder().encode(id).length > CLIENT_ID_MAX_BYTES) throw new AspenError('EINVAL', `client id must be 1..${CLIENT_ID_MAX_BYTES} bytes`);
}

/** Encodes a watch request. @throws AssertionFailure on out-of-range fields (a caller bug). */
export function encodeWatchRequest(r: WatchRequest): WatchEncoded {
  assert(WATCH_OPS.includes(r.op), `bad watch op ${r.op}`);
  const meta = new Encoder(128).struct(V, 1, (e) => {
    e.u32(r.epoch).u32(r.pool).u32(r.pgSeed).string(r.namespace).string(r.object).string(r.clientId).u64(r.cookie).u8(WATCH_OPS.indexOf(r.op)).u32(r.timeoutMs);
  }).finish();
  return { meta, data: EMPTY };
}

/** Decodes a watch request. @throws AspenError EINVAL on malformed bytes, an unknown op or a bad client id. */
export function decodeWatchRequest(meta: Uint8Array, data: Uint8Array = EMPTY): WatchRequest {
  return decoding('watch request', meta, data, (d) => {
    const r = { epoch: d.u32(), pool: d.u32(), pgSeed: d.u32(), namespace: d.string(), object: d.string(), clientId: d.string(), cookie: d.u64(), opIndex: d.u8(), timeoutMs: d.u32() };
    const op = WATCH_OPS[r.opIndex];
    if (op === undefined) throw new AspenError('EINVAL', `unknown watch op ${r.opIndex}`);
    checkClientId(r.clientId);
    return { epoch: r.epoch, pool: r.pool, pgSeed: r.pgSeed, namespace: r.namespace, object: r.object, clientId: r.clientId, cookie: r.cookie, op, timeoutMs: r.timeoutMs };
  });
}

/** Encodes a watch reply. */
export function encodeWatchReply(r: WatchReply): WatchEncoded {
  const meta = new Encoder(64).struct(V, 1, (e) => {
    e.string(r.code === 0 ? '' : r.code).string(r.message).u32(r.epoch).u32(r.timeoutMs);
  }).finish();
  return { meta, data: EMPTY };
}

/** Decodes a watch reply. @throws AspenError EINVAL on malformed bytes. */
export function decodeWatchReply(meta: Uint8Array, data: Uint8Array = EMPTY): WatchReply {
  return decoding('watch reply', meta, data, (d) => ({ code: code(d), message: d.string(), epoch: d.u32(), timeoutMs: d.u32() }));
}

/** Encodes a notify request (the payload in the data segment). @throws AssertionFailure on an oversized payload. */
export function encodeNotifyRequest(r: NotifyRequest): WatchEncoded {
  assert(r.payload.length <= NOTIFY_PAYLOAD_MAX_BYTES, 'notify payload too large');
  const meta = new Encoder(128).struct(V, 1, (e) => {
    e.u32(r.epoch).u32(r.pool).u32(r.pgSeed).string(r.namespace).string(r.object).string(r.clientId).u32(r.payload.length).u32(r.timeoutMs);
  }).finish();
  return { meta, data: r.payload };
}

/** Decodes a notify request. @throws AspenError EINVAL on malformed bytes, a bad client id or an oversized payload. */
export function decodeNotifyRequest(meta: Uint8Array, data: Uint8Array = EMPTY): NotifyRequest {
  return decoding('notify request', meta, data, (d, blobs) => {
    const r = { epoch: d.u32(), pool: d.u32(), pgSeed: d.u32(), namespace: d.string(), object: d.string(), clientId: d.string(), payload: blobs.take(d, NOTIFY_PAYLOAD_MAX_BYTES), timeoutMs: d.u32() };
    checkClientId(r.clientId);
    return r;
  });
}

/** Encodes a notify reply (ack replies in the data segment). */
export function encodeNotifyReply(r: NotifyReply): WatchEncoded {
  const blobs: Uint8Array[] = [];
  const meta = new Encoder(128).struct(V, 1, (e) => {
    e.string(r.code === 0 ? '' : r.code).string(r.message).u32(r.epoch).u64(r.notifyId);
    e.array(r.acks, (ee, a) => {
      ee.string(a.watcherId).u64(a.cookie).u32(a.reply.length);
      blobs.push(a.reply);
    });
    e.array(r.timeouts, (ee, t) => ee.string(t.watcherId).u64(t.cookie));
  }).finish();
  return { meta, data: joinBlobs(blobs) };
}

/** Decodes a notify reply. @throws AspenError EINVAL on malformed bytes. */
export function decodeNotifyReply(meta: Uint8Array, data: Uint8Array = EMPTY): NotifyReply {
  return decoding('notify reply', meta, data, (d, blobs) => ({
    code: code(d), message: d.string(), epoch: d.u32(), notifyId: d.u64(),
    acks: d.array((dd) => ({ watcherId: dd.string(), cookie: dd.u64(), reply: blobs.take(dd, NOTIFY_PAYLOAD_MAX_BYTES) })),
    timeouts: d.array((dd) => ({ watcherId: dd.string(), cookie: dd.u64() })),
  }));
}

/** Encodes a notification event (the payload in the data segment). */
export function encodeNotifyEvent(ev: NotifyEvent): WatchEncoded {
  const meta = new Encoder(64).struct(V, 1, (e) => {
    e.u64(ev.notifyId).u64(ev.cookie).string(ev.notifierId).u32(ev.payload.length);
  }).finish();
  return { meta, data: ev.payload };
}

/** Decodes a notification event. @throws AspenError EINVAL on malformed bytes. */
export function decodeNotifyEvent(meta: Uint8Array, data: Uint8Array = EMPTY): NotifyEvent {
  return decoding('notify event', meta, data, (d, blobs) => ({ notifyId: d.u64(), cookie: d.u64(), notifierId: d.string(), payload: blobs.take(d, NOTIFY_PAYLOAD_MAX_BYTES) }));
}

/** Encodes a notify ack (the reply in the data segment). @throws AssertionFailure on an oversized reply. */
export function encodeNotifyAck(a: NotifyAck): WatchEncoded {
  assert(a.reply.length <= NOTIFY_PAYLOAD_MAX_BYTES, 'notify ack reply too large');
  const meta = new Encoder(32).struct(V, 1, (e) => {
    e.u64(a.notifyId).u64(a.cookie).u32(a.reply.length);
  }).finish();
  return { meta, data: a.reply };
}

/** Decodes a notify ack. @throws AspenError EINVAL on malformed bytes or an oversized reply. */
export function decodeNotifyAck(meta: Uint8Array, data: Uint8Array = EMPTY): NotifyAck {
  return decoding('notify ack', meta, data, (d, blobs) => ({ notifyId: d.u64(), cookie: d.u64(), reply: blobs.take(d, NOTIFY_PAYLOAD_MAX_BYTES) }));
}
