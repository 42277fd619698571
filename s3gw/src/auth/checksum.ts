/**
 * Additional checksums of S3 (x-amz-checksum-crc32 | crc32c | sha1 | sha256, AWS "Checking
 * object integrity"): computed incrementally over a body, base64 of the big-endian value.
 * crc32c is the repo's (shared/src/checksum.ts); crc32 is zlib's.
 */
import { createHash, type Hash } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32c } from '@aspen/shared/checksum.ts';
import { S3Error } from '../core/errors.ts';

export type ChecksumAlgorithm = 'crc32' | 'crc32c' | 'sha1' | 'sha256';
export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ['crc32', 'crc32c', 'sha1', 'sha256'];

/** An incremental checksum. */
export interface Checksummer {
  readonly algorithm: ChecksumAlgorithm;
  update(data: Uint8Array): void;
  /** base64 of the digest. */
  digest(): string;
}

function u32base64(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b.toString('base64');
}

class CrcSum implements Checksummer {
  private v = 0;
  constructor(readonly algorithm: 'crc32' | 'crc32c') {}
  update(data: Uint8Array): void {
    this.v = this.algorithm === 'crc32' ? zlibCrc32(data, this.v) : crc32c(data, this.v);
  }
  digest(): string {
    return u32base64(this.v);
  }
}

class HashSum implements Checksummer {
  private readonly h: Hash;
  constructor(readonly algorithm: 'sha1' | 'sha256') {
    this.h = createHash(algorithm);
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  digest(): string {
    return this.h.digest('base64');
  }
}

export function newChecksummer(a: ChecksumAlgorithm): Checksummer {
  return a === 'crc32' || a === 'crc32c' ? new CrcSum(a) : new HashSum(a);
}

/** The algorithm named by a header `x-amz-checksum-<alg>`, or null. */
export function algorithmOfHeader(name: string): ChecksumAlgorithm | null {
  const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(name.toLowerCase());
  if (!m) return null;
  if ((CHECKSUM_ALGORITHMS as readonly string[]).includes(m[1]!)) return m[1] as ChecksumAlgorithm;
  if (m[1] === 'mode' || m[1] === 'type' || m[1] === 'algorithm') return null;
  throw new S3Error('InvalidRequest', `checksum algorithm '${m[1]}' is not supported (crc32, crc32c, sha1, sha256 are)`);
}
