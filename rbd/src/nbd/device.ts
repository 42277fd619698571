/**
 * What the NBD server serves: an abstract block device per export, found by name through an
 * {@link ExportResolver}. The RBD image library provides the real device; tests use an
 * in-memory sparse one. The server validates every request (bounds, alignment, read-only,
 * flags) before calling a device, so a device only ever sees in-range, aligned calls.
 */
import { AspenError, type ErrorCode } from '@aspen/shared/errors.ts';
import { AssertionFailure } from '@aspen/shared/assert.ts';
import {
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  type NbdErrno,
} from './protocol.ts';

/**
 * Block size constraints of an export (proto.md "Size constraints", NBD_INFO_BLOCK_SIZE).
 * `minimumBytes` is a power of 2 ≤ 65536; `preferredBytes` a power of 2 ≥ max(minimum, 512);
 * `maximumPayloadBytes` ≥ preferred (the largest READ/WRITE the server accepts).
 */
export interface BlockSizeConstraints {
  readonly minimumBytes: number;
  readonly preferredBytes: number;
  readonly maximumPayloadBytes: number;
}

/** The spec's default constraints: 1 / 4096 / 32 MiB. */
export const DEFAULT_BLOCK_SIZE: BlockSizeConstraints = { minimumBytes: 1, preferredBytes: 4096, maximumPayloadBytes: 1 << 25 };

/**
 * One extent of `base:allocation` status: `lengthBytes` > 0, and whether it is a hole
 * (unallocated) and/or reads as zeroes (NBD_STATE_HOLE / NBD_STATE_ZERO).
 */
export interface Extent {
  readonly lengthBytes: number;
  readonly hole: boolean;
  readonly zero: boolean;
}

/** A piece of a sparse read: bytes, or a range known to read as zeroes. Offsets are absolute. */
export type ReadPiece =
  | { readonly kind: 'data'; readonly offsetBytes: number; readonly data: Uint8Array }
  | { readonly kind: 'zero'; readonly offsetBytes: number; readonly lengthBytes: number };

/**
 * A block device behind one export. Offsets and lengths are bytes as safe integers; the
 * server guarantees `0 ≤ offset`, `offset + length ≤ sizeBytes`, alignment to
 * `blockSize.minimumBytes`, `length ≤ blockSize.maximumPayloadBytes` for read/write, and no
 * write-type call on a read-only device.
 *
 * Durability: a write/trim/writeZeroes promise resolves once the change is visible to reads on
 * every connection of this device; with `fua` it resolves only once it is also durable.
 * `flush()` resolves once every write that resolved before `flush()` was called is durable.
 * When `canMultiConn` is true these hold across all connections (and all devices opened for
 * the same export), as NBD_FLAG_CAN_MULTI_CONN requires.
 *
 * Errors: reject with an `AspenError`; its code becomes an NBD error value through
 * {@link NBD_ERRNO_BY_CODE}. Any other rejection is reported as NBD_EIO and logged.
 */
export interface BlockDevice {
  /** Current size, bytes; read at every request, so a resize is seen by the next request. */
  readonly sizeBytes: number;
  /** Writes are refused with NBD_EPERM, and NBD_FLAG_READ_ONLY is advertised. */
  readonly readOnly: boolean;
  /** See the durability contract above: sets NBD_FLAG_CAN_MULTI_CONN. */
  readonly canMultiConn: boolean;
  readonly blockSize: BlockSizeConstraints;
  /** Returns exactly `lengthBytes` bytes read at `offsetBytes`. */
  read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array>;
  /**
   * Optional sparse read: pieces that exactly tile [offset, offset + length) in order. When
   * present, structured READ replies send zero pieces as NBD_REPLY_TYPE_OFFSET_HOLE.
   */
  readSparse?(offsetBytes: number, lengthBytes: number): Promise<readonly ReadPiece[]>;
  write(offsetBytes: number, data: Uint8Array, opts: { readonly fua: boolean }): Promise<void>;
  flush(): Promise<void>;
  /** Discards a range (it may read back as anything until overwritten; proto.md NBD_CMD_TRIM). */
  trim(offsetBytes: number, lengthBytes: number, opts: { readonly fua: boolean }): Promise<void>;
  /** The range reads back as zeroes; with `noHole` it must stay allocated (NBD_CMD_FLAG_NO_HOLE). */
  writeZeroes(offsetBytes: number, lengthBytes: number, opts: { readonly noHole: boolean; readonly fua: boolean }): Promise<void>;
  /**
   * `base:allocation` status from `offsetBytes`: one or more consecutive extents starting there
   * (they may cover less than `lengthBytes`, or more; the server clips and merges them).
   */
  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]>;
}

/** An export opened for one connection; `release()` is called exactly once when it is done. */
export interface OpenedExport {
  /** The canonical export name (sent as NBD_INFO_NAME). */
  readonly name: string;
  readonly description: string;
  readonly device: BlockDevice;
  release(): Promise<void>;
}

/** An entry of NBD_OPT_LIST. */
export interface ExportListing {
  readonly name: string;
  readonly description: string;
}

/**
 * Names → devices. `open` returns undefined when the export does not exist (the client gets
 * NBD_REP_ERR_UNKNOWN, or a hard disconnect after NBD_OPT_EXPORT_NAME); an `AspenError` from
 * either method is reported to the client as an option error (`optionErrorFor` in handshake.ts).
 */
export interface ExportResolver {
  list(): Promise<readonly ExportListing[]>;
  open(name: string): Promise<OpenedExport | undefined>;
}

/**
 * Every Aspen error code → NBD error value (CONVENTIONS.md item 7; proto.md "Error values").
 * The spec allows only EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN, so
 * transient cluster failures (no quorum, incomplete PG, timeouts) surface as EIO: the kernel
 * and qemu retry or fail the bio, which is what a local disk would do.
 */
export const NBD_ERRNO_BY_CODE: { readonly [K in ErrorCode]: NbdErrno } = {
  EINVAL: NBD_EINVAL,
  ENOENT: NBD_EIO,
  EEXIST: NBD_EIO,
  ECANCELED: NBD_EIO,
  ENOTEMPTY: NBD_EIO,
  EBUSY: NBD_EIO,
  EPERM: NBD_EPERM,
  ENOSPC: NBD_ENOSPC,
  EIO: NBD_EIO,
  EAGAIN: NBD_EIO,
  ETIMEDOUT: NBD_EIO,
  ECONNREFUSED: NBD_EIO,
  ENOTCONN: NBD_EIO,
  ESTALE: NBD_EIO,
  EAGAIN_NO_QUORUM: NBD_EIO,
  ENOT_LEADER: NBD_EIO,
  E_PROPOSAL_DROPPED: NBD_EIO,
  E_CONFIG_CHANGE_PENDING: NBD_EIO,
  E_WRONG_CLUSTER: NBD_EIO,
  E_CORRUPT: NBD_EIO,
  E_DECODE: NBD_EINVAL,
  E_PG_INCOMPLETE: NBD_EIO,
  E_UNSUPPORTED: NBD_ENOTSUP,
  ENOTDIR: NBD_EINVAL,
  EISDIR: NBD_EINVAL,
  ENAMETOOLONG: NBD_EINVAL,
  ENODATA: NBD_EIO,
  EMLINK: NBD_EIO,
  E2BIG: NBD_EINVAL,
  ERANGE: NBD_EINVAL,
};

/** Why an NBD error value is returned, for logs and NBD_REPLY_TYPE_ERROR messages. */
export interface NbdFailure {
  readonly errno: NbdErrno;
  readonly message: string;
  /** True when the failure was not an AspenError (a device bug): worth an error-level log. */
  readonly unexpected: boolean;
}

/**
 * Maps anything a device rejected with to an NBD error value. AssertionFailures are rethrown:
 * they are bugs, and CONVENTIONS.md item 6 wants them loud.
 * @throws AssertionFailure as is.
 */
export function nbdFailureFrom(err: unknown): NbdFailure {
  if (err instanceof AssertionFailure) throw err;
  if (err instanceof AspenError) return { errno: NBD_ERRNO_BY_CODE[err.code], message: err.message, unexpected: false };
  return { errno: NBD_EIO, message: err instanceof Error ? err.message : String(err), unexpected: true };
}

/** The error value replied to requests that arrive while the server shuts down. */
export const SHUTDOWN_ERRNO: NbdErrno = NBD_ESHUTDOWN;
