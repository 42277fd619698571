import { describe, expect, it } from 'vitest';
import {
  buildPriorSet, chooseActing, findBestInfo, intervalStart, isNewInterval, pastIntervals,
} from '../../src/pg/peering.ts';
import { appendEntry, emptyLog, trimLog } from '../../src/pg/pg-log.ts';
import { emptyInfo } from '../../src/pg/pg.ts';
import { EVERSION_ZERO, type Eversion, type MapHistory, type PgInfo, type PgLogState, type PgMapping, type PgMeta } from '../../src/pg/types.ts';

const ev = (epoch: number, version: number): Eversion => ({ epoch, version });

/** A map history from per-epoch [up, acting] (primary = first) and the OSDs up at each epoch. */
function history(epochs: readonly { acting: number[]; up?: number[]; alive: number[] }[], minSize = 2, size = 3): MapHistory {
  const table = epochs.map((x, i): PgMapping => ({
    epoch: i + 1, up: x.up ?? x.acting, upPrimary: (x.up ?? x.acting)[0] ?? -1, acting: x.acting, actingPrimary: x.acting[0] ?? -1,
    size, minSize, isUp: (o) => x.alive.includes(o),
  }));
  return { mappingAt: (_pgid, e) => table[e - 1] };
}

function info(over: Partial<PgInfo>): PgInfo {
  return { ...emptyInfo('1.0'), ...over };
}

describe('intervals (PastIntervals::check_new_interval)', () => {
  const h = history([
    { acting: [0, 1, 2], alive: [0, 1, 2] }, // 1
    { acting: [0, 1, 2], alive: [0, 1, 2, 3] }, // 2: another OSD booted, same mapping
    { acting: [0, 1], alive: [0, 1, 3] }, // 3: osd.2 down
    { acting: [1], alive: [1, 3] }, // 4: osd.0 down, below min_size
    { acting: [1, 3], alive: [1, 3] }, // 5
  ]);

  it('a new interval starts only when the mapping changes', () => {
    expect(isNewInterval(h.mappingAt('1.0', 1)!, h.mappingAt('1.0', 2)!)).toBe(false);
    expect(intervalStart(h, '1.0', 2)).toBe(1);
    expect(intervalStart(h, '1.0', 3)).toBe(3);
    expect(intervalStart(h, '1.0', 5)).toBe(5);
  });

  it('past intervals cover [from, before) and mark those that may have gone read-write', () => {
    const iv = pastIntervals(h, '1.0', 1, 5);
    expect(iv.map((i) => [i.first, i.last, i.acting, i.maybeWentRw])).toEqual([
      [1, 2, [0, 1, 2], true], [3, 3, [0, 1], true], [4, 4, [1], false],
    ]);
  });

  it('the prior set probes a member of every rw interval since last_epoch_started', () => {
    const iv = pastIntervals(h, '1.0', 1, 5);
    const cur = h.mappingAt('1.0', 5)!;
    const prior = buildPriorSet(iv, cur, 0);
    expect(prior.blocked).toBe(false); // osd.1 was in every rw interval and is up
    expect([...prior.probe].sort()).toEqual([1, 3]);
    expect([...prior.down].sort()).toEqual([0, 2]);
  });

  it('blocks (down) when every member of an rw interval is down', () => {
    const h2 = history([
      { acting: [0, 1], alive: [0, 1, 2, 3] },
      { acting: [2, 3], alive: [2, 3] }, // 0 and 1 down: nobody can say what they acknowledged
    ]);
    const prior = buildPriorSet(pastIntervals(h2, '1.0', 1, 2), h2.mappingAt('1.0', 2)!, 0);
    expect(prior.blocked).toBe(true);
    expect([...prior.down].sort()).toEqual([0, 1]);
  });

  it('intervals that ended before last_epoch_started, or were below min_size, do not block', () => {
    const h3 = history([
      { acting: [0, 1], alive: [0, 1, 2, 3] }, // 1: rw
      { acting: [0], alive: [0, 2, 3] }, // 2: below min_size
      { acting: [2, 3], alive: [2, 3] }, // 3: rw, went active (les 3)
      { acting: [3, 2], alive: [2, 3] }, // 4
    ]);
    const iv = pastIntervals(h3, '1.0', 1, 4);
    expect(buildPriorSet(iv, h3.mappingAt('1.0', 4)!, 0).blocked).toBe(true);
    expect(buildPriorSet(iv, h3.mappingAt('1.0', 4)!, 3).blocked).toBe(false);
  });
});

describe('find_best_info', () => {
  it('prefers the newest last_epoch_started over a longer last_update', () => {
    const infos = new Map([
      [0, info({ lastEpochStarted: 5, lastUpdate: ev(5, 3) })],
      [1, info({ lastEpochStarted: 3, lastUpdate: ev(4, 9) })], // divergent writes of an older interval
    ]);
    expect(findBestInfo(infos, 1)).toBe(0);
  });

  it('then the newest last_update, then the longest log, then the current primary', () => {
    const a = info({ lastEpochStarted: 5, lastUpdate: ev(5, 3), logTail: ev(1, 1) });
    expect(findBestInfo(new Map([[0, a], [1, { ...a, lastUpdate: ev(5, 4) }]]), 0)).toBe(1);
    expect(findBestInfo(new Map([[0, a], [1, { ...a, logTail: EVERSION_ZERO }]]), 0)).toBe(1);
    expect(findBestInfo(new Map([[0, a], [1, a], [2, a]]), 2)).toBe(2);
    expect(findBestInfo(new Map([[0, a], [1, a]]), 7)).toBe(0);
  });

  it('never picks a copy in the middle of a backfill', () => {
    const full = info({ lastEpochStarted: 2, lastUpdate: ev(2, 1) });
    const partial = info({ lastEpochStarted: 9, lastUpdate: ev(9, 9), lastBackfill: 'obj-1' });
    expect(findBestInfo(new Map([[0, full], [1, partial]]), 1)).toBe(0);
    expect(findBestInfo(new Map([[1, partial]]), 1)).toBeUndefined();
  });
});

describe('choose_acting (calc_replicated_acting)', () => {
  function metaWith(log: PgLogState, les = 1): PgMeta {
    return { info: info({ lastUpdate: log.head, logTail: log.tail, lastEpochStarted: les }), log, missing: new Map() };
  }
  let authLog = emptyLog();
  for (let v = 1; v <= 6; v++) authLog = appendEntry(authLog, { version: ev(1, v), op: 'modify', object: `o${v}`, priorVersion: EVERSION_ZERO, reqid: null });
  const trimmed = trimLog(authLog, ev(1, 4), 10);
  const mapping = (up: number[], acting: number[]): PgMapping => ({
    epoch: 5, up, upPrimary: up[0]!, acting, actingPrimary: acting[0]!, size: 3, minSize: 2, isUp: () => true,
  });

  it('keeps the up set when every up member can be log-recovered', () => {
    const metas = new Map([[0, metaWith(trimmed)], [1, metaWith(trimmed)], [2, metaWith(trimmed)]]);
    expect(chooseActing(mapping([0, 1, 2], [0, 1, 2]), metas, 0, 3)).toEqual({ want: [0, 1, 2], backfill: [] });
  });

  it('an up primary whose log does not overlap hands the lead to the authoritative member and is backfilled', () => {
    const old = metaWith(emptyLog(), 0); // new OSD: its log ends before the authoritative tail
    const metas = new Map([[3, old], [1, metaWith(trimmed)], [2, metaWith(trimmed)]]);
    const c = chooseActing(mapping([3, 1, 2], [3, 1, 2]), metas, 1, 3);
    expect(c.want).toEqual([1, 2]);
    expect(c.backfill).toEqual([3]);
  });

  it('fills the wanted set from the old acting set and strays while up members backfill', () => {
    const metas = new Map([[4, metaWith(emptyLog(), 0)], [1, metaWith(trimmed)], [2, metaWith(trimmed)], [0, metaWith(trimmed)]]);
    const c = chooseActing(mapping([1, 2, 4], [1, 2, 4]), metas, 1, 3);
    expect(c.want).toEqual([1, 2, 0]);
    expect(c.backfill).toEqual([4]);
  });
});
