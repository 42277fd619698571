/**
 * `aspen-dev` (npm start) end to end, as a newcomer uses it: `up --detach` in a temp data
 * directory on free ports brings up 3 mons, 3 OSDs, the S3 gateway and the NBD server; the
 * aws CLI line it prints (keys included) makes a bucket, puts and gets a file; qemu-io writes
 * and verifies a pattern through the printed nbd:// URI; `status` lists every daemon; `down`
 * leaves no PID alive; `up` again restarts the same cluster (same user, the object and the
 * block data still there). Never touches the repository's ./aspen-data nor the default ports.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, freePorts, isProcessAlive, makeTempDir } from '@aspen/test';

const run = promisify(execFile);
const DEV = join(REPO_ROOT, 'deploy', 'bin', 'aspen-dev.mjs');
const haveTools = await Promise.all(['aws', 'qemu-io', 'qemu-img'].map((t) => run(t, ['--version']).then(() => true, () => false))).then((a) => a.every(Boolean));

const data = makeTempDir('aspen-dev-test-');
const awsHome = makeTempDir('aspen-dev-aws-');

/** Every PID file under DATA/run, read now (the daemons this test started). */
function pidsInRunDir(): Map<string, number> {
  const dir = join(data, 'run');
  if (!existsSync(dir)) return new Map();
  return new Map(readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => [f.slice(0, -4), Number(readFileSync(join(dir, f), 'utf8'))] as const));
}

const everStarted = new Set<number>();

afterAll(async () => {
  for (const pid of pidsInRunDir().values()) everStarted.add(pid);
  await run(process.execPath, [DEV, 'down', '--data', data], { cwd: REPO_ROOT }).catch(() => undefined);
  for (const pid of everStarted) {
    if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(data, { recursive: true, force: true });
  rmSync(awsHome, { recursive: true, force: true });
}, 60_000);

function listenable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** A base port with 3 consecutive free ports (the monitors), away from the defaults. */
async function freeMonBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const [p] = await freePorts(1);
    const base = p!;
    if (base + 2 > 65535 || (base <= 6791 && base + 2 >= 6789)) continue;
    if ((await listenable(base)) && (await listenable(base + 1)) && (await listenable(base + 2))) return base;
  }
  throw new Error('no 3 consecutive free ports');
}

async function dev(args: string[]): Promise<string> {
  return (await run(process.execPath, [DEV, ...args, '--data', data], { cwd: REPO_ROOT, timeout: 120_000 })).stdout;
}

/** Runs the printed aws command line with its `s3 ls` replaced by `s3Args`, through a shell as a user would. */
async function aws(printedLine: string, s3Args: string): Promise<string> {
  const line = printedLine.replace(/ s3 ls$/, ` s3 ${s3Args}`);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: awsHome, AWS_CONFIG_FILE: join(awsHome, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(awsHome, 'none') };
  delete env.AWS_ACCESS_KEY_ID;
  delete env.AWS_SECRET_ACCESS_KEY;
  delete env.AWS_PROFILE;
  return (await run('sh', ['-c', line], { env, cwd: awsHome, timeout: 60_000 })).stdout;
}

async function qemuIo(uri: string, cmd: string): Promise<string> {
  const r = await run('qemu-io', ['-f', 'raw', '-c', cmd, uri], { timeout: 60_000 });
  if (/(fail|error|Pattern verification failed)/i.test(r.stdout + r.stderr)) throw new Error(`qemu-io ${cmd}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function printed(out: string): { awsLine: string; nbdUri: string } {
  const awsLine = /^\s*(AWS_ACCESS_KEY_ID=\S+ AWS_SECRET_ACCESS_KEY=\S+ .*aws --endpoint-url http:\/\/127\.0\.0\.1:\d+ s3 ls)$/m.exec(out)?.[1];
  const nbdUri = /^\s*qemu-img info (nbd:\/\/\S+)$/m.exec(out)?.[1];
  if (awsLine === undefined || nbdUri === undefined) throw new Error(`aspen-dev up printed no aws line or nbd URI:\n${out}`);
  return { awsLine, nbdUri };
}

describe.skipIf(!haveTools)('aspen-dev (npm start)', () => {
  it('up runs mons, OSDs, the S3 gateway and the NBD server; the printed aws and nbd:// lines work; down stops all; up again restarts the same cluster', async () => {
    const monBase = await freeMonBase();
    const [s3Port, nbdPort] = await freePorts(2);
    const upArgs = ['up', '--detach', '--mon-port-base', String(monBase), '--s3-port', String(s3Port), '--nbd-port', String(nbdPort)];

    const out1 = await dev(upArgs);
    for (const pid of pidsInRunDir().values()) everStarted.add(pid);
    const { awsLine, nbdUri } = printed(out1);
    expect(awsLine).toContain(`http://127.0.0.1:${s3Port}`);
    expect(nbdUri).toBe(`nbd://127.0.0.1:${nbdPort}/rbd/vm0`);
    expect(out1).toMatch(/filesystem: not available yet/);
    expect(statSync(join(data, 's3-user.json')).mode & 0o777).toBe(0o600);

    // S3: the printed line as is, then a bucket, a put and a get.
    await aws(awsLine, 'ls');
    await aws(awsLine, 'mb s3://devbucket');
    const payload = `hello from aspen-dev ${monBase}\n`.repeat(1000);
    writeFileSync(join(awsHome, 'in.txt'), payload);
    await aws(awsLine, `cp ${join(awsHome, 'in.txt')} s3://devbucket/dir/in.txt`);
    await aws(awsLine, `cp s3://devbucket/dir/in.txt ${join(awsHome, 'out.txt')}`);
    expect(readFileSync(join(awsHome, 'out.txt'), 'utf8')).toBe(payload);

    // Block: qemu-img sees the 1 GiB image; a pattern written over NBD reads back.
    expect((await run('qemu-img', ['info', nbdUri])).stdout).toMatch(/virtual size: 1 GiB/);
    await qemuIo(nbdUri, 'write -P 0x5a 0 1M');
    await qemuIo(nbdUri, 'read -P 0x5a 0 1M');
    await expect(qemuIo(nbdUri, 'read -P 0x5b 0 1M')).rejects.toThrow(/Pattern verification failed|fail/i);

    // status lists every daemon with the PID in its PID file, and the missing MDS.
    const pids = pidsInRunDir();
    expect([...pids.keys()].sort()).toEqual(['mon.a', 'mon.b', 'mon.c', 'nbd', 'osd.0', 'osd.1', 'osd.2', 's3gw']);
    const st = await dev(['status']);
    for (const [daemon, pid] of pids) {
      expect(isProcessAlive(pid)).toBe(true);
      expect(st).toMatch(new RegExp(`^${daemon.replace('.', '\\.')}\\s+running \\(pid ${pid}\\)`, 'm'));
    }
    expect(st).toMatch(/^mds\s+not available/m);
    expect((await dev(['logs', 's3gw'])).length).toBeGreaterThan(0);
    expect(await dev(['logs', 'nbd'])).toMatch(/serving nbd:\/\//);

    // down stops every one of them.
    const down = await dev(['down']);
    for (const [daemon, pid] of pids) {
      expect(down).toContain(`stopped ${daemon} (pid ${pid})`);
      expect(isProcessAlive(pid)).toBe(false);
    }
    expect(await dev(['status'])).not.toMatch(/running/);

    // up again (no port flags: they are remembered): the same user, the object, the block data.
    const out2 = await dev(['up', '--detach']);
    for (const pid of pidsInRunDir().values()) everStarted.add(pid);
    expect(out2).not.toMatch(/creating cluster|created image/);
    const again = printed(out2);
    expect(again).toEqual({ awsLine, nbdUri });
    await aws(awsLine, `cp s3://devbucket/dir/in.txt ${join(awsHome, 'out2.txt')}`);
    expect(readFileSync(join(awsHome, 'out2.txt'), 'utf8')).toBe(payload);
    await qemuIo(nbdUri, 'read -P 0x5a 0 1M');

    const pids2 = pidsInRunDir();
    await dev(['down']);
    for (const pid of pids2.values()) expect(isProcessAlive(pid)).toBe(false);
  }, 240_000);
});
