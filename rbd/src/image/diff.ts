/**
 * `export-diff` / `import-diff` (librbd diff_iterate + rbd's ExportDiff/ImportDiff): the
 * changes between two snapshots of an image (or a snapshot and the head) as Ceph's diff v1
 * stream (diff-format.ts), and applying such a stream to an image.
 *
 * Without an object map, changed extents are found by reading every object at both points and
 * comparing 4 KiB blocks (objects absent at both read as zeros and compare equal): exact, but
 * it reads the whole image twice. A changed block that is all zeros at the end point becomes a
 * `z` record, any other a `w` record. With no from-snapshot every non-zero block is a `w`.
 * Sinks and sources are injected (the CLI gives files or stdio).
 */
import { AspenError, assert } from '@aspen/shared';
import type { RadosClient } from '@aspen/shared/io/rados.ts';
import { DiffDecoder, DIFF_V1_HEADER, encodeDiffRecord, type DiffRecord } from './diff-format.ts';
import { Image } from './image.ts';
import { isAllZero, nonZeroRuns, SPARSE_BLOCK_BYTES } from './sparse.ts';

/** Which two points of an image a diff spans. */
export interface DiffRange {
  /** The older snapshot; absent: from nothing (every allocated byte is in the diff). */
  fromSnap?: string;
  /** The newer snapshot; absent: the head. */
  toSnap?: string;
}

/**
 * The changed runs `[start, end, zero]` between `a` (older; shorter means zeros past its end)
 * and `b` (newer), at `blockBytes` granularity; `zero`: the run is all zeros in `b`. Pure.
 */
export function changedRuns(a: Uint8Array, b: Uint8Array, blockBytes = SPARSE_BLOCK_BYTES): [number, number, boolean][] {
  assert(a.length <= b.length && blockBytes > 0, 'the older data is not longer than the newer');
  const out: [number, number, boolean][] = [];
  for (let at = 0; at < b.length; at += blockBytes) {
    const end = Math.min(b.length, at + blockBytes);
    const nb = b.subarray(at, end);
    const na = a.subarray(Math.min(at, a.length), Math.min(end, a.length));
    const zero = isAllZero(nb);
    const same = na.length === nb.length ? Buffer.compare(Buffer.from(na.buffer, na.byteOffset, na.length), Buffer.from(nb.buffer, nb.byteOffset, nb.length)) === 0 : zero && isAllZero(na);
    if (same) continue;
    const last = out.at(-1);
    if (last !== undefined && last[1] === at && last[2] === zero) last[1] = end;
    else out.push([at, end, zero]);
  }
  return out;
}

/**
 * Writes the diff of `pool/image` over `range` to `emit` (rbd export-diff), in order: header,
 * `f` (if any), `t` (if a snapshot), `s`, data records by ascending offset, `e`.
 * @param onProgress called with (objects done, objects total).
 * @returns the number of data bytes in `w` records.
 * @throws AspenError ENOENT (image or snapshot); EINVAL when the from-snapshot is not older than the to-point.
 */
export async function exportDiff(client: RadosClient, pool: string, image: string, range: DiffRange, emit: (b: Uint8Array) => Promise<void>, onProgress?: (done: number, total: number) => void): Promise<number> {
  const to = await Image.open(client, pool, image, range.toSnap === undefined ? { exclusive: false } : { snapName: range.toSnap, exclusive: false });
  let from: Image | null = null;
  try {
    if (range.fromSnap !== undefined) {
      from = await Image.open(client, pool, image, { snapName: range.fromSnap, exclusive: false });
      if (to.snap !== null && from.snap!.id >= to.snap.id) throw new AspenError('EINVAL', `snapshot '${range.fromSnap}' is not older than '${range.toSnap}'`);
    }
    const size = to.sizeBytes;
    await emit(DIFF_V1_HEADER);
    if (range.fromSnap !== undefined) await emit(encodeDiffRecord({ kind: 'from_snap', name: range.fromSnap }));
    if (range.toSnap !== undefined) await emit(encodeDiffRecord({ kind: 'to_snap', name: range.toSnap }));
    await emit(encodeDiffRecord({ kind: 'size', sizeBytes: size }));
    const os = to.objectSizeBytes;
    const total = Math.ceil(size / os);
    let written = 0;
    for (let n = 0; n < total; n++) {
      const off = n * os;
      const len = Math.min(os, size - off);
      const fromLen = from === null ? 0 : Math.max(0, Math.min(len, from.sizeBytes - off));
      const [b, a] = await Promise.all([to.read(off, len), from === null || fromLen === 0 ? Promise.resolve(new Uint8Array(0)) : from.read(off, fromLen)]);
      const runs: [number, number, boolean][] = from === null ? nonZeroRuns(b).map(([s, e]) => [s, e, false]) : changedRuns(a, b);
      for (const [s, e, zero] of runs) {
        const rec: DiffRecord = zero ? { kind: 'zero', offsetBytes: off + s, lengthBytes: e - s } : { kind: 'write', offsetBytes: off + s, data: b.subarray(s, e) };
        if (!zero) written += e - s;
        await emit(encodeDiffRecord(rec));
      }
      onProgress?.(n + 1, total);
    }
    await emit(encodeDiffRecord({ kind: 'end' }));
    return written;
  } finally {
    await from?.close();
    await to.close();
  }
}

/**
 * Applies a diff stream to `pool/image` (rbd import-diff): the from-snapshot must exist on the
 * image (ENOENT otherwise) and the to-snapshot must not (EEXIST); `s` resizes the image, `w`
 * writes, `z` discards; at `e` the to-snapshot is created. Takes the exclusive lock.
 * Records already applied stay applied when a later part of the stream is malformed (as Ceph).
 * @param nowMs the to-snapshot's creation time (injected clock).
 * @returns the records applied.
 * @throws AspenError EINVAL (malformed stream, data outside the image); ENOENT; EEXIST; EBUSY (locked).
 */
export async function importDiff(client: RadosClient, pool: string, image: string, source: AsyncIterable<Uint8Array>, o: { nowMs: number; breakLock?: boolean }): Promise<number> {
  const img = await Image.open(client, pool, image, { breakLock: o.breakLock ?? false });
  try {
    const dec = new DiffDecoder();
    let toSnap: string | null = null;
    let applied = 0;
    const apply = async (r: DiffRecord): Promise<void> => {
      switch (r.kind) {
        case 'from_snap':
          if (!img.snapList().some((s) => s.name === r.name)) throw new AspenError('ENOENT', `start snapshot '${r.name}' does not exist in image '${image}'`);
          break;
        case 'to_snap':
          if (img.snapList().some((s) => s.name === r.name)) throw new AspenError('EEXIST', `end snapshot '${r.name}' already exists in image '${image}'`);
          toSnap = r.name;
          break;
        case 'size':
          if (r.sizeBytes !== img.sizeBytes) await img.resize(r.sizeBytes, { allowShrink: true });
          break;
        case 'write':
          await img.write(r.offsetBytes, r.data);
          break;
        case 'zero':
          await img.discard(r.offsetBytes, r.lengthBytes);
          break;
        case 'end':
          if (toSnap !== null) await img.snapCreate(toSnap, o.nowMs);
          break;
        default: {
          const never: never = r;
          return never;
        }
      }
      applied++;
    };
    for await (const chunk of source) for (const r of dec.push(chunk)) await apply(r);
    dec.finish();
    assert(applied > 0 && dec.done, 'a complete diff has at least the end record');
    return applied;
  } finally {
    await img.close();
  }
}
