/**
 * The daemon's wire and blob codecs: PG messages (osd/src/pg/msg-codec.ts), whole-object
 * states (osd/src/pg/object-state.ts) and the PG meta's stored pieces (osd/src/pg/codec.ts:
 * base xattr, log entry and dup values) — round trips, saved sample bytes, fuzzing — and the
 * in-memory op semantics the primary's read-modify-write relies on.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AspenError, Encoder } from '@aspen/shared';
import { decodePgMessage, encodePgMessage } from '../../src/pg/msg-codec.ts';
import { decodeDupValue, decodeLogEntryValue, decodePgMetaBase, encodeDupValue, encodeLogEntryValue, encodePgMetaBase, type PgMetaBase } from '../../src/pg/codec.ts';
import { decodeObjectState, encodeObjectState, type ObjectState } from '../../src/pg/object-state.ts';
import type { ClientOpBody, LogEntry, PgLogState, PgMessage, PushMode } from '../../src/pg/types.ts';

const evA = fc.record({ epoch: fc.nat(1_000_000), version: fc.nat(1_000_000_000) });
const bytesA = fc.uint8Array({ maxLength: 64 });
const nameA = fc.string({ minLength: 1, maxLength: 12 });
const modeA = fc.constantFrom<PushMode>('recovery', 'backfill', 'repair');
const entryA: fc.Arbitrary<LogEntry> = fc.record({
  version: evA, op: fc.constantFrom('modify' as const, 'delete' as const), object: nameA, priorVersion: evA,
  reqid: fc.option(fc.record({ client: nameA, tid: fc.nat(1_000_000) }), { nil: null }),
});
const logA: fc.Arbitrary<PgLogState> = fc.constant({ tail: { epoch: 1, version: 0 }, head: { epoch: 2, version: 3 }, entries: [
  { version: { epoch: 2, version: 1 }, op: 'modify', object: 'a', priorVersion: { epoch: 0, version: 0 }, reqid: { client: 'c', tid: 1 } },
  { version: { epoch: 2, version: 3 }, op: 'delete', object: 'b', priorVersion: { epoch: 1, version: 7 }, reqid: null },
], dups: [{ reqid: { client: 'd', tid: 9 }, version: { epoch: 1, version: 2 } }] });
const historyA = fc.record({ epochCreated: fc.nat(1000), lastEpochStarted: fc.nat(1000), lastEpochClean: fc.nat(1000), sameIntervalSince: fc.nat(1000) });
const bodyA: fc.Arbitrary<ClientOpBody> = fc.oneof(
  bytesA.map((data) => ({ kind: 'writeFull' as const, data })),
  fc.tuple(fc.nat(1 << 20), bytesA).map(([offsetBytes, data]) => ({ kind: 'write' as const, offsetBytes, data })),
  fc.constant({ kind: 'delete' as const }),
  fc.tuple(bytesA, bytesA, fc.nat(1 << 30), evA).map(([meta, data, sizeBytes, priorVersion]) => ({ kind: 'txn' as const, meta, data, sizeBytes, priorVersion })),
);
const scrubObjA = fc.record({ object: nameA, version: evA, sizeBytes: fc.nat(1 << 30), storedCrc: fc.option(fc.nat(0xffffffff), { nil: null }) }).chain((o) =>
  fc.tuple(fc.option(fc.nat(0xffffffff), { nil: undefined }), fc.boolean()).map(([dataCrc, readError]) => {
    const withCrc = dataCrc === undefined ? o : { ...o, dataCrc };
    return readError ? { ...withCrc, readError } : withCrc;
  }));

const msgA: fc.Arbitrary<PgMessage> = fc.record({ pgid: fc.constantFrom('1.0', '2.1f'), interval: fc.nat(100_000) }).chain((base) => fc.oneof(
  fc.constantFrom('query' as const, 'backfillDone' as const, 'backfillDoneAck' as const, 'purge' as const).map((kind) => ({ ...base, kind })),
  fc.record({ info: fc.constant(null) }).map(() => ({
    ...base, kind: 'notify' as const,
    meta: { info: { pgid: base.pgid, lastUpdate: { epoch: 2, version: 3 }, lastComplete: { epoch: 2, version: 3 }, logTail: { epoch: 1, version: 0 }, lastEpochStarted: 2, lastBackfill: null, history: { epochCreated: 1, lastEpochStarted: 2, lastEpochClean: 1, sameIntervalSince: 2 } }, log: { tail: { epoch: 1, version: 0 }, head: { epoch: 2, version: 3 }, entries: [], dups: [] }, missing: new Map([['x', { need: { epoch: 2, version: 3 }, have: { epoch: 0, version: 0 } }]]) },
  })),
  fc.tuple(logA, fc.nat(1000), fc.boolean(), historyA).map(([log, lastEpochStarted, backfill, history]) => ({ ...base, kind: 'activate' as const, log, lastEpochStarted, backfill, history })),
  fc.boolean().map((backfill) => ({ ...base, kind: 'activateAck' as const, missing: new Map([['o', { need: { epoch: 3, version: 1 }, have: { epoch: 1, version: 1 } }]]), backfill })),
  fc.tuple(evA, entryA, bodyA, fc.boolean(), evA, fc.option(evA, { nil: undefined })).map(([prev, entry, body, applyData, trimTo, rollForwardTo]) => ({
    ...base, kind: 'repop' as const, prev, entry, body, applyData, trimTo, ...(rollForwardTo !== undefined ? { rollForwardTo } : {}),
  })),
  evA.map((version) => ({ ...base, kind: 'repopAck' as const, version })),
  evA.map((to) => ({ ...base, kind: 'rollForward' as const, to })),
  fc.tuple(nameA, evA).map(([object, need]) => ({ ...base, kind: 'pull' as const, object, need })),
  fc.tuple(nameA, fc.option(evA, { nil: null }), fc.option(bytesA, { nil: null })).map(([object, version, data]) => ({ ...base, kind: 'pullReply' as const, object, version, data })),
  fc.tuple(nameA, evA, fc.option(bytesA, { nil: null }), modeA).map(([object, version, data, mode]) => ({ ...base, kind: 'push' as const, object, version, data, mode })),
  fc.tuple(nameA, modeA).map(([object, mode]) => ({ ...base, kind: 'pushAck' as const, object, mode })),
  fc.tuple(fc.string(), fc.option(fc.string(), { nil: null })).map(([after, upTo]) => ({ ...base, kind: 'backfillScan' as const, after, upTo })),
  fc.tuple(fc.string(), fc.array(fc.tuple(nameA, evA), { maxLength: 5 })).map(([after, objects]) => ({ ...base, kind: 'backfillScanReply' as const, after, objects })),
  fc.tuple(fc.boolean(), fc.nat(1 << 30)).map(([deep, scrubId]) => ({ ...base, kind: 'scrubReq' as const, deep, scrubId })),
  fc.tuple(fc.nat(1 << 30), fc.array(scrubObjA, { maxLength: 4 })).map(([scrubId, objects]) => ({ ...base, kind: 'scrubMap' as const, scrubId, objects })),
));

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('PG message codec', () => {
  it('property: every message round-trips with its sender', () => {
    fc.assert(fc.property(fc.nat(100_000), msgA, (from, msg) => {
      const enc = encodePgMessage(from, msg);
      const dec = decodePgMessage(enc.meta, enc.data);
      expect(dec.from).toBe(from);
      expect(dec.msg).toEqual(msg);
    }), { numRuns: 500 });
  });

  it('property: truncated, bit-flipped or random input throws AspenError or decodes, never anything else', () => {
    fc.assert(fc.property(fc.nat(1000), msgA, fc.nat(), fc.nat(255), fc.uint8Array({ maxLength: 16 }), (from, msg, at, flip, junk) => {
      const enc = encodePgMessage(from, msg);
      const variants: [Uint8Array, Uint8Array][] = [
        [enc.meta.subarray(0, at % (enc.meta.length + 1)), enc.data],
        [Uint8Array.from(enc.meta, (b, i) => (i === at % enc.meta.length ? b ^ (flip | 1) : b)), enc.data],
        [junk, enc.data],
        [enc.meta, junk],
      ];
      for (const [meta, data] of variants) {
        try {
          decodePgMessage(meta, data);
        } catch (err) {
          expect(err).toBeInstanceOf(AspenError);
        }
      }
    }), { numRuns: 1000 });
  });

  it('decodes the saved v1 and v2 sample bytes of a push (and encodes v2 byte-exact)', () => {
    const msg: PgMessage = { pgid: '1.a', interval: 7, kind: 'push', object: 'obj', version: { epoch: 5, version: 9 }, data: new Uint8Array([1, 2, 3]), mode: 'backfill' };
    const body = '2d0000000200000003000000312e610700000008030000006f626a05000000090000000000000001030000000000000001';
    const enc = encodePgMessage(2, msg);
    expect(hex(enc.meta)).toBe(`0202${body}`);
    for (const v of ['0101', '0202']) expect(decodePgMessage(new Uint8Array(Buffer.from(v + body, 'hex')), new Uint8Array([1, 2, 3]))).toEqual({ from: 2, msg });
  });

  it('decodes v1 scrub maps of older peers (stored crc always present, no read-error flag)', () => {
    const obj = { object: 'o', version: { epoch: 3, version: 4 }, sizeBytes: 10, storedCrc: 77, dataCrc: 78 };
    const v2 = encodePgMessage(1, { pgid: '1.0', interval: 2, kind: 'scrubMap', scrubId: 5, objects: [obj, { ...obj, object: 'p', storedCrc: null, readError: true }] });
    expect(decodePgMessage(v2.meta, v2.data).msg).toMatchObject({ objects: [obj, { object: 'p', storedCrc: null, readError: true }] });
    // The same message as a v1 peer wrote it: u32 stored crc, optional data crc, nothing after.
    const e = new Encoder(64).struct(1, 1, (b) => {
      b.u32(1).string('1.0').u32(2).u8(15).u53(5);
      b.array([obj], (x, o) => { x.string(o.object).u32(o.version.epoch).u53(o.version.version).u53(o.sizeBytes).u32(o.storedCrc).optional(o.dataCrc, (y, c) => y.u32(c)); });
    });
    expect(decodePgMessage(e.finish()).msg).toEqual({ pgid: '1.0', interval: 2, kind: 'scrubMap', scrubId: 5, objects: [obj] });
  });

  it('keeps a data segment that owns its whole buffer without copying, and copies one that shares a buffer', () => {
    const push = (data: Uint8Array): PgMessage => ({ pgid: '1.0', interval: 1, kind: 'push', object: 'o', version: { epoch: 1, version: 1 }, data, mode: 'recovery' as PushMode });
    const own = new Uint8Array(64 * 1024).fill(7);
    const enc = encodePgMessage(1, push(own));
    const kept = decodePgMessage(enc.meta, own).msg;
    expect(kept.kind === 'push' && kept.data).toBe(own);
    const chunk = new Uint8Array(100).fill(9);
    const part = chunk.subarray(10, 60);
    const copied = decodePgMessage(encodePgMessage(1, push(part)).meta, part).msg;
    if (copied.kind !== 'push' || copied.data === null) throw new Error('not a push with data');
    expect(copied.data).not.toBe(part);
    expect(copied.data.buffer).not.toBe(chunk.buffer);
    expect(Array.from(copied.data)).toEqual(Array.from(part));
  });

  it('refuses a data segment that the message does not account for', () => {
    const enc = encodePgMessage(1, { pgid: '1.0', interval: 1, kind: 'query' });
    expect(() => decodePgMessage(enc.meta, new Uint8Array(4))).toThrow(/unreferenced/);
  });
});

const stateA: fc.Arbitrary<ObjectState> = fc.record({
  data: fc.uint8Array({ maxLength: 256 }),
  xattrs: fc.array(fc.tuple(nameA, bytesA), { maxLength: 4 }).map((e) => new Map(e)),
  omapHeader: bytesA,
  omap: fc.array(fc.tuple(fc.string({ maxLength: 8 }), bytesA), { maxLength: 6 }).map((e) => new Map(e)),
  version: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  mtimeMs: fc.nat(),
});

describe('object state blob', () => {
  it('property: a state round-trips, and equal states encode to equal bytes whatever the map order', () => {
    fc.assert(fc.property(stateA, (s) => {
      const b = encodeObjectState(s);
      const d = decodeObjectState(b);
      expect(d).toEqual(s);
      const reordered: ObjectState = { ...s, xattrs: new Map([...s.xattrs].reverse()), omap: new Map([...s.omap].reverse()) };
      expect(hex(encodeObjectState(reordered))).toBe(hex(b));
    }), { numRuns: 300 });
  });

  it('decodes the saved v1 sample bytes', () => {
    const s: ObjectState = { data: new Uint8Array([0xab]), xattrs: new Map([['k', new Uint8Array([1])]]), omapHeader: new Uint8Array(0), omap: new Map([['m', new Uint8Array([2])]]), version: 3n, mtimeMs: 1000 };
    const sample = '0101350000000300000000000000e80300000000000001000000ab01000000010000006b01000000010000000001000000010000006d0100000002';
    expect(hex(encodeObjectState(s))).toBe(sample);
    expect(decodeObjectState(new Uint8Array(Buffer.from(sample, 'hex')))).toEqual(s);
  });

  it('property: random bytes throw AspenError or decode', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      try {
        decodeObjectState(b);
      } catch (err) {
        expect(err).toBeInstanceOf(AspenError);
      }
    }), { numRuns: 1000 });
  });
});

const missingA = fc.array(fc.tuple(nameA, evA, evA), { maxLength: 4 }).map((xs) => new Map(xs.map(([o, need, have]) => [o, { need, have }] as const)));
const infoA = fc.tuple(fc.constantFrom('1.0', '2.1f'), evA, evA, evA, fc.nat(1000), fc.option(nameA, { nil: null }), historyA).map(
  ([pgid, lastUpdate, lastComplete, logTail, lastEpochStarted, lastBackfill, history]) => ({ pgid, lastUpdate, lastComplete, logTail, lastEpochStarted, lastBackfill, history }));
const baseA: fc.Arbitrary<PgMetaBase> = fc.record({ info: infoA, tail: evA, head: evA, entryCount: fc.nat(100_000), dupCount: fc.nat(100_000), missing: missingA });
const dupA = fc.record({ reqid: fc.record({ client: nameA, tid: fc.nat(1_000_000) }), version: evA });

describe('PG meta pieces (the store\'s incremental meta layout)', () => {
  it('property: a base, a log entry value and a dup value each round-trip', () => {
    fc.assert(fc.property(baseA, entryA, dupA, (base, entry, dup) => {
      expect(decodePgMetaBase(encodePgMetaBase(base))).toEqual(base);
      expect(decodeLogEntryValue(encodeLogEntryValue(entry))).toEqual(entry);
      expect(decodeDupValue(encodeDupValue(dup))).toEqual(dup);
    }), { numRuns: 300 });
  });

  it('decodes the saved v1 sample bytes (and encodes them byte-exact)', () => {
    const info = {
      pgid: '1.0', lastUpdate: { epoch: 2, version: 3 }, lastComplete: { epoch: 2, version: 3 }, logTail: { epoch: 1, version: 0 }, lastEpochStarted: 2,
      lastBackfill: null, history: { epochCreated: 1, lastEpochStarted: 2, lastEpochClean: 1, sameIntervalSince: 2 },
    };
    const base: PgMetaBase = { info, tail: { epoch: 1, version: 0 }, head: { epoch: 2, version: 3 }, entryCount: 2, dupCount: 1, missing: new Map([['x', { need: { epoch: 2, version: 3 }, have: { epoch: 0, version: 0 } }]]) };
    const baseSample = '01019b00000001014600000003000000312e3002000000030000000000000002000000030000000000000001000000000000000000000002000000000101100000000100000002000000010000000200000001000000000000000000000002000000030000000000000002000000000000000100000000000000010121000000010000000100000078020000000300000000000000000000000000000000000000';
    expect(hex(encodePgMetaBase(base))).toBe(baseSample);
    expect(decodePgMetaBase(new Uint8Array(Buffer.from(baseSample, 'hex')))).toEqual(base);
    const entry: LogEntry = { version: { epoch: 2, version: 1 }, op: 'modify', object: 'a', priorVersion: { epoch: 0, version: 0 }, reqid: { client: 'c', tid: 1 } };
    const entrySample = '01012c0000000200000001000000000000000001000000610000000000000000000000000101000000630100000000000000';
    expect(hex(encodeLogEntryValue(entry))).toBe(entrySample);
    expect(decodeLogEntryValue(new Uint8Array(Buffer.from(entrySample, 'hex')))).toEqual(entry);
    const dup = { reqid: { client: 'd', tid: 9 }, version: { epoch: 1, version: 2 } };
    const dupSample = '01011900000001000000640900000000000000010000000200000000000000';
    expect(hex(encodeDupValue(dup))).toBe(dupSample);
    expect(decodeDupValue(new Uint8Array(Buffer.from(dupSample, 'hex')))).toEqual(dup);
  });

  it('property: random bytes throw AspenError or decode', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 96 }), (b) => {
      for (const decode of [decodePgMetaBase, decodeLogEntryValue, decodeDupValue]) {
        try {
          decode(b);
        } catch (err) {
          expect(err).toBeInstanceOf(AspenError);
        }
      }
    }), { numRuns: 1000 });
  });
});
