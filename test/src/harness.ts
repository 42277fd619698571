/**
 * Process-level test harness (DESIGN.md "Testing pyramid" 3; CONVENTIONS.md item 14): start N
 * daemons as real child processes on free loopback ports with their data in a temporary
 * directory, wait for readiness, kill (-9) and restart them, and ALWAYS stop them by PID.
 *
 * Each daemon is spawned `detached`, so it leads its own process group (pgid = pid): a signal
 * goes to the whole group (`kill(-pid)`), which also reaches anything the daemon forked.
 * Nothing here ever signals by name (no pkill/killall).
 *
 * Teardown has three layers: {@link ProcessHarness.teardown} (call it in `afterEach`/`afterAll`),
 * a module-wide registry of live process groups killed with SIGKILL on the test process's
 * `exit`, and on SIGINT/SIGTERM to it (when nobody else handles those). A test runner killed with
 * SIGKILL cannot clean up; the daemons then keep running until killed by their PID, which the
 * log file header records.
 *
 * Output: each daemon's stdout and stderr go (appended, across restarts) to
 * `<dir>/logs/<name>.log`; the daemon writes the file directly, so nothing is lost if the
 * test process dies first.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where node_modules lives); the default cwd of daemons. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

// ---------------------------------------------------------------------------------------------
// Ports and directories

/**
 * `count` distinct free TCP ports on `host`, found by binding port 0. All are held open at once
 * so they are distinct, then released; another process may still take one before the daemon
 * binds it (rare on loopback) — restart with new ports if a daemon reports EADDRINUSE.
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((res, rej) => {
          server.once('error', rej);
          server.listen(0, host, () => {
            const addr = server.address();
            if (addr === null || typeof addr === 'string') rej(new Error('no port'));
            else res(addr.port);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
}

/** One free TCP port on `host` (see {@link freePorts}). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return (await freePorts(1, host))[0]!;
}

/** Creates a fresh temporary directory `<tmp>/<prefix>XXXXXX` and returns its path. */
export function makeTempDir(prefix = 'aspen-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

// ---------------------------------------------------------------------------------------------
// Waiting

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this long, ms; default 15000. */
  readonly timeoutMs?: number;
  /** Poll interval, ms; default 50. */
  readonly intervalMs?: number;
  /** What is awaited, for the timeout message. */
  readonly what?: string;
}

/**
 * Polls `predicate` until it returns true. A predicate that throws counts as false.
 * @throws Error "timed out waiting for <what>" after `timeoutMs`.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'condition'}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
    }
    await sleep(intervalMs);
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A readiness predicate: true once a TCP connection to `host:port` succeeds (the connection is closed at once). */
export function tcpConnectable(port: number, host = '127.0.0.1', timeoutMs = 1_000): () => Promise<boolean> {
  return () =>
    new Promise<boolean>((res) => {
      const socket = connect({ port, host });
      const done = (ok: boolean): void => {
        socket.destroy();
        res(ok);
      };
      socket.setTimeout(timeoutMs, () => done(false));
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
    });
}

// ---------------------------------------------------------------------------------------------
// Process registry and safety net

/** Process groups (= leader pids) started by any harness in this process and not yet seen to exit. */
const liveGroups = new Set<number>();
let safetyNetInstalled = false;

/** Signals a RUNNING (not yet reaped) daemon's group and the daemon itself. */
function killGroupSync(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone.
  }
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH
  }
}

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) killGroupSync(pid, 'SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    // Only when nobody else handles the signal: adding a listener disables Node's default exit.
    if (process.listenerCount(sig) > 0) continue;
    const onSignal = (): void => {
      for (const pid of liveGroups) killGroupSync(pid, 'SIGKILL');
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * True when `pid` is a live process (not a zombie). Linux-specific (/proc): a killed child whose
 * parent has not reaped it yet still answers kill(pid, 0).
 */
export function isProcessAlive(pid: number): boolean {
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
    return false;
  }
}

/** Pids of live (non-zombie) processes in process group `pgid` (Linux /proc scan). */
export function processGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // rest[0] = state, rest[1] = ppid, rest[2] = pgrp
      if (Number(rest[2]) === pgid && rest[0] !== 'Z' && rest[0] !== 'X') out.push(Number(e));
    } catch {
      // raced with exit
    }
  }
  return out;
}

/**
 * SIGKILLs what is left of process group `pgid` after its leader exited (a daemon's forks).
 * Only signals when the group still has members: while it does, its id cannot be reused, so
 * this never hits an unrelated process.
 */
function killGroupRemnants(pgid: number): void {
  if (processGroupMembers(pgid).length === 0) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: gone meanwhile
  }
}

// ---------------------------------------------------------------------------------------------
// Daemons

/** How to start one daemon. */
export interface DaemonSpec {
  /** Unique name in the harness (e.g. `mon.a`); names the log file. */
  readonly name: string;
  /** Executable; default `process.execPath` (node). */
  readonly command?: string;
  /** Arguments. For a TypeScript entry point use {@link tsNodeArgs}. */
  readonly args: readonly string[];
  /** Extra environment (merged over the test process's environment). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory; default {@link REPO_ROOT}. */
  readonly cwd?: string;
}

/** Arguments to run a TypeScript file with node through tsx: `['--import', 'tsx', script, ...args]`. */
export function tsNodeArgs(script: string, args: readonly string[] = []): string[] {
  return ['--import', 'tsx', script, ...args];
}

/** How a daemon process ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One run of a daemon (a restart makes a new {@link DaemonProcess}). */
export interface DaemonProcess {
  readonly name: string;
  readonly pid: number;
  readonly spec: DaemonSpec;
  readonly logPath: string;
  /** Resolves when the process has exited and been reaped. */
  readonly exited: Promise<ExitStatus>;
  /** Undefined while running. */
  readonly exitStatus: ExitStatus | undefined;
}

class Proc implements DaemonProcess {
  exitStatus: ExitStatus | undefined = undefined;
  constructor(
    readonly name: string,
    readonly pid: number,
    readonly spec: DaemonSpec,
    readonly logPath: string,
    readonly exited: Promise<ExitStatus>,
  ) {}
}

/** Options of {@link ProcessHarness}. */
export interface HarnessOptions {
  /** Directory for data and logs; default a fresh temp dir, removed on teardown. */
  readonly dir?: string;
  /** Keep the directory after teardown (to inspect logs); default false, or true when `ASPEN_KEEP_TEST_DIR=1`. */
  readonly keepDir?: boolean;
  /** Grace period between SIGTERM and SIGKILL when stopping, ms; default 5000. */
  readonly stopTimeoutMs?: number;
}

/**
 * Starts and stops daemons for one test (or suite). Every process it starts is stopped by
 * {@link teardown}, which must run even when the test fails (`afterEach`).
 */
export class ProcessHarness {
  readonly dir: string;
  readonly logDir: string;
  private readonly ownsDir: boolean;
  private readonly keepDir: boolean;
  private readonly stopTimeoutMs: number;
  private readonly procs = new Map<string, Proc>();
  private tornDown = false;

  constructor(options: HarnessOptions = {}) {
    this.ownsDir = options.dir === undefined;
    this.dir = options.dir ?? makeTempDir();
    this.logDir = join(this.dir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
    this.keepDir = options.keepDir ?? process.env['ASPEN_KEEP_TEST_DIR'] === '1';
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
    installSafetyNet();
  }

  /** A subdirectory of the harness dir (created), e.g. a daemon's data dir. */
  path(...parts: string[]): string {
    const p = join(this.dir, ...parts);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /**
   * Starts a daemon (detached, in its own process group), stdout+stderr appended to
   * `<dir>/logs/<name>.log`. Returns at once; use {@link waitReady} for readiness.
   * @throws Error when a daemon of that name is running, or the harness was torn down.
   */
  spawn(spec: DaemonSpec): DaemonProcess {
    if (this.tornDown) throw new Error('harness already torn down');
    const running = this.procs.get(spec.name);
    if (running !== undefined && running.exitStatus === undefined) throw new Error(`daemon ${spec.name} is already running (pid ${running.pid})`);
    const logPath = join(this.logDir, `${spec.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`);
    const command = spec.command ?? process.execPath;
    appendFileSync(logPath, `=== ${new Date().toISOString()} start: ${command} ${spec.args.join(' ')}\n`);
    const fd = openSync(logPath, 'a');
    let child;
    try {
      child = spawn(command, [...spec.args], {
        cwd: spec.cwd ?? REPO_ROOT,
        env: { ...process.env, ...spec.env },
        detached: true,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    child.once('error', (err) => {
      try {
        appendFileSync(logPath, `=== spawn error: ${String(err)}\n`);
      } catch {
        // the directory may already be gone
      }
    });
    const pid = child.pid;
    if (pid === undefined) {
      // spawn failed (e.g. ENOENT); the 'error' event, logged above, carries the reason.
      throw new Error(`cannot spawn ${spec.name}: ${command} (see ${logPath})`);
    }
    liveGroups.add(pid);
    appendFileSync(logPath, `=== pid ${pid} (process group ${pid})\n`);
    let resolveExit!: (s: ExitStatus) => void;
    const proc = new Proc(spec.name, pid, spec, logPath, new Promise<ExitStatus>((res) => (resolveExit = res)));
    child.once('exit', (code, signal) => {
      const status = { code, signal };
      proc.exitStatus = status;
      liveGroups.delete(pid);
      // The leader is gone; make sure nothing it forked lingers in its group.
      killGroupRemnants(pid);
      try {
        appendFileSync(logPath, `=== ${new Date().toISOString()} pid ${pid} exited: code ${code} signal ${signal}\n`);
      } catch {
        // the directory may already be gone at teardown
      }
      resolveExit(status);
    });
    this.procs.set(spec.name, proc);
    return proc;
  }

  /** The current (latest) run of daemon `name`. @throws Error when unknown. */
  daemon(name: string): DaemonProcess {
    const p = this.procs.get(name);
    if (p === undefined) throw new Error(`no daemon named ${name}`);
    return p;
  }

  /** All daemons' latest runs. */
  daemons(): DaemonProcess[] {
    return [...this.procs.values()];
  }

  /** The log file's text (all runs). */
  log(name: string): string {
    const p = this.daemon(name).logPath;
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  }

  /**
   * Polls `predicate` until true, failing early (with the log's tail) if the daemon exits first.
   * @throws Error on timeout or early exit.
   */
  async waitReady(name: string, predicate: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
    const proc = this.daemon(name);
    const tail = (): string => `\n--- ${proc.logPath} (tail) ---\n${this.log(name).slice(-2000)}`;
    let exitedEarly = false;
    await waitFor(
      async () => {
        // An exited daemon will never become ready: stop polling at once.
        if (proc.exitStatus !== undefined) return (exitedEarly = true);
        return predicate();
      },
      { what: `${name} ready`, ...options },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}${tail()}`);
    });
    if (exitedEarly) throw new Error(`daemon ${name} (pid ${proc.pid}) exited before ready: ${JSON.stringify(proc.exitStatus)}${tail()}`);
  }

  /**
   * Sends `signal` to daemon `name`'s process group (by pid, never by name) and, when `wait`,
   * resolves with its exit status once reaped. Killing an exited daemon is a no-op.
   */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL', wait = true): Promise<ExitStatus | undefined> {
    const proc = this.daemon(name);
    if (proc.exitStatus !== undefined) return proc.exitStatus;
    killGroupSync(proc.pid, signal);
    return wait ? proc.exited : undefined;
  }

  /**
   * Stops daemon `name`: SIGTERM, then SIGKILL after `stopTimeoutMs`. Resolves when reaped.
   */
  async stop(name: string, timeoutMs = this.stopTimeoutMs): Promise<ExitStatus> {
    const proc = this.daemon(name);
    if (proc.exitStatus !== undefined) return proc.exitStatus;
    killGroupSync(proc.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (proc.exitStatus === undefined) killGroupSync(proc.pid, 'SIGKILL');
    }, timeoutMs);
    try {
      return await proc.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Restarts daemon `name` with the same spec (optionally changed by `override`): stops it
   * with `signal` (SIGKILL: a crash; SIGTERM: graceful, escalating after the timeout) if it is
   * running, then spawns it again. Returns the new run.
   */
  async restart(name: string, signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM', override: Partial<DaemonSpec> = {}): Promise<DaemonProcess> {
    const proc = this.daemon(name);
    if (signal === 'SIGKILL') await this.kill(name, 'SIGKILL');
    else await this.stop(name);
    return this.spawn({ ...proc.spec, ...override, name });
  }

  /**
   * Stops every daemon (SIGTERM, then SIGKILL after the timeout; all in parallel), then kills
   * any process left in their groups, and removes the directory unless kept. Idempotent; never
   * throws for processes already gone.
   */
  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    await Promise.all([...this.procs.keys()].map((n) => this.stop(n)));
    for (const p of this.procs.values()) killGroupRemnants(p.pid);
    if (this.ownsDir && !this.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
