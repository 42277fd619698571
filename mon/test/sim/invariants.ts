/**
 * Raft's safety properties (Raft paper Fig. 3), checked by the simulator as it runs:
 * - Election safety: at most one leader per term.
 * - Log matching: two logs holding an entry with the same index and term hold the same
 *   entry there and agree on the term of the previous one (so, inductively, on the prefix).
 * - Leader completeness: an entry committed in term T is in the log of every leader of a
 *   term > T.
 * - State-machine safety: no two nodes apply different entries at the same index.
 *
 * Each observation is O(new data); violations are collected as messages (never thrown, so
 * the simulator can print the seed and the trace).
 */
import type { Entry, NodeId } from '../../src/raft/types.ts';

const dataKeys = new WeakMap<Uint8Array, string>();

/** A string identity for an entry's payload. */
function dataKey(e: Entry): string {
  let k = dataKeys.get(e.data);
  if (k === undefined) {
    k = `${e.type}:${Buffer.from(e.data).toString('latin1')}`;
    dataKeys.set(e.data, k);
  }
  return k;
}

/** A view of one node's persisted log. */
export interface LogView {
  firstIndex(): number;
  lastIndex(): number;
  /** Term at `index` or null if compacted/unavailable (index firstIndex-1 is the snapshot's). */
  termAt(index: number): number | null;
}

export class Invariants {
  readonly violations: string[] = [];
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** (index:term) → payload and the term of the previous entry in the log that held it. */
  private readonly logEntries = new Map<string, { key: string; prevTerm: number | null; node: NodeId }>();
  /** Applied (hence committed) entries: index → term, payload, and an upper bound of the term it was committed in. */
  private readonly committed = new Map<number, { term: number; key: string; commitTermBound: number; node: NodeId }>();
  maxCommitted = 0;
  /** Leader completeness cursor per "node@term". */
  private readonly leaderCursor = new Map<string, number>();

  private fail(msg: string): void {
    if (this.violations.length < 20) this.violations.push(msg);
  }

  /** Election safety: `node` is leader in `term`. */
  observeLeader(node: NodeId, term: number): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev === undefined) this.leaderOfTerm.set(term, node);
    else if (prev !== node) this.fail(`election safety: ${prev} and ${node} are both leaders of term ${term}`);
  }

  /** Log matching: `node` persisted `entries`; `log` is its log after persisting them. */
  observePersisted(node: NodeId, entries: readonly Entry[], log: LogView): void {
    for (const e of entries) {
      const prevTerm = log.termAt(e.index - 1);
      const k = `${e.index}:${e.term}`;
      const key = dataKey(e);
      const seen = this.logEntries.get(k);
      if (seen === undefined) {
        this.logEntries.set(k, { key, prevTerm, node });
        continue;
      }
      if (seen.key !== key) this.fail(`log matching: entry ${k} differs between ${seen.node} and ${node}`);
      if (seen.prevTerm !== null && prevTerm !== null && seen.prevTerm !== prevTerm) {
        this.fail(`log matching: entry ${k} follows term ${seen.prevTerm} on ${seen.node} but term ${prevTerm} on ${node}`);
      }
    }
  }

  /** State-machine safety: `node` (currently in `nodeTerm`) applied `e`. */
  observeApplied(node: NodeId, e: Entry, nodeTerm: number): void {
    const key = dataKey(e);
    const seen = this.committed.get(e.index);
    if (seen === undefined) {
      this.committed.set(e.index, { term: e.term, key, commitTermBound: nodeTerm, node });
      if (e.index > this.maxCommitted) this.maxCommitted = e.index;
      return;
    }
    if (seen.term !== e.term || seen.key !== key) {
      this.fail(`state-machine safety: index ${e.index} applied as term ${seen.term} on ${seen.node} but term ${e.term} on ${node}`);
    }
  }

  /** A snapshot at (`index`, `term`) installed on `node` must agree with what was applied there. */
  observeSnapshot(node: NodeId, index: number, term: number): void {
    const seen = this.committed.get(index);
    if (seen !== undefined && seen.term !== term) {
      this.fail(`snapshot: ${node} installed a snapshot at ${index} with term ${term}, but term ${seen.term} was applied there`);
    }
  }

  /**
   * Leader completeness: `node`, leader of `term` with persisted `log`, must hold every entry
   * committed in an earlier term. Called whenever the leader's log is fully persisted.
   */
  checkLeaderCompleteness(node: NodeId, term: number, log: LogView): void {
    const ck = `${node}@${term}`;
    const from = (this.leaderCursor.get(ck) ?? 1) + 1; // index 1 is the bootstrap snapshot
    const first = log.firstIndex();
    const last = log.lastIndex();
    let i = from;
    for (; i <= this.maxCommitted; i++) {
      const c = this.committed.get(i);
      if (c === undefined) break; // not contiguous yet (applied out of view); retry later
      if (c.commitTermBound >= term) continue;
      if (i > last) {
        this.fail(`leader completeness: ${node} leads term ${term} but lacks committed index ${i} (last ${last})`);
        break;
      }
      if (i < first) continue; // in its snapshot
      const t = log.termAt(i);
      if (t !== c.term) {
        this.fail(`leader completeness: ${node} leads term ${term} with term ${t} at committed index ${i} (committed term ${c.term})`);
        break;
      }
    }
    this.leaderCursor.set(ck, i - 1);
  }

  /** The applied term at `index`, if known (tests). */
  committedTerm(index: number): number | undefined {
    return this.committed.get(index)?.term;
  }
}
