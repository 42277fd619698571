/**
 * A request body as an async stream of payload bytes, whatever its encoding: plain (with
 * its SHA-256 checked when signed), or aws-chunked (signed chunks or unsigned with
 * trailers). While streaming it computes the MD5 (the ETag) and the declared additional
 * checksum; every check (Content-MD5, x-amz-content-sha256, chunk signatures, checksum
 * header or trailer, decoded length) runs before the iterator finishes, so a consumer that
 * commits only after a complete iteration never commits a bad body.
 */
import { createHash } from 'node:crypto';
import { AwsChunkedDecoder } from '../auth/chunked.ts';
import { algorithmOfHeader, newChecksummer, type ChecksumAlgorithm, type Checksummer } from '../auth/checksum.ts';
import type { PayloadMode, VerifiedAuth } from '../auth/sigv4.ts';
import { S3Error } from '../core/errors.ts';

/** Largest single PUT / part (S3: 5 GiB). */
export const PUT_BYTES_MAX = 5 * 1024 ** 3;

export interface BodyResult {
  sizeBytes: number;
  md5Hex: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

type Headers = ReadonlyMap<string, string[]>;
const one = (h: Headers, n: string): string | undefined => h.get(n)?.join(',');

export class RequestBody implements AsyncIterable<Uint8Array> {
  private res: BodyResult | null = null;

  constructor(private readonly src: AsyncIterable<Uint8Array>, private readonly headers: Headers, private readonly auth: VerifiedAuth | null) {}

  /** Available after a complete iteration. */
  get result(): BodyResult {
    if (this.res === null) throw new S3Error('IncompleteBody', 'body not read');
    return this.res;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const h = this.headers;
    const mode: PayloadMode = this.auth?.payload ?? { kind: 'unsigned' };
    const md5 = createHash('md5');
    const sha = mode.kind === 'sha256' ? createHash('sha256') : null;
    // The declared checksum: a header value now, or a trailer named by x-amz-trailer.
    let headerChecksum: { algorithm: ChecksumAlgorithm; value: string } | null = null;
    for (const [name, v] of h) {
      const a = algorithmOfHeader(name);
      if (a !== null) headerChecksum = { algorithm: a, value: v.join(',') };
    }
    const trailerName = one(h, 'x-amz-trailer')?.trim().toLowerCase();
    const trailerAlg = trailerName === undefined ? null : algorithmOfHeader(trailerName);
    if (trailerName !== undefined && trailerAlg === null) throw new S3Error('InvalidRequest', `unsupported x-amz-trailer '${trailerName}'`);
    const alg = headerChecksum?.algorithm ?? trailerAlg;
    const sum: Checksummer | null = alg === null ? null : newChecksummer(alg);
    const chunked = mode.kind === 'streaming-signed' || mode.kind === 'streaming-unsigned-trailer';
    const decoder = !chunked ? null : new AwsChunkedDecoder(mode.kind === 'streaming-signed'
      ? { key: this.auth!.signingKey, amzDate: this.auth!.amzDate, scope: this.auth!.scope, seedSignature: this.auth!.seedSignature }
      : null);
    let size = 0;
    const take = (p: Uint8Array): Uint8Array => {
      md5.update(p);
      sha?.update(p);
      sum?.update(p);
      size += p.length;
      if (size > PUT_BYTES_MAX) throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.');
      return p;
    };
    for await (const buf of this.src) {
      if (decoder === null) yield take(buf);
      else for (const p of decoder.push(buf)) yield take(p);
    }
    decoder?.end();

    const decodedLen = one(h, 'x-amz-decoded-content-length');
    if (chunked && decodedLen !== undefined && Number(decodedLen) !== size) throw new S3Error('IncompleteBody', `x-amz-decoded-content-length is ${decodedLen} but the body decoded to ${size} bytes`);
    if (!chunked) {
      const cl = one(h, 'content-length');
      if (cl !== undefined && Number(cl) !== size) throw new S3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.');
    }
    const md5Bytes = md5.digest();
    const contentMd5 = one(h, 'content-md5');
    if (contentMd5 !== undefined) {
      if (!/^[A-Za-z0-9+/]{22}==$/.test(contentMd5.trim())) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.');
      if (Buffer.from(contentMd5.trim(), 'base64').compare(md5Bytes) !== 0) throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    if (sha !== null && mode.kind === 'sha256' && sha.digest('hex') !== mode.hex) {
      throw new S3Error('XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.');
    }
    let checksum: BodyResult['checksum'];
    if (sum !== null && alg !== null) {
      const got = sum.digest();
      const declared = headerChecksum?.value ?? decoder?.trailers.get(trailerName ?? '');
      if (declared === undefined) throw new S3Error('InvalidRequest', `the ${trailerName} trailer is missing`);
      if (declared !== got) throw new S3Error('BadDigest', `The ${alg.toUpperCase()} you specified did not match the calculated checksum.`);
      checksum = { algorithm: alg, value: got };
    }
    this.res = { sizeBytes: size, md5Hex: md5Bytes.toString('hex'), ...(checksum === undefined ? {} : { checksum }) };
  }
}

/** Reads a small body whole (XML requests), through the same checks. @throws S3Error EntityTooLarge */
export async function readSmallBody(body: RequestBody, maxBytes: number): Promise<string> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of body) {
    n += p.length;
    if (n > maxBytes) throw new S3Error('EntityTooLarge', `request body exceeds ${maxBytes} bytes`);
    parts.push(Buffer.from(p));
  }
  return Buffer.concat(parts).toString('utf8');
}
