/**
 * aspen-crushtool against crushtool: the same arguments on the same (text) map print the
 * same bytes (testdata/crush/cli-N.args / cli-N.out, from regen.sh), and errors are clean.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/bin/crushtool-cli.ts';

const dir = new URL('../../testdata/crush/', import.meta.url);
const tmp = mkdtempSync(join(tmpdir(), 'aspen-crushtool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('aspen-crushtool prints what crushtool prints', () => {
  for (const n of [1, 2, 3, 4]) {
    it(`cli-${n}: ${readFileSync(new URL(`cli-${n}.args`, dir), 'utf8').trim()}`, () => {
      const [map, ...args] = readFileSync(new URL(`cli-${n}.args`, dir), 'utf8').trim().split(/\s+/);
      const r = run(['-i', new URL(`${map}.txt`, dir).pathname, ...args]);
      expect(r.err).toBe('');
      expect(r.out).toBe(readFileSync(new URL(`cli-${n}.out`, dir), 'utf8'));
    });
  }

  it('-c / -d round-trip through the Aspen binary format; --build matches crushtool --build', () => {
    const bin = join(tmp, 'classes.bin');
    expect(run(['-c', new URL('classes.txt', dir).pathname, '-o', bin]).code).toBe(0);
    expect(run(['-d', bin]).out).toBe(readFileSync(new URL('classes.txt', dir), 'utf8'));
    const built = join(tmp, 'b.bin');
    expect(run(['--build', '--num_osds', '36', 'host', 'straw2', '3', 'rack', 'straw2', '4', 'root', 'straw2', '0', '-o', built]).code).toBe(0);
    expect(run(['-d', built]).out).toBe(readFileSync(new URL('build-36.txt', dir), 'utf8'));
    const added = join(tmp, 'add.bin');
    const add = ['-i', built, '--add-item', '36', '1.5', 'osd.36', '--loc', 'host', 'host12', '--loc', 'rack', 'rack3', '--loc', 'root', 'root', '-o', added];
    expect(run(add).code).toBe(0);
    expect(run(['-d', added]).out).toBe(readFileSync(new URL('build-36-add.txt', dir), 'utf8'));
  });

  it('bad input exits 1 with a message, never a stack trace', () => {
    const bad = run(['-c', new URL('regen.sh', dir).pathname, '-o', join(tmp, 'x.bin')]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^aspen-crushtool: EINVAL: line \d+:/);
    expect(run(['-i', join(tmp, 'missing.bin'), '--test']).code).toBe(1);
    expect(run([]).err).toMatch(/no action specified/);
    expect(run(['--build', '--num-osds', '3', 'host', 'bogus', '1', '-o', join(tmp, 'y')]).err).toMatch(/unknown bucket alg/);
  });
});
