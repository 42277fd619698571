/**
 * An in-memory sparse block device for protocol conformance tests: a map of allocated
 * 4 KiB blocks (absent = hole reading as zeroes). Counts what the server asked of it so tests
 * can check FUA, flush and "nothing half-applied" claims.
 */
import { AspenError } from '@aspen/shared/errors.ts';
import {
  DEFAULT_BLOCK_SIZE,
  type BlockDevice,
  type BlockSizeConstraints,
  type ExportResolver,
  type Extent,
  type OpenedExport,
  type ReadPiece,
} from '../../src/nbd/device.ts';

export const MEMORY_BLOCK_BYTES = 4096;

export interface MemoryDeviceOptions {
  sizeBytes: number;
  readOnly?: boolean;
  canMultiConn?: boolean;
  blockSize?: BlockSizeConstraints;
  /** Awaited before each operation (tests use it to reorder completions). */
  delay?: (op: string, offsetBytes: number) => Promise<void>;
  /** Operations the device fails, with this Aspen error code. */
  failWith?: (op: string, offsetBytes: number) => AspenError | undefined;
}

export class MemoryDevice implements BlockDevice {
  sizeBytes: number;
  readonly readOnly: boolean;
  readonly canMultiConn: boolean;
  readonly blockSize: BlockSizeConstraints;
  readonly blocks = new Map<number, Uint8Array>();
  readonly counts = { read: 0, write: 0, fua: 0, flush: 0, trim: 0, writeZeroes: 0, noHole: 0, blockStatus: 0 };
  /** Every write applied, in order (offset, length). */
  readonly writeLog: { offsetBytes: number; lengthBytes: number }[] = [];

  constructor(private readonly opts: MemoryDeviceOptions) {
    this.sizeBytes = opts.sizeBytes;
    this.readOnly = opts.readOnly ?? false;
    this.canMultiConn = opts.canMultiConn ?? true;
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  }

  private async before(op: string, offsetBytes: number, lengthBytes: number): Promise<void> {
    if (offsetBytes < 0 || offsetBytes + lengthBytes > this.sizeBytes) {
      throw new Error(`memory device: ${op} ${offsetBytes}+${lengthBytes} out of range (the server must not send it)`);
    }
    await this.opts.delay?.(op, offsetBytes);
    const err = this.opts.failWith?.(op, offsetBytes);
    if (err !== undefined) throw err;
  }

  /** Copies bytes out of the sparse map. */
  readNow(offsetBytes: number, lengthBytes: number): Uint8Array {
    const out = new Uint8Array(lengthBytes);
    for (let pos = offsetBytes; pos < offsetBytes + lengthBytes; ) {
      const block = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const within = pos - block * MEMORY_BLOCK_BYTES;
      const n = Math.min(MEMORY_BLOCK_BYTES - within, offsetBytes + lengthBytes - pos);
      const data = this.blocks.get(block);
      if (data !== undefined) out.set(data.subarray(within, within + n), pos - offsetBytes);
      pos += n;
    }
    return out;
  }

  private writeNow(offsetBytes: number, data: Uint8Array): void {
    for (let pos = offsetBytes; pos < offsetBytes + data.length; ) {
      const block = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const within = pos - block * MEMORY_BLOCK_BYTES;
      const n = Math.min(MEMORY_BLOCK_BYTES - within, offsetBytes + data.length - pos);
      let stored = this.blocks.get(block);
      if (stored === undefined) {
        stored = new Uint8Array(MEMORY_BLOCK_BYTES);
        this.blocks.set(block, stored);
      }
      stored.set(data.subarray(pos - offsetBytes, pos - offsetBytes + n), within);
      pos += n;
    }
  }

  /** Zeroes a range; whole blocks become holes unless `keepAllocated`. */
  private zeroNow(offsetBytes: number, lengthBytes: number, keepAllocated: boolean): void {
    for (let pos = offsetBytes; pos < offsetBytes + lengthBytes; ) {
      const block = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const within = pos - block * MEMORY_BLOCK_BYTES;
      const n = Math.min(MEMORY_BLOCK_BYTES - within, offsetBytes + lengthBytes - pos);
      if (n === MEMORY_BLOCK_BYTES && !keepAllocated) this.blocks.delete(block);
      else if (this.blocks.has(block) || keepAllocated) this.writeNow(pos, new Uint8Array(n));
      pos += n;
    }
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    await this.before('read', offsetBytes, lengthBytes);
    this.counts.read += 1;
    return this.readNow(offsetBytes, lengthBytes);
  }

  async readSparse(offsetBytes: number, lengthBytes: number): Promise<readonly ReadPiece[]> {
    await this.before('read', offsetBytes, lengthBytes);
    this.counts.read += 1;
    const pieces: ReadPiece[] = [];
    for (const run of this.runs(offsetBytes, lengthBytes)) {
      pieces.push(run.allocated
        ? { kind: 'data', offsetBytes: run.offsetBytes, data: this.readNow(run.offsetBytes, run.lengthBytes) }
        : { kind: 'zero', offsetBytes: run.offsetBytes, lengthBytes: run.lengthBytes });
    }
    return pieces;
  }

  /** Maximal runs of allocated / unallocated bytes over a range. */
  private runs(offsetBytes: number, lengthBytes: number): { offsetBytes: number; lengthBytes: number; allocated: boolean }[] {
    const out: { offsetBytes: number; lengthBytes: number; allocated: boolean }[] = [];
    for (let pos = offsetBytes; pos < offsetBytes + lengthBytes; ) {
      const block = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const n = Math.min((block + 1) * MEMORY_BLOCK_BYTES - pos, offsetBytes + lengthBytes - pos);
      const allocated = this.blocks.has(block);
      const last = out[out.length - 1];
      if (last !== undefined && last.allocated === allocated) last.lengthBytes += n;
      else out.push({ offsetBytes: pos, lengthBytes: n, allocated });
      pos += n;
    }
    return out;
  }

  async write(offsetBytes: number, data: Uint8Array, opts: { readonly fua: boolean }): Promise<void> {
    await this.before('write', offsetBytes, data.length);
    if (this.readOnly) throw new AspenError('EPERM', 'read-only');
    this.writeNow(offsetBytes, data);
    this.counts.write += 1;
    if (opts.fua) this.counts.fua += 1;
    this.writeLog.push({ offsetBytes, lengthBytes: data.length });
  }

  async flush(): Promise<void> {
    await this.before('flush', 0, 0);
    this.counts.flush += 1;
  }

  async trim(offsetBytes: number, lengthBytes: number, opts: { readonly fua: boolean }): Promise<void> {
    await this.before('trim', offsetBytes, lengthBytes);
    this.zeroNow(offsetBytes, lengthBytes, false);
    this.counts.trim += 1;
    if (opts.fua) this.counts.fua += 1;
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, opts: { readonly noHole: boolean; readonly fua: boolean }): Promise<void> {
    await this.before('writeZeroes', offsetBytes, lengthBytes);
    this.zeroNow(offsetBytes, lengthBytes, opts.noHole);
    this.counts.writeZeroes += 1;
    if (opts.noHole) this.counts.noHole += 1;
    if (opts.fua) this.counts.fua += 1;
  }

  async blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    await this.before('blockStatus', offsetBytes, lengthBytes);
    this.counts.blockStatus += 1;
    return this.runs(offsetBytes, lengthBytes).map((r) => ({ lengthBytes: r.lengthBytes, hole: !r.allocated, zero: !r.allocated }));
  }
}

/** A resolver over named memory devices; counts opens and releases. */
export class MemoryResolver implements ExportResolver {
  opens = 0;
  releases = 0;
  constructor(readonly devices: Map<string, { device: MemoryDevice; description?: string }>) {}

  async list() {
    return [...this.devices].map(([name, e]) => ({ name, description: e.description ?? '' }));
  }

  async open(name: string): Promise<OpenedExport | undefined> {
    const entry = this.devices.get(name);
    if (entry === undefined) return undefined;
    this.opens += 1;
    return {
      name,
      description: entry.description ?? '',
      device: entry.device,
      release: async () => {
        this.releases += 1;
      },
    };
  }
}
