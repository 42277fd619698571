import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import {
  dataObjectName, dataObjectPrefix, formatSize, headerObjectName, mapExtent, objectCount, orderOfObjectSize, parseDataObjectName, parseImageSpec, parseSize,
} from '../../src/image/layout.ts';
import { isAllZero, nonZeroRuns } from '../../src/image/sparse.ts';

const code = (f: () => unknown): string => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return err instanceof AspenError ? err.code : 'other';
  }
};

describe('object names', () => {
  it('names data objects with 16 hex digits, as Ceph format 2', () => {
    expect(dataObjectName('rbd_data.abc123', 0)).toBe('rbd_data.abc123.0000000000000000');
    expect(dataObjectName('rbd_data.abc123', 255)).toBe('rbd_data.abc123.00000000000000ff');
    expect(headerObjectName('abc123')).toBe('rbd_header.abc123');
    // With a data pool the prefix names the image's pool too (Ceph: rbd_data.<pool id>.<id>).
    expect(dataObjectPrefix('abc123')).toBe('rbd_data.abc123');
    expect(dataObjectPrefix('abc123', 2)).toBe('rbd_data.2.abc123');
    expect(parseDataObjectName(dataObjectPrefix('abc123'), dataObjectName(dataObjectPrefix('abc123', 2), 5))).toBeNull();
  });
  it('property: parseDataObjectName inverts dataObjectName and rejects other names', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => parseDataObjectName('rbd_data.1f', dataObjectName('rbd_data.1f', n)) === n));
    expect(parseDataObjectName('rbd_data.1f', 'rbd_data.1f0.0000000000000000')).toBeNull();
    expect(parseDataObjectName('rbd_data.1f', 'rbd_data.1f.00000000000000FF')).toBeNull();
    expect(parseDataObjectName('rbd_data.1f', 'rbd_data.1f.0')).toBeNull();
    expect(parseDataObjectName('rbd_data.1f', 'rbd_header.1f')).toBeNull();
  });
});

describe('mapExtent', () => {
  it('splits a range crossing object boundaries', () => {
    expect(mapExtent(4090, 20, 4096)).toEqual([
      { objectNo: 0, offsetInObject: 4090, lengthBytes: 6, bufferOffset: 0 },
      { objectNo: 1, offsetInObject: 0, lengthBytes: 14, bufferOffset: 6 },
    ]);
    expect(mapExtent(100, 0, 4096)).toEqual([]);
  });
  it('property: the pieces of any (offset, length) tile it exactly, in order, each within one object', () => {
    fc.assert(fc.property(
      fc.integer({ min: 12, max: 25 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 2 ** 27 }),
      (order, offset, length) => {
        const os = 2 ** order;
        const xs = mapExtent(offset, length, os);
        let pos = offset;
        let buf = 0;
        for (const x of xs) {
          if (x.objectNo * os + x.offsetInObject !== pos || x.bufferOffset !== buf) return false;
          if (x.lengthBytes <= 0 || x.offsetInObject + x.lengthBytes > os) return false;
          pos += x.lengthBytes;
          buf += x.lengthBytes;
        }
        const distinct = new Set(xs.map((x) => x.objectNo)).size === xs.length;
        return pos === offset + length && distinct && xs.length === (length === 0 ? 0 : Math.floor((offset + length - 1) / os) - Math.floor(offset / os) + 1);
      },
    ), { numRuns: 500 });
  });
  it('counts objects of an image', () => {
    expect(objectCount(0, 4096)).toBe(0);
    expect(objectCount(4097, 4096)).toBe(2);
  });
});

describe('sizes and specs', () => {
  it('parses sizes with binary units; a bare --size is MiB as in rbd', () => {
    expect(parseSize('20G')).toBe(20 * 2 ** 30);
    expect(parseSize('4M')).toBe(4 << 20);
    expect(parseSize('4K')).toBe(4096);
    expect(parseSize('10GiB')).toBe(10 * 2 ** 30);
    expect(parseSize('1.5K')).toBe(1536);
    expect(parseSize('100', 'M')).toBe(100 << 20);
    expect(parseSize('4096')).toBe(4096);
    expect(code(() => parseSize('-1'))).toBe('EINVAL');
    expect(code(() => parseSize('0.3'))).toBe('EINVAL');
    expect(code(() => parseSize('12X'))).toBe('EINVAL');
    expect(formatSize(20 * 2 ** 30)).toBe('20 GiB');
    expect(formatSize(1536)).toBe('1.5 KiB');
  });
  it('accepts power-of-two object sizes from 4 KiB to 32 MiB only', () => {
    expect(orderOfObjectSize(4 << 20)).toBe(22);
    expect(code(() => orderOfObjectSize(2048))).toBe('EINVAL');
    expect(code(() => orderOfObjectSize(64 << 20))).toBe('EINVAL');
    expect(code(() => orderOfObjectSize(3 << 20))).toBe('EINVAL');
  });
  it('parses [POOL/]IMAGE[@SNAP]', () => {
    expect(parseImageSpec('rbd/img@s1')).toEqual({ pool: 'rbd', image: 'img', snap: 's1' });
    expect(parseImageSpec('img')).toEqual({ pool: undefined, image: 'img', snap: undefined });
    expect(parseImageSpec('img@s')).toEqual({ pool: undefined, image: 'img', snap: 's' });
    for (const bad of ['', 'a/b/c', 'a@', '/img', 'a@b@c']) expect(code(() => parseImageSpec(bad))).toBe('EINVAL');
  });
});

describe('sparse detection', () => {
  it('property: nonZeroRuns covers every non-zero byte, and only whole blocks that hold one', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }).map((b) => b.map((v) => (v < 200 ? 0 : v))), fc.integer({ min: 1, max: 700 }), (b, block) => {
      const runs = nonZeroRuns(b, block);
      const covered = new Uint8Array(b.length);
      let prevEnd = -1;
      for (const [s, e] of runs) {
        if (s <= prevEnd || s % block !== 0 || (e % block !== 0 && e !== b.length)) return false;
        covered.fill(1, s, e);
        prevEnd = e;
      }
      for (let i = 0; i < b.length; i++) if (b[i] !== 0 && covered[i] !== 1) return false;
      for (let at = 0; at < b.length; at += block) {
        const blk = b.subarray(at, Math.min(b.length, at + block));
        if (covered[at] === 1 && isAllZero(blk)) return false;
      }
      return true;
    }), { numRuns: 300 });
  });
  it('isAllZero works on unaligned views', () => {
    const b = new Uint8Array(37);
    expect(isAllZero(b.subarray(3))).toBe(true);
    b[36] = 1;
    expect(isAllZero(b.subarray(3))).toBe(false);
  });
});
