/**
 * Messenger message types of the data plane (the `type` field of a frame). Client ↔ OSD
 * types are below 0x100; OSD ↔ OSD types (replication, peering, recovery, scrub,
 * heartbeats) are 0x100 and above, defined by the OSD.
 */

/** A compound object request to a PG's primary (Ceph MOSDOp); the reply is an OsdReply. */
export const MSG_OSD_OP = 0x01;
/** List the objects of one PG (Ceph CEPH_OSD_OP_PGLS): meta = {pool, seed, cursor, max}. */
export const MSG_PG_LS = 0x02;
/** Admin commands to an OSD (`aspen tell osd.N …`, scrub requests): meta = JSON. */
export const MSG_OSD_COMMAND = 0x03;
/**
 * Watch an object (Ceph CEPH_OSD_OP_WATCH: watch / reconnect / unwatch / ping), to the
 * object's acting primary: meta = WatchRequest, reply = WatchReply (shared/src/client/watch-codec.ts).
 */
export const MSG_WATCH = 0x04;
/** Notify an object's watchers (Ceph CEPH_OSD_OP_NOTIFY): meta = NotifyRequest, reply = NotifyReply once every watcher acked or timed out. */
export const MSG_NOTIFY = 0x05;
/** One-way, OSD → watcher: a notification (Ceph MWatchNotify CEPH_WATCH_EVENT_NOTIFY): meta = NotifyEvent. */
export const MSG_WATCH_NOTIFY = 0x06;
/** One-way, watcher → OSD: the watcher's reply to a notification (Ceph CEPH_OSD_OP_NOTIFY_ACK): meta = NotifyAck. */
export const MSG_NOTIFY_ACK = 0x07;
