import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ProcessHarness,
  REPO_ROOT,
  freePorts,
  isProcessAlive,
  processGroupMembers,
  tcpConnectable,
  tsNodeArgs,
  waitFor,
} from '../src/index.ts';

const ECHO = join(REPO_ROOT, 'test', 'testdata', 'echo-server.mjs');

/** Sends one line to the echo server and returns its answer `<pid> <line>`. */
function echo(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    s.on('connect', () => s.write(`${line}\n`));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        s.destroy();
        resolve(buf.trim());
      }
    });
    s.on('error', reject);
  });
}

let harness: ProcessHarness | undefined;
afterEach(async () => {
  await harness?.teardown();
  harness = undefined;
});

describe('process harness', () => {
  it('freePorts gives distinct ports that can be bound', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const p of ports) expect(p).toBeGreaterThan(0);
  });

  it('spawns daemons, waits for readiness, kill -9s one, restarts it, and tears everything down', async () => {
    const h = (harness = new ProcessHarness());
    const [p1, p2] = (await freePorts(2)) as [number, number];
    const a = h.spawn({ name: 'echo.a', args: [ECHO, '--port', String(p1), '--fork-child'] });
    const b = h.spawn({ name: 'echo.b', args: [ECHO, '--port', String(p2)] });
    await h.waitReady('echo.a', tcpConnectable(p1));
    await h.waitReady('echo.b', tcpConnectable(p2));
    expect(await echo(p1, 'hello')).toBe(`${a.pid} hello`);
    expect(await echo(p2, 'world')).toBe(`${b.pid} world`);

    // The grandchild lives in a's process group.
    await waitFor(() => /child (\d+)/.test(h.log('echo.a')), { what: 'grandchild pid in log' });
    const grandchild = Number(/child (\d+)/.exec(h.log('echo.a'))![1]);
    expect(processGroupMembers(a.pid).sort()).toEqual([a.pid, grandchild].sort());

    // kill -9: a dies (with its grandchild), b is untouched.
    const status = await h.kill('echo.a', 'SIGKILL');
    expect(status).toEqual({ code: null, signal: 'SIGKILL' });
    expect(isProcessAlive(a.pid)).toBe(false);
    await waitFor(() => !isProcessAlive(grandchild), { what: 'grandchild gone', timeoutMs: 5_000 });
    expect(await tcpConnectable(p1)()).toBe(false);
    expect(await echo(p2, 'still')).toBe(`${b.pid} still`);

    // Restart on the same port: a new pid, ready again, the log keeps both runs.
    const a2 = await h.restart('echo.a', 'SIGKILL', { args: [ECHO, '--port', String(p1)] });
    expect(a2.pid).not.toBe(a.pid);
    await h.waitReady('echo.a', tcpConnectable(p1));
    expect(await echo(p1, 'again')).toBe(`${a2.pid} again`);
    expect(h.log('echo.a').match(/listening/g)).toHaveLength(2);

    // A graceful stop exits 0 (the daemon handled SIGTERM).
    expect(await h.stop('echo.b')).toEqual({ code: 0, signal: null });

    const dir = h.dir;
    await h.teardown();
    for (const pid of [a.pid, grandchild, a2.pid, b.pid]) expect(isProcessAlive(pid), `pid ${pid}`).toBe(false);
    expect(processGroupMembers(a2.pid)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('waitReady fails fast with the log tail when the daemon exits before ready', async () => {
    const h = (harness = new ProcessHarness());
    const [port] = (await freePorts(1)) as [number];
    h.spawn({ name: 'bad', args: [ECHO, '--port', String(port), '--fail'] });
    const started = Date.now();
    await expect(h.waitReady('bad', tcpConnectable(port), { timeoutMs: 20_000 })).rejects.toThrow(/exited before ready[\s\S]*failing on purpose/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(h.daemon('bad').exitStatus).toEqual({ code: 3, signal: null });
  });

  it('waitReady times out on a daemon that never becomes ready, and teardown escalates to SIGKILL', async () => {
    const h = (harness = new ProcessHarness({ stopTimeoutMs: 300 }));
    // Ignores SIGTERM and never listens.
    const d = h.spawn({ name: 'stubborn', args: ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"] });
    await expect(h.waitReady('stubborn', () => false, { timeoutMs: 300 })).rejects.toThrow(/timed out after 300 ms waiting for stubborn ready/);
    // Give node time to install its SIGTERM handler before we test the escalation.
    await new Promise((r) => setTimeout(r, 300));
    expect(await h.stop('stubborn')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(isProcessAlive(d.pid)).toBe(false);
  });

  it('kills its daemons from the process exit safety net when the test process exits without teardown', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, tsNodeArgs(join(REPO_ROOT, 'test', 'testdata', 'orphaning-parent.ts')), { cwd: REPO_ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${String(err)}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const m = /daemon (\d+) dir (\S+)/.exec(out);
    expect(m, out).not.toBeNull();
    const pid = Number(m![1]);
    try {
      await waitFor(() => !isProcessAlive(pid), { what: `orphaned daemon ${pid} killed`, timeoutMs: 5_000 });
    } finally {
      if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL'); // never leave it behind, even on failure
      rmSync(m![2]!, { recursive: true, force: true });
    }
  });
});
