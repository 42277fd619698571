import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  appendEntry, computeLastComplete, emptyLog, findReqid, lastEntryFor, mergeLog, trimLog, trimTarget,
} from '../../src/pg/pg-log.ts';
import { decodeMissing, decodePgInfo, decodePgLog, decodePgMeta, encodeMissing, encodePgInfo, encodePgLog, encodePgMeta } from '../../src/pg/codec.ts';
import { EVERSION_ZERO, type Eversion, type LogEntry, type LogOp, type MissingItem, type PgLogState } from '../../src/pg/types.ts';
import { Decoder, Encoder } from '@aspen/shared';

const ev = (epoch: number, version: number): Eversion => ({ epoch, version });

/** Builds a log from [epoch, version, object, op?] tuples, priors following each object's history. */
function build(items: readonly (readonly [number, number, string, LogOp?])[], base: PgLogState = emptyLog()): PgLogState {
  let log = base;
  for (const [e, v, object, op] of items) {
    const prev = lastEntryFor(log, object);
    const priorVersion = prev === undefined || prev.op !== 'modify' ? EVERSION_ZERO : prev.version;
    const entry: LogEntry = { version: ev(e, v), op: op ?? 'modify', object, priorVersion, reqid: { client: 'c', tid: e * 1000 + v } };
    log = appendEntry(log, entry);
  }
  return log;
}

describe('pg log basics', () => {
  it('appends in order and refuses an older entry', () => {
    const log = build([[1, 1, 'a'], [1, 2, 'b']]);
    expect(log.head).toEqual(ev(1, 2));
    expect(() => appendEntry(log, { version: ev(1, 2), op: 'modify', object: 'x', priorVersion: EVERSION_ZERO, reqid: null })).toThrow(/not after head/);
  });

  it('trims to a version, keeps request ids as dups, bounded', () => {
    const log = build([[1, 1, 'a'], [1, 2, 'b'], [1, 3, 'c'], [2, 4, 'a']]);
    const t = trimLog(log, ev(1, 2), 1);
    expect(t.tail).toEqual(ev(1, 2));
    expect(t.entries.map((e) => e.version.version)).toEqual([3, 4]);
    expect(t.dups).toHaveLength(1);
    expect(findReqid(t, { client: 'c', tid: 1002 })).toEqual(ev(1, 2)); // from dups
    expect(findReqid(t, { client: 'c', tid: 1001 })).toBeUndefined(); // dropped beyond dupsMax
    expect(findReqid(t, { client: 'c', tid: 2004 })).toEqual(ev(2, 4));
  });

  it('trim target keeps maxEntries but never passes what every member has', () => {
    const log = build([[1, 1, 'a'], [1, 2, 'b'], [1, 3, 'c'], [1, 4, 'd'], [1, 5, 'e']]);
    expect(trimTarget(log, 2, ev(1, 5))).toEqual(ev(1, 3));
    expect(trimTarget(log, 2, ev(1, 1))).toEqual(ev(1, 1));
    expect(trimTarget(log, 10, ev(1, 5))).toEqual(EVERSION_ZERO);
  });

  it('last_complete stops before the oldest missing need', () => {
    const log = build([[1, 1, 'a'], [1, 2, 'b'], [1, 3, 'c']]);
    expect(computeLastComplete(log, new Map())).toEqual(ev(1, 3));
    expect(computeLastComplete(log, new Map([['b', { need: ev(1, 2), have: EVERSION_ZERO }]]))).toEqual(ev(1, 1));
  });
});

describe('mergeLog (PGLog::merge_log)', () => {
  it('a member behind the authoritative log misses the newer objects and removes deleted ones', () => {
    const common = build([[1, 1, 'a'], [1, 2, 'b']]);
    const auth = build([[2, 3, 'a'], [2, 4, 'b', 'delete'], [2, 5, 'c']], common);
    const r = mergeLog(common, new Map(), auth);
    expect(r.overlap).toBe(true);
    expect(r.divergent).toEqual([]);
    expect([...r.missing.keys()].sort()).toEqual(['a', 'c']);
    expect(r.missing.get('a')!.need).toEqual(ev(2, 3));
    expect(r.removals).toEqual(['b']);
    expect(r.log.head).toEqual(ev(2, 5));
  });

  it('divergent entries roll back: an object that existed becomes missing at its prior version', () => {
    const common = build([[1, 1, 'a'], [1, 2, 'b']]);
    const local = build([[2, 3, 'a'], [2, 4, 'n']], common); // never acknowledged
    const auth = build([[3, 3, 'b']], common);
    const r = mergeLog(local, new Map(), auth);
    expect(r.overlap).toBe(true);
    expect(r.divergent.map((e) => e.version)).toEqual([ev(2, 3), ev(2, 4)]);
    expect(r.missing.get('a')).toEqual({ need: ev(1, 1), have: EVERSION_ZERO }); // back to 1'1
    expect(r.missing.get('b')!.need).toEqual(ev(3, 3)); // the authoritative newer write
    expect(r.removals).toEqual(['n']); // created only by a divergent entry
    expect(r.log.entries).toBe(auth.entries); // the member adopts the authoritative log
  });

  it('a divergent object the authoritative log also changed follows the authoritative entry', () => {
    const common = build([[1, 1, 'a']]);
    const local = build([[2, 2, 'a']], common);
    const auth = build([[3, 2, 'a', 'delete']], common);
    const r = mergeLog(local, new Map(), auth);
    expect(r.missing.has('a')).toBe(false);
    expect(r.removals).toEqual(['a']);
  });

  it('reports no overlap when the member is older than the authoritative tail', () => {
    const old = build([[1, 1, 'a']]);
    let auth = build([[1, 2, 'b'], [1, 3, 'c'], [1, 4, 'd']], old);
    auth = trimLog(auth, ev(1, 3), 10);
    const r = mergeLog(old, new Map(), auth);
    expect(r.overlap).toBe(false);
  });

  it('a lostDelete entry removes the object like a delete', () => {
    const common = build([[1, 1, 'a']]);
    const r = mergeLog(common, new Map(), build([[2, 2, 'a', 'lostDelete']], common));
    expect(r.missing.size).toBe(0);
    expect(r.removals).toEqual(['a']);
  });

  it('an empty member overlaps a never-trimmed log and misses everything live', () => {
    const auth = build([[1, 1, 'a'], [1, 2, 'b'], [1, 3, 'a', 'delete']]);
    const r = mergeLog(emptyLog(), new Map(), auth);
    expect(r.overlap).toBe(true);
    expect([...r.missing.keys()]).toEqual(['b']);
    expect(r.removals).toEqual(['a']);
  });

  it('keeps earlier missing items the authoritative log does not touch', () => {
    const common = build([[1, 1, 'a'], [1, 2, 'b']]);
    const missing = new Map<string, MissingItem>([['a', { need: ev(1, 1), have: EVERSION_ZERO }]]);
    const r = mergeLog(common, missing, build([[2, 3, 'c']], common));
    expect([...r.missing.keys()].sort()).toEqual(['a', 'c']);
  });

  it('property: merging the authoritative log into itself changes nothing', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.constantFrom('a', 'b', 'c'), fc.boolean()), { maxLength: 20 }), (steps) => {
      let e = 1;
      let v = 0;
      const items: [number, number, string, 'modify' | 'delete'][] = [];
      for (const [bump, o, del] of steps) {
        e += bump;
        items.push([e, ++v, o, del ? 'delete' : 'modify']);
      }
      const log = build(items);
      const r = mergeLog(log, new Map(), log);
      expect(r.overlap && r.divergent.length === 0 && r.missing.size === 0 && r.removals.length === 0).toBe(true);
    }));
  });
});

describe('codecs', () => {
  it('round-trip pg_log, pg_info, missing and the meta bundle', () => {
    const log = trimLog(build([[1, 1, 'a'], [1, 2, 'b'], [2, 3, 'a', 'delete'], [2, 4, 'b', 'lostDelete']]), ev(1, 1), 10);
    const e = new Encoder();
    encodePgLog(e, log);
    expect(decodePgLog(new Decoder(e.finish()))).toEqual(log);
    const info = {
      pgid: '1.a', lastUpdate: ev(2, 3), lastComplete: ev(1, 2), logTail: ev(1, 1), lastEpochStarted: 2, lastBackfill: 'obj-3',
      history: { epochCreated: 1, lastEpochStarted: 2, lastEpochClean: 1, sameIntervalSince: 2 },
    };
    const e2 = new Encoder();
    encodePgInfo(e2, info);
    expect(decodePgInfo(new Decoder(e2.finish()))).toEqual(info);
    const missing = new Map([['b', { need: ev(1, 2), have: EVERSION_ZERO }]]);
    const e3 = new Encoder();
    encodeMissing(e3, missing);
    expect(decodeMissing(new Decoder(e3.finish()))).toEqual(missing);
    const meta = { info: { ...info, lastBackfill: null }, log, missing };
    expect(decodePgMeta(encodePgMeta(meta))).toEqual(meta);
  });

  it('truncated or garbage bytes fail with E_DECODE, never out of range', () => {
    const bytes = encodePgMeta({ info: decodePgInfoSample(), log: build([[1, 1, 'a']]), missing: new Map() });
    for (let n = 0; n < bytes.length; n++) expect(() => decodePgMeta(bytes.subarray(0, n))).toThrow(/E_DECODE/);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
      try {
        decodePgMeta(junk);
      } catch (err) {
        expect(String(err)).toMatch(/E_DECODE|E_UNSUPPORTED/);
      }
    }));
  });
});

function decodePgInfoSample() {
  return {
    pgid: '1.0', lastUpdate: ev(1, 1), lastComplete: ev(1, 1), logTail: EVERSION_ZERO, lastEpochStarted: 1, lastBackfill: null,
    history: { epochCreated: 1, lastEpochStarted: 1, lastEpochClean: 1, sameIntervalSince: 1 },
  };
}

describe('pg_meta v1 sample bytes (later versions must still read them)', () => {
  const sample = {
    info: {
      pgid: '1.a', lastUpdate: ev(7, 12), lastComplete: ev(7, 11), logTail: ev(5, 9), lastEpochStarted: 7, lastBackfill: null,
      history: { epochCreated: 1, lastEpochStarted: 7, lastEpochClean: 6, sameIntervalSince: 7 },
    },
    log: {
      tail: ev(5, 9), head: ev(7, 12), entries: [
        { version: ev(5, 10), op: 'modify' as const, object: 'rbd_data.1', priorVersion: EVERSION_ZERO, reqid: { client: 'client.4', tid: 1 } },
        { version: ev(7, 11), op: 'delete' as const, object: 'rbd_data.1', priorVersion: ev(5, 10), reqid: null },
        { version: ev(7, 12), op: 'modify' as const, object: 'obj', priorVersion: EVERSION_ZERO, reqid: { client: 'client.4', tid: 3 } },
      ],
      dups: [{ reqid: { client: 'client.2', tid: 9 }, version: ev(5, 9) }],
    },
    missing: new Map([['obj', { need: ev(7, 12), have: EVERSION_ZERO }]]),
  };
  const V1_HEX =
    '01016601000001014600000003000000312e61070000000c00000000000000070000000b000000000000000500000009000000000000000700000000010110000000010000000700000006000000070000000101eb000000050000000900000000000000070000000c000000000000000300000001013c000000050000000a00000000000000000a0000007262645f646174612e310000000000000000000000000108000000636c69656e742e340100000000000000010128000000070000000b00000000000000010a0000007262645f646174612e31050000000a0000000000000000010135000000070000000c0000000000000000030000006f626a0000000000000000000000000108000000636c69656e742e3403000000000000000100000008000000636c69656e742e32090000000000000005000000090000000000000001012300000001000000030000006f626a070000000c00000000000000000000000000000000000000';

  it('decodes the committed v1 bytes and encodes the sample to exactly them', () => {
    const bytes = Uint8Array.from(Buffer.from(V1_HEX, 'hex'));
    expect(decodePgMeta(bytes)).toEqual(sample);
    expect(Buffer.from(encodePgMeta(sample)).toString('hex')).toBe(V1_HEX);
  });
});
