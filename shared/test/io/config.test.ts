/** aspen.conf loading: Ceph's section precedence and clear errors (shared/src/io/config.ts). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { discoverConfigPath, loadConfig } from '../../src/io/config.ts';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'aspen-conf-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (text: string): string => {
  const p = join(dir, 'aspen.conf');
  writeFileSync(p, text);
  return p;
};

describe('loadConfig', () => {
  it('merges [global] < [type] < [type.id]; other ids and non-scalar values are ignored', () => {
    const p = write([
      '[global]', 'mon_host = "h1:1,h2:2"', 'x = 1', 'y = 1', 'z = 1', 'list = [1, 2]',
      '[mon]', 'y = 2', 'z = 2', 'flag = true',
      '[mon.a]', 'z = "three"',
      '[mon.b]', 'z = "bee"',
      '[osd]', 'x = 9',
    ].join('\n'));
    expect(loadConfig(p, 'mon', 'a')).toEqual({ mon_host: 'h1:1,h2:2', x: 1, y: 2, z: 'three', flag: true });
    expect(loadConfig(p, 'mon')).toEqual({ mon_host: 'h1:1,h2:2', x: 1, y: 2, z: 2, flag: true });
    expect(loadConfig(p, 'client')).toEqual({ mon_host: 'h1:1,h2:2', x: 1, y: 1, z: 1 });
  });

  it('refuses a missing file (ENOENT), a syntax error (EINVAL with the position) and a non-table section (EINVAL)', () => {
    expect(() => loadConfig(join(dir, 'nope.conf'), 'mon')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const bad = write('[global]\nmon_host = \n');
    expect(() => loadConfig(bad, 'mon')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/aspen\.conf: Invalid TOML.*\n2: +mon_host = /s) }));
    const scalar = write('mon = 3\n');
    expect(() => loadConfig(scalar, 'mon')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('[mon] must be a table') }));
  });
});

describe('discoverConfigPath', () => {
  it('prefers --conf, then $ASPEN_CONF', () => {
    const saved = process.env.ASPEN_CONF;
    try {
      process.env.ASPEN_CONF = '/env/aspen.conf';
      expect(discoverConfigPath('/flag/aspen.conf')).toBe('/flag/aspen.conf');
      expect(discoverConfigPath()).toBe('/env/aspen.conf');
    } finally {
      if (saved === undefined) delete process.env.ASPEN_CONF;
      else process.env.ASPEN_CONF = saved;
    }
  });
});
