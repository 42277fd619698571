/**
 * Object and collection identifiers of the local object store, after Ceph's `ghobject_t`
 * (src/common/hobject.h) and `coll_t` (src/osd/osd_types.h).
 *
 * An object is named by {namespace, name, snap, generation, shard}. Its *key* is a byte string
 * whose memcmp order is the store's stable listing order: namespace, then name, then snap
 * (ascending, the head after every snap as Ceph's CEPH_NOSNAP sorts), then generation, then
 * shard. Names and namespaces are UTF-8 without NUL (NUL terminates them inside the key).
 */
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';

/** The head (writable, current) version of an object: Ceph's CEPH_NOSNAP (-2 as u64). */
export const SNAP_HEAD = 0xfffffffffffffffen;
/** "No generation" (Ceph ghobject_t::NO_GEN): the object is not a rollback generation. */
export const NO_GEN = 0xffffffffffffffffn;
/** "No shard" (Ceph shard_id_t::NO_SHARD): a replicated pool's object. */
export const NO_SHARD = -1;
/** Longest object name, bytes (Ceph osd_max_object_name_len default 2048). */
export const OBJECT_NAME_MAX_BYTES = 2048;
/** Longest namespace, bytes (Ceph osd_max_object_namespace_len default 256). */
export const NAMESPACE_MAX_BYTES = 256;

/**
 * Identifies one object in a collection (Ceph ghobject_t without pool/hash, which the
 * collection implies). Omitted fields take their defaults: namespace `''`, snap `'head'`,
 * generation {@link NO_GEN}, shard {@link NO_SHARD}.
 */
export interface ObjectId {
  /** Object name: UTF-8, 1..{@link OBJECT_NAME_MAX_BYTES} bytes, no NUL. */
  readonly name: string;
  /** RADOS namespace; `''` (the default namespace) when omitted. */
  readonly namespace?: string;
  /** `'head'` or a snap id (a clone's snap, 0 <= snap < SNAP_HEAD). */
  readonly snap?: 'head' | bigint;
  /** Generation (EC rollback objects); {@link NO_GEN} when omitted. */
  readonly generation?: bigint;
  /** EC shard 0..254; {@link NO_SHARD} (-1) when omitted. */
  readonly shard?: number;
}

/** An {@link ObjectId} with every field filled in. */
export interface FullObjectId {
  readonly name: string;
  readonly namespace: string;
  readonly snap: 'head' | bigint;
  readonly generation: bigint;
  readonly shard: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function checkText(s: string, what: string, minBytes: number, maxBytes: number): Uint8Array {
  if (typeof s !== 'string') throw new AspenError('EINVAL', `${what} must be a string`);
  if (s.includes('\0')) throw new AspenError('EINVAL', `${what} must not contain NUL`, { [what]: s });
  const b = enc.encode(s);
  if (b.length < minBytes || b.length > maxBytes) throw new AspenError('EINVAL', `${what} must be ${minBytes}..${maxBytes} bytes, got ${b.length}`, { [what]: s });
  return b;
}

/**
 * Fills defaults and validates an object id.
 * @throws AspenError EINVAL for an empty/oversized/NUL-containing name or namespace, a snap id
 *   out of [0, SNAP_HEAD), a generation out of u64, or a shard outside -1..254.
 */
export function normalizeOid(oid: ObjectId): FullObjectId {
  if (typeof oid !== 'object' || oid === null) throw new AspenError('EINVAL', 'object id must be an object');
  checkText(oid.name, 'name', 1, OBJECT_NAME_MAX_BYTES);
  const namespace = oid.namespace ?? '';
  checkText(namespace, 'namespace', 0, NAMESPACE_MAX_BYTES);
  const snap = oid.snap ?? 'head';
  if (snap !== 'head' && (typeof snap !== 'bigint' || snap < 0n || snap >= SNAP_HEAD)) {
    throw new AspenError('EINVAL', `snap must be 'head' or a bigint in [0, 2^64-2), got ${String(snap)}`);
  }
  const generation = oid.generation ?? NO_GEN;
  if (typeof generation !== 'bigint' || generation < 0n || generation > NO_GEN) throw new AspenError('EINVAL', `generation out of range: ${String(generation)}`);
  const shard = oid.shard ?? NO_SHARD;
  if (!Number.isInteger(shard) || shard < -1 || shard > 254) throw new AspenError('EINVAL', `shard must be -1..254, got ${shard}`);
  return { name: oid.name, namespace, snap, generation, shard };
}

/**
 * The memcmp-ordered key of an object: `namespace NUL name NUL snap(u64 BE) gen(u64 BE) shard(u8, 255 = none)`.
 * @throws AspenError EINVAL for an invalid id (see {@link normalizeOid}).
 */
export function encodeObjectKey(oid: ObjectId): Uint8Array {
  const o = normalizeOid(oid);
  const ns = enc.encode(o.namespace);
  const name = enc.encode(o.name);
  const out = new Uint8Array(ns.length + 1 + name.length + 1 + 8 + 8 + 1);
  const view = new DataView(out.buffer);
  out.set(ns, 0);
  let p = ns.length + 1;
  out.set(name, p);
  p += name.length + 1;
  view.setBigUint64(p, o.snap === 'head' ? SNAP_HEAD : o.snap, false);
  view.setBigUint64(p + 8, o.generation, false);
  out[p + 16] = o.shard === NO_SHARD ? 255 : o.shard;
  assert(p + 17 === out.length, 'object key length');
  return out;
}

/**
 * Inverse of {@link encodeObjectKey}.
 * @throws AspenError E_CORRUPT when the bytes are not a valid key (a damaged index row).
 */
export function decodeObjectKey(key: Uint8Array): FullObjectId {
  const nsEnd = key.indexOf(0);
  const nameEnd = nsEnd < 0 ? -1 : key.indexOf(0, nsEnd + 1);
  if (nsEnd < 0 || nameEnd < 0 || key.length !== nameEnd + 1 + 17) throw new AspenError('E_CORRUPT', 'malformed object key');
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const snapRaw = view.getBigUint64(nameEnd + 1, false);
  const shardRaw = key[nameEnd + 17]!;
  try {
    const oid = {
      namespace: dec.decode(key.subarray(0, nsEnd)),
      name: dec.decode(key.subarray(nsEnd + 1, nameEnd)),
      snap: snapRaw === SNAP_HEAD ? ('head' as const) : snapRaw,
      generation: view.getBigUint64(nameEnd + 9, false),
      shard: shardRaw === 255 ? NO_SHARD : shardRaw,
    };
    assert(oid.name.length > 0, 'decoded object name is empty');
    return oid;
  } catch (err) {
    if (err instanceof AspenError) throw err;
    throw new AspenError('E_CORRUPT', `malformed object key: ${String(err)}`);
  }
}

/** A short printable form for messages and error details: `ns/name@snap[.gen][sN]`. */
export function formatOid(oid: ObjectId): string {
  const snap = oid.snap === undefined || oid.snap === 'head' ? 'head' : oid.snap.toString(16);
  const gen = oid.generation === undefined || oid.generation === NO_GEN ? '' : `.g${oid.generation}`;
  const shard = oid.shard === undefined || oid.shard === NO_SHARD ? '' : `s${oid.shard}`;
  return `${oid.namespace ?? ''}/${oid.name}@${snap}${gen}${shard}`;
}

/** True when two ids name the same object (after defaults). */
export function sameOid(a: ObjectId, b: ObjectId): boolean {
  const x = normalizeOid(a);
  const y = normalizeOid(b);
  return x.name === y.name && x.namespace === y.namespace && x.snap === y.snap && x.generation === y.generation && x.shard === y.shard;
}

const COLL_RE = /^(?:meta|(\d+)\.([0-9a-f]+)(?:s(\d+))?_(head|TEMP))$/;

/**
 * Validates a collection name as Ceph's coll_t prints it: `meta`, `<pool>.<seed hex>_head`,
 * `<pool>.<seed hex>s<shard>_head` (an EC shard), or the `_TEMP` variants (recovery temp objects).
 * @throws AspenError EINVAL otherwise.
 */
export function checkCollectionName(name: string): string {
  if (typeof name !== 'string' || !COLL_RE.test(name)) {
    throw new AspenError('EINVAL', `invalid collection name ${JSON.stringify(name)} (expected meta, POOL.SEEDHEX_head, POOL.SEEDHEXsSHARD_head or _TEMP)`);
  }
  return name;
}

/**
 * Ceph's collection name for a PG shard: `1.1f_head`, `1.1fs0_head` for EC shard 0, `1.1f_TEMP`
 * for its temp collection.
 */
export function collectionName(pool: number, seed: number, options: { shard?: number; temp?: boolean } = {}): string {
  assert(Number.isSafeInteger(pool) && pool >= 0, 'pool must be a non-negative integer');
  assert(Number.isSafeInteger(seed) && seed >= 0, 'seed must be a non-negative integer');
  const shard = options.shard === undefined || options.shard === NO_SHARD ? '' : `s${options.shard}`;
  return checkCollectionName(`${pool}.${seed.toString(16)}${shard}_${options.temp === true ? 'TEMP' : 'head'}`);
}
