/**
 * The OSD's client-op edge without sockets (CONVENTIONS item 14): OsdService against a fake
 * PG host that behaves as the core does for whole-object ops (reads of the current blob,
 * writeFull/delete ordered under a reqid, resends answered from its "log").
 */
import { describe, expect, it } from 'vitest';
import { Encoder, buildCrushMap } from '@aspen/shared';
import { MSG_OSD_OP, MSG_PG_LS } from '@aspen/shared/client/messages.ts';
import { decodeOsdReply, encodeOsdRequest, SNAP_HEAD, type OsdOp, type OsdReply } from '@aspen/shared/client/ops.ts';
import { newOsdInfo } from '@aspen/shared/osdmap/incremental.ts';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { WEIGHT_IN, type OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { MsgrMessage } from '@aspen/shared/io/msgr-server.ts';
import type { OsdMapTracker } from '@aspen/shared/io/osdmap-tracker.ts';
import { pino } from 'pino';
import { OsdService } from '../../src/io/osd-service.ts';
import type { OsdPgs } from '../../src/io/osd-pgs.ts';
import type { ClientOp, ClientReply } from '../../src/pg/types.ts';
import { emptyObjectState, encodeObjectState } from '../../src/pg/object-state.ts';

function testMap(): OsdMap {
  const crush = buildCrushMap(3, [{ name: 'host', alg: 'straw2', size: 1 }, { name: 'root', alg: 'straw2', size: 0 }]);
  const osds = new Map();
  for (let i = 0; i < 3; i++) osds.set(i, { ...newOsdInfo(i, `uuid-${i}`), up: true, upFrom: 1, weight: WEIGHT_IN, addr: `127.0.0.1:${7000 + i}`, host: `h${i}` });
  const pool = {
    id: 1, name: 'p', type: 'replicated' as const, size: 3, minSize: 2, pgNum: 1, pgpNum: 1, crushRule: 0, erasureCodeProfile: '',
    applications: [], hashPsPool: true, createdEpoch: 1, lastChangeEpoch: 1, snapSeq: 0, removedSnaps: [],
  };
  return { fsid: 'f', epoch: 5, createdMs: 0, modifiedMs: 0, maxOsd: 3, osds, pools: new Map([[1, pool]]), poolMax: 1, ecProfiles: new Map(), crush, pgTemp: new Map(), flags: new Set() };
}

/** The core's behaviour for whole-object ops, in memory. */
class FakePgs {
  readonly objects = new Map<string, Uint8Array>();
  readonly log = new Map<string, number>();
  applies = 0;
  private version = 0;
  currentEpoch = 5;
  clientOp(_pgid: string, op: ClientOp): Promise<ClientReply> {
    const key = `${op.reqid.client}/${op.reqid.tid}`;
    const b = op.body;
    if (b.kind === 'read') {
      const data = this.objects.get(op.object);
      return Promise.resolve(data === undefined ? { reqid: op.reqid, ok: false, code: 'ENOENT', message: 'no object' } : { reqid: op.reqid, ok: true, version: { epoch: 5, version: this.version }, data });
    }
    const logged = this.log.get(key);
    if (logged !== undefined) return Promise.resolve({ reqid: op.reqid, ok: true, version: { epoch: 5, version: logged } });
    this.applies++;
    this.version++;
    this.log.set(key, this.version);
    if (b.kind === 'writeFull') this.objects.set(op.object, b.data);
    else if (b.kind === 'delete') this.objects.delete(op.object);
    return Promise.resolve({ reqid: op.reqid, ok: true, version: { epoch: 5, version: this.version } });
  }
  pgStore(): undefined {
    return undefined;
  }
}

function setup(whoamiIsPrimary = true, full = false): { svc: OsdService; pgs: FakePgs; primary: number } {
  const map = testMap();
  const primary = mapPg(map, '1.0').actingPrimary;
  const pgs = new FakePgs();
  const tracker = { current: map, waitForEpoch: () => new Promise(() => undefined) } as unknown as OsdMapTracker;
  const whoami = whoamiIsPrimary ? primary : (primary + 1) % 3;
  const svc = new OsdService(whoami, pgs as unknown as OsdPgs, tracker, pino({ level: 'silent' }), () => 1000, () => undefined, () => full);
  return { svc, pgs, primary };
}

let tid = 0n;
async function op(svc: OsdService, ops: OsdOp[], o: { tid?: bigint; epoch?: number; object?: string } = {}): Promise<OsdReply> {
  const enc = encodeOsdRequest({
    reqid: { client: 'client.t', tid: o.tid ?? ++tid }, epoch: o.epoch ?? 5, pool: 1, pgSeed: 0, object: o.object ?? 'obj', namespace: '',
    snapId: SNAP_HEAD, snapc: { seq: 0n, snaps: [] }, ops,
  });
  const msg: MsgrMessage = { type: MSG_OSD_OP, meta: enc.meta, data: enc.data, oneway: false, reqId: 1n, session: { entity: 'client.t', sessionId: 1n }, resent: false };
  const r = (await svc.handle(msg))!;
  return decodeOsdReply(r.meta ?? new Uint8Array(0), r.data ?? new Uint8Array(0));
}

const te = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('OsdService client ops', () => {
  it('executes compound ops as read-modify-write of the whole object and answers reads from it', async () => {
    const { svc, pgs } = setup();
    expect((await op(svc, [{ op: 'create', exclusive: true }, { op: 'writefull', data: te('hello') }, { op: 'setxattr', name: 'a', value: te('1') }])).code).toBe(0);
    expect((await op(svc, [{ op: 'append', data: te('!') }, { op: 'omap_set', entries: [['k', te('v')]] }])).version).toBe(2n);
    const r = await op(svc, [{ op: 'read', offset: 0, length: 0 }, { op: 'getxattrs' }, { op: 'omap_get_vals', startAfter: '', prefix: '', max: 10 }]);
    expect(r.code).toBe(0);
    expect(r.epoch).toBe(5);
    expect(r.results).toEqual([
      { code: 0, kind: 'data', data: te('hello!') },
      { code: 0, kind: 'xattrs', entries: [['a', te('1')]] },
      { code: 0, kind: 'omap', entries: [['k', te('v')]], more: false },
    ]);
    expect((await op(svc, [{ op: 'assert_version', version: 1n }, { op: 'writefull', data: te('x') }])).code).toBe('ECANCELED');
    expect(pgs.applies).toBe(2);
    expect((await op(svc, [{ op: 'remove' }])).code).toBe(0);
    expect(pgs.objects.size).toBe(0);
    expect((await op(svc, [{ op: 'read', offset: 0, length: 0 }])).code).toBe('ENOENT');
  });

  it('answers a resent mutation with its first reply (no EEXIST from its own create, no second apply)', async () => {
    const { svc, pgs } = setup();
    const first = await op(svc, [{ op: 'create', exclusive: true }, { op: 'writefull', data: te('once') }], { tid: 1000n });
    const again = await op(svc, [{ op: 'create', exclusive: true }, { op: 'writefull', data: te('once') }], { tid: 1000n });
    expect(first.code).toBe(0);
    expect(again).toEqual(first);
    expect(pgs.applies).toBe(1);
  });

  it('refuses object names the store cannot hold (empty, NUL) with EINVAL instead of handing them to the core', async () => {
    const { svc, pgs } = setup();
    expect((await op(svc, [{ op: 'writefull', data: te('x') }], { object: '' })).code).toBe('EINVAL');
    expect((await op(svc, [{ op: 'writefull', data: te('x') }], { object: 'a\u0000b' })).code).toBe('EINVAL');
    expect(pgs.applies).toBe(0);
  });

  it('refuses writes with ENOSPC while the store is full, and still deletes and reads', async () => {
    const { svc, pgs } = setup(true, true);
    pgs.objects.set('obj', encodeObjectState({ ...emptyObjectState(), data: te('old'), version: 1n }));
    expect((await op(svc, [{ op: 'writefull', data: te('x') }])).code).toBe('ENOSPC');
    expect((await op(svc, [{ op: 'read', offset: 0, length: 0 }])).results).toEqual([{ code: 0, kind: 'data', data: te('old') }]);
    expect((await op(svc, [{ op: 'remove' }])).code).toBe(0);
    expect(pgs.objects.size).toBe(0);
  });

  it('answers ESTALE with its epoch when it is not the acting primary, and for a PGLS of a PG it does not hold', async () => {
    const { svc } = setup(false);
    const r = await op(svc, [{ op: 'writefull', data: te('x') }]);
    expect(r.code).toBe('ESTALE');
    expect(r.epoch).toBe(5);
    const meta = new Encoder(64).struct(1, 1, (e) => e.u32(5).u32(1).u32(0).string('').u32(10)).finish();
    const msg: MsgrMessage = { type: MSG_PG_LS, meta, data: new Uint8Array(0), oneway: false, reqId: 2n, session: { entity: 'client.t', sessionId: 1n }, resent: false };
    await expect(svc.handle(msg)).rejects.toMatchObject({ code: 'ESTALE' });
  });
});
