/**
 * Raft peer transport over gRPC (@grpc/grpc-js), with no .proto: the service is defined here
 * with custom (de)serializers and carries our binary codec (`../raft/codec.ts`).
 *
 * Service `aspen.raft.Raft` (see {@link RAFT_SERVICE_DEFINITION}):
 * - `Stream` (client streaming): one long-lived stream per ordered pair of peers; each write is
 *   one `encodeMessageBatch` frame holding every queued message up to `batchMaxBytes`
 *   (batching), so a busy leader sends many MsgApp per HTTP/2 frame. Order is preserved within
 *   a stream. The server answers only when the stream ends.
 * - `Snapshot` (unary): one MsgSnap per call, so the sender learns whether it arrived and
 *   reports it to the core as MsgSnapStatus (etcd rafthttp does the same with its snapshot
 *   sender). At most {@link RAFT_SNAPSHOTS_INFLIGHT_MAX} per peer.
 *
 * Every call carries metadata `aspen-fsid` (cluster id) and `aspen-from` (sender node id); a
 * server refuses calls of another cluster with FAILED_PRECONDITION ("E_WRONG_CLUSTER ...").
 * Authentication and TLS are not done yet (insecure credentials).
 *
 * Delivery is best effort, as Raft expects: a message can be lost when a stream breaks or a
 * queue overflows; Raft retransmits. What is NOT lost silently: every drop or failed
 * connection is reported through `onUnreachable(peer)` (the caller turns it into MsgUnreachable
 * so the leader probes that follower) and every snapshot outcome through `onSnapshotStatus`.
 *
 * Queue rule (etcd rafthttp's): each peer has a FIFO queue of at most `peerQueueMax` messages
 * waiting for the stream. When it is full the NEW message is dropped (the older ones are kept
 * and stay in order) and the peer is reported unreachable once per overflow episode.
 * Messages queued while the peer is disconnected are sent when the stream reconnects.
 *
 * Reconnects back off exponentially from `reconnectBackoffMinMs` to `reconnectBackoffMaxMs`
 * (with jitter), resetting once the server accepts a stream (it sends response headers at once).
 */
import * as grpc from '@grpc/grpc-js';
import { assert } from '@aspen/shared/assert.ts';
import { AspenError } from '@aspen/shared/errors.ts';
import { decodeMessage, decodeMessageBatch, encodeMessage, encodeMessageBatch, messageSizeBytes } from '../raft/codec.ts';
import type { Message, MessageType, NodeId } from '../raft/types.ts';

/** Metadata key carrying the cluster fsid on every Raft call. */
export const FSID_METADATA_KEY = 'aspen-fsid';
/** Metadata key carrying the sending node's id. */
export const FROM_METADATA_KEY = 'aspen-from';
/** Largest Raft gRPC message accepted or sent, bytes (snapshots travel as one message). */
export const RAFT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;
/** Snapshot sends in flight per peer; a MsgSnap beyond it is dropped and reported failed. */
export const RAFT_SNAPSHOTS_INFLIGHT_MAX = 1;

const SERVICE = 'aspen.raft.Raft';
const STREAM_PATH = `/${SERVICE}/Stream`;
const SNAPSHOT_PATH = `/${SERVICE}/Snapshot`;
const EMPTY = Buffer.alloc(0);

// Local-only message types must never reach the wire (types.ts).
const LOCAL_ONLY: ReadonlySet<MessageType> = new Set<MessageType>(['MsgHup', 'MsgBeat', 'MsgUnreachable', 'MsgSnapStatus']);

const identity = (b: Buffer): Buffer => b;
/** A plain Uint8Array view (no copy), so decoded byte fields are Uint8Array, not Buffer subclasses. */
const plainView = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const toBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * The service definition (grpc-js form, no .proto). Payloads stay raw bytes through gRPC and
 * are decoded by the handler, so a malformed frame is answered INVALID_ARGUMENT by us rather
 * than failing inside grpc-js.
 */
export const RAFT_SERVICE_DEFINITION: grpc.ServiceDefinition = {
  Stream: {
    path: STREAM_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: toBuffer,
    requestDeserialize: identity,
    responseSerialize: toBuffer,
    responseDeserialize: identity,
  },
  Snapshot: {
    path: SNAPSHOT_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: toBuffer,
    requestDeserialize: identity,
    responseSerialize: toBuffer,
    responseDeserialize: identity,
  },
};

/**
 * Options the daemon must give `new grpc.Server(...)` when it attaches the Raft service to its
 * own server: raise the receive limit for snapshots and large batches, and accept keepalive pings.
 */
export const RAFT_GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': RAFT_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': RAFT_MAX_MESSAGE_BYTES,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
};

const CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': RAFT_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': RAFT_MAX_MESSAGE_BYTES,
  // Detect a dead peer behind a half-open TCP connection.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Our own backoff drives reconnects; keep the channel's short so it follows.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
};

/** A pino-compatible subset used for transport diagnostics. */
export interface TransportLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

const silentLog: TransportLog = { warn: () => {}, info: () => {}, debug: () => {} };

/** What the receiving side of the Raft service needs. */
export interface RaftServiceHandler {
  /** Cluster fsid; calls carrying another one are refused (E_WRONG_CLUSTER). */
  readonly fsid: string;
  /** This node's id; messages addressed to another node are dropped. */
  readonly localId: NodeId;
  /** Receives every decoded message (from streams and snapshot calls), in arrival order per peer. */
  deliver(message: Message): void;
  readonly log?: TransportLog;
}

function checkFsid(metadata: grpc.Metadata, fsid: string): grpc.ServiceError | null {
  const got = metadata.get(FSID_METADATA_KEY)[0];
  if (got === fsid) return null;
  const err = new AspenError('E_WRONG_CLUSTER', `raft peer is in cluster ${String(got)}, this node is in ${fsid}`);
  return Object.assign(new Error(err.message), { code: grpc.status.FAILED_PRECONDITION, details: err.message, metadata: new grpc.Metadata() });
}

function deliverAll(handler: RaftServiceHandler, messages: readonly Message[], sender: string): void {
  for (const m of messages) {
    if (m.to !== handler.localId || m.from !== sender || LOCAL_ONLY.has(m.type)) {
      handler.log?.warn({ from: m.from, to: m.to, type: m.type, sender }, 'dropping misaddressed raft message');
      continue;
    }
    handler.deliver(m);
  }
}

/**
 * Registers the Raft service on `server` (which may also serve other services, e.g. the mon
 * client API, on the same port). Create the server with {@link RAFT_GRPC_SERVER_OPTIONS}.
 */
export function addRaftService(server: grpc.Server, handler: RaftServiceHandler): void {
  const log = handler.log ?? silentLog;
  const stream: grpc.handleClientStreamingCall<Buffer, Buffer> = (call, callback) => {
    const refused = checkFsid(call.metadata, handler.fsid);
    const sender = String(call.metadata.get(FROM_METADATA_KEY)[0] ?? '');
    if (refused !== null) {
      log.warn({ sender, peer: call.getPeer() }, refused.message);
      callback(refused);
      return;
    }
    // Headers now, so the client knows the stream is accepted (it resets its backoff).
    call.sendMetadata(new grpc.Metadata());
    let failed = false;
    call.on('data', (frame: Buffer) => {
      if (failed) return;
      let messages: Message[];
      try {
        messages = decodeMessageBatch(plainView(frame));
      } catch (err) {
        failed = true;
        log.warn({ sender, err: String(err) }, 'malformed raft frame; closing stream');
        callback({ code: grpc.status.INVALID_ARGUMENT, details: String(err) });
        return;
      }
      deliverAll(handler, messages, sender);
    });
    call.on('end', () => {
      if (!failed) callback(null, EMPTY);
    });
    call.on('error', (err: Error) => log.debug({ sender, err: String(err) }, 'raft stream from peer ended with an error'));
  };
  const snapshot: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    const refused = checkFsid(call.metadata, handler.fsid);
    const sender = String(call.metadata.get(FROM_METADATA_KEY)[0] ?? '');
    if (refused !== null) {
      log.warn({ sender }, refused.message);
      callback(refused);
      return;
    }
    let m: Message;
    try {
      m = decodeMessage(plainView(call.request));
    } catch (err) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: String(err) });
      return;
    }
    if (m.type !== 'MsgSnap') {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `expected MsgSnap, got ${m.type}` });
      return;
    }
    deliverAll(handler, [m], sender);
    callback(null, EMPTY);
  };
  server.addService(RAFT_SERVICE_DEFINITION, { Stream: stream, Snapshot: snapshot });
}

/** Options of {@link RaftTransport}. Limits are named per CONVENTIONS.md item 10. */
export interface RaftTransportOptions {
  /** This node's id (the `from` of every message it sends). */
  readonly id: NodeId;
  /** Cluster fsid sent with, and required on, every call. */
  readonly fsid: string;
  /** Messages waiting per peer before new ones are dropped; default 4096. */
  readonly peerQueueMax?: number;
  /** Bytes of messages per stream write (one frame); default 1 MiB (a bigger single message is sent alone). */
  readonly batchMaxBytes?: number;
  /** First reconnect delay after a failure, ms; default 50. */
  readonly reconnectBackoffMinMs?: number;
  /** Longest reconnect delay, ms; default 2000. */
  readonly reconnectBackoffMaxMs?: number;
  /** Deadline of one snapshot send, ms; default 60000. */
  readonly snapshotTimeoutMs?: number;
  readonly log?: TransportLog;
}

/** Per-peer counters, for metrics and tests. */
export interface PeerStats {
  readonly addr: string;
  readonly connected: boolean;
  /** Messages waiting in the queue. */
  readonly queued: number;
  /** Messages dropped because the queue was full or the peer was removed. */
  readonly dropped: number;
  /** Messages written to the stream (not necessarily received). */
  readonly sent: number;
  /** Frames (batches) written. */
  readonly batches: number;
}

interface Peer {
  readonly id: NodeId;
  readonly addr: string;
  readonly client: grpc.Client;
  queue: Message[];
  /** Index of the queue's head (the queue is compacted lazily to avoid O(n) shifts). */
  head: number;
  stream: grpc.ClientWritableStream<Uint8Array> | null;
  connected: boolean;
  /** Waiting for 'drain' on the stream. */
  blocked: boolean;
  reconnectTimer: NodeJS.Timeout | null;
  backoffMs: number;
  overflowReported: boolean;
  snapshotsInflight: number;
  dropped: number;
  sent: number;
  batches: number;
  closed: boolean;
}

/**
 * Sends Raft messages to peers and receives theirs. Not durable: nothing is on disk; a message
 * is "sent" when it is written into the peer's gRPC stream. Callbacks run on the event loop
 * (never inside `send`, so the core is never re-entered).
 */
export class RaftTransport {
  readonly id: NodeId;
  readonly fsid: string;
  private readonly peerQueueMax: number;
  private readonly batchMaxBytes: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly snapshotTimeoutMs: number;
  private readonly log: TransportLog;
  private readonly peers = new Map<NodeId, Peer>();
  private messageHandler: (m: Message) => void = () => {};
  private unreachableHandler: (peer: NodeId) => void = () => {};
  private snapshotStatusHandler: (peer: NodeId, ok: boolean) => void = () => {};
  private ownServer: grpc.Server | null = null;
  private closed = false;

  constructor(options: RaftTransportOptions) {
    this.id = options.id;
    this.fsid = options.fsid;
    this.peerQueueMax = options.peerQueueMax ?? 4096;
    this.batchMaxBytes = options.batchMaxBytes ?? 1024 * 1024;
    this.backoffMinMs = options.reconnectBackoffMinMs ?? 50;
    this.backoffMaxMs = options.reconnectBackoffMaxMs ?? 2_000;
    this.snapshotTimeoutMs = options.snapshotTimeoutMs ?? 60_000;
    this.log = options.log ?? silentLog;
    assert(this.id.length > 0 && this.fsid.length > 0, 'transport needs an id and an fsid');
    assert(this.peerQueueMax >= 1 && this.batchMaxBytes >= 1, 'transport limits must be positive');
    assert(this.backoffMinMs > 0 && this.backoffMaxMs >= this.backoffMinMs, 'reconnect backoff range');
  }

  /** Sets the receiver of incoming messages (to feed `RawNode.step`). */
  onMessage(handler: (m: Message) => void): void {
    this.messageHandler = handler;
  }

  /** Sets the receiver of "peer unreachable" reports (feed MsgUnreachable to the core). */
  onUnreachable(handler: (peer: NodeId) => void): void {
    this.unreachableHandler = handler;
  }

  /** Sets the receiver of snapshot outcomes (feed MsgSnapStatus: `ok=false` means reject/failure). */
  onSnapshotStatus(handler: (peer: NodeId, ok: boolean) => void): void {
    this.snapshotStatusHandler = handler;
  }

  /**
   * Registers the Raft service of this transport on an existing server (shared with other
   * services). The server must have been created with {@link RAFT_GRPC_SERVER_OPTIONS}.
   */
  attach(server: grpc.Server): void {
    addRaftService(server, { fsid: this.fsid, localId: this.id, deliver: (m) => this.messageHandler(m), log: this.log });
  }

  /**
   * Starts a server of its own on `addr` (`host:port`; port 0 picks a free one) serving only the
   * Raft service. Resolves with the bound port once listening.
   * @throws AspenError EINVAL when the address cannot be bound.
   */
  async start(addr: string): Promise<number> {
    assert(this.ownServer === null, 'transport already started');
    const server = new grpc.Server(RAFT_GRPC_SERVER_OPTIONS);
    this.attach(server);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err !== null) {
          server.forceShutdown();
          reject(new AspenError('EINVAL', `cannot listen on ${addr}: ${err.message}`));
        } else resolve(p);
      });
    });
    this.ownServer = server;
    return port;
  }

  /**
   * Sets the membership's addresses (`host:port` per node id, this node's own entry ignored).
   * Removed peers are disconnected and their queued messages dropped; a changed address
   * reconnects; new peers connect on first send.
   */
  setPeers(addrs: ReadonlyMap<NodeId, string>): void {
    assert(!this.closed, 'transport closed');
    for (const [id, peer] of this.peers) {
      if (addrs.get(id) !== peer.addr) this.removePeer(peer);
    }
    for (const [id, addr] of addrs) {
      if (id === this.id || this.peers.has(id)) continue;
      this.peers.set(id, {
        id,
        addr,
        client: new grpc.Client(addr, grpc.credentials.createInsecure(), CLIENT_OPTIONS),
        queue: [],
        head: 0,
        stream: null,
        connected: false,
        blocked: false,
        reconnectTimer: null,
        backoffMs: this.backoffMinMs,
        overflowReported: false,
        snapshotsInflight: 0,
        dropped: 0,
        sent: 0,
        batches: 0,
        closed: false,
      });
    }
  }

  /**
   * Queues `messages` for their peers and returns at once (never blocks, never throws for
   * network reasons). MsgSnap goes by its own call; an unknown peer is reported unreachable
   * (and a MsgSnap to it failed). Asserts (programmer errors) no local-only message, none
   * addressed to this node and every `from` is this node.
   */
  send(messages: readonly Message[]): void {
    assert(!this.closed, 'transport closed');
    const touched = new Set<Peer>();
    for (const m of messages) {
      assert(!LOCAL_ONLY.has(m.type), `local-only message ${m.type} given to the transport`);
      assert(m.to !== this.id, `message ${m.type} addressed to self`);
      assert(m.from === this.id, `message ${m.type} from ${m.from} sent by ${this.id}`);
      const peer = this.peers.get(m.to);
      if (peer === undefined) {
        this.log.debug({ to: m.to, type: m.type }, 'raft message to unknown peer');
        this.later(() => {
          if (m.type === 'MsgSnap') this.snapshotStatusHandler(m.to, false);
          this.unreachableHandler(m.to);
        });
        continue;
      }
      if (m.type === 'MsgSnap') {
        this.sendSnapshot(peer, m);
        continue;
      }
      if (peer.queue.length - peer.head >= this.peerQueueMax) {
        peer.dropped++;
        if (!peer.overflowReported) {
          peer.overflowReported = true;
          this.log.warn({ peer: peer.id, peerQueueMax: this.peerQueueMax }, 'raft peer queue full; dropping new messages');
          this.later(() => this.unreachableHandler(peer.id));
        }
        continue;
      }
      peer.queue.push(m);
      touched.add(peer);
    }
    for (const peer of touched) this.flush(peer);
  }

  /** Counters per peer. */
  stats(): Map<NodeId, PeerStats> {
    const out = new Map<NodeId, PeerStats>();
    for (const p of this.peers.values()) {
      out.set(p.id, { addr: p.addr, connected: p.connected, queued: p.queue.length - p.head, dropped: p.dropped, sent: p.sent, batches: p.batches });
    }
    return out;
  }

  /** Closes every stream and client, and the own server if {@link start}ed. Queued messages are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of [...this.peers.values()]) this.removePeer(peer);
    const server = this.ownServer;
    this.ownServer = null;
    // Peers' streams never end on their own, so a graceful tryShutdown would wait forever.
    if (server !== null) server.forceShutdown();
    await Promise.resolve();
  }

  // -------------------------------------------------------------------------------------------

  private later(fn: () => void): void {
    queueMicrotask(() => {
      if (!this.closed) fn();
    });
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(FSID_METADATA_KEY, this.fsid);
    md.set(FROM_METADATA_KEY, this.id);
    return md;
  }

  private removePeer(peer: Peer): void {
    peer.closed = true;
    peer.dropped += peer.queue.length - peer.head;
    peer.queue = [];
    peer.head = 0;
    if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
    const stream = peer.stream;
    peer.stream = null;
    if (stream !== null) stream.cancel();
    peer.client.close();
    this.peers.delete(peer.id);
  }

  private openStream(peer: Peer): void {
    assert(peer.stream === null && peer.reconnectTimer === null, 'one stream per peer');
    const stream = peer.client.makeClientStreamRequest<Uint8Array, Buffer>(STREAM_PATH, toBuffer, identity, this.metadata(), {}, (err) => {
      if (peer.stream !== stream) return; // superseded or removed
      this.streamFailed(peer, err === null ? 'stream closed by peer' : `${grpc.status[err.code] ?? err.code}: ${err.details}`);
    });
    peer.stream = stream;
    peer.blocked = false;
    stream.on('metadata', () => {
      if (peer.stream !== stream) return;
      peer.connected = true;
      peer.backoffMs = this.backoffMinMs;
      this.log.info({ peer: peer.id, addr: peer.addr }, 'raft stream to peer established');
    });
    stream.on('drain', () => {
      if (peer.stream !== stream) return;
      peer.blocked = false;
      this.flush(peer);
    });
    stream.on('error', () => {}); // reported through the call's callback
  }

  private streamFailed(peer: Peer, reason: string): void {
    const wasConnected = peer.connected;
    peer.stream = null;
    peer.connected = false;
    peer.blocked = false;
    if (peer.closed || this.closed) return;
    this.log[wasConnected ? 'warn' : 'debug']({ peer: peer.id, addr: peer.addr, reason, retryInMs: peer.backoffMs }, 'raft stream to peer failed');
    this.unreachableHandler(peer.id);
    // Full jitter in [backoff/2, backoff], then double.
    const delayMs = peer.backoffMs / 2 + Math.random() * (peer.backoffMs / 2);
    peer.backoffMs = Math.min(this.backoffMaxMs, peer.backoffMs * 2);
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      if (!peer.closed && !this.closed && peer.queue.length > peer.head) this.flush(peer);
    }, delayMs);
    peer.reconnectTimer.unref();
  }

  /** Writes queued messages in frames of up to batchMaxBytes until the stream pushes back. */
  private flush(peer: Peer): void {
    if (peer.closed || peer.reconnectTimer !== null || peer.blocked) return;
    if (peer.stream === null) {
      if (peer.queue.length === peer.head) return;
      this.openStream(peer);
    }
    const stream = peer.stream;
    assert(stream !== null, 'stream after open');
    while (peer.queue.length > peer.head && !peer.blocked) {
      const batch: Message[] = [];
      let bytes = 0;
      while (peer.queue.length > peer.head) {
        const m = peer.queue[peer.head]!;
        const size = messageSizeBytes(m);
        if (batch.length > 0 && bytes + size > this.batchMaxBytes) break;
        batch.push(m);
        bytes += size;
        peer.head++;
      }
      const ok = stream.write(encodeMessageBatch(batch));
      peer.sent += batch.length;
      peer.batches++;
      if (!ok) peer.blocked = true;
    }
    if (peer.head === peer.queue.length) {
      peer.queue = [];
      peer.head = 0;
      peer.overflowReported = false;
    } else if (peer.head > 1024 && peer.head * 2 > peer.queue.length) {
      peer.queue = peer.queue.slice(peer.head);
      peer.head = 0;
    }
  }

  private sendSnapshot(peer: Peer, m: Message): void {
    if (peer.snapshotsInflight >= RAFT_SNAPSHOTS_INFLIGHT_MAX) {
      this.log.warn({ peer: peer.id }, 'snapshot already in flight to peer; reporting this one failed');
      this.later(() => this.snapshotStatusHandler(peer.id, false));
      return;
    }
    peer.snapshotsInflight++;
    const deadline = new Date(Date.now() + this.snapshotTimeoutMs);
    const bytes = encodeMessage(m);
    peer.client.makeUnaryRequest<Uint8Array, Buffer>(SNAPSHOT_PATH, toBuffer, identity, bytes, this.metadata(), { deadline }, (err) => {
      peer.snapshotsInflight--;
      if (this.closed) return;
      if (err !== null) {
        this.log.warn({ peer: peer.id, index: m.snapshot?.metadata.index, reason: `${grpc.status[err.code] ?? err.code}: ${err.details}` }, 'raft snapshot send failed');
        this.snapshotStatusHandler(peer.id, false);
        this.unreachableHandler(peer.id);
        return;
      }
      this.snapshotStatusHandler(peer.id, true);
    });
  }
}
