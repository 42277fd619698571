/**
 * Multipart uploads (AWS S3 API reference): CreateMultipartUpload, UploadPart,
 * UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts,
 * ListMultipartUploads. Parts are segments of their own until completion; completing writes
 * one index entry naming the chosen parts' segments in order (no data is copied).
 */
import { createHash } from 'node:crypto';
import { S3Error } from '../core/errors.ts';
import { parseRange, storedHeadersOf, validateKey } from '../core/semantics.ts';
import { XML_BODY_MAX_BYTES, isoTime, parseXmlBody, xmlDocument, type XmlNode } from '../core/xml.ts';
import type { BucketRecord, ObjectEntry, PartRecord, UploadRecord } from '../store/layout.ts';
import { readSmallBody } from './body.ts';
import { commitVersion, copyBytes, copySourceEntry, ownBucket, quoteEtag } from './objects.ts';
import { aclField, cannedAclOf, uidOf } from './access.ts';
import { header, type HandlerContext, type S3Request, type S3Response } from './types.ts';

const XML = { 'content-type': 'application/xml' };
/** Smallest part but the last (S3: 5 MiB). */
export const PART_BYTES_MIN = 5 * 1024 * 1024;
export const PART_NUMBER_MAX = 10_000;

/** The multipart ETag: MD5 of the concatenated binary part MD5s, then `-N`. */
export function multipartEtag(partEtags: readonly string[]): string {
  const h = createHash('md5');
  for (const e of partEtags) h.update(Buffer.from(e, 'hex'));
  return `${h.digest('hex')}-${partEtags.length}`;
}

async function uploadOf(ctx: HandlerContext, req: S3Request): Promise<{ b: BucketRecord; bucketId: string; uploadId: string; rec: UploadRecord }> {
  const b = await ownBucket(ctx, req.bucket!);
  const uploadId = req.query.get('uploadId') ?? '';
  const rec = await ctx.store.getUpload(b.id, uploadId);
  if (rec.key !== req.key) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
  return { b, bucketId: b.id, uploadId, rec };
}

export async function createMultipartUpload(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  validateKey(req.key!);
  const { headers, meta } = storedHeadersOf(req.headers);
  const uploadId = `${ctx.newId()}${ctx.newId()}`;
  const alg = header(req.headers, 'x-amz-checksum-algorithm')?.toLowerCase();
  const rec: UploadRecord = {
    v: 1, key: req.key!, owner: uidOf(ctx), initiatedMs: ctx.nowMs(), headers, meta, ...(alg === undefined ? {} : { checksumAlgorithm: alg }), ...aclField(cannedAclOf(req.headers, true)),
  };
  await readSmallBody(req.body, XML_BODY_MAX_BYTES);
  await ctx.store.createUpload(b.id, uploadId, rec);
  const h: Record<string, string> = { ...XML };
  if (alg !== undefined) h['x-amz-checksum-algorithm'] = alg.toUpperCase();
  return { status: 200, headers: h, body: xmlDocument('InitiateMultipartUploadResult', [['Bucket', req.bucket!], ['Key', req.key!], ['UploadId', uploadId]]) };
}

function partNumberOf(req: S3Request): number {
  const n = Number(req.query.get('partNumber'));
  if (!Number.isInteger(n) || n < 1 || n > PART_NUMBER_MAX) throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${PART_NUMBER_MAX}, inclusive`);
  return n;
}

async function recordPart(ctx: HandlerContext, uploadId: string, n: number, part: PartRecord): Promise<void> {
  let old: PartRecord | null;
  try {
    old = await ctx.store.putPart(uploadId, n, part);
  } catch (err) {
    await ctx.store.removeSegments([part.segment]);
    throw err;
  }
  if (old !== null && old.segment.id !== part.segment.id) await ctx.store.removeSegments([old.segment]);
}

export async function uploadPart(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const n = partNumberOf(req);
  const { uploadId } = await uploadOf(ctx, req);
  const seg = await ctx.store.writeSegment(req.body);
  const r = req.body.result;
  await recordPart(ctx, uploadId, n, { v: 1, sizeBytes: r.sizeBytes, etag: r.md5Hex, mtimeMs: ctx.nowMs(), segment: seg, ...(r.checksum === undefined ? {} : { checksum: r.checksum }) });
  const h: Record<string, string> = { etag: quoteEtag(r.md5Hex) };
  if (r.checksum !== undefined) h[`x-amz-checksum-${r.checksum.algorithm}`] = r.checksum.value;
  return { status: 200, headers: h };
}

export async function uploadPartCopy(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const n = partNumberOf(req);
  const { uploadId } = await uploadOf(ctx, req);
  const src = await copySourceEntry(ctx, req);
  const rangeHeader = header(req.headers, 'x-amz-copy-source-range');
  const range = rangeHeader === undefined ? null : parseRange(rangeHeader, src.entry.sizeBytes);
  if (rangeHeader !== undefined && range === null) throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy');
  const start = range?.start ?? 0;
  const end = range === null ? src.entry.sizeBytes : range.end + 1;
  await readSmallBody(req.body, 0);
  const { seg, md5Hex } = await copyBytes(ctx, src.entry, start, end);
  const now = ctx.nowMs();
  await recordPart(ctx, uploadId, n, { v: 1, sizeBytes: end - start, etag: md5Hex, mtimeMs: now, segment: seg });
  return { status: 200, headers: XML, body: xmlDocument('CopyPartResult', [['LastModified', isoTime(now)], ['ETag', quoteEtag(md5Hex)]]) };
}

export async function completeMultipartUpload(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const { b, bucketId, uploadId, rec } = await uploadOf(ctx, req);
  const doc = parseXmlBody(await readSmallBody(req.body, XML_BODY_MAX_BYTES), 'CompleteMultipartUpload');
  const listed = (doc.Part ?? []) as { PartNumber?: unknown; ETag?: unknown }[];
  if (!Array.isArray(listed) || listed.length === 0) throw new S3Error('MalformedXML', 'You must specify at least one part');
  const parts = await ctx.store.listParts(uploadId);
  const chosen: PartRecord[] = [];
  let prev = 0;
  for (const p of listed) {
    const n = Number(p.PartNumber);
    if (!Number.isInteger(n) || n < 1) throw new S3Error('MalformedXML', 'PartNumber must be a positive integer');
    if (n <= prev) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
    prev = n;
    const have = parts.get(n);
    const etag = typeof p.ETag === 'string' ? p.ETag.trim().replace(/^"|"$/g, '') : '';
    if (have === undefined || have.etag !== etag) throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not have matched the part\'s entity tag.');
    chosen.push(have);
  }
  for (const [i, p] of chosen.entries()) {
    if (i < chosen.length - 1 && p.sizeBytes < PART_BYTES_MIN) throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
  }
  const etag = multipartEtag(chosen.map((p) => p.etag));
  const entry: ObjectEntry = {
    v: 1, sizeBytes: chosen.reduce((s, p) => s + p.sizeBytes, 0), etag, mtimeMs: ctx.nowMs(), owner: uidOf(ctx),
    headers: rec.headers, meta: rec.meta, segments: chosen.map((p) => p.segment), ...aclField(rec.acl),
  };
  // A failed commit keeps the upload (the client may retry or abort), so no data is removed on failure.
  const done = await commitVersion(ctx, req, b, req.key!, entry, []);
  const used = new Set(chosen.map((p) => p.segment.id));
  await ctx.store.removeUpload(bucketId, uploadId);
  await ctx.store.removeSegments([...parts.values()].filter((p) => !used.has(p.segment.id)).map((p) => p.segment));
  return {
    status: 200, headers: { ...XML, ...done.headers },
    body: xmlDocument('CompleteMultipartUploadResult', [['Location', `/${req.bucket!}/${encodeURIComponent(req.key!)}`], ['Bucket', req.bucket!], ['Key', req.key!], ['ETag', quoteEtag(etag)]]),
  };
}

export async function abortMultipartUpload(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const { bucketId, uploadId } = await uploadOf(ctx, req);
  const parts = await ctx.store.listParts(uploadId);
  await ctx.store.removeUpload(bucketId, uploadId);
  await ctx.store.removeSegments([...parts.values()].map((p) => p.segment));
  return { status: 204, headers: {} };
}

export async function listParts(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const { uploadId, rec } = await uploadOf(ctx, req);
  const maxParts = Math.min(1000, Number(req.query.get('max-parts') ?? 1000));
  const marker = Number(req.query.get('part-number-marker') ?? 0);
  const all = [...(await ctx.store.listParts(uploadId))].filter(([n]) => n > marker).sort((a, b) => a[0] - b[0]);
  const page = all.slice(0, maxParts);
  const truncated = all.length > page.length;
  return {
    status: 200, headers: XML,
    body: xmlDocument('ListPartsResult', [
      ['Bucket', req.bucket!], ['Key', req.key!], ['UploadId', uploadId], ['PartNumberMarker', marker],
      ['NextPartNumberMarker', page.at(-1)?.[0] ?? marker], ['MaxParts', maxParts], ['IsTruncated', truncated],
      ['Initiator', [['ID', rec.owner], ['DisplayName', rec.owner]]], ['Owner', [['ID', rec.owner], ['DisplayName', rec.owner]]], ['StorageClass', 'STANDARD'],
      ...page.map(([n, p]): XmlNode => ['Part', [['PartNumber', n], ['LastModified', isoTime(p.mtimeMs)], ['ETag', quoteEtag(p.etag)], ['Size', p.sizeBytes]]]),
    ]),
  };
}

export async function listMultipartUploads(ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  const b = await ownBucket(ctx, req.bucket!);
  const prefix = req.query.get('prefix') ?? '';
  const keyMarker = req.query.get('key-marker') ?? '';
  const idMarker = req.query.get('upload-id-marker') ?? '';
  const maxUploads = Math.min(1000, Number(req.query.get('max-uploads') ?? 1000));
  const all = (await ctx.store.listUploads(b.id))
    .filter(([id, u]) => u.key.startsWith(prefix) && (u.key > keyMarker || (u.key === keyMarker && idMarker !== '' && id > idMarker)))
    .sort((x, y) => (x[1].key < y[1].key ? -1 : x[1].key > y[1].key ? 1 : x[0] < y[0] ? -1 : 1));
  const page = all.slice(0, maxUploads);
  const last = page.at(-1);
  return {
    status: 200, headers: XML,
    body: xmlDocument('ListMultipartUploadsResult', [
      ['Bucket', req.bucket!], ['KeyMarker', keyMarker], ['UploadIdMarker', idMarker], ['Prefix', prefix],
      ['NextKeyMarker', last?.[1].key ?? ''], ['NextUploadIdMarker', last?.[0] ?? ''], ['MaxUploads', maxUploads], ['IsTruncated', all.length > page.length],
      ...page.map(([id, u]): XmlNode => ['Upload', [['Key', u.key], ['UploadId', id], ['Initiator', [['ID', u.owner], ['DisplayName', u.owner]]], ['Owner', [['ID', u.owner], ['DisplayName', u.owner]]], ['StorageClass', 'STANDARD'], ['Initiated', isoTime(u.initiatedMs)]]]),
    ]),
  };
}
