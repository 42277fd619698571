/**
 * Who may do what (AWS S3 user guide, "Access control list (ACL) overview", canned ACLs):
 * a bucket's owner may do everything with it and its objects; a `public-read` bucket lets
 * anyone (authenticated or anonymous) list it; a `public-read` object lets anyone read it.
 * Everything else is AccessDenied. Only the canned ACLs `private` and `public-read` are kept
 * (plus `bucket-owner-*` on objects, which equal `private` here since only a bucket's owner
 * writes to it); grant headers and ACL XML bodies are NotImplemented.
 */
import { S3Error } from '../core/errors.ts';
import { S3_XMLNS, xmlEscape } from '../core/xml.ts';
import type { BucketRecord, CannedAcl, ObjectEntry } from '../store/layout.ts';
import { header, type HandlerContext, type Headers } from './types.ts';

const denied = (): S3Error => new S3Error('AccessDenied', 'Access Denied');

export const isOwner = (ctx: HandlerContext, b: BucketRecord): boolean => ctx.user !== null && ctx.user.uid === b.owner;

/**
 * The bucket `name` if the caller may use it for `access`: 'owner' (writes, configuration),
 * 'list' (owner, or anyone on a public-read bucket), 'lookup' (anyone: object reads decide by
 * the object's ACL).
 * @throws S3Error NoSuchBucket, AccessDenied
 */
export async function bucketFor(ctx: HandlerContext, name: string, access: 'owner' | 'list' | 'lookup'): Promise<BucketRecord> {
  const b = await ctx.store.getBucket(name);
  if (b === null) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
  if (access === 'lookup' || isOwner(ctx, b) || (access === 'list' && b.acl === 'public-read')) return b;
  throw denied();
}

/** The bucket of a request, owned by the caller. @throws S3Error NoSuchBucket, AccessDenied */
export const ownBucket = (ctx: HandlerContext, name: string): Promise<BucketRecord> => bucketFor(ctx, name, 'owner');

/** The caller's uid; only after ownBucket succeeded. */
export function uidOf(ctx: HandlerContext): string {
  if (ctx.user === null) throw denied();
  return ctx.user.uid;
}

/**
 * Checks that the caller may read `e` (null: no such key/version) in `b`. A caller who may
 * not list the bucket learns nothing about missing keys (AccessDenied, as S3 answers).
 * @throws S3Error AccessDenied
 */
export function checkRead(ctx: HandlerContext, b: BucketRecord, e: ObjectEntry | null): void {
  if (isOwner(ctx, b)) return;
  if (e === null || e.deleteMarker === true) {
    if (b.acl !== 'public-read') throw denied();
    return;
  }
  if (e.acl !== 'public-read') throw denied();
}

/**
 * The canned ACL of a request's x-amz-acl header (undefined when absent).
 * @throws S3Error NotImplemented for other canned ACLs and x-amz-grant-* headers
 */
export function cannedAclOf(h: Headers, forObject: boolean): CannedAcl | undefined {
  for (const n of h.keys()) if (n.startsWith('x-amz-grant-')) throw new S3Error('NotImplemented', `${n} is not implemented; use the canned ACLs private or public-read`);
  const v = header(h, 'x-amz-acl');
  if (v === undefined) return undefined;
  if (v === 'private' || v === 'public-read') return v;
  if (forObject && (v === 'bucket-owner-full-control' || v === 'bucket-owner-read')) return 'private';
  throw new S3Error('NotImplemented', `the canned ACL '${v}' is not implemented; use private or public-read`);
}

/** The ACL as an object or bucket field: private is the default and not stored. */
export const aclField = (acl: CannedAcl | undefined): { acl?: CannedAcl } => (acl === 'public-read' ? { acl } : {});

/** The AccessControlPolicy document of a canned ACL (GetBucketAcl / GetObjectAcl). */
export function aclXml(ownerId: string, ownerName: string, acl: CannedAcl | undefined): string {
  const xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"';
  const owner = `<ID>${xmlEscape(ownerId)}</ID><DisplayName>${xmlEscape(ownerName)}</DisplayName>`;
  let grants = `<Grant><Grantee ${xsi} xsi:type="CanonicalUser">${owner}</Grantee><Permission>FULL_CONTROL</Permission></Grant>`;
  if (acl === 'public-read') grants += `<Grant><Grantee ${xsi} xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="${S3_XMLNS}"><Owner>${owner}</Owner><AccessControlList>${grants}</AccessControlList></AccessControlPolicy>`;
}
