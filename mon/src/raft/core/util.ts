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

const EMPTY = new Uint8Array(0);

/** Fields of a {@link Message} that must always be given; the rest default to zero/empty. */
export type MessageInit = Partial<Message> & { type: MessageType; from: NodeId; to: NodeId };

/** Builds a complete {@link Message}, defaulting unused fields to zero/empty as types.ts requires. */
export function makeMessage(init: MessageInit): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: EMPTY,
    ...init,
  };
}

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
