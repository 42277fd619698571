/** Plain-text rendering of `aspen` replies (mon/src/bin/aspen-render.ts), fed by the real views. */
import { describe, expect, it } from 'vitest';
import { formatBytes, renderPlain } from '../../src/bin/aspen-render.ts';
import { executeRead } from '../../src/core/read-commands.ts';
import type { QuorumInfo } from '../../src/core/views.ts';
import { Driver, osdUuid } from '../core/helpers.ts';

const Q: QuorumInfo = { leader: 'b', quorum: ['a', 'b'], term: 7, commitIndex: 10 };
const read = (d: Driver, cmd: Record<string, unknown>) => executeRead(d.state, cmd, Q);
const render = (d: Driver, cmd: Record<string, unknown>): string => {
  const r = read(d, cmd);
  return renderPlain(String(cmd.prefix), r.data, r.message);
};

function cluster(): Driver {
  const d = new Driver();
  d.addOsd(0, 'node1');
  d.addOsd(1, 'node2');
  d.ok({ prefix: 'osd new', uuid: osdUuid(5), id: 5 });
  d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 2 });
  d.ok({ prefix: 'pg stats', osd: 0, epoch: d.map.epoch, pgs: [{ pgid: '1.0', state: 'active+clean', up: [0, 1], acting: [0, 1], num_objects: 3, num_bytes: 3 * 1024 * 1024, recovery_objects_missing: 4 }] });
  return d;
}

describe('aspen plain output', () => {
  it('status looks like `ceph -s`', () => {
    const d = cluster();
    const text = render(d, { prefix: 'status' });
    expect(text).toBe([
      '  cluster:',
      `    id:     ${d.state.fsid}`,
      '    health: HEALTH_WARN',
      '            1/3 mons down, quorum a,b',
      '            1 osds down',
      '            Reduced data availability: 1 pgs unknown',
      '',
      '  services:',
      '    mon: 3 daemons, quorum a,b (leader b, term 7)',
      `    osd: 3 osds: 2 up, 3 in; epoch: e${d.map.epoch}`,
      '',
      '  data:',
      '    pools:   1 pools, 2 pgs',
      '    objects: 3 objects, 3.0 MiB',
      '    pgs:     1 active+clean',
      '             1 unknown',
      '',
      '  progress:',
      '    Recovery: 4 objects to recover',
    ].join('\n'));
  });

  it('osd tree is an indented table with stray OSDs at the end', () => {
    const d = cluster();
    d.ok({ prefix: 'osd down', ids: [1] });
    const lines = render(d, { prefix: 'osd tree' }).split('\n').map((l) => l.trimEnd());
    expect(lines[0]).toMatch(/^ID\s+CLASS\s+WEIGHT\s+TYPE NAME\s+STATUS\s+REWEIGHT$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).filter(Boolean))).toEqual([
      ['-1', '2.00000', 'root default'],
      ['-2', '1.00000', 'host node1'],
      ['0', '1.00000', 'osd.0', 'up', '1.00000'],
      ['-3', '1.00000', 'host node2'],
      ['1', '1.00000', 'osd.1', 'down', '1.00000'],
      ['5', '0', 'osd.5', 'down', '1.00000'],
    ]);
    expect(lines[3]).toMatch(/\s{4}osd\.0/); // children are indented under their host
  });

  it('pg dump is a table with one row per PG', () => {
    const d = cluster();
    const lines = render(d, { prefix: 'pg dump' }).split('\n');
    expect(lines[0]).toMatch(/^PG\s+OBJECTS\s+BYTES\s+STATE\s+UP\s+UP_PRIMARY\s+ACTING\s+ACTING_PRIMARY/);
    expect(lines).toHaveLength(3);
    expect(lines[1]!.split(/\s+/).slice(0, 4)).toEqual(['1.0', '3', String(3 * 1024 * 1024), 'active+clean']);
    expect(lines[2]!.split(/\s+/).slice(0, 4)).toEqual(['1.1', '0', '0', 'unknown']);
  });

  it('health detail, pool get, erasure-code-profile get and ls, mon stat, and messages', () => {
    const d = cluster();
    expect(render(d, { prefix: 'health', detail: true }).split('\n').slice(0, 3)).toEqual(['HEALTH_WARN', '[MON_DOWN] 1/3 mons down, quorum a,b', '    mon.c (rank 2) addr 127.0.0.1:6791 is down (out of quorum)']);
    expect(render(d, { prefix: 'osd pool get', pool: 'rbd', var: 'all' })).toBe('size: 3\nmin_size: 2\npg_num: 2\npgp_num: 2\ncrush_rule: replicated_rule\nerasure_code_profile: \ntype: replicated\nsnap_seq: 0\nremoved_snaps: []');
    expect(render(d, { prefix: 'osd erasure-code-profile get', name: 'default' })).toBe('k=2\nm=1\nstripe_unit=4096\ncrush-failure-domain=host\nplugin=jerasure\ntechnique=reed_sol_van');
    expect(render(d, { prefix: 'osd erasure-code-profile ls' })).toBe('default');
    expect(render(d, { prefix: 'osd pool ls' })).toBe('rbd');
    expect(render(d, { prefix: 'mon stat' })).toBe('e1: 3 mons at {a=127.0.0.1:6789,b=127.0.0.1:6790,c=127.0.0.1:6791}, term 7, leader b, quorum a,b');
    expect(render(d, { prefix: 'pg map', pgid: '1.0' })).toMatch(/^osdmap e\d+ pg 1\.0 \(1\.0\) -> up \[\d,\d\] acting \[\d,\d\]$/);
    expect(renderPlain('osd pool create', { pool_id: 1 }, "pool 'x' created")).toBe("pool 'x' created");
    expect(renderPlain('config set', {}, '')).toBe('');
    expect(renderPlain('osd stat', { epoch: 3 }, '')).toBe('{\n  "epoch": 3\n}');
  });

  it('formats bytes as Ceph does', () => {
    expect([0, 1023, 1024, 1536, 5 * 1024 ** 3, 2 ** 60].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '5.0 GiB', '1024.0 PiB']);
  });
});
