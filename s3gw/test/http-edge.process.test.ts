/**
 * Process-level test of aspen-s3gw's HTTP edge with plain HTTP (issue 7): a presigned PUT sent
 * by fetch (stored byte-exact; tampered and expired URLs refused), and requests node:http
 * cannot parse (oversized or malformed header sections) answered over a raw socket with an S3
 * XML error document, a request id and `connection: close`, instead of node's bare 400/431.
 */
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { MiB, NodeSha256, md5, sha, startGateway, type Credentials, type Gateway } from './gateway.ts';

let gw: Gateway | null = null;
let creds: Credentials;
beforeAll(async () => {
  gw = await startGateway();
  creds = await gw.user('edge');
}, 120_000);
afterAll(async () => {
  await gw?.cluster.teardown();
  gw = null;
});

describe('aspen-s3gw over plain HTTP and raw sockets (3 mons + 3 OSDs)', () => {
  it('presigned PUT with plain HTTP: stored byte-exact; a tampered or expired one is refused', async () => {
    const g = gw!;
    const s3 = g.client(creds);
    const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 's3', sha256: NodeSha256 as unknown as ConstructorParameters<typeof SignatureV4>[0]['sha256'], uriEscapePath: false });
    // As @aws-sdk/s3-request-presigner does: UNSIGNED-PAYLOAD, that header neither signed nor in the URL.
    const presign = async (path: string, expiresIn: number, signingDate?: Date): Promise<string> => {
      const p = await signer.presign({ method: 'PUT', protocol: 'http:', hostname: '127.0.0.1', port: g.port, path, headers: { host: `127.0.0.1:${g.port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, query: {} },
        { expiresIn, unhoistableHeaders: new Set(['x-amz-content-sha256']), unsignableHeaders: new Set(['x-amz-content-sha256']), ...(signingDate === undefined ? {} : { signingDate }) });
      return `${g.endpoint}${path}?${new URLSearchParams(p.query as Record<string, string>).toString()}`;
    };
    await s3.send(new CreateBucketCommand({ Bucket: 'pre' }));
    const body = randomBytes(3 * MiB + 17);
    const url = await presign('/pre/up%20load.bin', 300);
    const res = await fetch(url, { method: 'PUT', body });
    expect([res.status, res.headers.get('etag')], await res.clone().text()).toEqual([200, `"${md5(body)}"`]);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'pre', Key: 'up load.bin' }));
    expect(sha(await got.Body!.transformToByteArray())).toBe(sha(body));
    // The signature covers the path: the same query on another key is refused.
    const tampered = await fetch(url.replace('/pre/up%20load.bin', '/pre/other.bin'), { method: 'PUT', body: 'x' });
    expect([tampered.status, await tampered.text()]).toEqual([403, expect.stringMatching(/<Code>SignatureDoesNotMatch<\/Code>/)]);
    // Signed 10 minutes ago for 60 s: expired.
    const old = await presign('/pre/late.bin', 60, new Date(Date.now() - 600_000));
    const late = await fetch(old, { method: 'PUT', body: 'x' });
    expect([late.status, await late.text()]).toEqual([403, expect.stringMatching(/<Code>AccessDenied<\/Code>.*expired/s)]);
    s3.destroy();
  }, 60_000);

  it('answers an oversized or malformed header section with an S3 XML error document and closes', async () => {
    const g = gw!;
    /**
     * Writes `raw` on a fresh connection (after `first`, once its whole answer came back, when
     * given); everything the server sent until it closed.
     */
    const exchange = (raw: string, first?: { request: string; answerEnd: string }): Promise<string> => new Promise((resolve, reject) => {
      const s = connect(g.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      let pending = first === undefined ? null : raw;
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        if (pending !== null && Buffer.concat(chunks).toString('latin1').includes(first!.answerEnd)) {
          s.write(pending);
          pending = null;
        }
      });
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      s.setTimeout(10_000, () => s.destroy(new Error('no close within 10 s')));
      s.write(first === undefined ? raw : first.request);
    });
    const parse = (resp: string): { status: number; headers: Map<string, string>; body: string } => {
      const [head = '', body = ''] = resp.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      return { status: Number(statusLine.split(' ')[1]), headers: new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])), body };
    };

    // 20 KiB of headers: over the 16 KiB limit.
    const big = parse(await exchange(`GET /bkt/key HTTP/1.1\r\nHost: 127.0.0.1\r\nx-amz-meta-big: ${'a'.repeat(20 * 1024)}\r\n\r\n`));
    expect(big.status).toBe(400);
    expect(big.headers.get('content-type')).toBe('application/xml');
    expect(big.headers.get('connection')).toBe('close');
    expect(big.headers.get('x-amz-request-id')).toMatch(/^[0-9A-F]{16}$/);
    expect(Number(big.headers.get('content-length'))).toBe(Buffer.byteLength(big.body));
    expect(big.body).toMatch(new RegExp(`^<\\?xml[^>]*\\?>\\n<Error><Code>RequestHeaderSectionTooLarge</Code><Message>[^<]+</Message><RequestId>${big.headers.get('x-amz-request-id')}</RequestId></Error>$`));
    // Many small headers over the limit too.
    const many = Array.from({ length: 1000 }, (_, i) => `x-header-${i}: value\r\n`).join('');
    expect(parse(await exchange(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n${many}\r\n`)).body).toMatch(/<Code>RequestHeaderSectionTooLarge<\/Code>/);
    // Malformed: a header line without a colon, and garbage instead of a request line.
    for (const raw of ['GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n', 'NOT HTTP AT ALL\r\n\r\n']) {
      const r = parse(await exchange(raw));
      expect([r.status, r.headers.get('content-type')], raw).toEqual([400, 'application/xml']);
      expect(r.body, raw).toMatch(/<Error><Code>InvalidRequest<\/Code><Message>[^<]+<\/Message><RequestId>[0-9A-F]{16}<\/RequestId><\/Error>$/);
    }
    // After a good request on a kept-alive connection, a bad one still gets its document.
    const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 's3', sha256: NodeSha256 as unknown as ConstructorParameters<typeof SignatureV4>[0]['sha256'], uriEscapePath: false });
    const signed = await signer.sign({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: g.port, path: '/', query: {}, headers: { host: `127.0.0.1:${g.port}`, 'x-amz-content-sha256': sha(Buffer.alloc(0)) } });
    const listBuckets = `GET / HTTP/1.1\r\n${Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    const two = await exchange(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ${'b'.repeat(20 * 1024)}\r\n\r\n`, { request: listBuckets, answerEnd: '</ListAllMyBucketsResult>' });
    // (the 400 follows the first body directly: no newline before it)
    expect(two.match(/HTTP\/1\.1 \d{3}/g), two.slice(0, 1000)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 400']);
    expect(two).toMatch(/<Code>RequestHeaderSectionTooLarge<\/Code>/);
    // And the gateway still serves.
    expect((await fetch(`${g.endpoint}/`)).status).toBe(403);
  }, 30_000);
});
