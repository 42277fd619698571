/**
 * An in-memory reference model of the object store's semantics (osd/src/store/types.ts), used
 * by the property tests: apply the same transactions to the store and the model and compare.
 * A transaction that fails changes nothing (atomicity); the model reports the error code.
 */
import { AspenError, type ErrorCode } from '@aspen/shared/errors.ts';
import { encodeObjectKey, formatOid, type FullObjectId } from '../../src/store/oid.ts';
import type { Transaction, TxOp } from '../../src/store/transaction.ts';

export interface ModelObject {
  oid: FullObjectId;
  data: Uint8Array;
  attrs: Map<string, Uint8Array>;
  omap: Map<string, Uint8Array>;
  header: Uint8Array;
}

export type ModelState = Map<string, Map<string, ModelObject>>;

const hex = (oid: FullObjectId): string => Buffer.from(encodeObjectKey(oid)).toString('hex');

function cloneObj(o: ModelObject, oid = o.oid): ModelObject {
  return { oid, data: o.data.slice(), attrs: new Map(o.attrs), omap: new Map(o.omap), header: o.header.slice() };
}

function cloneState(s: ModelState): ModelState {
  const out: ModelState = new Map();
  for (const [c, objs] of s) {
    const m = new Map<string, ModelObject>();
    for (const [k, o] of objs) m.set(k, cloneObj(o));
    out.set(c, m);
  }
  return out;
}

function resize(data: Uint8Array, size: number): Uint8Array {
  if (size === data.length) return data;
  const out = new Uint8Array(size);
  out.set(data.subarray(0, Math.min(size, data.length)));
  return out;
}

const fail = (code: ErrorCode, msg: string): never => {
  throw new AspenError(code, msg);
};

/** The reference model. */
export class StoreModel {
  state: ModelState = new Map();

  /** Applies `tx` atomically; returns the error code of the failing op or undefined. */
  apply(tx: Transaction): ErrorCode | undefined {
    const next = cloneState(this.state);
    try {
      for (const op of tx.ops) applyOp(next, op);
    } catch (err) {
      if (err instanceof AspenError) return err.code;
      throw err;
    }
    this.state = next;
    return undefined;
  }

  /** Applies `tx` without the atomicity copy (fast for large states). @throws AspenError when an op fails, leaving the model partly changed. */
  applyInPlace(tx: Transaction): void {
    for (const op of tx.ops) applyOp(this.state, op);
  }
}

function coll(s: ModelState, c: string): Map<string, ModelObject> {
  return s.get(c) ?? fail('ENOENT', `no collection ${c}`);
}

function obj(s: ModelState, c: string, oid: FullObjectId): ModelObject {
  return coll(s, c).get(hex(oid)) ?? fail('ENOENT', `no object ${formatOid(oid)}`);
}

function getOrCreate(s: ModelState, c: string, oid: FullObjectId): ModelObject {
  const m = coll(s, c);
  let o = m.get(hex(oid));
  if (o === undefined) {
    o = { oid, data: new Uint8Array(0), attrs: new Map(), omap: new Map(), header: new Uint8Array(0) };
    m.set(hex(oid), o);
  }
  return o;
}

function applyOp(s: ModelState, op: TxOp): void {
  switch (op.op) {
    case 'createCollection':
      if (s.has(op.coll)) fail('EEXIST', 'exists');
      s.set(op.coll, new Map());
      return;
    case 'removeCollection':
      if (coll(s, op.coll).size > 0) fail('ENOTEMPTY', 'not empty');
      s.delete(op.coll);
      return;
    case 'touch':
      getOrCreate(s, op.coll, op.oid);
      return;
    case 'write': {
      const o = getOrCreate(s, op.coll, op.oid);
      if (op.data.length === 0) return;
      o.data = resize(o.data, Math.max(o.data.length, op.offsetBytes + op.data.length));
      o.data.set(op.data, op.offsetBytes);
      return;
    }
    case 'zero': {
      const o = getOrCreate(s, op.coll, op.oid);
      if (op.lengthBytes === 0) return;
      o.data = resize(o.data, Math.max(o.data.length, op.offsetBytes + op.lengthBytes));
      o.data.fill(0, op.offsetBytes, op.offsetBytes + op.lengthBytes);
      return;
    }
    case 'truncate': {
      const o = obj(s, op.coll, op.oid);
      o.data = resize(o.data, op.sizeBytes);
      return;
    }
    case 'remove':
      obj(s, op.coll, op.oid);
      coll(s, op.coll).delete(hex(op.oid));
      return;
    case 'setattrs': {
      const o = obj(s, op.coll, op.oid);
      for (const [k, v] of op.attrs) o.attrs.set(k, v.slice());
      return;
    }
    case 'rmattr':
      obj(s, op.coll, op.oid).attrs.delete(op.name);
      return;
    case 'omapSetKeys': {
      const o = obj(s, op.coll, op.oid);
      for (const [k, v] of op.entries) o.omap.set(k, v.slice());
      return;
    }
    case 'omapRmKeys': {
      const o = obj(s, op.coll, op.oid);
      for (const k of op.keys) o.omap.delete(k);
      return;
    }
    case 'omapRmKeyRange': {
      const o = obj(s, op.coll, op.oid);
      const first = Buffer.from(op.first);
      const last = Buffer.from(op.last);
      for (const k of [...o.omap.keys()]) {
        const kb = Buffer.from(k);
        if (Buffer.compare(kb, first) >= 0 && Buffer.compare(kb, last) < 0) o.omap.delete(k);
      }
      return;
    }
    case 'omapClear': {
      const o = obj(s, op.coll, op.oid);
      o.omap.clear();
      o.header = new Uint8Array(0);
      return;
    }
    case 'omapSetHeader':
      obj(s, op.coll, op.oid).header = op.header.slice();
      return;
    case 'clone': {
      const src = obj(s, op.coll, op.src);
      coll(s, op.coll).set(hex(op.dst), cloneObj(src, op.dst));
      return;
    }
    case 'cloneRange': {
      const src = obj(s, op.coll, op.src);
      const bytes = new Uint8Array(op.lengthBytes);
      bytes.set(src.data.subarray(Math.min(op.srcOffsetBytes, src.data.length), Math.min(op.srcOffsetBytes + op.lengthBytes, src.data.length)));
      applyOp(s, { op: 'write', coll: op.coll, oid: op.dst, offsetBytes: op.dstOffsetBytes, data: bytes });
      return;
    }
    case 'collectionMoveRename': {
      const src = obj(s, op.srcColl, op.src);
      const dst = coll(s, op.dstColl);
      if (dst.has(hex(op.dst))) fail('EEXIST', 'exists');
      coll(s, op.srcColl).delete(hex(op.src));
      dst.set(hex(op.dst), cloneObj(src, op.dst));
      return;
    }
  }
}

/** Omap keys of a model object in the store's order (UTF-8 byte order). */
export function sortedKeys(m: Map<string, unknown>): string[] {
  return [...m.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Objects of a model collection in the store's listing order. */
export function sortedObjects(m: Map<string, ModelObject>): ModelObject[] {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
}
