/**
 * `aspen-osd`: an object storage daemon (DESIGN.md "Daemons", "Data path", "Failure
 * handling"), replicated pools.
 *
 *   aspen-osd --mkfs --data DIR --mon HOST:PORT[,…] [--id N]
 *   aspen-osd --data DIR --mon HOST:PORT[,…] [--addr HOST:PORT] [--host NAME]
 *
 * `--mkfs` creates the object store in DIR, registers the OSD with the monitors
 * (`osd new <uuid>`, which allocates the id) and writes `whoami`, `fsid` and `uuid` into DIR,
 * as `ceph-osd --mkfs` does, then exits. A normal start mounts the store, loads its PGs,
 * listens on the messenger (port 0 picks a free port; the bound address is what it boots
 * with), sends `osd boot`, follows the OSDMap, beacons the monitors every
 * {@link BEACON_INTERVAL_MS}, heartbeats its PG peers, reports PG states every
 * {@link PG_STATS_INTERVAL_MS}, and stops gracefully on SIGTERM/SIGINT (asks the mons to
 * mark it down, finishes in-flight work, umounts the store). Bad configuration: a clear
 * error on stderr and exit status 1.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { AspenError, isErrorCode } from '@aspen/shared';
import { MonClient } from '@aspen/shared/io/monclient.ts';
import { Messenger } from '@aspen/shared/io/msgr-client.ts';
import { OsdEc } from '../io/osd-ec.ts';
import { MsgrServer } from '@aspen/shared/io/msgr-server.ts';
import { OsdMapTracker } from '@aspen/shared/io/osdmap-tracker.ts';
import { SqliteObjectStore } from '../io/store-object-store.ts';
import { OSD_DEEP_SCRUB_INTERVAL_MS, OSD_SCRUB_MIN_INTERVAL_MS, OsdPgs, PG_TICK_INTERVAL_MS } from '../io/osd-pgs.ts';
import { OsdHeartbeat, HEARTBEAT_GRACE_MS, HEARTBEAT_INTERVAL_MS } from '../io/osd-heartbeat.ts';
import { OsdService } from '../io/osd-service.ts';
import { OsdMetrics } from '../io/osd-metrics.ts';
import { WATCH_TIMEOUT_DEFAULT_MS, WATCH_TIMEOUT_MAX_MS, WatchService } from '../io/osd-watch.ts';

/** `osd beacon` period, ms (Ceph osd_beacon_report_interval: 300 s; the mons' report timeout here is 60 s). */
export const BEACON_INTERVAL_MS = 3_000;
/** Fraction of the store's filesystem in use at which the OSD reports nearfull (Ceph mon_osd_nearfull_ratio). */
const NEARFULL_RATIO = 0.85;
/** `pg stats` period, ms. */
export const PG_STATS_INTERVAL_MS = 2_000;
/** Period of the watch expiry check, ms. */
export const WATCH_TICK_INTERVAL_MS = 1_000;
/** Time to finish in-flight work at shutdown before exiting anyway, ms. */
const SHUTDOWN_GRACE_MS = 5_000;
/** How long a graceful stop waits for the monitors to mark this OSD down, ms. */
const MARK_DOWN_TIMEOUT_MS = 2_000;
/** Deadline of one monitor command, ms. */
const MON_COMMAND_TIMEOUT_MS = 15_000;

const ADDR_RE = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

function parseAddr(v: string): string {
  if (!ADDR_RE.test(v)) throw new InvalidArgumentError(`expected HOST:PORT, got '${v}'`);
  return v;
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${v}'`);
  return n;
}

function positiveSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number of seconds, got '${v}'`);
  return n;
}

interface Options {
  data: string;
  mon: string[];
  mkfs?: boolean;
  id?: number;
  addr?: string;
  host?: string;
  metricsAddr?: string;
  watchTimeoutMs: number;
  osdScrubMinInterval: number;
  osdHeartbeatGrace: number;
  osdDeepScrubInterval: number;
  logLevel: string;
}

const program = new Command('aspen-osd')
  .description('Aspen OSD: stores the objects of the PGs CRUSH gives it')
  .requiredOption('--data <dir>', 'data directory (object store, whoami, fsid, uuid)')
  .requiredOption('--mon <addrs>', 'monitor addresses HOST:PORT[,…]', (v: string) => v.split(',').filter(Boolean).map(parseAddr))
  .option('--mkfs', 'create the store, register with the monitors (osd new) and exit')
  .option('--id <n>', 'with --mkfs: ask for this OSD id; at start: refuse a data dir of another OSD', nonNegativeInt)
  .option('--addr <host:port>', 'messenger address to listen on (port 0: any free port)', '127.0.0.1:0')
  .option('--host <name>', 'CRUSH host to place this OSD under (default: the machine\'s hostname)')
  .option('--metrics-addr <host:port>', 'serve Prometheus /metrics here (port 0: any free port)', parseAddr)
  .option('--watch-timeout-ms <ms>', 'default watch timeout: a watch whose client does not ping for this long expires (Ceph osd_client_watch_timeout)', (v: string) => {
    const n = nonNegativeInt(v);
    if (n < 1 || n > WATCH_TIMEOUT_MAX_MS) throw new InvalidArgumentError(`expected 1..${WATCH_TIMEOUT_MAX_MS}, got '${v}'`);
    return n;
  }, WATCH_TIMEOUT_DEFAULT_MS)
  .option('--osd-heartbeat-grace <seconds>', 'report a peer failed after this much silence (Ceph osd_heartbeat_grace)', positiveSeconds, HEARTBEAT_GRACE_MS / 1000)
  .option('--osd-scrub-min-interval <seconds>', 'scrub each PG at least this often (Ceph osd_scrub_min_interval)', positiveSeconds, OSD_SCRUB_MIN_INTERVAL_MS / 1000)
  .option('--osd-deep-scrub-interval <seconds>', 'deep-scrub each PG at least this often (Ceph osd_deep_scrub_interval)', positiveSeconds, OSD_DEEP_SCRUB_INTERVAL_MS / 1000)
  .option('--log-level <level>', 'pino log level', 'info')
  .showHelpAfterError();

interface Identity {
  whoami: number;
  fsid: string;
  uuid: string;
}

function readIdentity(dir: string): Identity {
  const f = (name: string): string => {
    const p = join(dir, name);
    if (!existsSync(p)) throw new AspenError('ENOENT', `${dir} holds no OSD (${name} missing): run aspen-osd --mkfs first`);
    return readFileSync(p, 'utf8').trim();
  };
  const whoami = Number(f('whoami'));
  if (!Number.isInteger(whoami) || whoami < 0) throw new AspenError('E_CORRUPT', `${dir}/whoami is not an OSD id`);
  return { whoami, fsid: f('fsid'), uuid: f('uuid') };
}

async function mkfs(o: Options, log: pino.Logger): Promise<void> {
  if (existsSync(join(o.data, 'whoami'))) throw new AspenError('EEXIST', `${o.data} already holds an OSD`);
  mkdirSync(o.data, { recursive: true });
  const mon = new MonClient({ monAddrs: o.mon, timeoutMs: MON_COMMAND_TIMEOUT_MS });
  try {
    const fsid = String(((await mon.command({ prefix: 'mon dump' })).data as { fsid: string }).fsid);
    const store = new SqliteObjectStore({ path: join(o.data, 'store'), fsid });
    await store.mkfs();
    const uuid = randomUUID();
    const r = await mon.command({ prefix: 'osd new', uuid, ...(o.id === undefined ? {} : { id: o.id }) });
    const whoami = Number((r.data as { osdid: number }).osdid);
    writeFileSync(join(o.data, 'fsid'), `${fsid}\n`);
    writeFileSync(join(o.data, 'uuid'), `${uuid}\n`);
    // whoami last: its presence means the OSD is complete.
    writeFileSync(join(o.data, 'whoami'), `${whoami}\n`);
    log.info({ whoami, fsid, uuid, data: o.data }, 'created OSD');
    process.stdout.write(`${whoami}\n`);
  } finally {
    mon.close();
  }
}

async function run(o: Options, log0: pino.Logger): Promise<void> {
  const id = readIdentity(o.data);
  if (o.id !== undefined && o.id !== id.whoami) throw new AspenError('EINVAL', `--id ${o.id} but ${o.data} holds osd.${id.whoami}`);
  const log = log0.child({ id: id.whoami });
  const clock = (): number => Math.floor(performance.now());
  const store = new SqliteObjectStore({ path: join(o.data, 'store'), fsid: id.fsid });
  await store.mount();
  const mon = new MonClient({ monAddrs: o.mon, fsid: id.fsid, timeoutMs: MON_COMMAND_TIMEOUT_MS });
  const entity = `osd.${id.whoami}`;
  const msgr = new Messenger({ fsid: id.fsid, entity, requestTimeoutMs: 10_000 });
  // Heartbeats on connections of their own (Ceph hb_back), never queued behind bulk data.
  const hbMsgr = new Messenger({ fsid: id.fsid, entity, requestTimeoutMs: 10_000 });
  let shutdown: (signal: string, code?: number) => void = () => undefined;
  // EC sub-reads and rebuilds; the PG host and map tracker it uses are created just below.
  let tracker: OsdMapTracker | null = null;
  let pgsRef: OsdPgs | null = null;
  const ec = new OsdEc(id.whoami, () => pgsRef!, msgr, () => tracker?.current ?? null, log);
  const pgs = new OsdPgs({
    whoami: id.whoami, store, msgr, mon, log, clock, ecRebuild: ec.rebuild, ecVerify: ec.verifyParity,
    scrubSchedule: { minIntervalMs: o.osdScrubMinInterval * 1000, deepIntervalMs: o.osdDeepScrubInterval * 1000 },
    onFatal: (err) => {
      log.fatal({ err: String(err) }, 'store transaction failed; stopping');
      shutdown('fatal', 1);
    },
  });
  pgsRef = pgs;
  const { pgs: loaded, newestMap } = await pgs.load();
  tracker = new OsdMapTracker(mon);
  const metrics = new OsdMetrics({ daemon: 'osd', id: String(id.whoami) });
  const service = new OsdService(id.whoami, pgs, tracker, log, () => Date.now(), (kind, code, ms) => metrics.observeOp(kind, code, ms), () => store.isFull(), ec);
  const watch = new WatchService({
    whoami: id.whoami, tracker, log, clock, watchTimeoutMs: o.watchTimeoutMs,
    // Existence at head through the PG (waits for recovery; a snapshot whiteout is absent).
    objectExists: async (pgid, object) => {
      const code = await service.objectExists(pgid, object);
      return code === 0 || isErrorCode(code) ? code : 'EIO';
    },
  });
  const server = new MsgrServer({
    fsid: id.fsid, entity,
    handler: (conn, m) => {
      if (WatchService.handles(m.type)) return watch.handle(conn, m);
      watch.noteConnection(conn, m.session);
      return service.handle(m);
    },
  });
  const [host, portText] = [o.addr!.slice(0, o.addr!.lastIndexOf(':')), o.addr!.slice(o.addr!.lastIndexOf(':') + 1)];
  const bound = await server.listen(Number(portText), host.replace(/^\[|\]$/g, ''));
  const addr = bound.host.includes(':') ? `[${bound.host}]:${bound.port}` : `${bound.host}:${bound.port}`;
  const heartbeat = new OsdHeartbeat(id.whoami, hbMsgr, mon, log, clock, o.osdHeartbeatGrace * 1000);
  let metricsServer: { close(): void } | null = null;
  let metricsPort: number | null = null;
  if (o.metricsAddr !== undefined) {
    const i = o.metricsAddr.lastIndexOf(':');
    const served = await metrics.serve(o.metricsAddr.slice(0, i).replace(/^\[|\]$/g, ''), Number(o.metricsAddr.slice(i + 1)));
    metricsServer = served.server;
    metricsPort = served.port;
  }

  tracker.onMap((map) => {
    pgs.onMap(map);
    watch.onMap(map);
    service.onMap(map); // the snap trimmer
    heartbeat.update(map, pgs.peers());
    const me = map.osds.get(id.whoami);
    // Marked down (or booted elsewhere) while alive: boot again (Ceph OSD::_committed_osd_maps).
    if (me !== undefined && (!me.up || me.addr !== addr)) boot();
  });
  let booting = false;
  const boot = (): void => {
    if (booting) return;
    booting = true;
    mon.command({ prefix: 'osd boot', id: id.whoami, uuid: id.uuid, addr, host: o.host ?? hostname().split('.')[0] ?? 'localhost' }).then(
      (r) => log.info({ addr, reply: r.message }, 'boot sent'),
      (err: unknown) => log.warn({ err: String(err) }, 'boot failed; retrying'),
    ).finally(() => {
      setTimeout(() => { booting = false; }, 1000);
    });
  };
  tracker.start(newestMap ?? undefined); // from the stored history: the mons send only newer epochs
  boot();
  // The store's full state rides on the beacon (Ceph MOSDFull); a flip is sent at the next
  // stats period instead of waiting for the beacon period.
  let reportedFull: { full: boolean; nearfull: boolean } | null = null;
  const storeFullState = (): { full: boolean; nearfull: boolean } => {
    const u = store.usage();
    return { full: u.full, nearfull: !u.full && u.totalBytes > 0 && u.usedBytes / u.totalBytes >= NEARFULL_RATIO };
  };
  const beacon = (): void => {
    const state = storeFullState();
    reportedFull = state;
    mon.command({ prefix: 'osd beacon', id: id.whoami, ...state }).catch((err: unknown) => log.warn({ err: String(err) }, 'beacon failed'));
  };
  const timers = [
    setInterval(() => pgs.tick(), PG_TICK_INTERVAL_MS),
    setInterval(() => heartbeat.tick(), HEARTBEAT_INTERVAL_MS),
    setInterval(() => watch.tick(), WATCH_TICK_INTERVAL_MS),
    setInterval(() => {
      beacon();
      // A boot that failed (no quorum yet) is retried here, not only on the next map.
      const me = tracker.current?.osds.get(id.whoami);
      if (me === undefined || !me.up || me.addr !== addr) boot();
    }, BEACON_INTERVAL_MS),
    setInterval(() => {
      const map = tracker.current;
      if (map === null) return;
      const fullState = storeFullState();
      if (reportedFull !== null && (fullState.full !== reportedFull.full || fullState.nearfull !== reportedFull.nearfull)) beacon();
      heartbeat.update(map, pgs.peers());
      metrics.update(pgs, store);
      const stats = pgs.stats();
      mon.command({ prefix: 'pg stats', osd: id.whoami, epoch: pgs.currentEpoch, pgs: stats }).catch((err: unknown) => {
        log.warn({ err: String(err) }, 'pg stats report failed');
      });
    }, PG_STATS_INTERVAL_MS),
  ];
  log.info({ addr, pgsLoaded: loaded, fsid: id.fsid, metricsPort }, 'aspen-osd ready');

  let stopping = false;
  shutdown = (signal: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    for (const t of timers) clearInterval(t);
    tracker.close();
    watch.close();
    service.close();
    metricsServer?.close();
    setTimeout(() => process.exit(code === 0 ? 0 : code), SHUTDOWN_GRACE_MS).unref();
    void (async () => {
      // As Ceph's MOSDMarkMeDown: peers need not wait out the heartbeat grace.
      if (code === 0) {
        await mon.command({ prefix: 'osd down', ids: [id.whoami], reason: 'shutdown' }, { timeoutMs: MARK_DOWN_TIMEOUT_MS }).catch((err: unknown) => {
          log.warn({ err: String(err) }, 'could not mark this OSD down');
        });
      }
      await server.close(1000).catch(() => undefined);
      await msgr.close().catch(() => undefined);
      await hbMsgr.close().catch(() => undefined);
      mon.close();
      await store.umount().catch((err: unknown) => log.error({ err: String(err) }, 'umount failed'));
      log.info('stopped');
      process.exit(code);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

function fail(log: pino.Logger, err: unknown): never {
  const msg = err instanceof AspenError ? err.message : String(err);
  log.fatal({ err: msg }, 'aspen-osd cannot start');
  process.stderr.write(`aspen-osd: ${msg}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Options>();
  const log = pino({ level: o.logLevel, base: { daemon: 'osd' } });
  try {
    if (o.mkfs) {
      await mkfs(o, log);
      return;
    }
    await run(o, log);
  } catch (err) {
    fail(log, err);
  }
}

void main();
