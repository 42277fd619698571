/**
 * The messenger over real loopback sockets: pipelining, limits, timeouts, errors, reconnect with
 * resend and duplicate flagging, hostile peers, orderly close, and two processes exchanging
 * 4 MiB payloads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { AspenError } from '../../src/errors.ts';
import { Messenger, MsgrClient, type MsgrClientOptions } from '../../src/io/msgr-client.ts';
import { MsgrServer, type MsgrHandler, type MsgrServerOptions, type ServerConnection } from '../../src/io/msgr-server.ts';
import type { MsgrLog } from '../../src/io/msgr-socket.ts';
import { FrameType, encodeBanner, encodeFrame } from '../../src/msgr/frame.ts';

const FSID = 'c0ffee00-0000-4000-8000-000000000001';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const readU32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A log that records warnings (to check that a reason was logged). */
function recordingLog(): MsgrLog & { warnings: string[]; debugs: string[] } {
  const warnings: string[] = [];
  const debugs: string[] = [];
  return { warnings, debugs, warn: (obj, msg) => void warnings.push(`${msg} ${JSON.stringify(obj)}`), info: () => {}, debug: (_obj, msg) => void debugs.push(msg) };
}

async function startServer(handler: MsgrHandler, extra: Partial<MsgrServerOptions> = {}): Promise<MsgrServer & { port: number }> {
  const server = new MsgrServer({ fsid: FSID, entity: 'osd.0', handler, ...extra });
  const { port } = await server.listen(0);
  cleanups.push(() => server.close(100));
  return Object.assign(server, { port });
}

function client(port: number, extra: Partial<MsgrClientOptions> = {}): MsgrClient {
  const c = new MsgrClient({ fsid: FSID, entity: 'client.test', host: '127.0.0.1', port, ...extra });
  cleanups.push(() => c.destroy());
  return c;
}

const echo: MsgrHandler = (_conn, msg) => ({ meta: msg.meta.slice(), data: msg.data.slice() });

describe('messenger: requests and replies', () => {
  it('pipelines 10,000 requests on one connection and matches every reply to its request', async () => {
    const server = await startServer(echo);
    const c = client(server.port);
    let peak = 0;
    const replies = await Promise.all(
      Array.from({ length: 10_000 }, (_, i) => {
        const p = c.request(1, u32(i), new Uint8Array(i % 97).fill(i & 0xff));
        peak = Math.max(peak, c.inflightRequests);
        return p;
      }),
    );
    replies.forEach((r, i) => {
      expect(readU32(r.meta)).toBe(i);
      expect(r.data.length).toBe(i % 97);
      expect(r.data.every((b) => b === (i & 0xff))).toBe(true);
    });
    expect(peak).toBe(1024); // the default request limit was reached, i.e. requests really were in flight together
    expect(c.stats.connects).toBe(1);
  });

  it('carries one-way messages both ways and handler errors back as AspenErrors (non-AspenError → EIO)', async () => {
    const got: string[] = [];
    const server = await startServer((conn, msg) => {
      if (msg.oneway) {
        got.push(new TextDecoder().decode(msg.meta));
        conn.send(7, new TextEncoder().encode('pong'));
        return;
      }
      if (msg.type === 2) throw new AspenError('ENOENT', 'no such object');
      if (msg.type === 3) return Promise.reject(new Error('boom'));
      return {};
    });
    const incoming: string[] = [];
    const c = client(server.port, { onMessage: (m) => void incoming.push(`${m.type}:${new TextDecoder().decode(m.meta)}`) });
    c.send(9, new TextEncoder().encode('ping'));
    await expect(c.request(2, new Uint8Array(0))).rejects.toMatchObject({ code: 'ENOENT', message: 'ENOENT: no such object' });
    await expect(c.request(3, new Uint8Array(0))).rejects.toMatchObject({ code: 'EIO' });
    expect((await c.request(1, new Uint8Array(0))).data.length).toBe(0);
    expect(got).toEqual(['ping']);
    expect(incoming).toEqual(['7:pong']);
  });

  it('a Messenger keeps one connection per peer address', async () => {
    const a = await startServer(echo);
    const b = await startServer(echo, { entity: 'osd.1' });
    const m = new Messenger({ fsid: FSID, entity: 'osd.9' });
    cleanups.push(() => m.close());
    const addrA = `127.0.0.1:${a.port}`;
    expect(m.connection(addrA)).toBe(m.connection(addrA));
    await Promise.all([m.request(addrA, 1, u32(1)), m.request(`127.0.0.1:${b.port}`, 1, u32(2)), m.request(addrA, 1, u32(3))]);
    expect(a.connectionCount).toBe(1);
    expect(b.connectionCount).toBe(1);
    expect(() => m.connection('nonsense')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('messenger: limits', () => {
  it('the client never has more than inflightRequestsMax requests or inflightBytesMax bytes outstanding (the rest wait)', async () => {
    let now = 0;
    let peak = 0;
    const server = await startServer(async (_c, msg) => {
      peak = Math.max(peak, ++now);
      await tick(1);
      now--;
      return { meta: msg.meta };
    });
    const byCount = client(server.port, { inflightRequestsMax: 4 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => byCount.request(1, u32(i))));
    expect(peak).toBe(4);
    peak = 0;
    const byBytes = client(server.port, { inflightBytesMax: 3_000 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => byBytes.request(1, u32(i), new Uint8Array(996))));
    expect(peak).toBe(3);
    // A single request above the byte limit still goes through, alone.
    expect((await byBytes.request(1, u32(0), new Uint8Array(10_000))).meta.length).toBe(4);
  });

  it('the server runs at most handlerRequestsMax handlers per connection and stops reading beyond it', async () => {
    let now = 0;
    let peak = 0;
    const server = await startServer(
      async (_c, msg) => {
        peak = Math.max(peak, ++now);
        await tick(1);
        now--;
        return { meta: msg.meta };
      },
      { handlerRequestsMax: 2 },
    );
    const c = client(server.port);
    const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => c.request(1, u32(i))));
    expect(replies.map((r) => readU32(r.meta))).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(peak).toBe(2);
  });

  it('refuses an oversized request locally with EINVAL (never sends it)', async () => {
    const server = await startServer(echo);
    const c = client(server.port, { limits: { frameMaxBytes: 1 << 20, metaMaxBytes: 1024 } });
    await expect(c.request(1, new Uint8Array(2048))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(c.request(1, new Uint8Array(0), new Uint8Array((1 << 20) + 1))).rejects.toMatchObject({ code: 'EINVAL' });
  });
});

describe('messenger: failures', () => {
  it('times out with ETIMEDOUT, frees the capacity, and ignores the late reply', async () => {
    const stuck: Array<() => void> = [];
    const server = await startServer((_c, msg) => (msg.type === 9 ? new Promise((r) => stuck.push(() => r({}))) : {}));
    const c = client(server.port, { inflightRequestsMax: 1 });
    const t0 = Date.now();
    await expect(c.request(9, new Uint8Array(0), undefined, { timeoutMs: 150 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(c.inflightRequests).toBe(0);
    await c.request(1, new Uint8Array(0)); // capacity (limit 1) came back
    stuck.forEach((r) => r());
    while (c.stats.lateReplies === 0) await tick(5); // the late reply arrives and is ignored (the test times out otherwise)
    expect(c.stats.lateReplies).toBe(1);
    expect(c.stats.timeouts).toBe(1);
  });

  it('fails with ECONNREFUSED when nothing listens (after its reconnect attempts), and with E_WRONG_CLUSTER / EINVAL on a refused handshake', async () => {
    const probe = createServer();
    const port = await new Promise<number>((r) => probe.listen(0, '127.0.0.1', () => r((probe.address() as { port: number }).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    const nobody = client(port, { reconnectAttemptsMax: 3, reconnectBackoffMs: 5 });
    await expect(nobody.request(1, new Uint8Array(0))).rejects.toMatchObject({ code: 'ECONNREFUSED', message: expect.stringContaining('after 3 attempts') });
    const server = await startServer(echo);
    await expect(client(server.port, { fsid: 'other' }).request(1, new Uint8Array(0))).rejects.toMatchObject({ code: 'E_WRONG_CLUSTER' });
    await expect(client(server.port, { peerEntity: 'osd.5' }).request(1, new Uint8Array(0))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(client(server.port, { peerEntity: 'osd.0' }).request(1, u32(5))).resolves.toBeDefined();
  });

  it('a connection dropped by the server mid-stream: the client reconnects, resends what had no reply, and the handler sees the duplicates flagged `resent` with the same (session, reqId)', async () => {
    const seen = new Map<string, boolean[]>();
    let dropped = false;
    const server = await startServer(async (conn: ServerConnection, msg) => {
      const key = `${msg.session.entity}/${msg.session.sessionId}/${msg.reqId}`;
      seen.set(key, [...(seen.get(key) ?? []), msg.resent]);
      await tick(0);
      if (msg.reqId === 500n && !dropped) {
        dropped = true;
        conn.destroy('test: network failure'); // this request's reply (and others') is lost
      }
      return { meta: msg.meta };
    });
    const c = client(server.port);
    const replies = await Promise.all(Array.from({ length: 2_000 }, (_, i) => c.request(1, u32(i))));
    expect(replies.map((r) => readU32(r.meta))).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
    expect(c.stats.connects).toBe(2);
    expect(c.stats.resends).toBeGreaterThan(0);
    const dups = [...seen.entries()].filter(([, flags]) => flags.length > 1);
    expect(dups.map(([k]) => k)).toContain(`client.test/${c.sessionId}/500`);
    for (const [, flags] of dups) expect(flags).toEqual([false, true]);
    expect(server.stats.resentRequests).toBe([...seen.values()].filter((f) => f.at(-1) === true).length);
    // Requests the server never saw before the drop may arrive flagged too (they were written to the
    // dead socket): `resent` means "maybe a duplicate"; a request seen twice is always flagged the second time.
    expect([...seen.values()].filter((f) => f.length === 1 && !f[0]).length).toBeGreaterThan(0);
  });

  it('a request that kills every connection it travels on ends in ECONNREFUSED after reconnectAttemptsMax attempts, not a reconnect storm', async () => {
    const resentFlags: boolean[] = [];
    const server = await startServer((conn, msg) => {
      if (msg.type !== 13) return {};
      resentFlags.push(msg.resent);
      conn.destroy('test: poison request');
      return {};
    });
    const c = client(server.port, { reconnectAttemptsMax: 3, reconnectBackoffMs: 5 });
    await c.request(1, u32(0)); // a healthy first connection
    await expect(c.request(13, u32(1))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // The first connection had carried a reply, so the poison gets one delivery there plus reconnectAttemptsMax.
    expect(resentFlags).toEqual([false, true, true, true]);
    await c.request(1, u32(2)); // the next request starts a new cycle
  });

  it('a connection cut mid-frame by the network (a proxy): every request completes exactly as sent, resends flagged', async () => {
    const seen = new Map<bigint, number>();
    const server = await startServer((_c, msg) => {
      seen.set(msg.reqId, (seen.get(msg.reqId) ?? 0) + 1);
      if (seen.get(msg.reqId)! > 1) expect(msg.resent).toBe(true);
      return { meta: msg.meta, data: msg.data.slice(0, 16) };
    });
    const proxy = await cuttingProxy(server.port, 1_000_003);
    const c = client(proxy.port);
    const replies = await Promise.all(Array.from({ length: 1_000 }, (_, i) => c.request(1, u32(i), new Uint8Array(3000).fill(i & 0xff))));
    replies.forEach((r, i) => {
      expect(readU32(r.meta)).toBe(i);
      expect(r.data.every((b) => b === (i & 0xff))).toBe(true);
    });
    expect(proxy.cuts()).toBe(1);
    expect(c.stats.connects).toBe(2);
    expect(seen.size).toBe(1_000);
  });

  it('a resend of a request whose handler is still running is not delivered again: the reply goes to the new connection', async () => {
    let calls = 0;
    let release: () => void = () => {};
    let firstConn: ServerConnection | undefined;
    const log = recordingLog();
    const server = await startServer(
      async (conn, msg) => {
        calls++;
        firstConn = conn;
        await new Promise<void>((r) => (release = r));
        return { meta: msg.meta };
      },
      { log },
    );
    const c = client(server.port);
    const p = c.request(1, u32(42));
    while (firstConn === undefined) await tick(5);
    firstConn.destroy('test: drop while the handler runs');
    while (!log.debugs.some((m) => m.includes('still in progress'))) await tick(5); // the resend reached the server
    release();
    expect(readU32((await p).meta)).toBe(42);
    expect(calls).toBe(1);
    expect(server.stats.joinedResends).toBe(1);
  });

  it('garbage, oversized and silent peers on raw sockets are closed with a logged reason while the server keeps serving others', async () => {
    const log = recordingLog();
    const server = await startServer(echo, { log, handshakeTimeoutMs: 300, limits: { frameMaxBytes: 1 << 20, metaMaxBytes: 4096 } });
    const good = client(server.port);
    await good.request(1, u32(1));
    const bannerThen = (b: Uint8Array): Uint8Array => Buffer.concat([encodeBanner(), b]);
    // A well-formed header (valid crc) announcing 2 MiB to a server that accepts 1 MiB; only the header is sent.
    const oversized = encodeFrame({ type: FrameType.REQUEST, flags: 0, msgType: 1, reqId: 1n, meta: new Uint8Array(0), data: new Uint8Array(2 << 20) }, false, 1, { frameMaxBytes: 1 << 30, metaMaxBytes: 1 << 20 })[0]!;
    const badCrc = Buffer.from(oversized);
    badCrc[20]! ^= 1;
    const attacks: Array<[string, Uint8Array]> = [
      ['http', new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
      ['random', Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff)],
      ['bad magic', bannerThen(new Uint8Array(64).fill(0x41))],
      ['oversized', bannerThen(oversized)],
      // Within the server's 1 MiB limit, but no frame before the handshake may exceed 64 KiB.
      ['big pre-handshake frame', bannerThen(encodeFrame({ type: FrameType.HELLO, flags: 0, msgType: 0, reqId: 0n, meta: new Uint8Array(0), data: new Uint8Array(512 << 10) }, false)[0]!)],
      ['bad header crc', bannerThen(badCrc)],
      ['frame before hello', bannerThen(encodeFrame({ type: FrameType.REQUEST, flags: 0, msgType: 1, reqId: 1n, meta: u32(1), data: new Uint8Array(0) }, true)[0]!)],
      ['silent', new Uint8Array(0)],
    ];
    const results = await Promise.all(attacks.map(async ([name, bytes]) => [name, await rawPeer(server.port, bytes)] as const));
    for (const [name, closed] of results) expect(closed, name).toBe(true);
    expect(log.warnings.filter((w) => w.includes('"reason":"oversized"')).length).toBe(2);
    expect(log.warnings.some((w) => w.includes('"reason":"header_crc"'))).toBe(true);
    expect(log.warnings.some((w) => w.includes('"reason":"banner"'))).toBe(true);
    // The server is alive and the good client's connection was never disturbed.
    expect(readU32((await good.request(1, u32(77))).meta)).toBe(77);
    expect((await good.request(1, u32(78), new Uint8Array(900 << 10))).data.length).toBe(900 << 10); // handshaken: full limits
    expect(good.stats.connects).toBe(1);
    expect(server.stats.protocolErrors).toBe(attacks.length); // every hostile connection, counted
    expect(server.stats.handshakes).toBe(1);
  });

  it('orderly close: the client drains its in-flight requests first; a closed server makes new requests fail with ECONNREFUSED', async () => {
    const server = await startServer(async (_c, msg) => {
      await tick(20);
      return { meta: msg.meta };
    });
    const c = client(server.port, { reconnectAttemptsMax: 2, reconnectBackoffMs: 5 });
    const inflight = Array.from({ length: 10 }, (_, i) => c.request(1, u32(i)));
    const closing = c.close();
    await expect(c.request(1, u32(0))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await Promise.all(inflight)).length).toBe(10);
    await closing;
    const c2 = client(server.port, { reconnectAttemptsMax: 2, reconnectBackoffMs: 5 });
    await c2.request(1, u32(1));
    await server.close(1_000);
    await expect(c2.request(1, u32(2))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('messenger: two processes', () => {
  it('exchanges 4 MiB payloads with an echo server in another process (8 in flight), byte-exact', async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(here, 'echo-server.ts'), FSID], { stdio: ['pipe', 'pipe', 'inherit'] });
    cleanups.push(() => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
    });
    const c = client(port, { inflightRequestsMax: 8 });
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const payloads = Array.from({ length: 24 }, (_, i) => {
      const b = new Uint8Array(4 << 20);
      for (let j = 0; j < b.length; j += 4096) b[j] = (i + j / 4096) & 0xff;
      b[b.length - 1] = i;
      return b;
    });
    const replies = await Promise.all(payloads.map((p, i) => c.request(1, u32(i), p)));
    replies.forEach((r, i) => {
      expect(readU32(r.meta)).toBe(i);
      expect(sha(r.data)).toBe(sha(payloads[i]!));
    });
    const len = await c.request(2, new Uint8Array(0), payloads[0]);
    expect(readU32(len.meta)).toBe(4 << 20);
    child.stdin!.end();
  });
});

/** Connects a raw socket, writes `bytes`, and reports whether the server closed it within 3 s. */
function rawPeer(port: number, bytes: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 3_000);
    s.on('error', () => {});
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.on('data', () => {}); // the server's banner
    s.once('connect', () => {
      if (bytes.length > 0) s.write(bytes);
    });
  });
}

/** A TCP proxy to `port` that cuts the first connection after `cutAfterBytes` client→server bytes. */
async function cuttingProxy(port: number, cutAfterBytes: number): Promise<{ port: number; cuts: () => number }> {
  let cuts = 0;
  const server: Server = createServer((down) => {
    const up = connect({ port, host: '127.0.0.1' });
    let forwarded = 0;
    const kill = (): void => {
      down.destroy();
      up.destroy();
    };
    down.on('error', kill);
    up.on('error', kill);
    down.on('close', kill);
    up.on('close', kill);
    up.on('data', (b: Buffer) => down.write(b));
    down.on('data', (b: Buffer) => {
      if (cuts === 0 && forwarded + b.length > cutAfterBytes) {
        up.write(b.subarray(0, cutAfterBytes - forwarded)); // a partial frame reaches the server
        cuts++;
        setImmediate(kill);
        return;
      }
      forwarded += b.length;
      up.write(b);
    });
  });
  const p = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: p, cuts: () => cuts };
}
