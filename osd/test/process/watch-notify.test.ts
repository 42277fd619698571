/**
 * Process-level test of watch/notify (librados rados_watch2 / rados_notify2 semantics):
 * 3 real monitors and 3 real OSDs on loopback, a replicated pool (size 3, min_size 2), two
 * object clients. One watches an object, the other notifies and gets the watcher's reply; a
 * watcher that does not ack in time is reported in `timeouts`; unwatch stops notifications;
 * a watch on a missing object is ENOENT; after the object's primary OSD is kill -9ed and
 * marked down, the watch is re-established on the new primary and a notify still reaches it.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MonCluster, ProcessHarness, REPO_ROOT, tsNodeArgs, waitFor } from '@aspen/test';
import { AspenError } from '@aspen/shared';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { mapObjectToPg, mapPg } from '@aspen/shared/osdmap/map-placement.ts';

const OSD_ENTRY = join(REPO_ROOT, 'osd', 'src', 'bin', 'aspen-osd.ts');
const OSDS = 3;
const PG_NUM = 8;
const POOL = 'rbd';

let harness: ProcessHarness | null = null;
let mons: MonCluster | null = null;
const clients: RadosClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  mons?.close();
  await harness?.teardown();
  mons = null;
  harness = null;
});

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

async function waitAllActive(c: RadosClient, timeoutMs: number): Promise<void> {
  const minEpoch = c.osdMap.epoch;
  let last: string[] = [];
  await waitFor(async () => {
    const r = await c.mon.command({ prefix: 'pg dump' });
    const rows = (r.data as { pg_stats: { pgid: string; state: string; reported_epoch: number }[] }).pg_stats;
    last = rows.map((p) => `${p.pgid}:${p.reported_epoch >= minEpoch ? p.state : 'stale'}`);
    return last.length === PG_NUM && last.every((s) => s.split(':')[1]!.startsWith('active'));
  }, { timeoutMs, what: 'every PG active', intervalMs: 300 }).catch((err: unknown) => {
    throw new Error(`${String(err)}; states: ${last.join(' ')}`);
  });
}

async function startCluster(): Promise<{ monAddrs: string[] }> {
  const h = (harness = new ProcessHarness());
  mons = await MonCluster.start(h, { count: 3 });
  await mons.leader();
  const monAddrs = [...mons.addrs.values()];
  await Promise.all(Array.from({ length: OSDS }, async (_, i) => {
    const p = h.spawn({ name: `mkfs.osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--mkfs', '--data', h.path(`osd.${i}`), '--mon', monAddrs.join(','), '--id', String(i)]) });
    const st = await p.exited;
    if (st.code !== 0) throw new Error(`mkfs of osd.${i} failed: ${h.log(`mkfs.osd.${i}`)}`);
  }));
  for (let i = 0; i < OSDS; i++) {
    h.spawn({ name: `osd.${i}`, args: tsNodeArgs(OSD_ENTRY, ['--data', h.path(`osd.${i}`), '--mon', monAddrs.join(','), '--host', `host${i}`]) });
  }
  return { monAddrs };
}

async function connect(monAddrs: string[]): Promise<RadosClient> {
  const c = await RadosClient.connect({ monAddrs, opTimeoutMs: 30_000 });
  clients.push(c);
  return c;
}

describe('watch/notify (3 mons + 3 OSDs on loopback)', () => {
  it('delivers notifications with replies, reports silent watchers, stops after unwatch, and survives kill -9 of the primary', async () => {
    const { monAddrs } = await startCluster();
    const h = harness!;
    const watcher = await connect(monAddrs);
    await waitFor(() => [...watcher.osdMap.osds.values()].filter((o) => o.up).length === OSDS, { timeoutMs: 30_000, what: '3 OSDs up' });
    await watcher.mon.command({ prefix: 'osd pool create', pool: POOL, pg_num: PG_NUM, size: 3, min_size: 2 });
    await waitFor(() => { try { watcher.pool(POOL); return true; } catch { return false; } }, { timeoutMs: 10_000, what: 'the pool in the map' });
    await waitAllActive(watcher, 30_000);
    const notifier = await connect(monAddrs);
    const wio = watcher.ioctx(POOL);
    const nio = notifier.ioctx(POOL);
    await wio.writeFull('header', text('v1'));

    // A watch on a missing object is refused, as Ceph's (ENOENT).
    await expect(wio.watch('no-such-object', () => new Uint8Array(0))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(nio.notify('no-such-object', text('x'))).rejects.toMatchObject({ code: 'ENOENT' });

    // One watcher: the notifier gets its ack with the reply bytes.
    const seen: string[] = [];
    const errors: AspenError[] = [];
    const handle = await wio.watch('header', (n) => {
      expect(n.notifierId).toBe(notifier.clientId);
      seen.push(str(n.payload));
      return text(`ack:${str(n.payload)}`);
    }, (err) => errors.push(err));
    const r1 = await nio.notify('header', text('hello'), 5_000);
    expect(r1.timeouts).toEqual([]);
    expect(r1.acks.map((a) => ({ watcherId: a.watcherId, cookie: a.cookie, reply: str(a.reply) }))).toEqual([{ watcherId: watcher.clientId, cookie: handle.cookie, reply: 'ack:hello' }]);
    expect(seen).toEqual(['hello']);

    // A second watcher (on the notifier's client) that answers too late: reported in timeouts.
    const silent = await nio.watch('header', async () => {
      await new Promise((r) => setTimeout(r, 2_500));
      return text('late');
    });
    const t0 = Date.now();
    const r2 = await nio.notify('header', text('second'), 1_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(r2.acks.map((a) => [a.watcherId, str(a.reply)])).toEqual([[watcher.clientId, 'ack:second']]);
    expect(r2.timeouts).toEqual([{ watcherId: notifier.clientId, cookie: silent.cookie }]);
    await silent.unwatch();

    // Unwatch: no more notifications, and nobody to ack.
    await handle.unwatch();
    const r3 = await nio.notify('header', text('nobody'), 2_000);
    expect(r3).toEqual({ acks: [], timeouts: [] });
    expect(seen).toEqual(['hello', 'second']);

    // Watch again, then kill -9 the object's primary and mark it down: the client
    // re-establishes the watch on the new primary, and a notify still reaches it.
    const again = await wio.watch('header', (n) => text(`again:${str(n.payload)}`), (err) => errors.push(err));
    const pgid = mapObjectToPg(watcher.pool(POOL), 'header');
    const oldPrimary = mapPg(watcher.osdMap, pgid).actingPrimary;
    await h.kill(`osd.${oldPrimary}`, 'SIGKILL');
    await watcher.mon.command({ prefix: 'osd down', ids: [oldPrimary] });
    await waitFor(() => watcher.osdMap.osds.get(oldPrimary)?.up === false && notifier.osdMap.osds.get(oldPrimary)?.up === false, { timeoutMs: 15_000, what: `osd.${oldPrimary} down in both clients' maps` });
    const newPrimary = mapPg(watcher.osdMap, pgid).actingPrimary;
    expect(newPrimary).not.toBe(oldPrimary);
    let r4 = await nio.notify('header', text('after failover'), 3_000);
    await waitFor(async () => {
      if (r4.acks.length === 1) return true;
      r4 = await nio.notify('header', text('after failover'), 3_000);
      return r4.acks.length === 1;
    }, { timeoutMs: 30_000, what: 'a notify acked by the re-established watch', intervalMs: 200 });
    expect(r4.acks.map((a) => [a.watcherId, a.cookie, str(a.reply)])).toEqual([[watcher.clientId, again.cookie, 'again:after failover']]);
    expect(r4.timeouts).toEqual([]);
    expect(errors).toEqual([]);
    await again.unwatch();
  }, 90_000);
});
