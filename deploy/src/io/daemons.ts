/**
 * Detached daemons of a local cluster: each runs in its own session with stdout/stderr
 * appended to DIR/logs/<daemon>.log and its PID in DIR/run/<daemon>.pid. Stopping signals
 * exactly that PID (never by name), so several clusters on one machine stay apart.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (daemons run with it as their working directory). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * True when `pid` is a live process. A zombie (exited, not yet reaped by whoever inherited
 * it) counts as dead: kill(pid, 0) alone would call it alive.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // Raced with its exit on Linux; elsewhere (no /proc) kill(pid, 0) is all there is.
    return !existsSync('/proc/self');
  }
}

export function pidFile(data: string, daemon: string): string {
  return join(data, 'run', `${daemon}.pid`);
}

export function logFile(data: string, daemon: string): string {
  return join(data, 'logs', `${daemon}.log`);
}

/** The PID of `daemon` when its PID file names a live process, else null. */
export function runningPid(data: string, daemon: string): number | null {
  const f = pidFile(data, daemon);
  if (!existsSync(f)) return null;
  const pid = Number(readFileSync(f, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : null;
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ port, host });
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

/** Runs a command to completion; resolves with its stdout, throws with its stderr on a non-zero exit. */
export function runToEnd(cmd: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    p.once('error', rej);
    p.once('close', (code) => {
      if (code === 0) res(Buffer.concat(out).toString('utf8'));
      else rej(new Error(`${[cmd, ...args].join(' ')} exited with ${code}: ${Buffer.concat(err).toString('utf8').trim()}`));
    });
  });
}

/** Starts `daemon` detached (own session), logging to its log file; writes and returns its PID. */
export function startDetached(data: string, daemon: string, cmd: string, args: string[]): number {
  mkdirSync(join(data, 'logs'), { recursive: true });
  mkdirSync(join(data, 'run'), { recursive: true });
  const fd = openSync(logFile(data, daemon), 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], cwd: ROOT });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${daemon} (${cmd})`);
  writeFileSync(pidFile(data, daemon), `${child.pid}\n`);
  return child.pid;
}

/**
 * Waits until `daemon` accepts connections on `port`.
 * @throws Error with the end of its log when it exits first or `timeoutMs` passes.
 */
export async function waitListening(data: string, daemon: string, pid: number, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) break;
    if (await portOpen(port)) return;
    await sleep(200);
  }
  const f = logFile(data, daemon);
  const tail = existsSync(f) ? readFileSync(f, 'utf8').split('\n').slice(-15).join('\n') : '';
  const why = pidAlive(pid) ? `is not listening on port ${port} after ${timeoutMs} ms` : 'exited';
  throw new Error(`${daemon} (pid ${pid}) ${why}; end of ${f}:\n${tail}`);
}

/** SIGTERM, up to 10 s for a clean exit, then SIGKILL; removes the PID file. Returns the PID stopped, if any. */
export async function stopDaemon(data: string, daemon: string): Promise<number | null> {
  const pid = runningPid(data, daemon);
  if (pid === null) {
    rmSync(pidFile(data, daemon), { force: true });
    return null;
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(100);
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
  rmSync(pidFile(data, daemon), { force: true });
  return pid;
}
