import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/raft/memory-storage.ts';
import { LogCompactedError, LogUnavailableError } from '../../src/raft/types.ts';
import type { Entry } from '../../src/raft/types.ts';
import { Inflights, Progress, committedIndex, voteResult } from '../../src/raft/core/progress.ts';

const ent = (index: number, term: number, size = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array(size) });
const idx = (es: readonly Entry[]): [number, number][] => es.map((e) => [e.index, e.term]);

describe('MemoryStorage (etcd storage.go semantics)', () => {
  it('appends, and truncates a conflicting suffix', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 1)]);
    s.append([ent(2, 2)]);
    expect(idx(s.allEntries())).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(s.lastIndex()).toBe(2);
    expect(() => s.append([ent(5, 2)])).toThrow(/missing log entries/);
  });

  it('compacts and reports compacted / unavailable ranges', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)]);
    s.createSnapshot(3, { voters: ['a'], learners: [] }, new Uint8Array([1]));
    s.compact(3);
    expect(s.firstIndex()).toBe(4);
    expect(s.term(3)).toBe(2);
    expect(() => s.term(2)).toThrow(LogCompactedError);
    expect(() => s.entries(3, 5, 1e9)).toThrow(LogCompactedError);
    expect(() => s.entries(4, 6, 1e9)).toThrow(LogUnavailableError);
    expect(idx(s.entries(4, 5, 1e9))).toEqual([[4, 2]]);
    // Appending entries that are partly compacted skips the compacted ones.
    s.append([ent(3, 2), ent(4, 3), ent(5, 3)]);
    expect(idx(s.allEntries())).toEqual([
      [4, 3],
      [5, 3],
    ]);
    expect(s.snapshot().metadata).toEqual({ index: 3, term: 2, confState: { voters: ['a'], learners: [] } });
  });

  it('limits entries by size but returns at least one', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1, 100), ent(2, 1, 100), ent(3, 1, 100)]);
    expect(s.entries(1, 4, 1)).toHaveLength(1);
    expect(s.entries(1, 4, 250)).toHaveLength(2);
  });

  it('applySnapshot replaces the log; an older snapshot is refused', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1)]);
    s.applySnapshot({ metadata: { index: 10, term: 3, confState: { voters: ['a', 'b'], learners: [] } }, data: new Uint8Array() });
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(10);
    expect(s.term(10)).toBe(3);
    expect(s.initialState().confState.voters).toEqual(['a', 'b']);
    expect(() => s.applySnapshot({ metadata: { index: 5, term: 2, confState: { voters: ['a'], learners: [] } }, data: new Uint8Array() })).toThrow();
  });
});

describe('progress tracking', () => {
  it('inflights: a full window pauses replication; acknowledgements free it', () => {
    const f = new Inflights(3);
    f.add(5);
    f.add(7);
    f.add(9);
    expect(f.full()).toBe(true);
    f.freeLE(7);
    expect(f.count).toBe(1);
    f.freeFirstOne();
    expect(f.count).toBe(0);
  });

  it('probe → replicate with optimistic next; a rejection falls back to match+1', () => {
    const pr = new Progress(11, 4, false);
    expect(pr.state).toBe('probe');
    pr.sentEntries(1);
    expect(pr.isPaused()).toBe(true);
    expect(pr.maybeDecrTo(10, 5)).toBe(true); // rejected prev 10, follower hints 5
    expect(pr.next).toBe(6);
    expect(pr.maybeUpdate(8)).toBe(true);
    pr.becomeReplicate();
    expect(pr.next).toBe(9);
    pr.sentEntries(3); // 9..11 in flight
    expect(pr.next).toBe(12);
    expect(pr.maybeDecrTo(7, 0)).toBe(false); // stale rejection (below match)
    expect(pr.maybeDecrTo(11, 0)).toBe(true);
    expect(pr.next).toBe(9);
  });

  it('quorum helpers: commit index is the majority match; vote results', () => {
    const m: Record<string, number> = { a: 10, b: 7, c: 3, d: 9, e: 1 };
    expect(committedIndex(['a', 'b', 'c', 'd', 'e'], (id) => m[id]!)).toBe(7);
    expect(committedIndex(['a', 'b', 'c'], (id) => m[id]!)).toBe(7);
    const votes = new Map([
      ['a', true],
      ['b', false],
    ]);
    expect(voteResult(['a', 'b', 'c'], votes)).toBe('pending');
    votes.set('c', true);
    expect(voteResult(['a', 'b', 'c'], votes)).toBe('won');
    votes.set('c', false);
    expect(voteResult(['a', 'b', 'c'], votes)).toBe('lost');
  });
});
