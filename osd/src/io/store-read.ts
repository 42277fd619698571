/**
 * The verified block read shared by the object store's read path, its planner (read-modify-
 * write, clone range) and deep scrub: read whole blocks of a blob from its file or its inline
 * row, overlay writes committed but not yet in the file, and check each allocated block's
 * crc32c. Holes read as zeros without touching the file.
 */
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { overlayWrites, verifyBlocks, type BlockMap, type PendingWrite } from '../store/blocks.ts';
import type { BlobFiles } from './store-files.ts';

/** Where a blob's bytes are read from: its file, or the bytes of its inline row. */
export interface BlockSource {
  readonly blobId: number;
  /** Reads into `into` from blob offset `offsetBytes`; returns the bytes read (short at the end). @throws AspenError EIO. */
  readInto(into: Uint8Array, offsetBytes: number): number;
}

/** Blob `blobId`'s file. */
export function fileSource(files: BlobFiles, blobId: number): BlockSource {
  return { blobId, readInto: (into, offsetBytes) => files.readInto(blobId, into, offsetBytes) };
}

/** Inline blob `blobId` whose row holds `bytes` (blocks [0, bytes.length / blockSize)). */
export function inlineSource(blobId: number, bytes: Uint8Array): BlockSource {
  return {
    blobId,
    readInto: (into, offsetBytes) => {
      if (offsetBytes >= bytes.length) return 0;
      const part = bytes.subarray(offsetBytes, Math.min(bytes.length, offsetBytes + into.length));
      into.set(part);
      return part.length;
    },
  };
}

/** Why a block failed: its checksum, a file shorter than the block, or an I/O error. */
export type BadBlockReason = 'checksum' | 'short-read' | 'io';

/**
 * Blocks [first, end) of blob `src.blobId` as one buffer of (end - first) * blockSizeBytes bytes.
 * `onBad` is called for each block that fails; when it returns normally the read goes on
 * (deep scrub collects findings), so the read path passes a function that throws.
 */
export function readBlobBlocks(
  src: BlockSource,
  map: BlockMap,
  first: number,
  end: number,
  blockSizeBytes: number,
  overlays: readonly (readonly PendingWrite[])[],
  onBad: (blockIndex: number, reason: BadBlockReason, detail: string) => void,
): Buffer {
  assert(end >= first && first >= 0, 'readBlobBlocks: bad block range');
  const blobId = src.blobId;
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
        got = src.readInto(slice, i * blockSizeBytes);
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
        for (let b = firstShort; b < j; b++) if (!covered(b)) onBad(b, 'short-read', `blob data ends at ${i * blockSizeBytes + got}`);
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
