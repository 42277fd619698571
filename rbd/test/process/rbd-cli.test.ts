/**
 * Process-level test of RBD images: 3 real monitors and 3 real OSDs on loopback, a replicated
 * pool `rbd` (size 3), the `aspen-rbd` CLI run as a separate process, and the Image API in
 * this process. Covers create/ls/info, writes across object boundaries read back, discard,
 * export to a sparse file, import of a sparse file (and `du` showing it thin), snapshots seen
 * by an open writer through header notifications, read at a snapshot, rollback, resize seen
 * by an open handle, the exclusive lock (EBUSY, lock break), and rm refusals.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OsdTestCluster, REPO_ROOT, tsNodeArgs } from '@aspen/test';
import { AspenError } from '@aspen/shared';
import { Image } from '../../src/image/image.ts';

const RBD_ENTRY = join(REPO_ROOT, 'rbd', 'src', 'bin', 'aspen-rbd.ts');
const MiB = 1 << 20;

let cluster: OsdTestCluster | null = null;
const images: Image[] = [];

afterEach(async () => {
  for (const i of images) await i.close().catch(() => undefined);
  images.length = 0;
  await cluster?.teardown();
  cluster = null;
});

interface CliResult { code: number; stdout: string; stderr: string }

function cli(monAddrs: string, args: string[], stdin?: Uint8Array): Promise<CliResult & { raw: Buffer }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, '--no-progress', ...args]), { cwd: REPO_ROOT, maxBuffer: 256 * MiB, encoding: 'buffer' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8'), raw: stdout });
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}

async function codeOf(p: Promise<unknown>): Promise<string | 0> {
  try {
    await p;
    return 0;
  } catch (err) {
    if (err instanceof AspenError) return err.code;
    throw err;
  }
}

const eqBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

describe('aspen-rbd and the Image API (3 mons + 3 OSDs)', () => {
  it('creates, writes, exports, imports, snapshots, rolls back, resizes, locks and removes images', async () => {
    cluster = await OsdTestCluster.start({ osds: 3, pool: 'rbd', pgNum: 8 });
    const { client: c, monAddrs, h } = cluster;
    const rbd = (...args: string[]): Promise<CliResult & { raw: Buffer }> => cli(monAddrs, args);
    const ok = async (...args: string[]): Promise<string> => {
      const r = await rbd(...args);
      if (r.code !== 0) throw new Error(`aspen-rbd ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return r.stdout;
    };

    // create / ls / info
    await ok('create', 'img1', '--size', '32M', '--object-size', '1M');
    expect((await rbd('create', 'rbd/img1', '--size', '1G')).code).toBe(17);
    expect(JSON.parse(await ok('ls', '-f', 'json'))).toEqual(['img1']);
    const info = JSON.parse(await ok('-p', 'rbd', 'info', 'img1', '-f', 'json')) as { size: number; object_size: number; objects: number; block_name_prefix: string };
    expect(info).toMatchObject({ size: 32 * MiB, object_size: MiB, objects: 32 });
    expect(info.block_name_prefix).toMatch(/^rbd_data\.[0-9a-f]+$/);

    // Writes across object boundaries, read back against a model; holes read as zeros.
    const model = new Uint8Array(32 * MiB);
    const w = await Image.open(c, 'rbd', 'img1');
    images.push(w);
    expect(w.sizeBytes).toBe(32 * MiB);
    for (const [off, len] of [[0, 5000], [MiB - 100, 300], [3 * MiB - 1, 2 * MiB + 2], [20 * MiB + 7, 4096], [32 * MiB - 10, 10]] as const) {
      const d = randomBytes(len);
      await w.write(off, d);
      model.set(d, off);
    }
    expect(eqBytes(await w.read(0, 32 * MiB), model)).toBe(true);
    expect(eqBytes(await w.read(10 * MiB, MiB), new Uint8Array(MiB))).toBe(true);
    await w.discard(3 * MiB + 10, MiB); // inside object 3 to the end, then into object 4
    model.fill(0, 3 * MiB + 10, 4 * MiB + 10);
    await w.writeZeroes(MiB, MiB); // a whole object
    model.fill(0, MiB, 2 * MiB);
    expect(eqBytes(await w.read(0, 32 * MiB), model)).toBe(true);
    expect(await codeOf(w.write(32 * MiB - 1, new Uint8Array(2)))).toBe('EINVAL');
    const ext = await w.allocatedExtents(0, 32 * MiB);
    expect(ext.reduce((a, e) => a + e.lengthBytes, 0)).toBe(32 * MiB);
    expect(ext.find((e) => e.offsetBytes <= 10 * MiB && e.offsetBytes + e.lengthBytes > 10 * MiB)?.allocated).toBe(false);
    expect(ext.find((e) => e.offsetBytes <= 20 * MiB + 7 && e.offsetBytes + e.lengthBytes > 20 * MiB + 7)?.allocated).toBe(true);

    // The exclusive lock: a second writer is refused; a reader is fine.
    expect(await codeOf(Image.open(c, 'rbd', 'img1'))).toBe('EBUSY');
    const rd = await Image.open(c, 'rbd', 'img1', { exclusive: false });
    images.push(rd);
    expect(await codeOf(rd.write(0, new Uint8Array(1)))).toBe('EPERM');
    expect(JSON.parse(await ok('lock', 'ls', 'img1', '-f', 'json'))).toEqual([{ locker: c.clientId, id: expect.stringMatching(/^auto /) }]);

    // Export to a file (sparse) and compare.
    const exp = join(h.dir, 'img1.raw');
    await ok('export', 'img1', exp);
    expect(eqBytes(readFileSync(exp), model)).toBe(true);
    expect(statSync(exp).blocks * 512).toBeLessThan(16 * MiB);

    // Import a sparse file; du shows it thin.
    const src = join(h.dir, 'sparse.raw');
    const srcModel = new Uint8Array(16 * MiB);
    const fd = openSync(src, 'w');
    for (const [off, len] of [[0, 8192], [9 * MiB + 4096, 4096], [16 * MiB - 100, 100]] as const) {
      const d = randomBytes(len);
      writeSync(fd, d, 0, len, off);
      srcModel.set(d, off);
    }
    closeSync(fd);
    await ok('import', src, 'rbd/img2');
    const i2 = await Image.open(c, 'rbd', 'img2', { exclusive: false });
    images.push(i2);
    expect(i2.sizeBytes).toBe(16 * MiB);
    expect(eqBytes(await i2.read(0, 16 * MiB), srcModel)).toBe(true);
    const du = JSON.parse(await ok('du', 'img2', '-f', 'json')) as { images: { provisioned_size: number; used_size: number }[] };
    expect(du.images[0]!.provisioned_size).toBe(16 * MiB);
    // 4 MiB objects: object 0 holds 8 KiB, object 1 does not exist, object 2 ends after 1 MiB + 8 KiB, object 3 is full.
    expect(du.images[0]!.used_size).toBe(8192 + (MiB + 8192) + 4 * MiB);

    // Snapshot by the CLI while `w` is open: `w` reloads the snap context on the notification,
    // so its overwrite keeps the old data at the snapshot.
    await ok('snap', 'create', 'rbd/img1@s1');
    expect(w.header.snaps.map((s) => s.name)).toEqual(['s1']);
    const before = model.slice(0, 5000);
    await w.write(0, randomBytes(5000));
    const atSnap = await Image.open(c, 'rbd', 'img1', { snapName: 's1', exclusive: false });
    images.push(atSnap);
    expect(eqBytes(await atSnap.read(0, 5000), before)).toBe(true);
    expect(eqBytes(await atSnap.read(0, 32 * MiB), model)).toBe(true);
    expect(await codeOf(atSnap.write(0, new Uint8Array(1)))).toBe('EPERM');
    const snaps = JSON.parse(await ok('snap', 'ls', 'img1', '-f', 'json')) as { name: string; size: number; protected: string }[];
    expect(snaps).toMatchObject([{ name: 's1', size: 32 * MiB, protected: 'false' }]);
    expect((await rbd('rm', 'img1')).code).toBe(39); // ENOTEMPTY: it has snapshots

    // Rollback needs the lock: refused while `w` holds it, then restores the snapshot.
    expect((await rbd('snap', 'rollback', 'img1@s1')).code).toBe(16);
    await w.close();
    await ok('snap', 'rollback', '-p', 'rbd', 'img1@s1');
    expect(eqBytes(await rd.read(0, 32 * MiB), model)).toBe(true);

    // Resize: the open handle sees it at once (header notification).
    await ok('resize', 'img1', '--size', '40M');
    expect(rd.sizeBytes).toBe(40 * MiB);
    expect((await rbd('resize', 'img1', '--size', '8M')).code).toBe(22);
    await ok('resize', 'img1', '--size', '6M', '--allow-shrink');
    expect(rd.sizeBytes).toBe(6 * MiB);
    await ok('resize', 'img1', '--size', '24M');
    expect(rd.sizeBytes).toBe(24 * MiB);
    const expect24 = new Uint8Array(24 * MiB);
    expect24.set(model.subarray(0, 6 * MiB));
    expect(eqBytes(await rd.read(0, 24 * MiB), expect24)).toBe(true); // data past the shrink point is gone
    expect(eqBytes(await atSnap.read(20 * MiB, 5000), model.subarray(20 * MiB, 20 * MiB + 5000))).toBe(true); // but kept at the snapshot

    // Protection, snapshot removal, rm refusals.
    await ok('snap', 'protect', 'img1@s1');
    expect((await rbd('snap', 'rm', 'img1@s1')).code).toBe(16);
    await ok('snap', 'unprotect', 'img1@s1');
    await atSnap.close();
    await ok('snap', 'rm', 'img1@s1');
    expect(JSON.parse(await ok('snap', 'ls', 'img1', '-f', 'json'))).toEqual([]);
    expect((await rbd('rm', 'img1')).code).toBe(16); // `rd` still watches it
    await rd.close();

    // Lock break: the old holder learns it lost the lock.
    const holder = await Image.open(c, 'rbd', 'img2');
    images.push(holder);
    await ok('lock', 'break', 'img2');
    expect(await codeOf(holder.write(0, new Uint8Array(1)))).toBe('EBUSY');
    const taker = await Image.open(c, 'rbd', 'img2');
    images.push(taker);
    await taker.write(0, new Uint8Array([1]));
    await holder.close();
    await taker.close();
    await i2.close();

    // stdin/stdout streams, and bench.
    const piped = await rbd('export', 'img2', '-');
    expect(piped.code).toBe(0);
    const img2Now = await (async () => { const t = await Image.open(c, 'rbd', 'img2', { exclusive: false }); try { return await t.read(0, 16 * MiB); } finally { await t.close(); } })();
    expect(eqBytes(piped.raw, img2Now)).toBe(true);
    const stdinData = randomBytes(MiB + 12345);
    const imp = await cli(monAddrs, ['import', '-', 'fromstdin', '--object-size', '256K'], stdinData);
    expect(imp.code, imp.stderr).toBe(0);
    const fs = await Image.open(c, 'rbd', 'fromstdin', { exclusive: false });
    expect(fs.sizeBytes).toBe(stdinData.length);
    expect(eqBytes(await fs.read(0, stdinData.length), stdinData)).toBe(true);
    await fs.close();
    const bw = JSON.parse(await ok('bench', 'fromstdin', '--io-type', 'write', '--io-size', '4K', '--io-threads', '8', '--io-total', '256K', '-f', 'json')) as { ops: number };
    expect(bw.ops).toBe(64);
    const br = JSON.parse(await ok('bench', 'fromstdin', '--io-type', 'read', '--io-size', '64K', '--io-pattern', 'rand', '--io-total', '1M', '-f', 'json')) as { ops: number };
    expect(br.ops).toBe(16);
    await ok('rm', 'fromstdin');

    await ok('rename', 'img2', 'img3');
    await ok('rm', 'img1');
    expect(JSON.parse(await ok('ls', '-f', 'json'))).toEqual(['img3']);
    const id3 = (JSON.parse(await ok('info', 'img3', '-f', 'json')) as { id: string }).id;
    expect((await c.ioctx('rbd').listObjects()).filter((o) => o.startsWith('rbd_data.') && !o.startsWith(`rbd_data.${id3}.`))).toEqual([]); // img1's data is gone
  }, 180_000);
});
