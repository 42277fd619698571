/**
 * The monitor's Prometheus metrics (prom-client), served on `/metrics` by the daemon:
 * commands by prefix and result with latency, Raft term / commit / applied index, role,
 * and OSDMap epoch and OSD counts.
 */
import type * as http from 'node:http';
import { serveMetrics } from '@aspen/shared/io/metrics-http.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MonNode } from './mon-node.ts';

/** The metric set of one monitor. */
export class MonMetrics {
  readonly registry = new Registry();
  private readonly commands = new Counter({ name: 'aspen_mon_commands_total', help: 'Commands handled, by prefix and result code', labelNames: ['prefix', 'code'], registers: [this.registry] });
  private readonly latency = new Histogram({
    name: 'aspen_mon_command_latency_seconds', help: 'Command latency (receipt to reply)', labelNames: ['kind'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  private readonly term = new Gauge({ name: 'aspen_mon_raft_term', help: 'Current Raft term', registers: [this.registry] });
  private readonly commit = new Gauge({ name: 'aspen_mon_raft_commit_index', help: 'Raft commit index', registers: [this.registry] });
  private readonly applied = new Gauge({ name: 'aspen_mon_raft_applied_index', help: 'Last applied Raft index', registers: [this.registry] });
  private readonly leader = new Gauge({ name: 'aspen_mon_raft_is_leader', help: '1 when this monitor is the Raft leader', registers: [this.registry] });
  private readonly epoch = new Gauge({ name: 'aspen_osdmap_epoch', help: 'OSDMap epoch', registers: [this.registry] });
  private readonly osds = new Gauge({ name: 'aspen_osd_count', help: 'OSDs by state', labelNames: ['state'], registers: [this.registry] });
  private readonly pools = new Gauge({ name: 'aspen_pool_count', help: 'Pools', registers: [this.registry] });

  constructor(labels: Record<string, string>) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records one handled command. */
  observeCommand(prefix: string, code: 0 | string, latencyMs: number): void {
    this.commands.inc({ prefix: prefix.slice(0, 64), code: String(code) });
    this.latency.observe({ kind: prefix.startsWith('osd beacon') ? 'beacon' : 'command' }, latencyMs / 1000);
  }

  /** Refreshes the gauges from the node. */
  updateRaft(node: MonNode): void {
    const st = node.rawNode.status();
    this.term.set(st.term);
    this.commit.set(st.commit);
    this.applied.set(node.appliedIndex);
    this.leader.set(node.isLeader ? 1 : 0);
    const map = node.sm?.state.osdMap;
    if (map) {
      this.epoch.set(map.epoch);
      const osds = [...map.osds.values()].filter((o) => o.exists);
      this.osds.set({ state: 'up' }, osds.filter((o) => o.up).length);
      this.osds.set({ state: 'in' }, osds.filter((o) => o.weight > 0).length);
      this.osds.set({ state: 'total' }, osds.length);
      this.pools.set(map.pools.size);
    }
  }

  /** Serves `/metrics` on `host:port` (port 0: any); resolves with the bound port. */
  serve(host: string, port: number): Promise<{ server: http.Server; port: number }> {
    return serveMetrics(this.registry, host, port);
  }

}
