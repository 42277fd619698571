import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AspenError } from '../../src/errors.ts';
import {
  decodeMonMap, encodeMonMap, incrementalFromBytes, incrementalToBytes, osdMapFromBytes, osdMapToBytes,
} from '../../src/osdmap/codec.ts';
import { Decoder } from '../../src/codec.ts';
import type { MonMap } from '../../src/osdmap/types.ts';
import { arbIncremental, arbMonMap, arbOsdMap, sampleIncremental, sampleIncrementalV2, sampleMonMap, sampleOsdMap, sampleOsdMapV2 } from './gen.ts';

const monMapToBytes = (m: MonMap): Uint8Array => encodeMonMap(m).finish();
const monMapFromBytes = (b: Uint8Array): MonMap => {
  const d = new Decoder(b);
  const m = decodeMonMap(d);
  d.done('monmap');
  return m;
};

/** `samples`: every saved encoding (oldest first) and the value it decodes to; the last is what this writer produces. */
interface Codec<T> { name: string; enc: (v: T) => Uint8Array; dec: (b: Uint8Array) => T; arb: fc.Arbitrary<T>; sample: () => T; samples: { file: string; value: () => T }[] }
const codecs = [
  {
    name: 'OSDMap', enc: osdMapToBytes, dec: osdMapFromBytes, arb: arbOsdMap, sample: sampleOsdMapV2,
    samples: [{ file: 'osdmap-v1.bin', value: sampleOsdMap }, { file: 'osdmap-v2.bin', value: sampleOsdMapV2 }],
  },
  {
    name: 'OSDMap incremental', enc: incrementalToBytes, dec: incrementalFromBytes, arb: arbIncremental, sample: sampleIncrementalV2,
    samples: [{ file: 'incremental-v1.bin', value: sampleIncremental }, { file: 'incremental-v2.bin', value: sampleIncrementalV2 }],
  },
  { name: 'MonMap', enc: monMapToBytes, dec: monMapFromBytes, arb: arbMonMap, sample: sampleMonMap, samples: [{ file: 'monmap-v1.bin', value: sampleMonMap }] },
] as Codec<unknown>[];

/** Runs `f`; it may succeed, or fail only with AspenError E_DECODE / E_UNSUPPORTED. */
function decodesOrRefuses(f: () => unknown): 'ok' | 'refused' {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (!(err instanceof AspenError) || !['E_DECODE', 'E_UNSUPPORTED'].includes(err.code)) {
      throw new Error(`decoder threw something other than AspenError E_DECODE/E_UNSUPPORTED: ${String(err)}`, { cause: err });
    }
    return 'refused';
  }
}

const golden = (file: string): URL => new URL(`../../testdata/osdmap/${file}`, import.meta.url);

describe.each(codecs)('$name codec', (c) => {
  it('round-trips: decode(encode(x)) deep-equals x and re-encodes to the same bytes (property)', () => {
    fc.assert(fc.property(c.arb, (x) => {
      const bytes = c.enc(x);
      const y = c.dec(bytes);
      expect(y).toEqual(x);
      expect(c.enc(y)).toEqual(bytes);
    }), { numRuns: 150 });
  });

  it('every truncation of a valid encoding is refused with E_DECODE, never misread (property)', () => {
    fc.assert(fc.property(c.arb, fc.nat(), (x, r) => {
      const bytes = c.enc(x);
      const cut = r % bytes.length;
      expect(decodesOrRefuses(() => c.dec(bytes.subarray(0, cut)))).toBe('refused');
    }), { numRuns: 300 });
  });

  it('trailing bytes after a valid encoding are refused with E_DECODE', () => {
    const bytes = c.enc(c.sample());
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(() => c.dec(longer)).toThrow(expect.objectContaining({ code: 'E_DECODE' }));
  });

  it('flipped bytes and random garbage either decode or throw only AspenError E_DECODE/E_UNSUPPORTED (property)', () => {
    fc.assert(fc.property(c.arb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.uint8Array({ maxLength: 200 }), (x, flips, garbage) => {
      const bytes = c.enc(x);
      for (const [at, mask] of flips) bytes[at % bytes.length]! ^= mask;
      decodesOrRefuses(() => c.dec(bytes));
      decodesOrRefuses(() => c.dec(garbage));
    }), { numRuns: 300 });
  });

  it('a version newer than this reader with an incompatible compat version is refused with E_UNSUPPORTED', () => {
    const bytes = c.enc(c.sample());
    bytes[0] = 9;
    bytes[1] = 9;
    expect(() => c.dec(bytes)).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }));
  });

  it.each(c.samples.map((sample, i) => ({ ...sample, newest: i === c.samples.length - 1 })))('still decodes the saved sample bytes testdata/osdmap/$file', ({ file, value, newest }) => {
    const path = golden(file);
    const bytes = c.enc(value());
    if (!existsSync(path) && newest && process.env.ASPEN_UPDATE_GOLDEN === '1') writeFileSync(path, bytes); // writes missing files only
    expect(existsSync(path), `${file} missing: run with ASPEN_UPDATE_GOLDEN=1 to create it`).toBe(true);
    const saved = new Uint8Array(readFileSync(path));
    // Older versions decode with the defaults of the fields appended since (the samples carry them).
    expect(c.dec(saved)).toEqual(value());
    // The current writer still produces exactly the newest saved bytes.
    if (newest) expect(bytes).toEqual(saved);
  });
});

describe('OSDMap codec details', () => {
  it('a newer writer that appends fields inside the struct is still readable by this v1 reader', () => {
    const bytes = osdMapToBytes(sampleOsdMap());
    // Re-frame the body as version 2 (compat 1) with 5 extra bytes appended to the body.
    const bodyLen = new DataView(bytes.buffer).getUint32(2, true);
    const extended = new Uint8Array(bytes.length + 5);
    extended.set(bytes);
    extended.set([1, 2, 3, 4, 5], bytes.length);
    extended[0] = 2;
    new DataView(extended.buffer).setUint32(2, bodyLen + 5, true);
    expect(osdMapFromBytes(extended)).toEqual(sampleOsdMap());
  });
});

describe('pool encoding', () => {
  it('refuses an unknown pool type byte with E_DECODE instead of reading it as replicated', () => {
    const m = sampleOsdMap();
    m.pools = new Map([[1, m.pools.get(1)!]]);
    const bytes = osdMapToBytes(m);
    // The pool's type byte follows its struct header (6), id (4) and name (4 + 3 bytes of 'rbd').
    const name = new TextEncoder().encode('rbd');
    let at = -1;
    for (let i = 0; i + name.length <= bytes.length && at < 0; i++) if (bytes[i] === name[0] && bytes[i + 1] === name[1] && bytes[i + 2] === name[2]) at = i + name.length;
    expect(bytes[at]).toBe(0);
    bytes[at] = 2;
    expect(() => osdMapFromBytes(bytes)).toThrow(expect.objectContaining({ code: 'E_DECODE', message: expect.stringMatching(/unknown pool type 2/) }));
  });
});

describe('pool snaps encoding (v2)', () => {
  it('refuses removed_snaps that are not sorted disjoint runs within snap_seq with E_DECODE', () => {
    const m = sampleOsdMapV2();
    Object.assign(m.pools.get(1)!, { snapSeq: 9, removedSnaps: [[6, 2], [1, 3]] });
    expect(() => osdMapFromBytes(osdMapToBytes(m))).toThrow(expect.objectContaining({ code: 'E_DECODE', message: expect.stringMatching(/removed_snaps/) }));
    Object.assign(m.pools.get(1)!, { snapSeq: 5, removedSnaps: [[1, 3], [6, 2]] });
    expect(() => osdMapFromBytes(osdMapToBytes(m))).toThrow(expect.objectContaining({ code: 'E_DECODE' }));
  });

  it('v1 pools and OSDs decode with no snaps and not full', () => {
    const saved = new Uint8Array(readFileSync(golden('osdmap-v1.bin')));
    const m = osdMapFromBytes(saved);
    for (const p of m.pools.values()) expect(p).toMatchObject({ snapSeq: 0, removedSnaps: [] });
    for (const o of m.osds.values()) expect(o).toMatchObject({ full: false, nearfull: false });
    expect(incrementalFromBytes(new Uint8Array(readFileSync(golden('incremental-v1.bin')))).newFullState).toEqual([]);
  });
});
