/**
 * Keeps a current OSDMap from the monitors' subscription (as Ceph's MonClient + Objecter
 * `handle_osd_map`): applies incrementals in epoch order, replaces the map on a full map,
 * and tells listeners about every new epoch. A gap (an incremental that does not follow)
 * resubscribes from the epoch it has, which makes the monitors send a full map if needed.
 */
import { Decoder } from '../codec.ts';
import { decodeIncremental, decodeOsdMap } from '../osdmap/codec.ts';
import { applyIncremental } from '../osdmap/incremental.ts';
import type { OsdMap } from '../osdmap/types.ts';
import type { MonClient } from './monclient.ts';
import type { MapUpdate } from './mon-api.ts';

/** Follows the OSDMap. Call `close()` to stop. */
export class OsdMapTracker {
  private map: OsdMap | null = null;
  private readonly listeners = new Set<(map: OsdMap) => void>();
  private readonly waiters: { epoch: number; resolve: (m: OsdMap) => void }[] = [];
  private cancel: (() => void) | null = null;
  private closed = false;

  constructor(private readonly mon: MonClient) {}

  /**
   * Starts the subscription. With `from` (a map kept from before, e.g. an OSD's stored
   * history), it is the current map and the monitors send only the epochs after it
   * (incrementals while they still keep them, else a full map); listeners hear of the new
   * epochs only.
   */
  start(from?: OsdMap): void {
    if (from !== undefined && this.map === null) this.map = from;
    this.subscribe(this.map?.epoch ?? 0);
  }

  private subscribe(haveEpoch: number): void {
    this.cancel?.();
    this.cancel = this.mon.subscribe(haveEpoch, (u) => this.onUpdate(u));
  }

  private onUpdate(u: MapUpdate): number {
    const bytes = Buffer.from(u.bytesBase64, 'base64');
    if (u.kind === 'full') {
      const d = new Decoder(bytes);
      const m = decodeOsdMap(d);
      if (this.map === null || m.epoch > this.map.epoch) {
        this.map = m;
        this.emit();
      }
      return this.map.epoch;
    }
    const inc = decodeIncremental(new Decoder(bytes));
    const have = this.map?.epoch ?? 0;
    if (inc.epoch <= have) return have;
    if (this.map === null || inc.epoch !== have + 1) {
      // A gap: ask again from what we have (the mon sends a full map when too far behind).
      queueMicrotask(() => { if (!this.closed) this.subscribe(have); });
      return have;
    }
    applyIncremental(this.map, inc);
    this.emit();
    return this.map.epoch;
  }

  private emit(): void {
    const m = this.map!;
    for (const l of this.listeners) l(m);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (m.epoch >= w.epoch) {
        this.waiters.splice(i, 1);
        w.resolve(m);
      }
    }
  }

  /** The current map, or null before the first one arrived. */
  get current(): OsdMap | null {
    return this.map;
  }

  /** Resolves with the map once it is at least at `epoch` (1 = any map). */
  waitForEpoch(epoch = 1): Promise<OsdMap> {
    if (this.map !== null && this.map.epoch >= epoch) return Promise.resolve(this.map);
    return new Promise((resolve) => this.waiters.push({ epoch, resolve }));
  }

  /** Calls `listener` with the map after every change. Returns an unsubscribe function. */
  onMap(listener: (map: OsdMap) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.cancel?.();
    this.listeners.clear();
  }
}
