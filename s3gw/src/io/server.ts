/**
 * The HTTP edge of the gateway (node:http): turns a request into an S3Request (bucket and
 * key from a path-style or virtual-host-style URL), authenticates it (SigV4, keys fetched
 * from the monitors and cached), runs the endpoint's handler and writes its response —
 * streaming bodies with backpressure — or an S3 XML error document. Every response carries
 * x-amz-request-id.
 */
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable, type Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { AspenError, assertNever } from '@aspen/shared';
import type { MonClient } from '@aspen/shared/io/monclient.ts';
import { parseAuth, verifyAuth, decodePath, type SigningRequest, type VerifiedAuth } from '../auth/sigv4.ts';
import { S3Error, httpParseError, toS3Error } from '../core/errors.ts';
import { xmlDocument } from '../core/xml.ts';
import { RevClock } from '../core/versioning.ts';
import type { S3Store } from '../store/store.ts';
import type { SegmentReaper } from './reaper.ts';
import { RequestBody } from '../api/body.ts';
import * as obj from '../api/objects.ts';
import * as bk from '../api/buckets.ts';
import * as mp from '../api/multipart.ts';
import { resolveEndpoint, type Endpoint, type HandlerContext, type S3Request, type S3Response, type S3User } from '../api/types.ts';

export interface GatewayOptions {
  store: S3Store;
  mon: MonClient;
  log: Logger;
  region: string;
  /** Host names under which `<bucket>.<domain>` is virtual-host style (e.g. `localhost`). */
  domains: string[];
  /** Removes replaced versions after a grace period (./reaper.ts). */
  reaper: SegmentReaper;
  /** Called once per answered request (metrics). */
  observe?: (op: string, status: number, latencyMs: number) => void;
  /** Largest header block, bytes (named limit; node's --max-http-header-size). */
  headersMaxBytes?: number;
}

/** Cached access keys (positive for KEY_CACHE_MS, negative for KEY_NEGATIVE_CACHE_MS). */
const KEY_CACHE_MS = 30_000;
const KEY_NEGATIVE_CACHE_MS = 2_000;
const KEY_CACHE_ENTRIES_MAX = 10_000;

interface CachedKey { user: S3User | null; secret: string; untilMs: number }

class KeyCache {
  private readonly keys = new Map<string, CachedKey>();
  constructor(private readonly mon: MonClient) {}

  /** The user and secret of `accessKey`, or null when unknown. @throws AspenError when the monitors cannot answer */
  async lookup(accessKey: string): Promise<CachedKey> {
    const hit = this.keys.get(accessKey);
    if (hit !== undefined && hit.untilMs > Date.now()) return hit;
    let entry: CachedKey;
    try {
      const r = await this.mon.command({ prefix: 's3 key get', access_key: accessKey });
      const d = r.data as { user_id: string; display_name: string; secret_key: string };
      entry = { user: { uid: d.user_id, displayName: d.display_name }, secret: d.secret_key, untilMs: Date.now() + KEY_CACHE_MS };
    } catch (err) {
      if (!(err instanceof AspenError && (err.code === 'ENOENT' || err.code === 'EINVAL'))) throw err;
      entry = { user: null, secret: '', untilMs: Date.now() + KEY_NEGATIVE_CACHE_MS };
    }
    if (this.keys.size >= KEY_CACHE_ENTRIES_MAX) this.keys.clear();
    this.keys.set(accessKey, entry);
    return entry;
  }
}

function headersOf(req: http.IncomingMessage): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!.toLowerCase();
    const v = req.rawHeaders[i + 1]!;
    const list = m.get(k);
    if (list === undefined) m.set(k, [v]);
    else list.push(v);
  }
  return m;
}

/** Splits a URL into the raw path and decoded query pairs. */
export function splitUrl(url: string): { rawPath: string; query: [string, string][] } {
  const qi = url.indexOf('?');
  const rawPath = qi < 0 ? url : url.slice(0, qi);
  const query: [string, string][] = [];
  if (qi >= 0) {
    for (const part of url.slice(qi + 1).split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const dec = (s: string): string => decodePath(s.replace(/\+/g, '%20'));
      query.push(eq < 0 ? [dec(part), ''] : [dec(part.slice(0, eq)), dec(part.slice(eq + 1))]);
    }
  }
  return { rawPath, query };
}

/** Bucket and key of a request, path-style or virtual-host-style. */
export function bucketAndKey(host: string, rawPath: string, domains: readonly string[]): { bucket: string | null; key: string | null } {
  const hostname = host.replace(/:\d+$/, '').toLowerCase();
  const path = decodePath(rawPath);
  for (const d of domains) {
    if (hostname.endsWith(`.${d}`)) {
      const bucket = hostname.slice(0, -d.length - 1);
      const key = path.startsWith('/') ? path.slice(1) : path;
      return { bucket, key: key === '' ? null : key };
    }
  }
  const p = path.startsWith('/') ? path.slice(1) : path;
  if (p === '') return { bucket: null, key: null };
  const slash = p.indexOf('/');
  if (slash < 0) return { bucket: p, key: null };
  const key = p.slice(slash + 1);
  return { bucket: p.slice(0, slash), key: key === '' ? null : key };
}

async function dispatch(ep: Endpoint, ctx: HandlerContext, req: S3Request): Promise<S3Response> {
  switch (ep) {
    case 'ListBuckets': return bk.listBuckets(ctx);
    case 'CreateBucket': return bk.createBucket(ctx, req);
    case 'HeadBucket': return bk.headBucket(ctx, req);
    case 'DeleteBucket': return bk.deleteBucket(ctx, req);
    case 'GetBucketLocation': return bk.getBucketLocation(ctx, req);
    case 'GetBucketVersioning': return bk.getBucketVersioning(ctx, req);
    case 'PutBucketVersioning': return bk.putBucketVersioning(ctx, req);
    case 'GetBucketAcl': return bk.getBucketAcl(ctx, req);
    case 'PutBucketAcl': return bk.putBucketAcl(ctx, req);
    case 'ListObjects': return bk.listObjects(ctx, req, false);
    case 'ListObjectsV2': return bk.listObjects(ctx, req, true);
    case 'ListObjectVersions': return bk.listObjectVersions(ctx, req);
    case 'GetObjectAcl': return obj.getObjectAcl(ctx, req);
    case 'PutObjectAcl': return obj.putObjectAcl(ctx, req);
    case 'DeleteObjects': return obj.deleteObjects(ctx, req);
    case 'ListMultipartUploads': return mp.listMultipartUploads(ctx, req);
    case 'PutObject': return obj.putObject(ctx, req);
    case 'CopyObject': return obj.copyObject(ctx, req);
    case 'GetObject': return obj.getObject(ctx, req, false);
    case 'HeadObject': return obj.getObject(ctx, req, true);
    case 'DeleteObject': return obj.deleteObject(ctx, req);
    case 'CreateMultipartUpload': return mp.createMultipartUpload(ctx, req);
    case 'UploadPart': return mp.uploadPart(ctx, req);
    case 'UploadPartCopy': return mp.uploadPartCopy(ctx, req);
    case 'CompleteMultipartUpload': return mp.completeMultipartUpload(ctx, req);
    case 'AbortMultipartUpload': return mp.abortMultipartUpload(ctx, req);
    case 'ListParts': return mp.listParts(ctx, req);
    default: return assertNever(ep);
  }
}

function errorResponse(err: S3Error, resource: string, requestId: string, head: boolean): S3Response {
  if (err.code === 'NotModified') return { status: 304, headers: {} };
  const extra = Object.entries(err.extra).map(([k, v]): [string, string] => [k.charAt(0).toUpperCase() + k.slice(1), v]);
  const body = xmlDocument('Error', [['Code', err.code], ['Message', err.message], ['Resource', resource], ['RequestId', requestId], ...extra], false);
  return { status: err.status, headers: { ...err.headers, 'content-type': 'application/xml' }, ...(head ? {} : { body }) };
}

async function writeResponse(res: http.ServerResponse, r: S3Response): Promise<void> {
  for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
  res.statusCode = r.status;
  if (r.body === undefined) {
    res.end();
  } else if (typeof r.body === 'string') {
    res.setHeader('content-length', Buffer.byteLength(r.body));
    res.end(r.body);
  } else {
    await pipeline(Readable.from(r.body, { objectMode: false }), res);
  }
}

/**
 * A request node:http could not parse (oversized or malformed header section, headers
 * timeout): instead of node's bare 400/431, an S3 XML error document with a request id, then
 * the connection is closed (the rest of the stream cannot be framed). Nothing is written when
 * the peer is gone or a response is half written on the socket.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex, o: GatewayOptions): void {
  // node's own rule (socketOnError): never write into the middle of a response; one that
  // has not started, or has been wholly queued already, leaves the stream framed.
  const inFlight = (socket as { _httpMessage?: { _headerSent?: boolean; writableEnded?: boolean } | null })._httpMessage;
  const midResponse = inFlight !== null && inFlight !== undefined && inFlight._headerSent === true && inFlight.writableEnded !== true;
  if (err.code === 'ECONNRESET' || !socket.writable || midResponse) {
    socket.destroy();
    return;
  }
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  const e = httpParseError(err.code);
  const body = xmlDocument('Error', [['Code', e.code], ['Message', e.message], ['RequestId', requestId]], false);
  const head = [
    `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? 'Error'}`, 'content-type: application/xml', `content-length: ${Buffer.byteLength(body)}`,
    `x-amz-request-id: ${requestId}`, 'server: AspenS3', 'connection: close',
  ];
  o.log.debug({ requestId, code: e.code, err: err.code }, 'unparsable request refused');
  o.observe?.('-', e.status, 0);
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
}

/** Starts the gateway on host:port. @returns the server and its bound port */
export function startGateway(o: GatewayOptions, host: string, port: number): Promise<{ server: http.Server; port: number }> {
  const keys = new KeyCache(o.mon);
  const revs = new RevClock(() => randomBytes(4).readUInt32BE(0));
  const handle = async (hreq: http.IncomingMessage, hres: http.ServerResponse): Promise<void> => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    const startMs = Date.now();
    let op = '-';
    hres.setHeader('x-amz-request-id', requestId);
    hres.setHeader('server', 'AspenS3');
    const method = hreq.method ?? 'GET';
    const url = hreq.url ?? '/';
    let resource = url.split('?')[0] ?? '/';
    let response: S3Response;
    let bodyUnread = true;
    try {
      const headers = headersOf(hreq);
      const { rawPath, query } = splitUrl(url);
      resource = decodePath(rawPath);
      const sreq: SigningRequest = { method, rawPath, query, headers };
      // Anonymous requests go on with no user: handlers allow what public-read grants.
      const auth = parseAuth(sreq);
      let user: S3User | null = null;
      let verified: VerifiedAuth | null = null;
      if (auth !== null) {
        const key = await keys.lookup(auth.accessKey);
        if (key.user === null) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
        verified = verifyAuth(sreq, auth, key.secret, Date.now());
        user = key.user;
      }
      const { bucket, key: objectKey } = bucketAndKey(headers.get('host')?.[0] ?? '', rawPath, o.domains);
      const q = new Map<string, string>();
      for (const [k, v] of query) if (!q.has(k)) q.set(k, v);
      const ep = resolveEndpoint(method, bucket, objectKey, q, headers);
      op = ep;
      const body = new RequestBody(hreq, headers, verified);
      bodyUnread = false;
      const ctx: HandlerContext = {
        store: o.store, nowMs: () => Date.now(), newId: () => randomBytes(16).toString('hex'), user, region: o.region, retire: (s) => o.reaper.retire(s),
        newRev: () => revs.next(Date.now()),
      };
      response = await dispatch(ep, ctx, { method, bucket, key: objectKey, query: q, headers, body, requestId });
      o.log.debug({ requestId, ep, bucket, key: objectKey, status: response.status }, 'request');
    } catch (err) {
      const e = toS3Error(err);
      if (e.code === 'InternalError' || e.code === 'ServiceUnavailable') o.log.warn({ requestId, err: String(err) }, 'request failed');
      else o.log.debug({ requestId, code: e.code, msg: e.message }, 'request refused');
      response = errorResponse(e, resource, requestId, method === 'HEAD');
      // An error before the body was consumed: drain it so the connection can be reused.
      if (bodyUnread || !hreq.readableEnded) hres.setHeader('connection', 'close');
    }
    try {
      await writeResponse(hres, response);
    } catch (err) {
      o.log.warn({ requestId, err: String(err) }, 'response aborted');
      hres.destroy();
    }
    o.observe?.(op, response.status, Date.now() - startMs);
  };
  const server = http.createServer({ maxHeaderSize: o.headersMaxBytes ?? 16 * 1024, requestTimeout: 0 }, (req, res) => {
    void handle(req, res);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket, o));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}
