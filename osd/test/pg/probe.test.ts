/**
 * The PG core's `probe` body (osd/src/pg/primary.ts), on a single-member PG driven by hand:
 * it answers the object's log version without a store read, waits while a write to the
 * object is in flight, and with `dupOf` answers a resend of an applied write from the log
 * (Ceph's dup detection before do_osd_ops) — so a resend of `create exclusive` after a
 * primary change is not re-executed into EEXIST.
 */
import { describe, expect, it } from 'vitest';
import { PgCore, PG_CONFIG_DEFAULTS } from '../../src/pg/pg.ts';
import { LocalReserver } from '../../src/pg/recovery.ts';
import { EVERSION_ZERO, type ClientReply, type Outbox, type PgInput, type PgMapping } from '../../src/pg/types.ts';

function soloPrimary(): { step: (i: PgInput) => Outbox; pg: PgCore } {
  const mapping = (epoch: number): PgMapping => ({ epoch, up: [0], upPrimary: 0, acting: [0], actingPrimary: 0, size: 1, minSize: 1, isUp: (o) => o === 0 });
  const pg = new PgCore({ pgid: '1.0', whoami: 0, config: PG_CONFIG_DEFAULTS, history: { mappingAt: (_p, e) => (e >= 1 && e <= 1 ? mapping(e) : undefined) }, reserver: new LocalReserver(1) });
  // Commits every transaction at once (a store that is always durable).
  const step = (input: PgInput): Outbox => {
    const out = pg.step(input);
    const merged: Outbox = { ...out, replies: [...out.replies], transactions: [...out.transactions] };
    for (const t of out.transactions) {
      const more = step({ kind: 'committed', txnId: t.txnId });
      merged.replies.push(...more.replies);
    }
    return merged;
  };
  step({ kind: 'map', epoch: 1 });
  expect(pg.stateString).toMatch(/^active/);
  return { step, pg };
}

const reply = (out: Outbox): ClientReply => {
  expect(out.replies).toHaveLength(1);
  return out.replies[0]!;
};

describe('PG core probe', () => {
  it('answers the log version (zero when absent) without reading the store, and a dup of an applied write from the log', () => {
    const { step } = soloPrimary();
    const absent = step({ kind: 'clientOp', op: { reqid: { client: 'osd.0.exec', tid: 1 }, object: 'o', body: { kind: 'probe' } } });
    expect(absent.reads).toEqual([]);
    expect(reply(absent)).toMatchObject({ ok: true, version: EVERSION_ZERO });

    const w = reply(step({ kind: 'clientOp', op: { reqid: { client: 'client.a', tid: 7 }, object: 'o', body: { kind: 'txn', meta: new Uint8Array(1), data: new Uint8Array(0), sizeBytes: 3, priorVersion: EVERSION_ZERO } } }));
    expect(w.ok).toBe(true);
    const v = (w as Extract<ClientReply, { ok: true }>).version;

    expect(reply(step({ kind: 'clientOp', op: { reqid: { client: 'osd.0.exec', tid: 2 }, object: 'o', body: { kind: 'probe' } } }))).toMatchObject({ ok: true, version: v });
    expect(reply(step({ kind: 'clientOp', op: { reqid: { client: 'osd.0.exec', tid: 3 }, object: 'o', body: { kind: 'probe', dupOf: { client: 'client.a', tid: 7 } } } })))
      .toMatchObject({ ok: true, version: v, dup: true });
    expect(reply(step({ kind: 'clientOp', op: { reqid: { client: 'osd.0.exec', tid: 4 }, object: 'o', body: { kind: 'probe', dupOf: { client: 'client.a', tid: 8 } } } })))
      .not.toHaveProperty('dup');
  });

  it('refuses a transaction planned against another version of the object (EAGAIN), applying nothing', () => {
    const { step, pg } = soloPrimary();
    const out = step({ kind: 'clientOp', op: { reqid: { client: 'client.a', tid: 1 }, object: 'o', body: { kind: 'txn', meta: new Uint8Array(1), data: new Uint8Array(0), sizeBytes: 1, priorVersion: { epoch: 1, version: 5 } } } });
    expect(reply(out)).toMatchObject({ ok: false, code: 'EAGAIN' });
    expect(out.transactions).toEqual([]);
    expect(pg.objects.has('o')).toBe(false);
  });

  it('waits while a write to the object is in flight', () => {
    const { pg } = soloPrimary();
    const w = pg.step({ kind: 'clientOp', op: { reqid: { client: 'client.a', tid: 1 }, object: 'o', body: { kind: 'txn', meta: new Uint8Array(1), data: new Uint8Array(0), sizeBytes: 1, priorVersion: EVERSION_ZERO } } });
    expect(w.transactions).toHaveLength(1);
    const p = pg.step({ kind: 'clientOp', op: { reqid: { client: 'osd.0.exec', tid: 1 }, object: 'o', body: { kind: 'probe' } } });
    expect(p.replies).toEqual([]);
    const done = pg.step({ kind: 'committed', txnId: w.transactions[0]!.txnId });
    expect(done.replies.map((r) => r.reqid.client).sort()).toEqual(['client.a', 'osd.0.exec']);
  });
});
