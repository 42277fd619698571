/**
 * S3 object versioning over the bucket index (AWS S3 user guide, "Using versioning"): pure
 * planning of what one PUT or DELETE changes in the index of one key.
 *
 * Model (as radosgw's "olh" + instances, simplified): the index holds per key a head — the
 * latest version or delete marker — and the noncurrent versions under versionKey(key, rev).
 * Invariant: a key with noncurrent versions has a head (deleting the head by version id
 * promotes the newest noncurrent one). At most one "null" version exists per key: the head
 * (no versionId) or the noncurrent one the head's `nullRev` names.
 *
 * A plan lists the index keys whose current bytes must still be what was read (guards), the
 * keys to set and remove, and the versions nobody references any more (their data is garbage
 * once the plan commits). The store applies it as one compare-and-swap op and re-plans from a
 * fresh read when another writer got in between.
 */
import { assert } from '@aspen/shared';
import { S3Error } from './errors.ts';
import { versionKey, type ObjectEntry, type VersioningState } from '../store/layout.ts';

/** A bucket that never had versioning enabled, or its state. */
export type Versioning = 'Unversioned' | VersioningState;

/** Version ids (= revs): 12 hex of inverted ms, 4 hex of inverted in-ms counter, 8 hex random. */
export const REV_PATTERN = /^[0-9a-f]{24}$/;
const MS_MAX = 0xffff_ffff_ffff;
const COUNTER_MAX = 0xffff;

/**
 * Makes revs that sort newest first: strictly decreasing within one gateway (a monotonic
 * clock with an in-millisecond counter); across gateways ordered by their clocks.
 */
export class RevClock {
  private lastMs = 0;
  private counter = 0;
  constructor(private readonly random32: () => number) {}

  next(nowMs: number): string {
    if (nowMs > this.lastMs) {
      this.lastMs = nowMs;
      this.counter = 0;
    } else if (++this.counter > COUNTER_MAX) {
      this.lastMs++;
      this.counter = 0;
    }
    assert(this.lastMs <= MS_MAX, 'the clock fits 48 bits');
    const rand = this.random32() >>> 0;
    const rev = (MS_MAX - this.lastMs).toString(16).padStart(12, '0') + (COUNTER_MAX - this.counter).toString(16).padStart(4, '0') + rand.toString(16).padStart(8, '0');
    assert(REV_PATTERN.test(rev), 'rev format');
    return rev;
  }
}

/** The rev of an entry; entries from before versioning existed get one from their mtime. */
export function revOf(e: ObjectEntry): string {
  return e.rev ?? `${(MS_MAX - e.mtimeMs).toString(16).padStart(12, '0')}0000ffffffff`;
}

/** The S3 version id of an entry: its versionId, or "null". */
export const versionIdOf = (e: ObjectEntry): string => e.versionId ?? 'null';

/** What the store read for one key, decoded (raw bytes stay with the store). */
export interface KeyView {
  key: string;
  head: ObjectEntry | null;
  /** Index keys read besides the head (noncurrent versions); null = absent, missing from the map = not read. */
  others: ReadonlyMap<string, ObjectEntry | null>;
  /** The newest noncurrent version, when it was asked for. */
  newest: { indexKey: string; entry: ObjectEntry } | null;
}

export interface IndexPlan<R> {
  /** Index keys that must still hold what was read (or still be absent). */
  guards: string[];
  set: [string, ObjectEntry][];
  rm: string[];
  /** Versions no longer referenced once this commits: their data is garbage. */
  garbage: ObjectEntry[];
  result: R;
}

/** A plan, or the index keys to read first. */
export type Planned<R> = IndexPlan<R> | { need: string[] };

/** Strips head-only fields before a version moves to the noncurrent namespace. */
function asNoncurrent(e: ObjectEntry): ObjectEntry {
  const { nullRev: _unused, ...rest } = e;
  return { ...rest, rev: revOf(e) };
}

/**
 * The new head `next` (a version or delete marker, its rev/versionId already set) replaces
 * the head under `mode`: in Unversioned buckets the old head is garbage; otherwise it becomes
 * noncurrent — unless both are null versions, when the old null is garbage — and a new null
 * version replaces a noncurrent null too.
 */
export function planNewHead(mode: Versioning, v: KeyView, next: ObjectEntry): Planned<ObjectEntry> {
  assert(next.rev !== undefined && next.nullRev === undefined, 'a new head has a rev and no nullRev');
  assert((mode === 'Enabled') === (next.versionId !== undefined), 'only Enabled buckets make non-null versions');
  const old = v.head;
  const plan: IndexPlan<ObjectEntry> = { guards: [v.key], set: [], rm: [], garbage: [], result: next };
  let head = next;
  if (old !== null) {
    if (mode === 'Unversioned' || (old.versionId === undefined && next.versionId === undefined)) {
      plan.garbage.push(old);
    } else {
      plan.set.push([versionKey(v.key, revOf(old)), asNoncurrent(old)]);
      if (old.versionId === undefined) head = { ...head, nullRev: revOf(old) };
    }
    if (old.nullRev !== undefined) {
      if (next.versionId === undefined) {
        const nk = versionKey(v.key, old.nullRev);
        const nullOld = v.others.get(nk);
        if (nullOld === undefined) return { need: [nk] };
        plan.guards.push(nk);
        plan.rm.push(nk);
        if (nullOld !== null) plan.garbage.push(nullOld);
      } else {
        head = { ...head, nullRev: old.nullRev };
      }
    }
  }
  plan.set.push([v.key, head]);
  return plan;
}

export interface DeletedVersion {
  /** The version id that was removed (or asked for, when there was none). */
  versionId: string;
  deleteMarker: boolean;
}

/**
 * DELETE with a version id: removes exactly that version. Removing the head promotes the
 * newest noncurrent version (needs `v.newest`); removing the noncurrent null clears the
 * head's nullRev. A version that does not exist is a no-op, as in S3.
 * @throws S3Error InvalidArgument on a malformed version id
 */
export function planDeleteVersion(v: KeyView, versionId: string): Planned<DeletedVersion> {
  if (versionId !== 'null' && !REV_PATTERN.test(versionId)) throw new S3Error('InvalidArgument', 'Invalid version id specified');
  const head = v.head;
  const none: IndexPlan<DeletedVersion> = { guards: [], set: [], rm: [], garbage: [], result: { versionId, deleteMarker: false } };
  if (head === null) return none;
  if (versionIdOf(head) === versionId) {
    const plan: IndexPlan<DeletedVersion> = { guards: [v.key], set: [], rm: [], garbage: [head], result: { versionId, deleteMarker: head.deleteMarker === true } };
    if (v.newest === null) {
      plan.rm.push(v.key);
    } else {
      const promoted = v.newest.entry;
      plan.guards.push(v.newest.indexKey);
      plan.rm.push(v.newest.indexKey);
      const keepNull = head.nullRev !== undefined && promoted.versionId !== undefined ? { nullRev: head.nullRev } : {};
      plan.set.push([v.key, { ...promoted, ...keepNull }]);
    }
    return plan;
  }
  const rev = versionId === 'null' ? head.nullRev : versionId;
  if (rev === undefined) return none;
  const nk = versionKey(v.key, rev);
  const target = v.others.get(nk);
  if (target === undefined) return { need: [nk] };
  if (target === null || versionIdOf(target) !== versionId) return none;
  const plan: IndexPlan<DeletedVersion> = { guards: [nk], set: [], rm: [nk], garbage: [target], result: { versionId, deleteMarker: target.deleteMarker === true } };
  if (versionId === 'null') {
    const { nullRev: _gone, ...rest } = head;
    plan.guards.push(v.key);
    plan.set.push([v.key, rest]);
  }
  return plan;
}

/**
 * Finds version `versionId` of a key among what was read.
 * @returns the entry, null when there is no such version, or the index keys to read first
 * @throws S3Error InvalidArgument on a malformed version id
 */
export function findVersion(v: KeyView, versionId: string): ObjectEntry | null | { need: string[] } {
  if (versionId !== 'null' && !REV_PATTERN.test(versionId)) throw new S3Error('InvalidArgument', 'Invalid version id specified');
  const head = v.head;
  if (head === null) return null;
  if (versionIdOf(head) === versionId) return head;
  const rev = versionId === 'null' ? head.nullRev : versionId;
  if (rev === undefined) return null;
  const nk = versionKey(v.key, rev);
  const e = v.others.get(nk);
  if (e === undefined) return { need: [nk] };
  return e !== null && versionIdOf(e) === versionId ? e : null;
}

/**
 * DELETE without a version id: in an Unversioned bucket removes the head; otherwise adds
 * `marker` (a delete marker with rev, and versionId when Enabled) as the new head.
 */
export function planDeleteLatest(mode: Versioning, v: KeyView, marker: ObjectEntry): Planned<ObjectEntry | null> {
  assert(marker.deleteMarker === true && marker.segments.length === 0, 'a delete marker has no data');
  if (mode !== 'Unversioned') return planNewHead(mode, v, marker);
  if (v.head === null) return { guards: [], set: [], rm: [], garbage: [], result: null };
  return { guards: [v.key], set: [], rm: [v.key], garbage: [v.head], result: null };
}
