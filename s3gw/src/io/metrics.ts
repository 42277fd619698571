/**
 * The gateway's Prometheus metrics (prom-client), served on `/metrics` by `aspen-s3gw
 * --metrics-addr`: requests by S3 operation and HTTP status with latency (radosgw's
 * `ceph_rgw_req`, `ceph_rgw_get/put*` in spirit).
 */
import type * as http from 'node:http';
import { serveMetrics } from '@aspen/shared/io/metrics-http.ts';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class S3Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({ name: 'aspen_s3_requests_total', help: 'S3 requests, by operation and HTTP status', labelNames: ['op', 'status'], registers: [this.registry] });
  private readonly latency = new Histogram({
    name: 'aspen_s3_request_latency_seconds', help: 'S3 request latency (receipt to end of response)', labelNames: ['op'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120], registers: [this.registry],
  });

  constructor() {
    this.registry.setDefaultLabels({ daemon: 's3gw' });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records one answered request; `op` is the S3 operation, or `-` when refused before resolution. */
  observe(op: string, status: number, latencyMs: number): void {
    this.requests.inc({ op, status: String(status) });
    this.latency.observe({ op }, latencyMs / 1000);
  }

  serve(host: string, port: number): Promise<{ server: http.Server; port: number }> {
    return serveMetrics(this.registry, host, port);
  }
}
