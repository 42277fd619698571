/**
 * Issue 6, "It must show" (NBD part) with real clients against a running cluster: 3 monitors,
 * 3 OSDs, pool `rbd` (size 3), `aspen-rbd nbd serve` as its own process, and qemu-io / qemu-img /
 * nbdinfo talking to `nbd://127.0.0.1:P/rbd/IMG` (4 MiB objects). Covers: the export list and
 * sizes; 4K/64K/256K/1M pattern writes and reads at the start of objects 0–3 (each layer an
 * overwrite of the one below) and a 512-byte partial overwrite with the bytes around it intact;
 * 8K and 1M writes crossing object boundaries; 8/16/32 MiB sequential writes; never-written
 * ranges reading as zeros and mapped as holes (base:allocation); write-zeroes and discard
 * reading back as zeros; qemu-img convert of a 256 MiB random file and qemu-img compare;
 * snapshot, overwrite, rollback (server stopped for the lock), compare; and an OSD kill -9'ed
 * during a qemu-io write stream, after which every write qemu-io reported reads back.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { OsdTestCluster, REPO_ROOT, freePorts, tsNodeArgs, waitFor } from '@aspen/test';

const run = promisify(execFile);
const RBD_ENTRY = join(REPO_ROOT, 'rbd', 'src', 'bin', 'aspen-rbd.ts');
const KiB = 1024;
const MiB = 1 << 20;
const OBJ = 4 * MiB;
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

/** Output of a process that may exit non-zero (execFile's rejection carries stdout/stderr). */
function outputOf(err: unknown): string {
  const e = err as { stdout?: string; stderr?: string; message?: string };
  return `${e.stdout ?? ''}${e.stderr ?? ''}${e.stdout === undefined ? String(e.message) : ''}`;
}

/** Runs qemu-io `-f raw` with the commands; throws on any failure (including pattern mismatch). */
async function qemuIo(uri: string, cmds: string[], readOnly = false): Promise<string> {
  const args = ['-f', 'raw', ...(readOnly ? ['-r'] : []), ...cmds.flatMap((c) => ['-c', c]), uri];
  let out: string;
  try {
    const r = await run('qemu-io', args, { maxBuffer: 64 * MiB });
    out = r.stdout + r.stderr;
  } catch (err) {
    throw new Error(`qemu-io exited non-zero: ${outputOf(err)}`, { cause: err });
  }
  if (/(fail|error|Pattern verification failed)/i.test(out)) throw new Error(`qemu-io ${cmds.slice(0, 4).join('; ')}…: ${out}`);
  return out;
}

/** `qemu-img compare` of a raw file with a raw URI: true when identical (exit 0), false on exit 1. */
async function compare(file: string, uri: string): Promise<boolean> {
  try {
    const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', file, uri]);
    expect(r.stdout).toMatch(/Images are identical/);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 1) return false;
    throw new Error(`qemu-img compare failed: ${outputOf(err)}`, { cause: err });
  }
}

interface MapEntry { offset: number; length: number; type: number; description: string }

/** True when every byte of `[off, off+len)` is reported as a hole (type bit 0) by `nbdinfo --map`. */
function allHole(map: MapEntry[], off: number, len: number): boolean {
  const covering = map.filter((e) => e.offset < off + len && e.offset + e.length > off);
  let at = off;
  for (const e of covering.sort((a, b) => a.offset - b.offset)) {
    if ((e.type & 1) === 0 || e.offset > at) return false;
    at = e.offset + e.length;
  }
  return at >= off + len;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * The whole must-show run. `ecDataPool`: the images keep their data in an erasure-coded pool
 * (k=2 m=1, min_size 2 so writes go on with one OSD killed) — "all of it again on an EC data pool".
 */
async function mustShow(ecDataPool: boolean): Promise<void> {
  cluster = await OsdTestCluster.start({ osds: 3, pool: 'rbd', pgNum: 8 });
  const { client: c, monAddrs, h } = cluster;
  const dataPool: string[] = [];
  if (ecDataPool) {
    await c.mon.command({ prefix: 'osd erasure-code-profile set', name: 'ec21', profile: ['k=2', 'm=1', 'crush-failure-domain=host'] });
    await c.mon.command({ prefix: 'osd pool create', pool: 'rbd-ec', pg_num: 8, pool_type: 'erasure', erasure_code_profile: 'ec21', min_size: 2 });
    await waitFor(async () => {
      const rows = ((await c.mon.command({ prefix: 'pg dump' })).data as { pg_stats: { state: string }[] }).pg_stats;
      return rows.length === 16 && rows.every((p) => p.state === 'active+clean');
    }, { timeoutMs: 30_000, what: 'the EC data pool active+clean', intervalMs: 300 });
    dataPool.push('--data-pool', 'rbd-ec');
  }
  await Promise.all([
    rbd(monAddrs, ['create', 'disk', '--size', '128M', ...dataPool]),
    rbd(monAddrs, ['create', 'big', '--size', '256M', ...dataPool]),
    rbd(monAddrs, ['create', 'stream', '--size', '64M', ...dataPool]),
  ]);
  const [port] = await freePorts(1);
  let serves = 0;
  const startServer = async (): Promise<void> => {
    h.spawn({ name: 'rbd-nbd', args: tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, 'nbd', 'serve', '--port', String(port)]) });
    serves++;
    await h.waitReady('rbd-nbd', () => h.log('rbd-nbd').split('serving nbd://').length - 1 >= serves, { timeoutMs: 30_000 });
  };
  await startServer();
  const base = `nbd://127.0.0.1:${port}`;
  const disk = `${base}/rbd/disk`;

  // Export listing and sizes.
  const list = (await run('nbdinfo', ['--list', base])).stdout;
  for (const name of ['rbd/disk', 'rbd/big', 'rbd/stream']) expect(list).toContain(`export="${name}"`);
  expect((await run('nbdinfo', ['--size', disk])).stdout.trim()).toBe(String(128 * MiB));
  expect((await run('nbdinfo', ['--size', `${base}/rbd/big`])).stdout.trim()).toBe(String(256 * MiB));

  // Objects 0–3: at each object's start a 1M, 256K, 64K, 4K pattern write, each overwriting the
  // start of the one before; each layer is read back right after it is written.
  const sizes = [MiB, 256 * KiB, 64 * KiB, 4 * KiB];
  const pat = (obj: number, layer: number): number => 0x10 + obj * 0x10 + layer + 1;
  for (let obj = 0; obj < 4; obj++) {
    const off = obj * OBJ;
    for (let layer = 0; layer < sizes.length; layer++) {
      await qemuIo(disk, [`write -P ${hex(pat(obj, layer))} ${off} ${sizes[layer]}`, `read -P ${hex(pat(obj, layer))} ${off} ${sizes[layer]}`]);
    }
  }
  // A separate connection reads every layer: the overwritten parts show the newer pattern.
  const layerReads = (obj: number): string[] => {
    const off = obj * OBJ;
    return [
      `read -P ${hex(pat(obj, 3))} ${off} ${4 * KiB}`,
      `read -P ${hex(pat(obj, 2))} ${off + 4 * KiB} ${60 * KiB}`,
      `read -P ${hex(pat(obj, 1))} ${off + 64 * KiB} ${192 * KiB}`,
      `read -P ${hex(pat(obj, 0))} ${off + 256 * KiB} ${768 * KiB}`,
      `read -P 0 ${off + MiB} ${3 * MiB}`,
    ];
  };
  await qemuIo(disk, [0, 1, 2, 3].flatMap(layerReads), true);
  // A wrong pattern is noticed (the verification above is real).
  const wrong = await run('qemu-io', ['-f', 'raw', '-r', '-c', `read -P ${hex(pat(1, 0))} ${OBJ} 4k`, disk]).then((r) => r.stdout + r.stderr, outputOf);
  expect(wrong).toMatch(/Pattern verification failed/);

  // A 512-byte partial overwrite inside object 2's 4K block, then a full 64K overwrite in object 3.
  await qemuIo(disk, [`write -P 0xee ${2 * OBJ + 1024} 512`, `write -P 0xdd ${3 * OBJ + 4 * KiB} 60k`]);
  await qemuIo(disk, [
    `read -P ${hex(pat(2, 3))} ${2 * OBJ} 1024`,
    `read -P 0xee ${2 * OBJ + 1024} 512`,
    `read -P ${hex(pat(2, 3))} ${2 * OBJ + 1536} ${4 * KiB - 1536}`,
    `read -P ${hex(pat(2, 2))} ${2 * OBJ + 4 * KiB} ${60 * KiB}`,
    `read -P ${hex(pat(3, 3))} ${3 * OBJ} 4k`,
    `read -P 0xdd ${3 * OBJ + 4 * KiB} 60k`,
    `read -P ${hex(pat(3, 1))} ${3 * OBJ + 64 * KiB} ${192 * KiB}`,
    ...layerReads(0), ...layerReads(1),
  ], true);

  // Writes crossing object boundaries: 8K over 4|5 (at 20M-4K), 1M over 5|6 (at 24M-512K).
  await qemuIo(disk, [`write -P 0xa8 ${5 * OBJ - 4 * KiB} 8k`, `write -P 0xa1 ${6 * OBJ - 512 * KiB} 1M`]);
  await qemuIo(disk, [
    `read -P 0 ${4 * OBJ} ${OBJ - 4 * KiB}`,
    `read -P 0xa8 ${5 * OBJ - 4 * KiB} 8k`,
    `read -P 0xa8 ${5 * OBJ - 4 * KiB} 4k`, `read -P 0xa8 ${5 * OBJ} 4k`,
    `read -P 0 ${5 * OBJ + 4 * KiB} ${OBJ - 4 * KiB - 512 * KiB}`,
    `read -P 0xa1 ${6 * OBJ - 512 * KiB} 1M`,
    `read -P 0 ${6 * OBJ + 512 * KiB} ${OBJ - 512 * KiB}`,
  ], true);

  // 8/16/32 MiB sequential writes at 40M, 48M, 64M.
  await qemuIo(disk, ['write -P 0x81 40M 8M', 'write -P 0x82 48M 16M', 'write -P 0x83 64M 32M', 'flush']);
  await qemuIo(disk, ['read -P 0x81 40M 8M', 'read -P 0x82 48M 16M', 'read -P 0x83 64M 32M'], true);

  // Write-zeroes and discard (partial and whole objects) inside a 16M pattern region at 96M.
  await qemuIo(disk, ['write -P 0x5a 96M 16M']);
  await qemuIo(disk, [`write -z ${96 * MiB + 4 * KiB} 8k`, 'write -z 100M 4M', `discard ${104 * MiB + 64 * KiB} 64k`, 'discard 108M 4M', 'flush']);
  await qemuIo(disk, [
    'read -P 0x5a 96M 4k', `read -P 0 ${96 * MiB + 4 * KiB} 8k`, `read -P 0x5a ${96 * MiB + 12 * KiB} ${4 * MiB - 12 * KiB}`,
    'read -P 0 100M 4M',
    'read -P 0x5a 104M 64k', `read -P 0 ${104 * MiB + 64 * KiB} 64k`, `read -P 0x5a ${104 * MiB + 128 * KiB} ${4 * MiB - 128 * KiB}`,
    'read -P 0 108M 4M',
  ], true);

  // Never-written ranges read as zeros and are holes for base:allocation: objects 7–9
  // (28M–40M) and 112M–128M; and 108M–112M, a whole object discarded.
  await qemuIo(disk, ['read -P 0 28M 12M', 'read -P 0 112M 16M'], true);
  const map = JSON.parse((await run('nbdinfo', ['--map', '--json', disk])).stdout) as MapEntry[];
  expect(allHole(map, 28 * MiB, 12 * MiB), JSON.stringify(map)).toBe(true);
  expect(allHole(map, 112 * MiB, 16 * MiB), JSON.stringify(map)).toBe(true);
  expect(allHole(map, 108 * MiB, 4 * MiB), JSON.stringify(map)).toBe(true);
  expect(allHole(map, 0, MiB) || allHole(map, 40 * MiB, 56 * MiB), JSON.stringify(map)).toBe(false);
  expect(map.filter((e) => (e.type & 1) === 0).some((e) => e.offset <= 40 * MiB && e.offset + e.length > 40 * MiB)).toBe(true);

  // qemu-img convert -n of a 256 MiB random raw file into the 256 MiB image; compare equal.
  const file = join(h.path('files'), 'random.raw');
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < 16; i++) writeSync(fd, randomBytes(16 * MiB));
  } finally {
    closeSync(fd);
  }
  const big = `${base}/rbd/big`;
  await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', file, big]);
  expect(await compare(file, big)).toBe(true);

  // Snapshot, overwrite (pattern across a boundary, write-zeroes, discard), the images differ;
  // the snapshot export still equals the file; rollback (server stopped: it holds the lock),
  // then the image equals the file again.
  await rbd(monAddrs, ['snap', 'create', 'rbd/big@s1']);
  await qemuIo(big, ['write -P 0x77 3M 2M', 'write -z 100M 1M', 'discard 200M 8M', 'write -P 0x78 255M 1M']);
  await qemuIo(big, ['read -P 0x77 3M 2M', 'read -P 0 100M 1M', 'read -P 0 200M 8M', 'read -P 0x78 255M 1M'], true);
  expect(await compare(file, big)).toBe(false);
  expect(await compare(file, `${base}/rbd/big@s1`)).toBe(true);
  expect((await h.stop('rbd-nbd', 60_000)).code).toBe(0);
  await rbd(monAddrs, ['snap', 'rollback', 'rbd/big@s1']);
  await startServer();
  expect(await compare(file, big)).toBe(true);

  // An OSD kill -9'ed during a qemu-io write stream (64K writes, a pattern per write): every
  // write qemu-io reports as completed reads back afterwards.
  const stream = `${base}/rbd/stream`;
  const N = 1024;
  const W = 64 * KiB;
  const spat = (i: number): number => (i * 7) % 255 + 1;
  const writer = spawn('qemu-io', ['-f', 'raw', ...Array.from({ length: N }, (_, i) => ['-c', `write -P ${hex(spat(i))} ${i * W} ${W}`]).flat(), stream], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  writer.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  writer.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const writerExit = new Promise<number | null>((res) => writer.once('exit', (code) => res(code)));
  const completed = (): number => (out.match(/^wrote \d+\/\d+ bytes at offset \d+/gm) ?? []).length;
  await waitFor(() => completed() >= 64 || writer.exitCode !== null, { timeoutMs: 60_000, what: '64 writes of the stream' });
  expect(writer.exitCode, 'the stream ended before the kill; make it longer').toBeNull();
  const atKill = completed();
  expect(atKill, 'the kill lands mid-stream').toBeLessThan(N / 2);
  await h.kill('osd.1', 'SIGKILL');
  await c.mon.command({ prefix: 'osd down', ids: [1] });
  await writerExit;
  const done = [...out.matchAll(/^wrote (\d+)\/\d+ bytes at offset (\d+)/gm)].map((m) => Number(m[2]) / W);
  const failed = out.split('\n').filter((l) => /fail|error/i.test(l));
  expect(done.length, `writes after the kill (failures: ${failed.slice(0, 5).join(' | ')})`).toBeGreaterThan(atKill);
  expect(done.every((i) => Number.isInteger(i) && i >= 0 && i < N)).toBe(true);
  const verify = done.map((i) => `read -P ${hex(spat(i))} ${i * W} ${W}`);
  for (let k = 0; k < verify.length; k += 256) await qemuIo(stream, verify.slice(k, k + 256), true);
  // Writes qemu-io did not report may or may not be there; but none failed here.
  expect(failed, failed.slice(0, 5).join('\n')).toEqual([]);
  expect(done.length).toBe(N);
}

describe.skipIf(!haveTools)('aspen-rbd nbd serve: issue 6 "It must show" with qemu-io/qemu-img/nbdinfo', () => {
  it('patterns, overwrites, boundaries, sequential writes, holes, zeroes/discard, 256 MiB convert, snapshot rollback, an OSD kill -9 mid-stream', async () => {
    await mustShow(false);
  }, 240_000);
  it('all of it again with the images\' data in an erasure-coded pool (k=2 m=1)', async () => {
    await mustShow(true);
  }, 300_000);
});
