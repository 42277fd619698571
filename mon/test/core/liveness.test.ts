/**
 * Leader-side OSD failure detection (Ceph OSDMonitor): failure reports from distinct up
 * peers, missed beacons, down→out, the noout/nodown flags, and operator overrides. The
 * decisions are fed back through the state machine as the leader proposes them.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIVENESS_OPTIONS, OsdLiveness, type LivenessOptions } from '../../src/core/liveness.ts';
import type { MutatingCommand } from '../../src/core/command.ts';
import { Driver, T0, osdUuid } from './helpers.ts';

const OPTS: LivenessOptions = { minDownReporters: 2, reportTimeoutMs: 30_000, downOutIntervalMs: 600_000, failureReportTtlMs: 60_000 };

/** A cluster of `n` booted OSDs on distinct hosts and a leader's liveness tracker. */
function setup(n = 4, opts: Partial<LivenessOptions> = {}): { d: Driver; lv: OsdLiveness; tick: (atMs: number) => MutatingCommand[] } {
  const d = new Driver();
  for (let i = 0; i < n; i++) d.addOsd(i, `host${i}`);
  const lv = new OsdLiveness({ ...OPTS, ...opts });
  lv.reset(T0, d.map);
  // The leader proposes what tick() decides; here they commit at once (internal: no session).
  const tick = (atMs: number): MutatingCommand[] => {
    const cmds = lv.tick(atMs, d.map);
    d.nowMs = atMs;
    for (const c of cmds) d.apply(c as Record<string, unknown>, { clientId: '', seq: 0 });
    return cmds;
  };
  return { d, lv, tick };
}

const up = (d: Driver, id: number): boolean => d.map.osds.get(id)!.up;
const isIn = (d: Driver, id: number): boolean => d.map.osds.get(id)!.weight > 0;

describe('failure reports', () => {
  it('two distinct up reporters mark the target down; one reporter (even repeating itself) does not', () => {
    const { d, lv, tick } = setup();
    lv.onFailureReport(3, 0, T0 + 1000);
    lv.onFailureReport(3, 0, T0 + 1500);
    lv.onFailureReport(3, 3, T0 + 1500); // an OSD reporting itself does not count
    expect(tick(T0 + 2000)).toEqual([]);
    expect(up(d, 3)).toBe(true);
    lv.onFailureReport(3, 1, T0 + 2500);
    expect(tick(T0 + 3000)).toEqual([{ prefix: 'osd down', ids: [3], reason: 'failure reports or missed beacons' }]);
    expect(up(d, 3)).toBe(false);
    expect(d.map.osds.get(3)!.downStampMs).toBe(T0 + 3000);
  });

  it('reports made right after a boot, before the leader next ticks, count', () => {
    const d = new Driver();
    const lv = new OsdLiveness(OPTS);
    lv.reset(T0, d.map);
    for (let i = 0; i < 3; i++) {
      d.addOsd(i, `host${i}`);
      lv.onBoot(i, T0 + 10);
    }
    lv.onFailureReport(2, 0, T0 + 20);
    expect(lv.tick(T0 + 1000, d.map)).toEqual([]);
    lv.onFailureReport(2, 1, T0 + 1500);
    expect(lv.tick(T0 + 2000, d.map)).toEqual([{ prefix: 'osd down', ids: [2], reason: 'failure reports or missed beacons' }]);
  });

  it('mon_osd_min_down_reporters is honoured', () => {
    const { d, lv, tick } = setup(4, { minDownReporters: 3 });
    lv.onFailureReport(3, 0, T0);
    lv.onFailureReport(3, 1, T0);
    tick(T0 + 1000);
    expect(up(d, 3)).toBe(true);
    lv.onFailureReport(3, 2, T0 + 1000);
    tick(T0 + 2000);
    expect(up(d, 3)).toBe(false);
  });

  it('reports from OSDs that are down do not count', () => {
    const { d, lv, tick } = setup();
    d.ok({ prefix: 'osd down', ids: [1] });
    lv.onFailureReport(3, 0, T0 + 1000);
    lv.onFailureReport(3, 1, T0 + 1000); // osd.1 is down: its report is void
    tick(T0 + 2000);
    expect(up(d, 3)).toBe(true);
    lv.onFailureReport(3, 2, T0 + 2500);
    tick(T0 + 3000);
    expect(up(d, 3)).toBe(false);
  });

  it('reports expire after failureReportTtlMs and can be cancelled', () => {
    const { d, lv, tick } = setup(4, { reportTimeoutMs: 10_000_000 });
    lv.onFailureReport(3, 0, T0);
    lv.onFailureReport(3, 1, T0 + OPTS.failureReportTtlMs + 1000);
    tick(T0 + OPTS.failureReportTtlMs + 2000); // osd.0's report is too old
    expect(up(d, 3)).toBe(true);
    lv.onFailureReport(3, 2, T0 + OPTS.failureReportTtlMs + 2000);
    lv.onFailureCancel(3, 2);
    tick(T0 + OPTS.failureReportTtlMs + 3000);
    expect(up(d, 3)).toBe(true);
  });

  it('nodown suppresses marking down; unsetting it lets the pending reports act', () => {
    const { d, lv, tick } = setup();
    d.ok({ prefix: 'osd set', key: 'nodown' });
    lv.onFailureReport(3, 0, T0 + 1000);
    lv.onFailureReport(3, 1, T0 + 1000);
    expect(tick(T0 + 2000)).toEqual([]);
    expect(up(d, 3)).toBe(true);
    d.ok({ prefix: 'osd unset', key: 'nodown' });
    tick(T0 + 3000);
    expect(up(d, 3)).toBe(false);
  });

  it('a boot clears reports about the previous life', () => {
    const { d, lv, tick } = setup();
    lv.onFailureReport(3, 0, T0 + 1000);
    lv.onBoot(3, T0 + 1100);
    lv.onFailureReport(3, 1, T0 + 1200);
    tick(T0 + 2000);
    expect(up(d, 3)).toBe(true);
  });
});

describe('beacons and the report timeout', () => {
  it('an OSD silent for longer than mon_osd_report_timeout is marked down; beacons keep the others up', () => {
    const { d, lv, tick } = setup(3);
    for (let t = 5000; t <= 40_000; t += 5000) {
      lv.onBeacon(0, T0 + t);
      lv.onBeacon(1, T0 + t);
      tick(T0 + t);
    }
    expect([up(d, 0), up(d, 1), up(d, 2)]).toEqual([true, true, false]);
    expect(d.map.osds.get(2)!.downStampMs).toBeGreaterThan(T0 + OPTS.reportTimeoutMs);
  });

  it('reset (a new leader) gives every up OSD fresh grace', () => {
    const { d, lv, tick } = setup(2);
    lv.reset(T0 + 100_000, d.map);
    tick(T0 + 100_000 + OPTS.reportTimeoutMs - 1);
    expect([up(d, 0), up(d, 1)]).toEqual([true, true]);
    tick(T0 + 100_000 + OPTS.reportTimeoutMs + 1);
    expect([up(d, 0), up(d, 1)]).toEqual([false, false]);
  });

  it('an OSD that comes back up gets fresh grace even if this leader never saw its boot (booted through a follower)', () => {
    const { d, tick } = setup(2);
    tick(T0 + OPTS.reportTimeoutMs + 1000); // both silent: marked down
    expect([up(d, 0), up(d, 1)]).toEqual([false, false]);
    // Much later osd.0 boots; the boot went through another monitor, so no onBoot here.
    const later = T0 + 10 * OPTS.reportTimeoutMs;
    d.nowMs = later;
    d.ok({ prefix: 'osd boot', id: 0, uuid: osdUuid(0), addr: '10.0.0.0:6801', host: 'host0' });
    tick(later + 1000);
    expect(up(d, 0)).toBe(true);
    tick(later + OPTS.reportTimeoutMs + 2000);
    expect(up(d, 0)).toBe(false); // and silence still counts afterwards
  });

  it('does not propose the same decision again while it is pending (10 s), then retries it', () => {
    const d = new Driver();
    for (let i = 0; i < 2; i++) d.addOsd(i, `h${i}`);
    const lv = new OsdLiveness(OPTS);
    lv.reset(T0, d.map);
    expect(lv.tick(T0 + OPTS.reportTimeoutMs + 1, d.map)).toHaveLength(1); // not applied (e.g. the proposal was lost)
    expect(lv.tick(T0 + OPTS.reportTimeoutMs + 5000, d.map)).toEqual([]);
    expect(lv.tick(T0 + OPTS.reportTimeoutMs + 11_000, d.map)).toEqual([{ prefix: 'osd down', ids: [0, 1], reason: 'failure reports or missed beacons' }]);
  });
});

describe('down → out', () => {
  it('a down OSD is marked out after mon_osd_down_out_interval, measured from when it went down', () => {
    const { d, lv, tick } = setup(3, { reportTimeoutMs: 1e12 });
    lv.onFailureReport(2, 0, T0 + 1000);
    lv.onFailureReport(2, 1, T0 + 1000);
    tick(T0 + 2000);
    expect(up(d, 2)).toBe(false);
    tick(T0 + 2000 + OPTS.downOutIntervalMs - 1);
    expect(isIn(d, 2)).toBe(true);
    expect(tick(T0 + 2000 + OPTS.downOutIntervalMs)).toEqual([{ prefix: 'osd out', ids: [2], auto: true }]);
    expect(isIn(d, 2)).toBe(false);
    expect(d.map.osds.get(2)!.autoOutExempt).toBe(false);
    expect([isIn(d, 0), isIn(d, 1)]).toEqual([true, true]);
  });

  it('noout suppresses it; an interval of 0 disables it; OSDs that never booted are not auto-outed', () => {
    const { d, tick } = setup(2, { reportTimeoutMs: 1e12 });
    d.ok({ prefix: 'osd new', uuid: osdUuid(9), id: 9 }); // never booted: downStampMs 0
    d.ok({ prefix: 'osd down', ids: [0] });
    d.ok({ prefix: 'osd set', key: 'noout' });
    tick(T0 + 2 * OPTS.downOutIntervalMs);
    expect(isIn(d, 0)).toBe(true);
    d.ok({ prefix: 'osd unset', key: 'noout' });
    tick(T0 + 2 * OPTS.downOutIntervalMs + 11_000);
    expect(isIn(d, 0)).toBe(false);
    expect(isIn(d, 9)).toBe(true);

    const s = setup(2, { reportTimeoutMs: 1e12, downOutIntervalMs: 0 });
    s.d.ok({ prefix: 'osd down', ids: [0] });
    s.tick(T0 + 1e9);
    expect(isIn(s.d, 0)).toBe(true);
  });

  it("auto-out does not override an operator's `osd in` while the OSD stays down", () => {
    const { d, tick } = setup(2, { reportTimeoutMs: 1e12 });
    d.ok({ prefix: 'osd down', ids: [1] });
    tick(T0 + OPTS.downOutIntervalMs + 1000);
    expect(isIn(d, 1)).toBe(false);
    d.ok({ prefix: 'osd in', ids: [1] });
    for (let k = 2; k < 6; k++) tick(T0 + k * OPTS.downOutIntervalMs);
    expect(isIn(d, 1)).toBe(true);
  });

  it('the liveness defaults are Ceph\'s (2 reporters, 600 s down-out) with a 60 s report timeout', () => {
    expect(DEFAULT_LIVENESS_OPTIONS).toEqual({ minDownReporters: 2, reportTimeoutMs: 60_000, downOutIntervalMs: 600_000, failureReportTtlMs: 60_000 });
  });
});
