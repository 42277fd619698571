import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Decoder, Encoder } from '../src/codec.ts';
import { AspenError, ERROR_CATALOG, ERROR_CODES } from '../src/errors.ts';
import { crc32c } from '../src/checksum.ts';

describe('codec', () => {
  it('round-trips every field type (property: decode(encode(x)) = x)', () => {
    fc.assert(
      fc.property(
        fc.record({
          a: fc.integer({ min: 0, max: 255 }),
          b: fc.integer({ min: 0, max: 0xffffffff }),
          c: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
          d: fc.string(),
          e: fc.array(fc.integer({ min: -0x80000000, max: 0x7fffffff })),
          f: fc.option(fc.uint8Array(), { nil: undefined }),
          g: fc.maxSafeNat(),
        }),
        (x) => {
          const bytes = new Encoder(1)
            .struct(2, 1, (e) => {
              e.u8(x.a).u32(x.b).u64(x.c).string(x.d).array(x.e, (e2, v) => e2.i32(v)).optional(x.f, (e2, v) => e2.bytes(v)).u53(x.g);
            })
            .finish();
          const d = new Decoder(bytes);
          const y = d.struct(2, 'test', (dd) => ({
            a: dd.u8(), b: dd.u32(), c: dd.u64(), d: dd.string(), e: dd.array((d2) => d2.i32()),
            f: dd.optional((d2) => d2.bytes()), g: dd.u53(),
          }));
          d.done('test');
          expect({ ...y, f: y.f && Array.from(y.f) }).toEqual({ ...x, f: x.f && Array.from(x.f) });
        },
      ),
    );
  });

  it('skips fields appended by a newer compatible writer', () => {
    const bytes = new Encoder().struct(3, 1, (e) => e.u32(7).string('new field')).u8(9).finish();
    const d = new Decoder(bytes);
    expect(d.struct(1, 'old', (dd) => dd.u32())).toBe(7);
    expect(d.u8()).toBe(9);
  });

  it('refuses a struct whose compat version is newer than the reader', () => {
    const bytes = new Encoder().struct(3, 3, (e) => e.u32(7)).finish();
    expect(() => new Decoder(bytes).struct(2, 'thing', (dd) => dd.u32())).toThrow(/E_UNSUPPORTED/);
  });

  it('never reads out of bounds: any truncation or garbage throws E_DECODE or E_UNSUPPORTED (property)', () => {
    const good = new Encoder().struct(1, 1, (e) => e.string('hello').array([1, 2, 3], (e2, v) => e2.u32(v))).finish();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(good.length), (garbage, cut) => {
        for (const input of [garbage, good.subarray(0, cut)]) {
          try {
            const d = new Decoder(input);
            d.struct(1, 't', (dd) => [dd.string(), dd.array((d2) => d2.u32())]);
            d.done('t');
          } catch (err) {
            expect(err).toBeInstanceOf(AspenError);
            expect(['E_DECODE', 'E_UNSUPPORTED']).toContain((err as AspenError).code);
          }
        }
      }),
    );
  });
});

describe('errors', () => {
  it('documents every code', () => {
    for (const code of ERROR_CODES) expect(ERROR_CATALOG[code].doc.length).toBeGreaterThan(10);
  });
});

describe('crc32c', () => {
  it('matches the RFC 3720 check value and chains', () => {
    const data = new TextEncoder().encode('123456789');
    expect(crc32c(data)).toBe(0xe3069283);
    expect(crc32c(data.subarray(4), crc32c(data.subarray(0, 4)))).toBe(0xe3069283);
  });
});
