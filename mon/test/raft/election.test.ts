import { describe, expect, it } from 'vitest';
import { Cluster, enc } from './harness.ts';
import { makeMessage } from '../../src/raft/core/util.ts';

describe('raft election (§5.2)', () => {
  it('a campaigning node wins with a majority and commits an empty entry of its term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.leaders()).toEqual(['a']);
    const st = c.node('a').status();
    expect(st.term).toBe(2);
    // bootstrap snapshot at 1, no-op at 2, committed everywhere
    for (const id of ['a', 'b', 'c']) {
      expect(c.node(id).status().commit).toBe(2);
      expect(c.node(id).status().lead).toBe('a');
      expect(c.get(id).storage.getHardState().term).toBe(2);
    }
    expect(c.get('b').storage.getHardState().vote).toBe('a');
  });

  it('elects a leader by timeout alone (randomized election timeouts)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.tickAll(25);
    expect(c.leaders()).toHaveLength(1);
  });

  it('a candidate without a majority does not become leader and others keep a single leader per term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.isolate('a');
    c.elect('a');
    expect(c.node('a').status().role).toBe('candidate');
    c.heal();
    c.cut('a', 'b');
    c.cut('a', 'c');
    c.elect('b');
    expect(c.node('b').status().role).toBe('leader');
  });

  it('election restriction (§5.4.1): a node with a shorter log cannot win', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    c.node('a').propose(enc('x'));
    c.stabilize();
    c.heal();
    // c has an older log; its vote requests are rejected by a and b.
    c.elect('c');
    expect(c.node('c').status().role).not.toBe('leader');
    // A node that refused c's vote keeps its vote for the term c asked for empty or elsewhere.
    c.tickAll(30);
    const leaders = c.leaders();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]).not.toBe('c');
  });

  it('a single-voter cluster elects itself at once', () => {
    const c = new Cluster(['a']);
    c.elect('a');
    expect(c.leaders()).toEqual(['a']);
    c.node('a').propose(enc('solo'));
    c.stabilize();
    expect(c.appliedData('a')).toEqual(['solo']);
  });

  it('votes at most once per term (Fig. 2 RequestVote rule)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const b = c.node('b');
    b.step(makeMessage({ type: 'MsgVote', from: 'a', to: 'b', term: 5, index: 1, logTerm: 1 }));
    b.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 5, index: 1, logTerm: 1 }));
    const rd = b.ready();
    const resps = rd.messages.filter((m) => m.type === 'MsgVoteResp');
    expect(resps.map((m) => [m.to, m.reject])).toEqual([
      ['a', false],
      ['c', true],
    ]);
    expect(rd.hardState?.vote).toBe('a');
    expect(rd.mustSync).toBe(true);
  });

  it('a leader steps down on a message from a higher term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.elect('b');
    expect(c.leaders()).toEqual(['b']);
    expect(c.node('a').status().role).toBe('follower');
  });
});

describe('pre-vote (§9.6) and check-quorum (§6.2)', () => {
  it('a partitioned node with pre-vote does not raise its term and does not disrupt the leader on rejoin', () => {
    const c = new Cluster(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    c.elect('a');
    const term = c.node('a').status().term;
    c.isolate('c');
    for (let i = 0; i < 100; i++) {
      for (const tn of c.nodes.values()) tn.node.tick();
      c.stabilize();
    }
    expect(c.node('c').status().term).toBe(term); // pre-votes failed: no term inflation
    expect(c.node('c').status().role).toBe('pre_candidate');
    c.heal();
    c.tickAll(30);
    expect(c.leaders()).toEqual(['a']);
    expect(c.node('a').status().term).toBe(term);
  });

  it('without pre-vote, a partitioned node inflates its term and deposes the leader on rejoin', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.node('a').status().term;
    c.isolate('c');
    for (let i = 0; i < 100; i++) {
      for (const tn of c.nodes.values()) tn.node.tick();
      c.stabilize();
    }
    expect(c.node('c').status().term).toBeGreaterThan(term + 2);
    c.heal();
    c.tickAll(40);
    expect(c.node('a').status().term).toBeGreaterThan(term);
  });

  it('leader lease: with check-quorum, followers ignore vote requests while they hear from a leader', () => {
    const c = new Cluster(['a', 'b', 'c'], { checkQuorum: true });
    c.elect('a');
    const term = c.node('a').status().term;
    c.node('b').step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: term + 1, index: 100, logTerm: term }));
    c.stabilize();
    expect(c.node('b').status().term).toBe(term);
    expect(c.node('b').status().lead).toBe('a');
  });

  it('check-quorum: a leader cut off from its quorum steps down after an election timeout', () => {
    const c = new Cluster(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 21; i++) {
      c.node('a').tick();
      c.stabilize();
    }
    expect(c.node('a').status().role).toBe('follower');
  });

  it('a stale leader rejoining after a partition steps down on its first append (pre-vote + check-quorum)', () => {
    const c = new Cluster(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    c.elect('a');
    c.isolate('a');
    c.tickAll(60); // b or c takes over; a steps down by check-quorum
    const leaders = c.leaders().filter((l) => l !== 'a');
    expect(leaders).toHaveLength(1);
    c.heal();
    c.tickAll(5);
    expect(c.leaders()).toEqual(leaders);
    const newTerm = c.node(leaders[0]!).status().term;
    expect(c.node('a').status().term).toBe(newTerm);
  });
});
