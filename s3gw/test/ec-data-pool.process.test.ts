/**
 * Issue 5: "An EC pool can serve as ... the tail pool of S3 objects". The gateway's data pool
 * (`.aspen.s3.data`, object bytes only: no omap) is created erasure-coded (k=2 m=1) before the
 * gateway starts (it keeps an existing pool); the newest AWS SDK then puts and gets objects
 * of several sizes, a multipart upload and ranges, byte-exact, and the data objects are in the
 * EC pool.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { OsdTestCluster, REPO_ROOT, freePort, tcpConnectable, tsNodeArgs, waitFor } from '@aspen/test';
import { run } from './gateway.ts';

const ASPEN = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts');
const S3GW = join(REPO_ROOT, 's3gw', 'src', 'bin', 'aspen-s3gw.ts');
const MiB = 1 << 20;

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('aspen-s3gw with an erasure-coded data pool', () => {
  it('stores object bytes in a k=2 m=1 pool and serves them back byte-exact', async () => {
    cluster = await OsdTestCluster.start({ osds: 3, pool: '.aspen.s3.data', pgNum: 8, erasure: { k: 2, m: 1 } });
    const c = cluster;
    expect(c.client.pool('.aspen.s3.data').type).toBe('erasure');
    const port = await freePort();
    c.h.spawn({ name: 's3gw', args: tsNodeArgs(S3GW, ['--mon', c.monAddrs, '--listen', `127.0.0.1:${port}`, '--pg-num', '8']) });
    await waitFor(tcpConnectable(port), { timeoutMs: 30_000, what: 'aspen-s3gw listening' });
    const r = await run(tsNodeArgs(ASPEN, ['-m', c.monAddrs, '-f', 'json', 's3', 'user', 'create', '--uid', 'ec', '--display-name', 'EC']));
    expect(r.code, r.stderr).toBe(0);
    const k = (JSON.parse(r.stdout) as { keys: { access_key: string; secret_key: string }[] }).keys[0]!;
    const s3 = new S3Client({
      endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: k.access_key, secretAccessKey: k.secret_key },
    });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'ecb' }));
      const bodies = new Map<string, Uint8Array>();
      for (const n of [0, 1, 4095, 100_000, 5 * MiB + 7]) {
        const b = new Uint8Array(randomBytes(n));
        await s3.send(new PutObjectCommand({ Bucket: 'ecb', Key: `k${n}`, Body: b }));
        bodies.set(`k${n}`, b);
      }
      const big = new Uint8Array(randomBytes(12 * MiB));
      await new Upload({ client: s3, params: { Bucket: 'ecb', Key: 'multi', Body: big }, partSize: 5 * MiB }).done();
      bodies.set('multi', big);
      for (const [key, b] of bodies) {
        const got = await s3.send(new GetObjectCommand({ Bucket: 'ecb', Key: key }));
        expect(sha(await got.Body!.transformToByteArray()), key).toBe(sha(b));
      }
      const range = await s3.send(new GetObjectCommand({ Bucket: 'ecb', Key: 'multi', Range: 'bytes=5242000-5243999' }));
      expect(sha(await range.Body!.transformToByteArray())).toBe(sha(big.subarray(5_242_000, 5_244_000)));
      // The bytes live in the EC pool.
      expect((await c.client.ioctx('.aspen.s3.data').listObjects()).length).toBeGreaterThanOrEqual(6);
    } finally {
      s3.destroy();
    }
  }, 180_000);
});
