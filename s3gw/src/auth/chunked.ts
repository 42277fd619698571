/**
 * Decoder of `Content-Encoding: aws-chunked` bodies (AWS docs "sigv4-streaming",
 * "sigv4-streaming-trailers"): `hex-size[;chunk-signature=SIG]\r\n DATA \r\n` … a zero-size
 * chunk, then optional trailing headers `name:value\r\n` (with `x-amz-trailer-signature` for
 * the signed variant) and an empty line. A pure push parser: bytes in, decoded data out;
 * every chunk signature (and the trailer signature) is verified when its chunk ends, so a
 * body is accepted only if the whole chain verified — callers must not make data visible
 * before `end()` returns.
 */
import { createHash, type Hash } from 'node:crypto';
import { assert } from '@aspen/shared';
import { S3Error } from '../core/errors.ts';
import { chunkSignature, sameSignature, trailerSignature } from './sigv4.ts';

/** Longest chunk header or trailer line (named limit). */
export const CHUNK_LINE_MAX_BYTES = 4096;
/** Most trailing headers. */
export const TRAILERS_MAX = 16;
/** Largest chunk size we accept (S3 SDKs use 64 KiB to a few MiB). */
export const CHUNK_SIZE_MAX_BYTES = 64 * 1024 * 1024;

/** Chunk signing context; absent for the unsigned variant. */
export interface ChunkSigning {
  key: Buffer;
  amzDate: string;
  scope: string;
  seedSignature: string;
}

type State = 'header' | 'data' | 'data-crlf' | 'trailer' | 'done';

export class AwsChunkedDecoder {
  private state: State = 'header';
  private line: number[] = [];
  private remaining = 0;
  private crlfSeen = 0;
  private chunkHash: Hash | null = null;
  private chunkSig = '';
  private prevSig: string;
  private readonly trailerLines: string[] = [];
  private decodedBytes = 0;
  /** Trailing headers, lower-case names. Valid after `end()`. */
  readonly trailers = new Map<string, string>();

  constructor(private readonly signing: ChunkSigning | null) {
    this.prevSig = signing?.seedSignature ?? '';
  }

  /** Total decoded payload bytes so far. */
  get bytes(): number {
    return this.decodedBytes;
  }

  /**
   * Feeds encoded bytes; returns the decoded data they contain (views into `buf`).
   * @throws S3Error IncompleteBody/InvalidRequest on malformed framing, SignatureDoesNotMatch on a bad chunk signature
   */
  push(buf: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case 'header':
        case 'trailer': {
          const b = buf[i++]!;
          if (b === 0x0a) {
            const text = Buffer.from(this.line).toString('latin1');
            this.line = [];
            if (!text.endsWith('\r')) throw new S3Error('IncompleteBody', 'aws-chunked: line not terminated by CRLF');
            this.onLine(text.slice(0, -1));
          } else {
            this.line.push(b);
            if (this.line.length > CHUNK_LINE_MAX_BYTES) throw new S3Error('IncompleteBody', 'aws-chunked: header line too long');
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, buf.length - i);
          const piece = buf.subarray(i, i + n);
          this.chunkHash?.update(piece);
          out.push(piece);
          this.decodedBytes += n;
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) {
            this.state = 'data-crlf';
            this.crlfSeen = 0;
          }
          break;
        }
        case 'data-crlf': {
          const b = buf[i++]!;
          if (b !== (this.crlfSeen === 0 ? 0x0d : 0x0a)) throw new S3Error('IncompleteBody', 'aws-chunked: chunk data not followed by CRLF');
          if (++this.crlfSeen === 2) {
            this.finishChunk();
            this.state = 'header';
          }
          break;
        }
        case 'done':
          throw new S3Error('IncompleteBody', 'aws-chunked: bytes after the end of the body');
      }
    }
    return out;
  }

  private onLine(text: string): void {
    if (this.state === 'header') {
      const m = /^([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(text);
      if (!m) throw new S3Error('IncompleteBody', `aws-chunked: malformed chunk header '${text.slice(0, 80)}'`);
      const size = parseInt(m[1]!, 16);
      if (size > CHUNK_SIZE_MAX_BYTES) throw new S3Error('InvalidRequest', `aws-chunked: chunk of ${size} bytes exceeds ${CHUNK_SIZE_MAX_BYTES}`);
      if (this.signing !== null && m[2] === undefined) throw new S3Error('SignatureDoesNotMatch', 'aws-chunked: chunk signature missing');
      this.chunkSig = m[2] ?? '';
      this.chunkHash = this.signing !== null ? createHash('sha256') : null;
      if (size === 0) {
        this.finishChunk();
        this.state = 'trailer';
      } else {
        this.remaining = size;
        this.state = 'data';
      }
      return;
    }
    assert(this.state === 'trailer', 'line outside header/trailer');
    if (text === '') {
      this.finishTrailers();
      this.state = 'done';
      return;
    }
    if (this.trailerLines.length >= TRAILERS_MAX) throw new S3Error('InvalidRequest', 'aws-chunked: too many trailing headers');
    this.trailerLines.push(text);
  }

  private finishChunk(): void {
    if (this.signing === null) return;
    const s = this.signing;
    const expected = chunkSignature(s.key, s.amzDate, s.scope, this.prevSig, this.chunkHash!.digest('hex'));
    if (!sameSignature(expected, this.chunkSig)) throw new S3Error('SignatureDoesNotMatch', 'aws-chunked: a chunk signature does not match');
    this.prevSig = expected;
  }

  private finishTrailers(): void {
    let trailerSig: string | undefined;
    let canonical = '';
    for (const l of this.trailerLines) {
      const c = l.indexOf(':');
      if (c <= 0) throw new S3Error('IncompleteBody', `aws-chunked: malformed trailing header '${l.slice(0, 80)}'`);
      const name = l.slice(0, c).trim().toLowerCase();
      const value = l.slice(c + 1).trim();
      if (name === 'x-amz-trailer-signature') trailerSig = value;
      else {
        this.trailers.set(name, value);
        canonical += `${name}:${value}\n`;
      }
    }
    if (this.signing !== null && this.trailers.size > 0) {
      const s = this.signing;
      if (trailerSig === undefined) throw new S3Error('SignatureDoesNotMatch', 'aws-chunked: trailer signature missing');
      const expected = trailerSignature(s.key, s.amzDate, s.scope, this.prevSig, canonical);
      if (!sameSignature(expected, trailerSig)) throw new S3Error('SignatureDoesNotMatch', 'aws-chunked: the trailer signature does not match');
    }
  }

  /**
   * Declares the end of the encoded body.
   * @throws S3Error IncompleteBody when the final chunk or the trailer section is missing
   */
  end(): void {
    if (this.state !== 'done') throw new S3Error('IncompleteBody', 'aws-chunked: the body ended before its final chunk');
  }
}

/** Encodes `data` as aws-chunked (for tests and clients): `chunkSize` pieces, optional signing and trailers. */
export function encodeAwsChunked(data: Uint8Array, chunkSize: number, signing: ChunkSigning | null, trailers: [string, string][] = []): Buffer {
  const parts: Buffer[] = [];
  let prev = signing?.seedSignature ?? '';
  const chunk = (piece: Uint8Array): void => {
    let ext = '';
    if (signing !== null) {
      prev = chunkSignature(signing.key, signing.amzDate, signing.scope, prev, createHash('sha256').update(piece).digest('hex'));
      ext = `;chunk-signature=${prev}`;
    }
    parts.push(Buffer.from(`${piece.length.toString(16)}${ext}\r\n`, 'latin1'));
    if (piece.length > 0) parts.push(Buffer.from(piece), Buffer.from('\r\n'));
  };
  for (let off = 0; off < data.length; off += chunkSize) chunk(data.subarray(off, Math.min(data.length, off + chunkSize)));
  chunk(new Uint8Array(0));
  for (const [k, v] of trailers) parts.push(Buffer.from(`${k}:${v}\r\n`, 'latin1'));
  if (signing !== null && trailers.length > 0) {
    const sig = trailerSignature(signing.key, signing.amzDate, signing.scope, prev, trailers.map(([k, v]) => `${k}:${v}\n`).join(''));
    parts.push(Buffer.from(`x-amz-trailer-signature:${sig}\r\n`, 'latin1'));
  }
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}
