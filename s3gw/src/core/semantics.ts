/**
 * Pure pieces of S3 request semantics: bucket and key name rules, Range (RFC 9110 §14,
 * incl. suffix ranges), conditional headers (RFC 9110 §13 as S3 applies them), stored
 * representation headers and x-amz-meta-*.
 */
import { S3Error } from './errors.ts';

/** S3 key length limit, bytes of UTF-8. */
export const KEY_BYTES_MAX = 1024;
/** User metadata limit (x-amz-meta-* names and values), bytes. */
export const META_BYTES_MAX = 2048;

/** Bucket naming rules (general purpose buckets). @throws S3Error InvalidBucketName */
export function validateBucketName(name: string): void {
  const bad = (why: string): never => { throw new S3Error('InvalidBucketName', `The specified bucket is not valid: ${why}.`); };
  if (name.length < 3 || name.length > 63) bad('names are 3 to 63 characters long');
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) bad('only lower-case letters, digits, dots and hyphens, beginning and ending with a letter or digit');
  if (name.includes('..')) bad('no two adjacent periods');
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) bad('not formatted as an IP address');
  if (name.startsWith('xn--') || name.startsWith('sthree-') || name.endsWith('-s3alias') || name.endsWith('--ol-s3')) bad('reserved prefix or suffix');
}

/** @throws S3Error KeyTooLongError, InvalidArgument */
export function validateKey(key: string): void {
  if (key.length === 0) throw new S3Error('InvalidArgument', 'object key must not be empty');
  if (Buffer.byteLength(key, 'utf8') > KEY_BYTES_MAX) throw new S3Error('KeyTooLongError', 'Your key is too long');
  // NUL separates the bucket index's namespaces (store/layout.ts versionKey).
  if (key.includes('\u0000')) throw new S3Error('InvalidArgument', 'object keys must not contain NUL');
}

/** Headers stored with an object and returned on GET/HEAD. */
export const STORED_HEADERS = ['content-type', 'content-encoding', 'content-disposition', 'content-language', 'cache-control', 'expires'] as const;

type Headers = ReadonlyMap<string, string[]>;
const one = (h: Headers, n: string): string | undefined => h.get(n)?.join(',');

/** The representation headers and user metadata of a PUT/Copy(REPLACE)/CreateMultipartUpload. */
export function storedHeadersOf(h: Headers): { headers: Record<string, string>; meta: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const n of STORED_HEADERS) {
    let v = one(h, n);
    if (n === 'content-encoding' && v !== undefined) {
      // aws-chunked is a transfer coding of this request, not of the object.
      v = v.split(',').map((x) => x.trim()).filter((x) => x !== '' && x !== 'aws-chunked').join(',');
      if (v === '') continue;
    }
    if (v !== undefined) headers[n] = v;
  }
  if (headers['content-type'] === undefined) headers['content-type'] = 'binary/octet-stream';
  const meta: Record<string, string> = {};
  let bytes = 0;
  for (const [n, v] of h) {
    if (!n.startsWith('x-amz-meta-')) continue;
    const name = n.slice('x-amz-meta-'.length);
    meta[name] = v.join(',');
    bytes += name.length + meta[name]!.length;
  }
  if (bytes > META_BYTES_MAX) throw new S3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size (${META_BYTES_MAX} bytes).`);
  return { headers, meta };
}

/** A satisfiable byte range [start, end] (inclusive, as Content-Range). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a Range header against an object of `size` bytes. Returns null when the header is
 * absent or not a single bytes range (S3 then serves the whole object).
 * @throws S3Error InvalidRange when the range is unsatisfiable
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) throw new S3Error('InvalidRange', 'The requested range is not satisfiable');
    if (size === 0) throw new S3Error('InvalidRange', 'The requested range is not satisfiable');
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) throw new S3Error('InvalidRange', 'The requested range is not satisfiable');
  return { start, end };
}

/** Parses an HTTP date; NaN when invalid. */
function httpDate(s: string | undefined): number {
  return s === undefined ? NaN : Date.parse(s);
}

function etagMatches(list: string, etag: string): boolean {
  return list.split(',').map((x) => x.trim()).some((x) => x === '*' || x.replace(/^W\//, '').replace(/^"|"$/g, '') === etag);
}

/**
 * Evaluates GET/HEAD (or copy-source, with `prefix` 'x-amz-copy-source-') conditions on an
 * object with `etag` (no quotes) and `mtimeMs`, in S3's order: If-Match, If-Unmodified-Since,
 * If-None-Match, If-Modified-Since (an If-Match that holds overrides If-Unmodified-Since, an
 * If-None-Match that fails overrides If-Modified-Since).
 * @throws S3Error PreconditionFailed (412) or NotModified (304)
 */
export function checkConditions(h: Headers, etag: string, mtimeMs: number, prefix = ''): void {
  const ifMatch = one(h, `${prefix}if-match`);
  const ifNoneMatch = one(h, `${prefix}if-none-match`);
  const ims = httpDate(one(h, `${prefix}if-modified-since`));
  const ius = httpDate(one(h, `${prefix}if-unmodified-since`));
  const mtimeS = Math.floor(mtimeMs / 1000) * 1000;
  const failed = new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, etag)) throw failed;
  } else if (!Number.isNaN(ius) && mtimeS > ius) {
    throw failed;
  }
  const notModified = prefix === '' ? new S3Error('NotModified', 'Not Modified') : failed;
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, etag)) throw notModified;
  } else if (!Number.isNaN(ims) && mtimeS <= ims) {
    throw notModified;
  }
}

/**
 * Conditions of a write (PutObject, CompleteMultipartUpload): `If-None-Match: *` (only if
 * absent) and `If-Match: etag` (only if present with that ETag), checked against the entry
 * the write would replace — inside the index CAS, so they hold atomically.
 * @throws S3Error PreconditionFailed, NoSuchKey
 */
export function checkWriteConditions(h: Headers, old: { etag: string } | null): void {
  const ifNoneMatch = one(h, 'if-none-match');
  const ifMatch = one(h, 'if-match');
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*') throw new S3Error('NotImplemented', 'If-None-Match on writes supports only *');
    if (old !== null) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  if (ifMatch !== undefined) {
    if (old === null) throw new S3Error('NoSuchKey', 'The specified key does not exist.');
    if (!etagMatches(ifMatch, old.etag)) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
}

/** HTTP-date (IMF-fixdate) of a time. */
export function httpDateOf(ms: number): string {
  return new Date(ms).toUTCString();
}
