/**
 * Shared by the cluster benchmarks that run Ceph's anchor (../shared/anchors/ceph) beside
 * Aspen: the environment its scripts run in, and running a script with a deadline. Files
 * starting with `_` are helpers, not benchmarks (run.ts).
 */
import { spawn } from 'node:child_process';

/** This process's environment plus `extra`, without a CEPH_ANCHOR_DIR/CEPH_CONF of the caller's. */
export function cephEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete e['CEPH_ANCHOR_DIR'];
  delete e['CEPH_CONF'];
  return e;
}

/**
 * Runs a script, its stdout and stderr going to our stderr; SIGKILLs it after `timeoutMs`.
 * @throws Error on a non-zero exit or a signal.
 */
export function runScript(file: string, args: string[], e: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(file, args, { env: e, stdio: ['ignore', process.stderr, process.stderr] });
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      rej(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) res();
      else rej(new Error(`${file} ${args.join(' ')} exited with ${code === null ? `signal ${signal}` : `status ${code}`}`));
    });
  });
}
