import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AspenError } from '@aspen/shared';
import { DiffDecoder, decodeDiff, encodeDiff, type DiffRecord } from '../../src/image/diff-format.ts';
import { changedRuns } from '../../src/image/diff.ts';
import { decodeParent, encodeParent, type ParentSpec } from '../../src/image/header.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const codeOf = (fn: () => unknown): string | 0 => {
  try {
    fn();
    return 0;
  } catch (err) {
    if (err instanceof AspenError) return err.code;
    throw err;
  }
};

const SAMPLE: DiffRecord[] = [
  { kind: 'from_snap', name: 's1' }, { kind: 'to_snap', name: 's2' }, { kind: 'size', sizeBytes: 0x100000 },
  { kind: 'write', offsetBytes: 4096, data: new Uint8Array([0xde, 0xad]) }, { kind: 'zero', offsetBytes: 8192, lengthBytes: 4096 }, { kind: 'end' },
];
// Ceph's rbd diff v1 bytes for SAMPLE, written out by hand from doc/dev/rbd-diff.rst (le32 name lengths, le64 numbers).
const SAMPLE_HEX = [
  Buffer.from('rbd diff v1\n').toString('hex'),
  '66', '02000000', '7331', // f, len 2, "s1"
  '74', '02000000', '7332', // t, len 2, "s2"
  '73', '0000100000000000', // s, 1 MiB
  '77', '0010000000000000', '0200000000000000', 'dead', // w, 4096, 2, data
  '7a', '0020000000000000', '0010000000000000', // z, 8192, 4096
  '65', // e
].join('');

const record = fc.oneof(
  fc.string({ maxLength: 20 }).map((name): DiffRecord => ({ kind: 'from_snap', name })),
  fc.string({ maxLength: 20 }).map((name): DiffRecord => ({ kind: 'to_snap', name })),
  fc.nat().map((sizeBytes): DiffRecord => ({ kind: 'size', sizeBytes })),
);
const data = fc.oneof(
  fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 300 })).map(([offsetBytes, d]): DiffRecord => ({ kind: 'write', offsetBytes, data: d })),
  fc.tuple(fc.nat(), fc.nat()).map(([offsetBytes, lengthBytes]): DiffRecord => ({ kind: 'zero', offsetBytes, lengthBytes })),
);

describe('rbd diff v1 codec', () => {
  it('encodes the sample exactly as Ceph documents the format, and decodes it back', () => {
    expect(hex(encodeDiff(SAMPLE))).toBe(SAMPLE_HEX);
    expect(decodeDiff(Buffer.from(SAMPLE_HEX, 'hex'))).toEqual(SAMPLE);
  });

  it('round-trips any diff, whatever the chunking of the stream', () => {
    fc.assert(fc.property(fc.array(record, { maxLength: 4 }), fc.array(data, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }), (meta, recs, cuts) => {
      const all: DiffRecord[] = [...meta, ...recs, { kind: 'end' }];
      const bytes = encodeDiff(all);
      const dec = new DiffDecoder();
      const got: DiffRecord[] = [];
      let at = 0;
      for (let i = 0; at < bytes.length; i++) {
        const n = cuts[i % cuts.length]!;
        got.push(...dec.push(bytes.subarray(at, at + n)));
        at += n;
      }
      dec.finish();
      expect(got).toEqual(all);
    }));
  });

  it('refuses malformed input with EINVAL', () => {
    const good = Buffer.from(SAMPLE_HEX, 'hex');
    expect(codeOf(() => decodeDiff(new Uint8Array(0)))).toBe('EINVAL'); // empty
    expect(codeOf(() => decodeDiff(Buffer.from('rbd diff v2\ne')))).toBe('EINVAL'); // other version
    expect(codeOf(() => decodeDiff(good.subarray(0, good.length - 1)))).toBe('EINVAL'); // no end record
    expect(codeOf(() => decodeDiff(good.subarray(0, good.length - 5)))).toBe('EINVAL'); // truncated record
    expect(codeOf(() => decodeDiff(Buffer.concat([good, Buffer.from('e')])))).toBe('EINVAL'); // bytes after the end
    expect(codeOf(() => decodeDiff(Buffer.concat([Buffer.from('rbd diff v1\nX'), Buffer.from('e')])))).toBe('EINVAL'); // unknown tag
    const metaAfterData = encodeDiff([{ kind: 'zero', offsetBytes: 0, lengthBytes: 1 }, { kind: 'size', sizeBytes: 1 }, { kind: 'end' }]);
    expect(codeOf(() => decodeDiff(metaAfterData))).toBe('EINVAL');
    const huge = Buffer.concat([Buffer.from('rbd diff v1\nw'), Buffer.alloc(8), Buffer.from('ffffffffffffffff', 'hex')]);
    expect(codeOf(() => decodeDiff(huge))).toBe('EINVAL'); // length past 2^53
    expect(codeOf(() => new DiffDecoder().push(Buffer.from('xbd')))).toBe('EINVAL'); // wrong header noticed early
  });
});

describe('changed extents', () => {
  it('reports changed 4 KiB blocks, zeros in the newer data as zero runs, and merges neighbours', () => {
    const a = new Uint8Array(5 * 4096).fill(1);
    const b = a.slice();
    b.fill(2, 4096, 2 * 4096 + 10); // blocks 1, 2 changed (data)
    b.fill(0, 4 * 4096, 5 * 4096); // block 4 zeroed
    expect(changedRuns(a, b)).toEqual([[4096, 3 * 4096, false], [4 * 4096, 5 * 4096, true]]);
    expect(changedRuns(a, a)).toEqual([]);
    // a shorter older side means zeros past its end: zeros there are unchanged
    expect(changedRuns(new Uint8Array(4096), new Uint8Array(3 * 4096))).toEqual([]);
  });
});

describe('parent record', () => {
  it('decodes saved version-1 bytes', () => {
    const p: ParentSpec = { poolId: 3, poolName: 'rbd', imageId: 'ab12cd34', snapId: 4n, overlapBytes: 1 << 20 };
    const V1 = hex(encodeParent(p));
    expect(V1).toBe('010127000000030000000300000072626408000000616231326364333404000000000000000000100000000000');
    expect(decodeParent(Buffer.from(V1, 'hex'))).toEqual(p);
  });
});
