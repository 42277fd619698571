/**
 * The client side of a lossless messenger session as a pure state machine (CONVENTIONS.md
 * item 1; docs/adr/0005-messenger.md "Requests, replies, resend and duplicates"). It owns the
 * request table, the in-flight throttle, request ids, resend on reconnect, one-way queueing and
 * the reconnect policy; it performs no I/O and reads no clock. Every input returns the effects
 * the caller must apply, in order:
 *
 * - `write`: write this frame on the current (open) connection;
 * - `connect`: open a new connection after `delayMs` (then report `onOpen` or `onClose`);
 * - `resolve` / `reject`: settle the request identified by its caller-chosen `token`.
 *
 * Invariants (checked by assertions and by the model test): every submitted request is settled
 * exactly once; request ids are unique and increasing; after `onOpen`, every request without a
 * reply is written again, in request-id order, flagged RESENT; requests and bytes in flight stay
 * within the throttle's limits.
 */
import { assert } from '../assert.ts';
import { AspenError } from '../errors.ts';
import { FrameFlag, FrameType, type Frame } from './frame.ts';
import { decodeRemoteError } from './handshake.ts';
import { InflightThrottle, type ThrottleWaiter } from './throttle.ts';

/** An effect to apply; `T` is the caller's request token. */
export type ClientEffect<T> =
  | { readonly kind: 'write'; readonly frame: Frame }
  | { readonly kind: 'connect'; readonly delayMs: number }
  | { readonly kind: 'resolve'; readonly token: T; readonly meta: Uint8Array; readonly data: Uint8Array }
  | { readonly kind: 'reject'; readonly token: T; readonly error: AspenError };

/** Limits and policy of a {@link ClientSession}. */
export interface ClientSessionConfig {
  readonly inflightRequestsMax: number;
  readonly inflightBytesMax: number;
  /** Consecutive failed connection attempts before waiting requests fail with ECONNREFUSED. */
  readonly reconnectAttemptsMax: number;
  /** First reconnect backoff, ms; doubles per failed attempt. */
  readonly reconnectBackoffMs: number;
  readonly reconnectBackoffMaxMs: number;
  /** One-way messages queued while connecting. */
  readonly onewayQueueMax: number;
  /** For error messages, e.g. `127.0.0.1:6800`. */
  readonly peerAddress: string;
}

/** Why a connection ended, as the I/O layer reports it. */
export interface ConnectionEnd {
  /** A refusal that retrying cannot cure (E_WRONG_CLUSTER, EINVAL, E_UNSUPPORTED), if any. */
  readonly fatal?: AspenError;
  readonly reason: string;
}

interface Entry<T> {
  readonly token: T;
  reqId: bigint;
  readonly msgType: number;
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
  readonly bytes: number;
  sentOnce: boolean;
  waiter: ThrottleWaiter | undefined;
}

type Phase = 'idle' | 'connecting' | 'open' | 'closed';

/** Counters for tests and metrics. */
export interface ClientSessionStats {
  resends: number;
  lateReplies: number;
}

/** See the module comment. Not re-entrant: apply the returned effects after each call returns. */
export class ClientSession<T> {
  readonly stats: ClientSessionStats = { resends: 0, lateReplies: 0 };
  private phase: Phase = 'idle';
  private readonly throttle: InflightThrottle;
  /** Requests holding capacity (sent or to be sent), by request id; insertion order = id order. */
  private readonly pending = new Map<bigint, Entry<T>>();
  private readonly byToken = new Map<T, Entry<T>>();
  private readonly oneways: Frame[] = [];
  private nextReqId = 0n;
  private attempts = 0;
  private repliesSinceOpen = 0;
  private out: Array<ClientEffect<T>> = [];

  constructor(private readonly config: ClientSessionConfig) {
    assert(config.reconnectAttemptsMax >= 1 && config.reconnectBackoffMs >= 0, 'bad reconnect policy');
    assert(config.onewayQueueMax >= 0, 'bad one-way queue limit');
    this.throttle = new InflightThrottle(config.inflightRequestsMax, config.inflightBytesMax);
  }

  /** True while a handshaken connection is up. */
  get isOpen(): boolean {
    return this.phase === 'open';
  }
  /** Requests holding capacity. */
  get inflightRequests(): number {
    return this.throttle.requestsInflight;
  }
  /** Payload bytes of the requests holding capacity. */
  get inflightBytes(): number {
    return this.throttle.bytesInflight;
  }
  /** No request is pending or waiting for capacity. */
  get isDrained(): boolean {
    return this.byToken.size === 0;
  }

  /**
   * A new request. `token` must be unique among unsettled requests; it is settled by a later
   * `resolve`/`reject` effect (never by one returned from this call unless the session is closed).
   */
  submit(token: T, msgType: number, meta: Uint8Array, data: Uint8Array): Array<ClientEffect<T>> {
    assert(!this.byToken.has(token), 'request token reused while unsettled');
    assert(Number.isInteger(msgType) && msgType >= 0 && msgType <= 0xffff, `bad message type ${msgType}`);
    const e: Entry<T> = { token, reqId: 0n, msgType, meta, data, bytes: meta.length + data.length, sentOnce: false, waiter: undefined };
    this.byToken.set(token, e);
    if (this.phase === 'closed') {
      this.settle(e);
      this.out.push({ kind: 'reject', token, error: new AspenError('ECONNREFUSED', `messenger session to ${this.config.peerAddress} is closed`) });
      return this.flush();
    }
    e.waiter = this.throttle.acquire(e.bytes, () => this.start(e));
    if (e.waiter === undefined) this.start(e);
    return this.flush();
  }

  /** Gives up a request (its deadline passed): rejects it with `error` if still unsettled; a later reply is ignored. */
  cancel(token: T, error: AspenError): Array<ClientEffect<T>> {
    const e = this.byToken.get(token);
    if (e !== undefined) {
      this.settle(e);
      this.out.push({ kind: 'reject', token, error });
    }
    return this.flush();
  }

  /**
   * A one-way message: written now when open, else queued and a connection requested.
   * @throws AspenError EBUSY when the queue is full, ECONNREFUSED when closed.
   */
  sendOneway(msgType: number, meta: Uint8Array, data: Uint8Array): Array<ClientEffect<T>> {
    if (this.phase === 'closed') throw new AspenError('ECONNREFUSED', `messenger session to ${this.config.peerAddress} is closed`);
    const frame: Frame = { type: FrameType.ONEWAY, flags: 0, msgType, reqId: 0n, meta, data };
    if (this.phase === 'open') {
      this.out.push({ kind: 'write', frame });
      return this.flush();
    }
    if (this.oneways.length >= this.config.onewayQueueMax) throw new AspenError('EBUSY', `${this.oneways.length} one-way messages already wait for a connection to ${this.config.peerAddress}`);
    this.oneways.push(frame);
    this.requestConnection(0);
    return this.flush();
  }

  /** The requested connection completed its handshake: resend what has no reply, then queued one-way messages. */
  onOpen(): Array<ClientEffect<T>> {
    assert(this.phase === 'connecting', `onOpen in phase ${this.phase}`);
    this.phase = 'open';
    this.repliesSinceOpen = 0;
    let prev = 0n;
    for (const e of this.pending.values()) {
      assert(e.reqId > prev, 'pending requests out of id order');
      prev = e.reqId;
      this.write(e);
    }
    for (const frame of this.oneways.splice(0)) this.out.push({ kind: 'write', frame });
    return this.flush();
  }

  /** A REPLY or REPLY_ERROR arrived on the open connection. */
  onReply(frame: Frame): Array<ClientEffect<T>> {
    assert(frame.type === FrameType.REPLY || frame.type === FrameType.REPLY_ERROR, `not a reply: frame type ${frame.type}`);
    assert(this.phase === 'open', `reply in phase ${this.phase}`);
    const e = this.pending.get(frame.reqId);
    if (e === undefined) {
      this.stats.lateReplies++; // timed out already
      return this.flush();
    }
    this.repliesSinceOpen++;
    this.settle(e);
    if (frame.type === FrameType.REPLY) {
      this.out.push({ kind: 'resolve', token: e.token, meta: frame.meta, data: frame.data });
    } else {
      let error: AspenError;
      try {
        const r = decodeRemoteError(frame.meta);
        error = new AspenError(r.code, r.message, { remote: this.config.peerAddress });
      } catch {
        error = new AspenError('EIO', `undecodable error reply from ${this.config.peerAddress}`);
      }
      this.out.push({ kind: 'reject', token: e.token, error });
    }
    return this.flush();
  }

  /**
   * The connection (or the attempt) ended. Decides: reconnect now or after a backoff, give up
   * with ECONNREFUSED after `reconnectAttemptsMax` failures in a row (a connection that ended
   * before its first reply counts as one), or fail everything with a fatal refusal.
   */
  onClose(end: ConnectionEnd): Array<ClientEffect<T>> {
    if (this.phase === 'closed') return this.flush();
    assert(this.phase === 'connecting' || this.phase === 'open', `onClose in phase ${this.phase}`);
    const wasOpen = this.phase === 'open';
    this.phase = 'idle';
    if (end.fatal !== undefined) {
      this.attempts = 0;
      this.failAll(end.fatal);
      return this.flush();
    }
    this.attempts = wasOpen && this.repliesSinceOpen > 0 ? 0 : this.attempts + 1;
    if (this.attempts >= this.config.reconnectAttemptsMax) {
      const error = new AspenError('ECONNREFUSED', `cannot connect to ${this.config.peerAddress} after ${this.attempts} attempts: ${end.reason}`);
      this.attempts = 0;
      this.failAll(error);
      return this.flush();
    }
    if (this.pending.size > 0 || this.oneways.length > 0) {
      const delayMs = this.attempts === 0 ? 0 : Math.min(this.config.reconnectBackoffMs * 2 ** (this.attempts - 1), this.config.reconnectBackoffMaxMs);
      this.requestConnection(delayMs);
    }
    return this.flush();
  }

  /** Ends the session: every unsettled request rejects with `error`; later submits are refused. */
  close(error: AspenError): Array<ClientEffect<T>> {
    this.phase = 'closed';
    this.failAll(error);
    return this.flush();
  }

  // --- internals --------------------------------------------------------------------------

  private start(e: Entry<T>): void {
    e.waiter = undefined;
    this.nextReqId += 1n;
    e.reqId = this.nextReqId;
    this.pending.set(e.reqId, e);
    if (this.phase === 'open') this.write(e);
    else if (this.phase === 'closed') {
      this.settle(e);
      this.out.push({ kind: 'reject', token: e.token, error: new AspenError('ECONNREFUSED', `messenger session to ${this.config.peerAddress} is closed`) });
    } else this.requestConnection(0);
  }

  private write(e: Entry<T>): void {
    if (e.sentOnce) this.stats.resends++;
    this.out.push({ kind: 'write', frame: { type: FrameType.REQUEST, flags: e.sentOnce ? FrameFlag.RESENT : 0, msgType: e.msgType, reqId: e.reqId, meta: e.meta, data: e.data } });
    e.sentOnce = true;
  }

  private requestConnection(delayMs: number): void {
    if (this.phase !== 'idle') return;
    this.phase = 'connecting';
    this.out.push({ kind: 'connect', delayMs });
  }

  /** Removes `e` from every table and returns its capacity (which may start waiting requests). */
  private settle(e: Entry<T>): void {
    const had = this.byToken.delete(e.token);
    assert(had, 'settling an unknown request');
    if (e.waiter !== undefined) {
      this.throttle.cancel(e.waiter);
      e.waiter = undefined;
    } else if (this.pending.delete(e.reqId)) {
      this.throttle.release(e.bytes);
    }
    assert(this.pending.size <= this.byToken.size, 'pending table larger than the token table');
  }

  private failAll(error: AspenError): void {
    this.oneways.length = 0;
    // Settle the requests that hold capacity; the waiters this grants start afresh (a new cycle),
    // unless the session is closed, where they are refused too.
    for (const e of [...this.pending.values()]) {
      this.settle(e);
      this.out.push({ kind: 'reject', token: e.token, error });
    }
    if (this.phase === 'closed') {
      for (const e of [...this.byToken.values()]) {
        if (!this.byToken.has(e.token)) continue; // settled meanwhile (granted, then refused in start)
        this.settle(e);
        this.out.push({ kind: 'reject', token: e.token, error });
      }
    }
  }

  private flush(): Array<ClientEffect<T>> {
    const out = this.out;
    this.out = [];
    return out;
  }
}
