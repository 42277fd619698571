/**
 * The OSDMap epochs an OSD has seen, kept in its object store (Ceph's OSD keeps every map it
 * receives in its `meta` collection, trimmed once no PG needs it), so that after a restart
 * its PGs still know the mappings of past epochs: interval starts and past intervals (the
 * prior set of peering) come out the same as on peers that never restarted.
 *
 * Layout: collection `meta`, one object per epoch named `osdmap.<epoch, 10 digits>` whose
 * data is the full map in the shared OSDMap codec (shared/src/osdmap/codec.ts). A few KiB
 * per epoch for a small cluster. Saves are queued transactions (durable in submission
 * order); a crash may lose the newest ones, which the monitors send again (the OSD
 * subscribes from the newest epoch it kept).
 */
import { AspenError, Decoder } from '@aspen/shared';
import { decodeOsdMap, encodeOsdMap } from '@aspen/shared/osdmap/codec.ts';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import { Transaction } from '../store/transaction.ts';
import type { ObjectStore } from '../store/types.ts';

/** The collection holding the maps. */
export const MAPS_COLL = 'meta';
/** Name prefix of a map object. */
export const MAP_OBJECT_PREFIX = 'osdmap.';
/** Maps listed per store call. */
const LIST_PAGE_MAX = 1000;

/** The object name of epoch `epoch` (zero-padded so names sort by epoch). */
export function mapObjectName(epoch: number): string {
  return `${MAP_OBJECT_PREFIX}${String(epoch).padStart(10, '0')}`;
}

/** Stores and loads an OSD's OSDMap history. */
export class OsdMapStore {
  private collReady = false;
  /** Epochs on disk (or queued), ascending. */
  private readonly epochs: number[] = [];

  constructor(private readonly store: ObjectStore) {}

  /**
   * Every stored map, ascending by epoch. Call once, before {@link save}.
   * @throws AspenError E_CORRUPT when a stored map does not decode.
   */
  async loadAll(): Promise<OsdMap[]> {
    this.collReady = await this.store.collectionExists(MAPS_COLL);
    if (!this.collReady) return [];
    const out: OsdMap[] = [];
    let after: { name: string } | undefined;
    for (;;) {
      const page = await this.store.listObjects(MAPS_COLL, after, LIST_PAGE_MAX);
      for (const o of page.objects) {
        if (!o.name.startsWith(MAP_OBJECT_PREFIX) || o.namespace !== '' || o.snap !== 'head') continue;
        const st = await this.store.stat(MAPS_COLL, o);
        const bytes = await this.store.read(MAPS_COLL, o, 0, st.sizeBytes);
        let map: OsdMap;
        try {
          map = decodeOsdMap(new Decoder(bytes));
        } catch (err) {
          throw new AspenError('E_CORRUPT', `stored OSDMap ${o.name} does not decode: ${String(err)}`);
        }
        out.push(map);
        this.epochs.push(map.epoch);
      }
      if (page.next === null) break;
      after = page.next;
    }
    return out;
  }

  /** The newest stored epoch (0: none). */
  get newestEpoch(): number {
    return this.epochs.at(-1) ?? 0;
  }

  /**
   * Queues `map` for storage. Resolves when durable.
   * @throws AspenError from the store (ENOSPC …): the caller logs it; the map is only history.
   */
  save(map: OsdMap): Promise<void> {
    if (this.epochs.length > 0 && map.epoch <= this.epochs.at(-1)!) return Promise.resolve();
    const tx = new Transaction();
    if (!this.collReady) {
      tx.createCollection(MAPS_COLL);
      this.collReady = true;
    }
    tx.write(MAPS_COLL, { name: mapObjectName(map.epoch) }, 0, encodeOsdMap(map).finish());
    this.epochs.push(map.epoch);
    return this.store.queueTransaction(tx);
  }

  /**
   * Removes the stored maps of epochs below `epoch` (never the newest one).
   * @returns how many were removed.
   */
  async trimBefore(epoch: number): Promise<number> {
    const newest = this.newestEpoch;
    const gone: number[] = [];
    while (this.epochs.length > 1 && this.epochs[0]! < epoch && this.epochs[0]! < newest) gone.push(this.epochs.shift()!);
    if (gone.length === 0) return 0;
    const tx = new Transaction();
    for (const e of gone) tx.remove(MAPS_COLL, { name: mapObjectName(e) });
    await this.store.queueTransaction(tx);
    return gone.length;
  }
}
