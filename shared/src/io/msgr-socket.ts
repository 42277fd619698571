/**
 * One messenger connection's byte stream (docs/adr/0005-messenger.md): writes the banner, feeds
 * received chunks to the pure {@link FrameDecoder}, writes frames, and closes the socket — with
 * a logged reason — on the first protocol error. Used by both ends (msgr-server.ts,
 * msgr-client.ts); the handshake and request logic live there.
 *
 * Never throws from socket callbacks: every failure ends in exactly one `onClose(reason)`.
 */
import type { Socket } from 'node:net';
import { AspenError } from '../errors.ts';
import { crc32c } from '../checksum.ts';
import { assert } from '../assert.ts';
import {
  DEFAULT_FRAME_LIMITS,
  MSGR_HANDSHAKE_LIMITS,
  FrameDecoder,
  FrameType,
  MSGR_COALESCE_MAX_BYTES,
  encodeBanner,
  encodeFrame,
  isBanner,
  type Frame,
  type FrameLimits,
} from '../msgr/frame.ts';
import { decodeCloseReason, encodeCloseReason } from '../msgr/handshake.ts';

/** Idle time before TCP keepalive probes start, ms. */
export const MSGR_TCP_KEEPALIVE_MS = 10_000;

/**
 * crc32c of the last large data segment sent, valid until the end of the current tick: a
 * primary sends the same repop data to every replica in one tick, so the 4 MiB is read once for
 * all their frames' payload crcs. Only the same tick: senders must not modify a segment until it
 * is written (see `send`), and a buffer reused in a later tick is checksummed again.
 */
let lastDataCrc: { data: Uint8Array; crc: number } | undefined;
const forgetDataCrc = (): void => {
  lastDataCrc = undefined;
};
function dataCrcOncePerTick(data: Uint8Array): number {
  if (lastDataCrc !== undefined && lastDataCrc.data === data) return lastDataCrc.crc;
  const crc = crc32c(data);
  if (lastDataCrc === undefined) process.nextTick(forgetDataCrc);
  lastDataCrc = { data, crc };
  return crc;
}

/** A pino-compatible logger subset (pino's `Logger` satisfies it). */
export interface MsgrLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** A logger that drops everything. */
export const silentMsgrLog: MsgrLog = { warn: () => {}, info: () => {}, debug: () => {} };

/** Why a {@link FrameSocket} closed. */
export interface CloseInfo {
  /** The peer sent CLOSE or we closed on purpose (no resend should follow on the peer's side). */
  readonly orderly: boolean;
  /** Human-readable reason (logged). */
  readonly reason: string;
  /** The error behind it, if any: E_DECODE for a protocol error, ECONNREFUSED for socket errors. */
  readonly error: AspenError | undefined;
  /** The reason the peer gave in its CLOSE frame, when it sent one. */
  readonly peerReason?: string;
}

/** Callbacks of a {@link FrameSocket}. */
export interface FrameSocketEvents {
  /** Called once per frame after the peer's banner was accepted, in arrival order. CLOSE frames are handled here, not passed on. */
  onFrame(frame: Frame): void;
  /** Called once when the peer's banner has been accepted (a common version exists). */
  onBanner?(version: number): void;
  /** Called exactly once when the socket is gone. */
  onClose(info: CloseInfo): void;
}

/** Options of a {@link FrameSocket}. */
export interface FrameSocketOptions {
  /** Set the payload crc32c on frames we send (receivers verify whatever is flagged). Default true. */
  readonly payloadCrc?: boolean;
  readonly limits?: FrameLimits;
  readonly log?: MsgrLog;
  /** Context for log lines (e.g. `{ peer: '127.0.0.1:5000' }`). */
  readonly logContext?: object;
}

/** A framed, bannered socket. */
export class FrameSocket {
  private readonly decoder: FrameDecoder;
  private readonly payloadCrc: boolean;
  private readonly limits: FrameLimits;
  private readonly log: MsgrLog;
  private readonly logContext: object;
  private closed = false;
  private bannerSeen = false;
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
  private readonly batch: Array<Frame | { minVersion: number; maxVersion: number; features: number }> = [];

  constructor(
    readonly socket: Socket,
    private readonly events: FrameSocketEvents,
    options: FrameSocketOptions = {},
  ) {
    this.payloadCrc = options.payloadCrc ?? true;
    this.limits = options.limits ?? DEFAULT_FRAME_LIMITS;
    this.log = options.log ?? silentMsgrLog;
    this.logContext = options.logContext ?? {};
    this.decoder = new FrameDecoder(
      { frameMaxBytes: Math.min(this.limits.frameMaxBytes, MSGR_HANDSHAKE_LIMITS.frameMaxBytes), metaMaxBytes: Math.min(this.limits.metaMaxBytes, MSGR_HANDSHAKE_LIMITS.metaMaxBytes) },
      true,
    );
    socket.setNoDelay(true);
    // Detects a peer host that vanished without a FIN/RST (requests also have deadlines).
    socket.setKeepAlive(true, MSGR_TCP_KEEPALIVE_MS);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.finish({ orderly: false, reason: `socket error: ${err.code ?? err.message}`, error: new AspenError('ECONNREFUSED', `connection error: ${err.message}`, { errno: err.code }) });
    });
    socket.on('close', () => {
      this.finish({ orderly: false, reason: 'connection closed by peer', error: new AspenError('ECONNREFUSED', 'connection closed by peer') });
    });
    socket.on('end', () => {
      // The peer half-closed: we have nothing more to say either.
      socket.end();
    });
    socket.write(encodeBanner());
  }

  /** True once closed (no further frames are sent or delivered). */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Raises the receive limits from {@link MSGR_HANDSHAKE_LIMITS} to the configured ones; call once
   * the peer's HELLO (server) or HELLO_ACK (client) was accepted. Safe because neither side sends
   * anything but the handshake frame before it has the other's answer.
   */
  handshakeDone(): void {
    this.decoder.setLimits(this.limits);
  }

  /** Bytes queued in the socket's write buffer (for backpressure). */
  get writableLengthBytes(): number {
    return this.socket.writableLength;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    const out = this.batch;
    out.length = 0;
    try {
      this.decoder.push(chunk, out);
    } catch (err) {
      // Frames decoded before the error are still delivered; then the connection goes.
      this.deliver(out);
      const e = err instanceof AspenError ? err : new AspenError('E_DECODE', String(err));
      this.log.warn({ ...this.logContext, err: e.message, reason: e.details['reason'] }, 'msgr: closing connection on protocol error');
      this.abort(e.message, e);
      return;
    }
    this.deliver(out);
  }

  private deliver(out: Array<Frame | { minVersion: number; maxVersion: number; features: number }>): void {
    for (const item of out) {
      if (this.closed) return;
      if (isBanner(item)) {
        assert(!this.bannerSeen, 'decoder produced two banners');
        this.bannerSeen = true;
        this.events.onBanner?.(this.decoder.version);
        continue;
      }
      if (item.type === FrameType.CLOSE) {
        const reason = decodeCloseReason(item.meta);
        this.log.debug({ ...this.logContext, reason }, 'msgr: peer closed the connection');
        this.finish({ orderly: true, reason: `peer closed: ${reason}`, error: undefined, peerReason: reason });
        this.socket.end();
        return;
      }
      this.events.onFrame(item);
    }
  }

  /**
   * Writes one frame (see `encodeFrame`). A frame sent after close is dropped (returns false).
   * @returns false when dropped or when the socket's buffer is above its high-water mark.
   */
  send(frame: Frame): boolean {
    if (this.closed) return false;
    const pieces = encodeFrame(frame, this.payloadCrc, this.decoder.version, this.limits, frame.data.length > MSGR_COALESCE_MAX_BYTES ? dataCrcOncePerTick : undefined);
    // Frames sent in the same tick leave in one writev (one syscall) instead of one write each.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    for (const p of pieces) this.socket.write(p);
    return this.socket.writableLength < this.socket.writableHighWaterMark;
  }

  /** Orderly close: sends CLOSE with `reason`, then ends the socket once written. */
  close(reason: string): void {
    if (this.closed) return;
    const pieces = encodeFrame({ type: FrameType.CLOSE, flags: 0, msgType: 0, reqId: 0n, meta: encodeCloseReason(reason), data: new Uint8Array(0) }, this.payloadCrc, this.decoder.version, this.limits);
    for (const p of pieces) this.socket.write(p);
    this.finish({ orderly: true, reason, error: undefined });
    this.socket.end();
  }

  /** Abrupt close (protocol error, handshake refusal, replaced session): destroys the socket. */
  abort(reason: string, error?: AspenError): void {
    this.finish({ orderly: false, reason, error: error ?? new AspenError('ECONNREFUSED', reason) });
    this.socket.destroy();
  }

  private finish(info: CloseInfo): void {
    if (this.closed) return;
    this.closed = true;
    this.events.onClose(info);
  }
}
