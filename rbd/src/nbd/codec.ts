/**
 * Pure codec for the NBD wire structures (github.com/NetworkBlockDevice/nbd doc/proto.md).
 *
 * Big-endian throughout, as the spec requires. Both directions are here: the server uses the
 * client-to-server decoders and server-to-client encoders; the tests (and any Aspen client)
 * use the inverse pair, so every structure round-trips. Decoders take bytes from untrusted
 * peers: every read is bounds checked, and anything short, long, or malformed throws
 * `AspenError('E_DECODE')` — never a RangeError, never a read out of range. 64-bit fields are
 * `bigint` (CONVENTIONS.md item 9).
 */
import { AspenError } from '@aspen/shared/errors.ts';
import { assert } from '@aspen/shared/assert.ts';
import {
  HANDSHAKE_HELLO_BYTES,
  IHAVEOPT,
  NBDMAGIC,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_EXPORT,
  NBD_OPT_REPLY_MAGIC,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_REPLY_FLAG_DONE,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRING_MAX_BYTES,
  NBD_STRUCTURED_REPLY_MAGIC,
  OPTION_HEADER_BYTES,
  OPTION_REPLY_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
  SIMPLE_REPLY_HEADER_BYTES,
  STRUCTURED_REPLY_HEADER_BYTES,
} from './protocol.ts';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const U32_MAX = 0xffffffff;
const U64_MAX = 0xffffffffffffffffn;

function decodeError(message: string): AspenError {
  return new AspenError('E_DECODE', `nbd: ${message}`);
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function expectLength(bytes: Uint8Array, lengthBytes: number, what: string): DataView {
  if (bytes.length !== lengthBytes) throw decodeError(`${what}: expected ${lengthBytes} bytes, got ${bytes.length}`);
  return view(bytes);
}

/**
 * Encodes an NBD string (UTF-8, no NUL, at most 4096 bytes; proto.md "Conventions").
 * @throws AssertionFailure when `text` breaks those rules (callers pass their own strings).
 */
export function encodeString(text: string): Uint8Array {
  const bytes = textEncoder.encode(text);
  assert(bytes.length <= NBD_STRING_MAX_BYTES, `nbd string longer than ${NBD_STRING_MAX_BYTES} bytes`);
  assert(!bytes.includes(0), 'nbd string contains NUL');
  return bytes;
}

/**
 * Decodes an NBD string from a peer.
 * @throws AspenError E_DECODE when longer than 4096 bytes, not UTF-8, or containing NUL.
 */
export function decodeString(bytes: Uint8Array, what = 'string'): string {
  if (bytes.length > NBD_STRING_MAX_BYTES) throw decodeError(`${what} longer than ${NBD_STRING_MAX_BYTES} bytes`);
  if (bytes.includes(0)) throw decodeError(`${what} contains NUL`);
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw decodeError(`${what} is not UTF-8`);
  }
}

/** Clips a human-readable message so that it fits the spec's string limit, on a character boundary. */
export function clipMessage(text: string, maxBytes = 256): Uint8Array {
  let bytes = textEncoder.encode(text.replaceAll('\0', ' '));
  while (bytes.length > maxBytes) {
    text = text.slice(0, Math.max(0, text.length - Math.max(1, bytes.length - maxBytes)));
    bytes = textEncoder.encode(text.replaceAll('\0', ' '));
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Handshake

/** S: NBDMAGIC, IHAVEOPT, 16-bit handshake flags (18 bytes). */
export function encodeHello(handshakeFlags: number): Uint8Array {
  const out = new Uint8Array(HANDSHAKE_HELLO_BYTES);
  const v = view(out);
  v.setBigUint64(0, NBDMAGIC);
  v.setBigUint64(8, IHAVEOPT);
  v.setUint16(16, handshakeFlags);
  return out;
}

/** Decodes the server's hello; returns its handshake flags. @throws AspenError E_DECODE on a bad magic. */
export function decodeHello(bytes: Uint8Array): number {
  const v = expectLength(bytes, HANDSHAKE_HELLO_BYTES, 'hello');
  if (v.getBigUint64(0) !== NBDMAGIC || v.getBigUint64(8) !== IHAVEOPT) throw decodeError('hello: bad magic');
  return v.getUint16(16);
}

/** C: 32-bit client flags. */
export function encodeClientFlags(clientFlags: number): Uint8Array {
  const out = new Uint8Array(4);
  view(out).setUint32(0, clientFlags >>> 0);
  return out;
}

/** Decodes the 4-byte client flags (the caller checks which bits it knows). */
export function decodeClientFlags(bytes: Uint8Array): number {
  return expectLength(bytes, 4, 'client flags').getUint32(0);
}

/** An option header as sent by the client: IHAVEOPT, option, data length. */
export interface OptionHeader {
  readonly option: number;
  /** Length of the option data that follows, bytes (u32). */
  readonly lengthBytes: number;
}

/** Encodes an option request (header + data). */
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(OPTION_HEADER_BYTES + data.length);
  const v = view(out);
  v.setBigUint64(0, IHAVEOPT);
  v.setUint32(8, option >>> 0);
  v.setUint32(12, data.length);
  out.set(data, OPTION_HEADER_BYTES);
  return out;
}

/** Decodes a 16-byte option header. @throws AspenError E_DECODE when the magic is not IHAVEOPT. */
export function decodeOptionHeader(bytes: Uint8Array): OptionHeader {
  const v = expectLength(bytes, OPTION_HEADER_BYTES, 'option header');
  if (v.getBigUint64(0) !== IHAVEOPT) throw decodeError('option header: bad magic');
  return { option: v.getUint32(8), lengthBytes: v.getUint32(12) };
}

/** An option reply header: magic, option echoed, reply type, data length. */
export interface OptionReplyHeader {
  readonly option: number;
  readonly replyType: number;
  readonly lengthBytes: number;
}

/** Encodes an option reply (header + data) (proto.md "Fixed newstyle negotiation"). */
export function encodeOptionReply(option: number, replyType: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  assert(data.length <= U32_MAX, 'option reply too long');
  const out = new Uint8Array(OPTION_REPLY_HEADER_BYTES + data.length);
  const v = view(out);
  v.setBigUint64(0, NBD_OPT_REPLY_MAGIC);
  v.setUint32(8, option >>> 0);
  v.setUint32(12, replyType >>> 0);
  v.setUint32(16, data.length);
  out.set(data, OPTION_REPLY_HEADER_BYTES);
  return out;
}

/** Decodes a 20-byte option reply header. @throws AspenError E_DECODE on a bad magic. */
export function decodeOptionReplyHeader(bytes: Uint8Array): OptionReplyHeader {
  const v = expectLength(bytes, OPTION_REPLY_HEADER_BYTES, 'option reply header');
  if (v.getBigUint64(0) !== NBD_OPT_REPLY_MAGIC) throw decodeError('option reply header: bad magic');
  return { option: v.getUint32(8), replyType: v.getUint32(12), lengthBytes: v.getUint32(16) };
}

/** Data of NBD_OPT_INFO / NBD_OPT_GO: an export name and the NBD_INFO_* items requested. */
export interface InfoRequest {
  readonly exportName: string;
  readonly infoRequests: readonly number[];
}

/** Encodes INFO/GO option data: u32 name length, name, u16 count, u16 × count. */
export function encodeInfoRequest(req: InfoRequest): Uint8Array {
  const name = encodeString(req.exportName);
  const out = new Uint8Array(4 + name.length + 2 + 2 * req.infoRequests.length);
  const v = view(out);
  v.setUint32(0, name.length);
  out.set(name, 4);
  v.setUint16(4 + name.length, req.infoRequests.length);
  req.infoRequests.forEach((info, i) => v.setUint16(6 + name.length + 2 * i, info));
  return out;
}

/**
 * Decodes INFO/GO option data (proto.md "NBD_OPT_INFO and NBD_OPT_GO").
 * @throws AspenError E_DECODE when lengths disagree with the data or the name is not a valid string.
 */
export function decodeInfoRequest(data: Uint8Array): InfoRequest {
  if (data.length < 6) throw decodeError('info request shorter than 6 bytes');
  const v = view(data);
  const nameLength = v.getUint32(0);
  if (nameLength > data.length - 6) throw decodeError('info request: name length beyond the data');
  const exportName = decodeString(data.subarray(4, 4 + nameLength), 'export name');
  const count = v.getUint16(4 + nameLength);
  if (data.length !== 6 + nameLength + 2 * count) throw decodeError('info request: count disagrees with the data length');
  const infoRequests: number[] = [];
  for (let i = 0; i < count; i++) infoRequests.push(v.getUint16(6 + nameLength + 2 * i));
  return { exportName, infoRequests };
}

/** Data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT. */
export interface MetaContextRequest {
  readonly exportName: string;
  readonly queries: readonly string[];
}

/** Encodes meta-context option data: u32 name length, name, u32 count, (u32 length, query) × count. */
export function encodeMetaContextRequest(req: MetaContextRequest): Uint8Array {
  const name = encodeString(req.exportName);
  const queries = req.queries.map(encodeString);
  const out = new Uint8Array(8 + name.length + queries.reduce((n, q) => n + 4 + q.length, 0));
  const v = view(out);
  v.setUint32(0, name.length);
  out.set(name, 4);
  let pos = 4 + name.length;
  v.setUint32(pos, queries.length);
  pos += 4;
  for (const q of queries) {
    v.setUint32(pos, q.length);
    out.set(q, pos + 4);
    pos += 4 + q.length;
  }
  return out;
}

/**
 * Decodes meta-context option data (proto.md "NBD_OPT_LIST_META_CONTEXT").
 * @throws AspenError E_DECODE when any length reaches beyond the data, bytes are left over,
 *   or a string is invalid (the server answers NBD_REP_ERR_INVALID).
 */
export function decodeMetaContextRequest(data: Uint8Array): MetaContextRequest {
  const v = view(data);
  if (data.length < 8) throw decodeError('meta context request shorter than 8 bytes');
  const nameLength = v.getUint32(0);
  if (nameLength > data.length - 8) throw decodeError('meta context request: name length beyond the data');
  const exportName = decodeString(data.subarray(4, 4 + nameLength), 'export name');
  let pos = 4 + nameLength;
  const count = v.getUint32(pos);
  pos += 4;
  // Each query needs at least its 4-byte length: a hostile count cannot make us loop long.
  if (count > (data.length - pos) / 4) throw decodeError('meta context request: query count beyond the data');
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (pos + 4 > data.length) throw decodeError('meta context request: truncated query length');
    const length = v.getUint32(pos);
    pos += 4;
    if (length > data.length - pos) throw decodeError('meta context request: query beyond the data');
    queries.push(decodeString(data.subarray(pos, pos + length), 'query'));
    pos += length;
  }
  if (pos !== data.length) throw decodeError('meta context request: trailing bytes');
  return { exportName, queries };
}

/** Reply to NBD_OPT_EXPORT_NAME: u64 size, u16 flags, and 124 zero bytes unless NO_ZEROES. */
export function encodeExportNameReply(sizeBytes: bigint, transmissionFlags: number, noZeroes: boolean): Uint8Array {
  assert(sizeBytes >= 0n && sizeBytes <= U64_MAX, 'export size out of range');
  const out = new Uint8Array(10 + (noZeroes ? 0 : 124));
  const v = view(out);
  v.setBigUint64(0, sizeBytes);
  v.setUint16(8, transmissionFlags);
  return out;
}

/** NBD_REP_SERVER data: u32 name length, name, optional description (proto.md "NBD_REP_SERVER"). */
export function encodeRepServer(exportName: string, description = ''): Uint8Array {
  const name = encodeString(exportName);
  const desc = clipMessage(description, NBD_STRING_MAX_BYTES);
  const out = new Uint8Array(4 + name.length + desc.length);
  view(out).setUint32(0, name.length);
  out.set(name, 4);
  out.set(desc, 4 + name.length);
  return out;
}

/** Decodes NBD_REP_SERVER data. @throws AspenError E_DECODE on bad lengths or strings. */
export function decodeRepServer(data: Uint8Array): { exportName: string; description: string } {
  if (data.length < 4) throw decodeError('rep server shorter than 4 bytes');
  const nameLength = view(data).getUint32(0);
  if (nameLength > data.length - 4) throw decodeError('rep server: name beyond the data');
  return {
    exportName: decodeString(data.subarray(4, 4 + nameLength), 'export name'),
    description: decodeString(data.subarray(4 + nameLength), 'description'),
  };
}

/** NBD_REP_META_CONTEXT data: u32 context id, name. */
export function encodeRepMetaContext(contextId: number, name: string): Uint8Array {
  const bytes = encodeString(name);
  const out = new Uint8Array(4 + bytes.length);
  view(out).setUint32(0, contextId);
  out.set(bytes, 4);
  return out;
}

/** Decodes NBD_REP_META_CONTEXT data. @throws AspenError E_DECODE. */
export function decodeRepMetaContext(data: Uint8Array): { contextId: number; name: string } {
  if (data.length < 4) throw decodeError('rep meta context shorter than 4 bytes');
  return { contextId: view(data).getUint32(0), name: decodeString(data.subarray(4), 'context name') };
}

/** NBD_INFO_EXPORT payload (12 bytes): u16 type, u64 size, u16 transmission flags. */
export function encodeInfoExport(sizeBytes: bigint, transmissionFlags: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = view(out);
  v.setUint16(0, NBD_INFO_EXPORT);
  v.setBigUint64(2, sizeBytes);
  v.setUint16(10, transmissionFlags);
  return out;
}

/** NBD_INFO_NAME / NBD_INFO_DESCRIPTION payload: u16 type, string. */
export function encodeInfoString(infoType: number, text: string): Uint8Array {
  const bytes = clipMessage(text, NBD_STRING_MAX_BYTES);
  const out = new Uint8Array(2 + bytes.length);
  view(out).setUint16(0, infoType);
  out.set(bytes, 2);
  return out;
}

/** NBD_INFO_BLOCK_SIZE payload (14 bytes): u16 type, u32 minimum, preferred, maximum payload. */
export function encodeInfoBlockSize(minimumBytes: number, preferredBytes: number, maximumPayloadBytes: number): Uint8Array {
  const out = new Uint8Array(14);
  const v = view(out);
  v.setUint16(0, NBD_INFO_BLOCK_SIZE);
  v.setUint32(2, minimumBytes);
  v.setUint32(6, preferredBytes);
  v.setUint32(10, maximumPayloadBytes);
  return out;
}

/** A decoded NBD_REP_INFO payload. */
export type Info =
  | { readonly kind: 'export'; readonly sizeBytes: bigint; readonly transmissionFlags: number }
  | { readonly kind: 'string'; readonly infoType: number; readonly text: string }
  | { readonly kind: 'blockSize'; readonly minimumBytes: number; readonly preferredBytes: number; readonly maximumPayloadBytes: number }
  | { readonly kind: 'unknown'; readonly infoType: number };

/** Decodes an NBD_REP_INFO payload. @throws AspenError E_DECODE when its length disagrees with its type. */
export function decodeInfo(data: Uint8Array): Info {
  if (data.length < 2) throw decodeError('info shorter than 2 bytes');
  const v = view(data);
  const infoType = v.getUint16(0);
  switch (infoType) {
    case NBD_INFO_EXPORT:
      expectLength(data, 12, 'info export');
      return { kind: 'export', sizeBytes: v.getBigUint64(2), transmissionFlags: v.getUint16(10) };
    case NBD_INFO_BLOCK_SIZE:
      expectLength(data, 14, 'info block size');
      return { kind: 'blockSize', minimumBytes: v.getUint32(2), preferredBytes: v.getUint32(6), maximumPayloadBytes: v.getUint32(10) };
    case 1:
    case 2:
      return { kind: 'string', infoType, text: decodeString(data.subarray(2), 'info string') };
    default:
      return { kind: 'unknown', infoType };
  }
}

// ---------------------------------------------------------------------------------------------
// Transmission

/** A transmission request header (proto.md "Request message"). */
export interface RequestHeader {
  /** Command flags (NBD_CMD_FLAG_*), 16 bits. */
  readonly flags: number;
  /** Command type (NBD_CMD_*), 16 bits. */
  readonly type: number;
  /** Opaque client cookie (was "handle"), echoed in the reply. */
  readonly cookie: bigint;
  /** Byte offset into the export (u64). */
  readonly offset: bigint;
  /** Length in bytes (u32); for WRITE also the payload length that follows. */
  readonly length: number;
}

/** Encodes a 28-byte request header (a WRITE's payload follows separately). */
export function encodeRequestHeader(req: RequestHeader): Uint8Array {
  const out = new Uint8Array(REQUEST_HEADER_BYTES);
  const v = view(out);
  v.setUint32(0, NBD_REQUEST_MAGIC);
  v.setUint16(4, req.flags);
  v.setUint16(6, req.type);
  v.setBigUint64(8, req.cookie);
  v.setBigUint64(16, req.offset);
  v.setUint32(24, req.length);
  return out;
}

/** Decodes a 28-byte request header. @throws AspenError E_DECODE when the magic is wrong (the server disconnects). */
export function decodeRequestHeader(bytes: Uint8Array): RequestHeader {
  const v = expectLength(bytes, REQUEST_HEADER_BYTES, 'request header');
  const magic = v.getUint32(0);
  if (magic !== NBD_REQUEST_MAGIC) throw decodeError(`request header: bad magic 0x${magic.toString(16)}`);
  return { flags: v.getUint16(4), type: v.getUint16(6), cookie: v.getBigUint64(8), offset: v.getBigUint64(16), length: v.getUint32(24) };
}

/** A simple reply header: error (0 on success) and cookie; a successful READ's data follows. */
export interface SimpleReplyHeader {
  readonly error: number;
  readonly cookie: bigint;
}

/** Encodes a 16-byte simple reply header (proto.md "Simple reply message"). */
export function encodeSimpleReply(reply: SimpleReplyHeader): Uint8Array {
  const out = new Uint8Array(SIMPLE_REPLY_HEADER_BYTES);
  const v = view(out);
  v.setUint32(0, NBD_SIMPLE_REPLY_MAGIC);
  v.setUint32(4, reply.error);
  v.setBigUint64(8, reply.cookie);
  return out;
}

/** Decodes a 16-byte simple reply header. @throws AspenError E_DECODE on a bad magic. */
export function decodeSimpleReply(bytes: Uint8Array): SimpleReplyHeader {
  const v = expectLength(bytes, SIMPLE_REPLY_HEADER_BYTES, 'simple reply');
  if (v.getUint32(0) !== NBD_SIMPLE_REPLY_MAGIC) throw decodeError('simple reply: bad magic');
  return { error: v.getUint32(4), cookie: v.getBigUint64(8) };
}

/** A structured reply chunk header (proto.md "Structured reply chunk message"). */
export interface ChunkHeader {
  readonly flags: number;
  readonly type: number;
  readonly cookie: bigint;
  /** Payload length that follows, bytes (u32). */
  readonly lengthBytes: number;
}

/** Encodes a 20-byte structured chunk header. */
export function encodeChunkHeader(h: ChunkHeader): Uint8Array {
  assert(h.lengthBytes >= 0 && h.lengthBytes <= U32_MAX, 'chunk length out of range');
  const out = new Uint8Array(STRUCTURED_REPLY_HEADER_BYTES);
  const v = view(out);
  v.setUint32(0, NBD_STRUCTURED_REPLY_MAGIC);
  v.setUint16(4, h.flags);
  v.setUint16(6, h.type);
  v.setBigUint64(8, h.cookie);
  v.setUint32(16, h.lengthBytes);
  return out;
}

/** Decodes a 20-byte structured chunk header. @throws AspenError E_DECODE on a bad magic. */
export function decodeChunkHeader(bytes: Uint8Array): ChunkHeader {
  const v = expectLength(bytes, STRUCTURED_REPLY_HEADER_BYTES, 'chunk header');
  if (v.getUint32(0) !== NBD_STRUCTURED_REPLY_MAGIC) throw decodeError('chunk header: bad magic');
  return { flags: v.getUint16(4), type: v.getUint16(6), cookie: v.getBigUint64(8), lengthBytes: v.getUint32(16) };
}

/**
 * NBD_REPLY_TYPE_OFFSET_DATA: returns the header plus 8-byte offset as one buffer; the data
 * itself is sent after it unchanged (no copy of a large read).
 */
export function encodeOffsetDataPrefix(cookie: bigint, done: boolean, offset: bigint, dataLengthBytes: number): Uint8Array {
  assert(dataLengthBytes >= 1 && dataLengthBytes <= U32_MAX - 8, 'offset data length out of range');
  const out = new Uint8Array(STRUCTURED_REPLY_HEADER_BYTES + 8);
  out.set(encodeChunkHeader({ flags: done ? NBD_REPLY_FLAG_DONE : 0, type: NBD_REPLY_TYPE_OFFSET_DATA, cookie, lengthBytes: 8 + dataLengthBytes }));
  view(out).setBigUint64(STRUCTURED_REPLY_HEADER_BYTES, offset);
  return out;
}

/** NBD_REPLY_TYPE_OFFSET_HOLE chunk: offset and a nonzero hole size (32 bytes in all). */
export function encodeOffsetHole(cookie: bigint, done: boolean, offset: bigint, holeBytes: number): Uint8Array {
  assert(holeBytes >= 1 && holeBytes <= U32_MAX, 'hole size out of range');
  const out = new Uint8Array(STRUCTURED_REPLY_HEADER_BYTES + 12);
  out.set(encodeChunkHeader({ flags: done ? NBD_REPLY_FLAG_DONE : 0, type: NBD_REPLY_TYPE_OFFSET_HOLE, cookie, lengthBytes: 12 }));
  const v = view(out);
  v.setBigUint64(STRUCTURED_REPLY_HEADER_BYTES, offset);
  v.setUint32(STRUCTURED_REPLY_HEADER_BYTES + 8, holeBytes);
  return out;
}

/** One block status descriptor: a nonzero extent length (u32) and its status flags. */
export interface BlockStatusDescriptor {
  readonly lengthBytes: number;
  readonly flags: number;
}

/** NBD_REPLY_TYPE_BLOCK_STATUS chunk for one metadata context (always the final chunk here). */
export function encodeBlockStatus(cookie: bigint, done: boolean, contextId: number, descriptors: readonly BlockStatusDescriptor[]): Uint8Array {
  assert(descriptors.length >= 1, 'block status needs at least one descriptor');
  const payloadBytes = 4 + 8 * descriptors.length;
  const out = new Uint8Array(STRUCTURED_REPLY_HEADER_BYTES + payloadBytes);
  out.set(encodeChunkHeader({ flags: done ? NBD_REPLY_FLAG_DONE : 0, type: NBD_REPLY_TYPE_BLOCK_STATUS, cookie, lengthBytes: payloadBytes }));
  const v = view(out);
  v.setUint32(STRUCTURED_REPLY_HEADER_BYTES, contextId);
  descriptors.forEach((d, i) => {
    assert(d.lengthBytes >= 1 && d.lengthBytes <= U32_MAX, 'descriptor length out of range');
    v.setUint32(STRUCTURED_REPLY_HEADER_BYTES + 4 + 8 * i, d.lengthBytes);
    v.setUint32(STRUCTURED_REPLY_HEADER_BYTES + 8 + 8 * i, d.flags >>> 0);
  });
  return out;
}

/** Decodes a BLOCK_STATUS chunk payload. @throws AspenError E_DECODE unless its length is 4 + 8n, n ≥ 1. */
export function decodeBlockStatus(payload: Uint8Array): { contextId: number; descriptors: BlockStatusDescriptor[] } {
  if (payload.length < 12 || (payload.length - 4) % 8 !== 0) throw decodeError('block status payload length is not 4 + 8n');
  const v = view(payload);
  const descriptors: BlockStatusDescriptor[] = [];
  for (let pos = 4; pos < payload.length; pos += 8) descriptors.push({ lengthBytes: v.getUint32(pos), flags: v.getUint32(pos + 4) });
  return { contextId: v.getUint32(0), descriptors };
}

/** NBD_REPLY_TYPE_ERROR chunk: nonzero error, u16 message length, message (always final here). */
export function encodeErrorChunk(cookie: bigint, error: number, message: string): Uint8Array {
  assert(error !== 0, 'an error chunk needs a nonzero error');
  const msg = clipMessage(message);
  const out = new Uint8Array(STRUCTURED_REPLY_HEADER_BYTES + 6 + msg.length);
  out.set(encodeChunkHeader({ flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_ERROR, cookie, lengthBytes: 6 + msg.length }));
  const v = view(out);
  v.setUint32(STRUCTURED_REPLY_HEADER_BYTES, error);
  v.setUint16(STRUCTURED_REPLY_HEADER_BYTES + 4, msg.length);
  out.set(msg, STRUCTURED_REPLY_HEADER_BYTES + 6);
  return out;
}

/** Decodes the common prefix of an error chunk payload. @throws AspenError E_DECODE. */
export function decodeErrorPayload(payload: Uint8Array): { error: number; message: string } {
  if (payload.length < 6) throw decodeError('error chunk shorter than 6 bytes');
  const v = view(payload);
  const messageLength = v.getUint16(4);
  if (messageLength > payload.length - 6) throw decodeError('error chunk: message beyond the payload');
  return { error: v.getUint32(0), message: decodeString(payload.subarray(6, 6 + messageLength), 'error message') };
}

/** NBD_REPLY_TYPE_NONE with NBD_REPLY_FLAG_DONE: the final chunk of a reply with no more content. */
export function encodeNoneChunk(cookie: bigint): Uint8Array {
  return encodeChunkHeader({ flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_NONE, cookie, lengthBytes: 0 });
}
