/**
 * Bucket operations of the S3 API (AWS S3 API reference names): ListBuckets, CreateBucket,
 * HeadBucket, DeleteBucket, GetBucketLocation, Get/PutBucketVersioning, Get/PutBucketAcl,
 * ListObjects(V2), ListObjectVersions.
 */
import { S3Error } from '../core/errors.ts';
import { listKeys, listVersions } from '../core/listing.ts';
import { validateBucketName } from '../core/semantics.ts';
import { REV_PATTERN, versionIdOf } from '../core/versioning.ts';
import { S3_XMLNS, XML_BODY_MAX_BYTES, isoTime, xmlEscape, parseXmlBody, xmlDocument, type XmlNode } from '../core/xml.ts';
import type { ObjectEntry } from '../store/layout.ts';
import { aclField, aclXml, bucketFor, cannedAclOf, ownBucket, uidOf } from './access.ts';
import { readSmallBody } from './body.ts';
import { type HandlerContext, type S3Request, type S3Response } from './types.ts';

const XML = { 'content-type': 'application/xml' };
export const quoteEtag = (e: string): string => `"${e}"`;
export const ownerXml = (uid: string, name: string): XmlNode => ['Owner', [['ID', uid], ['DisplayName', name]]];

export async function listBuckets(ctx: HandlerContext): Promise<S3Response> {
  if (ctx.user === null) throw new S3Error('AccessDenied', 'Access Denied');
  const uid = ctx.user.uid;
  const mine = (await ctx.store.listBuckets()).filter(([, b]) => b.owner === uid);
  return {
    status: 200, headers: XML,
    body: xmlDocument('ListAllMyBucketsResult', [ownerXml(uid, ctx.user.displayName), ['Buckets', mine.map(([n, b]): XmlNode => ['Bucket', [['Name', n], ['CreationDate', isoTime(b.createdMs)]]])]]),
  };
}

export async function createBucket(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const name = req.bucket!;
  const uid = uidOf(ctx);
  validateBucketName(name);
  const acl = cannedAclOf(req.headers, false);
  const text = await readSmallBody(req.body, XML_BODY_MAX_BYTES);
  if (text.trim() !== '') {
    const conf = parseXmlBody(text, 'CreateBucketConfiguration');
    const loc = conf.LocationConstraint;
    if (typeof loc === 'string' && loc !== '' && loc !== ctx.region) throw new S3Error('InvalidArgument', `this gateway serves region '${ctx.region}', not '${loc}'`);
  }
  await ctx.store.createBucket(name, uid, ctx.nowMs(), aclField(acl));
  return { status: 200, headers: { location: `/${name}` } };
}

export async function headBucket(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  await bucketFor(ctx, req.bucket!, 'list');
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
  const b = await ownBucket(ctx, req.bucket!);
  return { status: 200, headers: XML, body: xmlDocument('VersioningConfiguration', [b.versioning === undefined ? undefined : ['Status', b.versioning]]) };
}

/** PutBucketVersioning: Status Enabled or Suspended (MFA delete is not supported). */
export async function putBucketVersioning(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  await ownBucket(ctx, req.bucket!);
  const conf = parseXmlBody(await readSmallBody(req.body, XML_BODY_MAX_BYTES), 'VersioningConfiguration');
  const status = conf.Status;
  if (conf.MfaDelete === 'Enabled') throw new S3Error('NotImplemented', 'MFA delete is not implemented');
  if (status === undefined) return { status: 200, headers: {} };
  if (status !== 'Enabled' && status !== 'Suspended') throw new S3Error('MalformedXML', 'Status must be Enabled or Suspended');
  await ctx.store.updateBucket(req.bucket!, (b) => ({ ...b, versioning: status }));
  return { status: 200, headers: {} };
}

export async function getBucketAcl(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  return { status: 200, headers: XML, body: aclXml(b.owner, ctx.user?.displayName ?? b.owner, b.acl) };
}

/** PutBucketAcl with a canned x-amz-acl header (an AccessControlPolicy body is NotImplemented). */
export async function putBucketAcl(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  await ownBucket(ctx, req.bucket!);
  const acl = cannedAclOf(req.headers, false);
  const body = await readSmallBody(req.body, XML_BODY_MAX_BYTES);
  if (acl === undefined || body.trim() !== '') throw new S3Error('NotImplemented', 'only canned ACLs (the x-amz-acl header: private, public-read) are implemented');
  await ctx.store.updateBucket(req.bucket!, (b) => {
    const { acl: _old, ...rest } = b;
    return { ...rest, ...aclField(acl) };
  });
  return { status: 200, headers: {} };
}

function maxKeysOf(req: S3Request, name = 'max-keys'): number {
  const v = req.query.get(name);
  if (v === undefined) return 1000;
  if (!/^\d+$/.test(v)) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`);
  return Math.min(1000, Number(v));
}

/** `encoding-type=url`: keys and prefixes URL-encoded in the listing. */
function encoderOf(req: S3Request): { encodingType: string | undefined; enc: (s: string) => string } {
  const encodingType = req.query.get('encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  return { encodingType, enc: (s) => (encodingType === 'url' ? encodeURIComponent(s).replace(/%2F/g, '/') : s) };
}

export async function listObjects(ctx: HandlerContext, req: S3Request, v2: boolean): Promise<S3Response> {
  const b = await bucketFor(ctx, req.bucket!, 'list');
  const q = req.query;
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxKeys = maxKeysOf(req);
  const { encodingType, enc } = encoderOf(req);
  let startAfter: string;
  const token = q.get('continuation-token');
  if (v2) {
    if (token !== undefined) {
      startAfter = Buffer.from(token, 'base64url').toString('utf8');
      if (token === '' || Buffer.from(startAfter, 'utf8').toString('base64url') !== token) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
    } else startAfter = q.get('start-after') ?? '';
  } else startAfter = q.get('marker') ?? '';
  // Delete markers are heads that hide their key from listings.
  const r = await listKeys({ prefix, delimiter, maxKeys, startAfter }, async (after, p, max) => {
    const page = await ctx.store.listIndex(b.id, after, p, max);
    return { entries: page.entries.map(([k, e]): [string, ObjectEntry | null] => [k, e.deleteMarker === true ? null : e]), more: page.more };
  });
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

/** ListObjectVersions: prefix, delimiter, key-marker / version-id-marker, max-keys, encoding-type. */
export async function listObjectVersions(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await bucketFor(ctx, req.bucket!, 'list');
  const q = req.query;
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxKeys = maxKeysOf(req);
  const { encodingType, enc } = encoderOf(req);
  const keyMarker = q.get('key-marker') ?? '';
  const versionIdMarker = q.get('version-id-marker') ?? '';
  if (versionIdMarker !== '' && keyMarker === '') throw new S3Error('InvalidArgument', 'A version-id marker cannot be specified without a key marker.');
  if (versionIdMarker !== '' && versionIdMarker !== 'null' && !REV_PATTERN.test(versionIdMarker)) throw new S3Error('InvalidArgument', 'Invalid version id specified');
  // Resume inside key-marker: after its head ('') or after a noncurrent version's rev.
  let revMarker: string | null = null;
  if (versionIdMarker !== '') {
    const head = await ctx.store.viewKey(b.id, keyMarker, (v) => v.head);
    if (head !== null) {
      if (versionIdOf(head) === versionIdMarker) revMarker = '';
      else revMarker = versionIdMarker === 'null' ? (head.nullRev ?? null) : versionIdMarker;
    }
  }
  const read = (after: string, p: string, max: number): ReturnType<typeof ctx.store.listIndex> => ctx.store.listIndex(b.id, after, p, max);
  const r = await listVersions({ prefix, delimiter, maxKeys, keyMarker, revMarker }, read, read);
  const rows = r.rows.map(({ key, entry: e, isLatest }): XmlNode => (e.deleteMarker === true
    ? ['DeleteMarker', [['Key', enc(key)], ['VersionId', versionIdOf(e)], ['IsLatest', isLatest], ['LastModified', isoTime(e.mtimeMs)], ownerXml(e.owner, e.owner)]]
    : ['Version', [
      ['Key', enc(key)], ['VersionId', versionIdOf(e)], ['IsLatest', isLatest], ['LastModified', isoTime(e.mtimeMs)], ['ETag', quoteEtag(e.etag)],
      ['Size', e.sizeBytes], ownerXml(e.owner, e.owner), ['StorageClass', 'STANDARD'],
    ]]));
  const next = r.next;
  const body = xmlDocument('ListVersionsResult', [
    ['Name', req.bucket!], ['Prefix', enc(prefix)], ['KeyMarker', enc(keyMarker)], ['VersionIdMarker', versionIdMarker],
    r.isTruncated ? ['NextKeyMarker', enc(next.key)] : undefined,
    r.isTruncated && next.row !== null ? ['NextVersionIdMarker', versionIdOf(next.row.entry)] : undefined,
    ['MaxKeys', maxKeys], delimiter === '' ? undefined : ['Delimiter', enc(delimiter)],
    encodingType === undefined ? undefined : ['EncodingType', encodingType], ['IsTruncated', r.isTruncated],
    ...rows, ...r.commonPrefixes.map((p): XmlNode => ['CommonPrefixes', [['Prefix', enc(p)]]]),
  ]);
  return { status: 200, headers: XML, body };
}
