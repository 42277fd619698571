/**
 * Exactly-once client sessions (Raft thesis §6.3) and deterministic replay of the monitor
 * state machine, including across a snapshot (encodeMonState/decodeMonState) taken mid-way.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { CommandResult } from '../../src/core/command.ts';
import { parseCommand } from '../../src/core/command.ts';
import { decodeMonState, encodeMonState } from '../../src/core/snapshot.ts';
import { encodeConfChangeContext, MonStateMachine } from '../../src/core/state-machine.ts';
import { CLIENT_SESSIONS_MAX, SESSION_RESULTS_MAX } from '../../src/core/state.ts';
import { Driver, T0, osdUuid } from './helpers.ts';
import { cmdArb } from './gen.ts';

const restore = (d: Driver): Driver => new Driver(decodeMonState(encodeMonState(d.state)), d.clientId);

describe('exactly-once sessions', () => {
  it('a retried (clientId, seq) gets the first result back and is not applied again', () => {
    const d = new Driver();
    const first = d.apply({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 }, { seq: 1 }).result;
    expect(first.message).toBe("pool 'rbd' created");
    const epoch = d.map.epoch;
    const again = d.apply({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 }, { seq: 1 });
    expect(again.result).toEqual(first); // not "already exists": the first application's reply
    expect(again.effects.incrementals).toEqual([]);
    expect(d.map.epoch).toBe(epoch);
    // The cached reply wins even when the retry carries another command (it is the same request).
    expect(d.apply({ prefix: 'osd new', uuid: osdUuid(1) }, { seq: 1 }).result).toEqual(first);
    expect(d.map.osds.size).toBe(0);
  });

  it('a refusal is remembered too: a retry does not execute even if it would now succeed', () => {
    const d = new Driver();
    d.ok({ prefix: 'osd pool create', pool: 'rbd', pg_num: 8 });
    const rm = { prefix: 'osd pool rm', pool: 'rbd', pool2: 'rbd', yes_i_really_really_mean_it: true };
    const refused = d.apply(rm, { seq: 100 }).result;
    expect(refused.code).toBe('EPERM');
    d.apply({ prefix: 'config set', who: 'mon', name: 'mon_allow_pool_delete', value: 'true' }, { seq: 101 });
    expect(d.apply(rm, { seq: 100 }).result).toEqual(refused);
    expect(d.map.pools.size).toBe(1);
    expect(d.apply(rm, { seq: 102 }).result.code).toBe(0);
  });

  it('remembers results across a snapshot encode/decode', () => {
    const d = new Driver();
    const r1 = d.apply({ prefix: 'osd new', uuid: osdUuid(9) }, { seq: 1 }).result;
    const r2 = d.apply({ prefix: 'osd pool create', pool: 'p', pg_num: 4 }, { seq: 2 }).result;
    const r = restore(d);
    expect(r.state.sessions.get('client-1')!.results.size).toBe(2);
    expect(r.apply({ prefix: 'osd pool create', pool: 'p', pg_num: 4 }, { seq: 2 }).result).toEqual(r2);
    expect(r.apply({ prefix: 'osd new', uuid: osdUuid(9) }, { seq: 1 }).result).toEqual(r1);
    expect(r.map.epoch).toBe(d.map.epoch);
  });

  it('several requests of one session may be in flight: seqs applied out of order are each applied once', () => {
    const d = new Driver();
    const r3 = d.apply({ prefix: 'osd pool create', pool: 'three', pg_num: 4 }, { seq: 3 }).result;
    const r1 = d.apply({ prefix: 'osd pool create', pool: 'one', pg_num: 4 }, { seq: 1 }).result;
    const r2 = d.apply({ prefix: 'osd pool create', pool: 'two', pg_num: 4 }, { seq: 2 }).result;
    expect([r3, r1, r2].map((r) => r.data)).toEqual([{ pool_id: 1 }, { pool_id: 2 }, { pool_id: 3 }]);
    for (const [seq, r] of [[2, r2], [3, r3], [1, r1]] as const) expect(d.apply({ prefix: 'osd pool create', pool: 'x', pg_num: 4 }, { seq }).result).toEqual(r);
    expect(d.map.pools.size).toBe(3);
  });

  it('beyond its window a session forgets the oldest results: their seqs (<= floorSeq) are refused as stale, never re-applied', () => {
    const d = new Driver();
    // seq 2 never arrives before the window moves past it.
    d.apply({ prefix: 'osd pool create', pool: 'p1', pg_num: 1 }, { seq: 1 });
    for (let s = 3; s <= SESSION_RESULTS_MAX + 3; s++) d.apply({ prefix: 'config set', who: 'global', name: `k${s}`, value: 'v' }, { seq: s });
    const session = d.state.sessions.get('client-1')!;
    expect(session.results.size).toBe(SESSION_RESULTS_MAX);
    expect(session.floorSeq).toBe(3);
    const epoch = d.map.epoch;
    for (const seq of [1, 2, 3]) {
      const r = d.apply({ prefix: 'osd pool create', pool: `late${seq}`, pg_num: 1 }, { seq }).result;
      expect(r.code).toBe('EINVAL');
      expect(r.message).toMatch(new RegExp(`stale request seq ${seq} \\(results at or below 3 are forgotten\\)`));
    }
    expect(d.map.epoch).toBe(epoch);
    // Seq 4 is still remembered; and the floor survives a snapshot.
    expect(d.apply({ prefix: 'osd pool create', pool: 'zzz', pg_num: 1 }, { seq: 4 }).result).toMatchObject({ code: 0, message: '' });
    const r = restore(d);
    expect(r.apply({ prefix: 'osd pool create', pool: 'late2', pg_num: 1 }, { seq: 2 }).result.code).toBe('EINVAL');
    expect([...r.map.pools.values()].map((p) => p.name)).toEqual(['p1']);
  });

  it('the window forgets the lowest seqs, not the first applied: a burst applied out of order refuses none of its requests', () => {
    const d = new Driver();
    const n = SESSION_RESULTS_MAX + 20;
    // The highest seq of the burst commits first, then the rest in order.
    const order = [n, ...Array.from({ length: n - 1 }, (_, i) => i + 1)];
    for (const seq of order) {
      const r = d.apply({ prefix: 'config set', who: 'global', name: `k${seq}`, value: 'v' }, { seq }).result;
      expect(r.code, `seq ${seq}: ${r.message}`).toBe(0);
    }
    expect(d.state.config.get('global')!.size).toBe(n);
    const session = d.state.sessions.get('client-1')!;
    expect(session.results.has(n)).toBe(true); // the newest request's reply is still there for its retry
    expect(session.floorSeq).toBe(n - SESSION_RESULTS_MAX); // seqs 1..20 forgotten, in order
  });

  it('sessions are per client; the monitors\' own commands (clientId "") are never deduplicated', () => {
    const d = new Driver();
    const a = d.apply({ prefix: 'osd pool create', pool: 'a', pg_num: 1 }, { clientId: 'A', seq: 1 }).result;
    const b = d.apply({ prefix: 'osd pool create', pool: 'b', pg_num: 1 }, { clientId: 'B', seq: 1 }).result;
    expect([a.data, b.data]).toEqual([{ pool_id: 1 }, { pool_id: 2 }]);
    d.apply({ prefix: 'osd new', uuid: osdUuid(1) }, { clientId: '', seq: 0 });
    d.apply({ prefix: 'osd new', uuid: osdUuid(2) }, { clientId: '', seq: 0 });
    expect(d.map.osds.size).toBe(2);
    expect(d.state.sessions.has('')).toBe(false);
  });

  it(`evicts the least recently used session beyond ${CLIENT_SESSIONS_MAX} sessions`, () => {
    const d = new Driver();
    d.apply({ prefix: 'osd set', key: 'noout' }, { clientId: 'oldest', seq: 1 });
    d.apply({ prefix: 'osd set', key: 'noout' }, { clientId: 'kept', seq: 1 });
    for (let i = 0; i < CLIENT_SESSIONS_MAX - 2; i++) d.apply({ prefix: 'config set', who: 'global', name: 'x', value: String(i) }, { clientId: `s${i}`, seq: 1 });
    d.apply({ prefix: 'osd set', key: 'noout' }, { clientId: 'kept', seq: 1 }); // a retry refreshes 'kept'
    expect(d.state.sessions.size).toBe(CLIENT_SESSIONS_MAX);
    d.apply({ prefix: 'osd set', key: 'noout' }, { clientId: 'newcomer', seq: 1 });
    expect(d.state.sessions.size).toBe(CLIENT_SESSIONS_MAX);
    expect(d.state.sessions.has('oldest')).toBe(false);
    expect(d.state.sessions.has('kept')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Deterministic replay


/** One committed entry: a client command (new, retried or out-of-order seq), an internal command, a no-op or a conf change. */
type Step =
  | { kind: 'cmd'; cmd: Record<string, unknown>; client: string; seq: 'next' | 'retry' | 'skip'; pick: number; dtMs: number }
  | { kind: 'noop' }
  | { kind: 'conf'; add: boolean; name: string };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('cmd' as const), cmd: cmdArb, client: fc.constantFrom('c1', 'c2', ''), seq: fc.constantFrom('next' as const, 'next' as const, 'retry' as const, 'skip' as const), pick: fc.nat(), dtMs: fc.nat({ max: 5000 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'noop' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('conf' as const), add: fc.boolean(), name: fc.constantFrom('d', 'e', 'b') }) },
);

/** Turns steps into concrete entries (seqs resolved) so both replicas apply the very same log. */
function resolve(steps: Step[]): ({ kind: 'env'; clientId: string; seq: number; stampMs: number; cmd: Record<string, unknown> } | Exclude<Step, { kind: 'cmd' }>)[] {
  const next = new Map<string, number>();
  const sent = new Map<string, number[]>();
  let now = T0;
  return steps.map((s) => {
    if (s.kind !== 'cmd') return s;
    now += s.dtMs;
    if (s.client === '') return { kind: 'env', clientId: '', seq: 0, stampMs: now, cmd: s.cmd };
    const prev = sent.get(s.client) ?? [];
    let seq: number;
    if (s.seq === 'retry' && prev.length > 0) seq = prev[s.pick % prev.length]!;
    else {
      seq = (next.get(s.client) ?? 0) + (s.seq === 'skip' ? 2 : 1); // 'skip' leaves a hole filled by no one (an in-flight request)
      next.set(s.client, seq);
    }
    prev.push(seq);
    sent.set(s.client, prev);
    return { kind: 'env', clientId: s.client, seq, stampMs: now, cmd: s.cmd };
  });
}

function applyEntry(sm: MonStateMachine, index: number, e: ReturnType<typeof resolve>[number]): CommandResult | null {
  switch (e.kind) {
    case 'env': return sm.applyCommand(index, { clientId: e.clientId, seq: e.seq, stampMs: e.stampMs, command: parseCommand(e.cmd) }).result;
    case 'noop': sm.applyNoop(index); return null;
    case 'conf':
      sm.applyConfChange(index, { type: e.add ? 'add_voter' : 'remove_node', nodeId: e.name, context: encodeConfChangeContext({ addr: e.add ? `127.0.0.1:${7000 + index}` : '', stampMs: T0 + index }) });
      return null;
  }
}

describe('deterministic replay', () => {
  it('the same committed log gives byte-identical states and identical replies, even when one replica is snapshotted and restored mid-way (property)', () => {
    fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 120 }), fc.nat(), (steps, cutAt) => {
      const log = resolve(steps);
      const cut = cutAt % (log.length + 1);
      const a = new Driver().sm;
      let b = new Driver().sm;
      log.forEach((entry, i) => {
        if (i === cut) b = new MonStateMachine(decodeMonState(encodeMonState(b.state)));
        const ra = applyEntry(a, i + 1, entry);
        const rb = applyEntry(b, i + 1, entry);
        expect(rb).toEqual(ra);
      });
      expect(Buffer.from(encodeMonState(b.state)).equals(Buffer.from(encodeMonState(a.state)))).toBe(true);
      // And the snapshot codec is a fixpoint: decode(encode(s)) re-encodes to the same bytes.
      const bytes = encodeMonState(a.state);
      expect(Buffer.from(encodeMonState(decodeMonState(bytes))).equals(Buffer.from(bytes))).toBe(true);
      expect(a.state.appliedIndex).toBe(log.length);
    }), { numRuns: 200 });
  });

  it('the snapshot refuses a state mixing fsids (E_CORRUPT) and garbage (E_DECODE)', () => {
    const d = new Driver();
    d.state.osdMap.fsid = '99999999-2222-4333-8444-555555555555';
    expect(() => decodeMonState(encodeMonState(d.state))).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
    const ok = encodeMonState(new Driver().state);
    expect(() => decodeMonState(ok.subarray(0, ok.length - 2))).toThrow(expect.objectContaining({ code: 'E_DECODE' }));
  });
});
