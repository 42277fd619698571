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
