/**
 * `aspen-dev`: runs a whole Aspen cluster on this machine, as Ceph's vstart.sh does.
 *
 *   aspen-dev up [--data DIR] [--detach] [--mon-port-base 6789] [--s3-port 7480] [--nbd-port 10809]
 *   aspen-dev down [--data DIR]
 *   aspen-dev status [--data DIR]
 *   aspen-dev logs DAEMON [--data DIR] [-n LINES]
 *
 * `up` on an empty data directory creates a cluster (fsid, 3 monitors on
 * 127.0.0.1:6789–6791) and writes DIR/aspen.conf, which the `aspen` CLI discovers; `up` on an
 * existing one restarts the same cluster. Besides the monitors and OSDs it runs the S3 gateway
 * and the NBD server, with an S3 user and the image rbd/vm0 made on the first `up` (see
 * ../io/frontends.ts); there is no MDS yet. Daemons run detached with PID files under DIR/run
 * and logs under DIR/logs; `down` stops exactly those PIDs. In the foreground (no
 * `--detach`) a live status line is shown and Ctrl-C stops the cluster.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '@aspen/shared/io/config.ts';
import { MonClient } from '@aspen/shared/io/monclient.ts';
import { ROOT, logFile, portOpen, runToEnd, runningPid, sleep, startDetached, stopDaemon, waitListening } from '../io/daemons.ts';
import { RBD_IMAGE, ensureImage, ensureS3User, nbdArgs, resolveSettings, s3gwArgs, savedSettings, usageText } from '../io/frontends.ts';

const MON_BIN = join(ROOT, 'mon', 'bin', 'aspen-mon');
const OSD_BIN = join(ROOT, 'osd', 'bin', 'aspen-osd');
const MON_NAMES = ['a', 'b', 'c'];
/** OSDs of the local cluster, each under its own CRUSH host so size-3 pools place on one machine. */
const OSD_IDS = [0, 1, 2];
/** The front-end daemons, started after the pools exist and stopped before the OSDs. */
const FRONTENDS = ['s3gw', 'nbd'] as const;
/** How long a front-end may take to listen (the gateway creates its pools first). */
const FRONTEND_START_TIMEOUT_MS = 90_000;

interface UpOptions { data: string; detach?: boolean; monPortBase: number; s3Port?: number; nbdPort?: number }

function monAddrs(data: string): Map<string, string> {
  const conf = loadConfig(join(data, 'aspen.conf'), 'client');
  const hosts = String(conf.mon_host ?? '').split(',').filter(Boolean);
  return new Map(MON_NAMES.map((n, i) => [n, hosts[i]!]));
}

/**
 * Starts a front-end daemon unless its PID file names a live one, and waits until it listens.
 * @throws Error when another process holds the port, or the daemon exits or never listens.
 */
async function startFrontend(data: string, daemon: (typeof FRONTENDS)[number], args: string[], port: number, flag: string): Promise<void> {
  if (runningPid(data, daemon) !== null) return;
  if (await portOpen(port)) throw new Error(`port 127.0.0.1:${port} for ${daemon} is already in use; pick another with ${flag}`);
  const pid = startDetached(data, daemon, process.execPath, args);
  await waitListening(data, daemon, pid, port, FRONTEND_START_TIMEOUT_MS);
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
  const settings = resolveSettings(data, o);
  const [creds] = await Promise.all([
    ensureS3User(data, confPath),
    ensureImage(confPath).then((created) => { if (created) process.stdout.write(`created image ${RBD_IMAGE}\n`); }),
    startFrontend(data, 's3gw', s3gwArgs(confPath, settings.s3_port), settings.s3_port, '--s3-port'),
    startFrontend(data, 'nbd', nbdArgs(confPath, settings.nbd_port), settings.nbd_port, '--nbd-port'),
  ]);
  const cli = `ASPEN_CONF=${confPath} ./mon/bin/aspen`;
  process.stdout.write([
    '',
    `Aspen is up: 3 monitors at ${[...addrs.values()].join(', ')}, ${OSD_IDS.length} OSDs, pool 'rbd', the S3 gateway and the NBD server (data and logs in ${data}).`,
    `  status:     ./mon/bin/aspen status          (from ${ROOT}; elsewhere: ${cli} status)`,
    '  OSDs:       ./mon/bin/aspen osd tree',
    '  a pool:     ./mon/bin/aspen osd pool create mypool 32',
    ...usageText(data, settings, creds),
    `  daemons:    npm start -- status;  npm start -- logs s3gw   (mon.a…c, osd.0…2, s3gw, nbd)`,
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
  // Front-ends first (they are clients), then OSDs (a stopping OSD asks the monitors to mark
  // it down), then the monitors.
  for (const daemon of [...FRONTENDS, ...OSD_IDS.map((i) => `osd.${i}`), ...MON_NAMES.map((n) => `mon.${n}`)]) {
    const pid = await stopDaemon(data, daemon);
    if (pid !== null) process.stdout.write(`stopped ${daemon} (pid ${pid})\n`);
  }
}

async function status(o: { data: string }): Promise<void> {
  const data = resolve(o.data);
  if (!existsSync(join(data, 'aspen.conf'))) {
    process.stdout.write(`no cluster in ${data} (run: npm start)\n`);
    process.exitCode = 1;
    return;
  }
  const addrs = monAddrs(data);
  const s = savedSettings(data);
  const where: Record<string, string> = { s3gw: `http://127.0.0.1:${s.s3_port}`, nbd: `nbd://127.0.0.1:${s.nbd_port}/${RBD_IMAGE}` };
  for (const n of MON_NAMES) where[`mon.${n}`] = addrs.get(n) ?? '';
  for (const daemon of [...MON_NAMES.map((n) => `mon.${n}`), ...OSD_IDS.map((i) => `osd.${i}`), ...FRONTENDS]) {
    const pid = runningPid(data, daemon);
    const at = where[daemon] === undefined ? '' : `  ${where[daemon]}`;
    process.stdout.write(`${daemon.padEnd(6)}  ${pid === null ? 'stopped' : `running (pid ${pid})`}${at}\n`);
  }
  process.stdout.write('mds     not available (the filesystem does not exist yet)\n');
}

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`expected a port in [1, 65535], got '${v}'`);
  return n;
};

const program = new Command('aspen-dev')
  .description('run an Aspen cluster on this machine (like Ceph vstart.sh): 3 monitors, 3 OSDs, pool \'rbd\', the S3 gateway and the NBD server')
  .addHelpText('after', [
    '',
    'Daemons: mon.a mon.b mon.c (127.0.0.1:6789-6791), osd.0 osd.1 osd.2, s3gw (aspen-s3gw on',
    '127.0.0.1:7480), nbd (aspen-rbd nbd serve on 127.0.0.1:10809, exporting rbd/vm0, 1 GiB).',
    'The first `up` also creates the S3 user \'dev\' (keys in DIR/s3-user.json, mode 0600) and the',
    'image rbd/vm0; `up` again on the same DIR restarts the same cluster, ports and user.',
    'Not yet: the filesystem (no MDS, no FUSE mount) - those daemons do not exist in Aspen yet.',
  ].join('\n'));
program.command('up', { isDefault: true }).description('create or restart the cluster and its S3 and NBD front-ends')
  .option('--data <dir>', 'data directory', './aspen-data')
  .option('--detach', 'leave the cluster running in the background and return')
  .option('--mon-port-base <port>', 'first monitor port (3 consecutive ports; used when creating the cluster)', port, 6789)
  .option('--s3-port <port>', 'S3 gateway port on 127.0.0.1 (default 7480, or what the last up used)', port)
  .option('--nbd-port <port>', 'NBD server port on 127.0.0.1 (default 10809, or what the last up used)', port)
  .action(async (o: UpOptions) => up(o));
program.command('down').description('stop the cluster started from --data').option('--data <dir>', 'data directory', './aspen-data').action(async (o: { data: string }) => down(o));
program.command('status').description('which daemons run').option('--data <dir>', 'data directory', './aspen-data').action(async (o: { data: string }) => status(o));
program.command('logs').argument('<daemon>', 'mon.a…c, osd.0…2, s3gw or nbd').option('--data <dir>', 'data directory', './aspen-data').option('-n, --lines <n>', 'lines from the end', (v) => Number(v), 50)
  .description('print the end of a daemon log')
  .action((daemon: string, o: { data: string; lines: number }) => {
    const f = logFile(resolve(o.data), daemon);
    if (!existsSync(f)) throw new Error(`no log ${f}`);
    process.stdout.write(`${readFileSync(f, 'utf8').split('\n').slice(-o.lines - 1).join('\n')}`);
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`aspen-dev: ${(err as Error).message}\n`);
  process.exit(1);
});
