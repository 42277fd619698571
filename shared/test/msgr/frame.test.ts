/**
 * The messenger's pure frame codec (docs/adr/0005-messenger.md): round trips, chunking
 * independence, fuzzing with arbitrary bytes and corruptions, limits, and pinned sample bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AspenError } from '../../src/errors.ts';
import {
  BANNER_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameFlag,
  FrameType,
  MSGR_COALESCE_MAX_BYTES,
  crc32cCombine,
  encodeBanner,
  encodeFrame,
  isBanner,
  negotiateVersion,
  type Banner,
  type Frame,
} from '../../src/msgr/frame.ts';
import { crc32c } from '../../src/checksum.ts';

const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(FrameType.REQUEST, FrameType.REPLY, FrameType.ONEWAY, FrameType.REPLY_ERROR, FrameType.HELLO),
  flags: fc.constantFrom(0, FrameFlag.RESENT),
  msgType: fc.integer({ min: 0, max: 0xffff }),
  reqId: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
  meta: fc.uint8Array({ maxLength: 300 }),
  data: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: MSGR_COALESCE_MAX_BYTES - 2, max: MSGR_COALESCE_MAX_BYTES + 3000 }).map((n) => new Uint8Array(n).map((_, i) => (i * 31) & 0xff))),
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A banner then the frames, as one byte string. */
function stream(frames: Frame[], crc: boolean): Uint8Array {
  return concat([encodeBanner(), ...frames.flatMap((f) => encodeFrame(f, crc))]);
}

/** Splits `bytes` at the given cut points (fractions in [0,1)). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(bytes.slice(prev, c)); // slices, not views: the decoder must not depend on the backing buffer
    prev = c;
  }
  out.push(bytes.slice(prev));
  return out;
}

function decodeAll(chunks: Uint8Array[]): Array<Frame | Banner> {
  const d = new FrameDecoder();
  const out: Array<Frame | Banner> = [];
  for (const c of chunks) d.push(c, out);
  return out;
}

const plain = (f: Frame): object => ({ ...f, meta: Array.from(f.meta), data: Array.from(f.data) });

describe('msgr frame codec', () => {
  it('crc32cCombine(crc(A), crc(B), |B|) = crc(A ‖ B) for all A, B', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).map((_, i) => (i * 131 + 7) & 0xff))), (a, b) => {
        expect(crc32cCombine(crc32c(a), crc32c(b), b.length)).toBe(crc32c(Buffer.concat([a, b])));
      }),
      { numRuns: 200 },
    );
    // A 4 MiB data segment (the repop case), and the RFC 3720 check value split in two.
    const big = new Uint8Array(4 << 20).map((_, i) => (i * 7) & 0xff);
    expect(crc32cCombine(crc32c(Uint8Array.of(1, 2, 3)), crc32c(big), big.length)).toBe(crc32c(Buffer.concat([Uint8Array.of(1, 2, 3), big])));
    const digits = new TextEncoder().encode('123456789');
    expect(crc32cCombine(crc32c(digits.subarray(0, 4)), crc32c(digits.subarray(4)), 5)).toBe(0xe3069283);
  });

  it('a frame encoded with a data-crc callback is byte-identical to one encoded without', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        let calls = 0;
        const viaCallback = encodeFrame(f, true, undefined, undefined, (d) => {
          calls++;
          return crc32c(d);
        });
        expect(Buffer.concat(viaCallback)).toEqual(Buffer.concat(encodeFrame(f, true)));
        expect(calls).toBe(f.data.length > 0 ? 1 : 0);
      }),
      { numRuns: 200 },
    );
  });

  it('decode(chunked(encode(frames))) = frames for every chunking, with and without payload crc', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 6 }), fc.boolean(), fc.array(fc.double({ min: 0, max: 0.9999, noNaN: true }), { maxLength: 20 }), (frames, crc, cuts) => {
        const out = decodeAll(chunk(stream(frames, crc), cuts));
        expect(out.length).toBe(frames.length + 1);
        expect(isBanner(out[0]!)).toBe(true);
        expect(out.slice(1).map((f) => plain(f as Frame))).toEqual(frames.map(plain));
      }),
      { numRuns: 300 },
    );
  });

  it('decoding is identical whether fed whole, byte by byte, or in random chunks', () => {
    fc.assert(
      fc.property(fc.array(frameArb.filter((f) => f.data.length < 400), { minLength: 1, maxLength: 4 }), fc.array(fc.double({ min: 0, max: 0.9999, noNaN: true }), { maxLength: 10 }), (frames, cuts) => {
        const bytes = stream(frames, true);
        const whole = decodeAll([bytes]).map((x) => (isBanner(x) ? x : plain(x)));
        const bytewise = decodeAll(Array.from(bytes, (b) => Uint8Array.of(b))).map((x) => (isBanner(x) ? x : plain(x)));
        const random = decodeAll(chunk(bytes, cuts)).map((x) => (isBanner(x) ? x : plain(x)));
        expect(bytewise).toEqual(whole);
        expect(random).toEqual(whole);
      }),
      { numRuns: 100 },
    );
  });

  it('arbitrary bytes, chunked arbitrarily, never make the decoder throw anything but a clean E_DECODE/E_UNSUPPORTED, and it stays failed', () => {
    const prefix = fc.constantFrom(new Uint8Array(0), encodeBanner(), stream([{ type: FrameType.REQUEST, flags: 0, msgType: 1, reqId: 1n, meta: Uint8Array.of(1), data: Uint8Array.of(2) }], true));
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 600 }), fc.array(fc.double({ min: 0, max: 0.9999, noNaN: true }), { maxLength: 8 }), fc.boolean(), (pre, junk, cuts, banner) => {
        const d = new FrameDecoder(undefined, banner);
        let failed: unknown;
        for (const c of chunk(concat([pre, junk]), cuts)) {
          try {
            d.push(c);
          } catch (err) {
            failed = err;
            break;
          }
        }
        if (failed === undefined) return;
        expect(failed).toBeInstanceOf(AspenError);
        expect(['E_DECODE', 'E_UNSUPPORTED']).toContain((failed as AspenError).code);
        expect(d.failed).toBe(true);
        expect(() => d.push(Uint8Array.of(0))).toThrow(AspenError);
      }),
      { numRuns: 1000 },
    );
  });

  it('every single-byte corruption after the banner is detected when the payload crc is on (header or payload crc32c)', () => {
    fc.assert(
      fc.property(fc.array(frameArb.filter((f) => f.data.length < 400), { minLength: 1, maxLength: 3 }), fc.double({ min: 0, max: 0.9999, noNaN: true }), fc.integer({ min: 1, max: 255 }), (frames, where, xor) => {
        const bytes = stream(frames, true);
        const pos = BANNER_BYTES + Math.floor(where * (bytes.length - BANNER_BYTES));
        bytes[pos]! ^= xor;
        expect(() => decodeAll([bytes])).toThrow(AspenError);
      }),
      { numRuns: 500 },
    );
  });

  it('an oversized frame is refused from its header alone (reason "oversized"), before any payload arrives', () => {
    const limits = { frameMaxBytes: 1000, metaMaxBytes: 100 };
    const big: Frame = { type: FrameType.REQUEST, flags: 0, msgType: 1, reqId: 7n, meta: new Uint8Array(10), data: new Uint8Array(2000) };
    const header = encodeFrame(big, true)[0]!.subarray(0, FRAME_HEADER_BYTES);
    const d = new FrameDecoder(limits);
    d.push(encodeBanner());
    try {
      d.push(header);
      expect.unreachable();
    } catch (err) {
      expect((err as AspenError).code).toBe('E_DECODE');
      expect((err as AspenError).details['reason']).toBe('oversized');
    }
    const metaTooBig: Frame = { ...big, meta: new Uint8Array(101), data: new Uint8Array(0) };
    expect(() => new FrameDecoder(limits).push(concat([encodeBanner(), ...encodeFrame(metaTooBig, false)]))).toThrow(/exceeds the limits/);
    expect(() => encodeFrame(big, true, 1, limits)).toThrow(/exceeds the limit/);
  });

  it('a 4 MiB data segment arriving in one chunk is not copied (the frame aliases the chunk)', () => {
    const data = new Uint8Array(4 << 20).fill(7);
    const bytes = stream([{ type: FrameType.REQUEST, flags: 0, msgType: 3, reqId: 1n, meta: Uint8Array.of(9), data }], true);
    const out = decodeAll([bytes]);
    const f = out[1] as Frame;
    expect(f.data.buffer).toBe(bytes.buffer);
    expect(f.data.length).toBe(4 << 20);
  });

  it('negotiates the highest common version and refuses disjoint ranges (E_UNSUPPORTED)', () => {
    expect(negotiateVersion({ minVersion: 1, maxVersion: 3 }, { minVersion: 2, maxVersion: 5, features: 0 })).toBe(3);
    expect(() => negotiateVersion({ minVersion: 1, maxVersion: 1 }, { minVersion: 2, maxVersion: 2, features: 0 })).toThrow(/no common/);
    expect(() => new FrameDecoder().push(encodeBanner(2, 3))).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }));
    expect(() => new FrameDecoder().push(new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'))).toThrow(expect.objectContaining({ details: { reason: 'banner' } }));
  });

  it('matches the pinned v1 sample bytes (the wire format must not drift)', () => {
    const f: Frame = { type: FrameType.REQUEST, flags: FrameFlag.RESENT, msgType: 0x0102, reqId: 0x0807060504030201n, meta: Uint8Array.of(0xaa, 0xbb), data: Uint8Array.of(0xcc) };
    const hex = Buffer.from(concat([encodeBanner(), ...encodeFrame(f, true)])).toString('hex');
    expect(hex).toBe(SAMPLE_V1_HEX);
    const out = decodeAll([Buffer.from(SAMPLE_V1_HEX, 'hex')]);
    expect(plain(out[1] as Frame)).toEqual(plain(f));
  });
});

// banner "ASPENMSG" v1..1, features 0; header: magic f0a5, v1, type 3, flags 3 (crc|resent), 0,
// msgType 0x0102, reqId, meta 2, data 1, payload crc, header crc; then aa bb cc.
const SAMPLE_V1_HEX =
  '415350454e4d53470100010000000000' +
  'f0a501030300020101020304050607080200000001000000' +
  'aa2989e1' + // payload crc32c(aa bb cc), LE
  'eacb462f' + // header crc32c(bytes 0..27), LE
  'aabbcc';
