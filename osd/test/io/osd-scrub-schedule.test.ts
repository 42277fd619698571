/**
 * Scheduled scrubs (osd/src/io/osd-pgs.ts, Ceph OSD::sched_scrub): which scrub is due, and
 * the staggered first stamps of a (re)started OSD's PGs.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { dueScrub, initialScrubStamps } from '../../src/io/osd-pgs.ts';

const schedule = { minIntervalMs: 1000, deepIntervalMs: 7000 };

describe('scrub schedule', () => {
  it('is deep once the deep interval passed, else shallow once the min interval passed, else nothing', () => {
    expect(dueScrub(10_000, { lastScrubMs: 9_500, lastDeepScrubMs: 5_000 }, schedule)).toBeNull();
    expect(dueScrub(10_000, { lastScrubMs: 9_000, lastDeepScrubMs: 5_000 }, schedule)).toBe('shallow');
    expect(dueScrub(10_000, { lastScrubMs: 9_900, lastDeepScrubMs: 3_000 }, schedule)).toBe('deep');
  });

  it('staggers first stamps by PG id within one interval, deterministically', () => {
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 1e9 }), (pgid, now) => {
      const s = initialScrubStamps(pgid, now, schedule);
      expect(s).toEqual(initialScrubStamps(pgid, now, schedule));
      expect(now - s.lastScrubMs).toBeGreaterThanOrEqual(0);
      expect(now - s.lastScrubMs).toBeLessThan(schedule.minIntervalMs);
      expect(now - s.lastDeepScrubMs).toBeLessThan(schedule.deepIntervalMs);
      // Nothing is due at once; every PG is due within one interval.
      expect(dueScrub(now, s, schedule)).toBeNull();
      expect(dueScrub(now + schedule.deepIntervalMs, s, schedule)).toBe('deep');
    }));
    const firsts = Array.from({ length: 64 }, (_, i) => initialScrubStamps(`1.${i.toString(16)}`, 0, schedule).lastScrubMs);
    expect(new Set(firsts).size).toBe(64);
  });
});
