/**
 * choose_args sets compiled for the mapper: per bucket slot, the weight sets (position-major)
 * and the replacement hash ids, as Ceph's `crush_choose_arg` arrays (src/crush/crush.h).
 * Entries whose sizes do not match their bucket are ignored (the text parser rejects them).
 */
import type { CrushChooseArgMap } from './types.ts';

/** One choose_args set laid out by bucket slot (weight sets position-major per bucket). */
export interface CompiledChooseArgs {
  readonly wsCount: Int32Array;
  readonly wsOff: Int32Array;
  readonly ws: Float64Array;
  readonly idsOff: Int32Array;
  readonly ids: Int32Array;
}

/** Lays out `set` by bucket slot; `sizeOf(id)` is a bucket's item count, or -1 when it does not exist. */
export function compileChooseArgs(set: CrushChooseArgMap, maxBuckets: number, sizeOf: (id: number) => number): CompiledChooseArgs {
  const wsCount = new Int32Array(maxBuckets);
  const wsOff = new Int32Array(maxBuckets);
  const idsOff = new Int32Array(maxBuckets).fill(-1);
  const ws: number[] = [];
  const ids: number[] = [];
  for (const a of set.args) {
    const slot = -1 - a.bucketId;
    const size = sizeOf(a.bucketId);
    if (slot < 0 || slot >= maxBuckets || size < 0) continue;
    if (a.weightSet && a.weightSet.length > 0 && a.weightSet.every((w) => w.length === size)) {
      wsCount[slot] = a.weightSet.length;
      wsOff[slot] = ws.length;
      for (const w of a.weightSet) ws.push(...w);
    }
    if (a.ids && a.ids.length === size) {
      idsOff[slot] = ids.length;
      ids.push(...a.ids);
    }
  }
  return { wsCount, wsOff, ws: Float64Array.from(ws), idsOff, ids: Int32Array.from(ids) };
}
