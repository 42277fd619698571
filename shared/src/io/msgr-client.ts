/**
 * The connecting side of the messenger (docs/adr/0005-messenger.md): one {@link MsgrClient} is a
 * lossless session to one server address; a {@link Messenger} keeps one per peer address.
 *
 * Requests are pipelined on one TCP connection and matched to replies by request id. At most
 * `inflightRequestsMax` requests and `inflightBytesMax` request payload bytes are in flight;
 * beyond that `request()` waits (FIFO) for capacity. Every request has a deadline
 * (`timeoutMs`, counted from the call, including the wait for capacity): past it, the promise
 * rejects with ETIMEDOUT and a late reply is ignored.
 *
 * Reconnect and resend (lossless, as Ceph's lossless client policy): when the connection drops,
 * the client reconnects with the same session id and resends, in request-id order and flagged
 * RESENT, every request that had no reply yet; the server exposes (session, reqId, resent) so
 * the handler can drop duplicates. After `reconnectAttemptsMax` consecutive failed connection
 * attempts (exponential backoff from `reconnectBackoffMs`; a connection that closes before its
 * first reply counts as failed), every waiting request rejects with ECONNREFUSED; the next
 * request starts a new cycle. A refused handshake (other cluster, wrong
 * peer, no common version) rejects at once with that error (E_WRONG_CLUSTER, EINVAL,
 * E_UNSUPPORTED) and is not retried until the next request.
 *
 * One-way messages are at most once: written when the connection is open (queued, bounded by
 * `onewayQueueMax`, while it is being established), and lost if it drops.
 */
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { assert } from '../assert.ts';
import { AspenError, isErrorCode } from '../errors.ts';
import { DEFAULT_FRAME_LIMITS, FrameFlag, FrameType, type Frame, type FrameLimits } from '../msgr/frame.ts';
import { decodeHelloAck, decodeRemoteError, encodeHello, isEntityName } from '../msgr/handshake.ts';
import { InflightThrottle, MSGR_INFLIGHT_BYTES_MAX, MSGR_INFLIGHT_REQUESTS_MAX, type ThrottleWaiter } from '../msgr/throttle.ts';
import { FrameSocket, silentMsgrLog, type CloseInfo, type MsgrLog } from './msgr-socket.ts';
import type { MsgrReply } from './msgr-server.ts';

/** Default request deadline, ms (Ceph's rados_osd_op_timeout is off by default; ours is finite). */
export const MSGR_REQUEST_TIMEOUT_MS = 30_000;
/** Default consecutive failed connection attempts before waiting requests fail with ECONNREFUSED. */
export const MSGR_RECONNECT_ATTEMPTS_MAX = 5;
/** First reconnect backoff, ms; doubles per failed attempt up to {@link MSGR_RECONNECT_BACKOFF_MAX_MS}. */
export const MSGR_RECONNECT_BACKOFF_MS = 20;
/** Largest reconnect backoff, ms. */
export const MSGR_RECONNECT_BACKOFF_MAX_MS = 2_000;
/** Time to connect and complete the handshake, ms. */
export const MSGR_CONNECT_TIMEOUT_MS = 5_000;
/** One-way messages queued while (re)connecting. */
export const MSGR_ONEWAY_QUEUE_MAX = 1024;

const EMPTY = new Uint8Array(0);

/** A reply as the client receives it: both segments always present (possibly empty). */
export interface MsgrResponse {
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
}

/** A one-way message from the server. */
export interface MsgrIncoming {
  readonly type: number;
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
}

/** Options shared by {@link MsgrClient} and {@link Messenger}. */
export interface MsgrClientCommonOptions {
  /** Cluster fsid presented in HELLO and required in HELLO_ACK. */
  readonly fsid: string;
  /** Our entity name, e.g. `client.admin`, `osd.2`. */
  readonly entity: string;
  /** Set the payload crc32c on frames we send; default true. */
  readonly payloadCrc?: boolean;
  readonly limits?: FrameLimits;
  readonly requestTimeoutMs?: number;
  readonly inflightRequestsMax?: number;
  readonly inflightBytesMax?: number;
  readonly reconnectAttemptsMax?: number;
  readonly reconnectBackoffMs?: number;
  readonly connectTimeoutMs?: number;
  readonly onewayQueueMax?: number;
  /** Receives one-way messages the server sends. */
  readonly onMessage?: (msg: MsgrIncoming, from: MsgrClient) => void;
  readonly log?: MsgrLog;
}

/** Options of a {@link MsgrClient}. */
export interface MsgrClientOptions extends MsgrClientCommonOptions {
  readonly host: string;
  readonly port: number;
  /** The entity we expect to reach (e.g. `osd.3`); '' accepts any. */
  readonly peerEntity?: string;
  /** Session id; random by default. */
  readonly sessionId?: bigint;
}

/** Per-request options. */
export interface RequestOptions {
  /** Deadline from the call, ms; default the client's `requestTimeoutMs`. */
  readonly timeoutMs?: number;
}

interface Pending {
  reqId: bigint;
  readonly msgType: number;
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
  readonly bytes: number;
  readonly resolve: (r: MsgrResponse) => void;
  readonly reject: (e: AspenError) => void;
  timer: NodeJS.Timeout | undefined;
  waiter: ThrottleWaiter | undefined;
  sentOnce: boolean;
}

/** Counters for tests and metrics. */
export interface MsgrClientStats {
  connects: number;
  resends: number;
  timeouts: number;
  lateReplies: number;
}

/** A lossless messenger session to one server. Also exported as `Connection`. */
export class MsgrClient {
  readonly host: string;
  readonly port: number;
  readonly sessionId: bigint;
  readonly stats: MsgrClientStats = { connects: 0, resends: 0, timeouts: 0, lateReplies: 0 };
  private readonly o: Required<Omit<MsgrClientOptions, 'onMessage' | 'sessionId' | 'limits'>> & { limits: FrameLimits };
  private readonly onMessage: MsgrClientOptions['onMessage'];
  private readonly throttle: InflightThrottle;
  private readonly pending = new Map<bigint, Pending>();
  private readonly onewayQueue: Frame[] = [];
  private fs: FrameSocket | undefined;
  private open = false;
  private fatal: AspenError | undefined;
  private attempts = 0;
  /** Replies received on the current connection: a connection that dies before its first reply counts as a failed attempt. */
  private repliesSinceOpen = 0;
  private connectSeq = 0;
  private nextReqId = 0n;
  private backoffTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private closed = false;
  private drained: (() => void) | undefined;

  constructor(options: MsgrClientOptions) {
    assert(isEntityName(options.entity), `invalid entity name ${options.entity}`);
    assert(Number.isInteger(options.port) && options.port > 0 && options.port <= 0xffff, `bad port ${options.port}`);
    this.host = options.host;
    this.port = options.port;
    this.sessionId = options.sessionId ?? randomBytes(8).readBigUInt64LE(0);
    this.onMessage = options.onMessage;
    this.o = {
      fsid: options.fsid,
      entity: options.entity,
      host: options.host,
      port: options.port,
      peerEntity: options.peerEntity ?? '',
      payloadCrc: options.payloadCrc ?? true,
      limits: options.limits ?? DEFAULT_FRAME_LIMITS,
      requestTimeoutMs: options.requestTimeoutMs ?? MSGR_REQUEST_TIMEOUT_MS,
      inflightRequestsMax: options.inflightRequestsMax ?? MSGR_INFLIGHT_REQUESTS_MAX,
      inflightBytesMax: options.inflightBytesMax ?? MSGR_INFLIGHT_BYTES_MAX,
      reconnectAttemptsMax: options.reconnectAttemptsMax ?? MSGR_RECONNECT_ATTEMPTS_MAX,
      reconnectBackoffMs: options.reconnectBackoffMs ?? MSGR_RECONNECT_BACKOFF_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? MSGR_CONNECT_TIMEOUT_MS,
      onewayQueueMax: options.onewayQueueMax ?? MSGR_ONEWAY_QUEUE_MAX,
      log: options.log ?? silentMsgrLog,
    };
    this.throttle = new InflightThrottle(this.o.inflightRequestsMax, this.o.inflightBytesMax);
  }

  /** `host:port` of the server. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }
  /** Requests sent (or being resent) and not yet answered. */
  get inflightRequests(): number {
    return this.throttle.requestsInflight;
  }
  /** Request payload bytes in flight. */
  get inflightBytes(): number {
    return this.throttle.bytesInflight;
  }
  /** True while a handshaken connection is up. */
  get isOpen(): boolean {
    return this.open;
  }

  /**
   * Sends a request and resolves with the server's reply. `meta` and `data` are written
   * without copying and kept until the reply (for resends): do not modify them meanwhile.
   * @param type the user's message type, 0..65535.
   * @throws AspenError ETIMEDOUT past the deadline; ECONNREFUSED when the server cannot be
   *   reached (or the client is closed); E_WRONG_CLUSTER / EINVAL / E_UNSUPPORTED when the
   *   handshake is refused; EINVAL for an oversized frame; or the AspenError the handler threw.
   */
  request(type: number, meta: Uint8Array, data: Uint8Array = EMPTY, opts: RequestOptions = {}): Promise<MsgrResponse> {
    assert(Number.isInteger(type) && type >= 0 && type <= 0xffff, `bad message type ${type}`);
    if (this.closing) return Promise.reject(new AspenError('ECONNREFUSED', `messenger client to ${this.address} is closed`));
    const bytes = meta.length + data.length;
    if (meta.length > this.o.limits.metaMaxBytes || bytes > this.o.limits.frameMaxBytes) {
      return Promise.reject(new AspenError('EINVAL', `request of ${meta.length}+${data.length} bytes exceeds the frame limits`));
    }
    const timeoutMs = opts.timeoutMs ?? this.o.requestTimeoutMs;
    return new Promise<MsgrResponse>((resolve, reject) => {
      const p: Pending = { reqId: 0n, msgType: type, meta, data, bytes, resolve, reject, timer: undefined, waiter: undefined, sentOnce: false };
      p.timer = setTimeout(() => this.onTimeout(p, timeoutMs), timeoutMs);
      p.waiter = this.throttle.acquire(bytes, () => this.start(p));
      if (p.waiter === undefined) this.start(p);
    });
  }

  /**
   * Sends a one-way message (at most once: lost if the connection drops before it is written).
   * @throws AspenError ECONNREFUSED when closed, EBUSY when the queue of messages waiting for a
   *   connection is full, EINVAL for an oversized frame.
   */
  send(type: number, meta: Uint8Array, data: Uint8Array = EMPTY): void {
    assert(Number.isInteger(type) && type >= 0 && type <= 0xffff, `bad message type ${type}`);
    if (this.closing) throw new AspenError('ECONNREFUSED', `messenger client to ${this.address} is closed`);
    if (meta.length > this.o.limits.metaMaxBytes || meta.length + data.length > this.o.limits.frameMaxBytes) {
      throw new AspenError('EINVAL', `message of ${meta.length}+${data.length} bytes exceeds the frame limits`);
    }
    const frame: Frame = { type: FrameType.ONEWAY, flags: 0, msgType: type, reqId: 0n, meta, data };
    if (this.open && this.fs !== undefined) {
      this.fs.send(frame);
      return;
    }
    if (this.onewayQueue.length >= this.o.onewayQueueMax) throw new AspenError('EBUSY', `${this.onewayQueue.length} one-way messages already wait for a connection to ${this.address}`);
    this.onewayQueue.push(frame);
    this.ensureConnecting();
  }

  /**
   * Orderly close: refuses new requests, waits for every in-flight request to settle (each
   * has its deadline), sends CLOSE and ends the connection.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.pending.size > 0 || this.throttle.waiting > 0) {
      await new Promise<void>((r) => (this.drained = r));
    }
    this.closed = true;
    clearTimeout(this.backoffTimer);
    clearTimeout(this.handshakeTimer);
    this.onewayQueue.length = 0;
    const fs = this.fs;
    this.fs = undefined;
    this.open = false;
    fs?.close('client closing');
  }

  /** Abrupt close: every waiting request rejects with ECONNREFUSED; the socket is destroyed. */
  destroy(): void {
    this.closing = true;
    this.closed = true;
    clearTimeout(this.backoffTimer);
    clearTimeout(this.handshakeTimer);
    this.failAll(new AspenError('ECONNREFUSED', `messenger client to ${this.address} destroyed`));
    const fs = this.fs;
    this.fs = undefined;
    this.open = false;
    fs?.abort('client destroyed');
  }

  // --- requests ---------------------------------------------------------------------------

  private start(p: Pending): void {
    p.waiter = undefined;
    this.nextReqId += 1n;
    p.reqId = this.nextReqId;
    this.pending.set(p.reqId, p);
    if (this.closed) {
      this.settle(p);
      p.reject(new AspenError('ECONNREFUSED', `messenger client to ${this.address} is closed`));
    } else if (this.open) this.write(p);
    else this.ensureConnecting();
  }

  private write(p: Pending): void {
    const fs = this.fs;
    assert(fs !== undefined && this.open, 'write without an open connection');
    if (p.sentOnce) this.stats.resends++;
    fs.send({ type: FrameType.REQUEST, flags: p.sentOnce ? FrameFlag.RESENT : 0, msgType: p.msgType, reqId: p.reqId, meta: p.meta, data: p.data });
    p.sentOnce = true;
  }

  private settle(p: Pending): void {
    clearTimeout(p.timer);
    if (p.waiter !== undefined) {
      this.throttle.cancel(p.waiter);
      p.waiter = undefined;
    } else {
      const had = this.pending.delete(p.reqId);
      assert(had, 'settling a request that is not pending');
      this.throttle.release(p.bytes);
    }
    if (this.closing && this.drained !== undefined && this.pending.size === 0 && this.throttle.waiting === 0) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }

  private onTimeout(p: Pending, timeoutMs: number): void {
    this.stats.timeouts++;
    this.settle(p);
    p.reject(new AspenError('ETIMEDOUT', `request (type ${p.msgType}${p.reqId > 0n ? `, reqid ${p.reqId}` : ''}) to ${this.address} got no reply within ${timeoutMs} ms`));
  }

  private onReply(f: Frame): void {
    const p = this.pending.get(f.reqId);
    if (p === undefined) {
      // Timed out already, or a duplicate reply after a resend.
      this.stats.lateReplies++;
      return;
    }
    this.repliesSinceOpen++;
    this.settle(p);
    if (f.type === FrameType.REPLY) {
      p.resolve({ meta: f.meta, data: f.data });
      return;
    }
    let err: AspenError;
    try {
      const r = decodeRemoteError(f.meta);
      err = new AspenError(r.code, r.message, { remote: this.address });
    } catch {
      err = new AspenError('EIO', `undecodable error reply from ${this.address}`);
    }
    p.reject(err);
  }

  private failAll(err: AspenError): void {
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.reject(err);
    }
    this.onewayQueue.length = 0;
    // Requests still waiting for capacity were granted by the settles above and are now pending
    // again: they start a fresh connection cycle.
  }

  // --- connection -------------------------------------------------------------------------

  private ensureConnecting(): void {
    if (this.closed || this.fs !== undefined || this.backoffTimer !== undefined) return;
    this.connect();
  }

  private connect(): void {
    assert(this.fs === undefined && !this.open, 'connect while connected');
    this.fatal = undefined;
    const socket = connect({ host: this.host, port: this.port });
    const seq = this.connectSeq++;
    const fs: FrameSocket = new FrameSocket(
      socket,
      {
        onBanner: () => {
          fs.send({
            type: FrameType.HELLO,
            flags: 0,
            msgType: 0,
            reqId: 0n,
            meta: encodeHello({ fsid: this.o.fsid, entity: this.o.entity, sessionId: this.sessionId, connectSeq: seq, peerEntity: this.o.peerEntity, auth: { method: 0, payload: EMPTY } }),
            data: EMPTY,
          });
        },
        onFrame: (f) => this.onFrame(fs, f),
        onClose: (info) => this.onSocketClose(fs, info),
      },
      { payloadCrc: this.o.payloadCrc, limits: this.o.limits, log: this.o.log, logContext: { peer: this.address } },
    );
    this.fs = fs;
    this.handshakeTimer = setTimeout(() => fs.abort(`no handshake with ${this.address} within ${this.o.connectTimeoutMs} ms`), this.o.connectTimeoutMs);
  }

  private onFrame(fs: FrameSocket, f: Frame): void {
    if (fs !== this.fs) return;
    if (!this.open) {
      this.onHelloAck(fs, f);
      return;
    }
    switch (f.type) {
      case FrameType.REPLY:
      case FrameType.REPLY_ERROR:
        this.onReply(f);
        return;
      case FrameType.ONEWAY:
        this.onMessage?.({ type: f.msgType, meta: f.meta, data: f.data }, this);
        return;
      case FrameType.HELLO:
      case FrameType.HELLO_ACK:
      case FrameType.REQUEST:
      case FrameType.CLOSE:
        this.o.log.warn({ peer: this.address, frameType: f.type }, 'msgr: unexpected frame type from server; closing');
        fs.abort(`unexpected frame type ${f.type}`, new AspenError('E_DECODE', `unexpected frame type ${f.type}`));
        return;
    }
  }

  private onHelloAck(fs: FrameSocket, f: Frame): void {
    let refusal: AspenError | undefined;
    try {
      if (f.type !== FrameType.HELLO_ACK) throw new AspenError('E_DECODE', `expected HELLO_ACK, got frame type ${f.type}`);
      const ack = decodeHelloAck(f.meta);
      if (ack.fsid !== this.o.fsid) refusal = new AspenError('E_WRONG_CLUSTER', `${this.address} is ${ack.entity} of cluster ${ack.fsid}, not ${this.o.fsid}`);
      else if (this.o.peerEntity !== '' && ack.entity !== this.o.peerEntity) refusal = new AspenError('EINVAL', `${this.address} is ${ack.entity}, not ${this.o.peerEntity}`);
      else if (ack.sessionId !== this.sessionId) throw new AspenError('E_DECODE', 'HELLO_ACK for another session');
    } catch (err) {
      const e = err instanceof AspenError ? err : new AspenError('E_DECODE', String(err));
      this.o.log.warn({ peer: this.address, err: e.message }, 'msgr: bad handshake reply; closing');
      fs.abort(e.message, e);
      return;
    }
    if (refusal !== undefined) {
      this.fatal = refusal;
      fs.close(refusal.message);
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    fs.handshakeDone();
    this.open = true;
    this.repliesSinceOpen = 0;
    this.stats.connects++;
    // Resend in request-id order (Map iteration order is insertion order = reqId order).
    for (const p of this.pending.values()) this.write(p);
    for (const frame of this.onewayQueue.splice(0)) fs.send(frame);
  }

  private onSocketClose(fs: FrameSocket, info: CloseInfo): void {
    if (fs !== this.fs) return;
    this.fs = undefined;
    const wasOpen = this.open;
    this.open = false;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    if (this.closed) return;
    const fatal = this.fatal ?? (wasOpen ? undefined : refusalOf(info.peerReason));
    this.fatal = undefined;
    if (fatal !== undefined) {
      this.o.log.warn({ peer: this.address, err: fatal.message }, 'msgr: handshake refused');
      this.attempts = 0;
      this.failAll(fatal);
      return;
    }
    // A connection that carried replies resets the count; one that died before any (a server that
    // drops every connection, or a request that crashes it each time) counts, so it ends in ECONNREFUSED.
    this.attempts = wasOpen && this.repliesSinceOpen > 0 ? 0 : this.attempts + 1;
    this.o.log.debug({ peer: this.address, reason: info.reason, attempts: this.attempts }, 'msgr: connection lost');
    if (this.attempts >= this.o.reconnectAttemptsMax) {
      const err = new AspenError('ECONNREFUSED', `cannot connect to ${this.address} after ${this.attempts} attempts: ${info.reason}`);
      this.attempts = 0;
      this.failAll(err);
      return;
    }
    if (this.pending.size === 0 && this.onewayQueue.length === 0) return; // reconnect lazily
    const delayMs = this.attempts === 0 ? 0 : Math.min(this.o.reconnectBackoffMs * 2 ** (this.attempts - 1), MSGR_RECONNECT_BACKOFF_MAX_MS);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (!this.closed && this.fs === undefined) this.connect();
    }, delayMs);
  }
}

/** Alias: a client connection to one peer. */
export { MsgrClient as Connection };

/** A handshake refusal the server stated in its CLOSE reason (`CODE: message`), if any. */
function refusalOf(peerReason: string | undefined): AspenError | undefined {
  if (peerReason === undefined) return undefined;
  const m = /^([A-Z_]+): (.*)$/s.exec(peerReason);
  if (m === null || !isErrorCode(m[1]!)) return undefined;
  const code = m[1];
  if (code !== 'E_WRONG_CLUSTER' && code !== 'EINVAL' && code !== 'E_UNSUPPORTED') return undefined;
  return new AspenError(code, m[2]!);
}

/**
 * Parses `host:port` or `[v6]:port`.
 * @throws AspenError EINVAL on anything else.
 */
export function parseMsgrAddress(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port > 0 && port <= 0xffff)) throw new AspenError('EINVAL', `bad messenger address ${JSON.stringify(addr)} (want host:port)`);
  return { host: m[1] ?? m[2]!, port };
}

/**
 * One lossless {@link MsgrClient} per peer address, created on first use (as Ceph's Messenger
 * keeps one Connection per entity address).
 */
export class Messenger {
  private readonly conns = new Map<string, MsgrClient>();
  private closed = false;

  constructor(private readonly options: MsgrClientCommonOptions) {
    assert(isEntityName(options.entity), `invalid entity name ${options.entity}`);
  }

  /**
   * The client for `addr` (`host:port`), created on first use.
   * @throws AspenError EINVAL on a malformed address; ECONNREFUSED after close().
   */
  connection(addr: string, peerEntity = ''): MsgrClient {
    if (this.closed) throw new AspenError('ECONNREFUSED', 'messenger is closed');
    let c = this.conns.get(addr);
    if (c === undefined) {
      const { host, port } = parseMsgrAddress(addr);
      c = new MsgrClient({ ...this.options, host, port, peerEntity });
      this.conns.set(addr, c);
    }
    return c;
  }

  /** `connection(addr).request(...)`. */
  request(addr: string, type: number, meta: Uint8Array, data?: Uint8Array, opts?: RequestOptions): Promise<MsgrResponse> {
    return this.connection(addr).request(type, meta, data, opts);
  }

  /** `connection(addr).send(...)`. */
  send(addr: string, type: number, meta: Uint8Array, data?: Uint8Array): void {
    this.connection(addr).send(type, meta, data);
  }

  /** Drops the connection to `addr` (e.g. the peer was marked down): in-flight requests fail with ECONNREFUSED. */
  forget(addr: string): void {
    const c = this.conns.get(addr);
    this.conns.delete(addr);
    c?.destroy();
  }

  /** Orderly close of every connection. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}

export type { MsgrReply };
