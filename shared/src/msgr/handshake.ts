/**
 * Handshake and control-frame bodies of the messenger (docs/adr/0005-messenger.md). Pure.
 *
 * After the banners, the connecting side sends HELLO and the accepting side answers HELLO_ACK
 * (or CLOSE with a reason). Both are versioned structs (shared/src/codec.ts `struct`), so later
 * versions may append fields (e.g. a real authenticator in `auth`).
 */
import { assert } from '../assert.ts';
import { Decoder, Encoder } from '../codec.ts';
import { AspenError, isErrorCode, type ErrorCode } from '../errors.ts';

/** Entity names as Ceph prints them: `client.admin`, `osd.3`, `mon.a`, `mds.x`. */
const ENTITY_RE = /^(client|osd|mon|mds)\.[A-Za-z0-9_.-]{1,64}$/;

/** True when `name` is a valid entity name (`client.X`, `osd.N`, `mon.X`, `mds.X`). */
export function isEntityName(name: string): boolean {
  return ENTITY_RE.test(name);
}

/** Authentication carried by HELLO/HELLO_ACK. Only method 0 (none) exists today. */
export interface AuthBlob {
  /** 0 = none. */
  readonly method: number;
  readonly payload: Uint8Array;
}

/** The connecting side's HELLO. */
export interface Hello {
  /** Cluster fsid; the acceptor refuses another cluster's (E_WRONG_CLUSTER). */
  readonly fsid: string;
  /** Who connects: `client.X`, `osd.N`. */
  readonly entity: string;
  /** Session id (u64, random per client connection object): a reconnect presents the same one. */
  readonly sessionId: bigint;
  /** Connect attempt within the session: 0 first, +1 on every reconnect. */
  readonly connectSeq: number;
  /** Which peer the client means to reach ('' = any), so a stale address is detected. */
  readonly peerEntity: string;
  readonly auth: AuthBlob;
}

/** The accepting side's answer. */
export interface HelloAck {
  readonly fsid: string;
  /** The acceptor's entity name. */
  readonly entity: string;
  /** Echo of the session id. */
  readonly sessionId: bigint;
  /** True when the acceptor still had state for the session (requests in progress). */
  readonly resumed: boolean;
  readonly auth: AuthBlob;
}

/** The body of a REPLY_ERROR frame: an AspenError crossing the wire. */
export interface RemoteError {
  readonly code: ErrorCode;
  readonly message: string;
}

const HELLO_VERSION = 1;

function encodeAuth(e: Encoder, a: AuthBlob): void {
  e.u8(a.method).bytes(a.payload);
}
function decodeAuth(d: Decoder): AuthBlob {
  return { method: d.u8(), payload: d.bytes() };
}

/** Encodes a HELLO body. */
export function encodeHello(h: Hello): Uint8Array {
  assert(isEntityName(h.entity), `invalid entity name ${h.entity}`);
  assert(h.connectSeq >= 0 && h.sessionId >= 0n, 'hello fields in range');
  return new Encoder(128)
    .struct(HELLO_VERSION, 1, (e) => {
      e.string(h.fsid).string(h.entity).u64(h.sessionId).u32(h.connectSeq).string(h.peerEntity);
      encodeAuth(e, h.auth);
    })
    .finish();
}

/**
 * Decodes a HELLO body.
 * @throws AspenError E_DECODE on malformed bytes or an invalid entity name; E_UNSUPPORTED on a newer incompatible struct.
 */
export function decodeHello(bytes: Uint8Array): Hello {
  const d = new Decoder(bytes);
  const h = d.struct(HELLO_VERSION, 'msgr hello', (dd) => ({
    fsid: dd.string(),
    entity: dd.string(),
    sessionId: dd.u64(),
    connectSeq: dd.u32(),
    peerEntity: dd.string(),
    auth: decodeAuth(dd),
  }));
  d.done('msgr hello');
  if (!isEntityName(h.entity)) throw new AspenError('E_DECODE', `invalid entity name in hello: ${JSON.stringify(h.entity.slice(0, 80))}`);
  return h;
}

/** Encodes a HELLO_ACK body. */
export function encodeHelloAck(h: HelloAck): Uint8Array {
  assert(isEntityName(h.entity), `invalid entity name ${h.entity}`);
  assert(h.sessionId >= 0n, 'session id in range');
  return new Encoder(128)
    .struct(HELLO_VERSION, 1, (e) => {
      e.string(h.fsid).string(h.entity).u64(h.sessionId).bool(h.resumed);
      encodeAuth(e, h.auth);
    })
    .finish();
}

/** Decodes a HELLO_ACK body. @throws AspenError E_DECODE / E_UNSUPPORTED. */
export function decodeHelloAck(bytes: Uint8Array): HelloAck {
  const d = new Decoder(bytes);
  const h = d.struct(HELLO_VERSION, 'msgr hello ack', (dd) => ({
    fsid: dd.string(),
    entity: dd.string(),
    sessionId: dd.u64(),
    resumed: dd.bool(),
    auth: decodeAuth(dd),
  }));
  d.done('msgr hello ack');
  if (!isEntityName(h.entity)) throw new AspenError('E_DECODE', `invalid entity name in hello ack: ${JSON.stringify(h.entity.slice(0, 80))}`);
  return h;
}

/** Encodes a REPLY_ERROR body. */
export function encodeRemoteError(err: RemoteError): Uint8Array {
  assert(isErrorCode(err.code), `unknown error code ${err.code}`);
  return new Encoder(64).struct(1, 1, (e) => e.string(err.code).string(err.message)).finish();
}

/**
 * Decodes a REPLY_ERROR body. An unknown code (from a newer peer) becomes EIO.
 * @throws AspenError E_DECODE on malformed bytes.
 */
export function decodeRemoteError(bytes: Uint8Array): RemoteError {
  const d = new Decoder(bytes);
  const r = d.struct(1, 'msgr remote error', (dd) => ({ code: dd.string(), message: dd.string() }));
  d.done('msgr remote error');
  return { code: isErrorCode(r.code) ? r.code : 'EIO', message: isErrorCode(r.code) ? r.message : `${r.code}: ${r.message}` };
}

/**
 * The acceptor's check of a HELLO.
 * @returns the AspenError to refuse with (E_WRONG_CLUSTER, EINVAL), or undefined to accept.
 */
export function checkHello(h: Hello, local: { fsid: string; entity: string }): AspenError | undefined {
  assert(isEntityName(local.entity), 'local entity name');
  if (h.fsid !== local.fsid) return new AspenError('E_WRONG_CLUSTER', `peer ${h.entity} is in cluster ${h.fsid}, this is ${local.fsid}`);
  if (h.peerEntity !== '' && h.peerEntity !== local.entity) return new AspenError('EINVAL', `peer ${h.entity} wanted ${h.peerEntity}, this is ${local.entity}`);
  if (h.auth.method !== 0) return new AspenError('E_UNSUPPORTED', `auth method ${h.auth.method} not supported`);
  return undefined;
}

/** Encodes a CLOSE reason (UTF-8, truncated to 1 KiB). */
export function encodeCloseReason(reason: string): Uint8Array {
  const bytes = new TextEncoder().encode(reason);
  return bytes.length > 1024 ? bytes.subarray(0, 1024) : bytes;
}

/** Decodes a CLOSE reason; invalid UTF-8 is replaced, never thrown. */
export function decodeCloseReason(bytes: Uint8Array): string {
  return new TextDecoder('utf-8').decode(bytes);
}
