/**
 * `aspen-s3gw`: the S3 gateway daemon (like radosgw).
 *
 *   aspen-s3gw --mon HOST:PORT[,…] [--listen 127.0.0.1:7480] [--region us-east-1]
 *              [--dns-name localhost]… [--pg-num 16] [--gc-delay-ms 30000]
 *              [--metrics-addr HOST:PORT] [--log-level info]
 *
 * Creates its pools (`.aspen.s3.meta`, `.aspen.s3.data`) when missing, then serves S3 on
 * the listen address. Users and keys come from the monitors (`aspen s3 user create`).
 * Exits non-zero with a message on bad flags or when the cluster cannot be reached; stops
 * on SIGTERM/SIGINT after closing the listener.
 */
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { AspenError } from '@aspen/shared';
import { resolveMonAddrs } from '@aspen/shared/io/config.ts';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { DATA_POOL, META_POOL } from '../store/layout.ts';
import { S3Store } from '../store/store.ts';
import { startGateway } from '../io/server.ts';
import { SegmentReaper } from '../io/reaper.ts';
import { S3Metrics } from '../io/metrics.ts';

const program = new Command('aspen-s3gw')
  .description('S3 gateway over Aspen RADOS objects')
  .option('-m, --mon <addrs>', 'monitor addresses HOST:PORT[,…]')
  .option('-c, --conf <file>', 'aspen.conf to read mon_host from')
  .option('--listen <host:port>', 'address to serve S3 on', '127.0.0.1:7480')
  .option('--region <name>', 'the region this gateway reports', 'us-east-1')
  .option('--dns-name <name>', 'domain for virtual-host-style requests (<bucket>.<name>); repeatable', (v: string, acc: string[]) => [...acc, v.toLowerCase()], [] as string[])
  .option('--pg-num <n>', 'pg_num of the pools when creating them', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65536) throw new InvalidArgumentError(`expected an integer in [1, 65536], got '${v}'`);
    return n;
  }, 16)
  .option('--gc-delay-ms <ms>', 'keep a replaced or deleted version readable this long before removing its data', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${v}'`);
    return n;
  }, 30_000)
  .option('--metrics-addr <host:port>', 'serve Prometheus /metrics here')
  .option('--log-level <level>', 'pino log level', 'info')
  .showHelpAfterError();

interface Opts { mon?: string; conf?: string; listen: string; region: string; dnsName: string[]; pgNum: number; gcDelayMs: number; metricsAddr?: string; logLevel: string }

async function ensurePool(client: RadosClient, name: string, pgNum: number): Promise<void> {
  try {
    client.pool(name);
    return;
  } catch {
    // missing: create it below
  }
  try {
    await client.mon.command({ prefix: 'osd pool create', pool: name, pg_num: pgNum });
  } catch (err) {
    if (!(err instanceof AspenError && err.code === 'EEXIST')) throw err;
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      client.pool(name);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new AspenError('ETIMEDOUT', `pool ${name} did not appear in the OSDMap`);
}

async function main(): Promise<void> {
  program.parse(process.argv);
  const o = program.opts<Opts>();
  const m = /^(.+):(\d{1,5})$/.exec(o.listen);
  if (!m) throw new AspenError('EINVAL', `--listen must be HOST:PORT, got '${o.listen}'`);
  const log = pino({ level: o.logLevel, base: { daemon: 's3gw' } });
  const client = await RadosClient.connect({ monAddrs: resolveMonAddrs(o.mon, o.conf), entity: 'client.rgw' });
  await ensurePool(client, META_POOL, Math.max(1, Math.min(o.pgNum, 8)));
  await ensurePool(client, DATA_POOL, o.pgNum);
  const store = new S3Store(client.ioctx(META_POOL), client.ioctx(DATA_POOL), () => randomBytes(16).toString('hex'));
  await store.setup();
  const domains = o.dnsName.length > 0 ? o.dnsName : ['localhost'];
  const reaper = new SegmentReaper(store, log, o.gcDelayMs);
  const metrics = new S3Metrics();
  const { server, port } = await startGateway({ store, mon: client.mon, log, region: o.region, domains, reaper, observe: (op, status, ms) => metrics.observe(op, status, ms) }, m[1]!, Number(m[2]));
  let metricsServer: { close(): void } | null = null;
  if (o.metricsAddr !== undefined) {
    const mm = /^(.+):(\d{1,5})$/.exec(o.metricsAddr);
    if (!mm) throw new AspenError('EINVAL', `--metrics-addr must be HOST:PORT, got '${o.metricsAddr}'`);
    metricsServer = (await metrics.serve(mm[1]!, Number(mm[2]))).server;
  }
  log.info({ addr: `${m[1]}:${port}`, region: o.region, domains }, 'aspen-s3gw listening');
  process.stdout.write(`listening ${m[1]}:${port}\n`);
  const stop = (): void => {
    log.info('stopping');
    server.close();
    reaper.close();
    metricsServer?.close();
    server.closeAllConnections();
    void client.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`aspen-s3gw: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
