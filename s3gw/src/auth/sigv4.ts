/**
 * AWS Signature Version 4 for S3, verifier side (AWS docs "Authenticating Requests (AWS
 * Signature Version 4)": sig-v4-header-based-auth, sigv4-query-string-auth). Pure: the
 * caller supplies the request as received, the secret key of the access key it names, and
 * the current time.
 *
 * Canonical request = method \n canonical URI \n canonical query \n canonical headers \n
 * signed headers \n hashed payload; string to sign = "AWS4-HMAC-SHA256" \n amz-date \n scope \n
 * hex(sha256(canonical request)); signing key = HMAC chain over date, region, service,
 * "aws4_request" starting from "AWS4" + secret.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../core/errors.ts';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
/** Largest accepted clock difference between client and gateway (S3: 15 minutes). */
export const CLOCK_SKEW_MAX_MS = 15 * 60 * 1000;
/** Longest presigned URL validity (S3: 7 days). */
export const PRESIGN_EXPIRES_MAX_S = 7 * 24 * 3600;
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** How the request body is authenticated (the x-amz-content-sha256 value). */
export type PayloadMode =
  | { kind: 'sha256'; hex: string }
  | { kind: 'unsigned' }
  | { kind: 'streaming-signed'; trailer: boolean }
  | { kind: 'streaming-unsigned-trailer' };

/** A request as the verifier needs it. Header names lower-case; values as received. */
export interface SigningRequest {
  method: string;
  /** The path as sent, still percent-encoded, without the query. */
  rawPath: string;
  /** Query parameters, decoded, in order. */
  query: [string, string][];
  headers: ReadonlyMap<string, string[]>;
}

/** What the Authorization header or the presigned query carries. */
export interface ParsedAuth {
  accessKey: string;
  /** yyyymmdd */
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  /** x-amz-date / X-Amz-Date, ISO 8601 basic (20130524T000000Z). */
  amzDate: string;
  presigned: boolean;
  /** Presigned only: validity in seconds. */
  expiresS: number;
}

/** The outcome of a verified request: what body decoding needs. */
export interface VerifiedAuth {
  accessKey: string;
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  /** The request's own signature: the seed of a chunk signature chain. */
  seedSignature: string;
  payload: PayloadMode;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmac(key: string | Uint8Array, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** The SigV4 signing key for a scope. */
export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

/** AWS UriEncode: every byte except A-Z a-z 0-9 - _ . ~ as %XX (upper case); '/' kept when `keepSlash`. */
export function uriEncode(s: string, keepSlash: boolean): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Decodes a percent-encoded path; a malformed escape is an error. */
export function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new S3Error('InvalidURI', 'Couldn\'t parse the specified URI.');
  }
}

function single(headers: ReadonlyMap<string, string[]>, name: string): string | undefined {
  const v = headers.get(name);
  return v === undefined ? undefined : v.join(',');
}

const CRED_RE = /^([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request$/;
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** Parses `x-amz-date` style timestamps to ms since the epoch, or NaN. */
export function parseAmzDate(s: string): number {
  const m = AMZ_DATE_RE.exec(s);
  if (!m) return NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function parseCredential(cred: string): { accessKey: string; date: string; region: string; service: string } {
  const m = CRED_RE.exec(cred);
  if (!m) throw new S3Error('AuthorizationHeaderMalformed', `the Credential is malformed: '${cred}'`);
  return { accessKey: m[1]!, date: m[2]!, region: m[3]!, service: m[4]! };
}

/**
 * Parses the authentication of a request: the Authorization header, or the presigned query
 * (X-Amz-Algorithm …). Returns null for an anonymous request.
 * @throws S3Error AuthorizationHeaderMalformed, AuthorizationQueryParametersError, AccessDenied (SigV2)
 */
export function parseAuth(req: SigningRequest): ParsedAuth | null {
  const authz = single(req.headers, 'authorization');
  const q = new Map(req.query);
  if (authz !== undefined) {
    if (!authz.startsWith(`${ALGORITHM} `)) {
      throw new S3Error(authz.startsWith('AWS ') ? 'AccessDenied' : 'AuthorizationHeaderMalformed', 'only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported');
    }
    const fields = new Map<string, string>();
    for (const part of authz.slice(ALGORITHM.length + 1).split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    const cred = fields.get('Credential');
    const sh = fields.get('SignedHeaders');
    const sig = fields.get('Signature');
    if (cred === undefined || sh === undefined || sig === undefined) throw new S3Error('AuthorizationHeaderMalformed', 'the authorization header is malformed; expected Credential, SignedHeaders and Signature');
    const amzDate = single(req.headers, 'x-amz-date') ?? '';
    if (Number.isNaN(parseAmzDate(amzDate))) throw new S3Error('AccessDenied', 'AWS authentication requires a valid x-amz-date header');
    return { ...parseCredential(cred), signedHeaders: sh.split(';'), signature: sig, amzDate, presigned: false, expiresS: 0 };
  }
  const alg = q.get('X-Amz-Algorithm');
  if (alg === undefined) {
    if (q.has('AWSAccessKeyId')) throw new S3Error('AccessDenied', 'only AWS Signature Version 4 presigned URLs are supported');
    return null;
  }
  if (alg !== ALGORITHM) throw new S3Error('AuthorizationQueryParametersError', `X-Amz-Algorithm only supports "${ALGORITHM}"`);
  const cred = q.get('X-Amz-Credential');
  const amzDate = q.get('X-Amz-Date');
  const expires = q.get('X-Amz-Expires');
  const sh = q.get('X-Amz-SignedHeaders');
  const sig = q.get('X-Amz-Signature');
  if (cred === undefined || amzDate === undefined || expires === undefined || sh === undefined || sig === undefined) {
    throw new S3Error('AuthorizationQueryParametersError', 'query-string authentication requires X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature');
  }
  const expiresS = Number(expires);
  if (!/^\d+$/.test(expires) || expiresS < 1 || expiresS > PRESIGN_EXPIRES_MAX_S) throw new S3Error('AuthorizationQueryParametersError', `X-Amz-Expires must be between 1 and ${PRESIGN_EXPIRES_MAX_S} seconds`);
  if (Number.isNaN(parseAmzDate(amzDate))) throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
  return { ...parseCredential(cred), signedHeaders: sh.split(';'), signature: sig, amzDate, presigned: true, expiresS };
}

/** The canonical query string: every parameter (but the signature), encoded, sorted by name then value. */
export function canonicalQuery(query: [string, string][], presigned: boolean): string {
  return query
    .filter(([k]) => !(presigned && k === 'X-Amz-Signature'))
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** Canonical header value: trimmed, inner runs of spaces collapsed, multiple values joined by ','. */
function canonicalHeaderValue(values: string[]): string {
  return values.map((v) => v.trim().replace(/ +/g, ' ')).join(',');
}

/** The canonical request of `req` for the given signed headers and payload hash. */
export function canonicalRequest(req: SigningRequest, signedHeaders: string[], payloadHash: string, presigned: boolean): string {
  const headerLines = signedHeaders.map((h) => {
    const v = req.headers.get(h);
    if (v === undefined) throw new S3Error('SignatureDoesNotMatch', `signed header '${h}' is missing from the request`);
    return `${h}:${canonicalHeaderValue(v)}\n`;
  }).join('');
  const uri = uriEncode(decodePath(req.rawPath), true);
  return [req.method, uri, canonicalQuery(req.query, presigned), headerLines, signedHeaders.join(';'), payloadHash].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

/** Constant-time comparison of two hex signatures. */
export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Interprets x-amz-content-sha256. @throws S3Error InvalidArgument */
export function payloadMode(value: string | undefined, presigned: boolean): PayloadMode {
  if (value === undefined) {
    if (presigned) return { kind: 'unsigned' };
    throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }
  switch (value) {
    case 'UNSIGNED-PAYLOAD': return { kind: 'unsigned' };
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD': return { kind: 'streaming-signed', trailer: false };
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER': return { kind: 'streaming-signed', trailer: true };
    case 'STREAMING-UNSIGNED-PAYLOAD-TRAILER': return { kind: 'streaming-unsigned-trailer' };
    default:
      if (/^[0-9a-f]{64}$/.test(value)) return { kind: 'sha256', hex: value };
      throw new S3Error('InvalidArgument', `x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value or a SHA-256 hex digest, got '${value}'`);
  }
}

/**
 * Verifies the signature of a parsed request with `secret`, at time `nowMs`.
 * @throws S3Error SignatureDoesNotMatch, RequestTimeTooSkewed, AccessDenied (expired presigned URL), AuthorizationHeaderMalformed
 */
export function verifyAuth(req: SigningRequest, auth: ParsedAuth, secret: string, nowMs: number): VerifiedAuth {
  if (auth.service !== 's3') throw new S3Error('AuthorizationHeaderMalformed', `the credential scope names service '${auth.service}', expected 's3'`);
  if (!auth.amzDate.startsWith(auth.date)) throw new S3Error('AuthorizationHeaderMalformed', 'the credential date does not match x-amz-date');
  if (!auth.signedHeaders.includes('host')) throw new S3Error('AuthorizationHeaderMalformed', 'the host header must be signed');
  const t = parseAmzDate(auth.amzDate);
  if (auth.presigned) {
    if (t - nowMs > CLOCK_SKEW_MAX_MS) throw new S3Error('AccessDenied', 'Request is not valid yet');
    if (nowMs > t + auth.expiresS * 1000) throw new S3Error('AccessDenied', 'Request has expired');
  } else if (Math.abs(nowMs - t) > CLOCK_SKEW_MAX_MS) {
    throw new S3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  }
  const contentSha = single(req.headers, 'x-amz-content-sha256');
  const payload = payloadMode(auth.presigned ? (contentSha ?? 'UNSIGNED-PAYLOAD') : contentSha, auth.presigned);
  const payloadHash = auth.presigned ? (contentSha ?? 'UNSIGNED-PAYLOAD') : contentSha!;
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const canonical = canonicalRequest(req, auth.signedHeaders, payloadHash, auth.presigned);
  const key = signingKey(secret, auth.date, auth.region, auth.service);
  const expected = hmac(key, stringToSign(auth.amzDate, scope, canonical)).toString('hex');
  if (!sameSignature(expected, auth.signature)) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', { canonicalRequest: canonical });
  }
  return { accessKey: auth.accessKey, signingKey: key, amzDate: auth.amzDate, scope, seedSignature: auth.signature, payload };
}

/** Signature of one aws-chunked chunk (AWS4-HMAC-SHA256-PAYLOAD), given the previous signature and the chunk's SHA-256. */
export function chunkSignature(key: Buffer, amzDate: string, scope: string, previous: string, chunkSha256Hex: string): string {
  return hmac(key, ['AWS4-HMAC-SHA256-PAYLOAD', amzDate, scope, previous, EMPTY_SHA256, chunkSha256Hex].join('\n')).toString('hex');
}

/** Signature of the trailing headers (AWS4-HMAC-SHA256-TRAILER), over `name:value\n` lines. */
export function trailerSignature(key: Buffer, amzDate: string, scope: string, previous: string, trailerText: string): string {
  return hmac(key, ['AWS4-HMAC-SHA256-TRAILER', amzDate, scope, previous, sha256Hex(trailerText)].join('\n')).toString('hex');
}
