/**
 * A whole small cluster for process-level tests of what rides on the OSDs (RBD, S3, FS):
 * 3 real monitors ({@link MonCluster}), N real `aspen-osd` processes (mkfs, then start, each
 * under its own CRUSH host), an object client, and one replicated pool with every PG
 * active+clean. `teardown()` stops everything it started, by PID.
 */
import { join } from 'node:path';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { ProcessHarness, REPO_ROOT, tsNodeArgs, waitFor } from './harness.ts';
import { MonCluster } from './mon-cluster.ts';

const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');

/** Options of {@link OsdTestCluster.start}. */
export interface OsdTestClusterOptions {
  /** OSD processes (default 3). */
  readonly osds?: number;
  /** The pool to create (default `rbd`), replicated. */
  readonly pool?: string;
  readonly pgNum?: number;
  readonly size?: number;
  readonly minSize?: number;
  /** The client's op timeout, ms (default 60 s). */
  readonly opTimeoutMs?: number;
  /**
   * Make the pool erasure-coded with this profile (named `<pool>-profile`, failure domain
   * host: every OSD is its own host) instead of replicated; `minSize` then defaults to k+1.
   */
  readonly erasure?: { readonly k: number; readonly m: number; readonly stripeUnitBytes?: number };
  /** Extra arguments for every `aspen-osd` (e.g. shorter scrub or heartbeat settings). */
  readonly osdArgs?: readonly string[];
}

/** A running cluster; see the module docs. */
export class OsdTestCluster {
  private constructor(
    readonly h: ProcessHarness,
    readonly mons: MonCluster,
    readonly client: RadosClient,
    /** `host:port,…` of the monitors, for CLIs (`-m`). */
    readonly monAddrs: string,
  ) {}

  /**
   * Starts the cluster and waits until every PG of the pool is active+clean.
   * @throws Error when a daemon fails to start or the PGs do not settle in time.
   */
  static async start(o: OsdTestClusterOptions = {}): Promise<OsdTestCluster> {
    const osds = o.osds ?? 3;
    const pool = o.pool ?? 'rbd';
    const pgNum = o.pgNum ?? 8;
    const h = new ProcessHarness();
    let mons: MonCluster | null = null;
    try {
      mons = await MonCluster.start(h, { count: 3 });
      await mons.leader();
      const monAddrs = [...mons.addrs.values()].join(',');
      await Promise.all(Array.from({ length: osds }, async (_, i) => {
        const p = h.spawn({ name: `mkfs.osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', h.path(`osd.${i}`), '--mon', monAddrs, '--id', String(i)]) });
        if ((await p.exited).code !== 0) throw new Error(`mkfs of osd.${i} failed: ${h.log(`mkfs.osd.${i}`)}`);
      }));
      for (let i = 0; i < osds; i++) {
        h.spawn({ name: `osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${i}`), '--mon', monAddrs, '--host', `host${i}`, ...(o.osdArgs ?? [])]) });
      }
      const c = await RadosClient.connect({ monAddrs: [...mons.addrs.values()], opTimeoutMs: o.opTimeoutMs ?? 60_000 });
      const cluster = new OsdTestCluster(h, mons, c, monAddrs);
      await waitFor(() => [...c.osdMap.osds.values()].filter((x) => x.up).length === osds, { timeoutMs: 30_000, what: 'OSDs up' });
      if (o.erasure !== undefined) {
        const e = o.erasure;
        const profile = [`k=${e.k}`, `m=${e.m}`, 'crush-failure-domain=host', ...(e.stripeUnitBytes !== undefined ? [`stripe_unit=${e.stripeUnitBytes}`] : [])];
        await c.mon.command({ prefix: 'osd erasure-code-profile set', name: `${pool}-profile`, profile });
        await c.mon.command({
          prefix: 'osd pool create', pool, pg_num: pgNum, pool_type: 'erasure', erasure_code_profile: `${pool}-profile`,
          ...(o.minSize !== undefined ? { min_size: o.minSize } : {}),
        });
      } else {
        await c.mon.command({ prefix: 'osd pool create', pool, pg_num: pgNum, size: o.size ?? Math.min(3, osds), min_size: o.minSize ?? Math.min(2, osds) });
      }
      await waitFor(() => { try { c.pool(pool); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the pool in the map' });
      const minEpoch = c.osdMap.epoch;
      await waitFor(async () => {
        const r = await c.mon.command({ prefix: 'pg dump' });
        const rows = (r.data as { pg_stats: { state: string; reported_epoch: number }[] }).pg_stats;
        return rows.length === pgNum && rows.every((p) => p.reported_epoch >= minEpoch && p.state === 'active+clean');
      }, { timeoutMs: 30_000, what: 'every PG active+clean', intervalMs: 300 });
      return cluster;
    } catch (err) {
      mons?.close();
      await h.teardown();
      throw err;
    }
  }

  /** Closes the client and stops every process. */
  async teardown(): Promise<void> {
    await this.client.close();
    this.mons.close();
    await this.h.teardown();
  }
}
