/**
 * Process-level test of versioning and canned ACLs: the newest @aws-sdk/client-s3 against
 * aspen-s3gw on 3 mons + 3 OSDs, and plain fetch for anonymous requests.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteBucketCommand, DeleteObjectCommand,
  DeleteObjectsCommand, GetBucketAclCommand, GetBucketVersioningCommand, GetObjectAclCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectVersionsCommand, ListObjectsV2Command, PutBucketAclCommand, PutBucketVersioningCommand, PutObjectAclCommand, PutObjectCommand,
  UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { waitFor, type OsdTestCluster } from '@aspen/test';
import { errOf, md5, startGateway } from './gateway.ts';

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

const text = async (p: Promise<{ Body?: { transformToString(): Promise<string> } }>): Promise<string> => (await p).Body!.transformToString();

/** Every version and delete marker of a bucket, paged `maxKeys` at a time, as "key:versionId:etag|DM:latest". */
async function allVersions(s3: S3Client, bucket: string, maxKeys: number): Promise<string[]> {
  const out: string[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const r = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: maxKeys, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
    const rows = [
      ...(r.Versions ?? []).map((v) => ({ k: v.Key!, id: v.VersionId!, t: `${v.Key}:${v.VersionId}:${v.ETag}${v.IsLatest === true ? ':latest' : ''}` })),
      ...(r.DeleteMarkers ?? []).map((v) => ({ k: v.Key!, id: v.VersionId!, t: `${v.Key}:${v.VersionId}:DM${v.IsLatest === true ? ':latest' : ''}` })),
    ];
    expect(rows.length).toBeLessThanOrEqual(maxKeys);
    out.push(...rows.map((x) => x.t));
    if (r.IsTruncated !== true) return out;
    keyMarker = r.NextKeyMarker;
    versionIdMarker = r.NextVersionIdMarker;
  }
}

describe('aspen-s3gw versioning and canned ACLs (3 mons + 3 OSDs)', () => {
  it('keeps versions, serves them by id, makes and removes delete markers, lists versions; enforces private/public-read', async () => {
    const gw = await startGateway();
    cluster = gw.cluster;
    const alice = gw.client(await gw.user('alice'));
    const bob = gw.client(await gw.user('bob'));
    const s3 = alice;

    // --- Versioning ---
    await s3.send(new CreateBucketCommand({ Bucket: 'ver' }));
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket: 'ver' }))).Status).toBeUndefined();
    const pre = await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'k', Body: 'null-version' }));
    expect(pre.VersionId).toBeUndefined();
    await s3.send(new PutBucketVersioningCommand({ Bucket: 'ver', VersioningConfiguration: { Status: 'Enabled' } }));
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket: 'ver' }))).Status).toBe('Enabled');
    const v1 = (await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'k', Body: 'one' }))).VersionId!;
    const v2 = (await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'k', Body: 'two' }))).VersionId!;
    expect(v1).toMatch(/^[0-9a-f]{24}$/);
    expect(v2).not.toBe(v1);
    const latest = await s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k' }));
    expect([await latest.Body!.transformToString(), latest.VersionId]).toEqual(['two', v2]);
    expect(await text(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: v1 })))).toBe('one');
    expect(await text(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: 'null' })))).toBe('null-version');
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: v1 }))).ContentLength).toBe(3);
    expect((await errOf(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: 'f'.repeat(24) })))).name).toBe('NoSuchVersion');
    expect((await errOf(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: 'bogus' })))).status).toBe(400);

    // DELETE without a version id makes a delete marker: GET is 404 with x-amz-delete-marker.
    const dm = await s3.send(new DeleteObjectCommand({ Bucket: 'ver', Key: 'k' }));
    expect(dm.DeleteMarker).toBe(true);
    const gone = await errOf(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k' })));
    expect([gone.name, gone.status, gone.headers['x-amz-delete-marker'], gone.headers['x-amz-version-id']]).toEqual(['NoSuchKey', 404, 'true', dm.VersionId]);
    const byMarker = await errOf(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: dm.VersionId! })));
    expect([byMarker.status, byMarker.headers['x-amz-delete-marker']]).toEqual([405, 'true']);
    expect(await text(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: v2 })))).toBe('two');
    expect((await s3.send(new ListObjectsV2Command({ Bucket: 'ver' }))).KeyCount).toBe(0);

    // More keys, then ListObjectVersions whole and paged one at a time.
    const a1 = (await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'a/x', Body: 'ax1' }))).VersionId!;
    const a2 = (await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'a/x', Body: 'ax2' }))).VersionId!;
    const z = (await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'z', Body: 'z' }))).VersionId!;
    const whole = await allVersions(s3, 'ver', 1000);
    const etag = (s: string): string => `"${md5(Buffer.from(s))}"`;
    expect(new Set(whole)).toEqual(new Set([
      `a/x:${a2}:${etag('ax2')}:latest`, `a/x:${a1}:${etag('ax1')}`,
      `k:${dm.VersionId}:DM:latest`, `k:${v2}:${etag('two')}`, `k:${v1}:${etag('one')}`, `k:null:${etag('null-version')}`,
      `z:${z}:${etag('z')}:latest`,
    ]));
    // One per page, the listing order shows: keys in order, each newest first.
    expect(await allVersions(s3, 'ver', 1)).toEqual([
      `a/x:${a2}:${etag('ax2')}:latest`, `a/x:${a1}:${etag('ax1')}`,
      `k:${dm.VersionId}:DM:latest`, `k:${v2}:${etag('two')}`, `k:${v1}:${etag('one')}`, `k:null:${etag('null-version')}`,
      `z:${z}:${etag('z')}:latest`,
    ]);
    expect(new Set(await allVersions(s3, 'ver', 3))).toEqual(new Set(whole));
    const delim = await s3.send(new ListObjectVersionsCommand({ Bucket: 'ver', Delimiter: '/' }));
    expect([delim.CommonPrefixes?.map((p) => p.Prefix), (delim.Versions ?? []).map((v) => v.Key)]).toEqual([['a/'], ['k', 'k', 'k', 'z']]);
    const pfx = await s3.send(new ListObjectVersionsCommand({ Bucket: 'ver', Prefix: 'a/' }));
    expect(pfx.Versions?.map((v) => [v.VersionId, v.IsLatest])).toEqual([[a2, true], [a1, false]]);

    // Removing the delete marker by id brings the previous version back.
    await s3.send(new DeleteObjectCommand({ Bucket: 'ver', Key: 'k', VersionId: dm.VersionId! }));
    expect(await text(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'k' })))).toBe('two');
    // DeleteObjects with versions: v1 and the null version go; k keeps v2.
    const dobj = await s3.send(new DeleteObjectsCommand({ Bucket: 'ver', Delete: { Objects: [{ Key: 'k', VersionId: v1 }, { Key: 'k', VersionId: 'null' }, { Key: 'z' }] } }));
    expect(dobj.Deleted?.map((d) => [d.Key, d.VersionId, d.DeleteMarker ?? false])).toEqual([['k', v1, false], ['k', 'null', false], ['z', undefined, true]]);
    expect((await s3.send(new ListObjectVersionsCommand({ Bucket: 'ver', Prefix: 'k' }))).Versions?.map((v) => v.VersionId)).toEqual([v2]);

    // Suspended: new writes are the null version; older versions stay.
    await s3.send(new PutBucketVersioningCommand({ Bucket: 'ver', VersioningConfiguration: { Status: 'Suspended' } }));
    expect((await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'k', Body: 's1' }))).VersionId).toBe('null');
    await s3.send(new PutObjectCommand({ Bucket: 'ver', Key: 'k', Body: 's2' }));
    expect((await s3.send(new ListObjectVersionsCommand({ Bucket: 'ver', Prefix: 'k' }))).Versions?.map((v) => [v.VersionId, v.IsLatest])).toEqual([['null', true], [v2, false]]);
    await s3.send(new PutBucketVersioningCommand({ Bucket: 'ver', VersioningConfiguration: { Status: 'Enabled' } }));

    // Multipart completion and CopyObject (from a version) make versions too.
    const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'ver', Key: 'mp' }));
    const part = await s3.send(new UploadPartCommand({ Bucket: 'ver', Key: 'mp', UploadId: mpu.UploadId!, PartNumber: 1, Body: 'part' }));
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'ver', Key: 'mp', UploadId: mpu.UploadId!, MultipartUpload: { Parts: [{ ETag: part.ETag!, PartNumber: 1 }] } }));
    expect(done.VersionId).toMatch(/^[0-9a-f]{24}$/);
    const cp = await s3.send(new CopyObjectCommand({ Bucket: 'ver', Key: 'copy', CopySource: `ver/a/x?versionId=${a1}` }));
    expect([cp.CopySourceVersionId, cp.VersionId === undefined]).toEqual([a1, false]);
    expect(await text(s3.send(new GetObjectCommand({ Bucket: 'ver', Key: 'copy' })))).toBe('ax1');

    // A versioned bucket is empty only when every version is gone.
    await s3.send(new DeleteObjectCommand({ Bucket: 'ver', Key: 'copy' }));
    expect((await errOf(s3.send(new DeleteBucketCommand({ Bucket: 'ver' })))).name).toBe('BucketNotEmpty');
    const rest = await s3.send(new ListObjectVersionsCommand({ Bucket: 'ver' }));
    const everything = [...(rest.Versions ?? []), ...(rest.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
    await s3.send(new DeleteObjectsCommand({ Bucket: 'ver', Delete: { Objects: everything } }));
    await s3.send(new DeleteBucketCommand({ Bucket: 'ver' }));

    // --- Canned ACLs ---
    const anon = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${gw.endpoint}${path}`, init);
    await s3.send(new CreateBucketCommand({ Bucket: 'pub', ACL: 'public-read' }));
    const bacl = await s3.send(new GetBucketAclCommand({ Bucket: 'pub' }));
    expect(bacl.Grants?.map((g) => [g.Grantee?.Type, g.Grantee?.URI ?? g.Grantee?.ID, g.Permission])).toEqual([
      ['CanonicalUser', 'alice', 'FULL_CONTROL'], ['Group', 'http://acs.amazonaws.com/groups/global/AllUsers', 'READ'],
    ]);
    await s3.send(new PutObjectCommand({ Bucket: 'pub', Key: 'open.txt', Body: 'for everyone', ACL: 'public-read' }));
    await s3.send(new PutObjectCommand({ Bucket: 'pub', Key: 'closed.txt', Body: 'secret' }));
    const got = await anon('/pub/open.txt');
    expect([got.status, await got.text()]).toEqual([200, 'for everyone']);
    expect((await anon('/pub/open.txt', { method: 'HEAD' })).status).toBe(200);
    expect((await anon('/pub/closed.txt')).status).toBe(403);
    expect((await anon('/pub/missing')).status).toBe(404); // the bucket is listable: absence is no secret
    const list = await anon('/pub?list-type=2');
    expect([list.status, (await list.text()).match(/<Key>[^<]+<\/Key>/g)]).toEqual([200, ['<Key>closed.txt</Key>', '<Key>open.txt</Key>']]);
    const put = await anon('/pub/evil', { method: 'PUT', body: 'x' });
    expect([put.status, await put.text()]).toEqual([403, expect.stringMatching(/<Code>AccessDenied<\/Code>/) as unknown]);
    expect((await anon('/pub/open.txt', { method: 'DELETE' })).status).toBe(403);
    expect((await anon('/pub?acl')).status).toBe(403);
    expect((await anon('/')).status).toBe(403);
    // Another user gets what anonymous gets, no more.
    expect(await text(bob.send(new GetObjectCommand({ Bucket: 'pub', Key: 'open.txt' })))).toBe('for everyone');
    expect((await errOf(bob.send(new GetObjectCommand({ Bucket: 'pub', Key: 'closed.txt' })))).name).toBe('AccessDenied');
    expect((await errOf(bob.send(new PutObjectCommand({ Bucket: 'pub', Key: 'bob', Body: 'x' })))).name).toBe('AccessDenied');
    expect((await errOf(bob.send(new GetBucketAclCommand({ Bucket: 'pub' })))).name).toBe('AccessDenied');

    // PutObjectAcl / PutBucketAcl switch access; GetObjectAcl shows it.
    await s3.send(new PutObjectAclCommand({ Bucket: 'pub', Key: 'open.txt', ACL: 'private' }));
    expect((await anon('/pub/open.txt')).status).toBe(403);
    expect((await s3.send(new GetObjectAclCommand({ Bucket: 'pub', Key: 'open.txt' }))).Grants?.length).toBe(1);
    await s3.send(new PutObjectAclCommand({ Bucket: 'pub', Key: 'closed.txt', ACL: 'public-read' }));
    expect((await s3.send(new GetObjectAclCommand({ Bucket: 'pub', Key: 'closed.txt' }))).Grants?.map((g) => g.Permission)).toEqual(['FULL_CONTROL', 'READ']);
    expect(await (await anon('/pub/closed.txt')).text()).toBe('secret');
    await s3.send(new PutBucketAclCommand({ Bucket: 'pub', ACL: 'private' }));
    expect((await anon('/pub?list-type=2')).status).toBe(403);
    expect((await anon('/pub/missing')).status).toBe(403); // not listable any more: no telling what exists
    expect((await anon('/pub/closed.txt')).status).toBe(200); // the object's own ACL still applies
    // CopyObject takes x-amz-acl.
    await s3.send(new CopyObjectCommand({ Bucket: 'pub', Key: 'copied.txt', CopySource: 'pub/open.txt', ACL: 'public-read' }));
    expect((await anon('/pub/copied.txt')).status).toBe(200);
    expect((await errOf(s3.send(new PutObjectCommand({ Bucket: 'pub', Key: 'x', Body: 'x', ACL: 'authenticated-read' })))).status).toBe(501);

    // Nothing left behind once everything is deleted.
    await s3.send(new DeleteObjectsCommand({ Bucket: 'pub', Delete: { Objects: [{ Key: 'open.txt' }, { Key: 'closed.txt' }, { Key: 'copied.txt' }] } }));
    await s3.send(new DeleteBucketCommand({ Bucket: 'pub' }));
    const data = gw.cluster.client.ioctx('.aspen.s3.data');
    await waitFor(async () => (await data.listObjects()).length === 0, { timeoutMs: 10_000, what: 'the data pool emptied' });
    expect(await gw.cluster.client.ioctx('.aspen.s3.meta').listObjects()).toEqual(['buckets']);
  });
});

