/**
 * An object's whole state as ONE blob, the unit the PG core replicates and recovers (its op
 * bodies and pushes are whole-object): data, user xattrs, omap header, omap entries and the
 * object info (user version, mtime). The daemon executes a client's compound op list at the
 * primary as read-modify-write of this state ({@link applyOsdOps}, the semantics of
 * osd/src/core/op-exec.ts: guards first — a failed guard applies nothing — then the
 * mutations, then the reads) and hands the new blob to the core as a `writeFull`.
 *
 * Known limitation: a small write to a large object ships and rewrites the whole object
 * (see osd/ARCHITECTURE.md; the fix is a `txn` op body carrying the planned Transaction).
 *
 * Blob struct v1 (compat 1): version u64, mtimeMs u53, data bytes, xattrs [(name, value)]
 * sorted by name, omap header bytes, omap [(key, value)] sorted by key — deterministic, so
 * equal states have equal bytes (and equal crc32c, which scrub compares).
 * Struct v2 appends the snapshot state (Ceph pushes the head with its SnapSet and each clone
 * as its own object; we push them together): whiteout bool, the head's encoded SnapSet
 * (osd/src/core/snapset.ts; empty when none), clones [(cloneId u64, version u64, mtimeMs
 * u53, data, xattrs, omap header, omap)] ascending by cloneId, compat 2 (an older reader
 * would drop the clones). A plain object (none of these set) is still written as v1.
 */
import { AspenError, Decoder, Encoder, assert, isErrorCode } from '@aspen/shared';
import { cmpHolds, OMAP_PAGE_MAX, isGuard, isMutation, type OsdOp, type OsdOpResult } from '@aspen/shared/client/ops.ts';

/** The state of one object. Maps are keyed by user xattr name / omap key. */
export interface ObjectState {
  data: Uint8Array;
  xattrs: Map<string, Uint8Array>;
  omapHeader: Uint8Array;
  omap: Map<string, Uint8Array>;
  /** User-visible version, bumped by every mutating request (Ceph user_version). */
  version: bigint;
  mtimeMs: number;
  /** The head is a whiteout (removed while it had clones; see op-exec.ts). Omitted: false. */
  whiteout?: boolean;
  /** The head's encoded SnapSet (the `aspen.ss` xattr); omitted or empty: none. */
  snapset?: Uint8Array;
  /** The object's clones, ascending by cloneId; omitted: none. */
  clones?: CloneState[];
}

/** One clone of an object in its state blob: the store object `snap = cloneId`. */
export interface CloneState {
  cloneId: bigint;
  data: Uint8Array;
  xattrs: Map<string, Uint8Array>;
  omapHeader: Uint8Array;
  omap: Map<string, Uint8Array>;
  /** The clone's object info: the head's user version and mtime when it was cloned. */
  version: bigint;
  mtimeMs: number;
}

const BLOB_V = 2;
const EMPTY = new Uint8Array(0);

/** A fresh object (what `create` or a first write makes). */
export function emptyObjectState(): ObjectState {
  return { data: EMPTY, xattrs: new Map(), omapHeader: EMPTY, omap: new Map(), version: 0n, mtimeMs: 0 };
}

function sortedEntries(m: ReadonlyMap<string, Uint8Array>): [string, Uint8Array][] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function sizeOf(s: { data: Uint8Array; omapHeader: Uint8Array; xattrs: Map<string, Uint8Array>; omap: Map<string, Uint8Array> }): number {
  let bytes = s.data.length + s.omapHeader.length + 64;
  for (const [k, v] of s.xattrs) bytes += k.length * 3 + v.length + 8;
  for (const [k, v] of s.omap) bytes += k.length * 3 + v.length + 8;
  return bytes;
}

function decodeMap(b: Decoder, what: string): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (const [k, v] of b.array((x) => [x.string(), x.bytes()] as const)) {
    if (m.has(k)) throw new AspenError('E_DECODE', `duplicate ${what} ${k}`);
    m.set(k, v);
  }
  return m;
}

/** Encodes an object's state: struct v1 for a plain object, v2 (compat 2) when it has snapshot state. */
export function encodeObjectState(s: ObjectState): Uint8Array {
  assert(s.version >= 0n && s.version < 1n << 64n, 'object version is a u64');
  assert(Number.isSafeInteger(s.mtimeMs) && s.mtimeMs >= 0, 'mtime is a non-negative integer');
  const clones = s.clones ?? [];
  for (let i = 1; i < clones.length; i++) assert(clones[i]!.cloneId > clones[i - 1]!.cloneId, 'clones ascending by id');
  const snapset = s.snapset ?? EMPTY;
  const snappy = s.whiteout === true || snapset.length > 0 || clones.length > 0;
  let bytes = sizeOf(s) + snapset.length + 16;
  for (const c of clones) bytes += sizeOf(c) + 32;
  const e = new Encoder(bytes);
  // A plain object keeps its v1 bytes (older readers, and the crcs scrub recorded for it).
  e.struct(snappy ? BLOB_V : 1, snappy ? 2 : 1, (b) => {
    b.u64(s.version).u53(s.mtimeMs).bytes(s.data);
    b.array(sortedEntries(s.xattrs), (x, [k, v]) => x.string(k).bytes(v));
    b.bytes(s.omapHeader);
    b.array(sortedEntries(s.omap), (x, [k, v]) => x.string(k).bytes(v));
    if (!snappy) return;
    b.bool(s.whiteout === true).bytes(snapset);
    b.array(clones, (x, c) => {
      x.u64(c.cloneId).u64(c.version).u53(c.mtimeMs).bytes(c.data);
      x.array(sortedEntries(c.xattrs), (y, [k, v]) => y.string(k).bytes(v));
      x.bytes(c.omapHeader);
      x.array(sortedEntries(c.omap), (y, [k, v]) => y.string(k).bytes(v));
    });
  });
  return e.finish();
}

/**
 * Decodes {@link encodeObjectState}'s bytes (v1 or v2). The result aliases `blob`; a v1 blob
 * (and a v2 blob without snapshot state) decodes without `whiteout`, `snapset` or `clones`.
 * @throws AspenError E_DECODE on malformed bytes, a duplicate key or clones out of order.
 */
export function decodeObjectState(blob: Uint8Array): ObjectState {
  const d = new Decoder(blob);
  const s = d.struct(BLOB_V, 'object state', (b, v): ObjectState => {
    const version = b.u64();
    const mtimeMs = b.u53();
    const data = b.bytes();
    const xattrs = decodeMap(b, 'xattr');
    const omapHeader = b.bytes();
    const omap = decodeMap(b, 'omap key');
    const state: ObjectState = { data, xattrs, omapHeader, omap, version, mtimeMs };
    if (v < 2) return state;
    const whiteout = b.bool();
    const snapset = b.bytes();
    const clones = b.array((x): CloneState => {
      const cloneId = x.u64();
      const cv = x.u64();
      const cm = x.u53();
      const cdata = x.bytes();
      const cx = decodeMap(x, 'clone xattr');
      const ch = x.bytes();
      return { cloneId, version: cv, mtimeMs: cm, data: cdata, xattrs: cx, omapHeader: ch, omap: decodeMap(x, 'clone omap key') };
    });
    for (let i = 1; i < clones.length; i++) if (clones[i]!.cloneId <= clones[i - 1]!.cloneId) throw new AspenError('E_DECODE', 'clones out of order');
    // Absent snapshot state is left out, so a plain object decodes the same from v1 and v2.
    if (whiteout) state.whiteout = true;
    if (snapset.length > 0) state.snapset = snapset;
    if (clones.length > 0) state.clones = clones;
    return state;
  });
  d.done('object state');
  return s;
}

/** The outcome of {@link applyOsdOps}. */
export interface ApplyOutcome {
  /** 0, or the code of the failing guard/op (nothing is to be applied then). */
  readonly code: 0 | string;
  readonly message: string;
  /** For a mutating request that succeeded: the new state, or null when it removes the object. */
  readonly next: ObjectState | null | undefined;
  /** Whether the request mutates (then `next` says what to write). */
  readonly mutates: boolean;
  /** The object's version after the request (its current one for reads and failures). */
  readonly version: bigint;
  readonly results: OsdOpResult[];
}

function fail(code: string, message: string, version: bigint): ApplyOutcome {
  return { code, message, next: undefined, mutates: false, version, results: [] };
}

/** Writes `src` at `offset` of `data`, growing it (holes are zeros). */
function writeAt(data: Uint8Array, offset: number, src: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.max(data.length, offset + src.length));
  out.set(data);
  out.set(src, offset);
  return out;
}

function resize(data: Uint8Array, size: number): Uint8Array {
  if (size === data.length) return data;
  const out = new Uint8Array(size);
  out.set(size < data.length ? data.subarray(0, size) : data);
  return out;
}

/**
 * Applies a compound op list to `cur` (null: the object does not exist), as
 * op-exec.ts's executeOps does against the store. Pure: `cur` is not modified.
 * @param nowMs the mtime to stamp on a mutation.
 */
export function applyOsdOps(cur: ObjectState | null, ops: readonly OsdOp[], nowMs: number): ApplyOutcome {
  assert(ops.length > 0, 'a request has ops');
  const curVersion = cur?.version ?? 0n;
  for (const op of ops) {
    if (!isGuard(op)) continue;
    switch (op.op) {
      case 'assert_exists':
        if (cur === null) return fail('ENOENT', 'object does not exist', curVersion);
        break;
      case 'assert_version':
        if (cur === null) return fail('ENOENT', 'object does not exist', curVersion);
        if (cur.version !== op.version) return fail('ECANCELED', `object version is ${cur.version}, not ${op.version}`, curVersion);
        break;
      case 'cmpxattr':
        if (cur === null) return fail('ENOENT', 'object does not exist', curVersion);
        if (!cmpHolds(op.cmp, cur.xattrs.get(op.name) ?? EMPTY, op.value)) return fail('ECANCELED', `xattr ${op.name} comparison (${op.cmp}) failed`, curVersion);
        break;
      case 'omap_cmp': {
        if (cur === null) return fail('ENOENT', 'object does not exist', curVersion);
        const actual = cur.omap.get(op.key);
        if (actual === undefined) return fail('ECANCELED', `omap key ${op.key} does not exist`, curVersion);
        if (!cmpHolds(op.cmp, actual, op.value)) return fail('ECANCELED', `omap key ${op.key} comparison (${op.cmp}) failed`, curVersion);
        break;
      }
      default:
        break;
    }
  }
  try {
    return ops.some(isMutation) ? mutate(cur, ops, nowMs) : readOps(cur, ops);
  } catch (err) {
    if (err instanceof AspenError && (err.code === 'EINVAL' || err.code === 'ENOENT')) return fail(err.code, err.message, curVersion);
    throw err;
  }
}

function mutate(cur: ObjectState | null, ops: readonly OsdOp[], nowMs: number): ApplyOutcome {
  let s: ObjectState | null = cur === null ? null : { ...cur, xattrs: new Map(cur.xattrs), omap: new Map(cur.omap) };
  const results: OsdOpResult[] = [];
  const curVersion = cur?.version ?? 0n;
  const need = (what: string): ObjectState => {
    if (s === null) throw new AspenError('ENOENT', `${what}: object does not exist`);
    return s;
  };
  const ensure = (): ObjectState => {
    s ??= { ...emptyObjectState(), version: curVersion };
    return s;
  };
  for (const op of ops) {
    if (isGuard(op)) {
      results.push({ code: 0, kind: 'none' });
      continue;
    }
    switch (op.op) {
      case 'create':
        if (s !== null && op.exclusive) return fail('EEXIST', 'object exists', curVersion);
        ensure();
        break;
      case 'write': { const o = ensure(); o.data = writeAt(o.data, op.offset, op.data); break; }
      case 'writefull': ensure().data = op.data.slice(); break;
      case 'append': { const o = ensure(); o.data = writeAt(o.data, o.data.length, op.data); break; }
      case 'truncate': { const o = need('truncate'); o.data = resize(o.data, op.size); break; }
      case 'zero': {
        const o = need('zero');
        if (op.offset < o.data.length) {
          const end = Math.min(o.data.length, op.offset + op.length);
          o.data = o.data.slice();
          o.data.fill(0, op.offset, end);
        }
        break;
      }
      case 'remove': need('remove'); s = null; break;
      case 'setxattr': ensure().xattrs.set(op.name, op.value.slice()); break;
      case 'rmxattr': need('rmxattr').xattrs.delete(op.name); break;
      case 'omap_set': { const o = ensure(); for (const [k, v] of op.entries) o.omap.set(k, v.slice()); break; }
      case 'omap_rm': { const o = need('omap_rm'); for (const k of op.keys) o.omap.delete(k); break; }
      case 'omap_clear': need('omap_clear').omap.clear(); break;
      case 'omap_set_header': ensure().omapHeader = op.data.slice(); break;
      default:
        if (!isMutation(op)) throw new AspenError('EINVAL', `a write operation cannot also read (${op.op}); send reads separately`);
        throw new AspenError('EINVAL', `unsupported op ${op.op}`);
    }
    results.push({ code: 0, kind: 'none' });
  }
  const next: ObjectState | null = s;
  if (next === null) return { code: 0, message: '', next: null, mutates: cur !== null, version: curVersion + 1n, results };
  next.version = curVersion + 1n;
  next.mtimeMs = nowMs;
  assert(next !== cur, 'a mutation never modifies the state it read');
  return { code: 0, message: '', next, mutates: true, version: next.version, results };
}

function readOps(cur: ObjectState | null, ops: readonly OsdOp[]): ApplyOutcome {
  const version = cur?.version ?? 0n;
  if (cur === null) {
    if (ops.some((o) => !isGuard(o))) return fail('ENOENT', 'object does not exist', version);
    return { code: 0, message: '', next: undefined, mutates: false, version, results: ops.map(() => ({ code: 0, kind: 'none' })) };
  }
  const results: OsdOpResult[] = [];
  const range = (offset: number, length: number): Uint8Array => {
    if (offset >= cur.data.length) return EMPTY;
    const end = length === 0 ? cur.data.length : Math.min(cur.data.length, offset + length);
    return cur.data.subarray(offset, end);
  };
  const page = (entries: [string, Uint8Array][], startAfter: string, max: number): { out: [string, Uint8Array][]; more: boolean } => {
    const after = entries.filter(([k]) => startAfter === '' || k > startAfter);
    const n = Math.min(max, OMAP_PAGE_MAX);
    return { out: after.slice(0, n), more: after.length > n };
  };
  for (const op of ops) {
    switch (op.op) {
      case 'assert_exists': case 'assert_version': case 'cmpxattr': case 'omap_cmp':
        results.push({ code: 0, kind: 'none' });
        break;
      case 'read': results.push({ code: 0, kind: 'data', data: range(op.offset, op.length) }); break;
      case 'sparse_read': {
        const data = range(op.offset, op.length);
        results.push({ code: 0, kind: 'extents', extents: data.length === 0 ? [] : [[op.offset, data.length]], data });
        break;
      }
      case 'stat': results.push({ code: 0, kind: 'stat', sizeBytes: cur.data.length, mtimeMs: cur.mtimeMs }); break;
      case 'getxattr': {
        const v = cur.xattrs.get(op.name);
        results.push(v === undefined ? { code: 'ENOENT', kind: 'error', message: `no xattr ${op.name}` } : { code: 0, kind: 'data', data: v });
        break;
      }
      case 'getxattrs': results.push({ code: 0, kind: 'xattrs', entries: sortedEntries(cur.xattrs) }); break;
      case 'omap_get_keys': {
        const p = page(sortedEntries(cur.omap), op.startAfter, op.max);
        results.push({ code: 0, kind: 'keys', keys: p.out.map(([k]) => k), more: p.more });
        break;
      }
      case 'omap_get_vals': {
        const all = sortedEntries(cur.omap).filter(([k]) => op.prefix === '' || k.startsWith(op.prefix));
        const p = page(all, op.startAfter, op.max);
        results.push({ code: 0, kind: 'omap', entries: p.out, more: p.more });
        break;
      }
      case 'omap_get_vals_by_keys':
        results.push({ code: 0, kind: 'omap', entries: op.keys.filter((k) => cur.omap.has(k)).map((k) => [k, cur.omap.get(k)!]), more: false });
        break;
      case 'omap_get_header': results.push({ code: 0, kind: 'data', data: cur.omapHeader }); break;
      default:
        throw new AspenError('EINVAL', `unexpected op ${op.op} in a read request`);
    }
  }
  const firstError = results.find((r) => r.code !== 0);
  const code = firstError === undefined ? 0 : firstError.code;
  return {
    code: code !== 0 && isErrorCode(code) ? code : 0, message: firstError?.kind === 'error' ? firstError.message : '',
    next: undefined, mutates: false, version, results,
  };
}
