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
import { assert, assertNever } from '../assert.ts';
import { AspenError, isErrorCode } from '../errors.ts';
import { ClientSession, type ClientEffect } from '../msgr/client-session.ts';
import { DEFAULT_FRAME_LIMITS, FrameType, type Frame, type FrameLimits } from '../msgr/frame.ts';
import { decodeHelloAck, encodeHello, isEntityName } from '../msgr/handshake.ts';
import { MSGR_INFLIGHT_BYTES_MAX, MSGR_INFLIGHT_REQUESTS_MAX } from '../msgr/throttle.ts';
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
  readonly resolve: (r: MsgrResponse) => void;
  readonly reject: (e: AspenError) => void;
  timer: NodeJS.Timeout | undefined;
}

/** Counters for tests and metrics. */
export interface MsgrClientStats {
  /** Handshakes completed. */
  readonly connects: number;
  /** Requests written again after a reconnect. */
  readonly resends: number;
  readonly timeouts: number;
  /** Replies that arrived after their request had timed out. */
  readonly lateReplies: number;
}

/**
 * A lossless messenger session to one server (also exported as `Connection`): the I/O shell
 * around the pure {@link ClientSession}, which decides what to write, when to (re)connect and how
 * each request ends; this class owns the socket and the timers and applies those effects.
 */
export class MsgrClient {
  readonly host: string;
  readonly port: number;
  readonly sessionId: bigint;
  private readonly o: Required<Omit<MsgrClientOptions, 'onMessage' | 'sessionId' | 'limits'>> & { limits: FrameLimits };
  private readonly onMessage: MsgrClientOptions['onMessage'];
  private readonly core: ClientSession<Pending>;
  private fs: FrameSocket | undefined;
  private open = false;
  private fatal: AspenError | undefined;
  private connectSeq = 0;
  private connects = 0;
  private timeouts = 0;
  private connectTimer: NodeJS.Timeout | undefined;
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
    this.core = new ClientSession<Pending>({
      inflightRequestsMax: this.o.inflightRequestsMax,
      inflightBytesMax: this.o.inflightBytesMax,
      reconnectAttemptsMax: this.o.reconnectAttemptsMax,
      reconnectBackoffMs: this.o.reconnectBackoffMs,
      reconnectBackoffMaxMs: MSGR_RECONNECT_BACKOFF_MAX_MS,
      onewayQueueMax: this.o.onewayQueueMax,
      peerAddress: this.address,
    });
  }

  /** `host:port` of the server. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }
  /** Requests sent (or being resent) and not yet answered. */
  get inflightRequests(): number {
    return this.core.inflightRequests;
  }
  /** Request payload bytes in flight. */
  get inflightBytes(): number {
    return this.core.inflightBytes;
  }
  /** True while a handshaken connection is up. */
  get isOpen(): boolean {
    return this.open;
  }
  /** Counters (a snapshot). */
  get stats(): MsgrClientStats {
    return { connects: this.connects, resends: this.core.stats.resends, timeouts: this.timeouts, lateReplies: this.core.stats.lateReplies };
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
    if (meta.length > this.o.limits.metaMaxBytes || meta.length + data.length > this.o.limits.frameMaxBytes) {
      return Promise.reject(new AspenError('EINVAL', `request of ${meta.length}+${data.length} bytes exceeds the frame limits`));
    }
    const timeoutMs = opts.timeoutMs ?? this.o.requestTimeoutMs;
    return new Promise<MsgrResponse>((resolve, reject) => {
      const p: Pending = { resolve, reject, timer: undefined };
      p.timer = setTimeout(() => {
        this.timeouts++;
        this.apply(this.core.cancel(p, new AspenError('ETIMEDOUT', `request (type ${type}) to ${this.address} got no reply within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.apply(this.core.submit(p, type, meta, data));
    });
  }

  /**
   * Sends a one-way message (at most once: lost if the connection drops after it was written).
   * @throws AspenError ECONNREFUSED when closed, EBUSY when the queue of messages waiting for a
   *   connection is full, EINVAL for an oversized frame.
   */
  send(type: number, meta: Uint8Array, data: Uint8Array = EMPTY): void {
    assert(Number.isInteger(type) && type >= 0 && type <= 0xffff, `bad message type ${type}`);
    if (this.closing) throw new AspenError('ECONNREFUSED', `messenger client to ${this.address} is closed`);
    if (meta.length > this.o.limits.metaMaxBytes || meta.length + data.length > this.o.limits.frameMaxBytes) {
      throw new AspenError('EINVAL', `message of ${meta.length}+${data.length} bytes exceeds the frame limits`);
    }
    this.apply(this.core.sendOneway(type, meta, data));
  }

  /**
   * Orderly close: refuses new requests, waits for every in-flight request to settle (each
   * has its deadline), sends CLOSE and ends the connection.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (!this.core.isDrained) await new Promise<void>((r) => (this.drained = r));
    this.shutdown();
    this.apply(this.core.close(new AspenError('ECONNREFUSED', `messenger client to ${this.address} is closed`)));
    const fs = this.fs;
    this.fs = undefined;
    fs?.close('client closing');
  }

  /** Abrupt close: every waiting request rejects with ECONNREFUSED; the socket is destroyed. */
  destroy(): void {
    this.closing = true;
    this.shutdown();
    this.apply(this.core.close(new AspenError('ECONNREFUSED', `messenger client to ${this.address} destroyed`)));
    const fs = this.fs;
    this.fs = undefined;
    fs?.abort('client destroyed');
  }

  private shutdown(): void {
    this.closed = true;
    this.open = false;
    clearTimeout(this.connectTimer);
    clearTimeout(this.handshakeTimer);
  }

  // --- applying the core's effects --------------------------------------------------------

  private apply(effects: Array<ClientEffect<Pending>>): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'write':
          assert(this.fs !== undefined && this.open, 'write effect without an open connection');
          this.fs.send(e.frame);
          break;
        case 'connect':
          assert(this.fs === undefined && this.connectTimer === undefined, 'connect effect while connecting');
          if (this.closed) break;
          if (e.delayMs === 0) this.connect();
          else {
            this.connectTimer = setTimeout(() => {
              this.connectTimer = undefined;
              if (!this.closed) this.connect();
            }, e.delayMs);
          }
          break;
        case 'resolve':
          clearTimeout(e.token.timer);
          e.token.resolve({ meta: e.meta, data: e.data });
          break;
        case 'reject':
          clearTimeout(e.token.timer);
          e.token.reject(e.error);
          break;
        default:
          assertNever(e, 'client effect');
      }
    }
    if (this.drained !== undefined && this.core.isDrained) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }

  // --- connection -------------------------------------------------------------------------

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
        this.apply(this.core.onReply(f));
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
    this.connects++;
    this.apply(this.core.onOpen());
  }

  private onSocketClose(fs: FrameSocket, info: CloseInfo): void {
    if (fs !== this.fs) return;
    this.fs = undefined;
    this.open = false;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    if (this.closed) return;
    const fatal = this.fatal ?? refusalOf(info.peerReason);
    this.fatal = undefined;
    if (fatal !== undefined) this.o.log.warn({ peer: this.address, err: fatal.message }, 'msgr: handshake refused');
    else this.o.log.debug({ peer: this.address, reason: info.reason }, 'msgr: connection lost');
    this.apply(this.core.onClose(fatal !== undefined ? { fatal, reason: info.reason } : { reason: info.reason }));
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
