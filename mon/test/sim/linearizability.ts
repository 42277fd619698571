/**
 * A linearizability checker for key/value histories (Wing & Gong 1993, with the
 * memoisation of Lowe 2017 as in Porcupine): depth-first search over linearization orders,
 * caching (set of linearized ops, model state) pairs already explored. Histories are
 * partitioned per key (operations on different keys commute: P-compositionality), so each
 * search is over one register.
 *
 * An operation whose outcome is unknown (the client timed out) has an infinite response time
 * and accepts any output: it may take effect at any point after its invocation, including
 * "never" (= after everything else).
 */
import type { KvOp, KvResult } from './kv.ts';

export interface HistoryOp {
  readonly id: number;
  readonly clientId: string;
  readonly op: KvOp;
  /** Invocation time. */
  readonly call: number;
  /** Response time; Infinity when the outcome is unknown. */
  readonly ret: number;
  /** The observed result; null when unknown. */
  readonly result: KvResult | null;
}

type RegState = string | null;

/** One step of the register model: the new state, or undefined if `result` is impossible. */
function stepRegister(state: RegState, op: KvOp, result: KvResult | null): RegState | undefined {
  switch (op.kind) {
    case 'put':
      return op.value;
    case 'get':
      if (result === null) return state;
      return result.kind === 'get' && result.value === state ? state : undefined;
    case 'cas': {
      const swapped = state === op.expected;
      if (result !== null && (result.kind !== 'cas' || result.ok !== swapped)) return undefined;
      return swapped ? op.value : state;
    }
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

interface Node {
  readonly isCall: boolean;
  readonly op: HistoryOp;
  readonly index: number; // position among this key's ops (bit index)
  match: Node | null; // call → its return node
  prev: Node | null;
  next: Node | null;
}

export interface CheckResult {
  readonly ok: boolean;
  /** The key whose history is not linearizable. */
  readonly badKey?: string;
  /** Whether the search gave up (budget exhausted): treated as not proven, reported separately. */
  readonly timedOut?: boolean;
}

/** Checks one register's history. Returns true/false, or null if the step budget ran out. */
export function checkRegister(ops: readonly HistoryOp[], initial: RegState = null, stepBudget = 5_000_000): boolean | null {
  if (ops.length === 0) return true;
  // Build the event list: calls and returns sorted by time; at equal times calls first
  // (an operation that returns at t overlaps one invoked at t).
  const events: { t: number; isCall: boolean; op: HistoryOp; index: number }[] = [];
  ops.forEach((op, index) => {
    events.push({ t: op.call, isCall: true, op, index });
    events.push({ t: op.ret, isCall: false, op, index });
  });
  events.sort((x, y) => x.t - y.t || (x.isCall === y.isCall ? 0 : x.isCall ? -1 : 1) || x.index - y.index);
  const head: Node = { isCall: false, op: ops[0]!, index: -1, match: null, prev: null, next: null };
  let tail = head;
  const calls = new Map<number, Node>();
  for (const e of events) {
    const n: Node = { isCall: e.isCall, op: e.op, index: e.index, match: null, prev: tail, next: null };
    tail.next = n;
    tail = n;
    if (e.isCall) calls.set(e.index, n);
    else calls.get(e.index)!.match = n;
  }
  const lift = (call: Node): void => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Node): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };
  const words = Math.ceil(ops.length / 32);
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const keyOf = (state: RegState): string => `${linearized.join(',')}|${state === null ? '\u0000' : state}`;
  const stack: { node: Node; state: RegState }[] = [];
  let state: RegState = initial;
  let entry: Node | null = head.next;
  let steps = 0;
  while (head.next !== null) {
    if (++steps > stepBudget) return null;
    if (entry === null) return false;
    if (entry.isCall) {
      const next = stepRegister(state, entry.op.op, entry.op.result);
      if (next !== undefined) {
        linearized[entry.index >>> 5]! |= 1 << (entry.index & 31);
        const key = keyOf(next);
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ node: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry.index >>> 5]! &= ~(1 << (entry.index & 31));
      }
      entry = entry.next;
    } else {
      // A return reached with its call not linearized: backtrack.
      const top = stack.pop();
      if (top === undefined) return false;
      state = top.state;
      linearized[top.node.index >>> 5]! &= ~(1 << (top.node.index & 31));
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return true;
}

/** Checks a whole KV history, partitioned per key. */
export function checkKvHistory(history: readonly HistoryOp[], stepBudget?: number): CheckResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    let list = byKey.get(h.op.key);
    if (!list) byKey.set(h.op.key, (list = []));
    list.push(h);
  }
  for (const [key, ops] of [...byKey].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const r = checkRegister(ops, null, stepBudget);
    if (r === null) return { ok: true, badKey: key, timedOut: true };
    if (!r) return { ok: false, badKey: key };
  }
  return { ok: true };
}
