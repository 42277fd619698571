/**
 * Process-level test of aspen-s3gw: 3 mons + 3 OSDs, a user made with `aspen s3 user
 * create`, the gateway as its own process, driven by the newest @aws-sdk/client-s3 with its
 * default settings (aws-chunked uploads with CRC32 trailers, checksum mode on GET) and by
 * plain fetch for presigned URLs and virtual-host-style requests.
 */
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand,
  DeleteBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetBucketLocationCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  ListBucketsCommand, ListMultipartUploadsCommand, ListObjectsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand, S3Client,
  UploadPartCommand, UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { SignatureV4 } from '@smithy/signature-v4';
import { OsdTestCluster, REPO_ROOT, freePort, tcpConnectable, tsNodeArgs, waitFor } from '@aspen/test';

const ASPEN = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts');
const S3GW = join(REPO_ROOT, 's3gw', 'src', 'bin', 'aspen-s3gw.ts');
const MiB = 1 << 20;

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
  });
}

/** SHA-256 for @smithy/signature-v4 (HMAC when given a secret). */
class NodeSha256 {
  private readonly h;
  constructor(secret?: string | Uint8Array) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', secret);
  }
  update(d: Uint8Array): void {
    this.h.update(d);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

async function errOf(p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await p;
    return { name: 'ok', status: 200 };
  } catch (err) {
    const e = err as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode };
  }
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

describe('aspen-s3gw with the AWS SDK (3 mons + 3 OSDs)', () => {
  it('serves buckets, objects, listings, multipart, copy, presigned URLs and refuses bad signatures', async () => {
    cluster = await OsdTestCluster.start({ osds: 3, pool: '.aspen.s3.data', pgNum: 8 });
    const { monAddrs, h } = cluster;

    // Users live in the mon state: create one with the admin CLI.
    const created = await run(tsNodeArgs(ASPEN, ['-m', monAddrs, '-f', 'json', 's3', 'user', 'create', '--uid', 'alice', '--display-name', 'Alice']));
    expect(created.code, created.stderr).toBe(0);
    const user = JSON.parse(created.stdout) as { user_id: string; keys: { access_key: string; secret_key: string }[] };
    expect(user.user_id).toBe('alice');
    const { access_key: accessKeyId, secret_key: secretAccessKey } = user.keys[0]!;
    const info = await run(tsNodeArgs(ASPEN, ['-m', monAddrs, '-f', 'json', 's3', 'user', 'info', '--uid', 'alice']));
    expect(JSON.parse(info.stdout)).toMatchObject({ user_id: 'alice', display_name: 'Alice' });

    const port = await freePort();
    const metricsPort = await freePort();
    h.spawn({ name: 's3gw', args: tsNodeArgs(S3GW, ['--mon', monAddrs, '--listen', `127.0.0.1:${port}`, '--pg-num', '8', '--gc-delay-ms', '300', '--metrics-addr', `127.0.0.1:${metricsPort}`]) });
    await waitFor(tcpConnectable(port), { timeoutMs: 30_000, what: 'aspen-s3gw listening' });
    const endpoint = `http://127.0.0.1:${port}`;
    const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });

    // Buckets.
    await s3.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    expect(await errOf(s3.send(new CreateBucketCommand({ Bucket: 'bkt' })))).toEqual({ name: 'BucketAlreadyOwnedByYou', status: 409 });
    expect((await errOf(s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })))).name).toBe('InvalidBucketName');
    expect((await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toEqual(['bkt']);
    await s3.send(new HeadBucketCommand({ Bucket: 'bkt' }));
    expect((await errOf(s3.send(new HeadBucketCommand({ Bucket: 'nope' })))).status).toBe(404);
    expect((await s3.send(new GetBucketLocationCommand({ Bucket: 'bkt' }))).LocationConstraint ?? '').toBe('');

    // PutObject with metadata and representation headers; GetObject and HeadObject return them.
    const text = 'hello, aspen s3 gateway!';
    const put = await s3.send(new PutObjectCommand({
      Bucket: 'bkt', Key: 'hello.txt', Body: text, ContentType: 'text/plain', CacheControl: 'max-age=60', ContentDisposition: 'inline',
      Metadata: { color: 'blue' },
    }));
    expect(put.ETag).toBe(`"${md5(Buffer.from(text))}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt' }));
    expect(await got.Body!.transformToString()).toBe(text);
    expect(got).toMatchObject({ ContentType: 'text/plain', CacheControl: 'max-age=60', ContentDisposition: 'inline', Metadata: { color: 'blue' }, ContentLength: text.length, ETag: put.ETag });
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'hello.txt' }));
    expect(head.ContentLength).toBe(text.length);

    // A streamed body goes aws-chunked with an x-amz-checksum-crc32 trailer; GET in checksum mode returns it.
    const streamed = randomBytes(300_000);
    const sput = await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'streamed.bin', Body: Readable.from([streamed.subarray(0, 100_000), streamed.subarray(100_000)]), ContentLength: streamed.length }));
    expect(sput.ChecksumCRC32).toBeDefined();
    const sget = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'streamed.bin', ChecksumMode: 'ENABLED' }));
    expect(sget.ChecksumCRC32).toBe(sput.ChecksumCRC32);
    expect(sha(await sget.Body!.transformToByteArray())).toBe(sha(streamed));

    // Ranges: plain, suffix, unsatisfiable.
    const r1 = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', Range: 'bytes=0-4' }));
    expect([r1.$metadata.httpStatusCode, await r1.Body!.transformToString(), r1.ContentRange]).toEqual([206, 'hello', `bytes 0-4/${text.length}`]);
    const r2 = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', Range: 'bytes=-8' }));
    expect(await r2.Body!.transformToString()).toBe('gateway!');
    expect(await errOf(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', Range: 'bytes=1000-' })))).toEqual({ name: 'InvalidRange', status: 416 });

    // Conditional reads and response-* overrides.
    expect((await errOf(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', IfNoneMatch: put.ETag })))).status).toBe(304);
    expect(await errOf(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', IfMatch: '"0000"' })))).toEqual({ name: 'PreconditionFailed', status: 412 });
    expect((await errOf(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', IfModifiedSince: new Date(Date.now() + 3600_000) })))).status).toBe(304);
    const ov = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', ResponseContentType: 'application/x-test', ResponseCacheControl: 'no-store' }));
    expect([ov.ContentType, ov.CacheControl]).toEqual(['application/x-test', 'no-store']);
    await ov.Body!.transformToString();
    expect((await errOf(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'missing' })))).name).toBe('NoSuchKey');

    // Conditional writes: If-None-Match * is atomic among concurrent creators; If-Match compares ETags.
    expect(await errOf(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', Body: 'x', IfNoneMatch: '*' })))).toEqual({ name: 'PreconditionFailed', status: 412 });
    const racers = await Promise.all(Array.from({ length: 5 }, (_, i) => errOf(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'race', Body: `racer ${i}`, IfNoneMatch: '*' })))));
    expect(racers.filter((r) => r.name === 'ok').length).toBe(1);
    expect(racers.filter((r) => r.status === 412 || r.status === 409).length).toBe(4);
    expect((await errOf(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'hello.txt', Body: 'x', IfMatch: '"0000"' })))).status).toBe(412);
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'cond', Body: 'v1' }));
    const v2put = await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'cond', Body: 'v2', IfMatch: `"${md5(Buffer.from('v1'))}"` }));
    expect(v2put.ETag).toBe(`"${md5(Buffer.from('v2'))}"`);
    // A wrong Content-MD5 is refused and the old version stays.
    expect((await errOf(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'cond', Body: 'v3', ContentMD5: Buffer.from(md5(Buffer.from('zz')), 'hex').toString('base64') })))).name).toBe('BadDigest');
    expect(await (await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'cond' }))).Body!.transformToString()).toBe('v2');

    // Listings v1/v2 with delimiters, pagination and URL encoding.
    for (const k of ['dir/a', 'dir/b', 'dir/sub/c', 'other/x', 'top', 'with space']) await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: k, Body: k }));
    const l1 = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Delimiter: '/' }));
    expect(l1.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['dir/', 'other/']);
    expect(l1.Contents?.map((c) => c.Key)).toEqual(['cond', 'hello.txt', 'race', 'streamed.bin', 'top', 'with space']);
    const l2 = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Prefix: 'dir/', Delimiter: '/' }));
    expect([l2.Contents?.map((c) => c.Key), l2.CommonPrefixes?.map((p) => p.Prefix)]).toEqual([['dir/a', 'dir/b'], ['dir/sub/']]);
    const pages: string[] = [];
    let token: string | undefined;
    do {
      const p = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', MaxKeys: 3, ...(token === undefined ? {} : { ContinuationToken: token }) }));
      pages.push(...(p.Contents ?? []).map((c) => c.Key!));
      token = p.IsTruncated === true ? p.NextContinuationToken : undefined;
    } while (token !== undefined);
    expect(pages).toEqual(['cond', 'dir/a', 'dir/b', 'dir/sub/c', 'hello.txt', 'other/x', 'race', 'streamed.bin', 'top', 'with space']);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: 'bkt', Marker: 'other/x', MaxKeys: 2 }));
    expect([v1.Contents?.map((c) => c.Key), v1.IsTruncated]).toEqual([['race', 'streamed.bin'], true]);
    const v1d = await s3.send(new ListObjectsCommand({ Bucket: 'bkt', Delimiter: '/', MaxKeys: 1 }));
    expect([v1d.Contents?.map((c) => c.Key), v1d.NextMarker]).toEqual([['cond'], 'cond']);
    const enc = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Prefix: 'with', EncodingType: 'url' }));
    expect([enc.EncodingType, enc.Contents?.map((c) => c.Key)]).toEqual(['url', ['with%20space']]); // the SDK leaves them encoded

    // Multipart: a 20 MiB upload through lib-storage (5 MiB parts), read back byte-exact and across a part boundary.
    const big = randomBytes(20 * MiB);
    const up = await new Upload({ client: s3, params: { Bucket: 'bkt', Key: 'big.bin', Body: Readable.from([big.subarray(0, 7 * MiB), big.subarray(7 * MiB)]) }, partSize: 5 * MiB, queueSize: 2 }).done();
    expect(up.ETag).toMatch(/^"[0-9a-f]{32}-4"$/);
    const bigGet = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'big.bin' }));
    expect(bigGet.ContentLength).toBe(20 * MiB);
    expect(sha(await bigGet.Body!.transformToByteArray())).toBe(sha(big));
    const across = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'big.bin', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }));
    expect(Buffer.from(await across.Body!.transformToByteArray()).equals(big.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true);

    // Multipart refusals, ListParts, ListMultipartUploads, UploadPartCopy, Abort.
    const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp', ContentType: 'application/x-mp' }));
    const uploadId = mpu.UploadId!;
    const p1 = await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'mp', UploadId: uploadId, PartNumber: 1, Body: Buffer.alloc(1000, 1) }));
    const p2 = await s3.send(new UploadPartCopyCommand({ Bucket: 'bkt', Key: 'mp', UploadId: uploadId, PartNumber: 2, CopySource: 'bkt/big.bin', CopySourceRange: 'bytes=0-999' }));
    expect(p2.CopyPartResult?.ETag).toBe(`"${md5(big.subarray(0, 1000))}"`);
    expect((await s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: 'mp', UploadId: uploadId }))).Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([[1, 1000], [2, 1000]]);
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: 'bkt' }))).Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([['mp', uploadId]]);
    const complete = (parts: { ETag: string; PartNumber: number }[]): Promise<unknown> => s3.send(new CompleteMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp', UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    expect((await errOf(complete([{ ETag: p1.ETag!, PartNumber: 1 }, { ETag: p2.CopyPartResult!.ETag!, PartNumber: 2 }]))).name).toBe('EntityTooSmall');
    expect((await errOf(complete([{ ETag: '"ffff"', PartNumber: 1 }]))).name).toBe('InvalidPart');
    expect((await errOf(complete([{ ETag: p2.CopyPartResult!.ETag!, PartNumber: 2 }, { ETag: p1.ETag!, PartNumber: 1 }]))).name).toBe('InvalidPartOrder');
    await complete([{ ETag: p1.ETag!, PartNumber: 1 }]); // a single small part is a valid last part
    const mpGet = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'mp' }));
    expect([mpGet.ContentType, mpGet.ContentLength]).toEqual(['application/x-mp', 1000]);
    await mpGet.Body!.transformToByteArray();
    const abortMe = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'gone' }));
    await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'gone', UploadId: abortMe.UploadId!, PartNumber: 1, Body: 'x' }));
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'bkt', Key: 'gone', UploadId: abortMe.UploadId! }));
    expect((await errOf(s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: 'gone', UploadId: abortMe.UploadId! })))).name).toBe('NoSuchUpload');

    // CopyObject with COPY and REPLACE metadata directives.
    await s3.send(new CopyObjectCommand({ Bucket: 'bkt', Key: 'hello-copy', CopySource: 'bkt/hello.txt' }));
    const c1 = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello-copy' }));
    expect([await c1.Body!.transformToString(), c1.Metadata, c1.ContentType]).toEqual([text, { color: 'blue' }, 'text/plain']);
    await s3.send(new CopyObjectCommand({ Bucket: 'bkt', Key: 'hello-copy', CopySource: 'bkt/hello.txt', MetadataDirective: 'REPLACE', Metadata: { color: 'red' }, ContentType: 'text/x-red' }));
    const c2 = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'hello-copy' }));
    expect([c2.Metadata, c2.ContentType]).toEqual([{ color: 'red' }, 'text/x-red']);
    expect((await errOf(s3.send(new CopyObjectCommand({ Bucket: 'bkt', Key: 'x', CopySource: 'bkt/hello.txt', CopySourceIfMatch: '"0"' })))).status).toBe(412);

    // Presigned GET with plain fetch; an expired or tampered one is refused.
    const signer = new SignatureV4({ credentials: { accessKeyId, secretAccessKey }, region: 'us-east-1', service: 's3', sha256: NodeSha256 as unknown as ConstructorParameters<typeof SignatureV4>[0]['sha256'], uriEscapePath: false });
    const presigned = await signer.presign({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port, path: '/bkt/hello.txt', headers: { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, query: {} },
      // As @aws-sdk/s3-request-presigner does: the payload is UNSIGNED-PAYLOAD, and that header is neither signed nor put in the URL.
      { expiresIn: 300, unhoistableHeaders: new Set(['x-amz-content-sha256']), unsignableHeaders: new Set(['x-amz-content-sha256']) });
    const qs = new URLSearchParams(presigned.query as Record<string, string>).toString();
    const pres = await fetch(`${endpoint}/bkt/hello.txt?${qs}`);
    expect([pres.status, await pres.text()]).toEqual([200, text]);
    const tampered = await fetch(`${endpoint}/bkt/hello-copy?${qs}`);
    expect(tampered.status).toBe(403);
    expect(await tampered.text()).toMatch(/<Code>SignatureDoesNotMatch<\/Code>.*<RequestId>/s);
    const anon = await fetch(`${endpoint}/bkt/hello.txt`);
    expect(anon.status).toBe(403);
    expect(anon.headers.get('x-amz-request-id')).toMatch(/^[0-9A-F]{16}$/);

    // Virtual-host style: Host bkt.localhost, path = key.
    const vh = new S3Client({ endpoint: `http://localhost:${port}`, region: 'us-east-1', forcePathStyle: false, credentials: { accessKeyId, secretAccessKey } });
    vh.middlewareStack.add((next) => async (args) => {
      (args.request as { hostname: string }).hostname = '127.0.0.1';
      return next(args);
    }, { step: 'finalizeRequest', priority: 'low', name: 'connectToLoopback' });
    expect(await (await vh.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt' }))).Body!.transformToString()).toBe(text);

    // Bad secret → SignatureDoesNotMatch; unknown key → InvalidAccessKeyId.
    const bad = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey: `${secretAccessKey}x` } });
    expect(await errOf(bad.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'hello.txt' })))).toEqual({ name: 'SignatureDoesNotMatch', status: 403 });
    expect(await errOf(bad.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'evil', Body: 'x' })))).toEqual({ name: 'SignatureDoesNotMatch', status: 403 });
    const unknown = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey } });
    expect(await errOf(unknown.send(new ListBucketsCommand({})))).toEqual({ name: 'InvalidAccessKeyId', status: 403 });

    // The aws CLI (v1, botocore): multipart cp up (8 MiB threshold), ls, cp down byte-exact, rm.
    const dir = h.path('awscli');
    mkdirSync(dir, { recursive: true });
    const file = randomBytes(9 * MiB);
    writeFileSync(join(dir, 'up.bin'), file);
    const env = { ...process.env, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
    const aws = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
      execFile('aws', ['--endpoint-url', endpoint, ...args], { env, cwd: dir }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : 1, stdout, stderr }));
    });
    const cpUp = await aws('s3', 'cp', join(dir, 'up.bin'), 's3://bkt/cli/up.bin');
    expect(cpUp.code, cpUp.stderr).toBe(0);
    expect((await aws('s3', 'ls', 's3://bkt/cli/')).stdout).toMatch(/9437184 up\.bin/);
    const cpDown = await aws('s3', 'cp', 's3://bkt/cli/up.bin', join(dir, 'down.bin'));
    expect(cpDown.code, cpDown.stderr).toBe(0);
    expect(sha(readFileSync(join(dir, 'down.bin')))).toBe(sha(file));
    expect((await aws('s3', 'rm', 's3://bkt/cli/up.bin')).code).toBe(0);

    // Deletes; a non-empty bucket cannot be deleted.
    expect((await errOf(s3.send(new DeleteBucketCommand({ Bucket: 'bkt' })))).name).toBe('BucketNotEmpty');
    await s3.send(new DeleteObjectCommand({ Bucket: 'bkt', Key: 'hello-copy' }));
    await s3.send(new DeleteObjectCommand({ Bucket: 'bkt', Key: 'never-existed' }));
    const all = (await s3.send(new ListObjectsV2Command({ Bucket: 'bkt' }))).Contents!.map((c) => ({ Key: c.Key! }));
    const del = await s3.send(new DeleteObjectsCommand({ Bucket: 'bkt', Delete: { Objects: all } }));
    expect(del.Deleted?.length).toBe(all.length);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: 'bkt' }))).KeyCount).toBe(0);
    await s3.send(new DeleteBucketCommand({ Bucket: 'bkt' }));
    expect((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([]);

    const metricsText = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metricsText).toMatch(/aspen_s3_requests_total\{op="PutObject",status="200",daemon="s3gw"\} \d+/);

    // No garbage: every stripe of replaced, deleted, aborted, refused or unused data is removed
    // (replaced versions after the GC delay), and the metadata pool holds only the directory.
    const data = cluster.client.ioctx('.aspen.s3.data');
    await waitFor(async () => (await data.listObjects()).length === 0, { timeoutMs: 10_000, what: 'the data pool emptied' });
    expect(await cluster.client.ioctx('.aspen.s3.meta').listObjects()).toEqual(['buckets']);
  });
});
