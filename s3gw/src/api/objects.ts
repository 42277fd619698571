/**
 * Bucket and object operations of the S3 API (AWS S3 API reference names): ListBuckets,
 * CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, GetBucketVersioning,
 * ListObjects(V2), PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.
 */
import { S3Error } from '../core/errors.ts';
import { listKeys } from '../core/listing.ts';
import { checkConditions, checkWriteConditions, httpDateOf, parseRange, storedHeadersOf, validateBucketName, validateKey } from '../core/semantics.ts';
import { S3_XMLNS, XML_BODY_MAX_BYTES, isoTime, xmlEscape, parseXmlBody, xmlDocument, type XmlNode } from '../core/xml.ts';
import type { BucketRecord, ObjectEntry, Segment } from '../store/layout.ts';
import { readSmallBody } from './body.ts';
import { header, type HandlerContext, type S3Request, type S3Response } from './types.ts';
import { createHash } from 'node:crypto';

const XML = { 'content-type': 'application/xml' };
export const quoteEtag = (e: string): string => `"${e}"`;
const ownerXml = (uid: string, name: string): XmlNode => ['Owner', [['ID', uid], ['DisplayName', name]]];

/** The bucket of a request, owned by the caller. @throws S3Error NoSuchBucket, AccessDenied */
export async function ownBucket(ctx: HandlerContext, name: string): Promise<BucketRecord> {
  const b = await ctx.store.getBucket(name);
  if (b === null) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
  if (b.owner !== ctx.user.uid) throw new S3Error('AccessDenied', 'Access Denied');
  return b;
}

/** The entry of `key`. @throws S3Error NoSuchKey */
async function entryOf(ctx: HandlerContext, b: BucketRecord, key: string): Promise<ObjectEntry> {
  const e = await ctx.store.getEntry(b.id, key);
  if (e === null) throw new S3Error('NoSuchKey', 'The specified key does not exist.');
  return e.value;
}

export async function listBuckets(ctx: HandlerContext): Promise<S3Response> {
  const mine = (await ctx.store.listBuckets()).filter(([, b]) => b.owner === ctx.user.uid);
  return {
    status: 200, headers: XML,
    body: xmlDocument('ListAllMyBucketsResult', [ownerXml(ctx.user.uid, ctx.user.displayName), ['Buckets', mine.map(([n, b]): XmlNode => ['Bucket', [['Name', n], ['CreationDate', isoTime(b.createdMs)]]])]]),
  };
}

export async function createBucket(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const name = req.bucket!;
  validateBucketName(name);
  const text = await readSmallBody(req.body, XML_BODY_MAX_BYTES);
  if (text.trim() !== '') {
    const conf = parseXmlBody(text, 'CreateBucketConfiguration');
    const loc = conf.LocationConstraint;
    if (typeof loc === 'string' && loc !== '' && loc !== ctx.region) throw new S3Error('InvalidArgument', `this gateway serves region '${ctx.region}', not '${loc}'`);
  }
  await ctx.store.createBucket(name, ctx.user.uid, ctx.nowMs());
  return { status: 200, headers: { location: `/${name}` } };
}

export async function headBucket(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  await ownBucket(ctx, req.bucket!);
  return { status: 200, headers: { 'x-amz-bucket-region': ctx.region } };
}

export async function deleteBucket(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  await ctx.store.deleteBucket(req.bucket!, b);
  return { status: 204, headers: {} };
}

export async function getBucketLocation(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  await ownBucket(ctx, req.bucket!);
  // us-east-1 is reported as an empty LocationConstraint, as S3 does.
  return { status: 200, headers: XML, body: `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="${S3_XMLNS}">${ctx.region === 'us-east-1' ? '' : xmlEscape(ctx.region)}</LocationConstraint>` };
}

export async function getBucketVersioning(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  await ownBucket(ctx, req.bucket!);
  return { status: 200, headers: XML, body: xmlDocument('VersioningConfiguration', []) };
}

function maxKeysOf(req: S3Request, name = 'max-keys'): number {
  const v = req.query.get(name);
  if (v === undefined) return 1000;
  if (!/^\d+$/.test(v)) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`);
  return Math.min(1000, Number(v));
}

export async function listObjects(ctx: HandlerContext, req: S3Request, v2: boolean): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const q = req.query;
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxKeys = maxKeysOf(req);
  const encodingType = q.get('encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  const enc = (s: string): string => (encodingType === 'url' ? encodeURIComponent(s).replace(/%2F/g, '/') : s);
  let startAfter: string;
  const token = q.get('continuation-token');
  if (v2) {
    if (token !== undefined) {
      startAfter = Buffer.from(token, 'base64url').toString('utf8');
      if (token === '' || Buffer.from(startAfter, 'utf8').toString('base64url') !== token) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
    } else startAfter = q.get('start-after') ?? '';
  } else startAfter = q.get('marker') ?? '';
  const r = await listKeys({ prefix, delimiter, maxKeys, startAfter }, (after, p, max) => ctx.store.listIndex(b.id, after, p, max));
  const contents = r.contents.map(([k, e]): XmlNode => ['Contents', [
    ['Key', enc(k)], ['LastModified', isoTime(e.mtimeMs)], ['ETag', quoteEtag(e.etag)], ['Size', e.sizeBytes],
    v2 && q.get('fetch-owner') !== 'true' ? undefined : ownerXml(e.owner, e.owner), ['StorageClass', 'STANDARD'],
  ]]);
  const prefixes = r.commonPrefixes.map((p): XmlNode => ['CommonPrefixes', [['Prefix', enc(p)]]]);
  const common: (XmlNode | undefined)[] = [
    ['Name', req.bucket!], ['Prefix', enc(prefix)], delimiter === '' ? undefined : ['Delimiter', enc(delimiter)], ['MaxKeys', maxKeys],
    encodingType === undefined ? undefined : ['EncodingType', encodingType], ['IsTruncated', r.isTruncated],
  ];
  const body = v2
    ? xmlDocument('ListBucketResult', [
      ...common, ['KeyCount', r.contents.length + r.commonPrefixes.length],
      token === undefined ? undefined : ['ContinuationToken', token],
      q.has('start-after') ? ['StartAfter', enc(q.get('start-after')!)] : undefined,
      r.isTruncated ? ['NextContinuationToken', Buffer.from(r.next, 'utf8').toString('base64url')] : undefined,
      ...contents, ...prefixes,
    ])
    : xmlDocument('ListBucketResult', [
      ...common, ['Marker', enc(startAfter)], r.isTruncated && delimiter !== '' ? ['NextMarker', enc(r.next)] : undefined, ...contents, ...prefixes,
    ]);
  return { status: 200, headers: XML, body };
}

/** Response headers describing an object. */
function objectHeaders(e: ObjectEntry, req: S3Request): Record<string, string> {
  const h: Record<string, string> = { etag: quoteEtag(e.etag), 'last-modified': httpDateOf(e.mtimeMs), 'accept-ranges': 'bytes', ...e.headers };
  for (const [k, v] of Object.entries(e.meta)) h[`x-amz-meta-${k}`] = v;
  if (e.segments.length > 1) h['x-amz-mp-parts-count'] = String(e.segments.length);
  // response-* query overrides (GetObject).
  for (const n of ['content-type', 'content-language', 'expires', 'cache-control', 'content-disposition', 'content-encoding']) {
    const v = req.query.get(`response-${n}`);
    if (v !== undefined) h[n] = v;
  }
  return h;
}

export async function getObject(ctx: HandlerContext, req: S3Request, head: boolean): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const e = await entryOf(ctx, b, req.key!);
  checkConditions(req.headers, e.etag, e.mtimeMs);
  const h = objectHeaders(e, req);
  let range = parseRange(header(req.headers, 'range'), e.sizeBytes);
  const partNumber = req.query.get('partNumber');
  if (partNumber !== undefined) {
    const n = Number(partNumber);
    if (!Number.isInteger(n) || n < 1 || n > e.segments.length) throw new S3Error('InvalidRange', 'The requested partnumber is not satisfiable');
    const start = e.segments.slice(0, n - 1).reduce((s, x) => s + x.sizeBytes, 0);
    range = { start, end: start + e.segments[n - 1]!.sizeBytes - 1 };
  }
  if (range === null && e.checksum !== undefined && header(req.headers, 'x-amz-checksum-mode') === 'ENABLED') {
    h[`x-amz-checksum-${e.checksum.algorithm}`] = e.checksum.value;
    h['x-amz-checksum-type'] = 'FULL_OBJECT';
  }
  const start = range?.start ?? 0;
  const end = range === null ? e.sizeBytes : range.end + 1;
  h['content-length'] = String(end - start);
  if (range !== null) h['content-range'] = `bytes ${range.start}-${range.end}/${e.sizeBytes}`;
  const status = range !== null ? 206 : 200;
  if (head) return { status, headers: h };
  return { status, headers: h, body: ctx.store.readRange(e.segments, start, end) };
}

/** Writes a new object version from `body` and commits it under the write conditions. */
async function commitNew(ctx: HandlerContext, req: S3Request, b: BucketRecord, key: string, entry: ObjectEntry, fresh: Segment[]): Promise<void> {
  let old: ObjectEntry | null;
  try {
    old = await ctx.store.commitEntry(b.id, key, entry, (o) => checkWriteConditions(req.headers, o));
  } catch (err) {
    await ctx.store.removeSegments(fresh);
    throw err;
  }
  if (old !== null) ctx.retire(old.segments);
}

export async function putObject(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const key = req.key!;
  validateKey(key);
  const { headers, meta } = storedHeadersOf(req.headers);
  // Fail early on a create-only PUT of an existing key (the commit re-checks atomically).
  if (header(req.headers, 'if-none-match') === '*' && (await ctx.store.getEntry(b.id, key)) !== null) {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  const seg = await ctx.store.writeSegment(req.body);
  const r = req.body.result;
  const entry: ObjectEntry = {
    v: 1, sizeBytes: r.sizeBytes, etag: r.md5Hex, mtimeMs: ctx.nowMs(), owner: ctx.user.uid, headers, meta, segments: [seg],
    ...(r.checksum === undefined ? {} : { checksum: r.checksum }),
  };
  await commitNew(ctx, req, b, key, entry, [seg]);
  const h: Record<string, string> = { etag: quoteEtag(r.md5Hex) };
  if (r.checksum !== undefined) h[`x-amz-checksum-${r.checksum.algorithm}`] = r.checksum.value;
  return { status: 200, headers: h };
}

export async function deleteObject(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const old = await ctx.store.commitEntry(b.id, req.key!, null, () => undefined);
  if (old !== null) ctx.retire(old.segments);
  return { status: 204, headers: {} };
}

export async function deleteObjects(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const doc = parseXmlBody(await readSmallBody(req.body, XML_BODY_MAX_BYTES), 'Delete');
  const objects = (doc.Object ?? []) as { Key?: unknown }[];
  if (!Array.isArray(objects) || objects.length > 1000) throw new S3Error('MalformedXML', 'Delete holds at most 1000 objects');
  const quiet = doc.Quiet === 'true';
  const results: XmlNode[] = [];
  for (const o of objects) {
    const key = typeof o.Key === 'string' ? o.Key : '';
    try {
      validateKey(key);
      const old = await ctx.store.commitEntry(b.id, key, null, () => undefined);
      if (old !== null) ctx.retire(old.segments);
      if (!quiet) results.push(['Deleted', [['Key', key]]]);
    } catch (err) {
      const e = err instanceof S3Error ? err : new S3Error('InternalError', String(err));
      results.push(['Error', [['Key', key], ['Code', e.code], ['Message', e.message]]]);
    }
  }
  return { status: 200, headers: XML, body: xmlDocument('DeleteResult', results) };
}

/** Parses x-amz-copy-source (`[/]bucket/key[?versionId=…]`, URL-encoded). */
export function copySourceOf(req: S3Request): { bucket: string; key: string } {
  let src = header(req.headers, 'x-amz-copy-source') ?? '';
  const qi = src.indexOf('?');
  if (qi >= 0) src = src.slice(0, qi);
  let decoded: string;
  try {
    decoded = decodeURIComponent(src);
  } catch {
    throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1);
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

/** Reads the copy source (owned by the caller), checking x-amz-copy-source-if-* conditions. */
export async function copySourceEntry(ctx: HandlerContext, req: S3Request): Promise<{ bucket: string; key: string; entry: ObjectEntry }> {
  const src = copySourceOf(req);
  const sb = await ownBucket(ctx, src.bucket);
  const e = await entryOf(ctx, sb, src.key);
  checkConditions(req.headers, e.etag, e.mtimeMs, 'x-amz-copy-source-');
  return { ...src, entry: e };
}

/** Streams bytes [start, end) of `from` into a new segment; returns it with its MD5. */
export async function copyBytes(ctx: HandlerContext, from: ObjectEntry, start: number, end: number): Promise<{ seg: Segment; md5Hex: string }> {
  const md5 = createHash('md5');
  const src = ctx.store.readRange(from.segments, start, end);
  async function* tap(): AsyncGenerator<Uint8Array> {
    for await (const p of src) {
      md5.update(p);
      yield p;
    }
  }
  const seg = await ctx.store.writeSegment(tap());
  return { seg, md5Hex: md5.digest('hex') };
}

export async function copyObject(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const key = req.key!;
  validateKey(key);
  const src = await copySourceEntry(ctx, req);
  const directive = header(req.headers, 'x-amz-metadata-directive') ?? 'COPY';
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'Unknown metadata directive.');
  if (src.bucket === req.bucket && src.key === key && directive === 'COPY') {
    throw new S3Error('InvalidRequest', 'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.');
  }
  await readSmallBody(req.body, 0);
  const stored = directive === 'REPLACE' ? storedHeadersOf(req.headers) : { headers: src.entry.headers, meta: src.entry.meta };
  const { seg, md5Hex } = await copyBytes(ctx, src.entry, 0, src.entry.sizeBytes);
  const now = ctx.nowMs();
  const entry: ObjectEntry = {
    v: 1, sizeBytes: src.entry.sizeBytes, etag: md5Hex, mtimeMs: now, owner: ctx.user.uid, headers: stored.headers, meta: stored.meta, segments: [seg],
    ...(src.entry.checksum === undefined ? {} : { checksum: src.entry.checksum }),
  };
  await commitNew(ctx, req, b, key, entry, [seg]);
  return { status: 200, headers: XML, body: xmlDocument('CopyObjectResult', [['LastModified', isoTime(now)], ['ETag', quoteEtag(md5Hex)]]) };
}
