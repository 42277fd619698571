/** Pure parts of the messenger besides frames: handshake bodies and the in-flight throttle. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AspenError } from '../../src/errors.ts';
import {
  checkHello,
  decodeHello,
  decodeHelloAck,
  decodeRemoteError,
  encodeHello,
  encodeHelloAck,
  encodeRemoteError,
  isEntityName,
  type Hello,
} from '../../src/msgr/handshake.ts';
import { InflightThrottle } from '../../src/msgr/throttle.ts';

const entity = fc.tuple(fc.constantFrom('client', 'osd', 'mon', 'mds'), fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/)).map(([t, n]) => `${t}.${n}`);

describe('msgr handshake bodies', () => {
  it('decodeHello(encodeHello(h)) = h and decodeHelloAck(encodeHelloAck(a)) = a', () => {
    fc.assert(
      fc.property(fc.string(), entity, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat(), fc.oneof(fc.constant(''), entity), fc.uint8Array({ maxLength: 40 }), (fsid, ent, sid, seq, peer, auth) => {
        const h: Hello = { fsid, entity: ent, sessionId: sid, connectSeq: seq % 2 ** 32, peerEntity: peer, auth: { method: 0, payload: auth } };
        const back = decodeHello(encodeHello(h));
        expect({ ...back, auth: { ...back.auth, payload: Array.from(back.auth.payload) } }).toEqual({ ...h, auth: { method: 0, payload: Array.from(auth) } });
        const ack = { fsid, entity: ent, sessionId: sid, resumed: seq % 2 === 0, auth: { method: 0, payload: new Uint8Array(0) } };
        expect(decodeHelloAck(encodeHelloAck(ack)).resumed).toBe(ack.resumed);
      }),
    );
  });

  it('arbitrary bytes never decode to anything but a valid hello or a clean AspenError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          expect(isEntityName(decodeHello(bytes).entity)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(AspenError);
        }
        try {
          decodeRemoteError(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(AspenError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('checkHello refuses another cluster (E_WRONG_CLUSTER), a wrong target (EINVAL) and unknown auth (E_UNSUPPORTED)', () => {
    const local = { fsid: 'f1', entity: 'osd.1' };
    const h: Hello = { fsid: 'f1', entity: 'client.a', sessionId: 1n, connectSeq: 0, peerEntity: '', auth: { method: 0, payload: new Uint8Array(0) } };
    expect(checkHello(h, local)).toBeUndefined();
    expect(checkHello({ ...h, peerEntity: 'osd.1' }, local)).toBeUndefined();
    expect(checkHello({ ...h, fsid: 'f2' }, local)?.code).toBe('E_WRONG_CLUSTER');
    expect(checkHello({ ...h, peerEntity: 'osd.2' }, local)?.code).toBe('EINVAL');
    expect(checkHello({ ...h, auth: { method: 2, payload: new Uint8Array(0) } }, local)?.code).toBe('E_UNSUPPORTED');
  });

  it('remote errors keep their code; an unknown code from a newer peer becomes EIO', () => {
    expect(decodeRemoteError(encodeRemoteError({ code: 'ENOENT', message: 'no such object' }))).toEqual({ code: 'ENOENT', message: 'no such object' });
    expect(['client.admin', 'osd.12', 'mon.a'].every(isEntityName)).toBe(true);
    expect(['', 'osd.', 'foo.1', 'client.a b'].some(isEntityName)).toBe(false);
  });
});

describe('msgr in-flight throttle', () => {
  it('never exceeds its limits, grants in FIFO order, and admits an oversized request alone (random acquire/release/cancel schedules)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.tuple(fc.constantFrom('acquire', 'release', 'cancel'), fc.integer({ min: 0, max: 150 })), { maxLength: 200 }),
        (reqMax, bytesMax, ops) => {
          const t = new InflightThrottle(reqMax, bytesMax);
          const held: number[] = [];
          const queued: Array<{ bytes: number; w: ReturnType<InflightThrottle['acquire']>; order: number }> = [];
          const grants: number[] = [];
          let order = 0;
          for (const [op, n] of ops) {
            if (op === 'acquire') {
              const me = order++;
              const entry = { bytes: n, w: undefined as ReturnType<InflightThrottle['acquire']>, order: me };
              entry.w = t.acquire(n, () => {
                grants.push(me);
                held.push(n);
              });
              if (entry.w === undefined) {
                grants.push(me);
                held.push(n);
              } else queued.push(entry);
            } else if (op === 'release' && held.length > 0) {
              t.release(held.splice(n % held.length, 1)[0]!);
            } else if (op === 'cancel' && queued.length > 0) {
              const e = queued[n % queued.length]!;
              if (e.w !== undefined && t.cancel(e.w)) queued.splice(queued.indexOf(e), 1);
            }
            expect(t.requestsInflight).toBe(held.length);
            expect(t.requestsInflight).toBeLessThanOrEqual(reqMax);
            expect(t.bytesInflight <= bytesMax || t.requestsInflight === 1).toBe(true);
          }
          // FIFO: grants are in increasing order of arrival.
          expect([...grants].sort((a, b) => a - b)).toEqual(grants);
        },
      ),
      { numRuns: 500 },
    );
  });
});
