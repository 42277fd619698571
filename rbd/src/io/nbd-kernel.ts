/**
 * Attaching an NBD export as a kernel block device `/dev/nbdX`, as `rbd-nbd map` does, through
 * Debian's `nbd-client` (which performs the NBD_SET_SOCK / NBD_DO_IT ioctls Node cannot).
 * Needs the kernel's `nbd` module; where it is absent (this development VM, many containers)
 * every call says so plainly instead of failing obscurely.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { AspenError } from '@aspen/shared';

const run = promisify(execFile);

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((d) => d !== '' && existsSync(`${d}/${cmd}`));
}

/** Why a kernel NBD device cannot be used here, or null when it can. */
export function kernelNbdMissingReason(): string | null {
  if (!existsSync('/sys/module/nbd') && !existsSync('/dev/nbd0')) return 'the kernel has no NBD module (/sys/module/nbd and /dev/nbd0 are absent; try modprobe nbd)';
  if (!onPath('nbd-client')) return 'nbd-client is not installed (apt-get install nbd-client)';
  return null;
}

/** Attached kernel NBD devices: `/dev/nbdN` whose `/sys/block/nbdN/pid` names the serving process. */
export function kernelNbdDevices(): { device: string; pid: number }[] {
  if (!existsSync('/sys/block')) return [];
  const out: { device: string; pid: number }[] = [];
  for (const d of readdirSync('/sys/block').filter((x) => /^nbd\d+$/.test(x)).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)))) {
    const pidFile = `/sys/block/${d}/pid`;
    if (existsSync(pidFile)) out.push({ device: `/dev/${d}`, pid: Number(readFileSync(pidFile, 'utf8').trim()) });
  }
  return out;
}

/**
 * Connects `device` (default: the first `/dev/nbdN` not in use) to export `name` on
 * 127.0.0.1:`port`. Returns the device path.
 * @throws AspenError E_UNSUPPORTED without kernel support or nbd-client; EBUSY when no device
 *   is free; EIO when nbd-client fails (its message included).
 */
export async function mapKernelNbd(name: string, port: number, device?: string): Promise<string> {
  const missing = kernelNbdMissingReason();
  if (missing !== null) throw new AspenError('E_UNSUPPORTED', missing);
  let dev = device;
  if (dev === undefined) {
    const used = new Set(kernelNbdDevices().map((d) => d.device));
    const all = readdirSync('/sys/block').filter((x) => /^nbd\d+$/.test(x)).map((x) => `/dev/${x}`).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
    dev = all.find((d) => !used.has(d));
    if (dev === undefined) throw new AspenError('EBUSY', 'every /dev/nbdX is in use');
  }
  try {
    await run('nbd-client', ['127.0.0.1', String(port), dev, '-N', name, '-b', '4096']);
  } catch (err) {
    throw new AspenError('EIO', `nbd-client could not attach ${dev}: ${String((err as { stderr?: string }).stderr ?? err)}`);
  }
  return dev;
}

/**
 * Disconnects a kernel NBD device.
 * @throws AspenError EIO when nbd-client fails.
 */
export async function unmapKernelNbd(device: string): Promise<void> {
  try {
    await run('nbd-client', ['-d', device]);
  } catch (err) {
    throw new AspenError('EIO', `nbd-client could not detach ${device}: ${String((err as { stderr?: string }).stderr ?? err)}`);
  }
}
