/**
 * Pending ReadIndex requests on the leader (thesis §6.4; etcd-raft read_only.go, ReadOnlySafe).
 *
 * A read arriving at commit index C is recorded with C; the leader then sends heartbeats
 * carrying the request's context, and once a majority of voters (counting itself) echoed that
 * context the leader knows it was still leader when the read arrived, so the read may be
 * served once the state machine applied C. Requests are answered in arrival order: an ack for
 * a later request confirms every earlier one.
 */
import { assert } from '@aspen/shared';
import type { Message, NodeId } from '../types.ts';
import { contextKey } from './util.ts';

/** One pending read: the commit index when it arrived, the originating message, the acks so far. */
export interface ReadIndexStatus {
  readonly index: number;
  readonly req: Message;
  readonly acks: Set<NodeId>;
}

/** Limit of pending ReadIndex requests on a leader; beyond it new reads are dropped. */
export const READ_INDEX_PENDING_MAX = 4096;

/** The leader's queue of ReadIndex requests awaiting heartbeat confirmation. */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Records a read request `m` (context in `m.context`) that arrived at commit `index`. Returns false if dropped. */
  addRequest(index: number, m: Message): boolean {
    const key = contextKey(m.context);
    if (this.pending.has(key)) return false;
    if (this.queue.length >= READ_INDEX_PENDING_MAX) return false;
    this.pending.set(key, { index, req: m, acks: new Set() });
    this.queue.push(key);
    assert(this.queue.length === this.pending.size, 'read-only queue and map agree');
    return true;
  }

  /** Records a heartbeat ack from `id` for `ctx`; returns the ack set, or null for an unknown context. */
  recvAck(id: NodeId, ctx: Uint8Array): ReadonlySet<NodeId> | null {
    const rs = this.pending.get(contextKey(ctx));
    if (!rs) return null;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Removes and returns every request up to and including `ctx` (all now confirmed). */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const keys = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of keys) {
      const rs = this.pending.get(k);
      assert(rs !== undefined, 'queued read request must be pending');
      this.pending.delete(k);
      out.push(rs);
    }
    assert(this.queue.length === this.pending.size, 'read-only queue and map agree after advance');
    return out;
  }

  /** Context of the newest pending request (piggybacked on periodic heartbeats), or null. */
  lastPendingRequestCtx(): Uint8Array | null {
    const key = this.queue[this.queue.length - 1];
    if (key === undefined) return null;
    return this.pending.get(key)?.req.context ?? null;
  }

  /** Requests awaiting confirmation. */
  get pendingCount(): number {
    return this.queue.length;
  }
}
