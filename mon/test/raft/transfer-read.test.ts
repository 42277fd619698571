import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import { Cluster, enc } from './harness.ts';

describe('leadership transfer (thesis §3.10)', () => {
  it('transfers to an up-to-date follower via MsgTimeoutNow', () => {
    const c = new Cluster(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    c.elect('a');
    const term = c.node('a').status().term;
    c.node('a').transferLeadership('b');
    c.stabilize();
    expect(c.leaders()).toEqual(['b']);
    expect(c.node('b').status().term).toBe(term + 1);
    expect(c.sent.some((m) => m.type === 'MsgTimeoutNow' && m.to === 'b')).toBe(true);
  });

  it('catches a lagging target up before handing over, and drops proposals meanwhile', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('b');
    for (let i = 0; i < 5; i++) c.node('a').propose(enc(`v${i}`));
    c.stabilize();
    c.heal();
    c.filter = (m) => !(m.to === 'b' && m.type === 'MsgApp');
    c.node('a').transferLeadership('b');
    c.stabilize();
    let err: unknown;
    try {
      c.node('a').propose(enc('during'));
    } catch (e) {
      err = e;
    }
    expect((err as AspenError).code).toBe('E_PROPOSAL_DROPPED');
    expect((err as AspenError).details.leaderHint).toBe('b');
    c.filter = null;
    c.tickAll(2);
    expect(c.leaders()).toEqual(['b']);
    expect(c.appliedData('b')).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });

  it('aborts a transfer after an election timeout when the target does not respond', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('b');
    c.node('a').transferLeadership('b');
    c.stabilize();
    expect(c.node('a').status().leadTransferee).toBe('b');
    for (let i = 0; i < 10; i++) {
      c.node('a').tick();
      c.stabilize();
    }
    expect(c.node('a').status().leadTransferee).toBeNull();
    expect(c.node('a').propose(enc('ok'))).not.toBeNull();
  });

  it('a transfer request on a follower is forwarded to the leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('c').transferLeadership('c');
    c.stabilize();
    expect(c.leaders()).toEqual(['c']);
  });
});

describe('ReadIndex (thesis §6.4)', () => {
  it('the leader answers a read after a heartbeat round confirms its leadership', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose(enc('x'));
    c.stabilize();
    const before = c.sent.length;
    c.node('a').readIndex(enc('r1'));
    c.stabilize();
    expect(c.get('a').readStates).toEqual([{ index: 3, requestCtx: enc('r1') }]);
    expect(c.sent.slice(before).some((m) => m.type === 'MsgHeartbeat' && m.context.length > 0)).toBe(true);
  });

  it('a follower’s read is forwarded and answered with the leader’s commit index', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose(enc('x'));
    c.stabilize();
    c.node('b').readIndex(enc('rb'));
    c.stabilize();
    expect(c.get('b').readStates).toEqual([{ index: 3, requestCtx: enc('rb') }]);
  });

  it('an isolated (deposed) leader never answers a read', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    c.node('a').readIndex(enc('r'));
    c.stabilize();
    c.elect('b');
    c.node('b').propose(enc('new'));
    c.stabilize();
    expect(c.get('a').readStates).toEqual([]);
  });

  it('a new leader defers reads until it commits an entry of its term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.filter = (m) => m.type !== 'MsgAppResp';
    c.elect('b');
    expect(c.node('b').status().role).toBe('leader');
    c.node('b').readIndex(enc('early'));
    c.stabilize();
    expect(c.get('b').readStates).toEqual([]);
    c.filter = null;
    c.tickAll(2);
    expect(c.get('b').readStates).toHaveLength(1);
    expect(c.get('b').readStates[0]!.index).toBe(c.node('b').status().commit);
  });

  it('a read with no known leader fails with ENOT_LEADER', () => {
    const c = new Cluster(['a', 'b', 'c']);
    expect(() => c.node('a').readIndex(enc('r'))).toThrow(AspenError);
  });
});
