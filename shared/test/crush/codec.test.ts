import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { crushMapFromBytes, crushMapToBytes } from '../../src/crush/index.ts';
import { sampleCrushMap, sampleCrushMapV2 } from './helpers.ts';
import { AspenError } from '../../src/errors.ts';

const samplePath = new URL('../../testdata/crush/crushmap-v1.bin', import.meta.url);

describe('crush codec', () => {
  it('round-trips', () => {
    const m = sampleCrushMap();
    expect(crushMapFromBytes(crushMapToBytes(m))).toEqual(m);
  });
  it('decodes the committed v1 sample bytes, and a map without choose_args is still written as those v1 bytes', () => {
    const bytes = new Uint8Array(readFileSync(samplePath));
    expect(crushMapFromBytes(bytes)).toEqual(sampleCrushMap());
    expect(crushMapToBytes(sampleCrushMap())).toEqual(bytes);
  });
  it('decodes and re-encodes the committed v2 sample bytes (with choose_args)', () => {
    const bytes = new Uint8Array(readFileSync(new URL('../../testdata/crush/crushmap-v2.bin', import.meta.url)));
    expect(crushMapFromBytes(bytes)).toEqual(sampleCrushMapV2());
    expect(crushMapToBytes(sampleCrushMapV2())).toEqual(bytes);
  });
  it('rejects every truncation with E_DECODE', () => {
    const bytes = crushMapToBytes(sampleCrushMap());
    for (let n = 0; n < bytes.length; n += 7) {
      expect(() => crushMapFromBytes(bytes.subarray(0, n))).toThrow(AspenError);
    }
  });
});
