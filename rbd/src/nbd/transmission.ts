/**
 * The transmission phase without sockets: validating a request against the negotiated state
 * (proto.md "Request types", "Error values", "Size constraints"), running it on the device,
 * and building its reply — simple, or structured chunks when NBD_OPT_STRUCTURED_REPLY was
 * negotiated. The session reads the bytes and writes what this returns.
 */
import { assert } from '@aspen/shared/assert.ts';
import {
  encodeBlockStatus,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataPrefix,
  encodeOffsetHole,
  encodeSimpleReply,
  type BlockStatusDescriptor,
  type RequestHeader,
} from './codec.ts';
import { nbdFailureFrom, type BlockDevice, type Extent, type NbdFailure, type ReadPiece } from './device.ts';
import {
  BLOCK_STATUS_EXTENTS_MAX,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_DOS_FLOOR_BYTES,
  NBD_EINVAL,
  NBD_ENOSPC,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FUA,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  type NbdErrno,
} from './protocol.ts';

/** The negotiated state transmission runs against (fixed for a connection). */
export interface TransmissionContext {
  readonly device: BlockDevice;
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  readonly baseAllocationContextId: number | undefined;
}

/** A request refused before reaching the device. */
export interface Refusal {
  readonly errno: NbdErrno;
  readonly message: string;
}

/** The commands this server executes (DISC is handled by the session). */
const COMMANDS = new Set([NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS]);
const WRITE_COMMANDS = new Set([NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES]);

/**
 * Largest WRITE payload the session will read at all, bytes: above it the connection is
 * dropped as a denial of service (proto.md allows that above max(advertised maximum, 2^25)).
 * Between the advertised maximum and this, the payload is read and the request gets EINVAL.
 */
export function writePayloadHardMaxBytes(device: BlockDevice): number {
  return Math.max(device.blockSize.maximumPayloadBytes, NBD_DOS_FLOOR_BYTES);
}

/**
 * Validates a request header (proto.md "Error values"): unknown command or flag → EINVAL;
 * write, trim or write-zeroes on a read-only export → EPERM; a command not exposed by the
 * transmission flags (BLOCK_STATUS without `base:allocation`) → EINVAL; FLUSH with a nonzero
 * offset/length → EINVAL; beyond the export → ENOSPC for WRITE/WRITE_ZEROES, EINVAL otherwise;
 * misaligned to the minimum block size → EINVAL; READ/WRITE longer than the maximum payload →
 * EINVAL (EOVERFLOW for a structured READ). Returns undefined when the request may run.
 */
export function checkRequest(ctx: TransmissionContext, req: RequestHeader): Refusal | undefined {
  const { device } = ctx;
  if (!COMMANDS.has(req.type)) return { errno: NBD_EINVAL, message: `unknown command ${req.type}` };
  let allowedFlags = (ctx.transmissionFlags & NBD_FLAG_SEND_FUA) !== 0 ? NBD_CMD_FLAG_FUA : 0;
  if (req.type === NBD_CMD_WRITE_ZEROES) allowedFlags |= NBD_CMD_FLAG_NO_HOLE;
  if (req.type === NBD_CMD_READ && (ctx.transmissionFlags & NBD_FLAG_SEND_DF) !== 0) allowedFlags |= NBD_CMD_FLAG_DF;
  if (req.type === NBD_CMD_BLOCK_STATUS) allowedFlags |= NBD_CMD_FLAG_REQ_ONE;
  if ((req.flags & ~allowedFlags) !== 0) return { errno: NBD_EINVAL, message: `command flags 0x${req.flags.toString(16)} not valid here` };
  if (WRITE_COMMANDS.has(req.type) && device.readOnly) return { errno: NBD_EPERM, message: 'export is read-only' };
  if (req.type === NBD_CMD_FLUSH) {
    return req.offset === 0n && req.length === 0 ? undefined : { errno: NBD_EINVAL, message: 'FLUSH offset and length must be zero' };
  }
  if (req.type === NBD_CMD_BLOCK_STATUS && ctx.baseAllocationContextId === undefined) {
    return { errno: NBD_EINVAL, message: 'BLOCK_STATUS without a selected metadata context' };
  }
  if (req.offset + BigInt(req.length) > BigInt(device.sizeBytes)) {
    const errno = req.type === NBD_CMD_WRITE || req.type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    return { errno, message: `range ${req.offset}+${req.length} beyond the export size ${device.sizeBytes}` };
  }
  const min = BigInt(device.blockSize.minimumBytes);
  if (req.type !== NBD_CMD_BLOCK_STATUS && (req.offset % min !== 0n || BigInt(req.length) % min !== 0n)) {
    return { errno: NBD_EINVAL, message: `range ${req.offset}+${req.length} not aligned to ${min} bytes` };
  }
  if ((req.type === NBD_CMD_READ || req.type === NBD_CMD_WRITE) && req.length > device.blockSize.maximumPayloadBytes) {
    const errno = req.type === NBD_CMD_READ && ctx.structuredReplies ? NBD_EOVERFLOW : NBD_EINVAL;
    return { errno, message: `length ${req.length} above the maximum payload ${device.blockSize.maximumPayloadBytes}` };
  }
  if (req.type === NBD_CMD_BLOCK_STATUS && req.length === 0) return { errno: NBD_EINVAL, message: 'BLOCK_STATUS of zero length' };
  return undefined;
}

/** A reply ready to send (buffers in order) and, when it reports an error, why. */
export interface Reply {
  readonly buffers: readonly Uint8Array[];
  readonly failure: NbdFailure | undefined;
}

/** The error reply for `req` (a structured ERROR chunk when negotiated: it carries a message). */
export function errorReply(ctx: Pick<TransmissionContext, 'structuredReplies'>, req: RequestHeader, failure: NbdFailure): Reply {
  const buffers = ctx.structuredReplies
    ? [encodeErrorChunk(req.cookie, failure.errno, failure.message)]
    : [encodeSimpleReply({ error: failure.errno, cookie: req.cookie })];
  return { buffers, failure };
}

function ok(req: RequestHeader): Reply {
  // A simple reply is allowed for any successful non-READ request even when structured
  // replies were negotiated (proto.md "Simple reply message").
  return { buffers: [encodeSimpleReply({ error: 0, cookie: req.cookie })], failure: undefined };
}

/**
 * Runs a request that {@link checkRequest} accepted and builds its reply. Device failures
 * become error replies; only AssertionFailures reject.
 * @param payload the WRITE data (exactly `req.length` bytes), else undefined.
 */
export async function executeRequest(ctx: TransmissionContext, req: RequestHeader, payload: Uint8Array | undefined): Promise<Reply> {
  assert(COMMANDS.has(req.type), `executeRequest on unknown command ${req.type}`);
  assert((req.type === NBD_CMD_WRITE) === (payload !== undefined), 'payload only with WRITE');
  const { device } = ctx;
  const offset = Number(req.offset);
  const fua = (req.flags & NBD_CMD_FLAG_FUA) !== 0;
  try {
    switch (req.type) {
      case NBD_CMD_READ:
        return await read(ctx, req, offset);
      case NBD_CMD_WRITE:
        assert(payload !== undefined && payload.length === req.length, 'WRITE payload length');
        if (req.length > 0) await device.write(offset, payload, { fua });
        return ok(req);
      case NBD_CMD_FLUSH:
        await device.flush();
        return ok(req);
      case NBD_CMD_TRIM:
        if (req.length > 0) await device.trim(offset, req.length, { fua });
        return ok(req);
      case NBD_CMD_WRITE_ZEROES:
        if (req.length > 0) await device.writeZeroes(offset, req.length, { fua, noHole: (req.flags & NBD_CMD_FLAG_NO_HOLE) !== 0 });
        return ok(req);
      case NBD_CMD_BLOCK_STATUS:
        return await blockStatus(ctx, req, offset);
      default:
        throw new Error(`unreachable: command ${req.type} passed checkRequest`);
    }
  } catch (err) {
    return errorReply(ctx, req, nbdFailureFrom(err));
  }
}

async function read(ctx: TransmissionContext, req: RequestHeader, offset: number): Promise<Reply> {
  const { device } = ctx;
  if (!ctx.structuredReplies) {
    const data = req.length > 0 ? await device.read(offset, req.length) : new Uint8Array(0);
    assert(data.length === req.length, `device read returned ${data.length} bytes, not ${req.length}`);
    return { buffers: [encodeSimpleReply({ error: 0, cookie: req.cookie }), data], failure: undefined };
  }
  if (req.length === 0) return { buffers: [encodeNoneChunk(req.cookie)], failure: undefined };
  const dontFragment = (req.flags & NBD_CMD_FLAG_DF) !== 0;
  let pieces: readonly ReadPiece[];
  if (device.readSparse !== undefined && !dontFragment) {
    pieces = await device.readSparse(offset, req.length);
  } else {
    pieces = [{ kind: 'data', offsetBytes: offset, data: await device.read(offset, req.length) }];
  }
  assertTiles(pieces, offset, req.length);
  const buffers: Uint8Array[] = [];
  pieces.forEach((piece, i) => {
    const done = i === pieces.length - 1;
    if (piece.kind === 'data') {
      buffers.push(encodeOffsetDataPrefix(req.cookie, done, BigInt(piece.offsetBytes), piece.data.length), piece.data);
    } else {
      buffers.push(encodeOffsetHole(req.cookie, done, BigInt(piece.offsetBytes), piece.lengthBytes));
    }
  });
  return { buffers, failure: undefined };
}

function assertTiles(pieces: readonly ReadPiece[], offset: number, length: number): void {
  let pos = offset;
  for (const p of pieces) {
    const len = p.kind === 'data' ? p.data.length : p.lengthBytes;
    assert(p.offsetBytes === pos && len > 0, `read pieces must tile the request: piece at ${p.offsetBytes}+${len}, expected ${pos}`);
    pos += len;
  }
  assert(pos === offset + length && pieces.length > 0, `read pieces cover up to ${pos}, not ${offset + length}`);
}

/**
 * Turns device extents into descriptors for [offset, offset + length): clipped to the request,
 * adjacent equal statuses merged, at most 2^20 of them, exactly one with REQ_ONE
 * (proto.md NBD_REPLY_TYPE_BLOCK_STATUS).
 */
export function descriptorsFor(extents: readonly Extent[], length: number, reqOne: boolean): BlockStatusDescriptor[] {
  assert(extents.length > 0, 'device block status returned no extents');
  const out: { lengthBytes: number; flags: number }[] = [];
  let covered = 0;
  for (const e of extents) {
    assert(Number.isSafeInteger(e.lengthBytes) && e.lengthBytes > 0, `extent length ${e.lengthBytes} must be positive`);
    if (covered >= length) break;
    const lengthBytes = Math.min(e.lengthBytes, length - covered);
    const flags = (e.hole ? NBD_STATE_HOLE : 0) | (e.zero ? NBD_STATE_ZERO : 0);
    const last = out[out.length - 1];
    if (last !== undefined && last.flags === flags) last.lengthBytes += lengthBytes;
    else if (out.length < BLOCK_STATUS_EXTENTS_MAX) out.push({ lengthBytes, flags });
    else break;
    covered += lengthBytes;
  }
  assert(out.length > 0 && out.every((d) => d.lengthBytes > 0 && d.lengthBytes <= length), 'descriptors within the request');
  return reqOne ? out.slice(0, 1) : out;
}

async function blockStatus(ctx: TransmissionContext, req: RequestHeader, offset: number): Promise<Reply> {
  assert(ctx.baseAllocationContextId !== undefined, 'BLOCK_STATUS without a context passed checkRequest');
  const extents = await ctx.device.blockStatus(offset, req.length);
  const descriptors = descriptorsFor(extents, req.length, (req.flags & NBD_CMD_FLAG_REQ_ONE) !== 0);
  return { buffers: [encodeBlockStatus(req.cookie, true, ctx.baseAllocationContextId, descriptors)], failure: undefined };
}
