/**
 * Binary codecs for the Raft types of `types.ts`: what the storage writes to disk and the
 * transport sends on the wire (CONVENTIONS.md item 4). (ConfChange, the `data` of a
 * conf_change entry, has its codec in `confchange.ts`.)
 *
 * Every structure is a versioned struct (`Encoder.struct`: u8 version, u8 compatVersion,
 * u32 body length, body), so a later build may append fields and still be read by this one,
 * and saved sample bytes under `mon/testdata/raft-codec/` must keep decoding (see
 * `mon/test/raft-codec.test.ts`). Integers are little-endian; indexes and terms are u53
 * (u64 on the wire, at most 2^53-1); node ids are non-empty UTF-8 strings of at most {@link NODE_ID_MAX_LENGTH} UTF-16 code units.
 *
 * Decoding is total over hostile input: truncated, oversized or malformed bytes throw
 * `AspenError('E_DECODE')`; a struct that needs a newer reader throws `AspenError('E_UNSUPPORTED')`.
 * Nothing else escapes. Decoded `data`/`context` byte arrays alias the input buffer (no copy):
 * callers that keep a decoded value long after the buffer (caches) should pass a buffer they own.
 *
 * Encoding a value that violates the types (negative index, unknown entry type, empty node
 * id) is a programmer error and fails an assertion.
 */
import { assert } from '@aspen/shared/assert.ts';
import { Decoder, Encoder } from '@aspen/shared/codec.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import type { ConfState, Entry, EntryType, HardState, Message, MessageType, NodeId, Snapshot } from './types.ts';

/** Current encoding versions; bump when appending fields (and keep compat at 1 while old readers can skip them). */
export const RAFT_CODEC_VERSIONS = {
  entry: 1,
  hardState: 1,
  confState: 1,
  snapshot: 1,
  message: 1,
  messageBatch: 1,
} as const;

/** Longest node id accepted, UTF-16 code units (mon ids are at most 64 characters, see `monId`). */
export const NODE_ID_MAX_LENGTH = 256;

// Wire codes are part of the format: never renumber, only append.
const ENTRY_TYPE_CODES: Readonly<Record<EntryType, number>> = { normal: 0, conf_change: 1 };
const ENTRY_TYPES = invertCodes(ENTRY_TYPE_CODES);


// A Record (not an array) so adding a MessageType without a wire code fails to compile.
const MESSAGE_TYPE_CODES: Readonly<Record<MessageType, number>> = {
  MsgHup: 0,
  MsgBeat: 1,
  MsgProp: 2,
  MsgApp: 3,
  MsgAppResp: 4,
  MsgVote: 5,
  MsgVoteResp: 6,
  MsgPreVote: 7,
  MsgPreVoteResp: 8,
  MsgSnap: 9,
  MsgHeartbeat: 10,
  MsgHeartbeatResp: 11,
  MsgUnreachable: 12,
  MsgSnapStatus: 13,
  MsgTransferLeader: 14,
  MsgTimeoutNow: 15,
  MsgReadIndex: 16,
  MsgReadIndexResp: 17,
};
const MESSAGE_TYPES: readonly (MessageType | undefined)[] = invertCodes(MESSAGE_TYPE_CODES);

function invertCodes<K extends string>(codes: Readonly<Record<K, number>>): (K | undefined)[] {
  const out: (K | undefined)[] = [];
  for (const [k, code] of Object.entries(codes) as [K, number][]) {
    assert(out[code] === undefined, `duplicate wire code ${code}`);
    out[code] = k;
  }
  return out;
}

function decodeError(message: string): AspenError {
  return new AspenError('E_DECODE', message);
}

// ---------------------------------------------------------------------------------------------
// Field helpers (encode side asserts, decode side validates)

function writeNodeId(e: Encoder, id: NodeId): void {
  assert(id.length > 0 && id.length <= NODE_ID_MAX_LENGTH, `node id must have 1..${NODE_ID_MAX_LENGTH} characters`);
  e.string(id);
}

function readNodeId(d: Decoder, what: string): NodeId {
  const id = d.string();
  if (id.length === 0) throw decodeError(`${what}: empty node id`);
  if (id.length > NODE_ID_MAX_LENGTH) throw decodeError(`${what}: node id of ${id.length} characters exceeds ${NODE_ID_MAX_LENGTH}`);
  return id;
}

/** Writes an optional node id: u8 0, or u8 1 then the id (the empty string is not a valid id). */
function writeOptionalNodeId(e: Encoder, id: NodeId | null): void {
  e.optional(id ?? undefined, writeNodeId);
}

function readOptionalNodeId(d: Decoder, what: string): NodeId | null {
  return d.optional((dd) => readNodeId(dd, what)) ?? null;
}

// ---------------------------------------------------------------------------------------------
// Entry

/** Appends the encoding of `entry` to `e` (struct v1: u53 term, u53 index, u8 type, bytes data). */
export function writeEntry(e: Encoder, entry: Entry): void {
  const code = ENTRY_TYPE_CODES[entry.type];
  assert(code !== undefined, `unknown entry type ${String(entry.type)}`);
  e.struct(RAFT_CODEC_VERSIONS.entry, 1, (b) => {
    b.u53(entry.term).u53(entry.index).u8(code).bytes(entry.data);
  });
}

/** Reads one entry at the decoder's position. @throws AspenError E_DECODE, E_UNSUPPORTED */
export function readEntry(d: Decoder): Entry {
  return d.struct(RAFT_CODEC_VERSIONS.entry, 'raft entry', (b) => {
    const term = b.u53();
    const index = b.u53();
    const code = b.u8();
    const type = ENTRY_TYPES[code];
    if (type === undefined) throw decodeError(`raft entry ${index}: unknown entry type code ${code}`);
    const data = b.bytes();
    return { term, index, type, data };
  });
}

/** The encoding of one entry (a fresh buffer). */
export function encodeEntry(entry: Entry): Uint8Array {
  const e = new Encoder(32 + entry.data.length);
  writeEntry(e, entry);
  return e.finish();
}

/** Decodes a whole buffer holding exactly one entry. @throws AspenError E_DECODE (also on trailing bytes), E_UNSUPPORTED */
export function decodeEntry(bytes: Uint8Array): Entry {
  return decodeWhole(bytes, 'raft entry', readEntry);
}

// ---------------------------------------------------------------------------------------------
// HardState

/** Appends `hs` (struct v1: u53 term, optional node id vote, u53 commit). */
export function writeHardState(e: Encoder, hs: HardState): void {
  e.struct(RAFT_CODEC_VERSIONS.hardState, 1, (b) => {
    b.u53(hs.term);
    writeOptionalNodeId(b, hs.vote);
    b.u53(hs.commit);
  });
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function readHardState(d: Decoder): HardState {
  return d.struct(RAFT_CODEC_VERSIONS.hardState, 'raft hard state', (b) => {
    const term = b.u53();
    const vote = readOptionalNodeId(b, 'hard state vote');
    const commit = b.u53();
    return { term, vote, commit };
  });
}

export function encodeHardState(hs: HardState): Uint8Array {
  const e = new Encoder(64);
  writeHardState(e, hs);
  return e.finish();
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function decodeHardState(bytes: Uint8Array): HardState {
  return decodeWhole(bytes, 'raft hard state', readHardState);
}

// ---------------------------------------------------------------------------------------------
// ConfState

/** Appends `cs` (struct v1: array of voter ids, array of learner ids). */
export function writeConfState(e: Encoder, cs: ConfState): void {
  e.struct(RAFT_CODEC_VERSIONS.confState, 1, (b) => {
    b.array(cs.voters, writeNodeId);
    b.array(cs.learners, writeNodeId);
  });
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function readConfState(d: Decoder): ConfState {
  return d.struct(RAFT_CODEC_VERSIONS.confState, 'raft conf state', (b) => {
    const voters = b.array((bb) => readNodeId(bb, 'conf state voter'));
    const learners = b.array((bb) => readNodeId(bb, 'conf state learner'));
    return { voters, learners };
  });
}

export function encodeConfState(cs: ConfState): Uint8Array {
  const e = new Encoder(64);
  writeConfState(e, cs);
  return e.finish();
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function decodeConfState(bytes: Uint8Array): ConfState {
  return decodeWhole(bytes, 'raft conf state', readConfState);
}

// ---------------------------------------------------------------------------------------------
// Snapshot

/** Appends `snap` (struct v1: u53 index, u53 term, ConfState, bytes data). */
export function writeSnapshot(e: Encoder, snap: Snapshot): void {
  e.struct(RAFT_CODEC_VERSIONS.snapshot, 1, (b) => {
    b.u53(snap.metadata.index).u53(snap.metadata.term);
    writeConfState(b, snap.metadata.confState);
    b.bytes(snap.data);
  });
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function readSnapshot(d: Decoder): Snapshot {
  return d.struct(RAFT_CODEC_VERSIONS.snapshot, 'raft snapshot', (b) => {
    const index = b.u53();
    const term = b.u53();
    const confState = readConfState(b);
    const data = b.bytes();
    return { metadata: { index, term, confState }, data };
  });
}

export function encodeSnapshot(snap: Snapshot): Uint8Array {
  const e = new Encoder(64 + snap.data.length);
  writeSnapshot(e, snap);
  return e.finish();
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  return decodeWhole(bytes, 'raft snapshot', readSnapshot);
}

// ---------------------------------------------------------------------------------------------
// Message

/**
 * Appends `m` (struct v1: u8 type code, from, to, u53 term, u53 logTerm, u53 index,
 * array of entries, u53 commit, bool reject, u53 rejectHint, optional snapshot, bytes context).
 * Local-only types (MsgHup, MsgUnreachable, …) encode too, so the simulator can record them.
 */
export function writeMessage(e: Encoder, m: Message): void {
  const code = MESSAGE_TYPE_CODES[m.type];
  assert(code !== undefined, `unknown message type ${String(m.type)}`);
  e.struct(RAFT_CODEC_VERSIONS.message, 1, (b) => {
    b.u8(code);
    writeNodeId(b, m.from);
    writeNodeId(b, m.to);
    b.u53(m.term).u53(m.logTerm).u53(m.index);
    b.array(m.entries, writeEntry);
    b.u53(m.commit).bool(m.reject).u53(m.rejectHint);
    b.optional(m.snapshot ?? undefined, writeSnapshot);
    b.bytes(m.context);
  });
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function readMessage(d: Decoder): Message {
  return d.struct(RAFT_CODEC_VERSIONS.message, 'raft message', (b) => {
    const code = b.u8();
    const type = MESSAGE_TYPES[code];
    if (type === undefined) throw decodeError(`raft message: unknown type code ${code}`);
    const from = readNodeId(b, 'message from');
    const to = readNodeId(b, 'message to');
    const term = b.u53();
    const logTerm = b.u53();
    const index = b.u53();
    const entries = b.array(readEntry);
    const commit = b.u53();
    const reject = b.bool();
    const rejectHint = b.u53();
    const snapshot = b.optional(readSnapshot) ?? null;
    const context = b.bytes();
    return { type, from, to, term, logTerm, index, entries, commit, reject, rejectHint, snapshot, context };
  });
}

/** Bytes an encoded message takes, computed without encoding (for batching limits). */
export function messageSizeBytes(m: Message): number {
  const header = 6;
  const str = (s: string): number => 4 + Buffer.byteLength(s, 'utf8');
  let n = header + 1 + str(m.from) + str(m.to) + 8 * 3 + 4 + 8 + 1 + 8 + 1 + 4 + m.context.length;
  for (const ent of m.entries) n += header + 8 + 8 + 1 + 4 + ent.data.length;
  if (m.snapshot !== null) {
    const cs = m.snapshot.metadata.confState;
    n += header + 8 + 8 + header + 4 + 4 + 4 + m.snapshot.data.length;
    for (const id of [...cs.voters, ...cs.learners]) n += str(id);
  }
  return n;
}

export function encodeMessage(m: Message): Uint8Array {
  const e = new Encoder(messageSizeBytes(m));
  writeMessage(e, m);
  return e.finish();
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function decodeMessage(bytes: Uint8Array): Message {
  return decodeWhole(bytes, 'raft message', readMessage);
}

/**
 * A batch of messages as one transport frame (struct v1: array of messages): the transport
 * writes one batch per stream write.
 */
export function encodeMessageBatch(messages: readonly Message[]): Uint8Array {
  let size = 10;
  for (const m of messages) size += messageSizeBytes(m);
  const e = new Encoder(size);
  e.struct(RAFT_CODEC_VERSIONS.messageBatch, 1, (b) => {
    b.array(messages, writeMessage);
  });
  return e.finish();
}

/** @throws AspenError E_DECODE, E_UNSUPPORTED */
export function decodeMessageBatch(bytes: Uint8Array): Message[] {
  return decodeWhole(bytes, 'raft message batch', (d) =>
    d.struct(RAFT_CODEC_VERSIONS.messageBatch, 'raft message batch', (b) => b.array(readMessage)),
  );
}

// ---------------------------------------------------------------------------------------------

function decodeWhole<T>(bytes: Uint8Array, what: string, read: (d: Decoder) => T): T {
  const d = new Decoder(bytes);
  const v = read(d);
  d.done(what);
  return v;
}
