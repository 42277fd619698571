/**
 * S3 errors: the S3 error codes this gateway returns with their HTTP statuses (AWS S3 API
 * reference, "Error responses"), and the one mapping table from Aspen's error catalog to them
 * (CONVENTIONS.md item 7). An S3Error becomes an XML error document at the edge.
 */
import { AspenError, ERROR_CODES, type ErrorCode } from '@aspen/shared';

/** Every S3 error code we send, with its status. */
export const S3_ERRORS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestHeaderSectionTooLarge: 400,
  RequestTimeout: 400,
  ConditionalRequestConflict: 409,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
} as const;

export type S3ErrorCode = keyof typeof S3_ERRORS;

/**
 * An S3 error response. `extra` adds elements to the XML document (e.g. CanonicalRequest);
 * `headers` adds response headers (e.g. x-amz-delete-marker on a 404).
 */
export class S3Error extends Error {
  override name = 'S3Error';
  constructor(readonly code: S3ErrorCode, message: string, readonly extra: Readonly<Record<string, string>> = {}, readonly headers: Readonly<Record<string, string>> = {}) {
    super(message);
  }
  get status(): number {
    return S3_ERRORS[this.code];
  }
}

/**
 * What each Aspen error means at the S3 edge when a storage call fails with it and the
 * handler did not translate it itself (a missing bucket or key is translated by handlers).
 */
export const ASPEN_TO_S3: Readonly<Record<ErrorCode, S3ErrorCode>> = {
  EINVAL: 'InvalidArgument',
  ENOENT: 'NoSuchKey',
  EEXIST: 'ConditionalRequestConflict',
  ECANCELED: 'ConditionalRequestConflict',
  ENOTEMPTY: 'BucketNotEmpty',
  EBUSY: 'SlowDown',
  EPERM: 'AccessDenied',
  ENOSPC: 'InternalError',
  EIO: 'InternalError',
  EAGAIN: 'SlowDown',
  ETIMEDOUT: 'ServiceUnavailable',
  ECONNREFUSED: 'ServiceUnavailable',
  ENOTCONN: 'InternalError',
  ESTALE: 'ServiceUnavailable',
  EAGAIN_NO_QUORUM: 'ServiceUnavailable',
  ENOT_LEADER: 'ServiceUnavailable',
  E_PROPOSAL_DROPPED: 'ServiceUnavailable',
  E_CONFIG_CHANGE_PENDING: 'ServiceUnavailable',
  E_WRONG_CLUSTER: 'InternalError',
  E_CORRUPT: 'InternalError',
  E_DECODE: 'InternalError',
  E_PG_INCOMPLETE: 'ServiceUnavailable',
  E_UNSUPPORTED: 'NotImplemented',
  ENOTDIR: 'InvalidArgument',
  EISDIR: 'InvalidArgument',
  ENAMETOOLONG: 'KeyTooLongError',
  ENODATA: 'InternalError',
  EMLINK: 'InternalError',
  E2BIG: 'InvalidArgument',
  ERANGE: 'InvalidArgument',
};

/** The S3 error for any thrown value. */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  if (err instanceof AspenError) return new S3Error(ASPEN_TO_S3[err.code], err.message);
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.');
}

/**
 * The S3 error for a request node:http could not parse (its `clientError` codes: llhttp's
 * `HPE_*`, or a headers timeout), answered before any handler runs. S3 answers an oversized
 * header section with 400 RequestHeaderSectionTooLarge, not HTTP's 431.
 */
export function httpParseError(code: string | undefined): S3Error {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new S3Error('RequestHeaderSectionTooLarge', 'Your request header section exceeds the maximum allowed size.');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return new S3Error('RequestTimeout', 'Your socket connection to the server was not read from or written to within the timeout period.');
    default:
      return new S3Error('InvalidRequest', `The request is not valid HTTP/1.1 (${code ?? 'unknown parse error'}).`);
  }
}

/** Every Aspen code is mapped (checked by a test). */
export function unmappedAspenCodes(): ErrorCode[] {
  return ERROR_CODES.filter((c) => !(c in ASPEN_TO_S3));
}
