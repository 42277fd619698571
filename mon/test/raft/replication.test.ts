import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import { Cluster, enc } from './harness.ts';

describe('log replication (§5.3)', () => {
  it('replicates and applies proposals on every node in order', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 20; i++) c.node('a').propose(enc(`v${i}`));
    c.stabilize();
    const want = Array.from({ length: 20 }, (_, i) => `v${i}`);
    for (const id of ['a', 'b', 'c']) expect(c.appliedData(id)).toEqual(want);
  });

  it('propose on the leader returns the entry index and term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const res = c.node('a').propose(enc('x'));
    expect(res).toEqual({ index: 3, term: 2 });
  });

  it('followers forward proposals to the leader (MsgProp)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.node('b').propose(enc('from-b'))).toBeNull();
    c.stabilize();
    for (const id of ['a', 'b', 'c']) expect(c.appliedData(id)).toEqual(['from-b']);
  });

  it('a proposal with no known leader is refused with ENOT_LEADER at once', () => {
    const c = new Cluster(['a', 'b', 'c']);
    let err: unknown;
    try {
      c.node('b').propose(enc('x'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AspenError);
    expect((err as AspenError).code).toBe('ENOT_LEADER');
    expect((err as AspenError).details.leaderHint).toBeNull();
  });

  it('commits on a majority: a leader with one of two followers cut off still commits', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    c.node('a').propose(enc('x'));
    c.stabilize();
    expect(c.appliedData('a')).toEqual(['x']);
    expect(c.appliedData('b')).toEqual(['x']);
    expect(c.appliedData('c')).toEqual([]);
    c.heal();
    c.tickAll(2); // heartbeats let c catch up
    expect(c.appliedData('c')).toEqual(['x']);
  });

  it('a minority leader cannot commit', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    c.node('a').propose(enc('lost'));
    c.stabilize();
    expect(c.node('a').status().commit).toBe(2);
    expect(c.appliedData('a')).toEqual([]);
  });

  it('batches entries by maxSizePerMsgBytes and pipelines while replicating', () => {
    const c = new Cluster(['a', 'b', 'c'], { maxSizePerMsgBytes: 200, maxInflightMsgs: 4 });
    c.elect('a');
    c.isolate('b');
    c.isolate('c');
    for (let i = 0; i < 30; i++) c.node('a').propose(new Uint8Array(50));
    c.stabilize();
    c.heal();
    const before = c.sent.length;
    c.tickAll(1);
    c.tickAll(3);
    const apps = c.sent.slice(before).filter((m) => m.type === 'MsgApp' && m.entries.length > 0);
    expect(apps.length).toBeGreaterThan(2);
    for (const m of apps) expect(m.entries.length).toBeLessThanOrEqual(3); // 3 × (50+24) ≤ 200 < 4 × 74
    for (const id of ['b', 'c']) expect(c.get(id).applied.filter((e) => e.data.length === 50)).toHaveLength(30);
  });

  it('the Ready contract: entries and hard state are persisted before messages leave', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose(enc('p'));
    const rd = c.node('a').ready();
    expect(rd.entries.map((e) => e.index)).toEqual([3]);
    expect(rd.mustSync).toBe(true);
    expect(rd.messages.some((m) => m.type === 'MsgApp' && m.entries.some((e) => e.index === 3))).toBe(true);
    expect(rd.committedEntries).toHaveLength(0); // not committed before followers persist
    c.node('a').advance();
  });

  it('an uncommitted-size limit drops proposals on the leader with E_PROPOSAL_DROPPED', () => {
    const c = new Cluster(['a', 'b', 'c'], { maxUncommittedEntriesSizeBytes: 300 });
    c.elect('a');
    c.isolate('a');
    const errs: string[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        c.node('a').propose(new Uint8Array(100));
      } catch (e) {
        errs.push((e as AspenError).code);
      }
    }
    expect(errs.length).toBeGreaterThan(0);
    expect(new Set(errs)).toEqual(new Set(['E_PROPOSAL_DROPPED']));
  });
});
