/**
 * Executes a client's compound op list on one object at a PG's primary (Ceph
 * PrimaryLogPG::do_osd_ops): guards first — if one fails nothing is applied — then the
 * mutations, planned into ONE store Transaction (applied atomically here and shipped as is to
 * the replicas), then the reads. Mutating requests may carry guards but no data-returning
 * reads (as librados write operations).
 *
 * User xattrs are stored with a `_` prefix and the object's user version in the internal
 * xattr {@link VERSION_XATTR} (Ceph keeps user xattrs under `_` and object_info in `_`), so
 * clients cannot collide with internal attributes.
 */
import { AspenError, Decoder, Encoder, assert, isErrorCode } from '@aspen/shared';
import { cmpHolds, isGuard, isMutation, OMAP_PAGE_MAX, type OsdOp, type OsdOpResult } from '@aspen/shared/client/ops.ts';
import type { ObjectId } from '../store/oid.ts';
import { Transaction } from '../store/transaction.ts';
import type { ObjectStore } from '../store/types.ts';

/** Internal xattr holding the object's user version (u64) and mtime. */
export const VERSION_XATTR = 'aspen.oi';
/** Prefix of user xattrs in the store. */
export const USER_XATTR_PREFIX = '_';

/** The object info kept in {@link VERSION_XATTR} (Ceph object_info_t, abridged). */
export interface ObjectInfo {
  /** User-visible version, bumped by every mutating request. */
  version: bigint;
  mtimeMs: number;
}

export function encodeObjectInfo(oi: ObjectInfo): Uint8Array {
  return new Encoder(32).struct(1, 1, (e) => e.u64(oi.version).u53(oi.mtimeMs)).finish();
}

export function decodeObjectInfo(b: Uint8Array): ObjectInfo {
  const d = new Decoder(b);
  const oi = d.struct(1, 'object info', () => ({ version: d.u64(), mtimeMs: d.u53() }));
  d.done('object info');
  return oi;
}

/** What the caller (the PG) supplies: the new user version and time for a mutation. */
export interface ExecContext {
  store: ObjectStore;
  coll: string;
  oid: ObjectId;
  /** Version to stamp on the object if the request mutates it; default: its current one + 1 (Ceph user_version). */
  newVersion?: bigint;
  nowMs: number;
}

/** The outcome: a failed request applies nothing. */
export interface ExecOutcome {
  code: 0 | string;
  message: string;
  /** Mutations to apply (null for a read-only request or a failure). */
  tx: Transaction | null;
  /** True when the request removes the object. */
  removes: boolean;
  /** The object's version after the request (its current one for reads). */
  version: bigint;
  /** The object's data size after the request, bytes (0 when it does not exist). */
  sizeBytes: number;
  results: OsdOpResult[];
}

function fail(code: string, message: string, version: bigint): ExecOutcome {
  return { code, message, tx: null, removes: false, version, sizeBytes: 0, results: [] };
}

async function objectInfo(store: ObjectStore, coll: string, oid: ObjectId): Promise<ObjectInfo | null> {
  if (!(await store.exists(coll, oid))) return null;
  try {
    return decodeObjectInfo(await store.getattr(coll, oid, VERSION_XATTR));
  } catch (err) {
    if (err instanceof AspenError && err.code === 'ENOENT') return { version: 0n, mtimeMs: 0 };
    throw err;
  }
}

/**
 * Executes `ops` (already validated by the request decoder) against the current object.
 * @returns the outcome; errors of the request (ENOENT, EEXIST, ECANCELED, EINVAL …) are
 *   returned in it, not thrown.
 * @throws AspenError EIO and other store failures (a checksum mismatch on read).
 */
export async function executeOps(ctx: ExecContext, ops: readonly OsdOp[]): Promise<ExecOutcome> {
  assert(ops.length > 0, 'a request has ops');
  const { store, coll, oid } = ctx;
  const oi = await objectInfo(store, coll, oid);
  const curVersion = oi?.version ?? 0n;
  const mutating = ops.some(isMutation);
  try {
    // 1. Guards.
    for (const op of ops) {
      if (!isGuard(op)) continue;
      switch (op.op) {
        case 'assert_exists':
          if (oi === null) return fail('ENOENT', 'object does not exist', curVersion);
          break;
        case 'assert_version':
          if (oi === null) return fail('ENOENT', 'object does not exist', curVersion);
          if (oi.version !== op.version) return fail('ECANCELED', `object version is ${oi.version}, not ${op.version}`, curVersion);
          break;
        case 'cmpxattr': {
          if (oi === null) return fail('ENOENT', 'object does not exist', curVersion);
          const attrs = await store.getattrs(coll, oid);
          const actual = attrs.get(USER_XATTR_PREFIX + op.name) ?? new Uint8Array(0);
          if (!cmpHolds(op.cmp, actual, op.value)) return fail('ECANCELED', `xattr ${op.name} comparison (${op.cmp}) failed`, curVersion);
          break;
        }
        case 'omap_cmp': {
          if (oi === null) return fail('ENOENT', 'object does not exist', curVersion);
          const got = await store.omapGetValuesByKeys(coll, oid, [op.key]);
          const actual = got.get(op.key);
          if (actual === undefined) return fail('ECANCELED', `omap key ${op.key} does not exist`, curVersion);
          if (!cmpHolds(op.cmp, actual, op.value)) return fail('ECANCELED', `omap key ${op.key} comparison (${op.cmp}) failed`, curVersion);
          break;
        }
        default:
          break;
      }
    }
    if (mutating) return await planMutations({ ...ctx, newVersion: ctx.newVersion ?? curVersion + 1n }, ops, oi);
    return await executeReads(ctx, ops, oi);
  } catch (err) {
    if (err instanceof AspenError && (err.code === 'EINVAL' || err.code === 'ENOENT')) return fail(err.code, err.message, curVersion);
    throw err;
  }
}

async function planMutations(ctx: ExecContext & { newVersion: bigint }, ops: readonly OsdOp[], oi: ObjectInfo | null): Promise<ExecOutcome> {
  const { store, coll, oid } = ctx;
  const tx = new Transaction();
  let exists = oi !== null;
  let size = exists ? (await store.stat(coll, oid)).sizeBytes : 0;
  let removed = false;
  const results: OsdOpResult[] = [];
  const cur = oi?.version ?? 0n;
  const needObject = (what: string): void => {
    if (!exists) throw new AspenError('ENOENT', `${what}: object does not exist`);
  };
  for (const op of ops) {
    if (isGuard(op)) {
      results.push({ code: 0, kind: 'none' });
      continue;
    }
    switch (op.op) {
      case 'create':
        if (exists && op.exclusive) return fail('EEXIST', 'object exists', cur);
        tx.touch(coll, oid);
        exists = true;
        break;
      case 'write':
        tx.write(coll, oid, op.offset, op.data);
        exists = true;
        size = Math.max(size, op.offset + op.data.length);
        break;
      case 'writefull':
        if (exists) tx.truncate(coll, oid, 0);
        tx.write(coll, oid, 0, op.data);
        exists = true;
        size = op.data.length;
        break;
      case 'append':
        tx.write(coll, oid, size, op.data);
        exists = true;
        size += op.data.length;
        break;
      case 'truncate':
        needObject('truncate');
        tx.truncate(coll, oid, op.size);
        size = op.size;
        break;
      case 'zero':
        needObject('zero');
        if (op.offset < size) tx.zero(coll, oid, op.offset, Math.min(op.length, size - op.offset));
        break;
      case 'remove':
        needObject('remove');
        tx.remove(coll, oid);
        exists = false;
        removed = true;
        size = 0;
        break;
      case 'setxattr':
        if (!exists) { tx.touch(coll, oid); exists = true; }
        tx.setattr(coll, oid, USER_XATTR_PREFIX + op.name, op.value);
        break;
      case 'rmxattr':
        needObject('rmxattr');
        tx.rmattr(coll, oid, USER_XATTR_PREFIX + op.name);
        break;
      case 'omap_set':
        if (!exists) { tx.touch(coll, oid); exists = true; }
        tx.omapSetKeys(coll, oid, new Map(op.entries));
        break;
      case 'omap_rm':
        needObject('omap_rm');
        tx.omapRmKeys(coll, oid, op.keys);
        break;
      case 'omap_clear':
        needObject('omap_clear');
        tx.omapClear(coll, oid);
        break;
      case 'omap_set_header':
        if (!exists) { tx.touch(coll, oid); exists = true; }
        tx.omapSetHeader(coll, oid, op.data);
        break;
      default:
        if (!isMutation(op)) throw new AspenError('EINVAL', `a write operation cannot also read (${op.op}); send reads separately`);
        throw new AspenError('EINVAL', `unsupported op ${op.op}`);
    }
    results.push({ code: 0, kind: 'none' });
  }
  if (exists) tx.setattr(coll, oid, VERSION_XATTR, encodeObjectInfo({ version: ctx.newVersion, mtimeMs: ctx.nowMs }));
  assert(!tx.empty, 'a mutating request plans at least one store op');
  return { code: 0, message: '', tx, removes: removed && !exists, version: ctx.newVersion, sizeBytes: exists ? size : 0, results };
}

async function executeReads(ctx: ExecContext, ops: readonly OsdOp[], oi: ObjectInfo | null): Promise<ExecOutcome> {
  const { store, coll, oid } = ctx;
  const version = oi?.version ?? 0n;
  if (oi === null && ops.some((o) => !isGuard(o))) return fail('ENOENT', 'object does not exist', version);
  const results: OsdOpResult[] = [];
  for (const op of ops) {
    switch (op.op) {
      case 'assert_exists': case 'assert_version': case 'cmpxattr': case 'omap_cmp':
        results.push({ code: 0, kind: 'none' });
        break;
      case 'read': {
        const st = await store.stat(coll, oid);
        const len = op.length === 0 ? Math.max(0, st.sizeBytes - op.offset) : op.length;
        results.push({ code: 0, kind: 'data', data: len === 0 ? new Uint8Array(0) : await store.read(coll, oid, op.offset, len) });
        break;
      }
      case 'sparse_read': {
        const st = await store.stat(coll, oid);
        const len = op.length === 0 ? Math.max(0, st.sizeBytes - op.offset) : op.length;
        const r = await store.sparseRead(coll, oid, op.offset, len);
        results.push({ code: 0, kind: 'extents', extents: r.extents.map((x) => [x.offsetBytes, x.lengthBytes] as [number, number]), data: r.data });
        break;
      }
      case 'stat':
        results.push({ code: 0, kind: 'stat', sizeBytes: (await store.stat(coll, oid)).sizeBytes, mtimeMs: oi!.mtimeMs });
        break;
      case 'getxattr': {
        const attrs = await store.getattrs(coll, oid);
        const v = attrs.get(USER_XATTR_PREFIX + op.name);
        if (v === undefined) results.push({ code: 'ENOENT', kind: 'error', message: `no xattr ${op.name}` });
        else results.push({ code: 0, kind: 'data', data: v });
        break;
      }
      case 'getxattrs': {
        const attrs = await store.getattrs(coll, oid);
        results.push({ code: 0, kind: 'xattrs', entries: [...attrs].filter(([k]) => k.startsWith(USER_XATTR_PREFIX)).map(([k, v]) => [k.slice(USER_XATTR_PREFIX.length), v]) });
        break;
      }
      case 'omap_get_keys': {
        const page = await store.omapGetKeys(coll, oid, op.startAfter === '' ? undefined : op.startAfter, Math.min(op.max, OMAP_PAGE_MAX));
        results.push({ code: 0, kind: 'keys', keys: [...page.keys], more: page.more });
        break;
      }
      case 'omap_get_vals': {
        const page = await store.omapGetValues(coll, oid, op.startAfter === '' ? undefined : op.startAfter, Math.min(op.max, OMAP_PAGE_MAX), op.prefix === '' ? undefined : op.prefix);
        results.push({ code: 0, kind: 'omap', entries: page.entries.map(([k, v]) => [k, v] as [string, Uint8Array]), more: page.more });
        break;
      }
      case 'omap_get_vals_by_keys': {
        const vals = await store.omapGetValuesByKeys(coll, oid, op.keys);
        results.push({ code: 0, kind: 'omap', entries: [...vals], more: false });
        break;
      }
      case 'omap_get_header':
        results.push({ code: 0, kind: 'data', data: await store.omapGetHeader(coll, oid) });
        break;
      default:
        throw new AspenError('EINVAL', `unexpected op ${op.op} in a read request`);
    }
  }
  const firstError = results.find((r) => r.code !== 0);
  const code = firstError === undefined ? 0 : firstError.code;
  return { code: code !== 0 && isErrorCode(code) ? code : 0, message: firstError?.kind === 'error' ? firstError.message : '', tx: null, removes: false, version, sizeBytes: 0, results };
}
