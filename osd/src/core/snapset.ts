/**
 * Self-managed snapshots of one object (Ceph SnapSet, src/osd/osd_types.h, and the snap logic
 * of PrimaryLogPG: make_writeable, find_object_context, the snap trimmer). Pure.
 *
 * The head of an object that has ever been written under a snap context carries its SnapSet
 * in the internal xattr {@link SNAPSET_XATTR}: `seq`, the newest snap id the head has seen,
 * and its clones, oldest first. A clone is the store object of the same name and namespace
 * with `snap = cloneId` (the snap context's seq when it was made); it serves the snap ids in
 * its `snaps` (newest first), all in `(previous clone's id, cloneId]`.
 *
 * Encoding (struct v1, compat 1): seq u64, clones [(cloneId u64, snaps [u64], sizeBytes u53)].
 */
import { AspenError, Decoder, Encoder, assert } from '@aspen/shared';
import type { SnapContext } from '@aspen/shared/client/ops.ts';

/** Internal xattr of a head holding its encoded {@link SnapSet} (Ceph's `snapset` attr). */
export const SNAPSET_XATTR = 'aspen.ss';
/** Most snap ids a snap context may carry (Ceph bounds it by the message size; we bound it explicitly). */
export const SNAPC_SNAPS_MAX = 4096;

/** One clone of an object (Ceph SnapSet clones / clone_snaps / clone_size). */
export interface CloneInfo {
  /** The clone's snap id in the store (the snap context's seq when it was made). */
  readonly cloneId: bigint;
  /** Snap ids this clone serves, newest first; never empty (an emptied clone is removed). */
  readonly snaps: readonly bigint[];
  /** The clone's data size, bytes. */
  readonly sizeBytes: number;
}

/** An object's snapshot state (Ceph SnapSet). */
export interface SnapSet {
  /** Newest snap id the head has been written under (Ceph SnapSet::seq); 0 when none. */
  readonly seq: bigint;
  /** Clones, ascending by cloneId. */
  readonly clones: readonly CloneInfo[];
}

const SNAPSET_V = 1;
const U64_MAX = (1n << 64n) - 1n;

/** The SnapSet of an object never written under a snap context. */
export const EMPTY_SNAPSET: SnapSet = Object.freeze({ seq: 0n, clones: Object.freeze([]) as readonly CloneInfo[] });

/** Whether `ss` carries anything (else the head needs no {@link SNAPSET_XATTR}). */
export function snapSetIsEmpty(ss: SnapSet): boolean {
  return ss.seq === 0n && ss.clones.length === 0;
}

function snapSetWellFormed(ss: SnapSet): boolean {
  let prev = 0n;
  for (const c of ss.clones) {
    if (c.cloneId <= prev && prev !== 0n) return false;
    if (c.snaps.length === 0 || !Number.isSafeInteger(c.sizeBytes) || c.sizeBytes < 0) return false;
    for (let i = 0; i < c.snaps.length; i++) {
      const s = c.snaps[i]!;
      if (s > c.cloneId || s <= prev || (i > 0 && s >= c.snaps[i - 1]!)) return false;
    }
    prev = c.cloneId;
  }
  return ss.clones.length === 0 || ss.seq >= prev;
}

/** Encodes a SnapSet (struct v1). @throws AssertionFailure on a malformed one (a caller bug). */
export function encodeSnapSet(ss: SnapSet): Uint8Array {
  assert(ss.seq >= 0n && ss.seq <= U64_MAX, 'snapset seq is a u64');
  assert(snapSetWellFormed(ss), 'clones ascending, snaps descending within (previous clone, cloneId], seq >= newest clone');
  return new Encoder(32 + ss.clones.length * 32).struct(SNAPSET_V, 1, (e) => {
    e.u64(ss.seq).array(ss.clones, (x, c) => x.u64(c.cloneId).array(c.snaps, (y, s) => y.u64(s)).u53(c.sizeBytes));
  }).finish();
}

/**
 * Decodes {@link encodeSnapSet}'s bytes.
 * @throws AspenError E_DECODE on malformed bytes or an inconsistent SnapSet.
 */
export function decodeSnapSet(b: Uint8Array): SnapSet {
  const d = new Decoder(b);
  const ss = d.struct(SNAPSET_V, 'snapset', (x) => ({
    seq: x.u64(),
    clones: x.array((y) => ({ cloneId: y.u64(), snaps: y.array((z) => z.u64()), sizeBytes: y.u53() })),
  }));
  d.done('snapset');
  if (!snapSetWellFormed(ss)) throw new AspenError('E_DECODE', 'inconsistent snapset');
  return ss;
}

/**
 * Checks a client's snap context as Ceph SnapContext::is_valid: `snaps` strictly descending,
 * every snap id at most `seq`, none of them 0 or the head, at most {@link SNAPC_SNAPS_MAX}.
 * @throws AspenError EINVAL when it is not valid.
 */
export function validateSnapContext(snapc: SnapContext): void {
  if (snapc.snaps.length > SNAPC_SNAPS_MAX) throw new AspenError('EINVAL', `a snap context carries at most ${SNAPC_SNAPS_MAX} snaps`);
  let prev: bigint | null = null;
  for (const s of snapc.snaps) {
    if (s < 1n || s > snapc.seq) throw new AspenError('EINVAL', `invalid snap context: snap ${s} is not in [1, seq ${snapc.seq}]`);
    if (prev !== null && s >= prev) throw new AspenError('EINVAL', 'invalid snap context: snaps must be strictly descending');
    prev = s;
  }
}

/**
 * What a write under `snapc` does to an object whose SnapSet is `ss` (Ceph
 * PrimaryLogPG::make_writeable): if the head exists (not a whiteout) and the context has
 * snaps newer than `ss.seq`, the head is cloned first as clone `snapc.seq` serving those
 * snaps; the SnapSet's seq becomes `max(ss.seq, snapc.seq)` either way.
 * @param headSizeBytes the head's data size before the write (the clone's size).
 * @returns the new SnapSet and the clone to make (null: none).
 */
export function planWriteSnaps(ss: SnapSet, snapc: SnapContext, headExists: boolean, headSizeBytes: number): { next: SnapSet; clone: CloneInfo | null } {
  let clone: CloneInfo | null = null;
  if (headExists && snapc.seq > ss.seq) {
    const snaps = snapc.snaps.filter((s) => s > ss.seq);
    if (snaps.length > 0) clone = { cloneId: snapc.seq, snaps, sizeBytes: headSizeBytes };
  }
  const next: SnapSet = {
    seq: snapc.seq > ss.seq ? snapc.seq : ss.seq,
    clones: clone === null ? ss.clones : [...ss.clones, clone],
  };
  assert(snapSetWellFormed(next), 'make_writeable keeps the snapset well formed');
  return { next, clone };
}

/**
 * Which object a read at `snapId` sees (Ceph PrimaryLogPG::find_object_context): a snap newer
 * than `ss.seq` reads the head; otherwise the oldest clone whose id is at least `snapId` if it
 * serves `snapId`; otherwise nothing (the object did not exist at that snap, or the snap was
 * trimmed).
 */
export function resolveSnapRead(ss: SnapSet, snapId: bigint): { kind: 'head' } | { kind: 'clone'; clone: CloneInfo } | { kind: 'none' } {
  if (snapId > ss.seq) return { kind: 'head' };
  const clone = ss.clones.find((c) => c.cloneId >= snapId);
  if (clone === undefined || !clone.snaps.includes(snapId)) return { kind: 'none' };
  return { kind: 'clone', clone };
}

/**
 * Snap trimming of one object (Ceph PrimaryLogPG::trim_object): removes the removed snap ids
 * from every clone's `snaps`; a clone left serving none is to be deleted.
 * @returns the new SnapSet, the clone ids to delete, and whether anything changed.
 */
export function trimSnapSet(ss: SnapSet, isRemoved: (snapId: bigint) => boolean): { next: SnapSet; removeClones: bigint[]; changed: boolean } {
  const removeClones: bigint[] = [];
  const clones: CloneInfo[] = [];
  let changed = false;
  for (const c of ss.clones) {
    const snaps = c.snaps.filter((s) => !isRemoved(s));
    if (snaps.length !== c.snaps.length) changed = true;
    if (snaps.length === 0) removeClones.push(c.cloneId);
    else clones.push(snaps.length === c.snaps.length ? c : { ...c, snaps });
  }
  const next: SnapSet = { seq: ss.seq, clones };
  assert(snapSetWellFormed(next), 'trimming keeps the snapset well formed');
  return { next, removeClones, changed };
}
