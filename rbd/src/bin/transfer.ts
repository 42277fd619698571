/**
 * The I/O-heavy parts of `aspen-rbd`: export, import, bench, and the progress reporter. Edge
 * code (files, stdio, clocks); the image logic is in ../image/.
 */
import { closeSync, createReadStream, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { AspenError } from '@aspen/shared';
import type { RadosClient } from '@aspen/shared/io/rados.ts';
import { Image, type ImageOpenOptions } from '../image/image.ts';
import { createImage } from '../image/admin.ts';
import { formatSize } from '../image/layout.ts';
import { nonZeroRuns } from '../image/sparse.ts';
import { exportDiff, importDiff, type DiffRange } from '../image/diff.ts';

/** Chunks an export/import keeps in flight (named limit). */
export const TRANSFER_CHUNKS_INFLIGHT_MAX = 4;

/**
 * Progress on stderr as `rbd` prints it (`Exporting image: 42% complete...`): rewritten in
 * place on a terminal, a line per 10 % otherwise (cli-progress is not installed).
 */
export class Progress {
  private lastShown = -1;
  constructor(private readonly label: string, private readonly enabled: boolean) {}
  update(done: number, total: number): void {
    if (!this.enabled) return;
    const pct = total <= 0 ? 100 : Math.floor((done / total) * 100);
    if (process.stderr.isTTY) {
      if (pct !== this.lastShown) process.stderr.write(`\r${this.label}: ${pct}% complete...`);
    } else if (Math.floor(pct / 10) !== Math.floor(this.lastShown / 10)) {
      process.stderr.write(`${this.label}: ${pct}% complete...\n`);
    }
    this.lastShown = pct;
  }
  done(): void {
    if (!this.enabled) return;
    process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}${this.label}: 100% complete...done.\n`);
  }
}

/** Writes to stdout and resolves once the bytes were handed to the OS (so exiting loses nothing). */
function writeStdout(b: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(b, (err) => (err ? reject(err) : resolve())));
}

/**
 * Exports an image (or snapshot) to `file`, or stdout for `-` (`rbd export`). Into a file,
 * all-zero 4 KiB blocks are not written (the file is sparse) and the file is sized exactly.
 * @returns bytes exported.
 */
export async function exportImage(client: RadosClient, pool: string, name: string, snap: string | undefined, file: string, progress: Progress): Promise<number> {
  const o: ImageOpenOptions = snap === undefined ? { exclusive: false } : { snapName: snap, exclusive: false };
  const img = await Image.open(client, pool, name, o);
  const fd = file === '-' ? null : openSync(file, 'w');
  try {
    const size = img.sizeBytes;
    const chunk = img.objectSizeBytes;
    const n = Math.ceil(size / chunk);
    let done = 0;
    // A window of reads in flight, consumed in order (stdout needs order; a file does not mind).
    const pending: Promise<Uint8Array>[] = [];
    const start = (i: number): void => {
      const off = i * chunk;
      pending.push(img.read(off, Math.min(chunk, size - off)));
    };
    let next = 0;
    while (next < n && pending.length < TRANSFER_CHUNKS_INFLIGHT_MAX) start(next++);
    for (let i = 0; i < n; i++) {
      const data = await pending.shift()!;
      if (next < n) start(next++);
      const off = i * chunk;
      if (fd === null) await writeStdout(data);
      else for (const [a, b] of nonZeroRuns(data)) writeSync(fd, data, a, b - a, off + a);
      progress.update(++done, n);
    }
    if (fd !== null) ftruncateSync(fd, size);
    progress.done();
    return size;
  } finally {
    if (fd !== null) closeSync(fd);
    await img.close();
  }
}

/** Reads up to `length` bytes of `fd` at `position` (null: sequential, for stdin). */
function readChunk(fd: number, length: number, position: number | null): Uint8Array {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    let n: number;
    try {
      n = readSync(fd, buf, got, length - got, position === null ? null : position + got);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue; // a non-blocking stdin pipe
      if ((err as NodeJS.ErrnoException).code === 'EOF') break;
      throw err;
    }
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * Imports `file` (or stdin for `-`) as a new image `name` (`rbd import`): the image is created
 * with the file's size (from stdin it grows as data arrives and is cut to the exact length at
 * the end), opened with the exclusive lock, and only the non-zero 4 KiB blocks are written, so
 * the image stays thin.
 * @returns bytes imported.
 * @throws AspenError EEXIST when the image exists.
 */
export async function importImage(client: RadosClient, pool: string, file: string, name: string, o: { objectSizeBytes?: number; dataPool?: string; id: string; nowMs: number }, progress: Progress): Promise<number> {
  const fd = file === '-' ? 0 : openSync(file, 'r');
  try {
    const known = file === '-' ? null : fstatSync(fd).size;
    await createImage(client, pool, name, {
      sizeBytes: known ?? 0, id: o.id, createTimestampMs: o.nowMs, ...(o.objectSizeBytes === undefined ? {} : { objectSizeBytes: o.objectSizeBytes }), ...(o.dataPool === undefined ? {} : { dataPool: o.dataPool }),
    });
    const img = await Image.open(client, pool, name);
    try {
      const chunk = img.objectSizeBytes;
      let offset = 0;
      const inflight = new Set<Promise<void>>();
      let failed: unknown = null;
      for (;;) {
        const data = readChunk(fd, chunk, known === null ? null : offset);
        if (data.length === 0) break;
        if (known === null && offset + data.length > img.sizeBytes) await img.resize(Math.max(offset + data.length, img.sizeBytes * 2));
        const at = offset;
        const p = (async () => {
          for (const [a, b] of nonZeroRuns(data)) await img.write(at + a, data.subarray(a, b));
        })().catch((err: unknown) => { failed ??= err; }).finally(() => inflight.delete(p));
        inflight.add(p);
        offset += data.length;
        if (inflight.size >= TRANSFER_CHUNKS_INFLIGHT_MAX) await Promise.race(inflight);
        if (failed !== null) break;
        progress.update(offset, known ?? offset);
      }
      await Promise.all(inflight);
      if (failed !== null) throw failed;
      if (known === null && img.sizeBytes !== offset) await img.resize(offset, { allowShrink: true });
      progress.done();
      return offset;
    } finally {
      await img.close();
    }
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

/** Options of {@link benchImage} (rbd bench's). */
export interface BenchOptions {
  ioType: 'read' | 'write';
  ioSizeBytes: number;
  ioThreads: number;
  ioTotalBytes: number;
  pattern: 'seq' | 'rand';
  breakLock: boolean;
}

/** Result of a bench run. */
export interface BenchResult {
  elapsedSec: number;
  ops: number;
  opsPerSec: number;
  bytesPerSec: number;
}

/**
 * `rbd bench`: `ioTotalBytes / ioSizeBytes` ops of `ioSizeBytes` with `ioThreads` in flight,
 * sequential or uniformly random (aligned to the io size), printing a line per second.
 */
export async function benchImage(client: RadosClient, pool: string, name: string, o: BenchOptions, log: (s: string) => void): Promise<BenchResult> {
  if (!(o.ioSizeBytes > 0) || !(o.ioThreads > 0) || !(o.ioTotalBytes >= o.ioSizeBytes)) throw new AspenError('EINVAL', 'io-size, io-threads and io-total must be positive, io-total ≥ io-size');
  const img = await Image.open(client, pool, name, o.ioType === 'write' ? { breakLock: o.breakLock } : { exclusive: false });
  try {
    const slots = Math.floor(img.sizeBytes / o.ioSizeBytes);
    if (slots < 1) throw new AspenError('EINVAL', `image of ${img.sizeBytes} bytes is smaller than the io size`);
    const total = Math.floor(o.ioTotalBytes / o.ioSizeBytes);
    const payload = new Uint8Array(o.ioSizeBytes).map((_, i) => (i * 131 + 7) & 0xff);
    log(`bench  type ${o.ioType} io_size ${o.ioSizeBytes} io_threads ${o.ioThreads} bytes ${total * o.ioSizeBytes} pattern ${o.pattern === 'seq' ? 'sequential' : 'random'}`);
    log('  SEC       OPS   OPS/SEC   BYTES/SEC');
    let issued = 0;
    let ops = 0;
    const start = performance.now();
    let lastOps = 0;
    let lastT = start;
    const ticker = setInterval(() => {
      const t = performance.now();
      const rate = ((ops - lastOps) * 1000) / (t - lastT);
      log(`${String(Math.round((t - start) / 1000)).padStart(5)} ${String(ops).padStart(9)} ${rate.toFixed(2).padStart(9)}   ${formatSize(Math.round(rate * o.ioSizeBytes))}/s`);
      lastOps = ops;
      lastT = t;
    }, 1000);
    try {
      const worker = async (): Promise<void> => {
        while (issued < total) {
          const i = issued++;
          const slot = o.pattern === 'seq' ? i % slots : Math.floor(Math.random() * slots);
          const off = slot * o.ioSizeBytes;
          if (o.ioType === 'write') await img.write(off, payload);
          else await img.read(off, o.ioSizeBytes);
          ops++;
        }
      };
      await Promise.all(Array.from({ length: o.ioThreads }, worker));
    } finally {
      clearInterval(ticker);
    }
    const elapsedSec = (performance.now() - start) / 1000;
    const r = { elapsedSec, ops, opsPerSec: ops / elapsedSec, bytesPerSec: (ops * o.ioSizeBytes) / elapsedSec };
    log(`elapsed: ${elapsedSec.toFixed(2)}   ops: ${ops}   ops/sec: ${r.opsPerSec.toFixed(2)}   bytes/sec: ${formatSize(Math.round(r.bytesPerSec))}/s`);
    return r;
  } finally {
    await img.close();
  }
}

/** `export-diff` to `file` or stdout (`-`). @returns data bytes written in `w` records. */
export async function exportDiffTo(client: RadosClient, pool: string, name: string, range: DiffRange, file: string, progress: Progress): Promise<number> {
  const fd = file === '-' ? null : openSync(file, 'w');
  try {
    const emit = fd === null ? writeStdout : (b: Uint8Array): Promise<void> => {
      let at = 0;
      while (at < b.length) at += writeSync(fd, b, at, b.length - at);
      return Promise.resolve();
    };
    const n = await exportDiff(client, pool, name, range, emit, (d, t) => progress.update(d, t));
    progress.done();
    return n;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** `import-diff` from `file` or stdin (`-`). @returns records applied. */
export async function importDiffFrom(client: RadosClient, pool: string, name: string, file: string, o: { nowMs: number; breakLock: boolean }): Promise<number> {
  const source: AsyncIterable<Uint8Array> = file === '-' ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
  return importDiff(client, pool, name, source, o);
}
