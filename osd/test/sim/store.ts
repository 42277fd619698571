/**
 * An in-memory object store for the PG simulation, with the durability contract of the PG
 * core's transactions: a transaction is applied (visible to reads) when submitted and
 * durable when its simulated fsync completes, in submission order; a crash reverts to the
 * durable state, losing every transaction not yet synced.
 *
 * It also records, for the checker, the bytes every (object, version) was first given
 * ({@link ContentLedger}): any later store that applies the same version must produce the
 * same bytes, and every acknowledged version's bytes are known.
 */
import { assertNever, crc32c } from '@aspen/shared';
import type { Eversion, ObjectStat, PgMeta, ScrubObject, StoreOp, StoreReadResult, StoreRead } from '../../src/pg/types.ts';

/** One stored object. Immutable: writes replace it. */
export interface SimObject {
  readonly data: Uint8Array;
  readonly version: Eversion;
  readonly storedCrc: number;
}

/** One PG's collection. */
export interface Collection {
  meta: PgMeta | undefined;
  readonly objects: Map<string, SimObject>;
}

type State = Map<string, Collection>;

/** What the content ledger knows of one object version. */
export type LedgerValue = Uint8Array | 'deleted';

/** Bytes of every (object, version) ever applied, first writer wins; mismatches are violations. */
export class ContentLedger {
  readonly byKey = new Map<string, LedgerValue>();
  readonly deletes = new Map<string, Eversion[]>();
  readonly violations: string[] = [];

  private static key(object: string, v: Eversion): string {
    return `${object}@${v.epoch}'${v.version}`;
  }
  get(object: string, v: Eversion): LedgerValue | undefined {
    return this.byKey.get(ContentLedger.key(object, v));
  }
  record(pgid: string, osd: number, object: string, v: Eversion, value: LedgerValue): void {
    const k = ContentLedger.key(object, v);
    const prev = this.byKey.get(k);
    if (prev === undefined) {
      this.byKey.set(k, value);
      if (value === 'deleted') this.deletes.set(object, [...(this.deletes.get(object) ?? []), v]);
      return;
    }
    if (prev === 'deleted' || value === 'deleted' ? prev !== value : !bytesEqual(prev, value)) {
      this.violations.push(`osd.${osd} pg ${pgid}: ${k} applied with different content than first recorded`);
    }
  }
}

/** Byte equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function cloneState(s: State): State {
  const out: State = new Map();
  for (const [pgid, c] of s) out.set(pgid, { meta: c.meta, objects: new Map(c.objects) });
  return out;
}

/** The simulated store of one OSD. */
export class SimStore {
  applied: State = new Map();
  private durable: State = new Map();
  /** Submitted, not yet durable, in order. */
  readonly pending: { pgid: string; ops: readonly StoreOp[]; txnId: number; owner: unknown }[] = [];

  constructor(readonly osd: number, private readonly ledger: ContentLedger) {}

  /** Applies a transaction now; it becomes durable at {@link syncOne}. */
  submit(pgid: string, txnId: number, ops: readonly StoreOp[], owner: unknown): void {
    this.apply(this.applied, pgid, ops, true);
    this.pending.push({ pgid, ops, txnId, owner });
  }

  /** Makes the oldest pending transaction durable; returns it. */
  syncOne(): { pgid: string; txnId: number; owner: unknown } | undefined {
    const t = this.pending.shift();
    if (t === undefined) return undefined;
    this.apply(this.durable, t.pgid, t.ops, false);
    return t;
  }

  /** The PG meta as on disk now (what survives a crash). */
  durableMeta(pgid: string): PgMeta | undefined {
    return this.durable.get(pgid)?.meta;
  }

  /** Power loss: everything not synced is gone. */
  crash(): void {
    this.pending.length = 0;
    this.applied = cloneState(this.durable);
  }

  /** Flips one byte of an object in both applied and durable state (bit rot). */
  corrupt(pgid: string, object: string, offset: number): boolean {
    let done = false;
    for (const s of [this.applied, this.durable]) {
      const o = s.get(pgid)?.objects.get(object);
      if (o === undefined || o.data.length === 0) continue;
      const data = o.data.slice();
      const i = offset % data.length;
      data[i] = data[i]! ^ 0x5a;
      s.get(pgid)!.objects.set(object, { ...o, data });
      done = true;
    }
    return done;
  }

  /** PGs present after a restart, with what the core needs to load. */
  loadAll(): { pgid: string; meta: PgMeta; objects: Map<string, ObjectStat> }[] {
    const out = [];
    for (const [pgid, c] of this.applied) {
      if (c.meta === undefined) continue;
      const objects = new Map<string, ObjectStat>();
      for (const [n, o] of c.objects) objects.set(n, { version: o.version, sizeBytes: o.data.length });
      out.push({ pgid, meta: c.meta, objects });
    }
    return out.sort((a, b) => (a.pgid < b.pgid ? -1 : 1));
  }

  /** Performs a read against the applied state. */
  read(pgid: string, r: StoreRead): StoreReadResult {
    const c = this.applied.get(pgid);
    switch (r.kind) {
      case 'read': {
        const o = c?.objects.get(r.object);
        return o === undefined ? { kind: 'read', exists: false } : { kind: 'read', exists: true, version: o.version, data: o.data };
      }
      case 'list': {
        const objects: ScrubObject[] = [];
        for (const [n, o] of [...(c?.objects ?? new Map<string, SimObject>())].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
          const base = { object: n, version: o.version, sizeBytes: o.data.length, storedCrc: o.storedCrc };
          objects.push(r.deep ? { ...base, dataCrc: crc32c(o.data) } : base);
        }
        return { kind: 'list', objects };
      }
      default:
        return assertNever(r, 'store read');
    }
  }

  private apply(s: State, pgid: string, ops: readonly StoreOp[], record: boolean): void {
    let c = s.get(pgid);
    const coll = (): Collection => {
      if (c === undefined) {
        c = { meta: undefined, objects: new Map() };
        s.set(pgid, c);
      }
      return c;
    };
    for (const op of ops) {
      switch (op.kind) {
        case 'writeFull': {
          const data = op.data.slice();
          coll().objects.set(op.object, { data, version: op.version, storedCrc: crc32c(data) });
          if (record) this.ledger.record(pgid, this.osd, op.object, op.version, data);
          break;
        }
        case 'write': {
          const old = coll().objects.get(op.object)?.data ?? new Uint8Array(0);
          const data = new Uint8Array(Math.max(old.length, op.offsetBytes + op.data.length));
          data.set(old);
          data.set(op.data, op.offsetBytes);
          coll().objects.set(op.object, { data, version: op.version, storedCrc: crc32c(data) });
          if (record) this.ledger.record(pgid, this.osd, op.object, op.version, data);
          break;
        }
        case 'remove':
          coll().objects.delete(op.object);
          if (record && op.version !== null) this.ledger.record(pgid, this.osd, op.object, op.version, 'deleted');
          break;
        case 'setMeta':
          coll().meta = op.meta;
          break;
        case 'txn':
          throw new Error('the simulator sends no txn bodies (they are daemon store transactions)');
        case 'ecRollback':
        case 'rollForward':
          throw new Error('the simulator runs replicated PGs only (no EC stashes)');
        case 'removePg':
          s.delete(pgid);
          c = undefined;
          break;
        default:
          assertNever(op, 'store op');
      }
    }
  }
}
