/**
 * The accepting side of the messenger (docs/adr/0005-messenger.md): listens on host:port,
 * runs the handshake, hands every REQUEST and ONEWAY to the user's handler and writes each
 * request's reply (or its AspenError) back by request id.
 *
 * Sessions and duplicates: a client presents the same (entity, session id) when it reconnects
 * and resends the requests that had no reply, flagged RESENT. The handler sees
 * `msg.session` + `msg.reqId` (the reqid Ceph's OSD dedups by, osd_reqid_t) and `msg.resent`.
 * A resend of a request whose handler is still running is NOT delivered again: its reply goes
 * to the session's current connection when the handler finishes. A resend of a request that had
 * completed (its reply was lost with the old connection) IS delivered again, with
 * `resent: true`: deduplicating completed requests is the handler's job (the OSD's PG log).
 *
 * Backpressure: a connection stops being read while its handlers have more than
 * `handlerRequestsMax` requests or `handlerBytesMax` payload bytes outstanding, or while its
 * socket holds more than `writeBufferMaxBytes` of unsent replies.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { AssertionFailure, assert } from '../assert.ts';
import { AspenError } from '../errors.ts';
import { FrameFlag, FrameType, type Frame, type FrameLimits } from '../msgr/frame.ts';
import { checkHello, decodeHello, encodeHelloAck, encodeRemoteError, isEntityName, type Hello } from '../msgr/handshake.ts';
import { FrameSocket, silentMsgrLog, type CloseInfo, type MsgrLog } from './msgr-socket.ts';

/** Default cap on requests a connection's handlers may have outstanding before reading pauses. */
export const MSGR_SERVER_HANDLER_REQUESTS_MAX = 1024;
/** Default cap on request payload bytes outstanding in handlers per connection before reading pauses. */
export const MSGR_SERVER_HANDLER_BYTES_MAX = 256 * 1024 * 1024;
/** Default cap on unsent reply bytes in a connection's socket before reading pauses. */
export const MSGR_SERVER_WRITE_BUFFER_MAX_BYTES = 64 * 1024 * 1024;
/** Time a connection has to complete its handshake, ms. */
export const MSGR_HANDSHAKE_TIMEOUT_MS = 10_000;

const EMPTY = new Uint8Array(0);

/** Who sent a message: the peer's entity name and session id (stable across reconnects). */
export interface MsgrSession {
  readonly entity: string;
  readonly sessionId: bigint;
}

/** A message delivered to a server's handler. `meta`/`data` may alias receive buffers: copy what you keep. */
export interface MsgrMessage {
  /** The user's message type (0..65535). */
  readonly type: number;
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
  /** True for a one-way message (the handler's return value is ignored). */
  readonly oneway: boolean;
  /** Request id, unique within `session` (0 for one-way messages). */
  readonly reqId: bigint;
  readonly session: MsgrSession;
  /** The client sent this request before, on an earlier connection: it may be a duplicate. */
  readonly resent: boolean;
}

/** A reply: both segments optional (empty). `data` is written without copying: do not modify it afterwards. */
export interface MsgrReply {
  readonly meta?: Uint8Array;
  readonly data?: Uint8Array;
}

/**
 * Handles one message. For a request, the returned reply (or `undefined`: an empty reply) is
 * sent back; a thrown or rejected AspenError is sent as that error; any other exception is
 * logged and sent as EIO, except an AssertionFailure, which is rethrown (a bug crashes the
 * daemon).
 */
export type MsgrHandler = (conn: ServerConnection, msg: MsgrMessage) => Promise<MsgrReply | void> | MsgrReply | void;

/** Options of a {@link MsgrServer}. */
export interface MsgrServerOptions {
  /** Cluster fsid: HELLOs from another cluster are refused. */
  readonly fsid: string;
  /** This server's entity name, e.g. `osd.3`. */
  readonly entity: string;
  readonly handler: MsgrHandler;
  /** Set the payload crc32c on frames we send; default true. */
  readonly payloadCrc?: boolean;
  readonly limits?: FrameLimits;
  readonly handlerRequestsMax?: number;
  readonly handlerBytesMax?: number;
  readonly writeBufferMaxBytes?: number;
  readonly handshakeTimeoutMs?: number;
  readonly log?: MsgrLog;
}

/** Counters of a {@link MsgrServer} (for metrics and tests). */
export interface MsgrServerStats {
  /** TCP connections accepted. */
  accepted: number;
  /** Handshakes completed. */
  handshakes: number;
  /** Handshakes refused (other cluster, wrong peer, unsupported auth). */
  refused: number;
  /** Connections closed for a protocol violation (bad bytes, oversized frame, unexpected frame, handshake timeout). */
  protocolErrors: number;
  /** Requests delivered to the handler, and those of them flagged RESENT. */
  requests: number;
  resentRequests: number;
  /** Resends of requests still running, not delivered again. */
  joinedResends: number;
  /** One-way messages delivered. */
  oneways: number;
}

interface Session {
  readonly key: string;
  readonly id: MsgrSession;
  conn: ServerConnection | undefined;
  /** Requests whose handler is running, by request id. */
  readonly running: Set<bigint>;
}

/** One accepted connection, as handed to the handler. */
export class ServerConnection {
  /** The peer's session (set once the handshake is done). */
  session: MsgrSession | undefined;
  readonly fs: FrameSocket;
  private handlerRequests = 0;
  private handlerBytes = 0;
  private paused = false;
  private readonly backlog: Frame[] = [];
  private handshakeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: MsgrServer,
    socket: Socket,
    /** `host:port` of the peer. */
    readonly remoteAddress: string,
  ) {
    this.fs = new FrameSocket(socket, { onFrame: (f) => this.onFrame(f), onClose: (i) => this.onClose(i) }, server.socketOptions({ peer: remoteAddress }));
    this.handshakeTimer = setTimeout(() => this.fs.abort('handshake timeout', new AspenError('ETIMEDOUT', `no HELLO within ${server.handshakeTimeoutMs} ms`)), server.handshakeTimeoutMs);
    socket.on('drain', () => this.maybeResume());
  }

  /** Whether the connection is gone. */
  get isClosed(): boolean {
    return this.fs.isClosed;
  }

  /**
   * Sends a one-way message to the client (e.g. a watch notification). Dropped when closed.
   * @throws AspenError EINVAL when the frame exceeds the limits.
   */
  send(type: number, meta: Uint8Array, data: Uint8Array = EMPTY): void {
    assert(this.session !== undefined, 'send before the handshake completed');
    this.fs.send({ type: FrameType.ONEWAY, flags: 0, msgType: type, reqId: 0n, meta, data });
  }

  /** Orderly close with a reason (the client will not resend). */
  close(reason = 'closed by server'): void {
    this.fs.close(reason);
  }

  /** Abrupt close, as a network failure would (the client reconnects and resends). */
  destroy(reason = 'destroyed by server'): void {
    this.fs.abort(reason);
  }

  private onFrame(f: Frame): void {
    if (this.session === undefined) {
      this.onHello(f);
      return;
    }
    switch (f.type) {
      case FrameType.REQUEST:
      case FrameType.ONEWAY:
        // Strict limit: frames beyond it wait here (at most what one read delivered) while reading is paused.
        if (this.backlog.length > 0 || this.overLimit()) {
          this.backlog.push(f);
          this.maybePause();
        } else this.onMessage(f);
        return;
      case FrameType.HELLO:
      case FrameType.HELLO_ACK:
      case FrameType.REPLY:
      case FrameType.REPLY_ERROR:
      case FrameType.CLOSE:
        this.server.log.warn({ peer: this.remoteAddress, frameType: f.type }, 'msgr: unexpected frame type from client; closing');
        this.fs.abort(`unexpected frame type ${f.type}`, new AspenError('E_DECODE', `unexpected frame type ${f.type}`));
        return;
    }
  }

  private onHello(f: Frame): void {
    let hello: Hello;
    try {
      if (f.type !== FrameType.HELLO) throw new AspenError('E_DECODE', `expected HELLO, got frame type ${f.type}`);
      hello = decodeHello(f.meta);
    } catch (err) {
      const e = err instanceof AspenError ? err : new AspenError('E_DECODE', String(err));
      this.server.log.warn({ peer: this.remoteAddress, err: e.message }, 'msgr: bad handshake; closing');
      this.fs.abort(e.message, e);
      return;
    }
    const refusal = checkHello(hello, this.server);
    if (refusal !== undefined) {
      this.server.stats.refused++;
      this.server.log.warn({ peer: this.remoteAddress, entity: hello.entity, err: refusal.message }, 'msgr: handshake refused');
      this.fs.close(`${refusal.code}: ${refusal.message}`);
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.fs.handshakeDone();
    this.server.stats.handshakes++;
    const { session, resumed } = this.server.attach(hello, this);
    this.session = session.id;
    this.fs.send({
      type: FrameType.HELLO_ACK,
      flags: 0,
      msgType: 0,
      reqId: 0n,
      meta: encodeHelloAck({ fsid: this.server.fsid, entity: this.server.entity, sessionId: hello.sessionId, resumed, auth: { method: 0, payload: EMPTY } }),
      data: EMPTY,
    });
  }

  private onMessage(f: Frame): void {
    const session = this.server.sessionOf(this);
    assert(session !== undefined && this.session !== undefined, 'message on a connection without a session');
    const oneway = f.type === FrameType.ONEWAY;
    if (!oneway && session.running.has(f.reqId)) {
      // A resend of a request still being handled: its reply will go to this (current) connection.
      this.server.stats.joinedResends++;
      this.server.log.debug({ peer: this.remoteAddress, reqId: f.reqId.toString() }, 'msgr: resent request still in progress; not delivered again');
      return;
    }
    const stats = this.server.stats;
    if (oneway) stats.oneways++;
    else {
      stats.requests++;
      if ((f.flags & FrameFlag.RESENT) !== 0) stats.resentRequests++;
    }
    const bytes = f.meta.length + f.data.length;
    const msg: MsgrMessage = { type: f.msgType, meta: f.meta, data: f.data, oneway, reqId: oneway ? 0n : f.reqId, session: this.session, resent: (f.flags & FrameFlag.RESENT) !== 0 };
    if (!oneway) session.running.add(f.reqId);
    this.handlerRequests++;
    this.handlerBytes += bytes;
    let result: ReturnType<MsgrHandler>;
    try {
      result = this.server.handler(this, msg);
    } catch (err) {
      this.complete(session, f, bytes, undefined, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (reply) => this.complete(session, f, bytes, reply ?? undefined, undefined),
        (err: unknown) => this.complete(session, f, bytes, undefined, err ?? new Error('rejected')),
      );
    } else this.complete(session, f, bytes, result ?? undefined, undefined);
  }

  private complete(session: Session, f: Frame, bytes: number, reply: MsgrReply | undefined, err: unknown): void {
    // A failed assertion is a bug: it crashes the daemon (CONVENTIONS.md item 6), it is not sent as EIO.
    if (err instanceof AssertionFailure) throw err;
    this.handlerRequests--;
    this.handlerBytes -= bytes;
    assert(this.handlerRequests >= 0 && this.handlerBytes >= 0, 'handler accounting underflow');
    while (this.backlog.length > 0 && !this.overLimit() && !this.isClosed) this.onMessage(this.backlog.shift()!);
    this.maybeResume();
    this.sendResult(session, f, reply, err);
  }

  private sendResult(session: Session, f: Frame, reply: MsgrReply | undefined, err: unknown): void {
    if (f.type === FrameType.ONEWAY) {
      if (err !== undefined) this.server.log.warn({ peer: this.remoteAddress, msgType: f.msgType, err: String(err) }, 'msgr: one-way handler failed');
      return;
    }
    session.running.delete(f.reqId);
    // The reply goes to the session's current connection, which may be a newer one than this.
    const target = session.conn;
    this.server.maybeForget(session);
    if (target === undefined || target.isClosed) return; // the client resends after it reconnects
    if (err === undefined) {
      target.fs.send({ type: FrameType.REPLY, flags: 0, msgType: f.msgType, reqId: f.reqId, meta: reply?.meta ?? EMPTY, data: reply?.data ?? EMPTY });
      target.maybePause();
      return;
    }
    const e = err instanceof AspenError ? err : undefined;
    if (e === undefined) this.server.log.warn({ peer: this.remoteAddress, msgType: f.msgType, err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'msgr: handler threw a non-AspenError; replying EIO');
    target.fs.send({
      type: FrameType.REPLY_ERROR,
      flags: 0,
      msgType: f.msgType,
      reqId: f.reqId,
      meta: encodeRemoteError(e !== undefined ? { code: e.code, message: e.message.slice(e.code.length + 2) } : { code: 'EIO', message: `handler failed: ${String(err)}` }),
      data: EMPTY,
    });
  }

  /** Handlers are at their limit (a lone message is always admitted, however large). */
  private overLimit(): boolean {
    const s = this.server;
    return this.handlerRequests >= s.handlerRequestsMax || (this.handlerRequests > 0 && this.handlerBytes >= s.handlerBytesMax);
  }

  private maybePause(): void {
    if (this.paused) return;
    if (this.backlog.length > 0 || this.overLimit() || this.fs.writableLengthBytes > this.server.writeBufferMaxBytes) {
      this.paused = true;
      this.fs.socket.pause();
    }
  }

  private maybeResume(): void {
    if (!this.paused) {
      this.maybePause();
      return;
    }
    if (this.backlog.length === 0 && !this.overLimit() && this.fs.writableLengthBytes <= this.server.writeBufferMaxBytes) {
      this.paused = false;
      this.fs.socket.resume();
    }
  }

  private onClose(info: CloseInfo): void {
    clearTimeout(this.handshakeTimer);
    this.server.detach(this, info);
  }
}

/**
 * A messenger server. `listen()` first; `close()` to stop (orderly CLOSE to every client).
 * Handlers run concurrently; requests of one connection are delivered in arrival order.
 */
export class MsgrServer {
  readonly fsid: string;
  readonly entity: string;
  readonly handler: MsgrHandler;
  readonly log: MsgrLog;
  readonly handlerRequestsMax: number;
  readonly handlerBytesMax: number;
  readonly writeBufferMaxBytes: number;
  readonly handshakeTimeoutMs: number;
  private readonly payloadCrc: boolean;
  private readonly limits: FrameLimits | undefined;
  private readonly server: Server;
  private readonly conns = new Set<ServerConnection>();
  private readonly sessions = new Map<string, Session>();
  private readonly sessionByConn = new Map<ServerConnection, Session>();
  private closing = false;
  /** Counters since start. */
  readonly stats: MsgrServerStats = { accepted: 0, handshakes: 0, refused: 0, protocolErrors: 0, requests: 0, resentRequests: 0, joinedResends: 0, oneways: 0 };

  constructor(options: MsgrServerOptions) {
    assert(isEntityName(options.entity), `invalid entity name ${options.entity}`);
    this.fsid = options.fsid;
    this.entity = options.entity;
    this.handler = options.handler;
    this.log = options.log ?? silentMsgrLog;
    this.payloadCrc = options.payloadCrc ?? true;
    this.limits = options.limits;
    this.handlerRequestsMax = options.handlerRequestsMax ?? MSGR_SERVER_HANDLER_REQUESTS_MAX;
    this.handlerBytesMax = options.handlerBytesMax ?? MSGR_SERVER_HANDLER_BYTES_MAX;
    this.writeBufferMaxBytes = options.writeBufferMaxBytes ?? MSGR_SERVER_WRITE_BUFFER_MAX_BYTES;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? MSGR_HANDSHAKE_TIMEOUT_MS;
    assert(this.handlerRequestsMax >= 1 && this.handlerBytesMax >= 1, 'server limits must be positive');
    this.server = createServer((socket) => this.onSocket(socket));
  }

  /**
   * Starts listening; port 0 picks a free port.
   * @returns the bound address.
   * @throws AspenError EINVAL when the address cannot be bound (in use, not local).
   */
  listen(port: number, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(new AspenError('EINVAL', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.warn({ err: err.message }, 'msgr: server error'));
        const a = this.server.address() as AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** The bound address (after listen). */
  get address(): { host: string; port: number } {
    const a = this.server.address();
    assert(a !== null && typeof a !== 'string', 'server not listening');
    return { host: a.address, port: a.port };
  }

  /** Open connections (for tests and metrics). */
  get connectionCount(): number {
    return this.conns.size;
  }

  /**
   * Stops accepting, waits up to `graceMs` for running handlers, then closes every connection
   * with CLOSE (orderly: clients do not resend) and resolves when the listener is closed.
   */
  async close(graceMs = 5_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...this.sessions.values()].some((s) => s.running.size > 0)) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const c of [...this.conns]) c.close('server shutting down');
    await closed;
  }

  /** @internal Socket options for a new connection. */
  socketOptions(logContext: object): { payloadCrc: boolean; log: MsgrLog; logContext: object; limits?: FrameLimits } {
    return this.limits === undefined ? { payloadCrc: this.payloadCrc, log: this.log, logContext } : { payloadCrc: this.payloadCrc, log: this.log, logContext, limits: this.limits };
  }

  private onSocket(socket: Socket): void {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(this, socket, remote);
    this.conns.add(conn);
    this.stats.accepted++;
  }

  /** @internal Binds a handshaken connection to its session (replacing an older connection). */
  attach(hello: Hello, conn: ServerConnection): { session: Session; resumed: boolean } {
    const key = `${hello.entity}/${hello.sessionId}`;
    let session = this.sessions.get(key);
    const resumed = session !== undefined;
    if (session === undefined) {
      session = { key, id: { entity: hello.entity, sessionId: hello.sessionId }, conn: undefined, running: new Set() };
      this.sessions.set(key, session);
    }
    const old = session.conn;
    session.conn = conn;
    this.sessionByConn.set(conn, session);
    if (old !== undefined && old !== conn && !old.isClosed) old.destroy('replaced by a reconnect of the same session');
    this.log.debug({ peer: conn.remoteAddress, entity: hello.entity, connectSeq: hello.connectSeq, resumed }, 'msgr: session attached');
    assert(this.sessions.get(key) === session && session.conn === conn, 'session attach');
    return { session, resumed };
  }

  /** @internal */
  sessionOf(conn: ServerConnection): Session | undefined {
    return this.sessionByConn.get(conn);
  }

  /** @internal Drops a session with no connection and nothing running. */
  maybeForget(session: Session): void {
    if (session.conn === undefined && session.running.size === 0 && this.sessions.get(session.key) === session) this.sessions.delete(session.key);
  }

  /** @internal */
  detach(conn: ServerConnection, info: CloseInfo): void {
    this.conns.delete(conn);
    const session = this.sessionByConn.get(conn);
    this.sessionByConn.delete(conn);
    if (info.error !== undefined && info.error.code !== 'ECONNREFUSED') {
      this.stats.protocolErrors++;
      this.log.warn({ peer: conn.remoteAddress, reason: info.reason }, 'msgr: connection closed');
    }
    else this.log.debug({ peer: conn.remoteAddress, reason: info.reason, orderly: info.orderly }, 'msgr: connection closed');
    if (session === undefined) return;
    if (session.conn === conn) session.conn = undefined;
    this.maybeForget(session);
  }
}
