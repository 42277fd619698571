/**
 * The typed request and response of the S3 API handlers, and the endpoint resolution (which
 * S3 operation a method + bucket + key + subresource names), done before any handler runs.
 */
import type { S3Store } from '../store/store.ts';
import type { Segment } from '../store/layout.ts';
import type { RequestBody } from './body.ts';
import { S3Error } from '../core/errors.ts';

export type Headers = ReadonlyMap<string, string[]>;

export interface S3Request {
  method: string;
  bucket: string | null;
  key: string | null;
  /** Query parameters (decoded; first value wins). */
  query: ReadonlyMap<string, string>;
  headers: Headers;
  body: RequestBody;
  requestId: string;
}

export interface S3Response {
  status: number;
  headers: Record<string, string>;
  body?: string | AsyncIterable<Uint8Array>;
}

export interface S3User {
  uid: string;
  displayName: string;
}

/** What handlers may use: storage, the clock, ids, the authenticated user. */
export interface HandlerContext {
  store: S3Store;
  nowMs(): number;
  newId(): string;
  /** The authenticated user; null for an anonymous (unsigned) request. */
  user: S3User | null;
  region: string;
  /** A fresh version rev (core/versioning.ts RevClock). */
  newRev(): string;
  /** Removes a replaced version's segments after a grace period (readers may still stream them). */
  retire(segments: Segment[]): void;
}

export function header(h: Headers, name: string): string | undefined {
  return h.get(name)?.join(',');
}

export type Endpoint =
  | 'ListBuckets' | 'CreateBucket' | 'HeadBucket' | 'DeleteBucket' | 'GetBucketLocation' | 'GetBucketVersioning' | 'PutBucketVersioning'
  | 'GetBucketAcl' | 'PutBucketAcl' | 'ListObjects' | 'ListObjectsV2' | 'ListObjectVersions' | 'DeleteObjects' | 'ListMultipartUploads'
  | 'GetObjectAcl' | 'PutObjectAcl' | 'PutObject' | 'CopyObject' | 'GetObject' | 'HeadObject' | 'DeleteObject'
  | 'CreateMultipartUpload' | 'UploadPart' | 'UploadPartCopy' | 'CompleteMultipartUpload' | 'AbortMultipartUpload' | 'ListParts';

/** Bucket subresources we do not implement: answered NotImplemented rather than misread as a listing. */
const UNSUPPORTED_SUBRESOURCES = ['policy', 'cors', 'lifecycle', 'tagging', 'website', 'logging', 'notification', 'replication', 'encryption', 'object-lock', 'retention', 'legal-hold', 'accelerate', 'requestPayment', 'ownershipControls', 'publicAccessBlock', 'analytics', 'metrics', 'inventory', 'intelligent-tiering', 'torrent', 'restore', 'select', 'attributes'];

/**
 * Resolves the S3 operation of a request.
 * @throws S3Error MethodNotAllowed, NotImplemented
 */
export function resolveEndpoint(method: string, bucket: string | null, key: string | null, q: ReadonlyMap<string, string>, h: Headers): Endpoint {
  const unsupported = UNSUPPORTED_SUBRESOURCES.find((s) => q.has(s));
  if (unsupported !== undefined) throw new S3Error('NotImplemented', `the '${unsupported}' subresource is not implemented`);
  const notAllowed = (): never => { throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.'); };
  if (bucket === null) return method === 'GET' ? 'ListBuckets' : notAllowed();
  if (key === null) {
    switch (method) {
      case 'PUT':
        if (q.has('versioning')) return 'PutBucketVersioning';
        return q.has('acl') ? 'PutBucketAcl' : 'CreateBucket';
      case 'HEAD': return 'HeadBucket';
      case 'DELETE': return 'DeleteBucket';
      case 'POST': return q.has('delete') ? 'DeleteObjects' : notAllowed();
      case 'GET':
        if (q.has('location')) return 'GetBucketLocation';
        if (q.has('versioning')) return 'GetBucketVersioning';
        if (q.has('acl')) return 'GetBucketAcl';
        if (q.has('versions')) return 'ListObjectVersions';
        if (q.has('uploads')) return 'ListMultipartUploads';
        return q.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
      default: return notAllowed();
    }
  }
  const copy = h.has('x-amz-copy-source');
  switch (method) {
    case 'PUT':
      if (q.has('acl')) return 'PutObjectAcl';
      if (q.has('uploadId') || q.has('partNumber')) return copy ? 'UploadPartCopy' : 'UploadPart';
      return copy ? 'CopyObject' : 'PutObject';
    case 'GET':
      if (q.has('acl')) return 'GetObjectAcl';
      return q.has('uploadId') ? 'ListParts' : 'GetObject';
    case 'HEAD': return 'HeadObject';
    case 'DELETE': return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      return notAllowed();
    default: return notAllowed();
  }
}
