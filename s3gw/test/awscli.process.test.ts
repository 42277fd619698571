/**
 * Process-level test of aspen-s3gw with the aws CLI (v1, botocore; issue 7, "It must show"):
 * `aws s3 sync` of a nested tree up and down (byte-exact; a second sync transfers nothing;
 * --delete), and `aws s3api` calls one by one (metadata, ranges, listing with a delimiter,
 * versioning, a multipart upload by hand, DeleteObjects). The presigned PUT and the raw-socket
 * header tests are in http-edge.process.test.ts.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, md5, sha, startGateway, type Credentials, type Gateway } from './gateway.ts';

let gw: Gateway | null = null;
let creds: Credentials;
beforeAll(async () => {
  gw = await startGateway();
  creds = await gw.user('cli');
}, 120_000);
afterAll(async () => {
  await gw?.cluster.teardown();
  gw = null;
});

interface CliResult { code: number; stdout: string; stderr: string }

function cli(dir: string): (...args: string[]) => Promise<CliResult> {
  const g = gw!;
  const env = {
    ...process.env, AWS_ACCESS_KEY_ID: creds.accessKeyId, AWS_SECRET_ACCESS_KEY: creds.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_DEFAULT_OUTPUT: 'json',
  };
  return (...args) => new Promise((resolve) => {
    execFile('aws', ['--endpoint-url', g.endpoint, ...args], { env, cwd: dir, maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : 1, stdout, stderr }));
  });
}

/** Runs an aws command that must succeed; its JSON output (null when it printed none: `aws s3 …`). */
async function ok(r: Promise<CliResult>): Promise<Record<string, unknown> | null> {
  const x = await r;
  expect(x.code, x.stderr).toBe(0);
  return x.stdout.trimStart().startsWith('{') ? (JSON.parse(x.stdout) as Record<string, unknown>) : null;
}

/** Every file under `root`, as paths relative to it, sorted. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(root, join(d, e.name)));
    }
  };
  walk(root);
  return out.sort();
}

describe('aspen-s3gw with the aws CLI (v1) (3 mons + 3 OSDs)', () => {
  it('aws s3 sync: a nested tree up and down byte-exact, and a second sync transfers nothing', async () => {
    const dir = gw!.cluster.h.path('sync');
    const src = join(dir, 'src');
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 50; i++) {
      // 5 top-level dirs, 2 levels below; sizes from 0 to ~300 KiB; names with spaces and '+'.
      const rel = join(`d${i % 5}`, `e${i % 3}`, i % 2 === 0 ? `f${i % 4}` : '', i % 7 === 0 ? `file ${i}+x.bin` : `file-${i}.dat`);
      const body = randomBytes(i === 0 ? 0 : (i * 6151) % (300 * 1024));
      mkdirSync(join(src, rel, '..'), { recursive: true });
      writeFileSync(join(src, rel), body);
      files.set(rel, body);
    }
    writeFileSync(join(src, 'top.txt'), 'top\n');
    files.set('top.txt', Buffer.from('top\n'));
    const aws = cli(dir);
    await ok(aws('s3', 'mb', 's3://sync'));
    const up = await aws('s3', 'sync', '--no-progress', src, 's3://sync/tree');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout.match(/^upload: /gm)?.length).toBe(files.size);
    const dst = join(dir, 'dst');
    const down = await aws('s3', 'sync', '--no-progress', 's3://sync/tree', dst);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout.match(/^download: /gm)?.length).toBe(files.size);
    expect(tree(dst)).toEqual([...files.keys()].sort());
    for (const [rel, body] of files) expect(sha(readFileSync(join(dst, rel))), rel).toBe(sha(body));
    // Sizes and modification times agree on both sides now: nothing to transfer either way.
    const up2 = await aws('s3', 'sync', '--no-progress', src, 's3://sync/tree');
    expect([up2.code, up2.stdout.trim()], up2.stderr).toEqual([0, '']);
    const down2 = await aws('s3', 'sync', '--no-progress', 's3://sync/tree', dst);
    expect([down2.code, down2.stdout.trim()], down2.stderr).toEqual([0, '']);
    // A changed file (other size) goes up alone.
    writeFileSync(join(src, 'top.txt'), 'top, changed\n');
    const up3 = await aws('s3', 'sync', '--no-progress', src, 's3://sync/tree');
    expect(up3.stdout.trim().split('\n'), up3.stderr).toEqual([expect.stringMatching(/^upload: .*top\.txt to s3:\/\/sync\/tree\/top\.txt$/)]);
    // --delete removes what is gone locally, and only that.
    const gone = [...files.keys()].find((k) => k.startsWith('d1/'))!;
    rmSync(join(src, gone));
    const del = await aws('s3', 'sync', '--no-progress', '--delete', src, 's3://sync/tree');
    expect(del.stdout.trim().split('\n'), del.stderr).toEqual([`delete: s3://sync/tree/${gone}`]);
    const rm = await aws('s3', 'rm', '--recursive', 's3://sync/tree');
    expect(rm.stdout.match(/delete: s3:\/\//g)?.length, rm.stderr).toBe(files.size - 1);
    await ok(aws('s3', 'rb', 's3://sync'));
  }, 120_000);

  it('aws s3api: metadata, head, listing with a delimiter, ranges, versioning, multipart by hand, delete-objects', async () => {
    const dir = gw!.cluster.h.path('s3api');
    mkdirSync(dir, { recursive: true });
    const aws = cli(dir);
    await ok(aws('s3api', 'create-bucket', '--bucket', 'api'));
    const body = randomBytes(100_000);
    writeFileSync(join(dir, 'body.bin'), body);
    const put = await ok(aws('s3api', 'put-object', '--bucket', 'api', '--key', 'docs/a.bin', '--body', 'body.bin', '--metadata', 'color=blue,size=L', '--content-type', 'application/x-test', '--cache-control', 'max-age=60'));
    expect(put!['ETag']).toBe(`"${md5(body)}"`);
    const head = await ok(aws('s3api', 'head-object', '--bucket', 'api', '--key', 'docs/a.bin'));
    expect(head).toMatchObject({ ContentLength: body.length, ContentType: 'application/x-test', CacheControl: 'max-age=60', ETag: `"${md5(body)}"`, Metadata: { color: 'blue', size: 'L' } });
    const missing = await aws('s3api', 'head-object', '--bucket', 'api', '--key', 'nope');
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/404/)]);

    // (Independent CLI calls run side by side: each is a Python process that takes ~1 s to start.)
    await Promise.all(['docs/b.txt', 'docs/sub/c.txt', 'docs/sub/d.txt', 'docs/other/e.txt', 'img/x.png', 'root.txt'].map((k) => ok(aws('s3api', 'put-object', '--bucket', 'api', '--key', k, '--body', 'body.bin'))));
    const [l, top, paged, range] = await Promise.all([
      ok(aws('s3api', 'list-objects-v2', '--bucket', 'api', '--prefix', 'docs/', '--delimiter', '/')),
      ok(aws('s3api', 'list-objects-v2', '--bucket', 'api', '--delimiter', '/')),
      // The CLI pages by itself when asked for small pages: every key, once.
      ok(aws('s3api', 'list-objects-v2', '--bucket', 'api', '--page-size', '2')),
      ok(aws('s3api', 'get-object', '--bucket', 'api', '--key', 'docs/a.bin', '--range', 'bytes=1000-1999', 'range.out')),
      ok(aws('s3api', 'get-object', '--bucket', 'api', '--key', 'docs/a.bin', '--range', 'bytes=-10', 'suffix.out')),
    ]);
    expect((l!['Contents'] as { Key: string }[]).map((c) => c.Key)).toEqual(['docs/a.bin', 'docs/b.txt']);
    expect((l!['CommonPrefixes'] as { Prefix: string }[]).map((c) => c.Prefix)).toEqual(['docs/other/', 'docs/sub/']);
    expect([(top!['Contents'] as { Key: string }[]).map((c) => c.Key), (top!['CommonPrefixes'] as { Prefix: string }[]).map((c) => c.Prefix)]).toEqual([['root.txt'], ['docs/', 'img/']]);
    expect((paged!['Contents'] as { Key: string }[]).map((c) => c.Key)).toEqual(['docs/a.bin', 'docs/b.txt', 'docs/other/e.txt', 'docs/sub/c.txt', 'docs/sub/d.txt', 'img/x.png', 'root.txt']);
    expect(range).toMatchObject({ ContentLength: 1000, ContentRange: `bytes 1000-1999/${body.length}` });
    expect(readFileSync(join(dir, 'range.out')).equals(body.subarray(1000, 2000))).toBe(true);
    expect(readFileSync(join(dir, 'suffix.out')).equals(body.subarray(body.length - 10))).toBe(true);

    // Versioning: two PUTs of one key keep both; a DELETE adds a marker.
    writeFileSync(join(dir, 'v1.txt'), 'version one');
    writeFileSync(join(dir, 'v2.txt'), 'version two!');
    await ok(aws('s3api', 'put-bucket-versioning', '--bucket', 'api', '--versioning-configuration', 'Status=Enabled'));
    expect(await ok(aws('s3api', 'get-bucket-versioning', '--bucket', 'api'))).toMatchObject({ Status: 'Enabled' });
    const v1 = (await ok(aws('s3api', 'put-object', '--bucket', 'api', '--key', 'ver.txt', '--body', 'v1.txt')))!['VersionId'] as string;
    const v2 = (await ok(aws('s3api', 'put-object', '--bucket', 'api', '--key', 'ver.txt', '--body', 'v2.txt')))!['VersionId'] as string;
    expect(v1).not.toBe(v2);
    const vs = await ok(aws('s3api', 'list-object-versions', '--bucket', 'api', '--prefix', 'ver.txt'));
    expect((vs!['Versions'] as { VersionId: string; IsLatest: boolean; Size: number }[]).map((v) => [v.VersionId, v.IsLatest, v.Size])).toEqual([[v2, true, 12], [v1, false, 11]]);
    await ok(aws('s3api', 'get-object', '--bucket', 'api', '--key', 'ver.txt', '--version-id', v1, 'old.out'));
    expect(readFileSync(join(dir, 'old.out'), 'utf8')).toBe('version one');
    const marker = await ok(aws('s3api', 'delete-object', '--bucket', 'api', '--key', 'ver.txt'));
    expect(marker).toMatchObject({ DeleteMarker: true });
    const vs2 = await ok(aws('s3api', 'list-object-versions', '--bucket', 'api', '--prefix', 'ver.txt'));
    expect([(vs2!['Versions'] as unknown[]).length, (vs2!['DeleteMarkers'] as { IsLatest: boolean }[]).map((d) => d.IsLatest)]).toEqual([2, [true]]);

    // Multipart by hand: two parts (5 MiB + a short last one), ETag = MD5 of the part MD5s + "-2".
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(12_345);
    writeFileSync(join(dir, 'p1.bin'), p1);
    writeFileSync(join(dir, 'p2.bin'), p2);
    const uploadId = (await ok(aws('s3api', 'create-multipart-upload', '--bucket', 'api', '--key', 'mp.bin', '--content-type', 'application/x-mp')))!['UploadId'] as string;
    const [e1, e2] = (await Promise.all([1, 2].map((n) => ok(aws('s3api', 'upload-part', '--bucket', 'api', '--key', 'mp.bin', '--upload-id', uploadId, '--part-number', String(n), '--body', `p${n}.bin`))))).map((r) => r!['ETag'] as string);
    expect([e1, e2]).toEqual([`"${md5(p1)}"`, `"${md5(p2)}"`]);
    const parts = await ok(aws('s3api', 'list-parts', '--bucket', 'api', '--key', 'mp.bin', '--upload-id', uploadId));
    expect((parts!['Parts'] as { PartNumber: number; Size: number }[]).map((p) => [p.PartNumber, p.Size])).toEqual([[1, p1.length], [2, p2.length]]);
    writeFileSync(join(dir, 'parts.json'), JSON.stringify({ Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] }));
    const done = await ok(aws('s3api', 'complete-multipart-upload', '--bucket', 'api', '--key', 'mp.bin', '--upload-id', uploadId, '--multipart-upload', 'file://parts.json'));
    const partMd5s = Buffer.concat([p1, p2].map((p) => Buffer.from(md5(p), 'hex')));
    expect(done!['ETag']).toBe(`"${md5(partMd5s)}-2"`);
    expect(await ok(aws('s3api', 'head-object', '--bucket', 'api', '--key', 'mp.bin'))).toMatchObject({ ContentLength: p1.length + p2.length, ContentType: 'application/x-mp' });
    await ok(aws('s3api', 'get-object', '--bucket', 'api', '--key', 'mp.bin', 'mp.out'));
    expect(sha(readFileSync(join(dir, 'mp.out')))).toBe(sha(Buffer.concat([p1, p2])));
    expect(await ok(aws('s3api', 'list-multipart-uploads', '--bucket', 'api'))).not.toHaveProperty('Uploads');

    // DeleteObjects: existing and missing keys are both reported deleted (S3 semantics).
    writeFileSync(join(dir, 'delete.json'), JSON.stringify({ Objects: [{ Key: 'img/x.png' }, { Key: 'root.txt' }, { Key: 'never-was' }], Quiet: false }));
    const dd = await ok(aws('s3api', 'delete-objects', '--bucket', 'api', '--delete', 'file://delete.json'));
    expect((dd!['Deleted'] as { Key: string }[]).map((d) => d.Key).sort()).toEqual(['img/x.png', 'never-was', 'root.txt']);
    expect(dd).not.toHaveProperty('Errors');
    const after = await ok(aws('s3api', 'list-objects-v2', '--bucket', 'api', '--delimiter', '/'));
    expect((after!['Contents'] as { Key: string }[]).map((c) => c.Key)).toEqual(['mp.bin']); // ver.txt's head is a delete marker
    expect((after!['CommonPrefixes'] as { Prefix: string }[]).map((c) => c.Prefix)).toEqual(['docs/']);
  }, 180_000);
});
