/**
 * The deterministic workload of the crash test: transaction i of seed s is a pure function of
 * (s, i), so the writer process and the checking parent build the same transactions. Every
 * transaction succeeds from any state (each op is preceded by a `touch` of its object), so the
 * store after a crash must equal the model after some prefix of the issued transactions that
 * includes every acknowledged one.
 *
 * Objects `tiny.*` stay mostly within {@link CRASH_TINY_SIZE_BYTES} (inline blobs: data in the
 * database), are cloned and removed often (shared and new inline blobs), and now and then get a
 * write beyond 64 KiB, which moves their data to a new file blob.
 */
import { crc32c } from '@aspen/shared/checksum.ts';
import type { ObjectStore } from '../../src/store/types.ts';
import { formatOid, type ObjectId } from '../../src/store/oid.ts';
import { Transaction } from '../../src/store/transaction.ts';
import { sortedKeys, sortedObjects, type StoreModel } from './model.ts';

export const CRASH_COLL = '3.7_head';
export const CRASH_OBJECT_SIZE_MAX = 1 << 20;
/** Extent of the `tiny.*` objects' usual writes, bytes (below the store's default inline limit, 64 KiB). */
export const CRASH_TINY_SIZE_BYTES = 60 * 1024;
const NAMES = ['rbd_data.0', 'rbd_data.1', 'rbd_data.2', 'small.0', 'small.1', 'omap.0', 'tiny.0', 'tiny.1', 'tiny.2'];

/** xorshift32 seeded by (seed, i). */
function rng(seed: number, i: number): (n: number) => number {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35)) >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function fill(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  const w = new Uint32Array(b.buffer, 0, len >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    w[i] = x;
  }
  for (let i = w.length * 4; i < len; i++) b[i] = (seed + i) & 255;
  return b;
}

/** Transaction number `i` (0-based) of the workload with `seed`. */
export function crashTransaction(seed: number, i: number): Transaction {
  const r = rng(seed, i);
  const t = new Transaction();
  const groups = 1 + r(3);
  for (let g = 0; g < groups; g++) {
    const oid: ObjectId = { name: NAMES[r(NAMES.length)]! };
    t.touch(CRASH_COLL, oid);
    const kind = r(100);
    if (oid.name.startsWith('tiny.') && (kind < 45 || kind >= 93)) {
      if (kind >= 93) t.remove(CRASH_COLL, oid);
      else if (r(20) === 0) t.write(CRASH_COLL, oid, 64 * 1024 + r(128 * 1024), fill(1 + r(8192), seed * 7919 + i * 31 + g)); // grows into a file
      else {
        const len = 1 + r(r(4) === 0 ? CRASH_TINY_SIZE_BYTES : 8192);
        t.write(CRASH_COLL, oid, r(CRASH_TINY_SIZE_BYTES - len + 1), fill(len, seed * 7919 + i * 31 + g));
      }
    } else if (kind < 45) {
      const large = r(100) < 25;
      const len = large ? 64 * 1024 + r(192 * 1024) : 1 + r(8192);
      const off = r(4) === 0 ? r(CRASH_OBJECT_SIZE_MAX / 4096 - Math.ceil(len / 4096)) * 4096 : r(CRASH_OBJECT_SIZE_MAX - len);
      t.write(CRASH_COLL, oid, off, fill(len, seed * 7919 + i * 31 + g));
    } else if (kind < 52) {
      t.zero(CRASH_COLL, oid, r(CRASH_OBJECT_SIZE_MAX - 20_000), 1 + r(20_000));
    } else if (kind < 58) {
      t.truncate(CRASH_COLL, oid, r(CRASH_OBJECT_SIZE_MAX));
    } else if (kind < 68) {
      t.setattrs(CRASH_COLL, oid, { _: fill(20 + r(200), i), v: new TextEncoder().encode(`${seed}:${i}`) });
    } else if (kind < 80) {
      const m = new Map<string, Uint8Array>();
      for (let k = 0, n = 1 + r(20); k < n; k++) m.set(`key.${r(200)}`, fill(r(300), i * 100 + k));
      t.omapSetKeys(CRASH_COLL, oid, m);
      if (r(3) === 0) t.omapSetHeader(CRASH_COLL, oid, fill(r(64), i));
    } else if (kind < 85) {
      t.omapRmKeys(CRASH_COLL, oid, [`key.${r(200)}`, `key.${r(200)}`]);
      if (r(4) === 0) t.omapRmKeyRange(CRASH_COLL, oid, `key.${r(100)}`, `key.${100 + r(100)}`);
    } else if (kind < 93) {
      // Snapshot: clone the head to a snap id, as the OSD does on the first write after a snapshot.
      t.clone(CRASH_COLL, oid, { name: oid.name, snap: BigInt(1 + r(3)) });
    } else if (kind < 97) {
      const snap = { name: oid.name, snap: BigInt(1 + r(3)) };
      t.touch(CRASH_COLL, snap).remove(CRASH_COLL, snap);
    } else {
      t.remove(CRASH_COLL, oid);
    }
  }
  return t;
}

function digestObject(h: string[], id: string, data: Uint8Array, attrs: ReadonlyMap<string, Uint8Array>, omap: ReadonlyMap<string, Uint8Array>, header: Uint8Array): void {
  h.push(`${id} size=${data.length} crc=${crc32c(data)} hdr=${crc32c(header)}`);
  for (const k of [...attrs.keys()].sort()) h.push(`  attr ${k}=${crc32c(attrs.get(k)!)}`);
  for (const k of sortedKeys(new Map(omap))) h.push(`  omap ${k}=${crc32c(omap.get(k)!)}`);
}

/** A readable digest of the model's crash collection. */
export function modelDigest(model: StoreModel): string {
  const h: string[] = [];
  for (const o of sortedObjects(model.state.get(CRASH_COLL) ?? new Map())) digestObject(h, formatOid(o.oid), o.data, o.attrs, o.omap, o.header);
  return h.join('\n');
}

/**
 * The same digest of the store, after checking every object's blocks with `verify` (torn or
 * damaged data is reported as a failure string in the digest, so it can never match).
 */
export async function storeDigest(store: ObjectStore): Promise<string> {
  const h: string[] = [];
  let after: ObjectId | undefined;
  for (;;) {
    const page = await store.listObjects(CRASH_COLL, after, 100);
    for (const oid of page.objects) {
      const v = await store.verify(CRASH_COLL, oid);
      if (!v.ok) h.push(`VERIFY FAILED ${formatOid(oid)} ${JSON.stringify(v.errors)}`);
      const st = await store.stat(CRASH_COLL, oid);
      const data = await store.read(CRASH_COLL, oid, 0, st.sizeBytes);
      const omap = new Map((await store.omapGetValues(CRASH_COLL, oid, undefined, 100_000)).entries);
      digestObject(h, formatOid(oid), data, await store.getattrs(CRASH_COLL, oid), omap, await store.omapGetHeader(CRASH_COLL, oid));
    }
    if (page.next === null) break;
    after = page.next;
  }
  return h.join('\n');
}
