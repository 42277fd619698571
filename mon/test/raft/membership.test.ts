import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import { Cluster, enc } from './harness.ts';
import type { ConfChange } from '../../src/raft/types.ts';

const cc = (type: ConfChange['type'], nodeId: string): ConfChange => ({ type, nodeId, context: new Uint8Array(0) });

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return e instanceof AspenError ? e.code : String(e);
  }
}

describe('single-server membership changes (thesis §4.1)', () => {
  it('adds a learner that catches up, promotes it, then removes a voter', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose(enc('before'));
    c.stabilize();
    c.addNode('d', null);
    c.node('a').proposeConfChange(cc('add_learner', 'd'));
    c.stabilize();
    c.tickAll(2);
    for (const id of ['a', 'b', 'c', 'd']) expect(c.node(id).status().confState).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(c.appliedData('d')).toEqual(['before']);
    // A learner never campaigns.
    c.node('d').campaign();
    c.stabilize();
    expect(c.node('d').status().role).toBe('follower');

    c.node('a').proposeConfChange(cc('add_voter', 'd'));
    c.stabilize();
    for (const id of ['a', 'b', 'c', 'd']) expect(c.node(id).status().confState.voters).toEqual(['a', 'b', 'c', 'd']);

    c.node('a').proposeConfChange(cc('remove_node', 'c'));
    c.stabilize();
    for (const id of ['a', 'b', 'd']) expect(c.node(id).status().confState).toEqual({ voters: ['a', 'b', 'd'], learners: [] });
    // The removed node no longer gets entries; the rest commit with a quorum of {a,b,d}.
    c.isolate('b');
    c.node('a').propose(enc('after'));
    c.stabilize();
    expect(c.appliedData('d')).toEqual(['before', 'after']);
    expect(c.appliedData('c')).toEqual(['before']);
  });

  it('refuses a second change while one is unapplied (E_CONFIG_CHANGE_PENDING)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    c.node('a').proposeConfChange(cc('add_learner', 'd'));
    expect(codeOf(() => c.node('a').proposeConfChange(cc('add_learner', 'e')))).toBe('E_CONFIG_CHANGE_PENDING');
    c.heal();
    c.stabilize();
    expect(codeOf(() => c.node('a').proposeConfChange(cc('add_learner', 'e')))).toBeNull();
  });

  it('a forwarded change that conflicts with a pending one is committed as a no-op', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.filter = (m) => m.type !== 'MsgAppResp';
    c.node('a').proposeConfChange(cc('add_learner', 'd'));
    c.node('b').proposeConfChange(cc('add_learner', 'e'));
    c.stabilize();
    c.filter = null;
    c.tickAll(2);
    expect(c.node('a').status().confState.learners).toEqual(['d']);
  });

  it('refuses removing the last voter (EINVAL)', () => {
    const c = new Cluster(['a']);
    c.elect('a');
    expect(codeOf(() => c.node('a').proposeConfChange(cc('remove_node', 'a')))).toBe('EINVAL');
  });

  it('a removed leader steps down once the removal is applied and the rest elect a new leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').proposeConfChange(cc('remove_node', 'a'));
    c.stabilize();
    expect(c.node('a').status().role).toBe('follower');
    expect(c.node('b').status().confState.voters).toEqual(['b', 'c']);
    c.tickAll(30);
    const leaders = c.leaders();
    expect(leaders).toHaveLength(1);
    expect(['b', 'c']).toContain(leaders[0]);
    // a does not campaign any more.
    expect(c.node('a').status().role).toBe('follower');
  });

  it('removing a voter can let the leader commit with the smaller quorum', () => {
    const c = new Cluster(['a', 'b', 'c', 'd']);
    c.elect('a');
    c.isolate('c');
    c.isolate('d');
    c.node('a').propose(enc('x')); // 2 of 4: not committed
    c.stabilize();
    expect(c.appliedData('a')).toEqual([]);
    c.heal();
    c.isolate('d');
    c.node('a').proposeConfChange(cc('remove_node', 'd'));
    c.stabilize();
    c.isolate('c');
    c.node('a').propose(enc('y')); // a,b of {a,b,c}: committed
    c.stabilize();
    expect(c.appliedData('a')).toEqual(['x', 'y']);
  });
});
