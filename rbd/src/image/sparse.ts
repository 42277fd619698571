/** Zero detection for sparse export/import (Ceph `rbd import`/`export` skip all-zero blocks). Pure. */
import { assert } from '@aspen/shared';

/** Block size at which zeros are detected, bytes (rbd's sparse size default, 4 KiB). */
export const SPARSE_BLOCK_BYTES = 4096;

/** Whether every byte of `b` is zero. */
export function isAllZero(b: Uint8Array): boolean {
  let i = 0;
  // 8 bytes at a time where aligned; the tail byte by byte.
  if (b.byteOffset % 8 === 0) {
    const words = new BigUint64Array(b.buffer, b.byteOffset, Math.floor(b.length / 8));
    for (; i < words.length; i++) if (words[i] !== 0n) return false;
    i *= 8;
  }
  for (; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The runs `[start, end)` of `b` (offsets into it, ascending, non-adjacent) that contain a
 * non-zero byte, at `blockBytes` granularity (the last block may be short): what must be
 * written; everything else is a hole.
 */
export function nonZeroRuns(b: Uint8Array, blockBytes = SPARSE_BLOCK_BYTES): [number, number][] {
  assert(Number.isInteger(blockBytes) && blockBytes > 0, 'block size is positive');
  const out: [number, number][] = [];
  for (let at = 0; at < b.length; at += blockBytes) {
    const end = Math.min(b.length, at + blockBytes);
    if (isAllZero(b.subarray(at, end))) continue;
    const last = out.at(-1);
    if (last !== undefined && last[1] === at) last[1] = end;
    else out.push([at, end]);
  }
  return out;
}
