/**
 * One NBD connection from hello to close, over an injected byte stream (the socket lives in
 * src/io/nbd-server.ts). The edge is thin (CONVENTIONS.md item 5): it reads exact byte counts,
 * hands options to {@link NbdHandshake} and requests to transmission.ts, and answers every
 * request by its cookie.
 *
 * Pipelining: requests are read and dispatched without waiting for earlier ones, and replies
 * go out as each completes (proto.md "Transmission": replies may be out of order). A limit
 * on in-flight requests and bytes (READ length + WRITE payload, released once the reply is
 * flushed) stops reading from the socket, so TCP pushes back on a client that sends faster
 * than the device or its own reading of replies.
 *
 * Safety: a WRITE reaches the device only after its whole payload arrived, and its reply is
 * sent only after the device resolved it — a client dropping mid-write loses nothing that
 * was acknowledged and half a payload is never applied. A bad request magic or a WRITE
 * beyond the hard payload limit drops the connection with a logged reason.
 */
import { AspenError } from '@aspen/shared/errors.ts';
import { AssertionFailure, assert } from '@aspen/shared/assert.ts';
import { decodeClientFlags, decodeOptionHeader, decodeRequestHeader, encodeHello, type RequestHeader } from './codec.ts';
import type { ExportResolver } from './device.ts';
import { SHUTDOWN_ERRNO } from './device.ts';
import { NbdHandshake, SERVER_HANDSHAKE_FLAGS, type NbdLog, type TransmissionParams } from './handshake.ts';
import { NBD_CMD_DISC, NBD_CMD_READ, NBD_CMD_WRITE, NBD_OPT_ABORT, OPTION_HEADER_BYTES, REQUEST_HEADER_BYTES } from './protocol.ts';
import { checkRequest, errorReply, executeRequest, writePayloadHardMaxBytes, type Reply, type TransmissionContext } from './transmission.ts';

/**
 * A bidirectional byte stream. Ownership: the session is the only reader and writer.
 */
export interface NbdStream {
  /** Exactly `n` bytes, or undefined when the stream ended or was closed first. */
  readExact(n: number): Promise<Uint8Array | undefined>;
  /** Queues `buffers` contiguously, in order; resolves true once flushed to the OS, false if the stream is gone. */
  write(buffers: readonly Uint8Array[]): Promise<boolean>;
  /** Closes after queued writes are flushed (soft disconnect). */
  end(): void;
  /** Drops the connection at once (hard disconnect). */
  destroy(): void;
}

/** Per-connection limits (CONVENTIONS.md item 10). */
export interface SessionLimits {
  /** Longest option data read; longer options are skipped and refused with NBD_REP_ERR_TOO_BIG. */
  readonly optionDataMaxBytes: number;
  /** Most requests dispatched and not yet replied to. */
  readonly inflightRequestsMax: number;
  /** Most READ + WRITE bytes in flight (a single larger request may still run alone). */
  readonly inflightBytesMax: number;
}

/** Defaults: 64 KiB of option data, 128 requests, 64 MiB in flight per connection. */
export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  optionDataMaxBytes: 64 * 1024,
  inflightRequestsMax: 128,
  inflightBytesMax: 64 * 1024 * 1024,
};

/** How a session ended. */
export type SessionEnd =
  | { readonly kind: 'closed'; readonly reason: string }
  | { readonly kind: 'dropped'; readonly reason: string };

/** Counts requests and bytes in flight; the single reader waits for room. */
class InflightBudget {
  private requests = 0;
  private bytes = 0;
  private wake: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly limits: SessionLimits) {}

  private fits(cost: number): boolean {
    if (this.requests >= this.limits.inflightRequestsMax) return false;
    return this.requests === 0 || this.bytes + cost <= this.limits.inflightBytesMax;
  }

  async acquire(cost: number): Promise<void> {
    assert(this.wake === undefined, 'one reader acquires at a time');
    while (!this.fits(cost)) await new Promise<void>((resolve) => (this.wake = resolve));
    this.requests += 1;
    this.bytes += cost;
  }

  release(cost: number): void {
    assert(this.requests > 0 && this.bytes >= cost, 'release without acquire');
    this.requests -= 1;
    this.bytes -= cost;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
    if (this.requests === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  get inflightRequests(): number {
    return this.requests;
  }

  idle(): Promise<void> {
    return this.requests === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** Observers of a session (the server uses them for its handshake timer and metrics). */
export interface SessionHooks {
  /** Called once when transmission starts. */
  onTransmission?(exportName: string): void;
  /** True once the server shuts down: new options and requests get ESHUTDOWN-type errors. */
  isShuttingDown?(): boolean;
}

/** Runs one connection. Create, then `await run()`. */
export class NbdSession {
  private readonly budget: InflightBudget;
  private fatal: AssertionFailure | undefined;
  private stopReading = false;

  constructor(
    private readonly stream: NbdStream,
    private readonly resolver: ExportResolver,
    private readonly log: NbdLog,
    private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    private readonly hooks: SessionHooks = {},
  ) {
    assert(limits.inflightRequestsMax >= 1 && limits.inflightBytesMax >= 1, 'session limits must be positive');
    this.budget = new InflightBudget(limits);
  }

  private shuttingDown(): boolean {
    return this.hooks.isShuttingDown?.() ?? false;
  }

  /**
   * Runs the handshake and transmission until the connection ends; releases the export.
   * @throws AssertionFailure when a device or this code broke an invariant (after closing).
   */
  async run(): Promise<SessionEnd> {
    let end: SessionEnd;
    try {
      const handshake = await this.handshake();
      if ('kind' in handshake) {
        end = handshake;
      } else {
        try {
          this.hooks.onTransmission?.(handshake.opened.name);
          end = await this.transmission(handshake);
        } finally {
          await this.budget.idle();
          await handshake.opened.release();
        }
      }
    } catch (err) {
      this.stream.destroy();
      throw err;
    }
    if (this.fatal !== undefined) throw this.fatal;
    return end;
  }

  /**
   * Stops reading requests, lets in-flight ones finish and their replies flush, then closes
   * (proto.md "Terminating the transmission phase": a server shutting down waits for inflight
   * requests). Requests already read meanwhile get NBD_ESHUTDOWN.
   */
  async shutdown(): Promise<void> {
    this.stopReading = true;
    await this.budget.idle();
    this.stream.end();
  }

  private close(kind: SessionEnd['kind'], reason: string, level: 'debug' | 'warn'): SessionEnd {
    this.log[level]({ reason }, kind === 'closed' ? 'nbd: connection closed' : 'nbd: connection dropped');
    if (kind === 'closed') this.stream.end();
    else this.stream.destroy();
    return { kind, reason };
  }

  private async handshake(): Promise<TransmissionParams | SessionEnd> {
    const hs = new NbdHandshake(this.resolver, this.log, () => this.shuttingDown());
    await this.stream.write([encodeHello(SERVER_HANDSHAKE_FLAGS)]);
    const flagBytes = await this.stream.readExact(4);
    if (flagBytes === undefined) return this.close('dropped', 'client left before sending its flags', 'debug');
    const accepted = hs.acceptClientFlags(decodeClientFlags(flagBytes));
    if (!accepted.ok) return this.close('dropped', accepted.reason, 'warn');
    for (;;) {
      const headerBytes = await this.stream.readExact(OPTION_HEADER_BYTES);
      if (headerBytes === undefined) return this.close('dropped', 'client left during option haggling', 'debug');
      let header;
      try {
        header = decodeOptionHeader(headerBytes);
      } catch (err) {
        return this.close('dropped', (err as AspenError).message, 'warn');
      }
      let outcome;
      if (header.lengthBytes > this.limits.optionDataMaxBytes) {
        if (!(await this.discard(header.lengthBytes))) return this.close('dropped', 'client left inside option data', 'debug');
        outcome = hs.tooBig(header.option);
      } else {
        const data = await this.stream.readExact(header.lengthBytes);
        if (data === undefined) return this.close('dropped', 'client left inside option data', 'debug');
        outcome = await hs.handleOption(header.option, data);
      }
      if (outcome.replies.length > 0 && !(await this.stream.write(outcome.replies))) {
        if (outcome.next.kind === 'transmission') await outcome.next.params.opened.release();
        return this.close('dropped', 'client left during option haggling', 'debug');
      }
      switch (outcome.next.kind) {
        case 'continue':
          continue;
        case 'close':
          return header.option === NBD_OPT_ABORT
            ? this.close('closed', outcome.next.reason, 'debug')
            : this.close('dropped', outcome.next.reason, 'warn');
        case 'transmission':
          return outcome.next.params;
      }
    }
  }

  /** Reads and drops `n` bytes in bounded pieces. False when the stream ended first. */
  private async discard(n: number): Promise<boolean> {
    for (let left = n; left > 0; ) {
      const piece = Math.min(left, 64 * 1024);
      if ((await this.stream.readExact(piece)) === undefined) return false;
      left -= piece;
    }
    return true;
  }

  private async transmission(params: TransmissionParams): Promise<SessionEnd> {
    const ctx: TransmissionContext = {
      device: params.opened.device,
      transmissionFlags: params.transmissionFlags,
      structuredReplies: params.structuredReplies,
      baseAllocationContextId: params.baseAllocationContextId,
    };
    const exportName = params.opened.name;
    this.log.debug({ export: exportName, flags: params.transmissionFlags, structured: params.structuredReplies }, 'nbd: transmission');
    for (;;) {
      if (this.stopReading) return { kind: 'closed', reason: 'server shutdown' };
      const headerBytes = await this.stream.readExact(REQUEST_HEADER_BYTES);
      if (headerBytes === undefined) {
        return this.stopReading ? { kind: 'closed', reason: 'server shutdown' } : this.close('dropped', 'client left without NBD_CMD_DISC', 'debug');
      }
      let req: RequestHeader;
      try {
        req = decodeRequestHeader(headerBytes);
      } catch (err) {
        return this.close('dropped', `${(err as AspenError).message}; dropping the connection`, 'warn');
      }
      if (req.type === NBD_CMD_DISC) {
        // The server MUST handle all outstanding requests, then close (proto.md NBD_CMD_DISC).
        await this.budget.idle();
        return this.close('closed', 'client sent NBD_CMD_DISC', 'debug');
      }
      const hardMax = writePayloadHardMaxBytes(ctx.device);
      if (req.type === NBD_CMD_WRITE && req.length > hardMax) {
        return this.close('dropped', `WRITE of ${req.length} bytes above the ${hardMax}-byte limit`, 'warn');
      }
      const cost = req.type === NBD_CMD_READ || req.type === NBD_CMD_WRITE ? req.length : 0;
      await this.budget.acquire(cost);
      let payload: Uint8Array | undefined;
      if (req.type === NBD_CMD_WRITE) {
        payload = await this.stream.readExact(req.length);
        if (payload === undefined) {
          this.budget.release(cost);
          return this.close('dropped', `client left inside a ${req.length}-byte WRITE payload (not applied)`, 'debug');
        }
      }
      void this.dispatch(ctx, req, payload, cost);
      if (this.fatal !== undefined) return this.close('dropped', 'assertion failure', 'warn');
    }
  }

  private async dispatch(ctx: TransmissionContext, req: RequestHeader, payload: Uint8Array | undefined, cost: number): Promise<void> {
    try {
      let reply: Reply;
      const refusal = this.shuttingDown() || this.stopReading
        ? { errno: SHUTDOWN_ERRNO, message: 'server is shutting down' }
        : checkRequest(ctx, req);
      if (refusal !== undefined) {
        reply = errorReply(ctx, req, { ...refusal, unexpected: false });
      } else {
        reply = await executeRequest(ctx, req, payload);
      }
      if (reply.failure !== undefined) {
        const level = reply.failure.unexpected ? 'error' : 'debug';
        this.log[level]({ type: req.type, offset: String(req.offset), length: req.length, errno: reply.failure.errno, err: reply.failure.message }, 'nbd: request failed');
      }
      await this.stream.write(reply.buffers);
    } catch (err) {
      // Only AssertionFailures get here (device contract or our own invariants): stop serving.
      this.fatal = err instanceof AssertionFailure ? err : new AssertionFailure(`nbd dispatch: ${String(err)}`);
      this.log.error({ err: this.fatal.message }, 'nbd: assertion failure; dropping the connection');
      this.stream.destroy();
    } finally {
      this.budget.release(cost);
    }
  }
}
