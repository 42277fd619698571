/**
 * Deferred removal of replaced object versions (as radosgw's GC with rgw_gc_obj_min_wait):
 * a GET that started streaming a version before it was overwritten or deleted keeps
 * reading its stripes for `graceMs` after the replacement committed. Retired segments live in
 * memory only: after a gateway restart the ones not yet removed are garbage (see
 * ARCHITECTURE.md). One removal pass at a time.
 */
import type { Logger } from 'pino';
import type { Segment } from '../store/layout.ts';
import type { S3Store } from '../store/store.ts';

/** Retired versions waiting for removal (named limit); beyond it they are removed at once. */
export const RETIRED_MAX = 10_000;
const TICK_MS = 1000;

export class SegmentReaper {
  private readonly queue: { dueMs: number; segments: Segment[] }[] = [];
  private readonly timer: NodeJS.Timeout;
  private running = false;

  constructor(private readonly store: S3Store, private readonly log: Logger, private readonly graceMs: number) {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Schedules `segments` for removal after the grace period. */
  retire(segments: Segment[]): void {
    if (segments.length === 0) return;
    if (this.queue.length >= RETIRED_MAX || this.graceMs === 0) {
      this.store.removeSegments(segments).catch((err: unknown) => this.log.warn({ err: String(err) }, 'removing a replaced version failed'));
      return;
    }
    this.queue.push({ dueMs: Date.now() + this.graceMs, segments });
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0 && this.queue[0]!.dueMs <= Date.now()) {
        const { segments } = this.queue.shift()!;
        await this.store.removeSegments(segments).catch((err: unknown) => this.log.warn({ err: String(err) }, 'removing a replaced version failed'));
      }
    } finally {
      this.running = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
