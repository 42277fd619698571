/**
 * The one error catalog (CONVENTIONS.md item 7). Every expected failure in Aspen is an
 * `AspenError` with a stable `code` from {@link ERROR_CATALOG}; each edge (gRPC, S3, FUSE
 * errno, NBD) maps codes exhaustively, and a test checks every code is mapped and documented.
 */

/** Documentation of each error code: what it means and whether retrying may help. */
export const ERROR_CATALOG = {
  EINVAL: { retryable: false, doc: 'An argument is malformed or out of range.' },
  ENOENT: { retryable: false, doc: 'The named entity (pool, OSD, object, mon, key) does not exist.' },
  EEXIST: { retryable: false, doc: 'The entity already exists.' },
  ECANCELED: { retryable: false, doc: 'A guard of a compound object operation (cmpxattr, omap-cmp, assert-version) did not hold; nothing was applied.' },
  ENOTEMPTY: { retryable: false, doc: 'The collection (or directory) still holds entries and cannot be removed.' },
  EBUSY: { retryable: true, doc: 'The entity is in use (e.g. a pool that still holds data).' },
  EPERM: { retryable: false, doc: 'The operation is not permitted (e.g. a guard rail such as mon_allow_pool_delete).' },
  ENOSPC: { retryable: false, doc: 'No space is left on the device or the OSD is full.' },
  EIO: { retryable: false, doc: 'An I/O error, including a checksum mismatch on read.' },
  EAGAIN: { retryable: true, doc: 'The object changed while the request was being planned (or is being recovered): retry it.' },
  ETIMEDOUT: { retryable: true, doc: 'The operation did not complete within its timeout.' },
  ECONNREFUSED: { retryable: true, doc: 'A peer refused or dropped the connection.' },
  ENOTCONN: { retryable: false, doc: 'A watch on an object was lost (expired, or its object or PG went away): notifications may have been missed; watch again (Ceph returns ENOTCONN to the watch error callback).' },
  ESTALE: { retryable: true, doc: 'The request was made against an old map epoch; refresh and resend.' },
  EAGAIN_NO_QUORUM: { retryable: true, doc: 'No monitor quorum is reachable: nothing can be committed.' },
  ENOT_LEADER: { retryable: true, doc: 'This monitor is not the Raft leader; the error carries a hint of who is.' },
  E_PROPOSAL_DROPPED: { retryable: true, doc: 'A Raft proposal was dropped (leadership changed or a transfer is in progress); it was not committed.' },
  E_CONFIG_CHANGE_PENDING: { retryable: true, doc: 'A membership change is already in progress; only one may be pending at a time.' },
  E_WRONG_CLUSTER: { retryable: false, doc: 'The data directory or peer belongs to another cluster (fsid mismatch).' },
  E_CORRUPT: { retryable: false, doc: 'A persisted record failed its checksum or could not be decoded.' },
  E_DECODE: { retryable: false, doc: 'Bytes on the wire or on disk could not be decoded (truncated, wrong version, bad field).' },
  E_PG_INCOMPLETE: { retryable: true, doc: 'The placement group lacks enough members (fewer than min_size) to serve the operation.' },
  E_UNSUPPORTED: { retryable: false, doc: 'The operation or encoding version is not supported by this build.' },
  ENOTDIR: { retryable: false, doc: 'A path component or the target of a directory operation is not a directory (POSIX).' },
  EISDIR: { retryable: false, doc: 'The target is a directory where a non-directory is needed (POSIX unlink, rename over a directory).' },
  ENAMETOOLONG: { retryable: false, doc: 'A file name exceeds 255 bytes or a symlink target exceeds 4095 bytes (POSIX NAME_MAX/PATH_MAX).' },
  ENODATA: { retryable: false, doc: 'The named extended attribute does not exist (POSIX getxattr/removexattr, XATTR_REPLACE).' },
  EMLINK: { retryable: false, doc: 'The file already has the maximum number of hard links (POSIX LINK_MAX).' },
  E2BIG: { retryable: false, doc: 'An extended attribute value exceeds the size limit (Linux setxattr XATTR_SIZE_MAX).' },
  ERANGE: { retryable: false, doc: 'An extended attribute name is empty or longer than 255 bytes (Linux setxattr).' },
} as const satisfies Record<string, { retryable: boolean; doc: string }>;

/** A stable error code; see {@link ERROR_CATALOG}. */
export type ErrorCode = keyof typeof ERROR_CATALOG;

/** Every known error code, in catalog order. */
export const ERROR_CODES = Object.keys(ERROR_CATALOG) as ErrorCode[];

/**
 * An expected failure with a stable `code`. `details` carries structured context
 * (e.g. `{ leaderHint: 'b' }` for ENOT_LEADER) that edges may forward.
 */
export class AspenError extends Error {
  override name = 'AspenError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(`${code}: ${message}`);
  }

  /** Whether retrying the same request later may succeed. */
  get retryable(): boolean {
    return ERROR_CATALOG[this.code].retryable;
  }
}

/** True when `code` names a catalogued error. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOG, code);
}
