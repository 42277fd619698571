/**
 * The OSD's client-op edge without sockets (CONVENTIONS item 14): OsdService against a fake
 * PG host that behaves as the core does for the service's protocol (probe, planned
 * transactions checked against the object's version, resends answered from its "log"),
 * over a real object store.
 */
import { afterEach, describe, expect, it } from 'vitest';
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
import { PgStore } from '../../src/io/osd-store.ts';
import type { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { EVERSION_ZERO, evCmp, type ClientOp, type ClientReply, type Eversion } from '../../src/pg/types.ts';
import { memoryBase, newStore, tempDir } from '../store/helpers.ts';

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

/**
 * The core's behaviour for the service's protocol, over a real PgStore: `probe` answers the
 * object's log version, `txn`/`delete` bodies are checked against it (EAGAIN), ordered under
 * their reqid (a resend is answered from the "log") and committed to the store.
 */
class FakePgs {
  readonly versions = new Map<string, Eversion>();
  readonly log = new Map<string, number>();
  applies = 0;
  /** Bodies to fail once with EAGAIN (as if the object changed between plan and apply). */
  raceOnce = 0;
  private version = 0;
  currentEpoch = 5;
  constructor(readonly ps: PgStore) {}
  async clientOp(_pgid: string, op: ClientOp): Promise<ClientReply> {
    const key = `${op.reqid.client}/${op.reqid.tid}`;
    const b = op.body;
    if (b.kind === 'probe') return { reqid: op.reqid, ok: true, version: this.versions.get(op.object) ?? EVERSION_ZERO };
    if (b.kind === 'read' || b.kind === 'write' || b.kind === 'writeFull') throw new Error(`the service sends no ${b.kind} bodies`);
    const logged = this.log.get(key);
    if (logged !== undefined) return { reqid: op.reqid, ok: true, version: { epoch: 5, version: logged } };
    const cur = this.versions.get(op.object) ?? EVERSION_ZERO;
    if (this.raceOnce > 0 || (b.priorVersion !== undefined && evCmp(b.priorVersion, cur) !== 0)) {
      if (this.raceOnce > 0) this.raceOnce--;
      return { reqid: op.reqid, ok: false, code: 'EAGAIN', message: 'object changed' };
    }
    this.applies++;
    const version = { epoch: 5, version: ++this.version };
    this.log.set(key, version.version);
    if (b.kind === 'txn') {
      this.versions.set(op.object, version);
      await this.ps.commit([{ kind: 'txn', object: op.object, meta: b.meta, data: b.data, sizeBytes: b.sizeBytes, version }]);
    } else {
      this.versions.delete(op.object);
      await this.ps.commit([{ kind: 'remove', object: op.object, version }]);
    }
    return { reqid: op.reqid, ok: true, version };
  }
  pgStore(): PgStore {
    return this.ps;
  }
  objectError(): void {
    throw new Error('no read errors expected');
  }
}

let store: SqliteObjectStore | null = null;
let cleanup: (() => void) | null = null;
afterEach(async () => {
  await store?.umount();
  cleanup?.();
  store = null;
  cleanup = null;
});

async function setup(whoamiIsPrimary = true): Promise<{ svc: OsdService; pgs: FakePgs; primary: number; full: { value: boolean }; map: OsdMap }> {
  const t = tempDir('aspen-osd-service-', memoryBase);
  cleanup = t.cleanup;
  store = await newStore(t.dir);
  const map = testMap();
  const primary = mapPg(map, '1.0').actingPrimary;
  const pgs = new FakePgs(new PgStore(store, '1.0'));
  const tracker = { current: map, waitForEpoch: () => new Promise(() => undefined) } as unknown as OsdMapTracker;
  const whoami = whoamiIsPrimary ? primary : (primary + 1) % 3;
  const full = { value: false };
  const svc = new OsdService(whoami, pgs as unknown as OsdPgs, tracker, pino({ level: 'silent' }), () => 1000, () => undefined, () => full.value);
  return { svc, pgs, primary, full, map };
}

let tid = 0n;
async function op(svc: OsdService, ops: OsdOp[], o: { tid?: bigint; epoch?: number; object?: string } = {}): Promise<OsdReply> {
  const enc = encodeOsdRequest({
    reqid: { client: 'client.t', tid: o.tid ?? ++tid }, epoch: o.epoch ?? 5, pool: 1, pgSeed: 0, object: o.object ?? 'obj', namespace: '',
    snapId: SNAP_HEAD, snapc: { seq: 0n, snaps: [] }, ops,
  });
  const msg: MsgrMessage = { type: MSG_OSD_OP, meta: enc.meta, data: enc.data, oneway: false, reqId: 1n, session: { entity: 'client.t', sessionId: 1n }, resent: false };
  const r = (await svc.handle(msg))!;
  // Plain Uint8Arrays (the store hands out Buffers), so results compare with toEqual.
  return decodeOsdReply(new Uint8Array(r.meta ?? []), new Uint8Array(r.data ?? []));
}

const te = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('OsdService client ops', () => {
  it('executes compound ops as one planned transaction and answers reads from the store', async () => {
    const { svc, pgs } = await setup();
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
    expect(pgs.versions.size).toBe(0);
    expect((await op(svc, [{ op: 'read', offset: 0, length: 0 }])).code).toBe('ENOENT');
  });

  it('re-plans a mutation when the object changed between plan and apply (EAGAIN), applying it once', async () => {
    const { svc, pgs } = await setup();
    expect((await op(svc, [{ op: 'writefull', data: te('abc') }])).code).toBe(0);
    pgs.raceOnce = 2;
    const r = await op(svc, [{ op: 'append', data: te('d') }]);
    expect(r.code).toBe(0);
    expect(pgs.applies).toBe(2);
    expect((await op(svc, [{ op: 'read', offset: 0, length: 0 }])).results).toEqual([{ code: 0, kind: 'data', data: te('abcd') }]);
  });

  it('answers a resent mutation with its first reply (no EEXIST from its own create, no second apply)', async () => {
    const { svc, pgs } = await setup();
    const first = await op(svc, [{ op: 'create', exclusive: true }, { op: 'writefull', data: te('once') }], { tid: 1000n });
    const again = await op(svc, [{ op: 'create', exclusive: true }, { op: 'writefull', data: te('once') }], { tid: 1000n });
    expect(first.code).toBe(0);
    expect(again).toEqual(first);
    expect(pgs.applies).toBe(1);
  });

  it('refuses object names the store cannot hold (empty, NUL) with EINVAL instead of handing them to the core', async () => {
    const { svc, pgs } = await setup();
    expect((await op(svc, [{ op: 'writefull', data: te('x') }], { object: '' })).code).toBe('EINVAL');
    expect((await op(svc, [{ op: 'writefull', data: te('x') }], { object: 'a\u0000b' })).code).toBe('EINVAL');
    expect(pgs.applies).toBe(0);
  });

  it('refuses writes with ENOSPC while the store is full, and still deletes and reads', async () => {
    const { svc, pgs, full } = await setup();
    expect((await op(svc, [{ op: 'writefull', data: te('old') }])).code).toBe(0);
    full.value = true;
    expect((await op(svc, [{ op: 'writefull', data: te('x') }])).code).toBe('ENOSPC');
    expect((await op(svc, [{ op: 'read', offset: 0, length: 0 }])).results).toEqual([{ code: 0, kind: 'data', data: te('old') }]);
    expect((await op(svc, [{ op: 'remove' }])).code).toBe(0);
    expect(pgs.versions.size).toBe(0);
  });

  it('refuses writes with ENOSPC while an acting replica is marked full in the OSDMap', async () => {
    const { svc, map, primary } = await setup();
    expect((await op(svc, [{ op: 'writefull', data: te('old') }])).code).toBe(0);
    const replica = mapPg(map, '1.0').acting.find((o) => o !== primary)!;
    map.osds.get(replica)!.full = true;
    const r = await op(svc, [{ op: 'writefull', data: te('x') }]);
    expect(r.code).toBe('ENOSPC');
    expect((await op(svc, [{ op: 'read', offset: 0, length: 0 }])).results).toEqual([{ code: 0, kind: 'data', data: te('old') }]);
    expect((await op(svc, [{ op: 'remove' }])).code).toBe(0);
  });

  it('answers ESTALE with its epoch when it is not the acting primary, and for a PGLS of a PG it does not hold', async () => {
    const { svc } = await setup(false);
    const r = await op(svc, [{ op: 'writefull', data: te('x') }]);
    expect(r.code).toBe('ESTALE');
    expect(r.epoch).toBe(5);
    const meta = new Encoder(64).struct(1, 1, (e) => e.u32(5).u32(1).u32(0).string('').u32(10)).finish();
    const msg: MsgrMessage = { type: MSG_PG_LS, meta, data: new Uint8Array(0), oneway: false, reqId: 2n, session: { entity: 'client.t', sessionId: 1n }, resent: false };
    await expect(svc.handle(msg)).rejects.toMatchObject({ code: 'ESTALE' });
  });
});
