/**
 * The OSD's Prometheus metrics (prom-client), served on `/metrics` by `aspen-osd
 * --metrics-addr`: client ops by kind and result with latency, PGs by state and role, the
 * OSDMap epoch, and the object store's usage and full flag (Ceph's `ceph_osd_op*`,
 * `ceph_pg_*`, `ceph_osd_stat_bytes*` in spirit).
 */
import type * as http from 'node:http';
import { serveMetrics } from '@aspen/shared/io/metrics-http.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ObjectStore } from '../store/types.ts';
import type { OsdPgs } from './osd-pgs.ts';

/** The metric set of one OSD. */
export class OsdMetrics {
  readonly registry = new Registry();
  private readonly ops = new Counter({ name: 'aspen_osd_ops_total', help: 'Client ops, by kind (read|write) and result code', labelNames: ['kind', 'code'], registers: [this.registry] });
  private readonly latency = new Histogram({
    name: 'aspen_osd_op_latency_seconds', help: 'Client op latency at the primary (receipt to reply)', labelNames: ['kind'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry],
  });
  private readonly pgs = new Gauge({ name: 'aspen_osd_pgs', help: 'PGs on this OSD, by role and state', labelNames: ['role', 'state'], registers: [this.registry] });
  private readonly epoch = new Gauge({ name: 'aspen_osd_osdmap_epoch', help: 'Newest OSDMap epoch applied', registers: [this.registry] });
  private readonly bytes = new Gauge({ name: 'aspen_osd_stat_bytes', help: 'Object store filesystem bytes, by kind (total|used|avail)', labelNames: ['kind'], registers: [this.registry] });
  private readonly full = new Gauge({ name: 'aspen_osd_full', help: '1 when the object store reports full', registers: [this.registry] });

  constructor(labels: Record<string, string>) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records one client op answered at this OSD. */
  observeOp(kind: 'read' | 'write', code: 0 | string, latencyMs: number): void {
    this.ops.inc({ kind, code: String(code) });
    this.latency.observe({ kind }, latencyMs / 1000);
  }

  /** Refreshes the gauges from the PG host and the store. */
  update(pgs: OsdPgs, store: ObjectStore): void {
    this.pgs.reset();
    for (const [key, n] of pgs.stateCounts()) {
      const [role, state] = key.split(' ') as [string, string];
      this.pgs.set({ role, state }, n);
    }
    this.epoch.set(pgs.currentEpoch);
    const u = store.usage();
    this.bytes.set({ kind: 'total' }, u.totalBytes);
    this.bytes.set({ kind: 'used' }, u.usedBytes);
    this.bytes.set({ kind: 'avail' }, u.availBytes);
    this.full.set(u.full ? 1 : 0);
  }

  /** Serves `/metrics` on `host:port` (port 0: any); resolves with the bound port. */
  serve(host: string, port: number): Promise<{ server: http.Server; port: number }> {
    return serveMetrics(this.registry, host, port);
  }

}
