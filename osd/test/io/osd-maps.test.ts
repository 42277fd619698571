/**
 * The OSD's stored OSDMap history (osd/src/io/osd-maps.ts) on a real object store: saved
 * epochs load back in order after a remount, equal to what was saved; old epochs are
 * trimmed but never the newest; an undecodable stored map is E_CORRUPT.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sampleOsdMap } from '../../../shared/test/osdmap/gen.ts';
import { MAPS_COLL, OsdMapStore, mapObjectName } from '../../src/io/osd-maps.ts';
import type { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { toPlain } from '@aspen/test';
import { memoryBase, newStore, tempDir } from '../store/helpers.ts';

let store: SqliteObjectStore | null = null;
let cleanup: (() => void) | null = null;
afterEach(async () => {
  await store?.umount();
  cleanup?.();
  store = null;
  cleanup = null;
});

describe('OsdMapStore', () => {
  it('saves epochs, loads them back in order after a remount, and trims old ones but never the newest', async () => {
    const t = tempDir('aspen-osd-maps-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    const ms = new OsdMapStore(store);
    expect(await ms.loadAll()).toEqual([]);
    const saved = [];
    for (const epoch of [3, 4, 5, 9, 12]) {
      const m = { ...sampleOsdMap(), epoch };
      saved.push(m);
      await ms.save(m);
    }
    await ms.save({ ...sampleOsdMap(), epoch: 4 }); // older than the newest: ignored
    await store.umount();
    await store.mount();
    const again = new OsdMapStore(store);
    const loaded = await again.loadAll();
    expect(loaded.map((m) => m.epoch)).toEqual([3, 4, 5, 9, 12]);
    expect(toPlain(loaded)).toEqual(toPlain(saved));
    expect(again.newestEpoch).toBe(12);
    expect(await again.trimBefore(9)).toBe(3);
    expect(await again.trimBefore(100)).toBe(1); // 12 stays
    expect((await new OsdMapStore(store).loadAll()).map((m) => m.epoch)).toEqual([12]);
  });

  it('refuses a stored map that does not decode (E_CORRUPT)', async () => {
    const t = tempDir('aspen-osd-maps-', memoryBase);
    cleanup = t.cleanup;
    store = await newStore(t.dir);
    await store.queueTransaction(new Transaction().createCollection(MAPS_COLL).write(MAPS_COLL, { name: mapObjectName(7) }, 0, new Uint8Array([1, 2, 3])));
    await expect(new OsdMapStore(store).loadAll()).rejects.toMatchObject({ code: 'E_CORRUPT' });
  });
});
