/**
 * The messenger's wire format (docs/adr/0005-messenger.md): a 16-byte banner once per
 * connection direction, then frames. Pure: no sockets, no timers.
 *
 * Frame = 32-byte header + `metaLength` bytes of meta segment + `dataLength` bytes of data
 * segment. All integers little-endian (as shared/src/codec.ts).
 *
 * | offset | size | field                                                          |
 * |-------:|-----:|----------------------------------------------------------------|
 * |      0 |    2 | magic 0xA5F0                                                   |
 * |      2 |    1 | protocol version (negotiated by the banners; 1)                |
 * |      3 |    1 | frame type ({@link FrameType})                                 |
 * |      4 |    1 | flags ({@link FrameFlag})                                      |
 * |      5 |    1 | reserved, 0                                                    |
 * |      6 |    2 | message type (user-registered, 0 for control frames)           |
 * |      8 |    8 | request id (u64)                                               |
 * |     16 |    4 | meta length, bytes                                             |
 * |     20 |    4 | data length, bytes                                             |
 * |     24 |    4 | payload crc32c over meta ‖ data (0 unless flag PAYLOAD_CRC)    |
 * |     28 |    4 | header crc32c over bytes 0..27                                 |
 *
 * The payload crc sits in the header (not in an epilogue as Ceph msgr2 does) because the
 * sender always holds the whole payload before it writes; the receiver checks it once the
 * last payload byte has arrived, before the frame is handed on.
 *
 * Hostile input: every violation is an `AspenError('E_DECODE')` whose `details.reason` names
 * it; the decoder is then poisoned (the connection must be closed), it never reads out of
 * range and never allocates more than the announced, bounded frame size.
 */
import { assert } from '../assert.ts';
import { crc32c } from '../checksum.ts';
import { AspenError } from '../errors.ts';

/** Frame magic (u16 LE at offset 0): bytes F0 A5 on the wire. */
export const FRAME_MAGIC = 0xa5f0;
/** Size of a frame header, bytes. */
export const FRAME_HEADER_BYTES = 32;
/** Banner magic, the first 8 bytes each side sends. */
export const BANNER_MAGIC = new TextEncoder().encode('ASPENMSG');
/** Size of the banner, bytes: magic(8) minVersion u16, maxVersion u16, features u32. */
export const BANNER_BYTES = 16;
/** Lowest and highest protocol version this build speaks. */
export const MSGR_PROTOCOL_VERSION_MIN = 1;
export const MSGR_PROTOCOL_VERSION_MAX = 1;
/** Largest frame (meta + data) accepted or sent, bytes. Ceph's osd_max_write_size is 90 MiB; RBD/FS objects are 4 MiB. */
export const MSGR_FRAME_MAX_BYTES = 64 * 1024 * 1024;
/** Largest meta segment accepted or sent, bytes (op descriptors, not bulk data). */
export const MSGR_META_MAX_BYTES = 4 * 1024 * 1024;
/** Data segments at most this big are copied into the header's buffer so a frame is one write, bytes. */
export const MSGR_COALESCE_MAX_BYTES = 16 * 1024;

/** Frame types (u8 at offset 3). */
export const FrameType = {
  /** Client → server, first frame: meta = Hello (handshake.ts). */
  HELLO: 1,
  /** Server → client: meta = HelloAck. */
  HELLO_ACK: 2,
  /** A request expecting one REPLY or REPLY_ERROR with the same request id. */
  REQUEST: 3,
  /** The successful reply to a REQUEST. */
  REPLY: 4,
  /** A failed REQUEST: meta = RemoteError (handshake.ts). */
  REPLY_ERROR: 5,
  /** A one-way message: request id 0, no reply. */
  ONEWAY: 6,
  /** Orderly close: meta = UTF-8 reason. The session ends; nothing is resent. */
  CLOSE: 7,
} as const;
/** A frame type value. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
const FRAME_TYPE_MAX = 7;

/** Flag bits (u8 at offset 4). */
export const FrameFlag = {
  /** The payload crc32c field is set and must be verified. */
  PAYLOAD_CRC: 1,
  /** A REQUEST sent again after a reconnect: the handler may have seen it already. */
  RESENT: 2,
} as const;
const KNOWN_FLAGS = FrameFlag.PAYLOAD_CRC | FrameFlag.RESENT;

/** A decoded (or to-be-encoded) frame. `meta`/`data` may alias the receive buffers. */
export interface Frame {
  readonly type: FrameType;
  /** {@link FrameFlag} bits other than PAYLOAD_CRC (which the encoder sets itself). */
  readonly flags: number;
  /** User message type, 0..65535. */
  readonly msgType: number;
  /** Request id, 0..2^64-1. */
  readonly reqId: bigint;
  readonly meta: Uint8Array;
  readonly data: Uint8Array;
}

/** The peer's banner. */
export interface Banner {
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly features: number;
}

/** Limits a decoder enforces (defaults: the MSGR_* constants). */
export interface FrameLimits {
  readonly frameMaxBytes: number;
  readonly metaMaxBytes: number;
}

/** Default {@link FrameLimits}. */
export const DEFAULT_FRAME_LIMITS: FrameLimits = { frameMaxBytes: MSGR_FRAME_MAX_BYTES, metaMaxBytes: MSGR_META_MAX_BYTES };
/**
 * Limits until the handshake is done: a peer that has not said HELLO cannot make us allocate
 * more than this per connection (HELLO/HELLO_ACK are a few hundred bytes).
 */
export const MSGR_HANDSHAKE_LIMITS: FrameLimits = { frameMaxBytes: 64 * 1024, metaMaxBytes: 64 * 1024 };

const EMPTY = new Uint8Array(0);

function protocolError(reason: string, message: string): AspenError {
  return new AspenError('E_DECODE', `messenger protocol error: ${message}`, { reason });
}

/** Encodes this build's banner (16 bytes). */
export function encodeBanner(minVersion = MSGR_PROTOCOL_VERSION_MIN, maxVersion = MSGR_PROTOCOL_VERSION_MAX): Uint8Array {
  assert(minVersion >= 1 && minVersion <= maxVersion && maxVersion <= 0xffff, 'bad version range');
  const out = new Uint8Array(BANNER_BYTES);
  out.set(BANNER_MAGIC, 0);
  const v = new DataView(out.buffer);
  v.setUint16(8, minVersion, true);
  v.setUint16(10, maxVersion, true);
  v.setUint32(12, 0, true);
  assert(out.length === BANNER_BYTES, 'banner size');
  return out;
}

/**
 * The protocol version both sides speak: the highest in the intersection of the ranges.
 * @throws AspenError E_UNSUPPORTED when the ranges do not overlap.
 */
export function negotiateVersion(local: { minVersion: number; maxVersion: number }, peer: Banner): number {
  assert(local.minVersion <= local.maxVersion, 'local version range');
  const v = Math.min(local.maxVersion, peer.maxVersion);
  if (v < Math.max(local.minVersion, peer.minVersion) || v < 1) {
    throw new AspenError('E_UNSUPPORTED', `no common messenger protocol version: local ${local.minVersion}..${local.maxVersion}, peer ${peer.minVersion}..${peer.maxVersion}`);
  }
  assert(v >= local.minVersion && v <= local.maxVersion, 'negotiated version in local range');
  return v;
}

/**
 * Encodes a frame as the byte pieces to write, in order: the header (with meta, and with data
 * when it is at most {@link MSGR_COALESCE_MAX_BYTES}, coalesced into the same buffer), then the
 * data segment itself when larger (never copied: the caller must not modify it until written).
 * @param payloadCrc compute and set the payload crc32c (flag PAYLOAD_CRC).
 * @throws AspenError EINVAL when the meta or whole frame exceeds the limits.
 */
export function encodeFrame(
  frame: Frame,
  payloadCrc: boolean,
  version = MSGR_PROTOCOL_VERSION_MAX,
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
  dataCrc?: (data: Uint8Array) => number,
): Uint8Array[] {
  assert(frame.type >= 1 && frame.type <= FRAME_TYPE_MAX, `bad frame type ${frame.type}`);
  assert((frame.flags & ~KNOWN_FLAGS) === 0 && Number.isInteger(frame.msgType) && frame.msgType >= 0 && frame.msgType <= 0xffff, 'bad flags or message type');
  assert(frame.reqId >= 0n && frame.reqId <= 0xffffffffffffffffn, 'request id out of u64 range');
  const metaLen = frame.meta.length;
  const dataLen = frame.data.length;
  if (metaLen > limits.metaMaxBytes) throw new AspenError('EINVAL', `meta segment of ${metaLen} bytes exceeds the limit of ${limits.metaMaxBytes}`);
  if (metaLen + dataLen > limits.frameMaxBytes) throw new AspenError('EINVAL', `frame of ${metaLen + dataLen} bytes exceeds the limit of ${limits.frameMaxBytes}`);
  const coalesce = dataLen <= MSGR_COALESCE_MAX_BYTES;
  // Every byte of `head` is written below, so uninitialised memory is safe.
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES + metaLen + (coalesce ? dataLen : 0));
  const v = new DataView(head.buffer, head.byteOffset, FRAME_HEADER_BYTES);
  let flags = frame.flags & ~FrameFlag.PAYLOAD_CRC;
  let crc = 0;
  if (payloadCrc) {
    flags |= FrameFlag.PAYLOAD_CRC;
    // crc(meta ‖ data) = combine(crc(meta), crc(data)): a data segment sent to several peers
    // (a repop to every replica) is checksummed once by a caller-supplied cache, not once per frame.
    crc = dataCrc === undefined || dataLen === 0 ? crc32c(frame.data, crc32c(frame.meta)) : crc32cCombine(crc32c(frame.meta), dataCrc(frame.data), dataLen);
  }
  v.setUint16(0, FRAME_MAGIC, true);
  v.setUint8(2, version);
  v.setUint8(3, frame.type);
  v.setUint8(4, flags);
  v.setUint8(5, 0);
  v.setUint16(6, frame.msgType, true);
  v.setBigUint64(8, frame.reqId, true);
  v.setUint32(16, metaLen, true);
  v.setUint32(20, dataLen, true);
  v.setUint32(24, crc, true);
  v.setUint32(28, crc32c(head.subarray(0, 28)), true);
  head.set(frame.meta, FRAME_HEADER_BYTES);
  if (coalesce) {
    head.set(frame.data, FRAME_HEADER_BYTES + metaLen);
    return [head];
  }
  return [head, frame.data];
}

/** GF(2) 32x32 matrix (as 32 column words) times vector. */
function gf2MatrixTimes(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if ((vec & 1) !== 0) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2MatrixSquare(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2MatrixTimes(mat, mat[n]!);
}

/**
 * crc32c of A ‖ B from crc32c(A), crc32c(B) and B's length (zlib's crc32_combine, with the
 * Castagnoli polynomial): O(log lenB) 32x32 GF(2) matrix squarings, a few µs, instead of
 * reading B's bytes again.
 */
export function crc32cCombine(crcA: number, crcB: number, lenB: number): number {
  assert(Number.isSafeInteger(lenB) && lenB >= 0, 'crc32cCombine: bad length');
  if (lenB === 0) return crcA >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  // The operator for one zero bit (reflected Castagnoli polynomial), squared to 2 and 4 bits.
  odd[0] = 0x82f63b78;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  gf2MatrixSquare(even, odd);
  gf2MatrixSquare(odd, even);
  let crc1 = crcA >>> 0;
  let len = lenB;
  // Apply len zero bytes to crc1: the first squaring gives the one-byte operator.
  do {
    gf2MatrixSquare(even, odd);
    if ((len & 1) !== 0) crc1 = gf2MatrixTimes(even, crc1);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2MatrixSquare(odd, even);
    if ((len & 1) !== 0) crc1 = gf2MatrixTimes(odd, crc1);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return (crc1 ^ crcB) >>> 0;
}

interface PendingHeader {
  type: FrameType;
  flags: number;
  msgType: number;
  reqId: bigint;
  metaLen: number;
  dataLen: number;
  crc: number;
}

type DecoderState = 'banner' | 'header' | 'meta' | 'data' | 'failed';

/**
 * Incremental decoder of one direction of a connection: feed it the received chunks in order
 * ({@link push}); it returns the banner (first, when `expectBanner`) and every frame completed.
 *
 * Zero copy where possible: a segment lying wholly inside one chunk is a `subarray` of it (so
 * chunks must not be reused by the caller); a segment spanning chunks is copied once into a
 * buffer of exactly its size, allocated when its header has been validated. The decoder never
 * writes to a segment it has handed on, so a receiver may keep it without copying (the OSD
 * keeps 4 MiB repop data segments that own their whole buffer).
 */
export class FrameDecoder {
  private state: DecoderState;
  private readonly headerBuf = new Uint8Array(Math.max(FRAME_HEADER_BYTES, BANNER_BYTES));
  private headerFill = 0;
  private cur: PendingHeader | undefined;
  private meta: Uint8Array = EMPTY;
  private seg: Uint8Array | undefined;
  private segFill = 0;
  /** Running crc32c of the current frame's payload bytes received so far (when flagged). */
  private crcRun = 0;
  private failure: AspenError | undefined;
  /** The negotiated protocol version (set from the banner, or given). */
  version: number;

  constructor(
    private limits: FrameLimits = DEFAULT_FRAME_LIMITS,
    expectBanner = true,
    private readonly localRange = { minVersion: MSGR_PROTOCOL_VERSION_MIN, maxVersion: MSGR_PROTOCOL_VERSION_MAX },
  ) {
    this.state = expectBanner ? 'banner' : 'header';
    this.version = localRange.maxVersion;
  }

  /** Changes the limits for frames whose header has not been parsed yet (e.g. raised after the handshake). */
  setLimits(limits: FrameLimits): void {
    assert(limits.metaMaxBytes >= 0 && limits.frameMaxBytes >= limits.metaMaxBytes, 'bad frame limits');
    this.limits = limits;
  }

  /** True after a protocol error: the decoder accepts nothing more. */
  get failed(): boolean {
    return this.state === 'failed';
  }

  /**
   * Consumes `chunk` (any length, including 0) and returns what it completed, in order.
   * @throws AspenError E_DECODE (details.reason: magic, version, type, flags, header_crc,
   *   oversized, payload_crc, banner) or E_UNSUPPORTED (no common version); the decoder is
   *   then failed and every later call throws the same error.
   */
  push(chunk: Uint8Array, out: Array<Frame | Banner> = []): Array<Frame | Banner> {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.consume(chunk, out);
    } catch (err) {
      assert(err instanceof AspenError, `decoder threw a non-AspenError: ${String(err)}`);
      this.state = 'failed';
      this.failure = err;
      throw err;
    }
    return out;
  }

  private consume(chunk: Uint8Array, out: Array<Frame | Banner>): void {
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      switch (this.state) {
        case 'banner': {
          const take = Math.min(BANNER_BYTES - this.headerFill, n - off);
          this.headerBuf.set(chunk.subarray(off, off + take), this.headerFill);
          this.headerFill += take;
          off += take;
          if (this.headerFill === BANNER_BYTES) {
            this.headerFill = 0;
            out.push(this.parseBanner(this.headerBuf));
            this.state = 'header';
          }
          break;
        }
        case 'header': {
          if (this.headerFill === 0 && n - off >= FRAME_HEADER_BYTES) {
            this.parseHeader(chunk, off);
            off += FRAME_HEADER_BYTES;
          } else {
            const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, n - off);
            this.headerBuf.set(chunk.subarray(off, off + take), this.headerFill);
            this.headerFill += take;
            off += take;
            if (this.headerFill < FRAME_HEADER_BYTES) break;
            this.headerFill = 0;
            this.parseHeader(this.headerBuf, 0);
          }
          this.afterSegment(out);
          break;
        }
        case 'meta':
        case 'data': {
          const cur = this.cur;
          assert(cur !== undefined, 'segment without a header');
          const len = this.state === 'meta' ? cur.metaLen : cur.dataLen;
          let done: Uint8Array | undefined;
          const withCrc = (cur.flags & FrameFlag.PAYLOAD_CRC) !== 0;
          if (this.seg === undefined && n - off >= len) {
            done = chunk.subarray(off, off + len);
            if (withCrc) this.crcRun = crc32c(done, this.crcRun);
            off += len;
          } else {
            // Uninitialised memory is safe here: the segment is handed on only once every byte is written.
            this.seg ??= Buffer.allocUnsafe(len);
            const take = Math.min(len - this.segFill, n - off);
            const piece = chunk.subarray(off, off + take);
            // The crc runs per piece while the bytes are hot in cache, not over the whole segment at the end.
            if (withCrc) this.crcRun = crc32c(piece, this.crcRun);
            this.seg.set(piece, this.segFill);
            this.segFill += take;
            off += take;
            if (this.segFill === len) done = this.seg;
          }
          if (done === undefined) break;
          assert(done.length === len, 'segment length');
          this.seg = undefined;
          this.segFill = 0;
          if (this.state === 'meta') {
            this.meta = done;
            this.state = cur.dataLen > 0 ? 'data' : 'header';
            if (cur.dataLen === 0) this.finish(EMPTY, out);
          } else {
            this.state = 'header';
            this.finish(done, out);
          }
          break;
        }
        case 'failed':
          throw this.failure ?? protocolError('failed', 'decoder already failed');
      }
    }
  }

  /** After a header: go to the first non-empty segment, or finish an empty frame. */
  private afterSegment(out: Array<Frame | Banner>): void {
    const cur = this.cur;
    assert(cur !== undefined && this.state === 'header', 'afterSegment state');
    if (cur.metaLen > 0) this.state = 'meta';
    else if (cur.dataLen > 0) {
      this.meta = EMPTY;
      this.state = 'data';
    } else {
      this.meta = EMPTY;
      this.finish(EMPTY, out);
    }
  }

  private finish(data: Uint8Array, out: Array<Frame | Banner>): void {
    const cur = this.cur;
    assert(cur !== undefined, 'finish without a header');
    const meta = this.meta;
    if ((cur.flags & FrameFlag.PAYLOAD_CRC) !== 0) {
      const crc = this.crcRun;
      if (crc !== cur.crc) throw protocolError('payload_crc', `payload crc32c mismatch on request ${cur.reqId}: header says ${cur.crc.toString(16)}, payload has ${crc.toString(16)}`);
    }
    out.push({ type: cur.type, flags: cur.flags & ~FrameFlag.PAYLOAD_CRC, msgType: cur.msgType, reqId: cur.reqId, meta, data });
    this.cur = undefined;
    this.meta = EMPTY;
  }

  private parseBanner(buf: Uint8Array): Banner {
    for (let i = 0; i < BANNER_MAGIC.length; i++) {
      if (buf[i] !== BANNER_MAGIC[i]) throw protocolError('banner', 'bad banner magic (not an Aspen messenger peer)');
    }
    const v = new DataView(buf.buffer, buf.byteOffset, BANNER_BYTES);
    const banner: Banner = { minVersion: v.getUint16(8, true), maxVersion: v.getUint16(10, true), features: v.getUint32(12, true) };
    if (banner.minVersion > banner.maxVersion) throw protocolError('banner', `bad banner version range ${banner.minVersion}..${banner.maxVersion}`);
    this.version = negotiateVersion(this.localRange, banner);
    return banner;
  }

  private parseHeader(buf: Uint8Array, off: number): void {
    const v = new DataView(buf.buffer, buf.byteOffset + off, FRAME_HEADER_BYTES);
    if (v.getUint16(0, true) !== FRAME_MAGIC) throw protocolError('magic', `bad frame magic 0x${v.getUint16(0, true).toString(16)}`);
    const headerCrc = crc32c(buf.subarray(off, off + 28));
    if (headerCrc !== v.getUint32(28, true)) throw protocolError('header_crc', 'frame header crc32c mismatch');
    const version = v.getUint8(2);
    if (version !== this.version) throw protocolError('version', `frame version ${version}, negotiated ${this.version}`);
    const type = v.getUint8(3);
    if (type < 1 || type > FRAME_TYPE_MAX) throw protocolError('type', `unknown frame type ${type}`);
    const flags = v.getUint8(4);
    if ((flags & ~KNOWN_FLAGS) !== 0 || v.getUint8(5) !== 0) throw protocolError('flags', `unknown frame flags 0x${flags.toString(16)}`);
    const metaLen = v.getUint32(16, true);
    const dataLen = v.getUint32(20, true);
    if (metaLen > this.limits.metaMaxBytes || metaLen + dataLen > this.limits.frameMaxBytes) {
      throw protocolError('oversized', `frame of ${metaLen}+${dataLen} bytes exceeds the limits (meta ${this.limits.metaMaxBytes}, frame ${this.limits.frameMaxBytes})`);
    }
    const crc = v.getUint32(24, true);
    if ((flags & FrameFlag.PAYLOAD_CRC) === 0 && crc !== 0) throw protocolError('flags', 'payload crc set without its flag');
    this.crcRun = 0;
    this.cur = { type: type as FrameType, flags, msgType: v.getUint16(6, true), reqId: v.getBigUint64(8, true), metaLen, dataLen, crc };
  }
}

/** True when a decoder output is the banner (not a frame). */
export function isBanner(x: Frame | Banner): x is Banner {
  return (x as Partial<Frame>).type === undefined;
}
