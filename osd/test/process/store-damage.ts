/**
 * Test-only damage to a STOPPED `aspen-osd`'s store, for scrub and repair tests: flips one
 * byte inside a data file without touching the checksums the store keeps, so the next read
 * of that block fails its crc32c (EIO), as a bit rot on disk would.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Finds the data file under `storeDir` (an OSD's `<data>/store`) that holds `marker` and
 * flips one bit of its first byte there. Returns the file's path.
 * @throws Error when no data file holds the marker (e.g. the object is stored inline).
 */
export function flipByteOf(storeDir: string, marker: Uint8Array): string {
  const root = join(storeDir, 'blobs');
  for (const d of readdirSync(root)) {
    for (const f of readdirSync(join(root, d))) {
      const path = join(root, d, f);
      const raw = readFileSync(path);
      const at = raw.indexOf(Buffer.from(marker));
      if (at < 0) continue;
      raw[at] = raw[at]! ^ 0x40;
      writeFileSync(path, raw);
      return path;
    }
  }
  throw new Error(`no data file under ${root} holds the marker`);
}
