/**
 * Process-level robustness of aspen-s3gw: uploads while an OSD is `kill -9`ed (every
 * acknowledged PUT reads back byte-exact), and a listing of 5,000 keys paged with and
 * without delimiters.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { GetObjectCommand, ListObjectsCommand, ListObjectsV2Command, PutObjectCommand, CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import type { OsdTestCluster } from '@aspen/test';
import { MiB, sha, startGateway } from './gateway.ts';

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `n` workers over `items` (a bounded pool). */
async function pool<T>(items: T[], n: number, work: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

async function listAllV2(s3: S3Client, bucket: string, o: { prefix?: string; delimiter?: string; maxKeys: number }): Promise<{ keys: string[]; prefixes: string[]; pages: number }> {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: o.prefix, Delimiter: o.delimiter, MaxKeys: o.maxKeys, ContinuationToken: token }));
    pages++;
    expect((r.Contents?.length ?? 0) + (r.CommonPrefixes?.length ?? 0)).toBeLessThanOrEqual(o.maxKeys);
    keys.push(...(r.Contents ?? []).map((c) => c.Key!));
    prefixes.push(...(r.CommonPrefixes ?? []).map((c) => c.Prefix!));
    token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
  } while (token !== undefined);
  return { keys, prefixes, pages };
}

describe('aspen-s3gw under faults and at scale (3 mons + 3 OSDs)', () => {
  it('every acknowledged PUT reads back byte-exact across kill -9 of an OSD during uploads', async () => {
    const gw = await startGateway({ osdArgs: ['--osd-heartbeat-grace', '4'] });
    cluster = gw.cluster;
    const s3 = gw.client(await gw.user('alice'));
    await s3.send(new CreateBucketCommand({ Bucket: 'kill' }));
    const acked = new Map<string, string>();
    let failed = 0;
    let killedAtMs = 0;
    let ackedAfterKill = 0;
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        // Sizes from 1 KiB to 6 MiB: some span two 4 MiB stripes.
        const body = randomBytes(n % 3 === 0 ? 6 * MiB - 12345 : 1024 + ((w * 7919 + n * 104729) % (512 * 1024)));
        const key = `w${w}/${n}`;
        try {
          await s3.send(new PutObjectCommand({ Bucket: 'kill', Key: key, Body: body }));
          acked.set(key, sha(body));
          if (killedAtMs > 0) ackedAfterKill++;
        } catch {
          failed++;
        }
      }
    };
    const writers = Promise.all(Array.from({ length: 6 }, (_, w) => writer(w)));
    await sleep(4000);
    const before = acked.size;
    await gw.cluster.h.kill('osd.2', 'SIGKILL');
    killedAtMs = Date.now();
    await sleep(12_000);
    stop = true;
    await writers;
    console.log(`kill test: ${before} PUTs acknowledged before the kill, ${ackedAfterKill} after, ${failed} failed`);
    expect(before).toBeGreaterThan(0);
    expect(ackedAfterKill).toBeGreaterThan(0); // the cluster (2 of 3 OSDs) and the gateway carry on
    let checked = 0;
    await pool([...acked], 4, async ([key, digest]) => {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'kill', Key: key }));
      expect(sha(await got.Body!.transformToByteArray()), key).toBe(digest);
      checked++;
    });
    expect(checked).toBe(acked.size);
  });

  it('lists 5,000 keys paged, with and without delimiters (v1 and v2)', async () => {
    const gw = await startGateway();
    cluster = gw.cluster;
    const s3 = gw.client(await gw.user('alice'));
    await s3.send(new CreateBucketCommand({ Bucket: 'many' }));
    // d0/..d9/ each with s0/..s4/ subdirectories and a few top-level keys.
    const keys = Array.from({ length: 5000 }, (_, i) => (i % 50 === 49 ? `top-${String(i).padStart(4, '0')}` : `d${i % 10}/s${Math.floor(i / 10) % 5}/k${String(i).padStart(4, '0')}`));
    const t0 = Date.now();
    await pool(keys, 24, async (k) => {
      await s3.send(new PutObjectCommand({ Bucket: 'many', Key: k, Body: k }));
    });
    console.log(`5000 PUTs at concurrency 24: ${Date.now() - t0} ms`);
    const sorted = [...keys].sort();
    const flat = await listAllV2(s3, 'many', { maxKeys: 1000 });
    expect([flat.keys, flat.pages]).toEqual([sorted, 5]);
    const odd = await listAllV2(s3, 'many', { maxKeys: 777 });
    expect(odd.keys).toEqual(sorted);
    const top = await listAllV2(s3, 'many', { delimiter: '/', maxKeys: 7 });
    expect(top.prefixes).toEqual(Array.from({ length: 10 }, (_, i) => `d${i}/`));
    expect(top.keys).toEqual(sorted.filter((k) => k.startsWith('top-')));
    const sub = await listAllV2(s3, 'many', { prefix: 'd3/', delimiter: '/', maxKeys: 2 });
    expect([sub.prefixes, sub.keys]).toEqual([['d3/s0/', 'd3/s1/', 'd3/s2/', 'd3/s3/', 'd3/s4/'], []]);
    const leaf = await listAllV2(s3, 'many', { prefix: 'd3/s3/', maxKeys: 1000 });
    expect(leaf.keys).toEqual(sorted.filter((k) => k.startsWith('d3/s3/')));
    // v1 with markers, delimiter rolled up.
    const v1: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const r = await s3.send(new ListObjectsCommand({ Bucket: 'many', Delimiter: '/', Marker: marker, MaxKeys: 20 }));
      v1.push(...(r.CommonPrefixes ?? []).map((p) => p.Prefix!), ...(r.Contents ?? []).map((c) => c.Key!));
      if (r.IsTruncated !== true) break;
      marker = r.NextMarker;
    }
    expect(v1.sort()).toEqual([...top.prefixes, ...top.keys].sort());
  });
});
