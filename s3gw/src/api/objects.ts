/**
 * Object operations of the S3 API (AWS S3 API reference names): PutObject, GetObject,
 * HeadObject, DeleteObject, DeleteObjects, CopyObject, Get/PutObjectAcl — with versioning
 * (versionId, delete markers; core/versioning.ts plans the index changes).
 */
import { S3Error } from '../core/errors.ts';
import { checkConditions, checkWriteConditions, httpDateOf, parseRange, storedHeadersOf, validateKey } from '../core/semantics.ts';
import {
  findVersion, planDeleteLatest, planDeleteVersion, planNewHead, versionIdOf, type KeyView, type Planned, type Versioning,
} from '../core/versioning.ts';
import { XML_BODY_MAX_BYTES, isoTime, parseXmlBody, xmlDocument, type XmlNode } from '../core/xml.ts';
import { versionKey, type BucketRecord, type ObjectEntry, type Segment } from '../store/layout.ts';
import { aclField, aclXml, bucketFor, cannedAclOf, checkRead, ownBucket, uidOf } from './access.ts';
import { readSmallBody } from './body.ts';
import { quoteEtag } from './buckets.ts';
import { header, type HandlerContext, type S3Request, type S3Response } from './types.ts';
import { createHash } from 'node:crypto';

export { ownBucket, quoteEtag };
const XML = { 'content-type': 'application/xml' };

export const versioningOf = (b: BucketRecord): Versioning => b.versioning ?? 'Unversioned';

/** The x-amz-version-id header of a version in `b` (none in buckets that never had versioning). */
function versionHeader(b: BucketRecord, e: ObjectEntry): Record<string, string> {
  return b.versioning === undefined && e.versionId === undefined ? {} : { 'x-amz-version-id': versionIdOf(e) };
}

/**
 * The version a read names (`versionId`, or the head), checked against the caller's access.
 * A delete marker answers 404 (latest) or 405 (by id) with x-amz-delete-marker, as S3 does.
 * @throws S3Error NoSuchKey, NoSuchVersion, MethodNotAllowed, AccessDenied, InvalidArgument
 */
export async function readableVersion(ctx: HandlerContext, b: BucketRecord, key: string, versionId: string | undefined): Promise<ObjectEntry> {
  validateKey(key);
  const e = await ctx.store.viewKey(b.id, key, (v) => (versionId === undefined ? v.head : findVersion(v, versionId)));
  checkRead(ctx, b, e);
  if (e === null) {
    throw versionId === undefined ? new S3Error('NoSuchKey', 'The specified key does not exist.') : new S3Error('NoSuchVersion', 'The specified version does not exist.');
  }
  if (e.deleteMarker === true) {
    const h = { 'x-amz-delete-marker': 'true', ...versionHeader(b, e) };
    if (versionId === undefined) throw new S3Error('NoSuchKey', 'The specified key does not exist.', {}, h);
    throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', {}, { ...h, 'last-modified': httpDateOf(e.mtimeMs) });
  }
  return e;
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
  const b = await bucketFor(ctx, req.bucket!, 'lookup');
  const e = await readableVersion(ctx, b, req.key!, req.query.get('versionId'));
  checkConditions(req.headers, e.etag, e.mtimeMs);
  const h = { ...objectHeaders(e, req), ...versionHeader(b, e) };
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

/**
 * Commits `entry` (data already written as `fresh`) as the new head of `key` under the
 * bucket's versioning and the request's write conditions (a delete marker counts as absent).
 * On failure `fresh` is removed; versions it makes garbage are retired.
 * @returns the committed entry (with its rev and versionId) and the response's version header
 */
export async function commitVersion(ctx: HandlerContext, req: S3Request, b: BucketRecord, key: string, entry: ObjectEntry, fresh: Segment[]): Promise<{ entry: ObjectEntry; headers: Record<string, string> }> {
  const mode = versioningOf(b);
  let committed: ObjectEntry;
  try {
    const plan = await ctx.store.mutateKey(b.id, key, { newest: false }, (v) => {
      checkWriteConditions(req.headers, v.head?.deleteMarker === true ? null : v.head);
      const rev = ctx.newRev();
      return planNewHead(mode, v, { ...entry, rev, ...(mode === 'Enabled' ? { versionId: rev } : {}) });
    });
    for (const g of plan.garbage) ctx.retire(g.segments);
    committed = plan.result;
  } catch (err) {
    await ctx.store.removeSegments(fresh);
    throw err;
  }
  return { entry: committed, headers: versionHeader(b, committed) };
}

export async function putObject(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const key = req.key!;
  validateKey(key);
  const acl = cannedAclOf(req.headers, true);
  const { headers, meta } = storedHeadersOf(req.headers);
  // Fail early on a create-only PUT of an existing key (the commit re-checks atomically).
  if (header(req.headers, 'if-none-match') === '*') {
    const cur = await ctx.store.viewKey(b.id, key, (v) => v.head);
    if (cur !== null && cur.deleteMarker !== true) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  const seg = await ctx.store.writeSegment(req.body);
  const r = req.body.result;
  const entry: ObjectEntry = {
    v: 1, sizeBytes: r.sizeBytes, etag: r.md5Hex, mtimeMs: ctx.nowMs(), owner: uidOf(ctx), headers, meta, segments: [seg],
    ...(r.checksum === undefined ? {} : { checksum: r.checksum }), ...aclField(acl),
  };
  const done = await commitVersion(ctx, req, b, key, entry, [seg]);
  const h: Record<string, string> = { etag: quoteEtag(r.md5Hex), ...done.headers };
  if (r.checksum !== undefined) h[`x-amz-checksum-${r.checksum.algorithm}`] = r.checksum.value;
  return { status: 200, headers: h };
}

/** Deletes one key or version; the response headers S3 sends for it. */
async function deleteOne(ctx: HandlerContext, b: BucketRecord, key: string, versionId: string | undefined): Promise<{ versionId?: string; deleteMarker: boolean }> {
  validateKey(key);
  if (versionId !== undefined) {
    const plan = await ctx.store.mutateKey(b.id, key, { newest: true }, (v) => planDeleteVersion(v, versionId));
    for (const g of plan.garbage) ctx.retire(g.segments);
    return plan.result;
  }
  const mode = versioningOf(b);
  const plan = await ctx.store.mutateKey(b.id, key, { newest: false }, (v) => {
    const rev = ctx.newRev();
    const marker: ObjectEntry = {
      v: 1, sizeBytes: 0, etag: '', mtimeMs: ctx.nowMs(), owner: uidOf(ctx), headers: {}, meta: {}, segments: [], deleteMarker: true, rev,
      ...(mode === 'Enabled' ? { versionId: rev } : {}),
    };
    return planDeleteLatest(mode, v, marker);
  });
  for (const g of plan.garbage) ctx.retire(g.segments);
  return plan.result === null ? { deleteMarker: false } : { versionId: versionIdOf(plan.result), deleteMarker: true };
}

export async function deleteObject(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const r = await deleteOne(ctx, b, req.key!, req.query.get('versionId'));
  const h: Record<string, string> = {};
  if (r.versionId !== undefined) h['x-amz-version-id'] = r.versionId;
  if (r.deleteMarker) h['x-amz-delete-marker'] = 'true';
  return { status: 204, headers: h };
}

export async function deleteObjects(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const doc = parseXmlBody(await readSmallBody(req.body, XML_BODY_MAX_BYTES), 'Delete');
  const objects = (doc.Object ?? []) as { Key?: unknown; VersionId?: unknown }[];
  if (!Array.isArray(objects) || objects.length > 1000) throw new S3Error('MalformedXML', 'Delete holds at most 1000 objects');
  const quiet = doc.Quiet === 'true';
  const results: XmlNode[] = [];
  for (const o of objects) {
    const key = typeof o.Key === 'string' ? o.Key : '';
    const versionId = typeof o.VersionId === 'string' ? o.VersionId : undefined;
    try {
      const r = await deleteOne(ctx, b, key, versionId);
      // A delete marker made (no VersionId asked) or removed (VersionId named one) is reported as such.
      const marker: XmlNode[] = r.deleteMarker ? [['DeleteMarker', true], ['DeleteMarkerVersionId', r.versionId ?? 'null']] : [];
      if (!quiet) results.push(['Deleted', [['Key', key], versionId === undefined ? undefined : ['VersionId', versionId], ...marker]]);
    } catch (err) {
      const e = err instanceof S3Error ? err : new S3Error('InternalError', String(err));
      results.push(['Error', [['Key', key], versionId === undefined ? undefined : ['VersionId', versionId], ['Code', e.code], ['Message', e.message]]]);
    }
  }
  return { status: 200, headers: XML, body: xmlDocument('DeleteResult', results) };
}

/** GetObjectAcl (optionally of a version): the owner only. */
export async function getObjectAcl(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const e = await readableVersion(ctx, b, req.key!, req.query.get('versionId'));
  return { status: 200, headers: { ...XML, ...versionHeader(b, e) }, body: aclXml(e.owner, ctx.user?.displayName ?? e.owner, e.acl) };
}

/** PutObjectAcl with a canned x-amz-acl header, on the head or a version. */
export async function putObjectAcl(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const key = req.key!;
  validateKey(key);
  const acl = cannedAclOf(req.headers, true);
  const body = await readSmallBody(req.body, XML_BODY_MAX_BYTES);
  if (acl === undefined || body.trim() !== '') throw new S3Error('NotImplemented', 'only canned ACLs (the x-amz-acl header: private, public-read) are implemented');
  const versionId = req.query.get('versionId');
  const plan = await ctx.store.mutateKey(b.id, key, { newest: false }, (v: KeyView): Planned<ObjectEntry> => {
    const e = versionId === undefined ? v.head : findVersion(v, versionId);
    if (e === null) throw versionId === undefined ? new S3Error('NoSuchKey', 'The specified key does not exist.') : new S3Error('NoSuchVersion', 'The specified version does not exist.');
    if ('need' in e) return e;
    if (e.deleteMarker === true) throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', {}, { 'x-amz-delete-marker': 'true' });
    const { acl: _old, ...rest } = e;
    const next = { ...rest, ...aclField(acl) };
    const at = e === v.head ? key : versionKey(key, e.rev!);
    return { guards: [at], set: [[at, next]], rm: [], garbage: [], result: next };
  });
  return { status: 200, headers: versionHeader(b, plan.result) };
}

/** Parses x-amz-copy-source (`[/]bucket/key[?versionId=…]`, URL-encoded). */
export function copySourceOf(req: S3Request): { bucket: string; key: string; versionId?: string } {
  let src = header(req.headers, 'x-amz-copy-source') ?? '';
  let versionId: string | undefined;
  const qi = src.indexOf('?');
  if (qi >= 0) {
    const m = /(?:^|&)versionId=([^&]*)/.exec(src.slice(qi + 1));
    if (m !== null) versionId = decodeURIComponent(m[1]!);
    src = src.slice(0, qi);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(src);
  } catch {
    throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1);
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), ...(versionId === undefined ? {} : { versionId }) };
}

/**
 * Reads the copy source (its owner's, or public-read), checking x-amz-copy-source-if-*
 * conditions. @returns it with the x-amz-copy-source-version-id header to send
 */
export async function copySourceEntry(ctx: HandlerContext, req: S3Request): Promise<{ bucket: string; key: string; entry: ObjectEntry; headers: Record<string, string> }> {
  const src = copySourceOf(req);
  const sb = await bucketFor(ctx, src.bucket, 'lookup');
  const e = await readableVersion(ctx, sb, src.key, src.versionId);
  checkConditions(req.headers, e.etag, e.mtimeMs, 'x-amz-copy-source-');
  const vh = versionHeader(sb, e)['x-amz-version-id'];
  return { bucket: src.bucket, key: src.key, entry: e, headers: vh === undefined ? {} : { 'x-amz-copy-source-version-id': vh } };
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
  const acl = cannedAclOf(req.headers, true);
  await readSmallBody(req.body, 0);
  const stored = directive === 'REPLACE' ? storedHeadersOf(req.headers) : { headers: src.entry.headers, meta: src.entry.meta };
  const { seg, md5Hex } = await copyBytes(ctx, src.entry, 0, src.entry.sizeBytes);
  const now = ctx.nowMs();
  const entry: ObjectEntry = {
    v: 1, sizeBytes: src.entry.sizeBytes, etag: md5Hex, mtimeMs: now, owner: uidOf(ctx), headers: stored.headers, meta: stored.meta, segments: [seg],
    ...(src.entry.checksum === undefined ? {} : { checksum: src.entry.checksum }), ...aclField(acl),
  };
  const done = await commitVersion(ctx, req, b, key, entry, [seg]);
  return { status: 200, headers: { ...XML, ...src.headers, ...done.headers }, body: xmlDocument('CopyObjectResult', [['LastModified', isoTime(now)], ['ETag', quoteEtag(md5Hex)]]) };
}
