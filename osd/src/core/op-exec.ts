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
 *
 * Self-managed snapshots (./snapset.ts; Ceph PrimaryLogPG): a write under a snap context with
 * snaps newer than the head's SnapSet clones the head first (make_writeable); removing a head
 * that has clones leaves a *whiteout* (no data, xattrs or omap; `whiteout` in its object
 * info) which every head operation treats as absent; reads at a snap run against the clone
 * that serves it (find_object_context); {@link trimObject} drops removed snaps (snap trimmer).
 */
import { AspenError, Decoder, Encoder, assert, isErrorCode } from '@aspen/shared';
import { cmpHolds, isGuard, isMutation, OMAP_PAGE_MAX, SNAP_HEAD, type OsdOp, type OsdOpResult, type SnapContext } from '@aspen/shared/client/ops.ts';
import type { ObjectId } from '../store/oid.ts';
import { Transaction } from '../store/transaction.ts';
import type { ObjectStore } from '../store/types.ts';
import {
  EMPTY_SNAPSET, SNAPSET_XATTR, decodeSnapSet, encodeSnapSet, planWriteSnaps, resolveSnapRead, snapSetIsEmpty, trimSnapSet,
  validateSnapContext, type SnapSet,
} from './snapset.ts';

/** Internal xattr holding the object's user version (u64) and mtime. */
export const VERSION_XATTR = 'aspen.oi';
/** Prefix of user xattrs in the store. */
export const USER_XATTR_PREFIX = '_';

/**
 * The object info kept in {@link VERSION_XATTR} (Ceph object_info_t, abridged). Struct v2
 * (compat 1) adds `whiteout`; v1 records decode with `whiteout: false`.
 */
export interface ObjectInfo {
  /** User-visible version, bumped by every mutating request. */
  version: bigint;
  mtimeMs: number;
  /**
   * The head was removed while it had clones (Ceph FLAG_WHITEOUT): it is kept, empty, for its
   * SnapSet, and every head operation sees the object as absent. Omitted: false.
   */
  whiteout?: boolean;
}

/** Encodes an object info (struct v2). */
export function encodeObjectInfo(oi: ObjectInfo): Uint8Array {
  return new Encoder(32).struct(2, 1, (e) => e.u64(oi.version).u53(oi.mtimeMs).bool(oi.whiteout === true)).finish();
}

/** Decodes {@link encodeObjectInfo}'s bytes (v1 or v2). @throws AspenError E_DECODE on malformed bytes. */
export function decodeObjectInfo(b: Uint8Array): ObjectInfo {
  const d = new Decoder(b);
  const oi = d.struct(2, 'object info', (x, v) => ({ version: x.u64(), mtimeMs: x.u53(), whiteout: v >= 2 ? x.bool() : false }));
  d.done('object info');
  return oi;
}

/**
 * What op execution reads: the local store (replicated pools) or an EC object's logical view
 * (./ec-exec.ts `EcObjectView`).
 */
export type ObjectReader = Pick<ObjectStore,
  'exists' | 'getattr' | 'getattrs' | 'stat' | 'read' | 'sparseRead' | 'omapGetHeader' | 'omapGetKeys' | 'omapGetValues' | 'omapGetValuesByKeys'>;

/** What the caller (the PG) supplies: the new user version and time for a mutation. */
export interface ExecContext {
  store: ObjectReader;
  coll: string;
  oid: ObjectId;
  /** Version to stamp on the object if the request mutates it; default: its current one + 1 (Ceph user_version). */
  newVersion?: bigint;
  nowMs: number;
  /**
   * The snap context of a mutation (Ceph MOSDOp snapc, already filtered of removed snaps);
   * default none (`{seq: 0, snaps: []}`: no clone is made).
   * A malformed one fails the request with EINVAL.
   */
  snapc?: SnapContext;
  /** The snap id a read runs at; default {@link SNAP_HEAD}. A mutation at another snap fails with EINVAL (snaps are read-only). */
  snapId?: bigint;
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

async function objectInfo(store: ObjectReader, coll: string, oid: ObjectId): Promise<ObjectInfo | null> {
  if (!(await store.exists(coll, oid))) return null;
  try {
    return decodeObjectInfo(await store.getattr(coll, oid, VERSION_XATTR));
  } catch (err) {
    if (err instanceof AspenError && err.code === 'ENOENT') return { version: 0n, mtimeMs: 0, whiteout: false };
    throw err;
  }
}

/** The head's SnapSet ({@link EMPTY_SNAPSET} when it has none or does not exist). */
async function snapSetOf(store: ObjectReader, coll: string, head: ObjectId, oi: ObjectInfo | null): Promise<SnapSet> {
  if (oi === null) return EMPTY_SNAPSET;
  const attrs = await store.getattrs(coll, head);
  const b = attrs.get(SNAPSET_XATTR);
  return b === undefined ? EMPTY_SNAPSET : decodeSnapSet(b);
}

/** The store id of clone `cloneId` of `head`. */
export function cloneOid(head: ObjectId, cloneId: bigint): ObjectId {
  return { ...head, snap: cloneId };
}

/**
 * Executes `ops` (already validated by the request decoder) against the current object.
 * @returns the outcome; errors of the request (ENOENT, EEXIST, ECANCELED, EINVAL …) are
 *   returned in it, not thrown.
 * @throws AspenError EIO and other store failures (a checksum mismatch on read).
 */
export async function executeOps(ctx: ExecContext, ops: readonly OsdOp[]): Promise<ExecOutcome> {
  assert(ops.length > 0, 'a request has ops');
  const { store, coll } = ctx;
  const headOid = ctx.oid;
  assert((headOid.snap ?? 'head') === 'head', 'requests name the head; snaps are chosen by snapId');
  const headOi = await objectInfo(store, coll, headOid);
  const mutating = ops.some(isMutation);
  const snapId = ctx.snapId ?? SNAP_HEAD;
  // The object as the request sees it: a whiteout head is absent (Ceph treats it as ENOENT).
  let oi = headOi !== null && headOi.whiteout !== true ? headOi : null;
  let oid = headOid;
  const curVersion = headOi?.version ?? 0n;
  let ss: SnapSet;
  try {
    ss = await snapSetOf(store, coll, headOid, headOi);
  } catch (err) {
    if (err instanceof AspenError && err.code === 'E_DECODE') throw new AspenError('EIO', `snapset of ${headOid.name} in ${coll}: ${err.message}`);
    throw err;
  }
  if (snapId !== SNAP_HEAD) {
    if (mutating) return fail('EINVAL', `snap ${snapId} is read-only: writes go to the head`, curVersion);
    const where = resolveSnapRead(ss, snapId);
    if (where.kind === 'none') return fail('ENOENT', `object does not exist at snap ${snapId}`, curVersion);
    if (where.kind === 'clone') {
      oid = cloneOid(headOid, where.clone.cloneId);
      oi = await objectInfo(store, coll, oid);
      assert(oi !== null, `clone ${where.clone.cloneId} of ${headOid.name} listed in its snapset exists`);
    }
  }
  const target: ExecContext = { ...ctx, oid };
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
          // A missing key compares as an empty value (Ceph do_osd_ops OMAP_CMP), so
          // `omap_cmp key eq ""` asserts that a key is absent.
          const actual = got.get(op.key) ?? new Uint8Array(0);
          if (!cmpHolds(op.cmp, actual, op.value)) return fail('ECANCELED', `omap key ${op.key} comparison (${op.cmp}) failed`, curVersion);
          break;
        }
        default:
          break;
      }
    }
    if (mutating) {
      const snapc = ctx.snapc ?? { seq: 0n, snaps: [] };
      validateSnapContext(snapc);
      return await planMutations({ ...target, newVersion: ctx.newVersion ?? curVersion + 1n, snapc }, ops, { oi, physical: headOi !== null, ss });
    }
    return await executeReads(target, ops, oi);
  } catch (err) {
    if (err instanceof AspenError && (err.code === 'EINVAL' || err.code === 'ENOENT')) return fail(err.code, err.message, curVersion);
    throw err;
  }
}

/** The head as a mutation finds it. */
interface HeadState {
  /** Its object info when it exists for clients (null: absent or a whiteout). */
  readonly oi: ObjectInfo | null;
  /** Whether the store object exists (a whiteout does). */
  readonly physical: boolean;
  readonly ss: SnapSet;
}

async function planMutations(ctx: ExecContext & { newVersion: bigint; snapc: SnapContext }, ops: readonly OsdOp[], head: HeadState): Promise<ExecOutcome> {
  const { store, coll, oid } = ctx;
  const tx = new Transaction();
  let exists = head.oi !== null;
  /** Whether the store object exists (a whiteout does): writes onto it need no touch. */
  let physical = head.physical;
  let size = exists ? (await store.stat(coll, oid)).sizeBytes : 0;
  let removed = false;
  const results: OsdOpResult[] = [];
  const cur = head.oi?.version ?? 0n;
  // make_writeable: clone the head before the request changes it.
  const { next: ss, clone } = planWriteSnaps(head.ss, ctx.snapc, exists, size);
  if (clone !== null) {
    const coid = cloneOid(oid, clone.cloneId);
    tx.clone(coll, oid, coid);
    tx.rmattr(coll, coid, SNAPSET_XATTR); // a clone has no snapset of its own (Ceph _make_clone)
  }
  /** User xattr names set by this request (a whiteout must clear them too). */
  const setNames = new Set<string>();
  const needObject = (what: string): void => {
    if (!exists) throw new AspenError('ENOENT', `${what}: object does not exist`);
  };
  const materialize = (): void => {
    if (!physical) tx.touch(coll, oid);
    exists = true;
    physical = true;
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
        physical = true;
        break;
      case 'write':
        tx.write(coll, oid, op.offset, op.data);
        exists = true;
        physical = true;
        size = Math.max(size, op.offset + op.data.length);
        break;
      case 'writefull':
        if (exists) tx.truncate(coll, oid, 0);
        tx.write(coll, oid, 0, op.data);
        exists = true;
        physical = true;
        size = op.data.length;
        break;
      case 'append':
        tx.write(coll, oid, size, op.data);
        exists = true;
        physical = true;
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
        if (ss.clones.length > 0) {
          // Its clones stay reachable through the head's snapset: leave a whiteout (Ceph FLAG_WHITEOUT).
          if (size > 0) tx.truncate(coll, oid, 0);
          const names = new Set(setNames);
          for (const k of (await store.getattrs(coll, oid)).keys()) if (k.startsWith(USER_XATTR_PREFIX)) names.add(k.slice(USER_XATTR_PREFIX.length));
          for (const n of [...names].sort()) tx.rmattr(coll, oid, USER_XATTR_PREFIX + n);
          tx.omapClear(coll, oid);
        } else {
          tx.remove(coll, oid);
          physical = false;
          removed = true;
        }
        setNames.clear();
        exists = false;
        size = 0;
        break;
      case 'setxattr':
        if (!exists) materialize();
        tx.setattr(coll, oid, USER_XATTR_PREFIX + op.name, op.value);
        setNames.add(op.name);
        break;
      case 'rmxattr':
        needObject('rmxattr');
        tx.rmattr(coll, oid, USER_XATTR_PREFIX + op.name);
        break;
      case 'omap_set':
        if (!exists) materialize();
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
        if (!exists) materialize();
        tx.omapSetHeader(coll, oid, op.data);
        break;
      default:
        if (!isMutation(op)) throw new AspenError('EINVAL', `a write operation cannot also read (${op.op}); send reads separately`);
        throw new AspenError('EINVAL', `unsupported op ${op.op}`);
    }
    results.push({ code: 0, kind: 'none' });
  }
  if (physical) {
    // The head (live or whiteout) carries the object info and, once snaps are involved, the snapset.
    tx.setattr(coll, oid, VERSION_XATTR, encodeObjectInfo({ version: ctx.newVersion, mtimeMs: ctx.nowMs, whiteout: !exists }));
    if (!snapSetIsEmpty(ss)) tx.setattr(coll, oid, SNAPSET_XATTR, encodeSnapSet(ss));
  }
  assert(!tx.empty, 'a mutating request plans at least one store op');
  assert(physical || ss.clones.length === 0, 'a head with clones is never removed');
  return { code: 0, message: '', tx, removes: removed && !physical, version: ctx.newVersion, sizeBytes: exists ? size : 0, results };
}

/**
 * Snap trimming of one object (Ceph PrimaryLogPG::trim_object, SnapTrimmer): drops the snap
 * ids `isRemoved` reports from its clones' SnapSet entries, deletes clones left serving no
 * snap, and — when the head is a whiteout left without clones — removes the object
 * (`removes`). Runs at the primary like a client mutation; the user version is not bumped.
 * @returns an outcome with `tx: null` when there is nothing to trim.
 * @throws AspenError EIO for an unreadable SnapSet or store failures.
 */
export async function trimObject(ctx: Omit<ExecContext, 'snapc' | 'snapId' | 'newVersion'>, isRemoved: (snapId: bigint) => boolean): Promise<ExecOutcome> {
  const { store, coll, oid } = ctx;
  const headOi = await objectInfo(store, coll, oid);
  const version = headOi?.version ?? 0n;
  const nothing: ExecOutcome = { code: 0, message: '', tx: null, removes: false, version, sizeBytes: 0, results: [] };
  if (headOi === null) return nothing;
  let ss: SnapSet;
  try {
    ss = await snapSetOf(store, coll, oid, headOi);
  } catch (err) {
    if (err instanceof AspenError && err.code === 'E_DECODE') throw new AspenError('EIO', `snapset of ${oid.name} in ${coll}: ${err.message}`);
    throw err;
  }
  const { next, removeClones, changed } = trimSnapSet(ss, isRemoved);
  if (!changed) return nothing;
  const tx = new Transaction();
  for (const id of removeClones) tx.remove(coll, cloneOid(oid, id));
  const whiteout = headOi.whiteout === true;
  if (whiteout && next.clones.length === 0) return { ...nothing, tx, removes: true };
  if (snapSetIsEmpty(next)) tx.rmattr(coll, oid, SNAPSET_XATTR);
  else tx.setattr(coll, oid, SNAPSET_XATTR, encodeSnapSet(next));
  const sizeBytes = whiteout ? 0 : (await store.stat(coll, oid)).sizeBytes;
  assert(!tx.empty, 'a trim that changes the snapset plans store ops');
  return { ...nothing, tx, sizeBytes };
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
