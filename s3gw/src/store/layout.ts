/**
 * Where the gateway keeps things (RADOS object names and record shapes), like radosgw's
 * `.rgw.root` / bucket index / data pools:
 *
 *  meta pool (`.aspen.s3.meta`):
 *    `buckets`            omap: bucket name → BucketRecord (JSON)
 *    `index.<bucketId>`   omap: the bucket index — object key → its head (ObjectEntry, JSON: the
 *                         current version or a delete marker), and `\0v<key>\0<rev>` → a noncurrent
 *                         version (versioned buckets; see versionKey)
 *    `uploads.<bucketId>` omap: upload id → UploadRecord (JSON); multipart uploads in progress
 *    `upload.<uploadId>`  omap: part number (5 digits) → PartRecord (JSON)
 *  data pool (`.aspen.s3.data`):
 *    `<segmentId>.<stripe as 8 hex>`  the bytes of one segment in STRIPE_BYTES stripes
 *
 * An object is an index entry naming its segments: one for a PUT, one per part for a
 * completed multipart upload. Segment ids are random and never reused, so an entry's bytes
 * identify one version exactly (the compare-and-swap of index updates relies on it).
 */
import { AspenError, assert } from '@aspen/shared';

export const META_POOL = '.aspen.s3.meta';
export const DATA_POOL = '.aspen.s3.data';
export const BUCKETS_OBJECT = 'buckets';
/** Bytes per data stripe: an object streams through the gateway a stripe at a time. */
export const STRIPE_BYTES = 4 * 1024 * 1024;

export const indexObject = (bucketId: string): string => `index.${bucketId}`;
export const uploadsObject = (bucketId: string): string => `uploads.${bucketId}`;
export const uploadObject = (uploadId: string): string => `upload.${uploadId}`;
export const stripeObject = (segmentId: string, stripe: number): string => `${segmentId}.${stripe.toString(16).padStart(8, '0')}`;
export const partKey = (partNumber: number): string => String(partNumber).padStart(5, '0');

/** A bucket's versioning state; absent in a record = never enabled ("unversioned"). */
export type VersioningState = 'Enabled' | 'Suspended';
/** The canned ACLs we keep (absent = private). */
export type CannedAcl = 'private' | 'public-read';

export interface BucketRecord {
  v: 1;
  id: string;
  owner: string;
  createdMs: number;
  versioning?: VersioningState;
  acl?: CannedAcl;
}

/** A run of bytes stored as stripes `<id>.<n>`. */
export interface Segment {
  id: string;
  sizeBytes: number;
}

/** One object in the bucket index. */
export interface ObjectEntry {
  v: 1;
  sizeBytes: number;
  /** Hex MD5, or `<hex md5 of part md5s>-<N>` for multipart objects; without quotes. */
  etag: string;
  mtimeMs: number;
  owner: string;
  /** Content-Type and the other stored representation headers (lower-case names). */
  headers: Record<string, string>;
  /** x-amz-meta-* without the prefix, lower-case names. */
  meta: Record<string, string>;
  checksum?: { algorithm: string; value: string };
  segments: Segment[];
  /** Orders the versions of a key, newest first (core/versioning.ts RevClock); absent in entries written before versioning existed. */
  rev?: string;
  /** The S3 version id (= rev); absent: this is the "null" version. */
  versionId?: string;
  /** A delete marker: no data (sizeBytes 0, no segments). */
  deleteMarker?: true;
  /** Heads only: the rev of the noncurrent null version, when one exists. */
  nullRev?: string;
  acl?: CannedAcl;
}

/**
 * Noncurrent versions share the index object with the heads (so one op updates both
 * atomically) under `\0v<key>\0<rev>`. Object keys never contain NUL (validateKey), so
 * these sort before every head, a key's versions are contiguous, and — revs being inverted
 * times — newest first; listing heads starts after HEADS_AFTER.
 */
export const VERSIONS_NS = '\u0000v';
export const HEADS_AFTER = '\u0000\u{10FFFF}';
export const versionKey = (key: string, rev: string): string => `${VERSIONS_NS}${key}\u0000${rev}`;
/** The omap prefix of all noncurrent versions of `key`. */
export const versionsPrefix = (key: string): string => `${VERSIONS_NS}${key}\u0000`;
/** Key and rev of a versionKey. */
export function parseVersionKey(k: string): { key: string; rev: string } {
  assert(k.startsWith(VERSIONS_NS), 'a version key');
  const nul = k.lastIndexOf('\u0000');
  assert(nul >= VERSIONS_NS.length, 'a version key has its separator');
  return { key: k.slice(VERSIONS_NS.length, nul), rev: k.slice(nul + 1) };
}

export interface UploadRecord {
  v: 1;
  key: string;
  owner: string;
  initiatedMs: number;
  headers: Record<string, string>;
  meta: Record<string, string>;
  checksumAlgorithm?: string;
  acl?: CannedAcl;
}

export interface PartRecord {
  v: 1;
  sizeBytes: number;
  etag: string;
  mtimeMs: number;
  segment: Segment;
  checksum?: { algorithm: string; value: string };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeRecord(r: BucketRecord | ObjectEntry | UploadRecord | PartRecord): Uint8Array {
  assert(r.v === 1, 'record version');
  return enc.encode(JSON.stringify(r));
}

/** @throws AspenError E_DECODE on bytes that are not a v1 record */
export function decodeRecord<T extends { v: 1 }>(bytes: Uint8Array, what: string): T {
  let r: unknown;
  try {
    r = JSON.parse(dec.decode(bytes));
  } catch {
    throw new AspenError('E_DECODE', `${what} record is not JSON`);
  }
  if (typeof r !== 'object' || r === null || (r as { v?: unknown }).v !== 1) throw new AspenError('E_DECODE', `${what} record has an unknown version`);
  return r as T;
}

/** Stripe objects of a segment. */
export function stripesOf(seg: Segment): string[] {
  const n = Math.max(1, Math.ceil(seg.sizeBytes / STRIPE_BYTES));
  return Array.from({ length: n }, (_, i) => stripeObject(seg.id, i));
}
