/**
 * The simulator's replicated state machine: a key/value map with put / get / cas, and a
 * per-client de-duplication table (a forwarded proposal duplicated by the network is
 * committed twice but applied once, as the mon daemon does with its client envelopes).
 */

export type KvOp =
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

/** Result of an operation: put → null, get → the value, cas → whether it swapped. */
export type KvResult = { readonly kind: 'put' } | { readonly kind: 'get'; readonly value: string | null } | { readonly kind: 'cas'; readonly ok: boolean };

export interface KvCommand {
  readonly clientId: string;
  readonly seq: number;
  readonly op: KvOp;
}

const te = new TextEncoder();
const td = new TextDecoder();

export function encodeCommand(c: KvCommand): Uint8Array {
  return te.encode(JSON.stringify(c));
}

export function decodeCommand(b: Uint8Array): KvCommand {
  return JSON.parse(td.decode(b)) as KvCommand;
}

export class KvStore {
  readonly data = new Map<string, string>();
  /** Per client: last applied seq and its result. */
  readonly sessions = new Map<string, { seq: number; result: KvResult }>();

  /** Applies a command; returns its result and whether it was a duplicate. */
  apply(cmd: KvCommand): { result: KvResult; duplicate: boolean } {
    const s = this.sessions.get(cmd.clientId);
    if (s && cmd.seq <= s.seq) {
      return { result: s.seq === cmd.seq ? s.result : { kind: 'put' }, duplicate: true };
    }
    const result = this.exec(cmd.op);
    this.sessions.set(cmd.clientId, { seq: cmd.seq, result });
    return { result, duplicate: false };
  }

  exec(op: KvOp): KvResult {
    switch (op.kind) {
      case 'put':
        this.data.set(op.key, op.value);
        return { kind: 'put' };
      case 'get':
        return { kind: 'get', value: this.data.get(op.key) ?? null };
      case 'cas': {
        const cur = this.data.get(op.key) ?? null;
        if (cur !== op.expected) return { kind: 'cas', ok: false };
        this.data.set(op.key, op.value);
        return { kind: 'cas', ok: true };
      }
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  encode(): Uint8Array {
    return te.encode(JSON.stringify({ data: [...this.data], sessions: [...this.sessions] }));
  }

  static decode(b: Uint8Array): KvStore {
    const kv = new KvStore();
    if (b.length === 0) return kv;
    const o = JSON.parse(td.decode(b)) as { data: [string, string][]; sessions: [string, { seq: number; result: KvResult }][] };
    for (const [k, v] of o.data) kv.data.set(k, v);
    for (const [k, v] of o.sessions) kv.sessions.set(k, v);
    return kv;
  }
}
