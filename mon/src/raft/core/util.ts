/**
 * Small pure helpers shared by the Raft core: message construction, entry sizing and
 * size-limited slicing (etcd-raft util.go `limitSize`).
 */
import { assert } from '@aspen/shared';
import type { Entry, Message, MessageType, NodeId } from '../types.ts';

/** Bytes of framing we charge per entry on top of its payload when batching (approximate wire overhead). */
export const ENTRY_OVERHEAD_BYTES = 24;

/** The size an entry counts for in batching and the uncommitted-size limit, in bytes. */
export function entrySizeBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

/** Total {@link entrySizeBytes} of `ents`. */
export function entriesSizeBytes(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += entrySizeBytes(e);
  return n;
}

/**
 * The longest prefix of `ents` whose total size is at most `maxSizeBytes`, but always at least
 * one entry when `ents` is non-empty (so a single oversized entry still makes progress).
 */
export function limitSize<T extends Entry>(ents: T[], maxSizeBytes: number): T[] {
  if (ents.length === 0) return ents;
  let size = entrySizeBytes(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySizeBytes(ents[n]!);
    if (size > maxSizeBytes) break;
  }
  const out = n === ents.length ? ents : ents.slice(0, n);
  assert(out.length >= 1 && out.length <= ents.length, 'limitSize keeps at least one entry');
  return out;
}

/**
 * The end (exclusive) of the longest run `arr[start..end)` whose size, added to `usedBytes`
 * already taken, stays within `maxSizeBytes` — at least one entry when `usedBytes` is 0.
 * Lets callers copy only what they send (a lagging follower must not cost O(log) per message).
 */
export function limitedEnd(arr: readonly Entry[], start: number, end: number, maxSizeBytes: number, usedBytes = 0): number {
  assert(start >= 0 && start <= end && end <= arr.length, `limitedEnd range [${start}, ${end}) out of bounds`);
  let size = usedBytes;
  let i = start;
  for (; i < end; i++) {
    size += entrySizeBytes(arr[i]!);
    if (size > maxSizeBytes && !(i === start && usedBytes === 0)) break;
  }
  assert(i >= start && i <= end, 'limitedEnd stays in range');
  return i;
}

const EMPTY = new Uint8Array(0);

/** Fields of a {@link Message} that must always be given; the rest default to zero/empty. */
export type MessageInit = Partial<Message> & { type: MessageType; from: NodeId; to: NodeId };

/** Builds a complete {@link Message}, defaulting unused fields to zero/empty as types.ts requires. */
export function makeMessage(init: MessageInit): Message {
  return buildMessage(init, init.from, init.term ?? 0);
}

/**
 * Builds a message from `init` with the given sender and term. One object shape for every
 * message (no spreads): it is on the hot path of replication.
 */
export function buildMessage(init: Omit<MessageInit, 'from'>, from: NodeId, term: number): Message {
  return {
    type: init.type,
    from,
    to: init.to,
    term,
    logTerm: init.logTerm ?? 0,
    index: init.index ?? 0,
    entries: init.entries ?? NO_ENTRIES,
    commit: init.commit ?? 0,
    reject: init.reject ?? false,
    rejectHint: init.rejectHint ?? 0,
    snapshot: init.snapshot ?? null,
    context: init.context ?? EMPTY,
  };
}

const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

/** Message types that only ever come from the local node, never from the wire. */
export function isLocalMessage(t: MessageType): boolean {
  return t === 'MsgHup' || t === 'MsgBeat' || t === 'MsgUnreachable' || t === 'MsgSnapStatus';
}

/** Message types that answer a request (their sender must be a known peer to matter). */
export function isResponseMessage(t: MessageType): boolean {
  return (
    t === 'MsgAppResp' ||
    t === 'MsgVoteResp' ||
    t === 'MsgHeartbeatResp' ||
    t === 'MsgUnreachable' ||
    t === 'MsgPreVoteResp'
  );
}

/** A stable string key for opaque byte contexts (ReadIndex request ids). */
export function contextKey(ctx: Uint8Array): string {
  let s = '';
  for (const b of ctx) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Byte-wise equality of two contexts. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
