/**
 * Option haggling of the fixed newstyle handshake (proto.md "Fixed newstyle negotiation",
 * "Option types"). No I/O: the session feeds it one option at a time and sends the replies it
 * returns, in order, before reading the next option; the export resolver is injected.
 *
 * Supported: EXPORT_NAME, ABORT, LIST, INFO, GO (NBD_INFO_EXPORT, NAME, DESCRIPTION,
 * BLOCK_SIZE), STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT (`base:allocation`).
 * Anything else (STARTTLS included: this server runs in NOTLS mode) gets NBD_REP_ERR_UNSUP.
 */
import { AspenError } from '@aspen/shared/errors.ts';
import { AssertionFailure, assert } from '@aspen/shared/assert.ts';
import {
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeString,
  encodeExportNameReply,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeOptionReply,
  encodeRepMetaContext,
  encodeRepServer,
  clipMessage,
} from './codec.ts';
import type { BlockDevice, ExportResolver, OpenedExport } from './device.ts';
import {
  BASE_ALLOCATION,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_NAME,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_PLATFORM,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_SHUTDOWN,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
} from './protocol.ts';

/** The handshake flags this server sends: FIXED_NEWSTYLE | NO_ZEROES. */
export const SERVER_HANDSHAKE_FLAGS = NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES;

/** The metadata context id given to `base:allocation` by SET_META_CONTEXT (any nonzero value). */
export const BASE_ALLOCATION_CONTEXT_ID = 1;

/** What transmission needs from a successful handshake. */
export interface TransmissionParams {
  readonly opened: OpenedExport;
  /** The flags advertised for this export (NBD_FLAG_*), fixed for the connection. */
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  /** Set when `base:allocation` was selected for this export: BLOCK_STATUS is allowed. */
  readonly baseAllocationContextId: number | undefined;
}

/** What to do after an option: send `replies` in order, then continue, transmit, or close. */
export interface OptionOutcome {
  readonly replies: readonly Uint8Array[];
  readonly next:
    | { readonly kind: 'continue' }
    | { readonly kind: 'transmission'; readonly params: TransmissionParams }
    | { readonly kind: 'close'; readonly reason: string };
}

/** Minimal logger (pino's shape). */
export interface NbdLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Transmission flags for a device (proto.md "Transmission flags"). Read-only exports do not
 * expose TRIM/WRITE_ZEROES; DF is exposed only with structured replies, as the spec requires.
 */
export function transmissionFlagsFor(device: BlockDevice, structuredReplies: boolean): number {
  let flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA;
  flags |= device.readOnly ? NBD_FLAG_READ_ONLY : NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
  if (device.canMultiConn) flags |= NBD_FLAG_CAN_MULTI_CONN;
  if (structuredReplies) flags |= NBD_FLAG_SEND_DF;
  return flags;
}

/**
 * Checks a device's advertised constraints against proto.md "Size constraints"; a device that
 * breaks them is a bug.
 * @throws AssertionFailure
 */
export function assertValidBlockSize(device: BlockDevice): void {
  const { minimumBytes: min, preferredBytes: pref, maximumPayloadBytes: max } = device.blockSize;
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  assert(pow2(min) && min <= 65536, `minimum block size ${min} must be a power of 2 ≤ 65536`);
  assert(pow2(pref) && pref >= Math.max(min, 512), `preferred block size ${pref} must be a power of 2 ≥ max(min, 512)`);
  assert(Number.isInteger(max) && max >= pref && max <= 0xffffffff, `maximum payload ${max} must be ≥ preferred and fit u32`);
  assert(Number.isSafeInteger(device.sizeBytes) && device.sizeBytes >= 0, `device size ${device.sizeBytes} must be a safe integer`);
}

/** Option reply error for a resolver failure (the option analogue of NBD_ERRNO_BY_CODE). @throws AssertionFailure as is. */
export function optionErrorFor(err: unknown): { replyType: number; message: string } {
  if (err instanceof AssertionFailure) throw err;
  if (!(err instanceof AspenError)) return { replyType: NBD_REP_ERR_UNKNOWN, message: String(err instanceof Error ? err.message : err) };
  switch (err.code) {
    case 'EPERM':
      return { replyType: NBD_REP_ERR_POLICY, message: err.message };
    case 'E_UNSUPPORTED':
      return { replyType: NBD_REP_ERR_PLATFORM, message: err.message };
    default:
      return { replyType: NBD_REP_ERR_UNKNOWN, message: err.message };
  }
}

/**
 * The handshake state of one connection. Call {@link acceptClientFlags} once, then
 * {@link handleOption} per option until it says 'transmission' or 'close'.
 */
export class NbdHandshake {
  private noZeroes = false;
  private structuredReplies = false;
  /** Export name and selection of the last SET_META_CONTEXT (replaced by every new one). */
  private metaContext: { exportName: string; baseAllocation: boolean } | undefined;
  private finished = false;

  constructor(
    private readonly resolver: ExportResolver,
    private readonly log: NbdLog,
    private readonly isShuttingDown: () => boolean = () => false,
  ) {}

  /**
   * Validates the client flags (proto.md "Client flags"): unknown bits, or NO_ZEROES when we
   * did not offer it, mean the server MUST drop the connection.
   */
  acceptClientFlags(clientFlags: number): { ok: true } | { ok: false; reason: string } {
    const known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
    if ((clientFlags & ~known) !== 0) return { ok: false, reason: `unknown client flags 0x${clientFlags.toString(16)}` };
    this.noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0;
    return { ok: true };
  }

  /**
   * Answers an option whose data was too long to read (more than the session's limit): the
   * data was skipped. EXPORT_NAME cannot return errors, so it closes the connection.
   */
  tooBig(option: number): OptionOutcome {
    if (option === NBD_OPT_EXPORT_NAME) return { replies: [], next: { kind: 'close', reason: 'EXPORT_NAME data too long' } };
    return this.error(option, NBD_REP_ERR_TOO_BIG, 'option data too long');
  }

  /** Handles one option with its complete data. Never rejects except for AssertionFailures. */
  async handleOption(option: number, data: Uint8Array): Promise<OptionOutcome> {
    assert(!this.finished, 'option after the handshake finished');
    if (this.isShuttingDown() && option !== NBD_OPT_ABORT) {
      if (option === NBD_OPT_EXPORT_NAME) return { replies: [], next: { kind: 'close', reason: 'shutting down' } };
      return this.error(option, NBD_REP_ERR_SHUTDOWN, 'server is shutting down');
    }
    switch (option) {
      case NBD_OPT_EXPORT_NAME:
        return this.exportName(data);
      case NBD_OPT_ABORT:
        this.finished = true;
        return { replies: [encodeOptionReply(option, NBD_REP_ACK)], next: { kind: 'close', reason: 'client sent NBD_OPT_ABORT' } };
      case NBD_OPT_LIST:
        return this.list(data);
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        return this.infoOrGo(option, data);
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.length !== 0) return this.error(option, NBD_REP_ERR_INVALID, 'STRUCTURED_REPLY takes no data');
        if (this.structuredReplies) return this.error(option, NBD_REP_ERR_INVALID, 'structured replies already negotiated');
        this.structuredReplies = true;
        return this.ack(option, []);
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        return this.metaContextOption(option, data);
      default:
        return this.error(option, NBD_REP_ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  private ack(option: number, before: Uint8Array[]): OptionOutcome {
    return { replies: [...before, encodeOptionReply(option, NBD_REP_ACK)], next: { kind: 'continue' } };
  }

  private error(option: number, replyType: number, message: string): OptionOutcome {
    assert((replyType & 0x80000000) !== 0, 'option error reply without the error bit');
    return { replies: [encodeOptionReply(option, replyType, clipMessage(message))], next: { kind: 'continue' } };
  }

  private async open(name: string): Promise<{ opened: OpenedExport } | { replyType: number; message: string }> {
    try {
      const opened = await this.resolver.open(name);
      if (opened === undefined) return { replyType: NBD_REP_ERR_UNKNOWN, message: `export '${name}' does not exist` };
      assertValidBlockSize(opened.device);
      return { opened };
    } catch (err) {
      const failure = optionErrorFor(err);
      this.log.warn({ export: name, err: failure.message }, 'nbd: opening an export failed');
      return failure;
    }
  }

  private params(opened: OpenedExport): TransmissionParams {
    const meta = this.metaContext;
    return {
      opened,
      transmissionFlags: transmissionFlagsFor(opened.device, this.structuredReplies),
      structuredReplies: this.structuredReplies,
      baseAllocationContextId:
        meta !== undefined && meta.baseAllocation && meta.exportName === opened.name ? BASE_ALLOCATION_CONTEXT_ID : undefined,
    };
  }

  private async exportName(data: Uint8Array): Promise<OptionOutcome> {
    let name: string;
    try {
      name = decodeString(data, 'export name');
    } catch {
      return { replies: [], next: { kind: 'close', reason: 'EXPORT_NAME with an invalid name' } };
    }
    const result = await this.open(name);
    if (!('opened' in result)) return { replies: [], next: { kind: 'close', reason: `EXPORT_NAME '${name}': ${result.message}` } };
    this.finished = true;
    const params = this.params(result.opened);
    const reply = encodeExportNameReply(BigInt(result.opened.device.sizeBytes), params.transmissionFlags, this.noZeroes);
    return { replies: [reply], next: { kind: 'transmission', params } };
  }

  private async list(data: Uint8Array): Promise<OptionOutcome> {
    if (data.length !== 0) return this.error(NBD_OPT_LIST, NBD_REP_ERR_INVALID, 'LIST takes no data');
    try {
      const exports = await this.resolver.list();
      return this.ack(NBD_OPT_LIST, exports.map((e) => encodeOptionReply(NBD_OPT_LIST, NBD_REP_SERVER, encodeRepServer(e.name, e.description))));
    } catch (err) {
      const failure = optionErrorFor(err);
      return this.error(NBD_OPT_LIST, failure.replyType === NBD_REP_ERR_UNKNOWN ? NBD_REP_ERR_POLICY : failure.replyType, failure.message);
    }
  }

  private async infoOrGo(option: number, data: Uint8Array): Promise<OptionOutcome> {
    let request;
    try {
      request = decodeInfoRequest(data);
    } catch (err) {
      return this.error(option, NBD_REP_ERR_INVALID, err instanceof Error ? err.message : 'malformed request');
    }
    const result = await this.open(request.exportName);
    if (!('opened' in result)) return this.error(option, result.replyType, result.message);
    const { opened } = result;
    const params = this.params(opened);
    const { device } = opened;
    const info = (payload: Uint8Array) => encodeOptionReply(option, NBD_REP_INFO, payload);
    const replies = [info(encodeInfoExport(BigInt(device.sizeBytes), params.transmissionFlags))];
    const requested = new Set(request.infoRequests);
    if (requested.has(NBD_INFO_NAME)) replies.push(info(encodeInfoString(NBD_INFO_NAME, opened.name)));
    if (requested.has(NBD_INFO_DESCRIPTION) && opened.description !== '') {
      replies.push(info(encodeInfoString(NBD_INFO_DESCRIPTION, opened.description)));
    }
    // Sent even when not requested: a client that did not ask may ignore it, and the server
    // still refuses misaligned requests cleanly (proto.md "Size constraints").
    const bs = device.blockSize;
    replies.push(info(encodeInfoBlockSize(bs.minimumBytes, bs.preferredBytes, bs.maximumPayloadBytes)));
    if (option === NBD_OPT_INFO) {
      await opened.release();
      return this.ack(option, replies);
    }
    this.finished = true;
    this.log.debug({ export: opened.name, flags: params.transmissionFlags, requested: [...requested] }, 'nbd: GO');
    return { replies: [...replies, encodeOptionReply(option, NBD_REP_ACK)], next: { kind: 'transmission', params } };
  }

  private metaContextOption(option: number, data: Uint8Array): OptionOutcome {
    const isSet = option === NBD_OPT_SET_META_CONTEXT;
    // SET replaces all previously set contexts, even when it fails (proto.md).
    if (isSet) this.metaContext = undefined;
    if (!this.structuredReplies) return this.error(option, NBD_REP_ERR_INVALID, 'negotiate structured replies first');
    let request;
    try {
      request = decodeMetaContextRequest(data);
    } catch (err) {
      return this.error(option, NBD_REP_ERR_INVALID, err instanceof Error ? err.message : 'malformed request');
    }
    // SET selects exactly `base:allocation`; LIST also answers the `base:` wildcard.
    const matches = (query: string): boolean => query === BASE_ALLOCATION || (!isSet && query === 'base:');
    // LIST with no queries lists everything; SET with none selects nothing.
    const selected = isSet ? request.queries.some(matches) : request.queries.length === 0 || request.queries.some(matches);
    if (isSet) this.metaContext = { exportName: request.exportName, baseAllocation: selected };
    const contextId = isSet ? BASE_ALLOCATION_CONTEXT_ID : 0;
    const replies = selected ? [encodeOptionReply(option, NBD_REP_META_CONTEXT, encodeRepMetaContext(contextId, BASE_ALLOCATION))] : [];
    return this.ack(option, replies);
  }
}
