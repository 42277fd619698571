/**
 * `aspen-mon`: a monitor daemon (DESIGN.md "Cluster state").
 *
 *   aspen-mon --mkfs --id a --data DIR --fsid UUID --initial-members a=HOST:PORT,b=…,c=…
 *   aspen-mon --mkfs --id d --data DIR --join HOST:PORT[,…]        (a mon to be added later)
 *   aspen-mon --id a --data DIR --addr HOST:PORT [--fsid UUID] [--metrics-addr HOST:PORT] [--conf FILE]
 *
 * `--mkfs` creates the monitor's store and exits, as `ceph-mon --mkfs` does; a normal start
 * refuses a store of another cluster or monitor, and a corrupt store, with a clear error and
 * exit status 1. SIGTERM/SIGINT stop it gracefully.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { AspenError } from '@aspen/shared';
import { discoverConfigPath, loadConfig, type ConfigValues } from '@aspen/shared/io/config.ts';
import { BOOTSTRAP_HARD_STATE, bootstrapSnapshot } from '../raft/confchange.ts';
import { SqliteRaftStorage } from '../io/raft-storage.ts';
import { RAFT_GRPC_SERVER_OPTIONS, RaftTransport } from '../io/raft-transport.ts';
import { MonNode } from '../io/mon-node.ts';
import { MonServer } from '../io/mon-server.ts';
import { MonMetrics } from '../io/metrics.ts';
import { MonClient } from '@aspen/shared/io/monclient.ts';

const ADDR_RE = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

function parseAddr(v: string): string {
  if (!ADDR_RE.test(v)) throw new InvalidArgumentError(`expected HOST:PORT, got '${v}'`);
  return v;
}

function parseMembers(v: string): { name: string; addr: string }[] {
  const out = v.split(',').filter(Boolean).map((kv) => {
    const m = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(kv);
    if (!m || !ADDR_RE.test(m[2]!)) throw new InvalidArgumentError(`expected NAME=HOST:PORT[,…], got '${kv}'`);
    return { name: m[1]!, addr: m[2]! };
  });
  if (out.length === 0) throw new InvalidArgumentError('at least one initial member is required');
  if (new Set(out.map((m) => m.name)).size !== out.length) throw new InvalidArgumentError('initial member names must be distinct');
  return out;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
}

interface Options {
  id: string;
  data: string;
  addr?: string;
  mkfs?: boolean;
  fsid?: string;
  initialMembers?: { name: string; addr: string }[];
  join?: string[];
  metricsAddr?: string;
  conf?: string;
  logLevel: string;
  tickMs: number;
  electionTicks: number;
  snapshotEvery: number;
}

const program = new Command('aspen-mon')
  .description('Aspen monitor: a Raft member holding the cluster maps')
  .requiredOption('--id <name>', 'monitor name (e.g. a)')
  .requiredOption('--data <dir>', 'data directory')
  .option('--addr <host:port>', 'address to listen on for peers and clients (default from the MonMap)', parseAddr)
  .option('--mkfs', 'create the monitor store and exit (like ceph-mon --mkfs)')
  .option('--fsid <uuid>', 'cluster fsid (with --mkfs; at start, refuse a store of another cluster; also `fsid` in aspen.conf)')
  .option('--initial-members <list>', 'with --mkfs: NAME=HOST:PORT,… of the initial monitors', parseMembers)
  .option('--join <addrs>', 'with --mkfs: create an empty store for a mon to be added with `aspen mon add`; reads the fsid and MonMap from these monitors (HOST:PORT,…)', (v: string) => v.split(',').map(parseAddr))
  .option('--metrics-addr <host:port>', 'serve Prometheus /metrics here', parseAddr)
  .option('--conf <file>', 'aspen.conf (TOML); [global], [mon], [mon.<id>] apply')
  .option('--log-level <level>', 'pino log level', 'info')
  .option('--tick-ms <ms>', 'Raft tick interval', positiveInt, 100)
  .option('--election-ticks <n>', 'Raft election timeout in ticks', positiveInt, 10)
  .option('--snapshot-every <entries>', 'snapshot the state and compact the log every N entries', positiveInt, 50_000)
  .showHelpAfterError();

function fail(log: pino.Logger, err: unknown): never {
  const msg = err instanceof AspenError ? err.message : String(err);
  log.fatal({ err: msg }, 'aspen-mon cannot start');
  process.stderr.write(`aspen-mon: ${msg}\n`);
  process.exit(1);
}

async function mkfs(o: Options, log: pino.Logger): Promise<void> {
  let knownMons = o.initialMembers ?? [];
  if (o.join) {
    // As a new ceph-mon learns the monmap from the running cluster.
    const client = new MonClient({ monAddrs: o.join, fsid: o.fsid ?? '', timeoutMs: 15_000 });
    try {
      const dump = (await client.command({ prefix: 'mon dump' })).data as { fsid: string; mons: { name: string; addr: string }[] };
      if (o.fsid && o.fsid !== dump.fsid) throw new AspenError('E_WRONG_CLUSTER', `--fsid ${o.fsid} but the cluster at ${o.join.join(',')} is ${dump.fsid}`);
      o.fsid = dump.fsid;
      knownMons = dump.mons;
    } finally {
      client.close();
    }
  }
  if (!o.fsid || !/^[0-9a-f-]{36}$/i.test(o.fsid)) throw new AspenError('EINVAL', '--mkfs needs --fsid UUID');
  if (!o.join && !o.initialMembers) throw new AspenError('EINVAL', '--mkfs needs --initial-members NAME=HOST:PORT,… (or --join)');
  if (o.initialMembers && !o.initialMembers.some((m) => m.name === o.id)) throw new AspenError('EINVAL', `--initial-members does not include this mon (${o.id})`);
  mkdirSync(o.data, { recursive: true });
  const storage = SqliteRaftStorage.open({ path: join(o.data, 'store.db') });
  try {
    if (storage.getMeta('fsid') !== undefined) throw new AspenError('EEXIST', `${o.data} already holds a monitor store (fsid ${storage.getMeta('fsid')})`);
    storage.verifyIdentity(o.fsid, o.id, true);
    // initial_members: the bootstrap voters (fresh cluster) or the monitors known at join time;
    // used to address peers until this mon has the MonMap.
    storage.setMeta('initial_members', JSON.stringify(knownMons));
    storage.setMeta('bootstrap', o.join ? 'join' : 'initial');
    if (!o.join) {
      storage.applySnapshot(bootstrapSnapshot(knownMons.map((m) => m.name)));
      storage.setHardState(BOOTSTRAP_HARD_STATE);
    }
  } finally {
    storage.close();
  }
  log.info({ data: o.data, fsid: o.fsid, join: o.join !== undefined }, 'created monitor store');
}

async function run(o: Options, conf: ConfigValues, log: pino.Logger): Promise<void> {
  let storage: SqliteRaftStorage;
  try {
    storage = SqliteRaftStorage.open({ path: join(o.data, 'store.db') });
  } catch (err) {
    if (err instanceof AspenError) throw new AspenError(err.code, `cannot open the monitor store in ${o.data}: ${err.message}`);
    throw err;
  }
  const fsid = storage.getMeta('fsid');
  if (fsid === undefined) throw new AspenError('ENOENT', `${o.data} holds no monitor store: run aspen-mon --mkfs first`);
  // As ceph-mon with `fsid` in ceph.conf: a store of another cluster is refused, not served.
  const expectedFsid = o.fsid ?? (typeof conf.fsid === 'string' ? conf.fsid : undefined);
  storage.verifyIdentity(expectedFsid ?? fsid, o.id, false);
  const knownMons = JSON.parse(storage.getMeta('initial_members') ?? '[]') as { name: string; addr: string }[];
  const initialMons = storage.getMeta('bootstrap') === 'join' ? [] : knownMons;
  const addr = o.addr ?? (typeof conf.mon_addr === 'string' ? conf.mon_addr : undefined) ?? knownMons.find((m) => m.name === o.id)?.addr;
  if (addr === undefined) throw new AspenError('EINVAL', '--addr is required (this mon is not among the initial members)');

  const transport = new RaftTransport({ id: o.id, fsid, log });
  const node = new MonNode({
    id: o.id, fsid, storage, transport, logger: log, knownMons,
    tickIntervalMs: o.tickMs, electionTick: o.electionTicks, heartbeatTick: 1,
    snapshotEveryEntries: o.snapshotEvery, compactionTrailingEntries: Math.min(5_000, Math.floor(o.snapshotEvery / 2)),
    proposalTimeoutMs: 5_000,
  });
  transport.onMessage((m) => node.step(m));
  transport.onUnreachable((peer) => node.reportUnreachable(peer));
  transport.onSnapshotStatus((peer, ok) => node.reportSnapshot(peer, ok));
  const metrics = new MonMetrics({ daemon: 'mon', id: o.id });
  const server = new grpc.Server(RAFT_GRPC_SERVER_OPTIONS);
  transport.attach(server);
  const monServer = new MonServer({ id: o.id, fsid, node, logger: log, metrics, initialMons, clock: () => Date.now() });
  monServer.attach(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(new AspenError('EINVAL', `cannot listen on ${addr}: ${err.message}`)) : resolve(p)));
  });
  let metricsServer: { close(): void } | null = null;
  const metricsAddr = o.metricsAddr ?? (typeof conf.metrics_addr === 'string' ? conf.metrics_addr : undefined);
  if (metricsAddr) {
    const [h, p] = [metricsAddr.slice(0, metricsAddr.lastIndexOf(':')), Number(metricsAddr.slice(metricsAddr.lastIndexOf(':') + 1))];
    metricsServer = (await metrics.serve(h, p)).server;
  }
  node.start();
  monServer.start();
  log.info({ id: o.id, addr, port, fsid, members: node.members }, 'aspen-mon ready');
  process.stdout.write(''); // readiness is also visible as the listening port

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    monServer.stop();
    node.stop();
    metricsServer?.close();
    server.tryShutdown(() => {
      void transport.close().finally(() => {
        storage.close();
        log.info('stopped');
        process.exit(0);
      });
    });
    setTimeout(() => {
      storage.close();
      process.exit(0);
    }, 3000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Options>();
  const log = pino({ level: o.logLevel, base: { daemon: 'mon', id: o.id } });
  try {
    const confPath = discoverConfigPath(o.conf);
    const conf = confPath ? loadConfig(confPath, 'mon', o.id) : {};
    if (o.mkfs) {
      await mkfs(o, log);
      return;
    }
    await run(o, conf, log);
  } catch (err) {
    fail(log, err);
  }
}

void main();
