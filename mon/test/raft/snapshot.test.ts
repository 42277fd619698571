import { describe, expect, it } from 'vitest';
import { Cluster, enc } from './harness.ts';

function snapshotAndCompact(c: Cluster, id: string): number {
  const tn = c.get(id);
  const st = tn.node.status();
  tn.storage.createSnapshot(st.applied, st.confState, enc(JSON.stringify(c.appliedData(id))));
  tn.storage.compact(st.applied);
  return st.applied;
}

describe('snapshots (Raft §7)', () => {
  it('a follower that needs compacted entries gets MsgSnap, restores it and catches up', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 10; i++) c.node('a').propose(enc(`v${i}`));
    c.stabilize();
    const snapIndex = snapshotAndCompact(c, 'a');
    expect(c.get('a').storage.firstIndex()).toBe(snapIndex + 1);
    c.heal();
    c.tickAll(3);
    c.node('a').propose(enc('after'));
    c.stabilize();
    const cNode = c.get('c');
    expect(cNode.snapshotsRestored).toBe(1);
    expect(cNode.storage.snapshot().metadata.index).toBe(snapIndex);
    expect(JSON.parse(new TextDecoder().decode(cNode.storage.snapshot().data))).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
    expect(c.appliedData('c')).toEqual(['after']);
    expect(c.node('c').status().commit).toBe(c.node('a').status().commit);
    expect(c.sent.filter((m) => m.type === 'MsgSnap')).toHaveLength(1);
  });

  it('a restarted node resumes from its snapshot and persisted log', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 5; i++) c.node('a').propose(enc(`v${i}`));
    c.stabilize();
    snapshotAndCompact(c, 'b');
    c.restart('b');
    expect(c.node('b').status().commit).toBe(c.node('a').status().commit);
    c.node('a').propose(enc('more'));
    c.stabilize();
    expect(c.appliedData('b')).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'more']);
  });

  it('restarts when the persisted commit hint lags the snapshot (commit-only hard states are not fsynced)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 5; i++) c.node('a').propose(enc(`v${i}`));
    c.stabilize();
    const b = c.get('b');
    const st = b.node.status();
    b.storage.createSnapshot(st.applied, st.confState, enc('sm'));
    b.storage.setHardState({ ...b.storage.getHardState(), commit: 2 });
    c.restart('b');
    expect(c.node('b').status().commit).toBe(st.applied);
    c.node('a').propose(enc('more'));
    c.stabilize();
    expect(c.appliedData('b').at(-1)).toBe('more');
  });

  it('a snapshot older than the follower’s commit is ignored (answered with its commit)', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 5; i++) c.node('a').propose(enc(`v${i}`));
    c.stabilize();
    const snap = c.get('a').storage.createSnapshot(3, c.node('a').status().confState, enc('old'));
    const commit = c.node('b').status().commit;
    c.node('b').step({
      type: 'MsgSnap', from: 'a', to: 'b', term: c.node('a').status().term, logTerm: 0, index: 0, entries: [], commit: 0,
      reject: false, rejectHint: 0, snapshot: snap, context: new Uint8Array(0),
    });
    c.stabilize();
    expect(c.get('b').snapshotsRestored).toBe(0);
    expect(c.node('b').status().commit).toBe(commit);
  });
});
