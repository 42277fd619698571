/**
 * The pure client session (shared/src/msgr/client-session.ts) driven by random schedules of
 * submits, timeouts, replies, one-way messages, connection successes, drops and refusals.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AspenError } from '../../src/errors.ts';
import { ClientSession, type ClientEffect } from '../../src/msgr/client-session.ts';
import { FrameFlag, FrameType, type Frame } from '../../src/msgr/frame.ts';
import { encodeRemoteError } from '../../src/msgr/handshake.ts';

const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('submit' as const), bytes: fc.integer({ min: 0, max: 120 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('reply' as const), pick: fc.nat(), error: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('oneway' as const) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('open' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('drop' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('refuse' as const) }) },
);

interface Token {
  readonly id: number;
  settled: number;
  outcome?: string;
}

describe('msgr client session (pure)', () => {
  it('every request is settled exactly once; ids increase; after each reconnect exactly the unanswered requests are resent, in id order, flagged RESENT; limits hold', () => {
    const seen = { resends: 0, resolved: 0, refused: 0 };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 50, max: 200 }), fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 200, size: 'large' }), (reqMax, bytesMax, attemptsMax, ops) => {
        const s = new ClientSession<Token>({ inflightRequestsMax: reqMax, inflightBytesMax: bytesMax, reconnectAttemptsMax: attemptsMax, reconnectBackoffMs: 10, reconnectBackoffMaxMs: 100, onewayQueueMax: 3, peerAddress: 'test:1' });
        const tokens: Token[] = [];
        // Changed inside apply() too, so read through a function (TypeScript would narrow a bare let).
        let phase: 'idle' | 'connecting' | 'open' = 'idle';
        const phaseNow = (): typeof phase => phase;
        let maxWrittenId = 0n;
        const written = new Set<bigint>(); // reqIds written at least once
        let onWire: bigint[] = []; // written on the current connection, not yet answered
        const apply = (effects: Array<ClientEffect<Token>>, context: string): Frame[] => {
          const writes: Frame[] = [];
          for (const e of effects) {
            if (e.kind === 'write') {
              expect(phase, `write while ${phase} (${context})`).toBe('open');
              writes.push(e.frame);
              if (e.frame.type === FrameType.REQUEST) {
                const id = e.frame.reqId;
                const resent = (e.frame.flags & FrameFlag.RESENT) !== 0;
                expect(resent).toBe(written.has(id));
                if (!resent) {
                  expect(id).toBeGreaterThan(maxWrittenId);
                  maxWrittenId = id;
                  written.add(id);
                }
                onWire.push(id);
              }
            } else if (e.kind === 'connect') {
              expect(phase).toBe('idle');
              phase = 'connecting';
            } else {
              e.token.settled++;
              e.token.outcome = e.kind === 'resolve' ? 'ok' : e.error.code;
              expect(e.token.settled).toBe(1);
            }
          }
          expect(s.inflightRequests).toBeLessThanOrEqual(reqMax);
          expect(s.inflightBytes <= bytesMax || s.inflightRequests === 1).toBe(true);
          return writes;
        };
        for (const o of ops) {
          switch (o.k) {
            case 'submit': {
              const t: Token = { id: tokens.length, settled: 0 };
              tokens.push(t);
              apply(s.submit(t, 1, new Uint8Array(Math.min(o.bytes, 8)), new Uint8Array(Math.max(0, o.bytes - 8))), 'submit');
              break;
            }
            case 'cancel': {
              const open = tokens.filter((t) => t.settled === 0);
              if (open.length > 0) apply(s.cancel(open[o.pick % open.length]!, new AspenError('ETIMEDOUT', 'deadline')), 'cancel');
              break;
            }
            case 'reply': {
              if (phase !== 'open' || onWire.length === 0) break;
              const id = onWire.splice(o.pick % onWire.length, 1)[0]!;
              const frame: Frame = o.error
                ? { type: FrameType.REPLY_ERROR, flags: 0, msgType: 1, reqId: id, meta: encodeRemoteError({ code: 'ENOENT', message: 'x' }), data: new Uint8Array(0) }
                : { type: FrameType.REPLY, flags: 0, msgType: 1, reqId: id, meta: new Uint8Array(0), data: new Uint8Array(0) };
              apply(s.onReply(frame), 'reply');
              break;
            }
            case 'oneway':
              try {
                apply(s.sendOneway(2, new Uint8Array(1), new Uint8Array(0)), 'oneway');
              } catch (err) {
                expect((err as AspenError).code).toBe('EBUSY');
              }
              break;
            case 'open': {
              if (phaseNow() !== 'connecting') break;
              phase = 'open';
              onWire = [];
              const writes = apply(s.onOpen(), 'open').filter((f) => f.type === FrameType.REQUEST && (f.flags & FrameFlag.RESENT) !== 0);
              const ids = writes.map((f) => f.reqId);
              expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
              break;
            }
            case 'drop':
            case 'refuse': {
              if (phase === 'idle') break;
              phase = 'idle';
              onWire = [];
              apply(s.onClose(o.k === 'refuse' ? { fatal: new AspenError('E_WRONG_CLUSTER', 'other'), reason: 'refused' } : { reason: 'dropped' }), o.k);
              break;
            }
          }
          // A session with requests holding capacity is connecting or open (never silently idle).
          if (s.inflightRequests > 0) expect(phase).not.toBe('idle');
        }
        // Deadlines fire for everything left: each request ends exactly once, and the session drains.
        for (const t of tokens) if (t.settled === 0) apply(s.cancel(t, new AspenError('ETIMEDOUT', 'end')), 'final');
        expect(tokens.every((t) => t.settled === 1)).toBe(true);
        expect(s.isDrained).toBe(true);
        expect(s.inflightRequests).toBe(0);
        expect(s.inflightBytes).toBe(0);
        seen.resends += s.stats.resends;
        seen.resolved += tokens.filter((t) => t.outcome === 'ok').length;
        seen.refused += tokens.filter((t) => t.outcome === 'ECONNREFUSED').length;
      }),
      { numRuns: 1000 },
    );
    // The schedules did exercise resends, successes and give-ups (the property is not vacuous).
    expect(seen.resends).toBeGreaterThan(100);
    expect(seen.resolved).toBeGreaterThan(100);
    expect(seen.refused).toBeGreaterThan(10);
  });

  it('after reconnectAttemptsMax failed attempts every waiting request fails with ECONNREFUSED; a refusal fails them with its own code at once', () => {
    const s = new ClientSession<string>({ inflightRequestsMax: 10, inflightBytesMax: 1000, reconnectAttemptsMax: 3, reconnectBackoffMs: 10, reconnectBackoffMaxMs: 25, onewayQueueMax: 1, peerAddress: 'h:1' });
    expect(s.submit('a', 1, new Uint8Array(0), new Uint8Array(0))).toEqual([{ kind: 'connect', delayMs: 0 }]);
    expect(s.onClose({ reason: 'refused' })).toEqual([{ kind: 'connect', delayMs: 10 }]);
    expect(s.onClose({ reason: 'refused' })).toEqual([{ kind: 'connect', delayMs: 20 }]);
    const out = s.onClose({ reason: 'refused' });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ kind: 'reject', token: 'a', error: { code: 'ECONNREFUSED' } });
    expect(s.submit('b', 1, new Uint8Array(0), new Uint8Array(0))).toEqual([{ kind: 'connect', delayMs: 0 }]);
    expect(s.onClose({ fatal: new AspenError('E_WRONG_CLUSTER', 'x'), reason: 'refused' })[0]).toMatchObject({ kind: 'reject', token: 'b', error: { code: 'E_WRONG_CLUSTER' } });
    expect(s.isDrained).toBe(true);
  });
});
