/**
 * Pure S3 semantics: bucket names, Range (incl. suffix and unsatisfiable), read and write
 * conditions, endpoint resolution, the multipart ETag, path/vhost addressing, and the
 * exhaustive Aspen → S3 error mapping.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '@aspen/shared';
import { ASPEN_TO_S3, S3Error, S3_ERRORS, httpParseError, toS3Error, unmappedAspenCodes } from '../src/core/errors.ts';
import { checkConditions, checkWriteConditions, parseRange, storedHeadersOf, validateBucketName } from '../src/core/semantics.ts';
import { resolveEndpoint } from '../src/api/types.ts';
import { multipartEtag } from '../src/api/multipart.ts';
import { bucketAndKey } from '../src/io/server.ts';
import { AspenError } from '@aspen/shared';

const H = (o: Record<string, string> = {}): Map<string, string[]> => new Map(Object.entries(o).map(([k, v]) => [k, [v]]));
function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
}

describe('S3 semantics', () => {
  it('bucket name rules', () => {
    for (const ok of ['abc', 'my-bucket.1', 'a'.repeat(63)]) expect(codeOf(() => validateBucketName(ok)), ok).toBe('ok');
    for (const bad of ['ab', 'a'.repeat(64), 'Upper', 'under_score', '-start', 'end-', 'two..dots', '192.168.1.1', 'xn--abc', 'x-s3alias'.padStart(12, 'a')]) {
      expect(codeOf(() => validateBucketName(bad)), bad).toBe('InvalidBucketName');
    }
  });

  it('Range: first-last, open-ended, suffix, clamped, unsatisfiable, ignored', () => {
    expect(parseRange('bytes=0-4', 10)).toEqual({ start: 0, end: 4 });
    expect(parseRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange('bytes=-30', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=8-100', 10)).toEqual({ start: 8, end: 9 });
    expect(codeOf(() => parseRange('bytes=10-', 10))).toBe('InvalidRange');
    expect(codeOf(() => parseRange('bytes=-0', 10))).toBe('InvalidRange');
    expect(parseRange('bytes=5-2', 10)).toBeNull();
    expect(parseRange('items=0-1', 10)).toBeNull();
    expect(parseRange(undefined, 10)).toBeNull();
  });

  it('read conditions in S3 precedence, and copy-source conditions fail with 412 only', () => {
    const t = Date.UTC(2025, 0, 1, 12);
    const before = new Date(t - 3600_000).toUTCString();
    const after = new Date(t + 3600_000).toUTCString();
    expect(codeOf(() => checkConditions(H({ 'if-match': '"abc"' }), 'abc', t))).toBe('ok');
    expect(codeOf(() => checkConditions(H({ 'if-match': '"x"' }), 'abc', t))).toBe('PreconditionFailed');
    expect(codeOf(() => checkConditions(H({ 'if-none-match': '"abc"' }), 'abc', t))).toBe('NotModified');
    expect(codeOf(() => checkConditions(H({ 'if-modified-since': after }), 'abc', t))).toBe('NotModified');
    expect(codeOf(() => checkConditions(H({ 'if-modified-since': before }), 'abc', t))).toBe('ok');
    expect(codeOf(() => checkConditions(H({ 'if-unmodified-since': before }), 'abc', t))).toBe('PreconditionFailed');
    // If-Match true overrides If-Unmodified-Since false; If-None-Match false overrides If-Modified-Since.
    expect(codeOf(() => checkConditions(H({ 'if-match': '"abc"', 'if-unmodified-since': before }), 'abc', t))).toBe('ok');
    expect(codeOf(() => checkConditions(H({ 'if-none-match': '"zzz"', 'if-modified-since': after }), 'abc', t))).toBe('ok');
    expect(codeOf(() => checkConditions(H({ 'x-amz-copy-source-if-none-match': '"abc"' }), 'abc', t, 'x-amz-copy-source-'))).toBe('PreconditionFailed');
  });

  it('write conditions: If-None-Match * and If-Match', () => {
    expect(codeOf(() => checkWriteConditions(H({ 'if-none-match': '*' }), null))).toBe('ok');
    expect(codeOf(() => checkWriteConditions(H({ 'if-none-match': '*' }), { etag: 'a' }))).toBe('PreconditionFailed');
    expect(codeOf(() => checkWriteConditions(H({ 'if-match': '"a"' }), { etag: 'a' }))).toBe('ok');
    expect(codeOf(() => checkWriteConditions(H({ 'if-match': '"a"' }), { etag: 'b' }))).toBe('PreconditionFailed');
    expect(codeOf(() => checkWriteConditions(H({ 'if-match': '"a"' }), null))).toBe('NoSuchKey');
  });

  it('stored headers drop the aws-chunked coding and collect x-amz-meta-*', () => {
    const s = storedHeadersOf(H({ 'content-encoding': 'gzip,aws-chunked', 'x-amz-meta-color': 'blue', 'cache-control': 'no-cache' }));
    expect(s).toEqual({ headers: { 'content-encoding': 'gzip', 'cache-control': 'no-cache', 'content-type': 'binary/octet-stream' }, meta: { color: 'blue' } });
    expect(storedHeadersOf(H({ 'content-encoding': 'aws-chunked' })).headers['content-encoding']).toBeUndefined();
    expect(codeOf(() => storedHeadersOf(H({ 'x-amz-meta-big': 'x'.repeat(3000) })))).toBe('MetadataTooLarge');
  });

  it('resolves endpoints from method, bucket, key and subresources', () => {
    const q = (o: Record<string, string> = {}): Map<string, string> => new Map(Object.entries(o));
    expect(resolveEndpoint('GET', null, null, q(), H())).toBe('ListBuckets');
    expect(resolveEndpoint('GET', 'b', null, q({ 'list-type': '2' }), H())).toBe('ListObjectsV2');
    expect(resolveEndpoint('GET', 'b', null, q({ uploads: '' }), H())).toBe('ListMultipartUploads');
    expect(resolveEndpoint('POST', 'b', null, q({ delete: '' }), H())).toBe('DeleteObjects');
    expect(resolveEndpoint('PUT', 'b', 'k', q(), H({ 'x-amz-copy-source': 'b/x' }))).toBe('CopyObject');
    expect(resolveEndpoint('PUT', 'b', 'k', q({ uploadId: 'u', partNumber: '1' }), H({ 'x-amz-copy-source': 'b/x' }))).toBe('UploadPartCopy');
    expect(resolveEndpoint('POST', 'b', 'k', q({ uploadId: 'u' }), H())).toBe('CompleteMultipartUpload');
    expect(resolveEndpoint('DELETE', 'b', 'k', q({ uploadId: 'u' }), H())).toBe('AbortMultipartUpload');
    expect(resolveEndpoint('GET', 'b', null, q({ acl: '' }), H())).toBe('GetBucketAcl');
    expect(resolveEndpoint('PUT', 'b', 'k', q({ acl: '' }), H())).toBe('PutObjectAcl');
    expect(resolveEndpoint('GET', 'b', null, q({ versions: '' }), H())).toBe('ListObjectVersions');
    expect(resolveEndpoint('PUT', 'b', null, q({ versioning: '' }), H())).toBe('PutBucketVersioning');
    expect(codeOf(() => resolveEndpoint('GET', 'b', null, q({ policy: '' }), H()))).toBe('NotImplemented');
    expect(codeOf(() => resolveEndpoint('PATCH', 'b', 'k', q(), H()))).toBe('MethodNotAllowed');
  });

  it('path-style and virtual-host-style addressing', () => {
    expect(bucketAndKey('127.0.0.1:7480', '/b/dir/k%20x', ['localhost'])).toEqual({ bucket: 'b', key: 'dir/k x' });
    expect(bucketAndKey('127.0.0.1:7480', '/b', ['localhost'])).toEqual({ bucket: 'b', key: null });
    expect(bucketAndKey('127.0.0.1:7480', '/', ['localhost'])).toEqual({ bucket: null, key: null });
    expect(bucketAndKey('b.localhost:7480', '/dir/k', ['localhost'])).toEqual({ bucket: 'b', key: 'dir/k' });
    expect(bucketAndKey('my.bucket.s3.example:80', '/', ['s3.example'])).toEqual({ bucket: 'my.bucket', key: null });
  });

  it('multipart ETag is the MD5 of the binary part MD5s with -N', () => {
    const parts = ['a', 'b', 'c'].map((s) => createHash('md5').update(s).digest('hex'));
    const expected = createHash('md5').update(Buffer.concat(parts.map((p) => Buffer.from(p, 'hex')))).digest('hex');
    expect(multipartEtag(parts)).toBe(`${expected}-3`);
  });

  it('every Aspen error code maps to a known S3 error', () => {
    expect(unmappedAspenCodes()).toEqual([]);
    for (const c of ERROR_CODES) expect(S3_ERRORS[ASPEN_TO_S3[c]], c).toBeGreaterThanOrEqual(300);
    expect(toS3Error(new AspenError('ETIMEDOUT', 'x')).status).toBe(503);
    expect(toS3Error(new Error('boom')).code).toBe('InternalError');
  });

  it('an unparsable request maps to S3 errors with status 400 (oversized headers: RequestHeaderSectionTooLarge, not 431)', () => {
    const of = (code: string | undefined): [string, number] => {
      const e = httpParseError(code);
      return [e.code, e.status];
    };
    expect(of('HPE_HEADER_OVERFLOW')).toEqual(['RequestHeaderSectionTooLarge', 400]);
    expect(of('ERR_HTTP_REQUEST_TIMEOUT')).toEqual(['RequestTimeout', 400]);
    expect(of('HPE_INVALID_HEADER_TOKEN')).toEqual(['InvalidRequest', 400]);
    expect(of(undefined)).toEqual(['InvalidRequest', 400]);
  });
});
