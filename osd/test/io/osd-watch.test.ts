/**
 * WatchService without sockets (CONVENTIONS item 14): fake messenger connections, a fake
 * clock and a fixed OSDMap — registration rules (ESTALE, ENOENT, EINVAL), notify fan-out with
 * acks and timeouts, re-sending a notification on the session's new connection, expiry with
 * its tombstone (reconnect → ENOTCONN), and dropping watches when the PG moves away.
 */
import { describe, expect, it } from 'vitest';
import { buildCrushMap } from '@aspen/shared';
import { MSG_NOTIFY, MSG_NOTIFY_ACK, MSG_OSD_OP, MSG_WATCH } from '@aspen/shared/client/messages.ts';
import {
  decodeNotifyEvent, decodeNotifyReply, decodeWatchReply, encodeNotifyAck, encodeNotifyRequest, encodeWatchRequest,
  type NotifyEvent, type NotifyReply, type WatchOp, type WatchReply,
} from '@aspen/shared/client/watch-codec.ts';
import { newOsdInfo } from '@aspen/shared/osdmap/incremental.ts';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { WEIGHT_IN, type OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { MsgrMessage, MsgrReply, ServerConnection } from '@aspen/shared/io/msgr-server.ts';
import { pino } from 'pino';
import { WatchService } from '../../src/io/osd-watch.ts';

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

class FakeConn {
  isClosed = false;
  readonly events: NotifyEvent[] = [];
  send(_type: number, meta: Uint8Array, data: Uint8Array): void {
    if (!this.isClosed) this.events.push(decodeNotifyEvent(meta, data));
  }
  get conn(): ServerConnection {
    return this as unknown as ServerConnection;
  }
}

function setup(o: { exists?: boolean } = {}) {
  let map = testMap();
  const whoami = mapPg(map, '1.0').actingPrimary;
  let nowMs = 1_000;
  const svc = new WatchService({
    whoami, log: pino({ level: 'silent' }), clock: () => nowMs, watchTimeoutMs: 30_000, notifyTimeoutMs: 60,
    tracker: { get current() { return map; }, waitForEpoch: () => Promise.resolve(map) },
    objectExists: () => Promise.resolve(o.exists === false ? 'ENOENT' : 0),
  });
  const msg = (type: number, enc: { meta: Uint8Array; data: Uint8Array }, session = { entity: 'client.a', sessionId: 1n }): MsgrMessage =>
    ({ type, meta: enc.meta, data: enc.data, oneway: type === MSG_NOTIFY_ACK, reqId: 1n, session, resent: false });
  const watch = async (conn: FakeConn, op: WatchOp, cookie = 7n, extra: { epoch?: number; clientId?: string; sessionId?: bigint } = {}): Promise<WatchReply> => {
    const r = await svc.handle(conn.conn, msg(MSG_WATCH, encodeWatchRequest({
      epoch: extra.epoch ?? map.epoch, pool: 1, pgSeed: 0, namespace: '', object: 'hdr', clientId: extra.clientId ?? 'client.a.1', cookie, op, timeoutMs: 0,
    }), { entity: 'client.a', sessionId: extra.sessionId ?? 1n })) as MsgrReply;
    return decodeWatchReply(r.meta!);
  };
  const notify = async (conn: FakeConn, timeoutMs = 0): Promise<NotifyReply> => {
    const r = await svc.handle(conn.conn, msg(MSG_NOTIFY, encodeNotifyRequest({
      epoch: map.epoch, pool: 1, pgSeed: 0, namespace: '', object: 'hdr', clientId: 'client.b.2', payload: new Uint8Array([1, 2]), timeoutMs,
    }), { entity: 'client.b', sessionId: 2n })) as MsgrReply;
    return decodeNotifyReply(r.meta!, r.data);
  };
  const ack = (conn: FakeConn, ev: NotifyEvent, reply: string, sessionId = 1n): void => {
    void svc.handle(conn.conn, msg(MSG_NOTIFY_ACK, encodeNotifyAck({ notifyId: ev.notifyId, cookie: ev.cookie, reply: new TextEncoder().encode(reply) }), { entity: 'client.a', sessionId }));
  };
  return {
    svc, whoami, watch, notify, ack, msg,
    advance: (ms: number) => { nowMs += ms; },
    setMap: (m: OsdMap) => { map = m; svc.onMap(m); },
    get map() { return map; },
  };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('WatchService', () => {
  it('registers a watch and fans a notify out to it; the ack with its reply completes the notify', async () => {
    const t = setup();
    const wc = new FakeConn();
    expect(await t.watch(wc, 'watch')).toMatchObject({ code: 0, timeoutMs: 30_000, epoch: 5 });
    const pending = t.notify(new FakeConn(), 5_000);
    await flush();
    expect(wc.events).toHaveLength(1);
    expect(wc.events[0]).toMatchObject({ cookie: 7n, notifierId: 'client.b.2' });
    t.ack(wc, wc.events[0]!, 'pong');
    const r = await pending;
    expect(r.code).toBe(0);
    expect(r.acks.map((a) => [a.watcherId, a.cookie, new TextDecoder().decode(a.reply)])).toEqual([['client.a.1', 7n, 'pong']]);
    expect(r.timeouts).toEqual([]);
  });

  it('reports a watcher that does not ack in timeouts, and answers at once when nobody watches', async () => {
    const t = setup();
    expect(await t.notify(new FakeConn())).toMatchObject({ code: 0, acks: [], timeouts: [] });
    await t.watch(new FakeConn(), 'watch', 9n);
    const r = await t.notify(new FakeConn(), 50);
    expect(r.acks).toEqual([]);
    expect(r.timeouts).toEqual([{ watcherId: 'client.a.1', cookie: 9n }]);
  });

  it('refuses as Ceph does: ESTALE off the primary (with the OSD epoch), ENOENT for a missing object, EINVAL for a client id of another entity or malformed bytes', async () => {
    const t = setup();
    const other = testMap();
    other.osds.set(t.whoami, { ...other.osds.get(t.whoami)!, up: false });
    other.epoch = 6;
    t.setMap(other);
    expect(mapPg(other, '1.0').actingPrimary).not.toBe(t.whoami);
    expect(await t.watch(new FakeConn(), 'watch', 1n, { epoch: 5 })).toMatchObject({ code: 'ESTALE', epoch: 6 });
    expect(await setup({ exists: false }).watch(new FakeConn(), 'watch')).toMatchObject({ code: 'ENOENT' });
    expect(await setup().watch(new FakeConn(), 'watch', 1n, { clientId: 'client.zz.1' })).toMatchObject({ code: 'EINVAL' });
    const s = setup();
    await expect(Promise.resolve().then(() => s.svc.handle(new FakeConn().conn, s.msg(MSG_WATCH, { meta: new Uint8Array([1, 2, 3]), data: new Uint8Array(0) })))).rejects.toMatchObject({ code: 'EINVAL' });
    expect(() => s.svc.handle(new FakeConn().conn, s.msg(MSG_OSD_OP, { meta: new Uint8Array(0), data: new Uint8Array(0) }))).toThrow(/EINVAL/);
  });

  it('sends a notification again on the session\'s new connection when the old one closed before it was written', async () => {
    const t = setup();
    const old = new FakeConn();
    await t.watch(old, 'watch');
    old.isClosed = true;
    const pending = t.notify(new FakeConn(), 5_000);
    await flush();
    expect(old.events).toEqual([]);
    const fresh = new FakeConn();
    expect(await t.watch(fresh, 'ping')).toMatchObject({ code: 0 });
    expect(fresh.events).toHaveLength(1);
    t.ack(fresh, fresh.events[0]!, 'late but here');
    expect((await pending).acks).toHaveLength(1);
  });

  it('expires a watch not pinged within its timeout; its reconnect then fails with ENOTCONN until it is watched anew', async () => {
    const t = setup();
    const c = new FakeConn();
    await t.watch(c, 'watch');
    t.advance(20_000);
    expect(await t.watch(c, 'ping')).toMatchObject({ code: 0 });
    t.advance(29_000);
    t.svc.tick();
    expect(t.svc.watchCount).toBe(1);
    t.advance(2_000);
    t.svc.tick();
    expect(t.svc.watchCount).toBe(0);
    expect(await t.watch(c, 'ping')).toMatchObject({ code: 'ENOTCONN' });
    expect(await t.watch(c, 'reconnect')).toMatchObject({ code: 'ENOTCONN' });
    expect(await t.watch(c, 'watch')).toMatchObject({ code: 0 });
    expect(t.svc.watchCount).toBe(1);
    expect(await t.watch(c, 'unwatch')).toMatchObject({ code: 0 });
    expect(t.svc.watchCount).toBe(0);
  });

  it('drops watches when the PG moves away, and takes a reconnect of a watch it never knew (the new primary)', async () => {
    const t = setup();
    await t.watch(new FakeConn(), 'watch');
    const pending = t.notify(new FakeConn(), 5_000);
    await flush();
    const moved = testMap();
    moved.osds.set(t.whoami, { ...moved.osds.get(t.whoami)!, up: false });
    moved.epoch = 6;
    t.setMap(moved);
    expect(t.svc.watchCount).toBe(0);
    expect(await pending).toMatchObject({ acks: [], timeouts: [] });
    const u = setup();
    expect(await u.watch(new FakeConn(), 'reconnect', 42n)).toMatchObject({ code: 0 });
    expect(u.svc.watchCount).toBe(1);
    u.svc.close();
    expect(u.svc.watchCount).toBe(0);
  });
});
