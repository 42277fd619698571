/**
 * The aws-chunked decoder: properties over random payloads, chunk sizes and split points
 * (decode(encode(x)) = x for every variant; any single-byte corruption of a signed body is
 * refused; truncation is refused), and the additional checksums' known values.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AwsChunkedDecoder, encodeAwsChunked, type ChunkSigning } from '../src/auth/chunked.ts';
import { newChecksummer } from '../src/auth/checksum.ts';
import { signingKey } from '../src/auth/sigv4.ts';
import { S3Error } from '../src/core/errors.ts';

const SIGNING: ChunkSigning = { key: signingKey('secretsecretsecret', '20250101', 'us-east-1', 's3'), amzDate: '20250101T000000Z', scope: '20250101/us-east-1/s3/aws4_request', seedSignature: 'a'.repeat(64) };

/** Whether byte `i` of an aws-chunked body lies in a chunk's hex size or in a trailer's name. */
function inCaseInsensitiveToken(body: Buffer, i: number): boolean {
  const text = body.toString('latin1');
  for (const m of text.matchAll(/(?:^|\r\n)([0-9a-fA-F]+);chunk-signature=/g)) {
    const start = m.index + m[0].indexOf(m[1]!);
    if (i >= start && i < start + m[1]!.length) return true;
  }
  for (const name of ['x-amz-checksum-sha256', 'x-amz-trailer-signature']) {
    const at = text.lastIndexOf(`\r\n${name}:`);
    if (at >= 0 && i >= at + 2 && i < at + 2 + name.length) return true;
  }
  return false;
}

function decodeInPieces(body: Buffer, cuts: number[], signing: ChunkSigning | null): { data: Buffer; trailers: Map<string, string> } {
  const dec = new AwsChunkedDecoder(signing);
  const out: Uint8Array[] = [];
  const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, body.length]) {
    out.push(...dec.push(body.subarray(prev, p)).map((x) => Buffer.from(x)));
    prev = p;
  }
  dec.end();
  return { data: Buffer.concat(out), trailers: dec.trailers };
}

describe('aws-chunked decoder', () => {
  it('property: decode(encode(data)) = data and trailers for any chunk size and split points, signed or not', () => {
    fc.assert(fc.property(
      fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), fc.boolean(),
      (data, chunk, cuts, signed, withTrailer) => {
        const trailers: [string, string][] = withTrailer ? [['x-amz-checksum-crc32', newChecksum('crc32', data)]] : [];
        const body = encodeAwsChunked(data, chunk, signed ? SIGNING : null, trailers);
        const r = decodeInPieces(body, cuts, signed ? SIGNING : null);
        expect(Buffer.compare(r.data, Buffer.from(data))).toBe(0);
        expect([...r.trailers]).toEqual(trailers);
      },
    ), { numRuns: 300 });
  });

  it('property: flipping any byte of a signed body (data, sizes, signatures, trailers) is refused', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.integer({ min: 1, max: 200 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (data, chunk, at, x) => {
      const body = encodeAwsChunked(data, chunk, SIGNING, [['x-amz-checksum-sha256', newChecksum('sha256', data)]]);
      const i = at % body.length;
      // Changing only the case of a letter in a case-insensitive token — a chunk's hex size
      // (HTTP chunked) or a trailer's name (HTTP field names) — is the same body, not a flip.
      fc.pre(!(x === 0x20 && /[a-zA-Z]/.test(String.fromCharCode(body[i]!)) && inCaseInsensitiveToken(body, i)));
      body[i] = body[i]! ^ x;
      expect(() => decodeInPieces(body, [], SIGNING)).toThrow(S3Error);
    }), { numRuns: 300 });
  });

  it('property: a truncated body is refused (IncompleteBody)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 500 }), fc.integer({ min: 1, max: 100 }), fc.nat(), (data, chunk, cut) => {
      const body = encodeAwsChunked(data, chunk, null, [['x-amz-checksum-crc32', newChecksum('crc32', data)]]);
      const n = cut % body.length;
      let code = '';
      try {
        decodeInPieces(body.subarray(0, n), [], null);
      } catch (err) {
        code = (err as S3Error).code;
      }
      expect(code).toBe('IncompleteBody');
    }), { numRuns: 200 });
  });

  it('decodes the body the AWS SDK sends for STREAMING-UNSIGNED-PAYLOAD-TRAILER', () => {
    const body = Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n');
    const r = decodeInPieces(body, [3, 9], null);
    expect(r.data.toString()).toBe('hello');
    expect(r.trailers.get('x-amz-checksum-crc32')).toBe(newChecksum('crc32', Buffer.from('hello')));
  });
});

function newChecksum(a: 'crc32' | 'crc32c' | 'sha1' | 'sha256', data: Uint8Array): string {
  const c = newChecksummer(a);
  c.update(data);
  return c.digest();
}

describe('additional checksums', () => {
  it('match the known check values of "123456789"', () => {
    const d = Buffer.from('123456789');
    expect(Buffer.from(newChecksum('crc32', d), 'base64').toString('hex')).toBe('cbf43926');
    expect(Buffer.from(newChecksum('crc32c', d), 'base64').toString('hex')).toBe('e3069283');
    expect(Buffer.from(newChecksum('sha1', d), 'base64').toString('hex')).toBe('f7c3bc1d808e04732adf679965ccc34ca7ae3441');
  });
});
