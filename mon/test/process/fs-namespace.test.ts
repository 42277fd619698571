/**
 * Process-level test of the filesystem namespace in the monitors: real `aspen-mon` processes
 * (test/src/mon-cluster.ts), `aspen fs new|ls|get|rm` through the real CLI, namespace
 * commands through the client API as the MDS will send them, and the namespace surviving a
 * `kill -9` of the leader (restarted from its store, snapshots every 20 entries, so it
 * reloads the namespace from a Raft snapshot and catches up).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MonCluster, ProcessHarness, REPO_ROOT, tsNodeArgs, waitFor } from '@aspen/test';
import type { MonClient } from '@aspen/shared/io/monclient.ts';

const ASPEN = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts');

interface CliRun { code: number | null; stdout: string; stderr: string }

function aspen(args: string[], timeoutMs = 30_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, tsNodeArgs(ASPEN, args), { cwd: REPO_ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, ASPEN_MON_HOST: '' } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

let harness: ProcessHarness;
let cluster: MonCluster;
let monArgs: string[];

beforeAll(async () => {
  harness = new ProcessHarness();
  cluster = await MonCluster.start(harness, { count: 3, extraArgs: ['--snapshot-every', '20'] });
  await cluster.leader();
  monArgs = ['-m', [...cluster.addrs.values()].join(',')];
}, 120_000);

afterAll(async () => {
  cluster?.close();
  await harness?.teardown();
});

interface Attr { ino: number; type: string; nlink: number; size: number; mode: number }
type Tree = Record<string, { ino: number; type: string; nlink: number; size: number }>;

/** The whole namespace as path → attributes, read through one client (paged readdir). */
async function tree(c: MonClient, fs: string): Promise<Tree> {
  const out: Tree = {};
  const walk = async (ino: number, path: string): Promise<void> => {
    let after = '';
    for (;;) {
      const page = (await c.command({ prefix: 'fs readdir', fs_name: fs, ino, after, limit: 7 })).data as { entries: { name: string; ino: number; type: string }[]; next: string | null };
      for (const e of page.entries) {
        const a = (await c.command({ prefix: 'fs getattr', fs_name: fs, ino: e.ino })).data as Attr;
        out[`${path}/${e.name}`] = { ino: a.ino, type: a.type, nlink: a.nlink, size: a.size };
        if (e.type === 'dir') await walk(e.ino, `${path}/${e.name}`);
      }
      if (page.next === null) return;
      after = page.next;
    }
  };
  await walk(1, '');
  return out;
}

describe('filesystem namespace on a 3-mon cluster', () => {
  it('aspen fs new/ls/get, namespace commands, a leader kill -9 and restart, then fs rm', async () => {
    const ok = async (args: string[]): Promise<string> => {
      const r = await aspen([...monArgs, ...args]);
      expect(r.code, `aspen ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    expect(await ok(['osd', 'pool', 'create', 'fsdata', '8'])).toBe("pool 'fsdata' created\n");
    const missing = await aspen([...monArgs, 'fs', 'new', 'cephfs', 'nopool']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("Error ENOENT: pool 'nopool' does not exist\n");
    expect(await ok(['fs', 'new', 'cephfs', 'fsdata'])).toBe('new fs with data pool 1 and id 1\n');
    expect(await ok(['fs', 'ls'])).toBe('name: cephfs, data pools: [fsdata ]\n');
    expect(JSON.parse(await ok(['-f', 'json', 'fs', 'get', 'cephfs']))).toMatchObject({ name: 'cephfs', id: 1, data_pool: 'fsdata', inodes: 1, object_size: 4 << 20 });

    const c = cluster.client(30_000);
    const fs = async (op: string, args: Record<string, unknown>): Promise<unknown> => (await c.command({ prefix: `fs ${op}`, fs_name: 'cephfs', ...args })).data;
    const docs = (await fs('mkdir', { parent: 1, name: 'docs', mode: 0o755, uid: 0, gid: 0 })) as Attr;
    const a = (await fs('mknod', { parent: docs.ino, name: 'a.txt', mode: 0o644, uid: 1000, gid: 1000 })) as Attr;
    await fs('link', { ino: a.ino, parent: 1, name: 'hard' });
    await fs('symlink', { parent: 1, name: 'link', target: 'docs/a.txt', uid: 0, gid: 0 });
    await fs('setxattr', { ino: a.ino, name: 'user.k', value: Buffer.from('v').toString('base64') });
    await fs('setattr', { ino: a.ino, size: 5 * 2 ** 30 });
    for (let i = 0; i < 30; i++) await fs('mknod', { parent: docs.ino, name: `f${i}`, mode: 0o600, uid: 0, gid: 0 });
    await expect(c.command({ prefix: 'fs mknod', fs_name: 'cephfs', parent: docs.ino, name: 'a.txt', mode: 0o644, uid: 0, gid: 0 })).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(c.command({ prefix: 'fs rmdir', fs_name: 'cephfs', parent: 1, name: 'docs' })).rejects.toMatchObject({ code: 'ENOTEMPTY' });

    const leader = await cluster.leader();
    // It has snapshotted a state holding the namespace, and will restart from that snapshot.
    await waitFor(() => harness.log(`mon.${leader}`).includes('snapshot taken'), { timeoutMs: 10_000, what: `mon.${leader} snapshot` });
    await harness.kill(`mon.${leader}`, 'SIGKILL');
    // The survivors elect a leader and go on: a rename (one command) and an exchange.
    await fs('rename', { src_parent: 1, src_name: 'docs', dst_parent: 1, dst_name: 'papers' });
    await fs('mkdir', { parent: 1, name: 'other', mode: 0o755, uid: 0, gid: 0 });
    await fs('rename', { src_parent: 1, src_name: 'hard', dst_parent: 1, dst_name: 'other', flags: 'exchange' });
    for (let i = 0; i < 25; i++) await fs('unlink', { parent: docs.ino, name: `f${i}` });
    const expected = await tree(c, 'cephfs');
    expect(Object.keys(expected).sort()).toEqual(['/hard', '/link', '/other', '/papers', '/papers/a.txt', ...[25, 26, 27, 28, 29].map((i) => `/papers/f${i}`)].sort());
    expect(expected['/other']).toMatchObject({ ino: a.ino, nlink: 2, size: 5 * 2 ** 30 });
    expect(expected['/hard']).toMatchObject({ type: 'dir' });

    cluster.spawn(leader);
    await cluster.waitListening(leader);
    const restarted = cluster.client(30_000, [leader]);
    await waitFor(async () => {
      try {
        return ((await restarted.command({ prefix: 'fs statfs', fs_name: 'cephfs' })).data as { orphans: number }).orphans === 25;
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, what: `mon.${leader} caught up` });
    expect(await tree(restarted, 'cephfs')).toEqual(expected);
    expect((await restarted.command({ prefix: 'fs getxattr', fs_name: 'cephfs', ino: a.ino, name: 'user.k' })).data).toEqual({ value: Buffer.from('v').toString('base64') });

    const rm1 = await aspen([...monArgs, 'fs', 'rm', 'cephfs']);
    expect(rm1.code).toBe(1); // EPERM
    expect(rm1.stderr).toMatch(/^Error EPERM: .*--yes-i-really-mean-it/);
    const rm2 = await aspen([...monArgs, 'fs', 'rm', 'cephfs', '--yes-i-really-mean-it']);
    expect(rm2.code).toBe(39); // ENOTEMPTY
    await ok(['fs', 'rm', 'cephfs', '--yes-i-really-mean-it', '--force']);
    expect(await ok(['fs', 'ls'])).toBe('No filesystems enabled\n');
  }, 180_000);
});
