/**
 * The per-connection in-flight limit (CONVENTIONS.md item 10): at most `requestsMax` requests
 * and `bytesMax` payload bytes outstanding; callers beyond it wait in FIFO order (as Ceph's
 * Throttle for `objecter_inflight_ops` / `objecter_inflight_op_bytes`). Pure: no timers — a
 * waiter is cancelled by its owner (e.g. on a request timeout).
 *
 * A single request larger than `bytesMax` is admitted alone (when nothing else is in flight),
 * so an oversized request is slow, never deadlocked.
 */
import { assert } from '../assert.ts';

/** Default cap on requests in flight per connection (Ceph objecter_inflight_ops is 1024). */
export const MSGR_INFLIGHT_REQUESTS_MAX = 1024;
/** Default cap on request payload bytes in flight per connection (Ceph objecter_inflight_op_bytes is 100 MiB). */
export const MSGR_INFLIGHT_BYTES_MAX = 128 * 1024 * 1024;

/** A queued acquisition; pass it to {@link InflightThrottle.cancel} to give up. */
export interface ThrottleWaiter {
  readonly bytes: number;
  readonly grant: () => void;
  /** True once granted or cancelled. */
  settled: boolean;
}

/** Counting throttle over (requests, bytes) with a FIFO wait queue. */
export class InflightThrottle {
  private requests = 0;
  private bytes = 0;
  private readonly queue: ThrottleWaiter[] = [];
  private head = 0;

  constructor(
    readonly requestsMax: number = MSGR_INFLIGHT_REQUESTS_MAX,
    readonly bytesMax: number = MSGR_INFLIGHT_BYTES_MAX,
  ) {
    assert(Number.isInteger(requestsMax) && requestsMax >= 1, 'requestsMax must be a positive integer');
    assert(Number.isInteger(bytesMax) && bytesMax >= 1, 'bytesMax must be a positive integer');
  }

  /** Requests currently in flight. */
  get requestsInflight(): number {
    return this.requests;
  }
  /** Payload bytes currently in flight. */
  get bytesInflight(): number {
    return this.bytes;
  }
  /** Waiters queued. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  private fits(bytes: number): boolean {
    if (this.requests >= this.requestsMax) return false;
    return this.bytes + bytes <= this.bytesMax || this.requests === 0;
  }

  /**
   * Takes capacity for one request of `bytes` now if it fits and nobody is queued ahead;
   * otherwise queues `grant`, called (synchronously, from a later {@link release}) once the
   * capacity is taken on the waiter's behalf.
   * @returns undefined when granted at once, else the waiter.
   */
  acquire(bytes: number, grant: () => void): ThrottleWaiter | undefined {
    assert(Number.isInteger(bytes) && bytes >= 0, `bad byte count ${bytes}`);
    if (this.waiting === 0 && this.fits(bytes)) {
      this.take(bytes);
      return undefined;
    }
    const w: ThrottleWaiter = { bytes, grant, settled: false };
    this.queue.push(w);
    return w;
  }

  /** Gives up a queued waiter (no effect once granted). @returns true when it was still queued. */
  cancel(w: ThrottleWaiter): boolean {
    if (w.settled) return false;
    w.settled = true;
    // Remove lazily: settled entries are skipped by pump(); drop them here when at the head.
    this.pump();
    return true;
  }

  /** Returns the capacity of one finished request of `bytes`, and grants waiters that now fit. */
  release(bytes: number): void {
    assert(this.requests >= 1 && this.bytes >= bytes, `throttle release underflow: ${this.requests} requests, ${this.bytes} bytes, releasing ${bytes}`);
    this.requests -= 1;
    this.bytes -= bytes;
    this.pump();
  }

  private take(bytes: number): void {
    this.requests += 1;
    this.bytes += bytes;
    assert(this.requests <= this.requestsMax, 'throttle over its request limit');
  }

  private pump(): void {
    while (this.head < this.queue.length) {
      const w = this.queue[this.head]!;
      if (w.settled) {
        this.head++;
        continue;
      }
      if (!this.fits(w.bytes)) break;
      this.head++;
      w.settled = true;
      this.take(w.bytes);
      w.grant();
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
