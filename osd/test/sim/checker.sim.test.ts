/**
 * The checker must be able to fail (CONVENTIONS item 15): with the write path's rule broken
 * on purpose — the primary acknowledges once it alone has the write durable — the
 * simulation must find a lost acknowledged write within a handful of seeds. And scrub must
 * find, and repair must fix, a flipped byte on one copy.
 */
import { describe, expect, it } from 'vitest';
import { Cluster, deriveParams, runSeed } from './cluster.ts';

describe('pg simulation checker', () => {
  it('finds a lost acknowledged write when the primary acks before its replicas persist', () => {
    const lost: string[] = [];
    for (let seed = 0; seed < 80 && lost.length === 0; seed++) {
      // The online ack-rule check is off: this test proves the end-to-end lost-write detection.
      const r = runSeed(seed, { overrides: { unsafeAck: true, checkAckRule: false, crashRate: 0.01, dropRate: 0.05 } });
      lost.push(...r.violations.filter((v) => /lost write|lost delete/.test(v)).map((v) => `seed ${seed}: ${v}`));
    }
    expect(lost.length).toBeGreaterThan(0);
  });

  it('the online check names the broken rule at the first early acknowledgement', () => {
    const r = runSeed(0, { overrides: { unsafeAck: true } });
    expect(r.violations[0]).toMatch(/acknowledged \d+'\d+ before acting osd\.\d+ persisted it/);
  });

  it('the same seeds pass with the rule intact', () => {
    for (let seed = 0; seed < 20; seed++) {
      const r = runSeed(seed, { overrides: { crashRate: 0.01, dropRate: 0.05 } });
      expect(r.violations).toEqual([]);
    }
  });
});

describe('scrub and repair under simulation', () => {
  it('deep scrub marks a flipped byte inconsistent, repair rewrites the bad copy from the good ones', () => {
    const p = deriveParams(7, {
      osds: 4, size: 3, minSize: 2, pgNum: 1, dropRate: 0, dupRate: 0, crashRate: 0, partitionRate: 0, clients: 1,
    });
    const c = new Cluster(p);
    expect(c.settle(2000)).toBe(true);
    const pgid = '1.0';
    for (let i = 0; i < 4; i++) {
      c.write(`obj-${i}`, new TextEncoder().encode(`payload ${i} `.repeat(10)));
      expect(c.settle(2000)).toBe(true);
    }
    const acting = c.actingOf(pgid);
    const victim = acting[1]!;
    expect(c.osds[victim]!.store.corrupt(pgid, 'obj-2', 5)).toBe(true);
    const primary = c.primaryOf(pgid)!;
    c.inject(primary.whoami, pgid, { kind: 'scrub', deep: false });
    c.settle(300);
    expect(primary.stateString).toBe('active+clean'); // shallow scrub compares metadata only
    c.inject(primary.whoami, pgid, { kind: 'scrub', deep: true });
    c.settle(300);
    expect(primary.stateString).toBe('active+clean+inconsistent');
    expect([...primary.inconsistent.entries()]).toEqual([['obj-2', expect.objectContaining({ bad: [victim] })]]);
    c.inject(primary.whoami, pgid, { kind: 'repair' });
    expect(c.settle(2000)).toBe(true);
    c.settle(300); // the follow-up deep scrub
    expect(primary.stateString).toBe('active+clean');
    const good = c.osds[acting[0]!]!.store.applied.get(pgid)!.objects.get('obj-2')!;
    const fixed = c.osds[victim]!.store.applied.get(pgid)!.objects.get('obj-2')!;
    expect(fixed.data).toEqual(good.data);
  });

  it('repair also fixes a corrupt copy on the primary (pulled from an authoritative replica)', () => {
    const c = new Cluster(deriveParams(11, {
      osds: 3, size: 3, minSize: 2, pgNum: 1, dropRate: 0, dupRate: 0, crashRate: 0, partitionRate: 0, clients: 1,
    }));
    expect(c.settle(2000)).toBe(true);
    c.write('obj-x', new TextEncoder().encode('the original bytes'));
    expect(c.settle(2000)).toBe(true);
    const primary = c.primaryOf('1.0')!;
    c.osds[primary.whoami]!.store.corrupt('1.0', 'obj-x', 3);
    c.inject(primary.whoami, '1.0', { kind: 'repair' });
    expect(c.settle(2000)).toBe(true);
    c.settle(300);
    expect(primary.stateString).toBe('active+clean');
    const data = c.osds[primary.whoami]!.store.applied.get('1.0')!.objects.get('obj-x')!.data;
    expect(new TextDecoder().decode(data)).toBe('the original bytes');
  });
});

describe('write path guards under simulation', () => {
  it('writes wait while the acting set is below min_size, fail with E_PG_INCOMPLETE after the timeout, and succeed once healed', () => {
    const c = new Cluster(deriveParams(3, {
      osds: 3, size: 3, minSize: 2, pgNum: 1, dropRate: 0, dupRate: 0, crashRate: 0, partitionRate: 0, reweightRate: 0,
      clients: 1, clientRetryMs: 10_000, outAfterMs: 1_000_000,
    }));
    expect(c.settle(2000)).toBe(true);
    const acting = c.actingOf('1.0');
    c.crashOsd(acting[1]!, 5000);
    c.crashOsd(acting[2]!, 5000);
    c.settle(200, false); // the mon marks them down; acting = [primary] < min_size
    expect(c.actingOf('1.0')).toEqual([acting[0]]);
    expect(c.primaryOf('1.0')!.stateString).toBe('peered+undersized+degraded');
    c.write('obj-a', new TextEncoder().encode('must not be acked'));
    c.settle(300, false);
    expect(c.replyLog.filter((r) => r.ok)).toEqual([]);
    c.settle(200, false); // past clientOpBlockTimeoutMs (400 ms)
    expect(c.replyLog.some((r) => !r.ok && r.code === 'E_PG_INCOMPLETE')).toBe(true);
    c.crashOsd(acting[1]!, 0); // (already dead) restart both now
    c.crashOsd(acting[2]!, 0);
    expect(c.settle(3000)).toBe(true); // the client's retry succeeds once min_size is back
    expect(c.replyLog.some((r) => r.ok)).toBe(true);
  });
});

describe('unfound objects under simulation', () => {
  it('an object no member has is recovery_unfound; mark_unfound_lost deletes it through the log and the PG cleans', () => {
    const c = new Cluster(deriveParams(5, {
      osds: 3, size: 3, minSize: 2, pgNum: 1, dropRate: 0, dupRate: 0, crashRate: 0, partitionRate: 0, reweightRate: 0, clients: 1,
    }));
    expect(c.settle(2000)).toBe(true);
    c.write('obj-real', new TextEncoder().encode('kept'));
    expect(c.settle(2000)).toBe(true);
    const primary = c.primaryOf('1.0')!;
    // As if the only copy of this version had been on an OSD that is gone for good.
    primary.missing.set('obj-ghost', { need: primary.log.head, have: { epoch: 0, version: 0 } });
    c.settle(300, false);
    expect(primary.stateString).toBe('active+recovery_unfound+degraded');
    expect([...primary.unfound]).toEqual(['obj-ghost']);
    const head = primary.log.head;
    c.inject(primary.whoami, '1.0', { kind: 'markUnfoundLost' });
    expect(c.settle(2000)).toBe(true);
    expect(primary.stateString).toBe('active+clean');
    const last = primary.log.entries[primary.log.entries.length - 1]!;
    expect(last).toMatchObject({ op: 'lostDelete', object: 'obj-ghost', reqid: null });
    expect(last.version.version).toBe(head.version + 1);
    expect(c.osds[primary.whoami]!.store.applied.get('1.0')!.objects.has('obj-real')).toBe(true);
  });
});
