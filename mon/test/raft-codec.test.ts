import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AspenError } from '@aspen/shared/errors.ts';
import { Encoder } from '@aspen/shared/codec.ts';
import {
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeMessageBatch,
  decodeSnapshot,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeMessageBatch,
  encodeSnapshot,
  messageSizeBytes,
} from '../src/raft/codec.ts';
import type { ConfState, Entry, HardState, Message, MessageType, Snapshot } from '../src/raft/types.ts';

const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), '..', 'testdata', 'raft-codec');
/** Set ASPEN_UPDATE_GOLDEN=1 to (re)write missing sample files; existing files are never overwritten. */
const UPDATE_GOLDEN = process.env['ASPEN_UPDATE_GOLDEN'] === '1';

// ---------------------------------------------------------------------------------------------
// Arbitraries

const nodeId = fc.string({ minLength: 1, maxLength: 12 });
const u53 = fc.maxSafeNat();
const bytes = fc.uint8Array({ maxLength: 40 });
const entryArb: fc.Arbitrary<Entry> = fc.record({
  term: u53,
  index: u53,
  type: fc.constantFrom('normal' as const, 'conf_change' as const),
  data: bytes,
});
const hardStateArb: fc.Arbitrary<HardState> = fc.record({ term: u53, vote: fc.option(nodeId, { nil: null }), commit: u53 });
const confStateArb: fc.Arbitrary<ConfState> = fc.record({ voters: fc.array(nodeId, { maxLength: 5 }), learners: fc.array(nodeId, { maxLength: 3 }) });
const snapshotArb: fc.Arbitrary<Snapshot> = fc.record({
  metadata: fc.record({ index: u53, term: u53, confState: confStateArb }),
  data: bytes,
});
const MESSAGE_TYPES: MessageType[] = [
  'MsgHup', 'MsgBeat', 'MsgProp', 'MsgApp', 'MsgAppResp', 'MsgVote', 'MsgVoteResp', 'MsgPreVote', 'MsgPreVoteResp',
  'MsgSnap', 'MsgHeartbeat', 'MsgHeartbeatResp', 'MsgUnreachable', 'MsgSnapStatus', 'MsgTransferLeader',
  'MsgTimeoutNow', 'MsgReadIndex', 'MsgReadIndexResp',
];
const messageArb: fc.Arbitrary<Message> = fc.record({
  type: fc.constantFrom(...MESSAGE_TYPES),
  from: nodeId,
  to: nodeId,
  term: u53,
  logTerm: u53,
  index: u53,
  entries: fc.array(entryArb, { maxLength: 4 }),
  commit: u53,
  reject: fc.boolean(),
  rejectHint: u53,
  snapshot: fc.option(snapshotArb, { nil: null }),
  context: bytes,
});

/** Byte arrays compared by content (subarray views vs fresh Uint8Array are equal if bytes are). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

// One codec table drives the round-trip, garbage and golden tests.
interface Codec<T> {
  name: string;
  arb: fc.Arbitrary<T>;
  encode: (v: T) => Uint8Array;
  decode: (b: Uint8Array) => T;
}
const codecs: Codec<unknown>[] = [
  { name: 'entry', arb: entryArb, encode: encodeEntry, decode: decodeEntry },
  { name: 'hardState', arb: hardStateArb, encode: encodeHardState, decode: decodeHardState },
  { name: 'confState', arb: confStateArb, encode: encodeConfState, decode: decodeConfState },
  { name: 'snapshot', arb: snapshotArb, encode: encodeSnapshot, decode: decodeSnapshot },
  { name: 'message', arb: messageArb, encode: encodeMessage, decode: decodeMessage },
  { name: 'messageBatch', arb: fc.array(messageArb, { maxLength: 3 }), encode: encodeMessageBatch, decode: decodeMessageBatch },
] as Codec<unknown>[];

function expectDecodeError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AspenError);
    expect(['E_DECODE', 'E_UNSUPPORTED']).toContain((err as AspenError).code);
    return;
  }
}

describe('raft codec', () => {
  for (const c of codecs) {
    it(`${c.name}: decode(encode(x)) equals x and encode is deterministic (property)`, () => {
      fc.assert(
        fc.property(c.arb, (x) => {
          const b = c.encode(x);
          const y = c.decode(b);
          expect(plain(y)).toEqual(plain(x));
          expect(Array.from(c.encode(y))).toEqual(Array.from(b));
        }),
      );
    });

    it(`${c.name}: garbage, truncated or bit-flipped input throws only E_DECODE/E_UNSUPPORTED (property)`, () => {
      fc.assert(
        fc.property(c.arb, fc.uint8Array({ maxLength: 96 }), fc.nat(), fc.nat(), (x, garbage, cutSeed, flipSeed) => {
          const good = c.encode(x);
          expectDecodeError(() => c.decode(garbage));
          // Every strict prefix is truncated: it must throw, never decode to something.
          const cut = cutSeed % good.length;
          expect(() => c.decode(good.subarray(0, cut))).toThrow(AspenError);
          expectDecodeError(() => c.decode(good.subarray(0, cut)));
          const flipped = good.slice();
          const at = flipSeed % flipped.length;
          flipped[at] = flipped[at]! ^ (1 << (flipSeed % 8));
          expectDecodeError(() => c.decode(flipped));
          // Trailing bytes are refused by whole-buffer decoders.
          const longer = new Uint8Array(good.length + 1);
          longer.set(good);
          expect(() => c.decode(longer)).toThrow(/E_DECODE/);
        }),
      );
    });
  }

  it('messageSizeBytes equals the encoded length exactly (property)', () => {
    fc.assert(fc.property(messageArb, (m) => messageSizeBytes(m) === encodeMessage(m).length));
  });

  it('refuses hostile lengths and unknown codes with E_DECODE', () => {
    // An entry whose data length claims 4 GiB.
    const hostile = new Encoder().struct(1, 1, (e) => e.u53(1).u53(1).u8(0).u32(0xffffffff)).finish();
    expect(() => decodeEntry(hostile)).toThrow(/E_DECODE/);
    const badType = new Encoder().struct(1, 1, (e) => e.u53(1).u53(1).u8(7).bytes(new Uint8Array())).finish();
    expect(() => decodeEntry(badType)).toThrow(/unknown entry type code 7/);
    const badMsg = new Encoder().struct(1, 1, (e) => e.u8(200)).finish();
    expect(() => decodeMessage(badMsg)).toThrow(/unknown type code 200/);
    const emptyVote = new Encoder().struct(1, 1, (e) => e.u53(1).u8(1).string('').u53(0)).finish();
    expect(() => decodeHardState(emptyVote)).toThrow(/empty node id/);
    const tooBig = new Encoder().struct(1, 1, (e) => e.u64(1n << 60n)).finish();
    expect(() => decodeHardState(tooBig)).toThrow(/E_DECODE/);
    // A newer incompatible writer.
    const future = new Encoder().struct(9, 9, (e) => e.u8(0)).finish();
    expect(() => decodeEntry(future)).toThrow(/E_UNSUPPORTED/);
  });

  it('reads a newer compatible writer that appended fields (forward compat)', () => {
    const v2 = new Encoder()
      .struct(2, 1, (e) => e.u53(3).u53(10).u8(0).bytes(new Uint8Array([1, 2])).string('a v2 field'))
      .finish();
    expect(plain(decodeEntry(v2))).toEqual(plain({ term: 3, index: 10, type: 'normal', data: new Uint8Array([1, 2]) }));
  });
});

// ---------------------------------------------------------------------------------------------
// Saved sample encodings (CONVENTIONS.md item 4): bytes written by v1 that every later build
// must still decode to the same values. Never edit an existing .hex file; add new ones.

const te = new TextEncoder();
const sampleEntry: Entry = { term: 7, index: 42, type: 'normal', data: te.encode('osd pool create rbd 64') };
const sampleConfState: ConfState = { voters: ['a', 'b', 'c'], learners: ['d'] };
const sampleSnapshot: Snapshot = { metadata: { index: 100, term: 6, confState: sampleConfState }, data: te.encode('state-machine-image') };
const samples: { file: string; value: unknown; decode: (b: Uint8Array) => unknown }[] = [
  { file: 'entry.v1.hex', value: sampleEntry, decode: decodeEntry },
  { file: 'entry-conf-change.v1.hex', value: { term: 8, index: 43, type: 'conf_change', data: te.encode('opaque conf change bytes') }, decode: decodeEntry },
  { file: 'hard-state.v1.hex', value: { term: 9, vote: 'b', commit: 41 }, decode: decodeHardState },
  { file: 'hard-state-novote.v1.hex', value: { term: 0, vote: null, commit: 0 }, decode: decodeHardState },
  { file: 'conf-state.v1.hex', value: sampleConfState, decode: decodeConfState },
  { file: 'snapshot.v1.hex', value: sampleSnapshot, decode: decodeSnapshot },
  {
    file: 'message-app.v1.hex',
    value: {
      type: 'MsgApp', from: 'a', to: 'b', term: 7, logTerm: 7, index: 41, entries: [sampleEntry], commit: 40,
      reject: false, rejectHint: 0, snapshot: null, context: new Uint8Array(),
    },
    decode: decodeMessage,
  },
  {
    file: 'message-snap.v1.hex',
    value: {
      type: 'MsgSnap', from: 'a', to: 'c', term: 7, logTerm: 0, index: 0, entries: [], commit: 100,
      reject: false, rejectHint: 0, snapshot: sampleSnapshot, context: new Uint8Array(),
    },
    decode: decodeMessage,
  },
  {
    file: 'message-batch.v1.hex',
    value: [
      { type: 'MsgAppResp', from: 'b', to: 'a', term: 7, logTerm: 6, index: 30, entries: [], commit: 0, reject: true, rejectHint: 29, snapshot: null, context: new Uint8Array() },
      { type: 'MsgReadIndex', from: 'b', to: 'a', term: 7, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: te.encode('req-1') },
    ],
    decode: decodeMessageBatch,
  },
];

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').replace(/(.{64})/g, '$1\n').trim() + '\n';
}
function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex'));
}

describe('raft codec saved samples (compat)', () => {
  const encoders: Record<string, (v: never) => Uint8Array> = {
    'entry.v1.hex': encodeEntry,
    'entry-conf-change.v1.hex': encodeEntry,
    'hard-state.v1.hex': encodeHardState,
    'hard-state-novote.v1.hex': encodeHardState,
    'conf-state.v1.hex': encodeConfState,
    'snapshot.v1.hex': encodeSnapshot,
    'message-app.v1.hex': encodeMessage,
    'message-snap.v1.hex': encodeMessage,
    'message-batch.v1.hex': encodeMessageBatch,
  };
  for (const s of samples) {
    it(`${s.file} still decodes to its value`, () => {
      const path = join(TESTDATA, s.file);
      if (!existsSync(path)) {
        expect(UPDATE_GOLDEN, `${path} missing; run with ASPEN_UPDATE_GOLDEN=1 to create it`).toBe(true);
        mkdirSync(TESTDATA, { recursive: true });
        writeFileSync(path, toHex(encoders[s.file]!(s.value as never)));
      }
      const saved = fromHex(readFileSync(path, 'utf8'));
      expect(plain(s.decode(saved))).toEqual(plain(s.value));
    });
  }
});
