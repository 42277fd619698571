import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toPlain } from '@aspen/test/plain.ts';
import { AspenError } from '../../src/errors.ts';
import {
  NOTIFY_PAYLOAD_MAX_BYTES,
  decodeNotifyAck, decodeNotifyEvent, decodeNotifyReply, decodeNotifyRequest, decodeWatchReply, decodeWatchRequest,
  encodeNotifyAck, encodeNotifyEvent, encodeNotifyReply, encodeNotifyRequest, encodeWatchReply, encodeWatchRequest,
  type NotifyAck, type NotifyEvent, type NotifyReply, type NotifyRequest, type WatchEncoded, type WatchReply, type WatchRequest,
} from '../../src/client/watch-codec.ts';

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const u32 = fc.nat({ max: 0xffffffff });
const bytes = fc.uint8Array({ maxLength: 64 });
const clientId = fc.string({ minLength: 1, maxLength: 40 }).map((s) => `client.${s}`);
const code = fc.constantFrom<0 | string>(0, 'ESTALE', 'ENOENT', 'ENOTCONN', 'EINVAL');

const watchRequest: fc.Arbitrary<WatchRequest> = fc.record({
  epoch: u32, pool: u32, pgSeed: u32, namespace: fc.string(), object: fc.string(), clientId, cookie: u64,
  op: fc.constantFrom('watch', 'reconnect', 'unwatch', 'ping' as const), timeoutMs: u32,
});
const watchReply: fc.Arbitrary<WatchReply> = fc.record({ code, message: fc.string(), epoch: u32, timeoutMs: u32 });
const notifyRequest: fc.Arbitrary<NotifyRequest> = fc.record({
  epoch: u32, pool: u32, pgSeed: u32, namespace: fc.string(), object: fc.string(), clientId, payload: bytes, timeoutMs: u32,
});
const notifyReply: fc.Arbitrary<NotifyReply> = fc.record({
  code, message: fc.string(), epoch: u32, notifyId: u64,
  acks: fc.array(fc.record({ watcherId: fc.string(), cookie: u64, reply: bytes }), { maxLength: 5 }),
  timeouts: fc.array(fc.record({ watcherId: fc.string(), cookie: u64 }), { maxLength: 5 }),
});
const notifyEvent: fc.Arbitrary<NotifyEvent> = fc.record({ notifyId: u64, cookie: u64, notifierId: fc.string(), payload: bytes });
const notifyAck: fc.Arbitrary<NotifyAck> = fc.record({ notifyId: u64, cookie: u64, reply: bytes });

interface Codec<T> {
  readonly name: string;
  readonly arb: fc.Arbitrary<T>;
  readonly encode: (v: T) => WatchEncoded;
  readonly decode: (meta: Uint8Array, data: Uint8Array) => T;
}
const codecs: Codec<unknown>[] = [
  { name: 'watch request', arb: watchRequest, encode: encodeWatchRequest, decode: decodeWatchRequest },
  { name: 'watch reply', arb: watchReply, encode: encodeWatchReply, decode: decodeWatchReply },
  { name: 'notify request', arb: notifyRequest, encode: encodeNotifyRequest, decode: decodeNotifyRequest },
  { name: 'notify reply', arb: notifyReply, encode: encodeNotifyReply, decode: decodeNotifyReply },
  { name: 'notify event', arb: notifyEvent, encode: encodeNotifyEvent, decode: decodeNotifyEvent },
  { name: 'notify ack', arb: notifyAck, encode: encodeNotifyAck, decode: decodeNotifyAck },
] as Codec<unknown>[];

/** Decodes; returns normally or throws — and any throw must be AspenError EINVAL. */
function decodesOrEinval(c: Codec<unknown>, meta: Uint8Array, data: Uint8Array): void {
  try {
    c.decode(meta, data);
  } catch (err) {
    expect(err).toBeInstanceOf(AspenError);
    expect((err as AspenError).code).toBe('EINVAL');
  }
}

describe('watch/notify codecs', () => {
  for (const c of codecs) {
    it(`${c.name}: decode(encode(x)) = x (property)`, () => {
      fc.assert(fc.property(c.arb, (x) => {
        const m = c.encode(x);
        expect(toPlain(c.decode(m.meta, m.data))).toEqual(toPlain(x));
      }));
    });

    it(`${c.name}: truncated, extended, bit-flipped or random input throws only AspenError EINVAL (property)`, () => {
      fc.assert(fc.property(c.arb, fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 16 }), (x, cut, flip, garbage, extra) => {
        const m = c.encode(x);
        const flipped = m.meta.slice();
        if (flipped.length > 0) flipped[flip % flipped.length] = flipped[flip % flipped.length]! ^ (1 << (flip % 8));
        const cases: [Uint8Array, Uint8Array][] = [
          [m.meta.subarray(0, cut % Math.max(1, m.meta.length)), m.data],
          [flipped, m.data],
          [garbage, m.data],
          [garbage, garbage],
          [m.meta, extra],
          [new Uint8Array([...m.meta, ...extra]), m.data],
        ];
        if (m.data.length > 0) cases.push([m.meta, m.data.subarray(0, m.data.length - 1)]);
        for (const [meta, data] of cases) decodesOrEinval(c, meta, data);
      }), { numRuns: 300 });
    });
  }

  it('rejects a data segment with unreferenced bytes, an unknown watch op and an empty client id with EINVAL', () => {
    const req: WatchRequest = { epoch: 3, pool: 1, pgSeed: 2, namespace: '', object: 'o', clientId: 'client.a.1', cookie: 7n, op: 'ping', timeoutMs: 0 };
    const m = encodeWatchRequest(req);
    expect(() => decodeWatchRequest(m.meta, new Uint8Array([1]))).toThrow(/EINVAL.*unreferenced/);
    const badOp = m.meta.slice();
    badOp[badOp.length - 5] = 9; // the op byte precedes the u32 timeout
    expect(() => decodeWatchRequest(badOp)).toThrow(/EINVAL.*unknown watch op 9/);
    const noId = encodeWatchRequest({ ...req, clientId: '' });
    expect(() => decodeWatchRequest(noId.meta)).toThrow(/EINVAL.*client id/);
  });

  it('rejects a notify payload above NOTIFY_PAYLOAD_MAX_BYTES with EINVAL', () => {
    const ev = encodeNotifyEvent({ notifyId: 1n, cookie: 1n, notifierId: 'client.x', payload: new Uint8Array(NOTIFY_PAYLOAD_MAX_BYTES + 1) });
    expect(() => decodeNotifyEvent(ev.meta, ev.data)).toThrow(/EINVAL.*exceeds/);
  });

  it('keeps a v1 sample readable (wire compatibility)', () => {
    const m = encodeNotifyAck({ notifyId: 5n, cookie: 9n, reply: new Uint8Array([0xaa, 0xbb]) });
    expect(Buffer.from(m.meta).toString('hex')).toBe('0101140000000500000000000000090000000000000002000000');
    expect(toPlain(decodeNotifyAck(m.meta, m.data))).toEqual(toPlain({ notifyId: 5n, cookie: 9n, reply: new Uint8Array([0xaa, 0xbb]) }));
  });
});
