/**
 * OSD ↔ OSD heartbeats (Ceph OSD::heartbeat, osd_heartbeat_interval / osd_heartbeat_grace):
 * every {@link HEARTBEAT_INTERVAL_MS} this OSD pings each up OSD it shares a PG with over a
 * messenger of its own (separate connections, as Ceph's hb_back/hb_front messengers: a ping
 * never waits behind bulk recovery or client data); a peer that has not answered for the
 * grace ({@link HEARTBEAT_GRACE_MS} by default) is reported to the
 * monitors with `osd failure` (renewed every {@link FAILURE_REPORT_RENEW_MS} while it stays
 * silent), and the report is cancelled if it answers again. The monitors mark it down once
 * enough distinct reporters agree (mon_osd_min_down_reporters).
 */
import { AspenError } from '@aspen/shared';
import type { OsdMap } from '@aspen/shared/osdmap/types.ts';
import type { Messenger } from '@aspen/shared/io/msgr-client.ts';
import type { MonClient } from '@aspen/shared/io/monclient.ts';
import type { Logger } from 'pino';
import { MSG_OSD_PING } from './osd-pgs.ts';

/** Ping period, ms (Ceph osd_heartbeat_interval is 6 s; ours is shorter for fast tests). */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/**
 * Default silence after which a peer is reported failed, ms (Ceph osd_heartbeat_grace: 20 s;
 * a busy OSD on shared cores can miss pings for several seconds without being dead).
 */
export const HEARTBEAT_GRACE_MS = 20_000;
/** A standing failure report is sent again this often, ms. */
export const FAILURE_REPORT_RENEW_MS = 5_000;
/** Deadline of one ping, ms. */
const PING_TIMEOUT_MS = 1_000;

interface Peer {
  addr: string;
  lastReplyMs: number;
  reportedAtMs: number | null;
  inflight: boolean;
}

/** Heartbeats to this OSD's PG peers. `tick()` every {@link HEARTBEAT_INTERVAL_MS}. */
export class OsdHeartbeat {
  private readonly peers = new Map<number, Peer>();

  constructor(
    private readonly whoami: number,
    private readonly msgr: Messenger,
    private readonly mon: MonClient,
    private readonly log: Logger,
    private readonly clock: () => number,
    /** Silence after which a peer is reported failed, ms. */
    private readonly graceMs: number = HEARTBEAT_GRACE_MS,
  ) {}

  /** Updates the peer set from the current map: `wanted` (PG peers) that are up, with their addresses. */
  update(map: OsdMap, wanted: ReadonlySet<number>): void {
    const now = this.clock();
    for (const [id, p] of [...this.peers]) {
      const info = map.osds.get(id);
      if (!wanted.has(id) || info === undefined || !info.up || info.addr !== p.addr) {
        this.peers.delete(id);
        if (info === undefined || info.addr !== p.addr || !info.up) this.msgr.forget(p.addr);
      }
    }
    for (const id of wanted) {
      const info = map.osds.get(id);
      if (this.peers.has(id) || info === undefined || !info.up || info.addr === '') continue;
      this.peers.set(id, { addr: info.addr, lastReplyMs: now, reportedAtMs: null, inflight: false });
    }
  }

  /** Sends pings and failure reports. */
  tick(): void {
    const now = this.clock();
    for (const [id, p] of this.peers) {
      if (!p.inflight) this.ping(id, p);
      const silentMs = now - p.lastReplyMs;
      if (silentMs >= this.graceMs && (p.reportedAtMs === null || now - p.reportedAtMs >= FAILURE_REPORT_RENEW_MS)) {
        p.reportedAtMs = now;
        this.log.warn({ target: id, silentMs }, 'heartbeat: peer silent, reporting failure');
        this.mon.command({ prefix: 'osd failure', id: this.whoami, target: id }).catch((err: unknown) => {
          this.log.warn({ target: id, err: String(err) }, 'failure report not delivered');
        });
      }
    }
  }

  private ping(id: number, p: Peer): void {
    p.inflight = true;
    const meta = new Uint8Array(4);
    new DataView(meta.buffer).setUint32(0, this.whoami, true);
    this.msgr.request(p.addr, MSG_OSD_PING, meta, undefined, { timeoutMs: PING_TIMEOUT_MS }).then(
      () => {
        p.inflight = false;
        p.lastReplyMs = this.clock();
        if (p.reportedAtMs !== null) {
          p.reportedAtMs = null;
          this.log.info({ target: id }, 'heartbeat: peer answers again, cancelling failure report');
          this.mon.command({ prefix: 'osd failure', id: this.whoami, target: id, cancel: true }).catch(() => undefined);
        }
      },
      (err: unknown) => {
        p.inflight = false;
        // A dead connection stays dead: start a fresh one for the next ping.
        if (err instanceof AspenError && err.code === 'ECONNREFUSED' && this.peers.get(id) === p) this.msgr.forget(p.addr);
      },
    );
  }
}
