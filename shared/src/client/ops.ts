/**
 * Object operations, as librados' ObjectWriteOperation / ObjectReadOperation and Ceph's
 * MOSDOp (src/messages/MOSDOp.h, src/include/rados.h CEPH_OSD_OP_*): a request names one
 * object and carries a compound list of ops that the PG's primary executes atomically —
 * guards first, then mutations as one transaction, then reads.
 *
 * Codecs are versioned structs (CONVENTIONS.md item 4); bulk data travels as Uint8Array
 * segments that alias the input on decode.
 */
import { AspenError } from '../errors.ts';
import { assertNever } from '../assert.ts';
import { Decoder, Encoder } from '../codec.ts';

/** Comparison of a guard (Ceph CEPH_OSD_CMPXATTR_OP_*), on bytes (lexicographic). */
export type CmpOp = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte';
const CMP_OPS: readonly CmpOp[] = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'];

/** One op of a compound request. Offsets and lengths in bytes. */
export type OsdOp =
  // guards: the whole request fails (nothing applied) when one does not hold
  | { op: 'assert_exists' }
  | { op: 'assert_version'; version: bigint }
  | { op: 'cmpxattr'; name: string; cmp: CmpOp; value: Uint8Array }
  /** A missing key compares as an empty value (Ceph OMAP_CMP): `eq` with an empty value asserts absence. */
  | { op: 'omap_cmp'; key: string; cmp: CmpOp; value: Uint8Array }
  // mutations
  | { op: 'create'; exclusive: boolean }
  | { op: 'write'; offset: number; data: Uint8Array }
  | { op: 'writefull'; data: Uint8Array }
  | { op: 'append'; data: Uint8Array }
  | { op: 'truncate'; size: number }
  | { op: 'zero'; offset: number; length: number }
  | { op: 'remove' }
  | { op: 'setxattr'; name: string; value: Uint8Array }
  | { op: 'rmxattr'; name: string }
  | { op: 'omap_set'; entries: [string, Uint8Array][] }
  | { op: 'omap_rm'; keys: string[] }
  | { op: 'omap_clear' }
  | { op: 'omap_set_header'; data: Uint8Array }
  // reads
  | { op: 'read'; offset: number; length: number }
  | { op: 'sparse_read'; offset: number; length: number }
  | { op: 'stat' }
  | { op: 'getxattr'; name: string }
  | { op: 'getxattrs' }
  | { op: 'omap_get_keys'; startAfter: string; max: number }
  | { op: 'omap_get_vals'; startAfter: string; prefix: string; max: number }
  | { op: 'omap_get_vals_by_keys'; keys: string[] }
  | { op: 'omap_get_header' };

/**
 * Whether a guard's comparison holds: `actual` vs `expected` as unsigned bytes,
 * lexicographically (Ceph compares xattr and omap values as strings of bytes).
 */
export function cmpHolds(cmp: CmpOp, actual: Uint8Array, expected: Uint8Array): boolean {
  const c = Buffer.compare(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength), Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength));
  switch (cmp) {
    case 'eq': return c === 0;
    case 'ne': return c !== 0;
    case 'gt': return c > 0;
    case 'gte': return c >= 0;
    case 'lt': return c < 0;
    case 'lte': return c <= 0;
    default: return assertNever(cmp, 'comparison');
  }
}

/** The kind of each op. */
export type OsdOpKind = OsdOp['op'];

const GUARDS: ReadonlySet<OsdOpKind> = new Set(['assert_exists', 'assert_version', 'cmpxattr', 'omap_cmp']);
const READS: ReadonlySet<OsdOpKind> = new Set(['read', 'sparse_read', 'stat', 'getxattr', 'getxattrs', 'omap_get_keys', 'omap_get_vals', 'omap_get_vals_by_keys', 'omap_get_header']);

/** Whether an op changes the object (a write op, in Ceph's CEPH_OSD_FLAG_WRITE sense). */
export function isMutation(op: OsdOp): boolean {
  return !GUARDS.has(op.op) && !READS.has(op.op);
}
export function isGuard(op: OsdOp): boolean {
  return GUARDS.has(op.op);
}

/** Largest number of ops in one request (named limit). */
export const OPS_PER_REQUEST_MAX = 1024;
/** Largest omap page a read may ask for. */
export const OMAP_PAGE_MAX = 100_000;

const OP_CODES: readonly OsdOpKind[] = [
  'assert_exists', 'assert_version', 'cmpxattr', 'omap_cmp', 'create', 'write', 'writefull', 'append', 'truncate', 'zero',
  'remove', 'setxattr', 'rmxattr', 'omap_set', 'omap_rm', 'omap_clear', 'omap_set_header', 'read', 'sparse_read', 'stat',
  'getxattr', 'getxattrs', 'omap_get_keys', 'omap_get_vals', 'omap_get_vals_by_keys', 'omap_get_header',
];
const OP_CODE = new Map(OP_CODES.map((k, i) => [k, i] as const));

/**
 * Bulk payloads (write data, read results) travel in the messenger's data segment, not in
 * the metadata: the metadata records only their lengths, in op order, so a 4 MiB write is
 * never copied into a larger buffer (see ADR 0005).
 */
interface BlobSink {
  blobs: Uint8Array[];
}
interface BlobSource {
  data: Uint8Array;
  offset: number;
}

function putBlob(e: Encoder, sink: BlobSink, b: Uint8Array): void {
  e.u53(b.length);
  sink.blobs.push(b);
}

function takeBlob(d: Decoder, src: BlobSource): Uint8Array {
  const n = d.u53();
  if (src.offset + n > src.data.length) throw new AspenError('E_DECODE', `data segment too short: need ${n} bytes at ${src.offset} of ${src.data.length}`);
  const b = src.data.subarray(src.offset, src.offset + n);
  src.offset += n;
  return b;
}

/** Joins blobs into one data segment; a single blob is passed through without a copy. */
function joinBlobs(blobs: Uint8Array[]): Uint8Array {
  if (blobs.length === 0) return new Uint8Array(0);
  if (blobs.length === 1) return blobs[0]!;
  return Buffer.concat(blobs);
}

/** A message as the messenger carries it: small metadata and a bulk data segment. */
export interface EncodedMessage {
  meta: Uint8Array;
  data: Uint8Array;
}

function encodeOp(e: Encoder, o: OsdOp, sink: BlobSink): void {
  e.u8(OP_CODE.get(o.op)!);
  switch (o.op) {
    case 'assert_exists': case 'remove': case 'omap_clear': case 'stat': case 'getxattrs': case 'omap_get_header':
      return;
    case 'assert_version': e.u64(o.version); return;
    case 'cmpxattr': e.string(o.name).u8(CMP_OPS.indexOf(o.cmp)).bytes(o.value); return;
    case 'omap_cmp': e.string(o.key).u8(CMP_OPS.indexOf(o.cmp)).bytes(o.value); return;
    case 'create': e.bool(o.exclusive); return;
    case 'write': e.u53(o.offset); putBlob(e, sink, o.data); return;
    case 'writefull': case 'append': putBlob(e, sink, o.data); return;
    case 'omap_set_header': e.bytes(o.data); return;
    case 'truncate': e.u53(o.size); return;
    case 'zero': case 'read': case 'sparse_read': e.u53(o.offset).u53(o.length); return;
    case 'setxattr': e.string(o.name).bytes(o.value); return;
    case 'rmxattr': case 'getxattr': e.string(o.name); return;
    case 'omap_set': e.array(o.entries, (ee, [k, v]) => ee.string(k).bytes(v)); return;
    case 'omap_rm': case 'omap_get_vals_by_keys': e.array(o.keys, (ee, k) => ee.string(k)); return;
    case 'omap_get_keys': e.string(o.startAfter).u32(o.max); return;
    case 'omap_get_vals': e.string(o.startAfter).string(o.prefix).u32(o.max); return;
    default: assertNever(o, 'osd op');
  }
}

function decodeCmp(d: Decoder): CmpOp {
  const c = CMP_OPS[d.u8()];
  if (c === undefined) throw new AspenError('E_DECODE', 'unknown comparison operator');
  return c;
}

function checkUint(n: number, what: string): number {
  if (n > Number.MAX_SAFE_INTEGER) throw new AspenError('E_DECODE', `${what} too large`);
  return n;
}

function decodeOp(d: Decoder, src: BlobSource): OsdOp {
  const code = d.u8();
  const op = OP_CODES[code];
  if (op === undefined) throw new AspenError('E_DECODE', `unknown op code ${code}`);
  switch (op) {
    case 'assert_exists': case 'remove': case 'omap_clear': case 'stat': case 'getxattrs': case 'omap_get_header':
      return { op };
    case 'assert_version': return { op, version: d.u64() };
    case 'cmpxattr': return { op, name: d.string(), cmp: decodeCmp(d), value: d.bytes() };
    case 'omap_cmp': return { op, key: d.string(), cmp: decodeCmp(d), value: d.bytes() };
    case 'create': return { op, exclusive: d.bool() };
    case 'write': return { op, offset: checkUint(d.u53(), 'offset'), data: takeBlob(d, src) };
    case 'writefull': case 'append': return { op, data: takeBlob(d, src) };
    case 'omap_set_header': return { op, data: d.bytes() };
    case 'truncate': return { op, size: d.u53() };
    case 'zero': case 'read': case 'sparse_read': return { op, offset: d.u53(), length: d.u53() };
    case 'setxattr': return { op, name: d.string(), value: d.bytes() };
    case 'rmxattr': case 'getxattr': return { op, name: d.string() };
    case 'omap_set': return { op, entries: d.array((dd) => [dd.string(), dd.bytes()] as [string, Uint8Array]) };
    case 'omap_rm': case 'omap_get_vals_by_keys': return { op, keys: d.array((dd) => dd.string()) };
    case 'omap_get_keys': return { op, startAfter: d.string(), max: d.u32() };
    case 'omap_get_vals': return { op, startAfter: d.string(), prefix: d.string(), max: d.u32() };
    default: return assertNever(op, 'osd op');
  }
}

/** A client request id (Ceph osd_reqid_t): unique per client session and transaction id. */
export interface ReqId {
  client: string;
  tid: bigint;
}

/** A snapshot context (Ceph SnapContext): the newest snap id and the existing snaps, newest first. */
export interface SnapContext {
  seq: bigint;
  snaps: bigint[];
}

/** The head (current) version of an object, as Ceph CEPH_NOSNAP. */
export const SNAP_HEAD = 0xfffffffffffffffen;

/** One request to a PG's primary (Ceph MOSDOp). */
export interface OsdRequest {
  reqid: ReqId;
  /** OSDMap epoch the client computed the target with. */
  epoch: number;
  pool: number;
  /** PG seed (the placement the client computed). */
  pgSeed: number;
  object: string;
  namespace: string;
  /** Snap id to read at ({@link SNAP_HEAD} for the head). */
  snapId: bigint;
  snapc: SnapContext;
  ops: OsdOp[];
}

const REQUEST_V = 1;

/** Encodes a request into metadata and a data segment. @throws AssertionFailure on out-of-range fields (a caller bug). */
export function encodeOsdRequest(r: OsdRequest): EncodedMessage {
  const e = new Encoder(256);
  const sink: BlobSink = { blobs: [] };
  e.struct(REQUEST_V, 1, () => {
    e.string(r.reqid.client).u64(r.reqid.tid).u32(r.epoch).u32(r.pool).u32(r.pgSeed).string(r.object).string(r.namespace)
      .u64(r.snapId).u64(r.snapc.seq).array(r.snapc.snaps, (ee, s) => ee.u64(s)).array(r.ops, (ee, o) => encodeOp(ee, o, sink));
  });
  return { meta: e.finish(), data: joinBlobs(sink.blobs) };
}

/**
 * Decodes and validates a request.
 * @throws AspenError E_DECODE on malformed bytes; EINVAL on too many ops or a bad omap page size.
 */
export function decodeOsdRequest(meta: Uint8Array, data: Uint8Array = new Uint8Array(0)): OsdRequest {
  const d = new Decoder(meta);
  const src: BlobSource = { data, offset: 0 };
  const r = d.struct(REQUEST_V, 'osd request', () => ({
    reqid: { client: d.string(), tid: d.u64() }, epoch: d.u32(), pool: d.u32(), pgSeed: d.u32(), object: d.string(), namespace: d.string(),
    snapId: d.u64(), snapc: { seq: d.u64(), snaps: d.array((dd) => dd.u64()) }, ops: d.array((dd) => decodeOp(dd, src)),
  }));
  d.done('osd request');
  if (src.offset !== data.length) throw new AspenError('E_DECODE', `${data.length - src.offset} unreferenced bytes in the data segment`);
  if (r.ops.length === 0 || r.ops.length > OPS_PER_REQUEST_MAX) throw new AspenError('EINVAL', `a request needs 1..${OPS_PER_REQUEST_MAX} ops, got ${r.ops.length}`);
  for (const o of r.ops) {
    if ((o.op === 'omap_get_keys' || o.op === 'omap_get_vals') && (o.max < 1 || o.max > OMAP_PAGE_MAX)) throw new AspenError('EINVAL', `omap page size must be 1..${OMAP_PAGE_MAX}`);
  }
  return r;
}

/** The result of one op: a code (0 or an AspenError code) and op-specific output. */
export type OsdOpResult =
  | { code: 0; kind: 'none' }
  | { code: 0; kind: 'data'; data: Uint8Array }
  | { code: 0; kind: 'extents'; extents: [number, number][]; data: Uint8Array }
  | { code: 0; kind: 'stat'; sizeBytes: number; mtimeMs: number }
  | { code: 0; kind: 'xattrs'; entries: [string, Uint8Array][] }
  | { code: 0; kind: 'omap'; entries: [string, Uint8Array][]; more: boolean }
  | { code: 0; kind: 'keys'; keys: string[]; more: boolean }
  | { code: string; kind: 'error'; message: string };

/** The reply to a request (Ceph MOSDOpReply). */
export interface OsdReply {
  /** 0, or the code of the first failing op (ENOENT, EEXIST, ECANCELED for a failed guard …). */
  code: 0 | string;
  message: string;
  /** Object version after the request (Ceph user_version). */
  version: bigint;
  /** The epoch the OSD handled it at; on ESTALE the client refreshes its map and resends. */
  epoch: number;
  results: OsdOpResult[];
}

const REPLY_V = 1;
const RESULT_KINDS = ['none', 'data', 'extents', 'stat', 'xattrs', 'omap', 'keys', 'error'] as const;

/** Encodes a reply into metadata and a data segment. */
export function encodeOsdReply(r: OsdReply): EncodedMessage {
  const e = new Encoder(128);
  const sink: BlobSink = { blobs: [] };
  e.struct(REPLY_V, 1, () => {
    e.string(r.code === 0 ? '' : r.code).string(r.message).u64(r.version).u32(r.epoch).array(r.results, (ee, x) => {
      ee.u8(RESULT_KINDS.indexOf(x.kind));
      switch (x.kind) {
        case 'none': break;
        case 'data': putBlob(ee, sink, x.data); break;
        case 'extents': ee.array(x.extents, (e3, [o, l]) => e3.u53(o).u53(l)); putBlob(ee, sink, x.data); break;
        case 'stat': ee.u53(x.sizeBytes).u53(x.mtimeMs); break;
        case 'xattrs': case 'omap': ee.array(x.entries, (e3, [k, v]) => e3.string(k).bytes(v)); if (x.kind === 'omap') ee.bool(x.more); break;
        case 'keys': ee.array(x.keys, (e3, k) => e3.string(k)).bool(x.more); break;
        case 'error': ee.string(x.code).string(x.message); break;
        default: assertNever(x, 'op result');
      }
    });
  });
  return { meta: e.finish(), data: joinBlobs(sink.blobs) };
}

/** Decodes a reply. @throws AspenError E_DECODE on malformed bytes. */
export function decodeOsdReply(meta: Uint8Array, data: Uint8Array = new Uint8Array(0)): OsdReply {
  const d = new Decoder(meta);
  const src: BlobSource = { data, offset: 0 };
  const r = d.struct(REPLY_V, 'osd reply', () => {
    const code = d.string();
    return {
      code: code === '' ? (0 as const) : code, message: d.string(), version: d.u64(), epoch: d.u32(),
      results: d.array((dd): OsdOpResult => {
        const kind = RESULT_KINDS[dd.u8()];
        switch (kind) {
          case 'none': return { code: 0, kind };
          case 'data': return { code: 0, kind, data: takeBlob(dd, src) };
          case 'extents': return { code: 0, kind, extents: dd.array((d3) => [d3.u53(), d3.u53()] as [number, number]), data: takeBlob(dd, src) };
          case 'stat': return { code: 0, kind, sizeBytes: dd.u53(), mtimeMs: dd.u53() };
          case 'xattrs': return { code: 0, kind, entries: dd.array((d3) => [d3.string(), d3.bytes()] as [string, Uint8Array]) };
          case 'omap': return { code: 0, kind, entries: dd.array((d3) => [d3.string(), d3.bytes()] as [string, Uint8Array]), more: dd.bool() };
          case 'keys': return { code: 0, kind, keys: dd.array((d3) => d3.string()), more: dd.bool() };
          case 'error': return { code: dd.string(), kind, message: dd.string() };
          case undefined: throw new AspenError('E_DECODE', 'unknown op result kind');
          default: return assertNever(kind, 'op result kind');
        }
      }),
    };
  });
  d.done('osd reply');
  if (src.offset !== data.length) throw new AspenError('E_DECODE', `${data.length - src.offset} unreferenced bytes in the data segment`);
  return r;
}
