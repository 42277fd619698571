/**
 * `aspen-dev`: runs a whole Aspen cluster on this machine, as Ceph's vstart.sh does.
 *
 *   aspen-dev up [--data DIR] [--detach] [--mon-port-base 6789]
 *   aspen-dev down [--data DIR]
 *   aspen-dev status [--data DIR]
 *   aspen-dev logs DAEMON [--data DIR] [-n LINES]
 *
 * `up` on an empty data directory creates a cluster (fsid, 3 monitors on
 * 127.0.0.1:6789–6791) and writes DIR/aspen.conf, which the `aspen` CLI discovers; `up` on an
 * existing one restarts the same cluster. Daemons run detached with PID files under DIR/run
 * and logs under DIR/logs; `down` stops exactly those PIDs. In the foreground (no
 * `--detach`) a live status line is shown and Ctrl-C stops the cluster.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadConfig } from '@aspen/shared/io/config.ts';
import { MonClient } from '@aspen/shared/io/monclient.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MON_BIN = join(ROOT, 'mon', 'bin', 'aspen-mon');
const OSD_BIN = join(ROOT, 'osd', 'bin', 'aspen-osd');
const MON_NAMES = ['a', 'b', 'c'];
/** OSDs of the local cluster, each under its own CRUSH host so size-3 pools place on one machine. */
const OSD_IDS = [0, 1, 2];

interface UpOptions { data: string; detach?: boolean; monPortBase: number }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function pidFile(data: string, daemon: string): string {
  return join(data, 'run', `${daemon}.pid`);
}

function runningPid(data: string, daemon: string): number | null {
  const f = pidFile(data, daemon);
  if (!existsSync(f)) return null;
  const pid = Number(readFileSync(f, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : null;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

/** Runs a command to completion, inheriting output; throws on a non-zero exit. */
function runToEnd(cmd: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    p.once('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

function startDetached(data: string, daemon: string, cmd: string, args: string[]): number {
  mkdirSync(join(data, 'logs'), { recursive: true });
  mkdirSync(join(data, 'run'), { recursive: true });
  const fd = openSync(join(data, 'logs', `${daemon}.log`), 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], cwd: ROOT });
  closeSync(fd);
  child.unref();
  writeFileSync(pidFile(data, daemon), `${child.pid}\n`);
  return child.pid!;
}

function monAddrs(data: string): Map<string, string> {
  const conf = loadConfig(join(data, 'aspen.conf'), 'client');
  const hosts = String(conf.mon_host ?? '').split(',').filter(Boolean);
  return new Map(MON_NAMES.map((n, i) => [n, hosts[i]!]));
}

async function up(o: UpOptions): Promise<void> {
  const data = resolve(o.data);
  const confPath = join(data, 'aspen.conf');
  if (!existsSync(confPath)) {
    const fsid = randomUUID();
    const addrs = MON_NAMES.map((n, i) => [n, `127.0.0.1:${o.monPortBase + i}`] as const);
    for (const [, addr] of addrs) {
      if (await portOpen(Number(addr.split(':')[1]))) throw new Error(`port ${addr} is already in use; pick another base with --mon-port-base`);
    }
    mkdirSync(data, { recursive: true });
    const members = addrs.map(([n, a]) => `${n}=${a}`).join(',');
    process.stdout.write(`creating cluster ${fsid} in ${data}\n`);
    for (const [n] of addrs) await runToEnd(process.execPath, [MON_BIN, '--mkfs', '--id', n, '--data', join(data, `mon.${n}`), '--fsid', fsid, '--initial-members', members, '--log-level', 'warn']);
    writeFileSync(confPath, [
      '# Written by aspen-dev. The aspen CLI finds this file from the repository root.',
      '[global]', `fsid = "${fsid}"`, `mon_host = "${addrs.map(([, a]) => a).join(',')}"`, '',
    ].join('\n'));
  }
  const addrs = monAddrs(data);
  for (const [n, addr] of addrs) {
    if (runningPid(data, `mon.${n}`) !== null) continue;
    startDetached(data, `mon.${n}`, process.execPath, [MON_BIN, '--id', n, '--data', join(data, `mon.${n}`), '--addr', addr]);
  }
  const monList = [...addrs.values()].join(',');
  const client = new MonClient({ monAddrs: [...addrs.values()], timeoutMs: 30_000 });
  try {
    await client.command({ prefix: 'status' });
    for (const id of OSD_IDS) {
      const dir = join(data, `osd.${id}`);
      if (!existsSync(join(dir, 'whoami'))) {
        await runToEnd(process.execPath, [OSD_BIN, '--mkfs', '--data', dir, '--mon', monList, '--id', String(id), '--log-level', 'warn']);
      }
      if (runningPid(data, `osd.${id}`) === null) {
        startDetached(data, `osd.${id}`, process.execPath, [OSD_BIN, '--data', dir, '--mon', monList, '--host', `${hostname()}-${id}`]);
      }
    }
    await client.command({ prefix: 'osd pool create', pool: 'rbd', pg_num: 32 });
    await client.command({ prefix: 'osd pool application enable', pool: 'rbd', app: 'rbd' });
  } finally {
    client.close();
  }
  const cli = `ASPEN_CONF=${confPath} ./mon/bin/aspen`;
  process.stdout.write([
    '',
    `Aspen is up: 3 monitors at ${[...addrs.values()].join(', ')}, ${OSD_IDS.length} OSDs, pool 'rbd' (data and logs in ${data}).`,
    `  status:     ./mon/bin/aspen status          (from ${ROOT}; elsewhere: ${cli} status)`,
    '  OSDs:       ./mon/bin/aspen osd tree',
    '  a pool:     ./mon/bin/aspen osd pool create mypool 32',
    `  stop:       npm start -- down   (or: node deploy/bin/aspen-dev.mjs down --data ${data})`,
    '',
  ].join('\n'));
  if (o.detach) return;
  process.stdout.write('Showing live status; Ctrl-C stops the cluster (use --detach to leave it running).\n');
  let stopping = false;
  process.on('SIGINT', () => {
    if (stopping) return;
    stopping = true;
    void down({ data }).then(() => process.exit(0));
  });
  const watcher = new MonClient({ monAddrs: [...addrs.values()], timeoutMs: 5_000 });
  while (!stopping) {
    let line: string;
    try {
      const s = (await watcher.command({ prefix: 'status' })).data as {
        health: { status: string }; quorum_names: string[]; osdmap: { epoch: number; num_osds: number; num_up_osds: number };
        pgmap: { num_pgs: number; pgs_by_state: { state_name: string; count: number }[]; recovery_objects_missing: number };
      };
      const pgs = s.pgmap.pgs_by_state.map((p) => `${p.count} ${p.state_name}`).join(', ') || '0 pgs';
      line = `${s.health.status}  quorum ${s.quorum_names.join(',')}  osdmap e${s.osdmap.epoch} (${s.osdmap.num_up_osds}/${s.osdmap.num_osds} osds up)  pgs: ${pgs}`;
    } catch (err) {
      line = `no quorum (${String((err as Error).message).slice(0, 80)})`;
    }
    if (process.stdout.isTTY) process.stdout.write(`\r\x1b[2K${line}`);
    else process.stdout.write(`${line}\n`);
    await sleep(2000);
  }
  watcher.close();
}

async function down(o: { data: string }): Promise<void> {
  const data = resolve(o.data);
  // OSDs first: a stopping OSD asks the monitors to mark it down.
  for (const daemon of [...OSD_IDS.map((i) => `osd.${i}`), ...MON_NAMES.map((n) => `mon.${n}`)]) {
    const pid = runningPid(data, daemon);
    if (pid === null) continue;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(100);
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(pidFile(data, daemon), { force: true });
    process.stdout.write(`stopped ${daemon} (pid ${pid})\n`);
  }
}

async function status(o: { data: string }): Promise<void> {
  const data = resolve(o.data);
  if (!existsSync(join(data, 'aspen.conf'))) {
    process.stdout.write(`no cluster in ${data} (run: npm start)\n`);
    process.exitCode = 1;
    return;
  }
  for (const daemon of [...MON_NAMES.map((n) => `mon.${n}`), ...OSD_IDS.map((i) => `osd.${i}`)]) {
    const pid = runningPid(data, daemon);
    process.stdout.write(`${daemon}: ${pid === null ? 'stopped' : `running (pid ${pid})`}\n`);
  }
}

const program = new Command('aspen-dev').description('run an Aspen cluster on this machine (like Ceph vstart.sh)');
program.command('up', { isDefault: true }).description('create or restart the cluster')
  .option('--data <dir>', 'data directory', './aspen-data')
  .option('--detach', 'leave the cluster running in the background and return')
  .option('--mon-port-base <port>', 'first monitor port (3 consecutive ports)', (v) => Number(v), 6789)
  .action(async (o: UpOptions) => up(o));
program.command('down').description('stop the cluster started from --data').option('--data <dir>', 'data directory', './aspen-data').action(async (o: { data: string }) => down(o));
program.command('status').description('which daemons run').option('--data <dir>', 'data directory', './aspen-data').action(async (o: { data: string }) => status(o));
program.command('logs').argument('<daemon>', 'e.g. mon.a').option('--data <dir>', 'data directory', './aspen-data').option('-n, --lines <n>', 'lines from the end', (v) => Number(v), 50)
  .description('print the end of a daemon log')
  .action((daemon: string, o: { data: string; lines: number }) => {
    const f = join(resolve(o.data), 'logs', `${daemon}.log`);
    if (!existsSync(f)) throw new Error(`no log ${f}`);
    process.stdout.write(`${readFileSync(f, 'utf8').split('\n').slice(-o.lines - 1).join('\n')}`);
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`aspen-dev: ${(err as Error).message}\n`);
  process.exit(1);
});
