/** Shared helpers of the object store tests. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteObjectStore, type StoreOptions } from '../../src/io/store-object-store.ts';
import { formatOid } from '../../src/store/oid.ts';
import type { ObjectStore } from '../../src/store/types.ts';
import { sortedKeys, sortedObjects, type StoreModel } from './model.ts';

/**
 * A fresh temporary directory (removed by the returned cleanup), under `base` (default the OS
 * temp dir; tests whose subject is not durability may pass {@link memoryBase} to skip fsync costs).
 */
export function tempDir(prefix = 'aspen-store-', base = tmpdir()): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** /dev/shm (tmpfs: fsync is free) when present, else the OS temp dir. */
export const memoryBase = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** mkfs + mount a store in `dir/store`. */
export async function newStore(dir: string, options: Partial<StoreOptions> = {}): Promise<SqliteObjectStore> {
  const store = new SqliteObjectStore({ path: join(dir, 'store'), reserveBytes: 256 * 1024, ...options });
  await store.mkfs();
  await store.mount();
  return store;
}

/**
 * Returns a description of the first difference between the store and the model, or null.
 * Compares collections, listing order, sizes, data, xattrs, omap header and omap (paged).
 */
export async function diffStoreModel(store: ObjectStore, model: StoreModel, pageSize = 3): Promise<string | null> {
  const colls = await store.listCollections();
  const modelColls = [...model.state.keys()].sort();
  if (JSON.stringify(colls) !== JSON.stringify(modelColls)) return `collections ${JSON.stringify(colls)} != model ${JSON.stringify(modelColls)}`;
  for (const c of modelColls) {
    const expected = sortedObjects(model.state.get(c)!);
    const listed: string[] = [];
    let after: Parameters<ObjectStore['listObjects']>[1] = undefined;
    for (;;) {
      const page = await store.listObjects(c, after, pageSize);
      listed.push(...page.objects.map((o) => formatOid(o)));
      if (page.next === null) break;
      after = page.next;
    }
    const exp = expected.map((o) => formatOid(o.oid));
    if (JSON.stringify(listed) !== JSON.stringify(exp)) return `${c}: objects ${JSON.stringify(listed)} != model ${JSON.stringify(exp)}`;
    for (const o of expected) {
      const what = `${c}/${formatOid(o.oid)}`;
      const st = await store.stat(c, o.oid);
      if (st.sizeBytes !== o.data.length) return `${what}: size ${st.sizeBytes} != ${o.data.length}`;
      const data = await store.read(c, o.oid, 0, o.data.length + 10);
      if (!Buffer.from(data).equals(Buffer.from(o.data))) return `${what}: data differs (${firstDiff(data, o.data)})`;
      const verify = await store.verify(c, o.oid);
      if (!verify.ok) return `${what}: verify ${JSON.stringify(verify.errors)}`;
      const extents = await store.fiemap(c, o.oid, 0, o.data.length);
      // Outside the allocated extents the data must be zeros.
      let pos = 0;
      for (const e of [...extents, { offsetBytes: o.data.length, lengthBytes: 0 }]) {
        if (o.data.subarray(pos, e.offsetBytes).some((b) => b !== 0)) return `${what}: non-zero bytes in a hole [${pos}, ${e.offsetBytes})`;
        pos = e.offsetBytes + e.lengthBytes;
      }
      const attrs = await store.getattrs(c, o.oid);
      if (!sameMap(attrs, o.attrs)) return `${what}: xattrs ${[...attrs.keys()]} != ${[...o.attrs.keys()]}`;
      const header = await store.omapGetHeader(c, o.oid);
      if (!Buffer.from(header).equals(Buffer.from(o.header))) return `${what}: omap header differs`;
      const keys: string[] = [];
      let start: string | undefined;
      for (;;) {
        const page = await store.omapGetKeys(c, o.oid, start, pageSize);
        keys.push(...page.keys);
        if (!page.more) break;
        start = page.keys[page.keys.length - 1];
      }
      const expKeys = sortedKeys(o.omap);
      if (JSON.stringify(keys) !== JSON.stringify(expKeys)) return `${what}: omap keys ${JSON.stringify(keys)} != ${JSON.stringify(expKeys)}`;
      const vals = await store.omapGetValues(c, o.oid, undefined, 1000);
      if (!sameMap(new Map(vals.entries), o.omap)) return `${what}: omap values differ`;
    }
  }
  return null;
}

function sameMap(a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !Buffer.from(v).equals(Buffer.from(w))) return false;
  }
  return true;
}

function firstDiff(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `first difference at ${i}: ${a[i]} vs ${b[i]}; lengths ${a.length}/${b.length}`;
  return `lengths ${a.length}/${b.length}`;
}
