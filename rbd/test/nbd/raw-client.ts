/**
 * A hand-written NBD client for tests: speaks the handshake and transmission byte by byte
 * (with the codec's client-side half) so tests can send what real clients never would.
 */
import net from 'node:net';
import { SocketStream } from '../../src/io/nbd-server.ts';
import * as codec from '../../src/nbd/codec.ts';
import {
  BASE_ALLOCATION,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_OPT_GO,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_INFO,
  NBD_REPLY_FLAG_DONE,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
} from '../../src/nbd/protocol.ts';

export interface OptionReply {
  option: number;
  replyType: number;
  data: Uint8Array;
}

/** A reply as received: simple (with data for a successful read) or the chunks of a structured one. */
export type RawReply =
  | { kind: 'simple'; cookie: bigint; error: number; data: Uint8Array | undefined }
  | { kind: 'structured'; cookie: bigint; chunks: { flags: number; type: number; payload: Uint8Array }[] };

export class RawClient {
  readonly stream: SocketStream;
  transmissionFlags = 0;
  structured = false;
  /** Read lengths by cookie, to know how much data follows a successful simple read reply. */
  private readLengths = new Map<bigint, number>();

  private constructor(readonly socket: net.Socket) {
    this.stream = new SocketStream(socket);
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  async read(n: number): Promise<Uint8Array> {
    const bytes = await this.stream.readExact(n);
    if (bytes === undefined) throw new Error('server closed the connection');
    return bytes;
  }

  /** Resolves true once the server closed the connection (reads hit EOF). */
  async closedByServer(): Promise<boolean> {
    for (;;) if ((await this.stream.readExact(1)) === undefined) return true;
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  async hello(clientFlags = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES): Promise<number> {
    const flags = codec.decodeHello(await this.read(18));
    this.send(codec.encodeClientFlags(clientFlags));
    return flags;
  }

  async option(option: number, data?: Uint8Array): Promise<OptionReply[]> {
    this.send(codec.encodeOption(option, data));
    const replies: OptionReply[] = [];
    for (;;) {
      const h = codec.decodeOptionReplyHeader(await this.read(20));
      const reply = { option: h.option, replyType: h.replyType, data: await this.read(h.lengthBytes) };
      replies.push(reply);
      if (h.replyType === NBD_REP_ACK || (h.replyType & 0x80000000) !== 0) return replies;
    }
  }

  /** Full handshake into transmission; returns the GO replies. */
  async attach(exportName: string, opts: { structured?: boolean; meta?: boolean } = {}): Promise<OptionReply[]> {
    await this.hello();
    if (opts.structured ?? true) {
      await this.option(NBD_OPT_STRUCTURED_REPLY);
      this.structured = true;
      if (opts.meta ?? true) await this.option(NBD_OPT_SET_META_CONTEXT, codec.encodeMetaContextRequest({ exportName, queries: [BASE_ALLOCATION] }));
    }
    const replies = await this.option(NBD_OPT_GO, codec.encodeInfoRequest({ exportName, infoRequests: [3] }));
    const last = replies[replies.length - 1]!;
    if (last.replyType !== NBD_REP_ACK) throw new Error(`GO failed: 0x${last.replyType.toString(16)}`);
    for (const r of replies) {
      if (r.replyType !== NBD_REP_INFO) continue;
      const info = codec.decodeInfo(r.data);
      if (info.kind === 'export') this.transmissionFlags = info.transmissionFlags;
    }
    return replies;
  }

  request(req: { type: number; flags?: number; cookie: bigint; offset?: bigint; length?: number }, payload?: Uint8Array): void {
    const header = { flags: req.flags ?? 0, type: req.type, cookie: req.cookie, offset: req.offset ?? 0n, length: req.length ?? payload?.length ?? 0 };
    if (req.type === 0) this.readLengths.set(req.cookie, header.length);
    this.send(payload === undefined ? codec.encodeRequestHeader(header) : Buffer.concat([codec.encodeRequestHeader(header), payload]));
  }

  /** Reads one complete reply (all chunks up to DONE for structured replies). */
  async reply(): Promise<RawReply> {
    const first = await this.read(4);
    const magic = new DataView(first.buffer, first.byteOffset, 4).getUint32(0);
    if (magic === NBD_SIMPLE_REPLY_MAGIC) {
      const h = codec.decodeSimpleReply(Buffer.concat([first, await this.read(12)]));
      const length = this.readLengths.get(h.cookie);
      this.readLengths.delete(h.cookie);
      const data = h.error === 0 && length !== undefined && !this.structured ? await this.read(length) : undefined;
      return { kind: 'simple', cookie: h.cookie, error: h.error, data };
    }
    if (magic !== NBD_STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    const chunks: { flags: number; type: number; payload: Uint8Array }[] = [];
    let headerBytes: Uint8Array = Buffer.concat([first, await this.read(16)]);
    for (;;) {
      const h = codec.decodeChunkHeader(headerBytes);
      chunks.push({ flags: h.flags, type: h.type, payload: await this.read(h.lengthBytes) });
      if ((h.flags & NBD_REPLY_FLAG_DONE) !== 0) return { kind: 'structured', cookie: h.cookie, chunks };
      headerBytes = await this.read(20);
    }
  }

  /** Error value of a reply (0 on success); structured errors come from the ERROR chunk. */
  static errorOf(reply: RawReply): number {
    if (reply.kind === 'simple') return reply.error;
    const err = reply.chunks.find((c) => (c.type & 0x8000) !== 0);
    return err === undefined ? 0 : codec.decodeErrorPayload(err.payload).error;
  }

  close(): void {
    this.socket.destroy();
  }
}
