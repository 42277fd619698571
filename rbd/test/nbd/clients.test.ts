/**
 * The NBD server against real clients (Debian qemu-utils, libnbd-bin, fio) on a free loopback
 * port, over an in-memory sparse device. Skipped when the tools are not installed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { startNbdServer, type NbdServer } from '../../src/io/nbd-server.ts';
import { MemoryDevice, MemoryResolver } from './memory-device.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const haveTools = await Promise.all(['qemu-io', 'qemu-img', 'nbdinfo', 'nbdcopy'].map((t) => run('which', [t]).then(() => true, () => false)));
const haveFio = await run('fio', ['--enghelp=nbd']).then((r) => r.stdout.includes('uri'), () => false);

/** Concurrently open exports, to show that clients really used several connections. */
class CountingResolver extends MemoryResolver {
  openNow = 0;
  openMax = 0;
  override async open(name: string) {
    const opened = await super.open(name);
    if (opened === undefined) return undefined;
    this.openNow += 1;
    this.openMax = Math.max(this.openMax, this.openNow);
    return { ...opened, release: async () => { this.openNow -= 1; await opened.release(); } };
  }
}

describe.skipIf(!haveTools.every(Boolean))('nbd server with real clients', () => {
  let server: NbdServer;
  let dir: string;
  const disk = new MemoryDevice({ sizeBytes: 64 * MiB });
  const snap = new MemoryDevice({ sizeBytes: 4 * MiB, readOnly: true, canMultiConn: false });
  const resolver = new CountingResolver(new Map([
    ['rbd/disk', { device: disk, description: 'test disk' }],
    ['rbd/disk@snap', { device: snap }],
  ]));
  const uri = (name: string) => `nbd://127.0.0.1:${server.port}/${name}`;

  beforeAll(async () => {
    server = await startNbdServer({ resolver, port: 0 });
    dir = await mkdtemp(join(tmpdir(), 'aspen-nbd-'));
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs qemu-io commands; fails on any error or pattern mismatch (qemu-io exits 0 on those). */
  async function qemuIo(name: string, ...cmds: string[]): Promise<string> {
    const readOnly = name.includes('@') ? ['-r'] : [];
    const { stdout, stderr } = await run('qemu-io', [...readOnly, '-f', 'raw', uri(name), ...cmds.flatMap((c) => ['-c', c])]);
    const out = stdout + stderr;
    expect(out).not.toMatch(/Pattern verification failed|failed:|error/i);
    return out;
  }

  it('nbdinfo --list shows every export with its size, flags and base:allocation', async () => {
    const { stdout } = await run('nbdinfo', ['--list', '--json', uri('')]);
    const exports = JSON.parse(stdout).exports as Record<string, unknown>[];
    expect(exports.map((e) => [e['export-name'], e['export-size'], e['is_read_only'], e['can_multi_conn']])).toEqual([
      ['rbd/disk', 64 * MiB, false, true],
      ['rbd/disk@snap', 4 * MiB, true, false],
    ]);
    expect(exports[0]).toMatchObject({ description: 'test disk', contexts: ['base:allocation'], can_fua: true, can_trim: true, can_zero: true, block_size_preferred: 4096 });
  });

  it('qemu-io pattern writes and reads (4K/64K/256K/1M, partial overwrite, crossing boundaries)', async () => {
    await qemuIo('rbd/disk',
      'write -P 0xab 0 4k', 'write -P 0xac 4M 64k', 'write -P 0xad 8M 256k', 'write -P 0xae 12M 1M',
      // 8 KiB and 1 MiB across the 24 MiB and 28 MiB (4 MiB object) boundaries; a 512-byte overwrite.
      'write -P 0x11 25161728 8k', 'write -P 0x12 28835840 1M', 'write -P 0x22 4M 512',
      'read -P 0xab 0 4k', 'read -P 0xad 8M 256k', 'read -P 0xae 12M 1M',
      'read -P 0x11 25161728 8k', 'read -P 0x12 28835840 1M', 'read -P 0x22 4M 512', 'read -P 0xac 4194816 65024',
      'read -P 0 32M 1M');
  });

  it('FUA writes and flush reach the device as FUA and flush', async () => {
    const before = { ...disk.counts };
    await qemuIo('rbd/disk', 'write -f -P 0x5a 20M 64k', 'flush', 'read -P 0x5a 20M 64k');
    expect(disk.counts.fua).toBeGreaterThan(before.fua);
    expect(disk.counts.flush).toBeGreaterThan(before.flush);
  });

  it('discard and write-zeroes read back as zeroes, and nbdinfo --map reports the holes', async () => {
    await qemuIo('rbd/disk', 'write -P 0x77 40M 1M', 'discard 40M 256k', 'write -z -u 41216k 256k', 'write -z 41472k 64k',
      'read -P 0 40M 256k', 'read -P 0 41216k 320k', 'read -P 0x77 41536k 448k');
    const { stdout } = await run('nbdinfo', ['--map', '--json', uri('rbd/disk')]);
    const map = JSON.parse(stdout) as { offset: number; length: number; type: number }[];
    const at = (off: number) => map.find((e) => e.offset <= off && off < e.offset + e.length)!;
    expect(at(40 * MiB).type).toBe(3); // hole,zero: discarded
    expect(at(41216 * 1024).type).toBe(3); // zeroed with unmap allowed (-u)
    expect(at(41472 * 1024).type).toBe(0); // zeroed with NBD_CMD_FLAG_NO_HOLE: stays allocated
    expect(at(41800 * 1024).type).toBe(0); // data
    expect(at(48 * MiB).type).toBe(3); // never written
    expect(map.reduce((n, e) => n + e.length, 0)).toBe(64 * MiB);
  });

  it('a read-only export refuses writes (qemu opens it read-only; the server answers EPERM, see raw.test.ts)', async () => {
    await expect(run('qemu-io', ['-f', 'raw', uri('rbd/disk@snap'), '-c', 'write 0 4k'])).rejects.toThrow(/Permission denied/);
    await expect(qemuIo('rbd/disk@snap', 'write 0 4k')).rejects.toThrow(/read-only/);
    const out = await qemuIo('rbd/disk@snap', 'read -P 0 0 64k');
    expect(out).toMatch(/read 65536\/65536/);
    expect(snap.counts.write).toBe(0);
  });

  it('qemu-img convert of 4 MiB random data into the export compares equal; nbdcopy copies it back byte-exact', async () => {
    const src = join(dir, 'src.raw');
    const data = randomBytes(4 * MiB);
    await writeFile(src, data);
    const target = `${uri('rbd/disk')}`;
    // Write into the middle of the disk via an offset-less image: use a 4 MiB window with qemu-img's raw offset option.
    await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, `json:{"driver":"raw","offset":${48 * MiB},"size":${4 * MiB},"file":{"driver":"nbd","server":{"type":"inet","host":"127.0.0.1","port":"${server.port}"},"export":"rbd/disk"}}`]);
    expect(Buffer.from(disk.readNow(48 * MiB, 4 * MiB)).equals(data)).toBe(true);
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, `json:{"driver":"raw","offset":${48 * MiB},"size":${4 * MiB},"file":{"driver":"nbd","server":{"type":"inet","host":"127.0.0.1","port":"${server.port}"},"export":"rbd/disk"}}`]);
    expect(cmp.stdout).toMatch(/Images are identical/);
    const out = join(dir, 'out.raw');
    await run('nbdcopy', [target, out]);
    const copied = await readFile(out);
    expect(copied.length).toBe(64 * MiB);
    expect(copied.subarray(48 * MiB, 52 * MiB).equals(data)).toBe(true);
    expect(Buffer.from(disk.readNow(0, 64 * MiB)).equals(copied)).toBe(true);
  });

  it('several connections at once (CAN_MULTI_CONN): nbdcopy with 4 connections into the export, byte-exact', async () => {
    const src = join(dir, 'multi.raw');
    const data = randomBytes(8 * MiB);
    await writeFile(src, Buffer.concat([data, Buffer.alloc(56 * MiB)]));
    resolver.openMax = 0;
    await run('nbdcopy', ['--connections=4', '--requests=16', src, uri('rbd/disk')]);
    expect(resolver.openMax).toBeGreaterThan(1);
    expect(Buffer.from(disk.readNow(0, 8 * MiB)).equals(data)).toBe(true);
    const parallel = await Promise.all([0, 1, 2].map((i) => qemuIo('rbd/disk', `write -P ${0x31 + i} ${16 + i}M 1M`)));
    expect(parallel.length).toBe(3);
    await qemuIo('rbd/disk', 'read -P 0x31 16M 1M', 'read -P 0x32 17M 1M', 'read -P 0x33 18M 1M');
  });

  it.skipIf(!haveFio)('fio --ioengine=nbd 4 KiB random writes at iodepth 16 verify', async () => {
    const { stdout } = await run('fio', ['--name=nbd', '--ioengine=nbd', `--uri=${uri('rbd/disk')}`, '--rw=randwrite', '--bs=4k',
      '--size=8M', '--iodepth=16', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--verify_state_save=0', '--output-format=json']);
    const job = JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.total_ios).toBe(2048);
  });

  it('every connection released its export', async () => {
    expect(server.connectionCount()).toBe(0);
    expect(resolver.openNow).toBe(0);
    expect(resolver.opens).toBe(resolver.releases);
  });
});
