/**
 * Process-level test of clones and incremental diffs: 3 real monitors and 3 real OSDs on
 * loopback, pool `rbd` (size 3), the `aspen-rbd` CLI as a separate process and the Image API
 * in this process. Clone from a protected snapshot only; the child reads the parent at the
 * snapshot; writes copy up and leave the parent untouched; discards inside the overlap do not
 * let parent data show through; children/unprotect/rm bookkeeping; flatten. Then
 * export-diff s1 (full) and s1→s2 (incremental) applied with import-diff to a copy give
 * s2's bytes exactly, and import-diff's snapshot checks.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OsdTestCluster, REPO_ROOT, tsNodeArgs } from '@aspen/test';
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

function cli(monAddrs: string, args: string[], stdin?: Uint8Array): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, tsNodeArgs(RBD_ENTRY, ['-m', monAddrs, '--no-progress', ...args]), { cwd: REPO_ROOT, maxBuffer: 64 * MiB, encoding: 'buffer' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') });
    });
    child.stdin!.end(stdin);
  });
}

const eqBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

describe('aspen-rbd clones and diffs (3 mons + 3 OSDs)', () => {
  it('clones a protected snapshot, copies up on write, flattens; export-diff/import-diff reproduce a snapshot', async () => {
    cluster = await OsdTestCluster.start({ osds: 3, pool: 'rbd', pgNum: 8 });
    const { client: c, monAddrs, h } = cluster;
    const rbd = (...args: string[]): Promise<CliResult> => cli(monAddrs, args);
    const ok = async (...args: string[]): Promise<string> => {
      const r = await rbd(...args);
      if (r.code !== 0) throw new Error(`aspen-rbd ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return r.stdout;
    };
    const open = async (name: string, o: { snapName?: string; exclusive?: boolean } = {}): Promise<Image> => {
      const i = await Image.open(c, 'rbd', name, o);
      images.push(i);
      return i;
    };
    const readAll = async (name: string, snapName?: string): Promise<Uint8Array> => {
      const i = await Image.open(c, 'rbd', name, snapName === undefined ? { exclusive: false } : { snapName, exclusive: false });
      try {
        return await i.read(0, i.sizeBytes);
      } finally {
        await i.close();
      }
    };

    // A parent with data in objects 0-3 and 6 (1 MiB objects), snapshot s1.
    await ok('create', 'parent', '--size', '8M', '--object-size', '1M');
    const model = new Uint8Array(8 * MiB);
    const pw = await open('parent');
    for (const [off, len] of [[0, 3 * MiB + 500], [6 * MiB + 4096, 8192]] as const) {
      const d = randomBytes(len);
      await pw.write(off, d);
      model.set(d, off);
    }
    await ok('snap', 'create', 'parent@s1');
    expect((await rbd('clone', 'parent@s1', 'child')).code).toBe(22); // EINVAL: not protected
    await ok('snap', 'protect', 'parent@s1');
    await ok('clone', 'rbd/parent@s1', 'rbd/child');
    await pw.write(0, randomBytes(2 * MiB)); // the parent's head moves on; the child reads s1
    const info = JSON.parse(await ok('info', 'child', '-f', 'json')) as { size: number; parent: unknown; features: string[] };
    expect(info).toMatchObject({ size: 8 * MiB, parent: { pool: 'rbd', image: 'parent', snapshot: 's1', overlap: 8 * MiB } });
    expect(info.features).toContain('layering');
    expect((await ok('info', 'child')).includes('parent: rbd/parent@s1')).toBe(true);

    // Reads fall through to the parent at s1.
    const cw = await open('child');
    expect(eqBytes(await cw.read(0, 8 * MiB), model)).toBe(true);

    // A write copies the object up: new bytes and the parent's old bytes around them; the parent is unchanged.
    const childModel = model.slice();
    const wr = randomBytes(300);
    await cw.write(MiB + 100, wr);
    childModel.set(wr, MiB + 100);
    expect(eqBytes(await cw.read(MiB, MiB), childModel.subarray(MiB, 2 * MiB))).toBe(true);
    // Discard/zero inside the overlap never shows parent data: a whole object, a range to an object's end, a range inside one.
    await cw.discard(2 * MiB, MiB);
    childModel.fill(0, 2 * MiB, 3 * MiB);
    await cw.discard(MiB / 2, MiB / 2);
    childModel.fill(0, MiB / 2, MiB);
    await cw.discard(6 * MiB + 5000, 100);
    childModel.fill(0, 6 * MiB + 5000, 6 * MiB + 5100);
    await cw.writeZeroes(3 * MiB, 200, { noHole: true });
    childModel.fill(0, 3 * MiB, 3 * MiB + 200);
    expect(eqBytes(await cw.read(0, 8 * MiB), childModel)).toBe(true);
    expect(eqBytes(await readAll('parent', 's1'), model)).toBe(true);
    const ext = await cw.allocatedExtents(0, 8 * MiB);
    expect(ext.find((e) => e.offsetBytes <= 6 * MiB && e.offsetBytes + e.lengthBytes > 6 * MiB)?.allocated).toBe(true); // reads the parent: not a hole

    // Children: listed, block unprotect and snap rm; rm of a clone drops its record.
    await ok('clone', 'parent@s1', 'child2');
    expect(JSON.parse(await ok('children', 'parent@s1', '-f', 'json'))).toMatchObject([{ pool: 'rbd', image: 'child' }, { pool: 'rbd', image: 'child2' }]);
    expect((await rbd('snap', 'unprotect', 'parent@s1')).code).toBe(16); // EBUSY
    await ok('rm', 'child2');
    expect((await ok('children', 'parent@s1')).trim()).toBe('rbd/child');
    expect((await rbd('snap', 'unprotect', 'parent@s1')).code).toBe(16);

    // A clone with a snapshot (Ceph: the flattened clone keeps its parent for the snapshots):
    // flatten copies the head up and hides the parent from `info`, but the snapshot still reads
    // through to it and the parent snapshot stays in use; rollback to the snapshot restores its
    // overlap; removing the last such snapshot drops the link and the children record.
    await ok('clone', 'parent@s1', 'child3');
    const c3 = await open('child3');
    const atK1 = new Uint8Array(model);
    const w3 = randomBytes(5000);
    await c3.write(MiB + 17, w3);
    atK1.set(w3, MiB + 17);
    await c3.snapCreate('k1');
    const c3Head = new Uint8Array(atK1);
    const w4 = randomBytes(3000);
    await c3.write(5 * MiB, w4);
    c3Head.set(w4, 5 * MiB);
    await c3.close();
    await ok('flatten', 'child3');
    expect((JSON.parse(await ok('info', 'child3', '-f', 'json')) as { parent?: unknown }).parent).toBeUndefined();
    expect((await ok('children', 'parent@s1')).split('\n')).toContain('rbd/child3');
    expect(eqBytes(await readAll('child3'), c3Head)).toBe(true);
    expect(eqBytes(await readAll('child3', 'k1'), atK1)).toBe(true);
    await ok('snap', 'rollback', 'child3@k1');
    expect(eqBytes(await readAll('child3'), atK1)).toBe(true);
    await ok('flatten', 'child3');
    await ok('snap', 'rm', 'child3@k1');
    expect((await ok('children', 'parent@s1')).split('\n')).not.toContain('rbd/child3');
    expect((await rbd('flatten', 'child3')).code).toBe(22); // no parent left
    expect(eqBytes(await readAll('child3'), atK1)).toBe(true);
    await ok('rm', 'child3');

    // Flatten (needs the lock, so close the writer), then unprotect and even remove s1: the child keeps its bytes.
    expect((await rbd('flatten', 'child')).code).toBe(16); // cw holds the lock
    await cw.close();
    await ok('flatten', 'child');
    expect((JSON.parse(await ok('info', 'child', '-f', 'json')) as { parent?: unknown }).parent).toBeUndefined();
    expect(JSON.parse(await ok('children', 'parent@s1', '-f', 'json'))).toEqual([]);
    await ok('snap', 'unprotect', 'parent@s1');
    await pw.close();
    await ok('snap', 'rm', 'parent@s1');
    expect(eqBytes(await readAll('child'), childModel)).toBe(true);
    expect((await rbd('flatten', 'child')).code).toBe(22); // no longer a clone

    // export-diff / import-diff: s1 in full, then s1→s2, applied to a copy, equal s2's bytes.
    await ok('create', 'd', '--size', '4M', '--object-size', '1M');
    const dw = await open('d');
    await dw.write(0, randomBytes(MiB + 10));
    await dw.write(3 * MiB, randomBytes(4096));
    await ok('snap', 'create', 'd@s1');
    await dw.write(MiB - 50, randomBytes(100)); // overwrite across objects
    await dw.discard(0, 8192); // zeros
    await dw.resize(6 * MiB);
    await dw.write(5 * MiB + 1, randomBytes(777)); // past s1's end
    await ok('snap', 'create', 'd@s2');
    await dw.write(0, randomBytes(10)); // the head moves on; the diff is up to s2
    const full = join(h.dir, 's1.diff');
    const incr = join(h.dir, 's1-s2.diff');
    await ok('export-diff', 'd@s1', full);
    await ok('export-diff', '--from-snap', 's1', 'd@s2', incr);
    const incrBytes = readFileSync(incr);
    expect(incrBytes.subarray(0, 12).toString()).toBe('rbd diff v1\n');
    expect(incrBytes.length).toBeLessThan(64 * 1024); // only the changes
    const piped = await rbd('export-diff', '--from-snap', 's1', 'd@s2', '-');
    expect(piped.code).toBe(0);

    await ok('create', 'copy', '--size', '1M');
    expect((await rbd('import-diff', incr, 'copy')).code).toBe(2); // ENOENT: copy has no s1
    expect((await cli(monAddrs, ['import-diff', '-', 'copy'], readFileSync(full))).code).toBe(0); // from stdin
    expect(eqBytes(await readAll('copy', 's1'), await readAll('d', 's1'))).toBe(true);
    await ok('import-diff', incr, 'copy');
    const s2 = await readAll('d', 's2');
    expect(s2.length).toBe(6 * MiB);
    expect(eqBytes(await readAll('copy'), s2)).toBe(true);
    expect(eqBytes(await readAll('copy', 's2'), s2)).toBe(true);
    expect((await rbd('import-diff', incr, 'copy')).code).toBe(17); // EEXIST: s2 is there already
    expect((await cli(monAddrs, ['import-diff', '-', 'copy'], Buffer.from('rbd diff v1\nq'))).code).toBe(22); // malformed
  }, 150_000);
});
