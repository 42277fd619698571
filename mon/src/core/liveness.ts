/**
 * OSD liveness as the leader tracks it (Ceph OSDMonitor: beacons, failure reports,
 * mon_osd_min_down_reporters, mon_osd_report_timeout, mon_osd_down_out_interval).
 * Volatile and leader-only: a new leader starts with fresh grace for every up OSD.
 * Pure: time comes in as `nowMs`; the output is commands for the leader to propose.
 */
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { MutatingCommand } from './command.ts';

/** Liveness options (Ceph names, in ms where Ceph uses seconds). */
export interface LivenessOptions {
  /** mon_osd_min_down_reporters: distinct up peers whose reports mark an OSD down. */
  minDownReporters: number;
  /** mon_osd_report_timeout: an up OSD silent (no boot, beacon) for this long is marked down. */
  reportTimeoutMs: number;
  /** mon_osd_down_out_interval: a down OSD is marked out after this long (0 disables). */
  downOutIntervalMs: number;
  /** How long a failure report counts before it expires unless renewed. */
  failureReportTtlMs: number;
}

/** Aspen's defaults: Ceph's, except the report timeout (900 s in Ceph) is 60 s. */
export const DEFAULT_LIVENESS_OPTIONS: LivenessOptions = {
  minDownReporters: 2,
  reportTimeoutMs: 60_000,
  downOutIntervalMs: 600_000,
  failureReportTtlMs: 60_000,
};

/** Largest number of OSDs with pending failure reports tracked at once. */
export const FAILURE_TARGETS_MAX = 100_000;

/** The leader's view of OSD liveness. */
export class OsdLiveness {
  private readonly lastSeenMs = new Map<number, number>();
  /** The up_from epoch of the incarnation `lastSeenMs` is about. */
  private readonly seenUpFrom = new Map<number, number>();
  /** target → reporter → when reported. */
  private readonly failures = new Map<number, Map<number, number>>();
  /** Commands proposed but maybe not yet applied: avoid proposing them again every tick. */
  private readonly pending = new Map<string, number>();

  constructor(private options: LivenessOptions) {}

  setOptions(options: LivenessOptions): void {
    this.options = options;
  }

  /** Resets grace for every OSD: called when this monitor becomes leader. */
  reset(nowMs: number, map: OsdMap): void {
    this.lastSeenMs.clear();
    this.seenUpFrom.clear();
    this.failures.clear();
    this.pending.clear();
    for (const osd of map.osds.values()) {
      if (!osd.up) continue;
      this.lastSeenMs.set(osd.id, nowMs);
      this.seenUpFrom.set(osd.id, osd.upFrom);
    }
  }

  /** An OSD booted or sent a beacon. Clears reports against it only on boot. */
  onBeacon(osd: number, nowMs: number): void {
    this.lastSeenMs.set(osd, nowMs);
  }

  /**
   * A beacon that carries the OSD's store state (`full`, `nearfull`; Ceph sends MOSDFull for
   * this). Returns the `osd full` command to propose when the map's record differs, else null:
   * the OSDMap epoch moves only when the state flips, not with every beacon. A down or
   * unknown OSD's report is ignored (its boot clears the state; its next beacon reports again).
   * The same change is not proposed twice within the pending window (10 s).
   */
  onFullReport(osd: number, report: { full: boolean; nearfull: boolean }, nowMs: number, map: OsdMap): MutatingCommand | null {
    const info = map.osds.get(osd);
    if (info === undefined || !info.exists || !info.up) return null;
    if (info.full === report.full && info.nearfull === report.nearfull) return null;
    const key = `full:${osd}:${report.full}:${report.nearfull}`;
    if (this.pending.has(key)) return null;
    // A different state proposed earlier is superseded: a flip back must not wait out its window.
    for (const f of [false, true]) for (const n of [false, true]) this.pending.delete(`full:${osd}:${f}:${n}`);
    this.pending.set(key, nowMs);
    return { prefix: 'osd full', id: osd, full: report.full, nearfull: report.nearfull };
  }

  /** A boot clears what peers said about the OSD's previous life. */
  onBoot(osd: number, nowMs: number): void {
    this.lastSeenMs.set(osd, nowMs);
    this.failures.delete(osd);
  }

  /** `reporter` says `target` stopped answering heartbeats. */
  onFailureReport(target: number, reporter: number, nowMs: number): void {
    if (target === reporter) return;
    let reporters = this.failures.get(target);
    if (reporters === undefined) {
      if (this.failures.size >= FAILURE_TARGETS_MAX) return;
      reporters = new Map();
      this.failures.set(target, reporters);
    }
    reporters.set(reporter, nowMs);
  }

  /** `reporter` takes its report back (the target answered again). */
  onFailureCancel(target: number, reporter: number): void {
    this.failures.get(target)?.delete(reporter);
  }

  /** The commands to propose now. */
  tick(nowMs: number, map: OsdMap): MutatingCommand[] {
    const o = this.options;
    const down: number[] = [];
    const out: number[] = [];
    for (const [key, at] of this.pending) if (nowMs - at > 10_000) this.pending.delete(key);
    for (const osd of map.osds.values()) {
      if (!osd.exists) continue;
      if (osd.up) {
        const seen = this.lastSeenMs.get(osd.id);
        // A new incarnation (up_from changed) gets fresh grace: its boot may have reached
        // another monitor, so onBoot is not guaranteed here. (Reports are kept: they may be
        // about this incarnation already, made before this tick.)
        if (seen === undefined || this.seenUpFrom.get(osd.id) !== osd.upFrom) {
          this.lastSeenMs.set(osd.id, nowMs);
          this.seenUpFrom.set(osd.id, osd.upFrom);
          continue;
        }
        const reporters = this.failures.get(osd.id);
        let live = 0;
        if (reporters !== undefined) {
          for (const [rep, at] of reporters) {
            if (nowMs - at > o.failureReportTtlMs || map.osds.get(rep)?.up !== true) reporters.delete(rep);
            else live++;
          }
        }
        if ((live >= o.minDownReporters || nowMs - seen > o.reportTimeoutMs) && !map.flags.has('nodown')) down.push(osd.id);
      } else {
        this.failures.delete(osd.id);
        if (o.downOutIntervalMs > 0 && osd.weight > 0 && !osd.autoOutExempt && !map.flags.has('noout') && osd.downStampMs > 0 &&
          nowMs - osd.downStampMs >= o.downOutIntervalMs) out.push(osd.id);
      }
    }
    const cmds: MutatingCommand[] = [];
    const fresh = (ids: number[], kind: string): number[] => ids.filter((id) => {
      const key = `${kind}:${id}`;
      if (this.pending.has(key)) return false;
      this.pending.set(key, nowMs);
      return true;
    });
    const d = fresh(down, 'down');
    if (d.length > 0) cmds.push({ prefix: 'osd down', ids: d, reason: 'failure reports or missed beacons' });
    const x = fresh(out, 'out');
    if (x.length > 0) cmds.push({ prefix: 'osd out', ids: x, auto: true });
    return cmds;
  }
}
