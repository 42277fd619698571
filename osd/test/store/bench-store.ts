/**
 * Object store micro-benchmark, run by hand (not in CI):
 *
 *   node --import tsx osd/test/store/bench-store.ts [DIR] [SECONDS]
 *
 * DIR defaults to a fresh directory under the OS temp dir (the real disk here); SECONDS is the
 * duration of each timed phase (default 5). Prints:
 * - 4 KiB random overwrites into 4 MiB objects (the RBD pattern; deferred path), ops/s at 64 in flight;
 * - 4 KiB writes of new objects, ops/s at 64 in flight: inline blobs (the default) and, on a
 *   second store with `inlineMaxBytes: 0`, one file per object (the format-1 path);
 * - 4 MiB full-object writes (copy-on-write path), MB/s at 8 in flight;
 * - 4 MiB object reads with checksum verification, MB/s, against reading the same blob files
 *   with fs.readFileSync (the page-cache file-read speed the store should approach).
 */
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { Transaction } from '../../src/store/transaction.ts';

const base = process.argv[2] || mkdtempSync(join(tmpdir(), 'aspen-store-bench-'));
const seconds = Number(process.argv[3] ?? 5);
const C = '1.0_head';
const MiB = 1024 * 1024;

let x = 12345;
function rand(n: number): number {
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  return x % n;
}

function payload(len: number, seed: number): Uint8Array {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i += 4) b.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
  return b;
}

/** Runs `op` with `inflight` concurrent callers for `durationMs`; returns completed ops, seconds and this process's CPU µs per op. */
async function timed(inflight: number, durationMs: number, op: (i: number) => Promise<void>): Promise<{ ops: number; secs: number; cpuUsPerOp: number }> {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  let n = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() - start < durationMs) await op(n++);
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const cpu = process.cpuUsage(cpu0);
  return { ops: n, secs: (performance.now() - start) / 1000, cpuUsPerOp: Math.round((cpu.user + cpu.system) / Math.max(1, n)) };
}

const store = new SqliteObjectStore({ path: join(base, 'store') });
await store.mkfs();
await store.mount();
await store.queueTransaction(new Transaction().createCollection(C));
const cpu0 = process.cpuUsage();

// Setup: 16 objects of 4 MiB for the overwrite phase.
const objects = 16;
for (let i = 0; i < objects; i++) await store.queueTransaction(new Transaction().write(C, { name: `rbd_data.${i}` }, 0, payload(4 * MiB, i)));

const block = payload(4096, 7);
const r1 = await timed(64, seconds * 1000, () => store.queueTransaction(new Transaction().write(C, { name: `rbd_data.${rand(objects)}` }, rand(1024) * 4096, block)));
const s1 = store.stats();
console.log(`4 KiB random overwrites (deferred), 64 in flight: ${Math.round(r1.ops / r1.secs)} ops/s, ${r1.cpuUsPerOp} CPU µs/op (${r1.ops} ops; ${s1.commits} group commits so far)`);

for (const kib of [64, 512]) {
  const chunk = payload(kib * 1024, kib);
  const slots = (4 * 1024) / kib;
  const r = await timed(16, seconds * 1000, () => store.queueTransaction(new Transaction().write(C, { name: `rbd_data.${rand(objects)}` }, rand(slots) * kib * 1024, chunk)));
  console.log(`${kib} KiB random overwrites into 4 MiB objects, 16 in flight: ${Math.round(r.ops / r.secs)} ops/s, ${Math.round((r.ops * kib) / 1024 / r.secs)} MiB/s`);
}

const r2 = await timed(64, seconds * 1000, (i) => store.queueTransaction(new Transaction().write(C, { name: `small.${i}` }, 0, block)));
console.log(`4 KiB new-object writes (inline blobs), 64 in flight: ${Math.round(r2.ops / r2.secs)} ops/s, ${r2.cpuUsPerOp} CPU µs/op`);
// The same on a store without inline blobs: a file per object (created, fsynced with its directory at journal cleanup).
const fileStore = new SqliteObjectStore({ path: join(base, 'store-files'), inlineMaxBytes: 0 });
await fileStore.mkfs();
await fileStore.mount();
await fileStore.queueTransaction(new Transaction().createCollection(C));
const r2f = await timed(64, seconds * 1000, (i) => fileStore.queueTransaction(new Transaction().write(C, { name: `small.${i}` }, 0, block)));
console.log(`4 KiB new-object writes (file per object, inlineMaxBytes 0), 64 in flight: ${Math.round(r2f.ops / r2f.secs)} ops/s, ${r2f.cpuUsPerOp} CPU µs/op`);
await fileStore.umount();
const smallN = Math.min(r2.ops, 10_000);
const r2r = await timed(16, seconds * 1000, async (i) => {
  await store.read(C, { name: `small.${i % smallN}` }, 0, 4096);
});
console.log(`4 KiB reads of inline objects (crc32c verified), 16 in flight: ${Math.round(r2r.ops / r2r.secs)} ops/s, ${r2r.cpuUsPerOp} CPU µs/op`);

const big = payload(4 * MiB, 99);
let bigCount = 0;
const r3 = await timed(8, seconds * 1000, async (i) => {
  await store.queueTransaction(new Transaction().write(C, { name: `obj4m.${i}` }, 0, big));
  bigCount = Math.max(bigCount, i + 1);
});
console.log(`4 MiB object writes (copy-on-write), 8 in flight: ${Math.round((r3.ops * 4) / r3.secs)} MiB/s (${r3.ops} objects)`);

// Reads: the 4 MiB objects just written (page cache warm, like the file-read baseline below).
const readN = Math.min(bigCount, 64);
let bytes = 0;
const r4 = await timed(1, seconds * 1000, async (i) => {
  const d = await store.read(C, { name: `obj4m.${i % readN}` }, 0, 4 * MiB);
  bytes += d.length;
});
console.log(`4 MiB object reads (crc32c verified), 1 in flight: ${Math.round(bytes / MiB / r4.secs)} MiB/s`);

// Baseline: the same kind of files read straight from the filesystem (4 MiB blob files).
const blobDir = join(base, 'store', 'blobs');
const bigFiles: string[] = [];
for (const d of readdirSync(blobDir)) for (const f of readdirSync(join(blobDir, d))) if (statSync(join(blobDir, d, f)).size === 4 * MiB) bigFiles.push(join(blobDir, d, f));
const sample = bigFiles.slice(0, readN);
let fileBytes = 0;
const r5 = await timed(1, seconds * 1000, async (i) => {
  fileBytes += readFileSync(sample[i % sample.length]!).length;
});
console.log(`baseline fs.readFileSync of ${sample.length} 4 MiB blob files: ${Math.round(fileBytes / MiB / r5.secs)} MiB/s`);

// Baselines for the write phases: plain files with fsync, same concurrency, no store.
const raw = join(base, 'raw');
mkdirSync(raw);
const fd4k = openSync(join(raw, 'f4k'), 'w');
const r6 = await timed(1, Math.min(3000, seconds * 1000), async (i) => {
  writeSync(fd4k, block, 0, 4096, (i % 1024) * 4096);
  fsyncSync(fd4k);
});
closeSync(fd4k);
console.log(`baseline 4 KiB pwrite + fsync loop: ${Math.round(r6.ops / r6.secs)} ops/s`);
const r7 = await timed(8, Math.min(3000, seconds * 1000), async (i) => {
  const fh = await open(join(raw, `f4m.${i}`), 'w');
  await fh.write(big, 0, big.length, 0);
  await fh.sync();
  await fh.close();
});
console.log(`baseline 4 MiB file write + fsync, 8 in flight: ${Math.round((r7.ops * 4) / r7.secs)} MiB/s`);
const cpu = process.cpuUsage(cpu0);
console.log(`CPU: ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s user+sys; stats ${JSON.stringify(store.stats())}`);

await store.umount();
if (!process.argv[2]) rmSync(base, { recursive: true, force: true });
