import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import {
  FEATURE_DATA_POOL, HEADER_KEYS, decodeHeader, decodeLock, decodeNotification, decodeSnap, encodeLock, encodeNotification, encodeSnap, newHeaderEntries, snapContextOf, snapshotKey,
  type HeaderNotification, type SnapInfo,
} from '../../src/image/header.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('header records', () => {
  it('decodes saved snapshot and lock bytes of version 1 (later versions must still read them)', () => {
    const snap: SnapInfo = { id: 5n, name: 's1', sizeBytes: 1 << 30, protected: true, timestampMs: 1_700_000_000_000 };
    const SNAP_V1 = '01011f00000005000000000000000200000073310000004000000000010068e5cf8b010000';
    expect(hex(encodeSnap(snap))).toBe(SNAP_V1);
    expect(decodeSnap(Buffer.from(SNAP_V1, 'hex'))).toEqual(snap);
    const LOCK_V1 = '01011600000008000000636c69656e742e61060000006175746f2031';
    expect(hex(encodeLock({ owner: 'client.a', cookie: 'auto 1' }))).toBe(LOCK_V1);
    expect(decodeLock(Buffer.from(LOCK_V1, 'hex'))).toEqual({ owner: 'client.a', cookie: 'auto 1' });
  });
  it('a snapshot of a clone records its parent overlap (v2); v1 records decode without it', () => {
    const snap = { id: 9n, name: 'k1', sizeBytes: 8 << 20, protected: false, timestampMs: 5, parentOverlapBytes: 3 << 20 };
    expect(decodeSnap(encodeSnap(snap))).toEqual(snap);
    expect(decodeSnap(encodeSnap({ ...snap, parentOverlapBytes: 0 })).parentOverlapBytes).toBe(0);
    const { parentOverlapBytes: _, ...plain } = snap;
    expect(decodeSnap(encodeSnap(plain))).toEqual(plain);
    expect('parentOverlapBytes' in decodeSnap(encodeSnap(plain))).toBe(false);
  });

  it('builds a header from omap entries, snapshots newest first, and its snap context', () => {
    const entries = newHeaderEntries({ id: 'ab12cd34', sizeBytes: 1 << 30, order: 22, objectPrefix: 'rbd_data.ab12cd34', features: 4n, createTimestampMs: 7 });
    const s = (id: bigint): [string, Uint8Array] => [snapshotKey(id), encodeSnap({ id, name: `s${id}`, sizeBytes: 10, protected: false, timestampMs: 0 })];
    const h = decodeHeader('ab12cd34', [...entries, s(3n), s(9n), s(4n)], encodeLock({ owner: 'c', cookie: 'k' }), 12n);
    expect(h.sizeBytes).toBe(1 << 30);
    expect(h.order).toBe(22);
    expect(h.snaps.map((x) => x.id)).toEqual([9n, 4n, 3n]);
    expect(h.lock).toEqual({ owner: 'c', cookie: 'k' });
    expect(snapContextOf(h)).toEqual({ seq: 9n, snaps: [9n, 4n, 3n] });
    expect(decodeHeader('ab12cd34', entries, new Uint8Array(0), 1n).lock).toBeNull();
  });
  it('refuses a header missing a key with E_CORRUPT', () => {
    const entries = newHeaderEntries({ id: 'ab12cd34', sizeBytes: 1, order: 22, objectPrefix: 'p', features: 0n, createTimestampMs: 0 }).filter(([k]) => k !== 'size');
    try {
      decodeHeader('ab12cd34', entries, undefined, 1n);
      expect.unreachable();
    } catch (err) {
      expect((err as AspenError).code).toBe('E_CORRUPT');
    }
  });
  it('records a data pool as data_pool_id plus the data-pool feature, and refuses one without the other', () => {
    const base = { id: 'ab12cd34', sizeBytes: 1 << 20, order: 22, objectPrefix: 'rbd_data.3.ab12cd34', createTimestampMs: 0 };
    const entries = newHeaderEntries({ ...base, features: 4n | FEATURE_DATA_POOL, dataPoolId: 7 });
    expect(decodeHeader('ab12cd34', entries, undefined, 1n).dataPoolId).toBe(7);
    expect(decodeHeader('ab12cd34', newHeaderEntries({ ...base, features: 4n }), undefined, 1n).dataPoolId).toBeNull();
    const code = (f: () => unknown): string | undefined => { try { f(); return undefined; } catch (err) { return (err as AspenError).code; } };
    expect(code(() => decodeHeader('ab12cd34', entries.filter(([k]) => k !== HEADER_KEYS.dataPoolId), undefined, 1n))).toBe('E_CORRUPT');
    expect(code(() => decodeHeader('ab12cd34', [...newHeaderEntries({ ...base, features: 4n }), entries.find(([k]) => k === HEADER_KEYS.dataPoolId)!], undefined, 1n))).toBe('E_CORRUPT');
  });
  it('round-trips notifications', () => {
    const ns: HeaderNotification[] = [{ kind: 'header_update' }, { kind: 'probe' }, { kind: 'lock_released' }, { kind: 'lock_broken', owner: 'o', cookie: 'c' }];
    for (const n of ns) expect(decodeNotification(encodeNotification(n))).toEqual(n);
  });
});
