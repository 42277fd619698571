/**
 * RBD images as NBD exports (what `aspen-rbd nbd serve` serves, as `rbd-nbd` does): the
 * export `POOL/IMAGE` is the image's head, writable; `POOL/IMAGE@SNAP` is that snapshot,
 * read-only. All connections to one export share ONE open {@link Image} (so one client holds
 * the image's exclusive lock, however many connections qemu or nbdcopy open), opened on the
 * first connection and closed (lock released) when the last one ends.
 *
 * Durability: an image write resolves once every replica has it durable (the OSD's ack), so
 * FUA and FLUSH have nothing left to do and writes are visible to every connection at once:
 * `canMultiConn` holds (proto.md NBD_FLAG_CAN_MULTI_CONN). A resize or snapshot by another
 * client reaches the open image through its header watch, so the export's size follows.
 */
import { AspenError } from '@aspen/shared';
import type { RadosClient } from '@aspen/shared/io/rados.ts';
import type { BlockDevice, BlockSizeConstraints, ExportListing, ExportResolver, Extent, OpenedExport } from '../nbd/device.ts';
import { listImages } from './admin.ts';
import { Image } from './image.ts';
import { parseImageSpec } from './layout.ts';

/** Block sizes advertised for images: any byte offset works, 4 KiB preferred, 32 MiB payloads. */
export const IMAGE_BLOCK_SIZE: BlockSizeConstraints = { minimumBytes: 1, preferredBytes: 4096, maximumPayloadBytes: 32 * 1024 * 1024 };

/** The NBD view of one open image. */
export class ImageBlockDevice implements BlockDevice {
  readonly canMultiConn = true;
  readonly blockSize = IMAGE_BLOCK_SIZE;
  constructor(readonly image: Image) {}
  get sizeBytes(): number {
    return this.image.sizeBytes;
  }
  get readOnly(): boolean {
    return !this.image.writable;
  }
  read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    return this.image.read(offsetBytes, lengthBytes);
  }
  write(offsetBytes: number, data: Uint8Array): Promise<void> {
    return this.image.write(offsetBytes, data);
  }
  flush(): Promise<void> {
    return this.image.flush();
  }
  trim(offsetBytes: number, lengthBytes: number): Promise<void> {
    return this.image.discard(offsetBytes, lengthBytes);
  }
  writeZeroes(offsetBytes: number, lengthBytes: number, opts: { readonly noHole: boolean }): Promise<void> {
    return this.image.writeZeroes(offsetBytes, lengthBytes, { noHole: opts.noHole });
  }
  async blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    const ext = await this.image.allocatedExtents(offsetBytes, lengthBytes);
    return ext.map((e) => ({ lengthBytes: e.lengthBytes, hole: !e.allocated, zero: !e.allocated }));
  }
}

interface Shared {
  readonly opening: Promise<ImageBlockDevice>;
  refs: number;
}

/** Options of {@link ImageExportResolver}. */
export interface ImageExportOptions {
  readonly client: RadosClient;
  /** Pools whose images NBD_OPT_LIST shows (any pool's image can be opened by name). */
  readonly pools: readonly string[];
  /** Break another client's exclusive lock when opening an image for writing. */
  readonly breakLock?: boolean;
}

/**
 * Resolves `POOL/IMAGE[@SNAP]` export names to shared open images.
 * `open` answers undefined for a missing pool, image or snapshot; EBUSY (another client
 * holds the image's lock) reaches the NBD client as an option error.
 */
export class ImageExportResolver implements ExportResolver {
  private readonly open_ = new Map<string, Shared>();
  constructor(private readonly o: ImageExportOptions) {}

  async list(): Promise<readonly ExportListing[]> {
    const out: ExportListing[] = [];
    for (const pool of this.o.pools) {
      let images: { name: string }[];
      try {
        images = await listImages(this.o.client, pool);
      } catch (err) {
        if (err instanceof AspenError && err.code === 'ENOENT') continue;
        throw err;
      }
      for (const i of images) out.push({ name: `${pool}/${i.name}`, description: `RBD image ${i.name} in pool ${pool}` });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async open(name: string): Promise<OpenedExport | undefined> {
    let spec: ReturnType<typeof parseImageSpec>;
    try {
      spec = parseImageSpec(name);
    } catch {
      return undefined;
    }
    if (spec.pool === undefined) return undefined;
    const key = `${spec.pool}/${spec.image}${spec.snap === undefined ? '' : `@${spec.snap}`}`;
    let shared = this.open_.get(key);
    if (shared === undefined) {
      const opening = Image.open(this.o.client, spec.pool, spec.image, spec.snap === undefined
        ? { exclusive: true, breakLock: this.o.breakLock === true }
        : { snapName: spec.snap, exclusive: false }).then((img) => new ImageBlockDevice(img));
      shared = { opening, refs: 0 };
      this.open_.set(key, shared);
      opening.catch(() => { if (this.open_.get(key) === shared) this.open_.delete(key); });
    }
    shared.refs++;
    const s = shared;
    let device: ImageBlockDevice;
    try {
      device = await s.opening;
    } catch (err) {
      s.refs--;
      if (err instanceof AspenError && err.code === 'ENOENT') return undefined;
      throw err;
    }
    let released = false;
    return {
      name: key,
      description: spec.snap === undefined ? `RBD image ${spec.image} in pool ${spec.pool}` : `RBD image ${spec.image}@${spec.snap} in pool ${spec.pool} (read-only)`,
      device,
      release: async () => {
        if (released) return;
        released = true;
        if (--s.refs === 0 && this.open_.get(key) === s) {
          this.open_.delete(key);
          await device.image.close();
        }
      },
    };
  }

  /** Closes every open image (server shutdown). */
  async close(): Promise<void> {
    const all = [...this.open_.values()];
    this.open_.clear();
    await Promise.all(all.map(async (s) => (await s.opening.catch(() => null))?.image.close()));
  }
}
