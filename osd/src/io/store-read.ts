/**
 * The verified block read shared by the object store's read path, its planner (read-modify-
 * write, clone range) and deep scrub: read whole blocks of a blob from its file, overlay writes
 * committed but not yet in the file, and check each allocated block's crc32c. Holes read as
 * zeros without touching the file.
 */
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { overlayWrites, verifyBlocks, type BlockMap, type PendingWrite } from '../store/blocks.ts';
import type { BlobFiles } from './store-files.ts';

/** Why a block failed: its checksum, a file shorter than the block, or an I/O error. */
export type BadBlockReason = 'checksum' | 'short-read' | 'io';

/**
 * Blocks [first, end) of blob `blobId` as one buffer of (end - first) * blockSizeBytes bytes.
 * `onBad` is called for each block that fails; when it returns normally the read goes on
 * (deep scrub collects findings), so the read path passes a function that throws.
 */
export function readBlobBlocks(
  files: BlobFiles,
  blobId: number,
  map: BlockMap,
  first: number,
  end: number,
  blockSizeBytes: number,
  overlays: readonly (readonly PendingWrite[])[],
  onBad: (blockIndex: number, reason: BadBlockReason, detail: string) => void,
): Buffer {
  assert(end >= first && first >= 0, 'readBlobBlocks: bad block range');
  assert(blobId > 0, 'readBlobBlocks: no blob');
  const out = Buffer.allocUnsafe((end - first) * blockSizeBytes);
  // Read runs of allocated blocks with one pread each; zero the holes.
  let i = first;
  while (i < end) {
    const allocated = map.isAllocated(i);
    let j = i + 1;
    while (j < end && map.isAllocated(j) === allocated) j++;
    const slice = out.subarray((i - first) * blockSizeBytes, (j - first) * blockSizeBytes);
    if (!allocated) slice.fill(0);
    else {
      let got: number;
      try {
        got = files.readInto(blobId, slice, i * blockSizeBytes);
      } catch (err) {
        slice.fill(0);
        for (let b = i; b < j; b++) onBad(b, 'io', err instanceof AspenError ? err.message : String(err));
        i = j;
        continue;
      }
      if (got < slice.length) {
        slice.fill(0, got);
        const firstShort = i + Math.floor(got / blockSizeBytes);
        // A committed write not yet applied may cover the missing bytes: only overlays can rescue them.
        const covered = (b: number): boolean =>
          overlays.some((ws) => ws.some((w) => w.blobId === blobId && w.offsetBytes <= b * blockSizeBytes && w.offsetBytes + w.data.length >= (b + 1) * blockSizeBytes));
        for (let b = firstShort; b < j; b++) if (!covered(b)) onBad(b, 'short-read', `data file ends at ${i * blockSizeBytes + got}`);
      }
    }
    i = j;
  }
  let overlaid = false;
  for (const ws of overlays) {
    if (ws.length === 0) continue;
    overlayWrites(out, first * blockSizeBytes, ws);
    overlaid = true;
  }
  // A pending write may cover a block punched (zeroed) after it: holes read as zeros whatever the file or overlay holds.
  if (overlaid) for (let b = first; b < end; b++) if (!map.isAllocated(b)) out.fill(0, (b - first) * blockSizeBytes, (b - first + 1) * blockSizeBytes);
  verifyBlocks(out, first, map, blockSizeBytes, (b) => onBad(b, 'checksum', 'crc32c mismatch'));
  return out;
}
