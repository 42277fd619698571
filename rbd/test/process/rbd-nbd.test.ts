/**
 * `aspen-rbd nbd serve` end to end (issue 6, NBD part): 3 real monitors, 3 real OSDs, pool
 * `rbd` (size 3), an image created with the CLI, and the server run as its own process; real
 * NBD clients (nbdinfo, qemu-io, qemu-img) read and write the image through it. Covers the
 * export list, pattern writes across an object boundary read back over NBD and through the
 * Image API, base:allocation holes, a snapshot exported read-only at `POOL/IMG@SNAP`, a resize
 * seen by the next connection, the exclusive lock held by the export (a second writer gets
 * EBUSY), qemu-img convert of a file onto the export compared byte for byte, and SIGTERM.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { OsdTestCluster, REPO_ROOT, freePorts, tsNodeArgs, waitFor } from '@aspen/test';
import { AspenError } from '@aspen/shared';
import { Image } from '../../src/image/image.ts';

const run = promisify(execFile);
const RBD_ENTRY = join(REPO_ROOT, 'rbd', 'src', 'bin', 'aspen-rbd.ts');
const MiB = 1 << 20;
const haveTools = await Promise.all(['nbdinfo', 'qemu-io', 'qemu-img'].map((t) => run(t, ['--version']).then(() => true, () => false))).then((a) => a.every(Boolean));

let cluster: OsdTestCluster | null = null;
afterEach(async () => {
  await cluster?.teardown();
  cluster = null;
});

async function rbd(monAddrs: string, args: string[]): Promise<string> {
  const r = await run(process.execPath, tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, '--no-progress', ...args]), { cwd: REPO_ROOT });
  return r.stdout;
}

async function qemuIo(uri: string, cmds: string[], readOnly = false): Promise<string> {
  const args = ['-f', 'raw', ...(readOnly ? ['-r'] : []), ...cmds.flatMap((c) => ['-c', c]), uri];
  const r = await run('qemu-io', args);
  if (/(fail|error|Pattern verification failed)/i.test(r.stdout + r.stderr)) throw new Error(`qemu-io ${cmds.join('; ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!haveTools)('aspen-rbd nbd serve', () => {
  it('serves images to qemu-io/qemu-img/nbdinfo: boundary writes, holes, a read-only snapshot export, resize, the lock, convert', async () => {
    cluster = await OsdTestCluster.start({ osds: 3, pool: 'rbd', pgNum: 8 });
    const { client: c, monAddrs, h } = cluster;
    await rbd(monAddrs, ['create', 'disk', '--size', '64M']);
    const [port] = await freePorts(1);
    h.spawn({ name: 'rbd-nbd', args: tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, 'nbd', 'serve', '--port', String(port)]) });
    await waitFor(() => h.log('rbd-nbd').includes('serving nbd://'), { timeoutMs: 30_000, what: 'the NBD server' });
    const base = `nbd://127.0.0.1:${port}`;

    expect((await run('nbdinfo', ['--list', base])).stdout).toMatch(/export="rbd\/disk"/);
    // Pattern writes straddling the 4 MiB object boundary, then read back over NBD.
    await qemuIo(`${base}/rbd/disk`, ['write -P 0xab 4160k 128k', 'write -P 0x11 0 4k', 'flush']);
    await qemuIo(`${base}/rbd/disk`, ['read -P 0xab 4160k 128k', 'read -P 0x11 0 4k', 'read -P 0 4k 60k']);
    // Holes where nothing was written (base:allocation).
    const map = (await run('nbdinfo', ['--map', `${base}/rbd/disk`])).stdout;
    expect(map).toMatch(/hole/);
    expect(map).toMatch(/data/);

    // While a client is connected, the export holds the image's lock: a second writer gets EBUSY.
    const held = spawn('qemu-io', ['-f', 'raw', `${base}/rbd/disk`], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitFor(async () => {
        try {
          await (await Image.open(c, 'rbd', 'disk')).close();
          return false;
        } catch (err) {
          if (err instanceof AspenError && err.code === 'EBUSY') return true;
          throw err;
        }
      }, { timeoutMs: 20_000, what: 'EBUSY for a second writer while the export is open' });
    } finally {
      held.stdin.end('quit\n');
      await new Promise((r) => held.once('exit', r));
    }

    // A snapshot, then an overwrite: the snapshot export is read-only and shows the old bytes.
    await rbd(monAddrs, ['snap', 'create', 'rbd/disk@s1']);
    await qemuIo(`${base}/rbd/disk`, ['write -P 0xcd 4160k 128k']);
    await qemuIo(`${base}/rbd/disk@s1`, ['read -P 0xab 4160k 128k'], true);
    await qemuIo(`${base}/rbd/disk`, ['read -P 0xcd 4160k 128k']);
    await expect(qemuIo(`${base}/rbd/disk@s1`, ['write -P 0x1 0 4k'])).rejects.toThrow();

    // Resize with the CLI: the next connection sees the new size.
    await rbd(monAddrs, ['resize', 'disk', '--size', '96M']);
    await waitFor(async () => (await run('nbdinfo', ['--size', `${base}/rbd/disk`])).stdout.trim() === String(96 * MiB), { timeoutMs: 10_000, what: 'the new size over NBD' });

    // qemu-img convert a file onto the export, then compare with what the Image API reads.
    const data = randomBytes(8 * MiB + 12_345);
    const file = join(h.path('files'), 'src.raw');
    writeFileSync(file, data);
    await rbd(monAddrs, ['create', 'conv', '--size', '16M']);
    await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', file, `${base}/rbd/conv`]);
    const back = join(h.path('files'), 'back.raw');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `${base}/rbd/conv`, back]);
    const got = readFileSync(back);
    expect(got.length).toBe(16 * MiB);
    expect(Buffer.compare(got.subarray(0, data.length), data)).toBe(0);
    expect(got.subarray(data.length).every((b) => b === 0)).toBe(true);

    // SIGTERM: the server stops cleanly and releases the image's lock.
    const st = await h.stop('rbd-nbd', 20_000); // closing the image releases its lock through the cluster
    expect(st.code).toBe(0);
    const img = await Image.open(c, 'rbd', 'disk');
    expect(Buffer.from(await img.read(4160 * 1024, 4096)).every((b) => b === 0xcd)).toBe(true);
    await img.close();
  }, 240_000);
});
