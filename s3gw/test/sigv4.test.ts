/**
 * SigV4 verification against the examples published in the AWS S3 API reference
 * (sig-v4-header-based-auth "Examples", sigv4-query-string-auth, sigv4-streaming
 * "Example: PUT Object"), plus refusals: wrong secret, skew, expiry.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AwsChunkedDecoder } from '../src/auth/chunked.ts';
import { chunkSignature, parseAuth, signingKey, verifyAuth, type SigningRequest } from '../src/auth/sigv4.ts';
import { S3Error } from '../src/core/errors.ts';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const T = Date.UTC(2013, 4, 24);
const CRED = 'AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request';

function req(method: string, rawPath: string, query: [string, string][], headers: Record<string, string>): SigningRequest {
  return { method, rawPath, query, headers: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]])) };
}
function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
}

describe('SigV4 (AWS published examples)', () => {
  it('derives the documented signing key (IAM example, 20120215/us-east-1/iam)', () => {
    expect(signingKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20120215', 'us-east-1', 'iam').toString('hex')).toBe('f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d');
  });

  const getObject = (sig: string): SigningRequest => req('GET', '/test.txt', [], {
    host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9',
    'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'x-amz-date': '20130524T000000Z',
    authorization: `AWS4-HMAC-SHA256 Credential=${CRED},SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${sig}`,
  });

  it('verifies the GET Object example and refuses a wrong secret or signature', () => {
    const r = getObject('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
    const a = parseAuth(r)!;
    expect(a.accessKey).toBe('AKIAIOSFODNN7EXAMPLE');
    expect(verifyAuth(r, a, SECRET, T).payload).toEqual({ kind: 'sha256', hex: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
    expect(codeOf(() => verifyAuth(r, a, `${SECRET}x`, T))).toBe('SignatureDoesNotMatch');
    const bad = getObject('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42');
    expect(codeOf(() => verifyAuth(bad, parseAuth(bad)!, SECRET, T))).toBe('SignatureDoesNotMatch');
  });

  it('refuses a request more than 15 minutes off the clock (RequestTimeTooSkewed)', () => {
    const r = getObject('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
    expect(codeOf(() => verifyAuth(r, parseAuth(r)!, SECRET, T + 16 * 60_000))).toBe('RequestTimeTooSkewed');
    expect(codeOf(() => verifyAuth(r, parseAuth(r)!, SECRET, T - 14 * 60_000))).toBe('ok');
  });

  it('verifies the PUT Object example (a $ in the key, date and storage-class headers signed)', () => {
    const r = req('PUT', '/test%24file.text', [], {
      host: 'examplebucket.s3.amazonaws.com', date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-date': '20130524T000000Z', 'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      authorization: `AWS4-HMAC-SHA256 Credential=${CRED},SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd`,
    });
    expect(codeOf(() => verifyAuth(r, parseAuth(r)!, SECRET, T))).toBe('ok');
  });

  it('verifies the GET Bucket lifecycle and list objects examples (canonical query strings)', () => {
    const base = { host: 'examplebucket.s3.amazonaws.com', 'x-amz-date': '20130524T000000Z', 'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' };
    const lc = req('GET', '/', [['lifecycle', '']], { ...base, authorization: `AWS4-HMAC-SHA256 Credential=${CRED},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543` });
    expect(codeOf(() => verifyAuth(lc, parseAuth(lc)!, SECRET, T))).toBe('ok');
    const ls = req('GET', '/', [['max-keys', '2'], ['prefix', 'J']], { ...base, authorization: `AWS4-HMAC-SHA256 Credential=${CRED},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7` });
    expect(codeOf(() => verifyAuth(ls, parseAuth(ls)!, SECRET, T))).toBe('ok');
  });

  it('verifies the presigned GET example within its expiry and refuses it after (AccessDenied)', () => {
    const r = req('GET', '/test.txt', [
      ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'], ['X-Amz-Credential', CRED], ['X-Amz-Date', '20130524T000000Z'], ['X-Amz-Expires', '86400'],
      ['X-Amz-SignedHeaders', 'host'], ['X-Amz-Signature', 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404'],
    ], { host: 'examplebucket.s3.amazonaws.com' });
    const a = parseAuth(r)!;
    expect(a.presigned).toBe(true);
    expect(verifyAuth(r, a, SECRET, T + 3600_000).payload).toEqual({ kind: 'unsigned' });
    expect(codeOf(() => verifyAuth(r, a, SECRET, T + 86_401_000))).toBe('AccessDenied');
  });

  it('verifies the streaming PUT example: seed signature and every chunk signature of 65536+1024 bytes', () => {
    const r = req('PUT', '/examplebucket/chunkObject.txt', [], {
      host: 's3.amazonaws.com', 'x-amz-date': '20130524T000000Z', 'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '66560', 'content-length': '66824',
      authorization: `AWS4-HMAC-SHA256 Credential=${CRED},SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9`,
    });
    const v = verifyAuth(r, parseAuth(r)!, SECRET, T);
    expect(v.payload).toEqual({ kind: 'streaming-signed', trailer: false });
    const sigs = ['ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648', '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497', 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'];
    const body = Buffer.concat([
      Buffer.from(`10000;chunk-signature=${sigs[0]}\r\n`), Buffer.alloc(65536, 'a'), Buffer.from('\r\n'),
      Buffer.from(`400;chunk-signature=${sigs[1]}\r\n`), Buffer.alloc(1024, 'a'), Buffer.from('\r\n'),
      Buffer.from(`0;chunk-signature=${sigs[2]}\r\n\r\n`),
    ]);
    expect(body.length).toBe(66824);
    const dec = new AwsChunkedDecoder({ key: v.signingKey, amzDate: v.amzDate, scope: v.scope, seedSignature: v.seedSignature });
    let n = 0;
    for (let off = 0; off < body.length; off += 977) for (const p of dec.push(body.subarray(off, off + 977))) n += p.length;
    dec.end();
    expect(n).toBe(66560);
    // The first chunk's signature, computed directly from the SHA-256 of its 65536 'a's.
    expect(chunkSignature(v.signingKey, v.amzDate, v.scope, v.seedSignature, createHash('sha256').update(Buffer.alloc(65536, 'a')).digest('hex'))).toBe(sigs[0]);
    // Tampering with one byte of data breaks its chunk signature.
    const tampered = Buffer.from(body);
    tampered[200] = 0x62;
    const dec2 = new AwsChunkedDecoder({ key: v.signingKey, amzDate: v.amzDate, scope: v.scope, seedSignature: v.seedSignature });
    expect(codeOf(() => dec2.push(tampered))).toBe('SignatureDoesNotMatch');
  });
});
