/**
 * Process-level test: a large upload streams through aspen-s3gw without the gateway holding
 * it — lib-storage multipart of 1 GiB (ASPEN_S3_LARGE_MIB) and one streamed PutObject of 128 MiB (aws-chunked with
 * a CRC32 trailer) — read back byte-exact, the gateway's peak RSS (VmHWM) bounded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { OsdTestCluster } from '@aspen/test';
import { MiB, peakRssBytes, startGateway } from './gateway.ts';

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

const LARGE_MIB = Number(process.env.ASPEN_S3_LARGE_MIB ?? 1024);
const RSS_MAX_BYTES = 300 * 1000 * 1000;

/** `totalBytes` of random data as a stream of 1 MiB chunks, hashed as it goes (never held whole). */
function randomStream(totalBytes: number): { stream: Readable; digest: () => string } {
  const h = createHash('sha256');
  let left = totalBytes;
  const stream = Readable.from((function* () {
    while (left > 0) {
      const chunk = randomBytes(Math.min(MiB, left));
      left -= chunk.length;
      h.update(chunk);
      yield chunk;
    }
  })());
  return { stream, digest: () => h.digest('hex') };
}

async function digestOf(body: AsyncIterable<Uint8Array>): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of body) {
    h.update(c);
    bytes += c.length;
  }
  return { sha: h.digest('hex'), bytes };
}

describe('aspen-s3gw large objects (3 mons + 3 OSDs)', () => {
  it(`streams a ${LARGE_MIB} MiB multipart upload and a 128 MiB PutObject through with bounded gateway RSS, byte-exact`, async () => {
    const gw = await startGateway();
    cluster = gw.cluster;
    const s3 = gw.client(await gw.user('alice'));
    await s3.send(new CreateBucketCommand({ Bucket: 'big' }));
    const rssStart = peakRssBytes(gw.pid);

    const t0 = Date.now();
    const large = randomStream(LARGE_MIB * MiB);
    await new Upload({ client: s3, params: { Bucket: 'big', Key: 'large.bin', Body: large.stream }, partSize: 16 * MiB, queueSize: 4 }).done();
    const upMs = Date.now() - t0;
    const t1 = Date.now();
    const got = await s3.send(new GetObjectCommand({ Bucket: 'big', Key: 'large.bin' }));
    expect(got.ContentLength).toBe(LARGE_MIB * MiB);
    const down = await digestOf(got.Body as AsyncIterable<Uint8Array>);
    const downMs = Date.now() - t1;
    expect(down).toEqual({ sha: large.digest(), bytes: LARGE_MIB * MiB });

    const single = randomStream(128 * MiB);
    const put = await s3.send(new PutObjectCommand({ Bucket: 'big', Key: 'single.bin', Body: single.stream, ContentLength: 128 * MiB }));
    expect(put.ChecksumCRC32).toBeDefined();
    const back = await s3.send(new GetObjectCommand({ Bucket: 'big', Key: 'single.bin' }));
    expect(await digestOf(back.Body as AsyncIterable<Uint8Array>)).toEqual({ sha: single.digest(), bytes: 128 * MiB });

    const rss = peakRssBytes(gw.pid);
    console.log(`large: ${LARGE_MIB} MiB up ${upMs} ms (${(LARGE_MIB / (upMs / 1000)).toFixed(1)} MiB/s), down ${downMs} ms (${(LARGE_MIB / (downMs / 1000)).toFixed(1)} MiB/s); gateway VmHWM ${(rssStart / 1e6).toFixed(0)} MB at start, ${(rss / 1e6).toFixed(0)} MB after`);
    expect(rss).toBeLessThan(RSS_MAX_BYTES);
  });
});
