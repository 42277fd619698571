import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { RAFT_GRPC_SERVER_OPTIONS, RaftTransport, type RaftTransportOptions } from '../../src/io/raft-transport.ts';
import { encodeMessage, encodeMessageBatch } from '../../src/raft/codec.ts';
import type { Message, MessageType } from '../../src/raft/types.ts';

const te = new TextEncoder();
const FSID = 'fsid-test-1';

function msg(type: MessageType, from: string, to: string, index: number, extra: Partial<Message> = {}): Message {
  return {
    type, from, to, term: 3, logTerm: 2, index,
    entries: [{ term: 3, index: index + 1, type: 'normal', data: te.encode(`cmd ${index}`) }],
    commit: index, reject: false, rejectHint: 0, snapshot: null, context: new Uint8Array(), ...extra,
  };
}

/** Polls `cond` every 10 ms until true; fails after `timeoutMs`. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Node {
  t: RaftTransport;
  port: number;
  received: Message[];
  unreachable: string[];
  snapStatus: [string, boolean][];
}

async function node(id: string, opts: Partial<RaftTransportOptions> = {}, port = 0): Promise<Node> {
  const t = new RaftTransport({ id, fsid: FSID, reconnectBackoffMinMs: 20, reconnectBackoffMaxMs: 200, ...opts });
  const n: Node = { t, port: 0, received: [], unreachable: [], snapStatus: [] };
  t.onMessage((m) => n.received.push(m));
  t.onUnreachable((p) => n.unreachable.push(p));
  t.onSnapshotStatus((p, ok) => n.snapStatus.push([p, ok]));
  n.port = await t.start(`127.0.0.1:${port}`);
  cleanups.push(() => t.close());
  return n;
}

function link(a: Node, b: Node): void {
  a.t.setPeers(new Map([[b.t.id, `127.0.0.1:${b.port}`]]));
  b.t.setPeers(new Map([[a.t.id, `127.0.0.1:${a.port}`]]));
}

describe('RaftTransport', () => {
  it('delivers messages both ways intact and in order, batching many per write', async () => {
    const a = await node('a');
    const b = await node('b');
    expect(a.port).toBeGreaterThan(0);
    link(a, b);
    const burst: Message[] = [];
    for (let i = 0; i < 2000; i++) burst.push(msg('MsgApp', 'a', 'b', i, { context: te.encode(`ctx${i}`) }));
    b.t.send([msg('MsgAppResp', 'b', 'a', 7, { reject: true, rejectHint: 5 })]);
    a.t.send(burst);
    await waitFor(() => b.received.length === 2000 && a.received.length === 1, 'deliveries');
    expect(b.received.map((m) => m.index)).toEqual(burst.map((m) => m.index));
    expect(Buffer.from(encodeMessage(b.received[1999]!)).equals(Buffer.from(encodeMessage(burst[1999]!)))).toBe(true);
    expect(b.received[1999]).toEqual(burst[1999]);
    expect(a.received[0]).toMatchObject({ type: 'MsgAppResp', from: 'b', to: 'a', reject: true, rejectHint: 5 });
    const stats = a.t.stats().get('b')!;
    expect(stats.sent).toBe(2000);
    expect(stats.batches).toBeLessThan(2000); // batched: fewer writes than messages
    expect(stats.connected).toBe(true);
  });

  it('reports an unreachable peer and reconnects with backoff when it comes back on the same port', async () => {
    const a = await node('a');
    const b = await node('b');
    link(a, b);
    a.t.send([msg('MsgHeartbeat', 'a', 'b', 1)]);
    await waitFor(() => b.received.length === 1, 'first heartbeat');
    const port = b.port;
    await b.t.close();
    // Keep sending (as a leader's heartbeats would) until the loss is reported.
    await waitFor(() => {
      a.t.send([msg('MsgHeartbeat', 'a', 'b', 2)]);
      return a.unreachable.includes('b');
    }, 'unreachable report');
    const b2 = await node('b', {}, port);
    // A port in use is refused with a catalogued error.
    await expect(new RaftTransport({ id: 'c', fsid: FSID }).start(`127.0.0.1:${port}`)).rejects.toThrow(/EINVAL: cannot listen/);
    let i = 100;
    await waitFor(() => {
      a.t.send([msg('MsgHeartbeat', 'a', 'b', i++)]);
      return b2.received.length > 0;
    }, 'delivery after reconnect');
    expect(b2.received[0]!.type).toBe('MsgHeartbeat');
  });

  it('bounds the per-peer queue at peerQueueMax, dropping new messages and reporting unreachable once', async () => {
    const a = await node('a', { peerQueueMax: 50, reconnectBackoffMinMs: 5_000, reconnectBackoffMaxMs: 5_000 });
    // A peer at a port where nothing listens: the first stream fails, then a long backoff.
    const dead = await node('x');
    const deadPort = dead.port;
    await dead.t.close();
    a.t.setPeers(new Map([['b', `127.0.0.1:${deadPort}`]]));
    a.t.send([msg('MsgApp', 'a', 'b', 0)]);
    await waitFor(() => a.unreachable.length > 0, 'first failure');
    const before = a.unreachable.length;
    const many: Message[] = [];
    for (let i = 0; i < 500; i++) many.push(msg('MsgApp', 'a', 'b', i));
    a.t.send(many);
    const s = a.t.stats().get('b')!;
    expect(s.queued).toBe(50);
    expect(s.dropped).toBe(450);
    await new Promise((r) => setTimeout(r, 20));
    expect(a.unreachable.length).toBe(before + 1);
  });

  it('delivers a large snapshot by its own call and reports success; a dead peer reports failure', async () => {
    const a = await node('a');
    const b = await node('b');
    link(a, b);
    const data = new Uint8Array(6 * 1024 * 1024).map((_, i) => i & 0xff);
    const snap: Message = msg('MsgSnap', 'a', 'b', 0, {
      entries: [],
      snapshot: { metadata: { index: 500, term: 3, confState: { voters: ['a', 'b'], learners: [] } }, data },
    });
    a.t.send([snap]);
    await waitFor(() => a.snapStatus.length === 1, 'snapshot status');
    expect(a.snapStatus[0]).toEqual(['b', true]);
    expect(b.received).toHaveLength(1);
    expect(b.received[0]!.snapshot!.metadata.index).toBe(500);
    expect(Buffer.from(b.received[0]!.snapshot!.data).equals(Buffer.from(data))).toBe(true);

    await b.t.close();
    a.t.send([snap]);
    await waitFor(() => a.snapStatus.length === 2, 'second snapshot status');
    expect(a.snapStatus[1]).toEqual(['b', false]);
  });

  it('refuses peers of another cluster (fsid in call metadata)', async () => {
    const a = await node('a', { fsid: 'other-cluster' });
    const b = await node('b');
    link(a, b);
    await waitFor(() => {
      a.t.send([msg('MsgHeartbeat', 'a', 'b', 1)]);
      return a.unreachable.includes('b');
    }, 'refusal');
    a.t.send([msg('MsgSnap', 'a', 'b', 0, { entries: [], snapshot: { metadata: { index: 1, term: 1, confState: { voters: ['a'], learners: [] } }, data: new Uint8Array(1) } })]);
    await waitFor(() => a.snapStatus.length === 1, 'snapshot refusal');
    expect(a.snapStatus[0]).toEqual(['b', false]);
    expect(b.received).toHaveLength(0);
  });

  it('drops misaddressed messages, closes a stream sending garbage, and reports unknown peers', async () => {
    const b = await node('b');
    // A raw client (not RaftTransport, which asserts against this) speaking as 'a'.
    const client = new grpc.Client(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const md = new grpc.Metadata();
    md.set('aspen-fsid', FSID);
    md.set('aspen-from', 'a');
    const call = (frames: Uint8Array[]): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => {
        const s = client.makeClientStreamRequest<Uint8Array, Buffer>('/aspen.raft.Raft/Stream', (x) => Buffer.from(x), (x) => x, md, {}, (err) => resolve(err));
        for (const f of frames) s.write(f);
        s.end();
      });
    const err = await call([encodeMessageBatch([msg('MsgHeartbeat', 'mallory', 'b', 1), msg('MsgHeartbeat', 'a', 'c', 2), msg('MsgHeartbeat', 'a', 'b', 3)])]);
    expect(err).toBeNull();
    expect(b.received.map((m) => m.index)).toEqual([3]);
    const bad = await call([new Uint8Array([1, 1, 255, 255, 255, 255, 0]), encodeMessageBatch([msg('MsgHeartbeat', 'a', 'b', 4)])]);
    expect(bad?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(b.received.map((m) => m.index)).toEqual([3]);
    expect(await call([encodeMessageBatch([msg('MsgHeartbeat', 'a', 'b', 5)])])).toBeNull(); // the server survived
    expect(b.received.map((m) => m.index)).toEqual([3, 5]);

    const a = await node('a');
    a.t.send([msg('MsgHeartbeat', 'a', 'zed', 1)]);
    await waitFor(() => a.unreachable.includes('zed'), 'unknown peer reported');
    expect(() => a.t.send([msg('MsgHup', 'a', 'b', 0)])).toThrow(/local-only/);
    expect(() => a.t.send([msg('MsgHeartbeat', 'q', 'b', 0)])).toThrow(/from q sent by a/);
  });

  it('follows membership changes: setPeers drops a removed peer and re-targets a moved one', async () => {
    const a = await node('a');
    const b = await node('b');
    const b2 = await node('b');
    link(a, b);
    a.t.send([msg('MsgHeartbeat', 'a', 'b', 1)]);
    await waitFor(() => b.received.length === 1, 'b');
    a.t.setPeers(new Map([['b', `127.0.0.1:${b2.port}`]]));
    a.t.send([msg('MsgHeartbeat', 'a', 'b', 2)]);
    await waitFor(() => b2.received.length === 1, 'moved b');
    expect(b.received).toHaveLength(1);
    a.t.setPeers(new Map());
    expect(a.t.stats().size).toBe(0);
    a.t.send([msg('MsgHeartbeat', 'a', 'b', 3)]);
    await waitFor(() => a.unreachable.includes('b'), 'removed peer is unknown');
  });

  it('shares one grpc.Server and port with other services (attach)', async () => {
    const server = new grpc.Server(RAFT_GRPC_SERVER_OPTIONS);
    const echo: grpc.ServiceDefinition = {
      Echo: {
        path: '/aspen.test.Echo/Echo', requestStream: false, responseStream: false,
        requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
      },
    };
    server.addService(echo, { Echo: ((call, cb) => cb(null, call.request)) as grpc.handleUnaryCall<Buffer, Buffer> });
    const b = new RaftTransport({ id: 'b', fsid: FSID });
    const got: Message[] = [];
    b.onMessage((m) => got.push(m));
    b.attach(server);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => server.forceShutdown());
    cleanups.push(() => b.close());
    const a = await node('a');
    a.t.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
    a.t.send([msg('MsgVote', 'a', 'b', 9)]);
    await waitFor(() => got.length === 1, 'vote via shared server');
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const reply = await new Promise<Buffer>((res, rej) =>
      client.makeUnaryRequest('/aspen.test.Echo/Echo', (x: Buffer) => x, (x: Buffer) => x, Buffer.from('ping'), (e, r) => (e ? rej(e) : res(r!))),
    );
    expect(reply.toString()).toBe('ping');
  });
});
