/**
 * Pure layout code of the object store: block-map chunk storage, object key order, extents,
 * and the v1 on-disk sample bytes that later versions must still read (CONVENTIONS.md item 4).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allocatedExtents,
  BlockMap,
  decodeBlobHeader,
  decodeOnode,
  encodeBlobHeader,
  encodeOnode,
  MAP_CHUNK_BLOCKS,
} from '../../src/store/blocks.ts';
import { decodeObjectKey, encodeObjectKey, type ObjectId } from '../../src/store/oid.ts';

type MapOp = { k: 'set'; i: number; crc: number } | { k: 'punch'; i: number } | { k: 'truncate'; blocks: number } | { k: 'store' };

const mapOp: fc.Arbitrary<MapOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('set' as const), i: fc.integer({ min: 0, max: 300 }), crc: fc.integer({ min: 0, max: 0xffffffff }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('punch' as const), i: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), blocks: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 2, arbitrary: fc.constant({ k: 'store' as const }) },
);

function snapshot(m: BlockMap): string {
  const out: string[] = [];
  for (let i = 0; i < m.count; i++) out.push(m.isAllocated(i) ? String(m.crcOf(i)) : '-');
  return out.join(',');
}

describe('BlockMap chunk storage', () => {
  it('property: storing only the chunks takeChanges reports and reloading gives back the same map', () => {
    fc.assert(
      fc.property(fc.array(mapOp, { maxLength: 60 }), (ops) => {
        // The "database": chunk rows of one blob.
        const rows = new Map<number, Uint8Array>();
        let m = BlockMap.empty();
        const store = (): void => {
          const ch = m.takeChanges();
          for (const c of ch.write) rows.set(c, m.encodeChunk(c));
          if (ch.deleteFrom !== null) for (const c of [...rows.keys()]) if (c >= ch.deleteFrom) rows.delete(c);
          const chunks = [...rows.keys()].sort((a, b) => a - b).map((c) => rows.get(c)!);
          const reloaded = BlockMap.fromChunks(m.count, chunks);
          expect(snapshot(reloaded)).toBe(snapshot(m));
          m = reloaded; // continue from the stored form, as the store does
        };
        for (const op of ops) {
          if (op.k === 'set') m.set(op.i, op.crc);
          else if (op.k === 'punch') m.punch(op.i);
          else if (op.k === 'truncate') m.truncateBlocks(op.blocks);
          else store();
        }
        store();
        expect(rows.size).toBe(Math.ceil(m.count / MAP_CHUNK_BLOCKS));
      }),
      { numRuns: 300 },
    );
  });

  it('property: a partly loaded map (chunks of a range + the last) stores changes in that range like a full one', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 0xffffffff })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 450 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 0xffffffff }),
        (initial, first, len, crc) => {
          const full = BlockMap.empty();
          for (const [i, c] of initial) full.set(i, c);
          const rows = new Map<number, Uint8Array>();
          for (const c of full.takeChanges().write) rows.set(c, full.encodeChunk(c));
          // Load only the chunks of [first, first + len) and the last one, as getBlob(id, blocks) does.
          const last = Math.ceil(full.count / MAP_CHUNK_BLOCKS) - 1;
          const some = new Map([...rows].filter(([c]) => c === last || (c >= Math.floor(first / MAP_CHUNK_BLOCKS) && c < Math.ceil((first + len) / MAP_CHUNK_BLOCKS))));
          const part = BlockMap.fromSomeChunks(full.count, some);
          for (let i = first; i < first + len; i++) {
            part.set(i, crc);
            full.set(i, crc);
          }
          for (const c of part.takeChanges().write) rows.set(c, part.encodeChunk(c));
          const reloaded = BlockMap.fromChunks(full.count, [...rows.keys()].sort((a, b) => a - b).map((c) => rows.get(c)!));
          expect(snapshot(reloaded)).toBe(snapshot(full));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a copy stores every chunk', () => {
    const m = BlockMap.empty();
    m.set(200, 7);
    m.takeChanges();
    expect(m.copy().takeChanges().write).toEqual([0, 1, 2, 3]);
  });

  it('allocatedExtents merges runs and clips to the size', () => {
    const m = BlockMap.empty();
    for (const i of [0, 1, 3, 4, 5, 9]) m.set(i, 1);
    expect(allocatedExtents(m, 9 * 512 + 100, 100, 1 << 20, 512)).toEqual([
      { offsetBytes: 100, lengthBytes: 924 },
      { offsetBytes: 1536, lengthBytes: 1536 },
      { offsetBytes: 4608, lengthBytes: 100 },
    ]);
  });
});

describe('object keys', () => {
  const oidArb: fc.Arbitrary<ObjectId> = fc.record({
    name: fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !s.includes('\0')),
    namespace: fc.constantFrom('', 'a', 'ab', 'b'),
    snap: fc.oneof(fc.constant('head' as const), fc.bigInt({ min: 0n, max: 2n ** 64n - 3n })),
    generation: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    shard: fc.integer({ min: -1, max: 254 }),
  });

  it('property: keys decode back to the id, and memcmp order is (namespace, name, snap with head last, generation, shard)', () => {
    fc.assert(
      fc.property(oidArb, oidArb, (a, b) => {
        const ka = Buffer.from(encodeObjectKey(a));
        const kb = Buffer.from(encodeObjectKey(b));
        expect(decodeObjectKey(ka)).toEqual({ ...a });
        const tuple = (o: ObjectId): Array<Buffer | bigint | number> => [
          Buffer.from(o.namespace ?? ''),
          Buffer.from(o.name),
          o.snap === 'head' || o.snap === undefined ? 2n ** 64n : o.snap,
          o.generation!,
          o.shard === -1 ? 255 : o.shard!,
        ];
        const cmp = (x: Array<Buffer | bigint | number>, y: Array<Buffer | bigint | number>): number => {
          for (let i = 0; i < x.length; i++) {
            const p = x[i]!;
            const q = y[i]!;
            const c = Buffer.isBuffer(p) ? Buffer.compare(p, q as Buffer) : BigInt(p) < BigInt(q as bigint | number) ? -1 : BigInt(p) > BigInt(q as bigint | number) ? 1 : 0;
            if (c !== 0) return c;
          }
          return 0;
        };
        expect(Math.sign(Buffer.compare(ka, kb))).toBe(Math.sign(cmp(tuple(a), tuple(b))));
      }),
      { numRuns: 500 },
    );
  });
});

describe('v1 sample bytes (later versions must still read these)', () => {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  it('onode', () => {
    const b = encodeOnode({ sizeBytes: 4194304, blobId: 42 });
    expect(hex(b)).toBe('01011000000000004000000000002a00000000000000');
    expect(decodeOnode(Buffer.from('01011000000000004000000000002a00000000000000', 'hex'))).toEqual({ sizeBytes: 4194304, blobId: 42 });
  });
  it('blob header (a file blob is still written as v1, readable by format-1 builds)', () => {
    expect(hex(encodeBlobHeader({ refs: 2, blockCount: 1024, kind: 'file' }))).toBe('0101080000000200000000040000');
    expect(decodeBlobHeader(Buffer.from('0101080000000200000000040000', 'hex'))).toEqual({ refs: 2, blockCount: 1024, kind: 'file' });
  });
  it('blob header v2 (inline blob; compat 2 so a v1 reader refuses it instead of looking for a file)', () => {
    expect(hex(encodeBlobHeader({ refs: 1, blockCount: 16, kind: 'inline' }))).toBe('020209000000010000001000000001');
    expect(decodeBlobHeader(Buffer.from('020209000000010000001000000001', 'hex'))).toEqual({ refs: 1, blockCount: 16, kind: 'inline' });
    expect(() => decodeBlobHeader(Buffer.from('020209000000010000001000000007', 'hex'))).toThrow(/kind 7/);
  });
  it('block map chunk', () => {
    const m = BlockMap.empty();
    m.set(0, 0xe3069283);
    m.set(2, 1);
    expect(hex(m.encodeChunk(0))).toBe('0101130000000300000001000183920' + '6e30000000001000000');
    const back = BlockMap.fromChunks(3, [Buffer.from('01011300000003000000010001839206e30000000001000000', 'hex')]);
    expect([back.isAllocated(0), back.crcOf(0), back.isAllocated(1), back.crcOf(2)]).toEqual([true, 0xe3069283, false, 1]);
  });
  it('object key', () => {
    const k = encodeObjectKey({ name: 'rbd_data.1', namespace: 'ns', snap: 4n, shard: 0 });
    expect(hex(k)).toBe('6e7300726264 5f646174612e3100 0000000000000004 ffffffffffffffff 00'.replace(/ /g, ''));
  });
});
