/**
 * The on-RADOS layout of an RBD image, as Ceph's format 2 (src/librbd/Utils.cc,
 * src/cls/rbd/cls_rbd.cc): object names, object-size orders, and the mapping of an image byte
 * range onto data objects (Ceph's Striper with stripe_count 1). Pure functions only.
 */
import { AspenError, assert } from '@aspen/shared';

/** The directory object: omap `name_<name>` → id and `id_<id>` → name (Ceph RBD_DIRECTORY). */
export const RBD_DIRECTORY = 'rbd_directory';
/** Prefix of header objects, `rbd_header.<id>` (Ceph RBD_HEADER_PREFIX). */
export const RBD_HEADER_PREFIX = 'rbd_header.';
/** Prefix of data objects, `rbd_data.<id>.<object number, 16 hex digits>` (Ceph RBD_DATA_PREFIX). */
export const RBD_DATA_PREFIX = 'rbd_data.';

/** Smallest object size order (4 KiB), as Ceph's `rbd create --object-size` accepts. */
export const ORDER_MIN = 12;
/** Largest object size order (32 MiB), as Ceph. */
export const ORDER_MAX = 25;
/** Default object size order: 4 MiB objects (Ceph rbd_default_order 22). */
export const ORDER_DEFAULT = 22;
/** Largest image size we accept, bytes: object numbers and offsets must stay exact in a JS number. */
export const IMAGE_SIZE_MAX_BYTES = Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % (1 << ORDER_MAX));

/** The header object of image `id`. */
export function headerObjectName(id: string): string {
  return `${RBD_HEADER_PREFIX}${id}`;
}

/**
 * The data-object prefix of image `id` (Ceph's `block_name_prefix`), without the trailing dot:
 * `rbd_data.<id>`, or `rbd_data.<image pool id>.<id>` for an image with a separate data pool
 * (`imagePoolId` given; Ceph CreateRequest), so images of different pools sharing one data
 * pool cannot collide.
 */
export function dataObjectPrefix(id: string, imagePoolId?: number): string {
  assert(imagePoolId === undefined || (Number.isSafeInteger(imagePoolId) && imagePoolId >= 0), 'a valid pool id');
  return imagePoolId === undefined ? `${RBD_DATA_PREFIX}${id}` : `${RBD_DATA_PREFIX}${imagePoolId}.${id}`;
}

/**
 * The name of data object `objectNo` under `prefix` (Ceph `rbd_data.<id>.%016llx`).
 * @throws AssertionFailure for a negative or non-integer object number (a caller bug).
 */
export function dataObjectName(prefix: string, objectNo: number): string {
  assert(Number.isSafeInteger(objectNo) && objectNo >= 0, `object number ${objectNo} must be a non-negative integer`);
  return `${prefix}.${objectNo.toString(16).padStart(16, '0')}`;
}

/**
 * The object number of data object `name` under `prefix`, or null when `name` is not one of
 * its data objects (another image's, the header, a malformed suffix).
 */
export function parseDataObjectName(prefix: string, name: string): number | null {
  if (!name.startsWith(`${prefix}.`)) return null;
  const hex = name.slice(prefix.length + 1);
  if (!/^[0-9a-f]{16}$/.test(hex)) return null;
  const n = Number.parseInt(hex, 16);
  return Number.isSafeInteger(n) ? n : null;
}

/** Whether `id` is a well-formed image id (lower-case hex, 8–32 digits, as Ceph's). */
export function isImageId(id: string): boolean {
  return /^[0-9a-f]{8,32}$/.test(id);
}

/**
 * Checks an image or snapshot name: non-empty, at most 255 bytes, no `/` or `@` (they separate
 * pool, image and snapshot in an image spec), no control characters.
 * @throws AspenError EINVAL
 */
export function checkName(name: string, what: 'image' | 'snapshot'): string {
  if (name.length === 0 || new TextEncoder().encode(name).length > 255) throw new AspenError('EINVAL', `${what} name must be 1..255 bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[/@\x00-\x1f]/.test(name)) throw new AspenError('EINVAL', `${what} name '${name}' must not contain '/', '@' or control characters`);
  return name;
}

/**
 * The order (log2) of an object size in bytes.
 * @throws AspenError EINVAL unless a power of two in [4 KiB, 32 MiB] (Ceph's limits).
 */
export function orderOfObjectSize(objectSizeBytes: number): number {
  const order = Math.log2(objectSizeBytes);
  if (!Number.isInteger(order) || order < ORDER_MIN || order > ORDER_MAX) {
    throw new AspenError('EINVAL', `object size ${objectSizeBytes} must be a power of two from 4 KiB to 32 MiB`);
  }
  return order;
}

/** Number of data objects an image of `sizeBytes` spans (the last one may be partial). */
export function objectCount(sizeBytes: number, objectSizeBytes: number): number {
  assert(sizeBytes >= 0 && objectSizeBytes > 0, 'sizes must be non-negative');
  return Math.ceil(sizeBytes / objectSizeBytes);
}

/** One piece of an image byte range that falls in one data object. */
export interface ObjectExtent {
  /** The data object's number. */
  readonly objectNo: number;
  /** Offset inside the object, bytes. */
  readonly offsetInObject: number;
  readonly lengthBytes: number;
  /** Offset of this piece inside the caller's buffer (from the range's start), bytes. */
  readonly bufferOffset: number;
}

/**
 * Splits the image range [offset, offset + length) into per-object pieces, in ascending
 * order; they tile the range exactly (Ceph Striper::file_to_extents with one stripe).
 * An empty range gives no pieces.
 * @throws AssertionFailure on a negative or non-integer offset/length or object size ≤ 0 (a caller bug).
 */
export function mapExtent(offset: number, length: number, objectSizeBytes: number): ObjectExtent[] {
  assert(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0, `bad range ${offset}+${length}`);
  assert(Number.isSafeInteger(objectSizeBytes) && objectSizeBytes > 0, `bad object size ${objectSizeBytes}`);
  const out: ObjectExtent[] = [];
  let pos = offset;
  const end = offset + length;
  while (pos < end) {
    const objectNo = Math.floor(pos / objectSizeBytes);
    const offsetInObject = pos - objectNo * objectSizeBytes;
    const lengthBytes = Math.min(objectSizeBytes - offsetInObject, end - pos);
    out.push({ objectNo, offsetInObject, lengthBytes, bufferOffset: pos - offset });
    pos += lengthBytes;
  }
  assert(pos === end || length === 0, 'extents cover the range');
  return out;
}

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/**
 * Parses a size such as `20G`, `4M`, `512K`, `1.5G`, `4096`, `10GiB` (binary units, as `rbd`
 * does). A bare number is in `defaultUnit` (`rbd create --size` takes MiB; `--object-size`
 * and `--io-size` take bytes).
 * @throws AspenError EINVAL when malformed, negative, fractional in bytes, or too large.
 */
export function parseSize(text: string, defaultUnit: 'B' | 'M' = 'B'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?B)?\s*$/i.exec(text);
  if (m === null) throw new AspenError('EINVAL', `bad size '${text}' (e.g. 20G, 4M, 4096)`);
  const unit = m[2]!.toUpperCase();
  const mult = unit === '' ? (m[3] ? 1 : UNITS[defaultUnit]!) : UNITS[unit]!;
  const v = Number(m[1]) * mult;
  if (!Number.isSafeInteger(v) || v > IMAGE_SIZE_MAX_BYTES) throw new AspenError('EINVAL', `size '${text}' is not a whole number of bytes up to ${IMAGE_SIZE_MAX_BYTES}`);
  return v;
}

/** `bytes` in binary units as `rbd` prints them: `20 GiB`, `4 MiB`, `1.5 KiB`, `512 B`. */
export function formatSize(bytes: number): string {
  const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < names.length - 1) {
    v /= 1024;
    i++;
  }
  const s = Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, '');
  return `${s} ${names[i]}`;
}

/** An image spec `[POOL/]IMAGE[@SNAP]` split up. */
export interface ImageSpec {
  readonly pool: string | undefined;
  readonly image: string;
  readonly snap: string | undefined;
}

/**
 * Parses `[POOL/]IMAGE[@SNAP]` (Ceph's image-spec / snap-spec).
 * @throws AspenError EINVAL when a part is empty or the spec has extra separators.
 */
export function parseImageSpec(spec: string): ImageSpec {
  const m = /^(?:([^/@]+)\/)?([^/@]+)(?:@([^/@]+))?$/.exec(spec);
  if (m === null) throw new AspenError('EINVAL', `bad image spec '${spec}' (want [POOL/]IMAGE[@SNAP])`);
  return { pool: m[1], image: m[2]!, snap: m[3] };
}
