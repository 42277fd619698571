/**
 * The NBD server's sockets: a TCP listener (IANA port 10809 by default) whose connections each
 * run an {@link NbdSession} (rbd/src/nbd/session.ts) over a {@link SocketStream}. All protocol
 * logic is in src/nbd/; this file owns only sockets, timers and connection bookkeeping.
 */
import net from 'node:net';
import { AssertionFailure, assert } from '@aspen/shared/assert.ts';
import type { ExportResolver } from '../nbd/device.ts';
import type { NbdLog } from '../nbd/handshake.ts';
import { DEFAULT_SESSION_LIMITS, NbdSession, type NbdStream, type SessionLimits } from '../nbd/session.ts';

/** The IANA-reserved NBD port. */
export const NBD_DEFAULT_PORT = 10809;

/** Buffered-but-unread bytes above which a socket is paused (beyond the bytes being awaited). */
const READ_AHEAD_MAX_BYTES = 1024 * 1024;

/**
 * {@link NbdStream} over a `net.Socket`: buffers incoming data and pauses the socket while
 * more than {@link READ_AHEAD_MAX_BYTES} wait unread, so a client cannot make us buffer
 * without bound.
 */
export class SocketStream implements NbdStream {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** We ended or destroyed the stream: pending and later reads get undefined. */
  private closed = false;
  /** The peer ended or the socket closed: reads still get bytes that fully arrived. */
  private peerGone = false;
  private pending: { n: number; resolve: (bytes: Uint8Array | undefined) => void } | undefined;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: net.Socket,
    /** After a soft close, how long the peer has to close its side before the socket is destroyed, ms. */
    private readonly closeGraceMs = 5000,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
      if (this.bufferedBytes > READ_AHEAD_MAX_BYTES + (this.pending?.n ?? 0)) socket.pause();
      this.pump();
    });
    const gone = () => {
      this.peerGone = true;
      if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
      this.pump();
    };
    socket.on('end', gone);
    socket.on('close', gone);
    // 'error' is always followed by 'close'; listening keeps it from being thrown.
    socket.on('error', () => undefined);
  }

  readExact(n: number): Promise<Uint8Array | undefined> {
    assert(this.pending === undefined, 'one readExact at a time');
    assert(Number.isSafeInteger(n) && n >= 0, `readExact(${n})`);
    return new Promise((resolve) => {
      this.pending = { n, resolve };
      this.pump();
    });
  }

  private take(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = this.chunks[0];
      assert(head !== undefined, 'take beyond the buffered bytes');
      if (head.length <= need) {
        parts.push(head);
        this.chunks.shift();
        need -= head.length;
      } else {
        parts.push(head.subarray(0, need));
        this.chunks[0] = head.subarray(need);
        need = 0;
      }
    }
    this.bufferedBytes -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  private pump(): void {
    const p = this.pending;
    if (p !== undefined) {
      if (this.bufferedBytes >= p.n && !this.closed) {
        this.pending = undefined;
        p.resolve(this.take(p.n));
      } else if (this.closed || this.peerGone) {
        this.pending = undefined;
        p.resolve(undefined);
      }
    }
    const want = READ_AHEAD_MAX_BYTES + (this.pending?.n ?? 0);
    if (!this.closed && !this.peerGone && this.socket.isPaused() && this.bufferedBytes <= want) this.socket.resume();
  }

  write(buffers: readonly Uint8Array[]): Promise<boolean> {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.socket.cork();
      buffers.forEach((buf, i) => {
        if (i < buffers.length - 1) this.socket.write(buf);
        else this.socket.write(buf, (err) => resolve(err === undefined || err === null));
      });
      this.socket.uncork();
      if (buffers.length === 0) resolve(true);
    });
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.pump();
    this.socket.end();
    this.graceTimer = setTimeout(() => this.socket.destroy(), this.closeGraceMs);
    this.graceTimer.unref();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
    this.pump();
  }
}

/** Options of {@link startNbdServer}. */
export interface NbdServerOptions {
  readonly resolver: ExportResolver;
  /** Listen address; default 127.0.0.1. */
  readonly host?: string;
  /** Listen port; 0 picks a free one; default {@link NBD_DEFAULT_PORT}. */
  readonly port?: number;
  readonly log?: NbdLog;
  readonly limits?: SessionLimits;
  /** A connection still haggling after this long is dropped, ms (default 30 s). */
  readonly handshakeTimeoutMs?: number;
  /** Most concurrent connections; more are refused by closing them (default 1024). */
  readonly connectionsMax?: number;
  /**
   * Called with an AssertionFailure from a session (a bug in a device or here). Default:
   * rethrow, crashing the process (CONVENTIONS.md item 6).
   */
  readonly onFatal?: (err: AssertionFailure) => void;
}

/** A running NBD server. */
export interface NbdServer {
  readonly host: string;
  readonly port: number;
  /** Connections open now. */
  connectionCount(): number;
  /**
   * Stops listening; connections in transmission finish their in-flight requests (new ones
   * get NBD_ESHUTDOWN) and are closed; connections still haggling are dropped. Resolves when
   * every connection has ended and released its export.
   */
  close(): Promise<void>;
}

const silentLog: NbdLog = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function withFields(log: NbdLog, fields: object): NbdLog {
  return {
    debug: (o, m) => log.debug({ ...fields, ...o }, m),
    info: (o, m) => log.info({ ...fields, ...o }, m),
    warn: (o, m) => log.warn({ ...fields, ...o }, m),
    error: (o, m) => log.error({ ...fields, ...o }, m),
  };
}

/**
 * Starts an NBD server (fixed newstyle, NOTLS) serving the exports of `opts.resolver`.
 * @throws Error when it cannot listen (address in use, permission).
 */
export async function startNbdServer(opts: NbdServerOptions): Promise<NbdServer> {
  const log = opts.log ?? silentLog;
  const limits = opts.limits ?? DEFAULT_SESSION_LIMITS;
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 30_000;
  const connectionsMax = opts.connectionsMax ?? 1024;
  const onFatal = opts.onFatal ?? ((err) => process.nextTick(() => { throw err; }));
  let shuttingDown = false;
  let nextConnId = 1;
  const connections = new Map<number, { session: NbdSession; stream: SocketStream; transmitting: boolean; done: Promise<void> }>();

  const server = net.createServer((socket) => {
    const connId = nextConnId++;
    const connLog = withFields(log, { conn: connId, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    if (shuttingDown || connections.size >= connectionsMax) {
      connLog.warn({ connections: connections.size, connectionsMax }, 'nbd: connection refused');
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const stream = new SocketStream(socket);
    const timer = setTimeout(() => {
      connLog.warn({ handshakeTimeoutMs }, 'nbd: handshake timed out; dropping the connection');
      stream.destroy();
    }, handshakeTimeoutMs);
    timer.unref();
    const session = new NbdSession(stream, opts.resolver, connLog, limits, {
      isShuttingDown: () => shuttingDown,
      onTransmission: (exportName) => {
        clearTimeout(timer);
        const entry = connections.get(connId);
        if (entry !== undefined) entry.transmitting = true;
        connLog.info({ export: exportName }, 'nbd: client attached');
      },
    });
    connLog.debug({}, 'nbd: connection accepted');
    const done = session
      .run()
      .then(
        (end) => connLog.debug({ end: end.kind, reason: end.reason }, 'nbd: connection ended'),
        (err: unknown) => {
          stream.destroy();
          onFatal(err instanceof AssertionFailure ? err : new AssertionFailure(`nbd session: ${String(err)}`));
        },
      )
      .finally(() => {
        clearTimeout(timer);
        connections.delete(connId);
      });
    connections.set(connId, { session, stream, transmitting: false, done });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? NBD_DEFAULT_PORT, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'nbd: listener error'));
  const address = server.address();
  assert(address !== null && typeof address === 'object', 'listening on a TCP address');
  log.info({ host: address.address, port: address.port }, 'nbd: listening');

  return {
    host: address.address,
    port: address.port,
    connectionCount: () => connections.size,
    async close(): Promise<void> {
      shuttingDown = true;
      const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      const ends = [...connections.values()].map(async (c) => {
        if (c.transmitting) await c.session.shutdown();
        else c.stream.destroy();
        await c.done;
      });
      await Promise.all([listenerClosed, ...ends]);
    },
  };
}
