import { describe, expect, it } from 'vitest';
import { Cluster, enc } from './harness.ts';

describe('log conflict repair and the commit rule', () => {
  it('a deposed leader’s uncommitted suffix is overwritten by the new leader’s log (§5.3)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 5; i++) c.node('a').propose(enc(`stale${i}`));
    c.stabilize();
    c.elect('b');
    for (let i = 0; i < 3; i++) c.node('b').propose(enc(`new${i}`));
    c.stabilize();
    c.heal();
    c.tickAll(3);
    const logB = c.get('b').storage.allEntries().map((e) => [e.index, e.term]);
    expect(c.get('a').storage.allEntries().map((e) => [e.index, e.term])).toEqual(logB);
    expect(c.appliedData('a')).toEqual(['new0', 'new1', 'new2']);
  });

  it('fast backtracking skips a whole conflicting term in one rejection', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 50; i++) c.node('a').propose(enc(`stale${i}`));
    c.stabilize();
    c.elect('b');
    for (let i = 0; i < 50; i++) c.node('b').propose(enc(`new${i}`));
    c.stabilize();
    // c takes over in a later term: it starts probing a at the end of its log (index 54),
    // far past where a's log diverges (index 3).
    c.node('b').transferLeadership('c');
    c.stabilize();
    expect(c.node('c').status().role).toBe('leader');
    c.heal();
    const before = c.sent.length;
    c.tickAll(3);
    const rejects = c.sent.slice(before).filter((m) => m.type === 'MsgAppResp' && m.reject && m.from === 'a');
    expect(rejects.length).toBeGreaterThan(0);
    expect(rejects.length).toBeLessThanOrEqual(3); // not ~50
    expect(c.appliedData('a')).toEqual(Array.from({ length: 50 }, (_, i) => `new${i}`));
  });

  it('Fig. 8: a leader does not commit an old-term entry by counting replicas, only through a current-term entry', () => {
    const c = new Cluster(['a', 'b', 'c'], { maxSizePerMsgBytes: 1 });
    c.elect('a'); // term 2, no-op at index 2
    const t = c.node('a').status().term;
    c.filter = (m) => m.type !== 'MsgApp';
    c.node('a').propose(enc('old')); // index 3, term t, only on a
    c.stabilize();
    c.elect('b'); // term t+1 with c's vote; its no-op (index 3, term t+1) stays on b
    expect(c.node('b').status()).toMatchObject({ role: 'leader', term: t + 1 });
    // a wins term t+2 with c's vote (a's last term t beats c's), b's log is "newer" than a's.
    const termOf3 = (id: string): number | undefined => c.get(id).storage.allEntries().find((e) => e.index === 3)?.term;
    c.filter = (m) => !(m.type === 'MsgApp' && m.entries.some((e) => e.index === 4) && termOf3(m.to) === t);
    c.elect('a');
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: t + 2 });
    // Index 3 (term t) is now on a majority, but it is not of the current term: no commit.
    expect(termOf3('c')).toBe(t);
    expect(c.node('a').status().progress['c']?.match).toBe(3);
    expect(c.node('a').status().commit).toBe(2);
    c.filter = null;
    c.tickAll(2);
    expect(c.node('a').status().commit).toBe(4);
    expect(c.appliedData('b')).toEqual(['old']);
  });

  it('a follower never truncates committed entries; stale appends below commit are answered with the commit index', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose(enc('x'));
    c.stabilize();
    const commit = c.node('b').status().commit;
    // Replay an old MsgApp (duplicate delivery) to b.
    const old = c.sent.find((m) => m.type === 'MsgApp' && m.to === 'b' && m.index < commit);
    expect(old).toBeDefined();
    c.node('b').step(old!);
    c.stabilize();
    expect(c.node('b').status().commit).toBe(commit);
    expect(c.appliedData('b')).toEqual(['x']);
  });
});
