/**
 * The NBD server against a hand-written client over real sockets: the spec's error replies,
 * malformed and hostile input, pipelining, in-flight limits, drops mid-write and shutdown.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import net from 'node:net';
import { AspenError } from '@aspen/shared/errors.ts';
import { startNbdServer, type NbdServer } from '../../src/io/nbd-server.ts';
import * as codec from '../../src/nbd/codec.ts';
import type { SessionLimits } from '../../src/nbd/session.ts';
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_TRIM,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
} from '../../src/nbd/protocol.ts';
import { MemoryDevice, MemoryResolver } from './memory-device.ts';
import { RawClient } from './raw-client.ts';

const MiB = 1024 * 1024;
let server: NbdServer | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.close();
  server = undefined;
});

interface Fixture {
  rw: MemoryDevice;
  ro: MemoryDevice;
  aligned: MemoryDevice;
  resolver: MemoryResolver;
  warnings: string[];
  port: number;
}

async function start(opts: { rw?: MemoryDevice; limits?: SessionLimits } = {}): Promise<Fixture> {
  const rw = opts.rw ?? new MemoryDevice({ sizeBytes: 4 * MiB });
  const ro = new MemoryDevice({ sizeBytes: 1 * MiB, readOnly: true, canMultiConn: false });
  const aligned = new MemoryDevice({ sizeBytes: 1 * MiB, blockSize: { minimumBytes: 512, preferredBytes: 4096, maximumPayloadBytes: 64 * 1024 } });
  const resolver = new MemoryResolver(new Map([
    ['rbd/vm', { device: rw, description: 'a test image' }],
    ['rbd/vm@snap', { device: ro }],
    ['rbd/aligned', { device: aligned }],
  ]));
  const warnings: string[] = [];
  const log = { debug: () => undefined, info: () => undefined, warn: (o: object, m: string) => warnings.push(`${m} ${JSON.stringify(o)}`), error: (o: object, m: string) => warnings.push(`ERROR ${m} ${JSON.stringify(o)}`) };
  server = await startNbdServer({ resolver, port: 0, log, ...(opts.limits ? { limits: opts.limits } : {}) });
  return { rw, ro, aligned, resolver, warnings, port: server.port };
}

async function client(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

async function attached(f: Fixture, name = 'rbd/vm', opts: { structured?: boolean; meta?: boolean } = {}): Promise<RawClient> {
  const c = await client(f.port);
  await c.attach(name, opts);
  return c;
}

async function roundTrip(c: RawClient, req: Parameters<RawClient['request']>[0], payload?: Uint8Array) {
  c.request(req, payload);
  return c.reply();
}

describe('nbd handshake (raw client)', () => {
  it('offers fixed newstyle + no zeroes, lists exports, and answers unknown options with ERR_UNSUP then keeps parsing', async () => {
    const f = await start();
    const c = await client(f.port);
    expect(await c.hello()).toBe(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    const list = await c.option(NBD_OPT_LIST);
    expect(list.filter((r) => r.replyType === NBD_REP_SERVER).map((r) => codec.decodeRepServer(r.data))).toEqual([
      { exportName: 'rbd/vm', description: 'a test image' },
      { exportName: 'rbd/vm@snap', description: '' },
      { exportName: 'rbd/aligned', description: '' },
    ]);
    expect((await c.option(99, new Uint8Array([1, 2, 3])))[0]!.replyType).toBe(NBD_REP_ERR_UNSUP);
    expect((await c.option(NBD_OPT_LIST, new Uint8Array(1)))[0]!.replyType).toBe(NBD_REP_ERR_INVALID);
    expect((await c.option(NBD_OPT_INFO, new Uint8Array([0, 0, 0, 9, 1])))[0]!.replyType).toBe(NBD_REP_ERR_INVALID);
    expect((await c.option(NBD_OPT_GO, codec.encodeInfoRequest({ exportName: 'nope', infoRequests: [] })))[0]!.replyType).toBe(NBD_REP_ERR_UNKNOWN);
    // Meta contexts need structured replies first.
    expect((await c.option(NBD_OPT_SET_META_CONTEXT, codec.encodeMetaContextRequest({ exportName: 'rbd/vm', queries: ['base:allocation'] })))[0]!.replyType).toBe(NBD_REP_ERR_INVALID);
    // Option data beyond the limit is skipped, refused, and the next option still parses.
    expect((await c.option(NBD_OPT_INFO, new Uint8Array(1 * MiB)))[0]!.replyType).toBe(NBD_REP_ERR_TOO_BIG);
    expect((await c.option(NBD_OPT_STRUCTURED_REPLY)).map((r) => r.replyType)).toEqual([NBD_REP_ACK]);
    const listed = await c.option(NBD_OPT_LIST_META_CONTEXT, codec.encodeMetaContextRequest({ exportName: 'rbd/vm', queries: ['base:', 'x-other:thing'] }));
    expect(listed.map((r) => r.replyType)).toEqual([NBD_REP_META_CONTEXT, NBD_REP_ACK]);
    expect(codec.decodeRepMetaContext(listed[0]!.data).name).toBe('base:allocation');
    const info = await c.option(NBD_OPT_INFO, codec.encodeInfoRequest({ exportName: 'rbd/vm@snap', infoRequests: [1, 2, 3] }));
    const infos = info.filter((r) => r.replyType !== NBD_REP_ACK).map((r) => codec.decodeInfo(r.data));
    expect(infos).toContainEqual({ kind: 'string', infoType: 1, text: 'rbd/vm@snap' });
    expect(infos).toContainEqual({ kind: 'blockSize', minimumBytes: 1, preferredBytes: 4096, maximumPayloadBytes: 1 << 25 });
    const exp = infos.find((i) => i.kind === 'export');
    expect(exp).toMatchObject({ sizeBytes: BigInt(MiB) });
    expect(exp!.kind === 'export' && (exp!.transmissionFlags & NBD_FLAG_READ_ONLY) !== 0).toBe(true);
    expect(exp!.kind === 'export' && (exp!.transmissionFlags & (NBD_FLAG_SEND_TRIM | NBD_FLAG_CAN_MULTI_CONN))).toBe(0);
    expect(f.resolver.opens).toBe(f.resolver.releases);
  });

  it('drops a client that sends unknown client flags or a bad option magic, and keeps serving others', async () => {
    const f = await start();
    const a = await client(f.port);
    await a.hello(0x80);
    expect(await a.closedByServer()).toBe(true);
    const b = await client(f.port);
    await b.hello();
    b.send(new Uint8Array(16).fill(0x41));
    expect(await b.closedByServer()).toBe(true);
    expect(f.warnings.join('\n')).toMatch(/unknown client flags[\s\S]*bad magic/);
    const c = await attached(f);
    expect(RawClient.errorOf(await roundTrip(c, { type: NBD_CMD_READ, cookie: 1n, length: 512 }))).toBe(0);
  });

  it('EXPORT_NAME of an unknown export closes; of a known one enters transmission without the 124 zero bytes', async () => {
    const f = await start();
    const a = await client(f.port);
    await a.hello();
    a.send(codec.encodeOption(1, new TextEncoder().encode('missing')));
    expect(await a.closedByServer()).toBe(true);
    const b = await client(f.port);
    await b.hello();
    b.send(codec.encodeOption(1, new TextEncoder().encode('rbd/vm')));
    const reply = await b.read(10);
    expect(new DataView(reply.buffer, reply.byteOffset).getBigUint64(0)).toBe(BigInt(4 * MiB));
    const r = await roundTrip(b, { type: NBD_CMD_READ, cookie: 5n, length: 8 });
    expect(r).toMatchObject({ kind: 'simple', cookie: 5n, error: 0 });
  });
});

describe('nbd transmission (raw client)', () => {
  it('answers the spec error values: EINVAL, ENOSPC, EPERM, EOVERFLOW — and the connection survives each', async () => {
    const f = await start();
    const c = await attached(f, 'rbd/vm', { structured: false });
    const size = BigInt(4 * MiB);
    const cases: [Parameters<RawClient['request']>[0], Uint8Array | undefined, number][] = [
      [{ type: 42, cookie: 1n }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_READ, cookie: 2n, offset: size - 512n, length: 1024 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_READ, cookie: 3n, offset: 0xffffffffffffff00n, length: 512 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_WRITE, cookie: 4n, offset: size - 512n }, new Uint8Array(1024), NBD_ENOSPC],
      [{ type: NBD_CMD_WRITE_ZEROES, cookie: 5n, offset: size, length: 512 }, undefined, NBD_ENOSPC],
      [{ type: NBD_CMD_TRIM, cookie: 6n, offset: size, length: 512 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_READ, flags: NBD_CMD_FLAG_NO_HOLE, cookie: 7n, length: 512 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_READ, flags: NBD_CMD_FLAG_DF, cookie: 8n, length: 512 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_BLOCK_STATUS, cookie: 9n, length: 512 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_FLUSH, cookie: 10n, offset: 1n }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_READ, cookie: 11n, length: (1 << 25) + 1 }, undefined, NBD_EINVAL],
      [{ type: NBD_CMD_WRITE, cookie: 12n, length: 16 }, new Uint8Array(16), 0],
    ];
    for (const [req, payload, errno] of cases) {
      const r = await roundTrip(c, req, payload);
      expect([r.cookie, RawClient.errorOf(r)], `cookie ${req.cookie}`).toEqual([req.cookie, errno]);
    }
    expect(f.rw.writeLog).toEqual([{ offsetBytes: 0, lengthBytes: 16 }]);

    const ro = await attached(f, 'rbd/vm@snap');
    for (const [type, payload] of [[NBD_CMD_WRITE, new Uint8Array(512)], [NBD_CMD_TRIM, undefined], [NBD_CMD_WRITE_ZEROES, undefined]] as const) {
      const r = await roundTrip(ro, { type, cookie: 20n, length: 512 }, payload);
      expect(RawClient.errorOf(r), `type ${type}`).toBe(NBD_EPERM);
      expect(r.kind).toBe('structured');
    }
    expect(f.ro.counts.write + f.ro.counts.trim + f.ro.counts.writeZeroes).toBe(0);

    const al = await attached(f, 'rbd/aligned');
    // In range but above the 64 KiB maximum payload: a structured READ gets EOVERFLOW.
    expect(RawClient.errorOf(await roundTrip(al, { type: NBD_CMD_READ, cookie: 29n, length: 128 * 1024 }))).toBe(NBD_EOVERFLOW);
    expect(RawClient.errorOf(await roundTrip(al, { type: NBD_CMD_READ, cookie: 30n, offset: 100n, length: 512 }))).toBe(NBD_EINVAL);
    expect(RawClient.errorOf(await roundTrip(al, { type: NBD_CMD_WRITE, cookie: 31n, length: 100 }, new Uint8Array(100)))).toBe(NBD_EINVAL);
    expect(RawClient.errorOf(await roundTrip(al, { type: NBD_CMD_WRITE, cookie: 32n, length: 128 * 1024 }, new Uint8Array(128 * 1024)))).toBe(NBD_EINVAL);
    expect(f.aligned.counts.write).toBe(0);
    expect(RawClient.errorOf(await roundTrip(al, { type: NBD_CMD_WRITE, cookie: 33n, length: 512 }, new Uint8Array(512)))).toBe(0);
  });

  it('structured reads send OFFSET_HOLE for holes and OFFSET_DATA for data, DONE on the last chunk; DF gives one data chunk', async () => {
    const f = await start();
    const c = await attached(f);
    const data = new Uint8Array(4096).fill(0xab);
    expect(RawClient.errorOf(await roundTrip(c, { type: NBD_CMD_WRITE, cookie: 1n, offset: 4096n }, data))).toBe(0);
    const r = await roundTrip(c, { type: NBD_CMD_READ, cookie: 2n, length: 12288 });
    expect(r.kind).toBe('structured');
    if (r.kind !== 'structured') return;
    expect(r.chunks.map((ch) => [ch.type, ch.flags])).toEqual([[NBD_REPLY_TYPE_OFFSET_HOLE, 0], [NBD_REPLY_TYPE_OFFSET_DATA, 0], [NBD_REPLY_TYPE_OFFSET_HOLE, NBD_REPLY_FLAG_DONE]]);
    expect(Buffer.from(r.chunks[1]!.payload.subarray(8))).toEqual(Buffer.from(data));
    const df = await roundTrip(c, { type: NBD_CMD_READ, flags: NBD_CMD_FLAG_DF, cookie: 3n, length: 12288 });
    expect(df.kind === 'structured' && df.chunks.map((ch) => [ch.type, ch.payload.length])).toEqual([[NBD_REPLY_TYPE_OFFSET_DATA, 8 + 12288]]);
  });

  it('BLOCK_STATUS reports holes and data for base:allocation, one extent with REQ_ONE', async () => {
    const f = await start();
    const c = await attached(f);
    await roundTrip(c, { type: NBD_CMD_WRITE, cookie: 1n, offset: 65536n }, new Uint8Array(8192).fill(1));
    await roundTrip(c, { type: NBD_CMD_WRITE_ZEROES, flags: NBD_CMD_FLAG_NO_HOLE, cookie: 2n, offset: 73728n, length: 4096 });
    const r = await roundTrip(c, { type: NBD_CMD_BLOCK_STATUS, cookie: 3n, length: 131072 });
    expect(r.kind).toBe('structured');
    if (r.kind !== 'structured') return;
    expect(codec.decodeBlockStatus(r.chunks[0]!.payload)).toEqual({
      contextId: 1,
      descriptors: [
        { lengthBytes: 65536, flags: NBD_STATE_HOLE | NBD_STATE_ZERO },
        { lengthBytes: 12288, flags: 0 },
        { lengthBytes: 131072 - 65536 - 12288, flags: NBD_STATE_HOLE | NBD_STATE_ZERO },
      ],
    });
    expect(f.rw.counts.noHole).toBe(1);
    const one = await roundTrip(c, { type: NBD_CMD_BLOCK_STATUS, flags: NBD_CMD_FLAG_REQ_ONE, cookie: 4n, offset: 65536n, length: 4096 });
    expect(one.kind === 'structured' && codec.decodeBlockStatus(one.chunks[0]!.payload).descriptors).toEqual([{ lengthBytes: 4096, flags: 0 }]);
  });

  it('device failures become errors by their Aspen code (structured ERROR chunks carry the message)', async () => {
    const rw = new MemoryDevice({ sizeBytes: 4 * MiB, failWith: (op, off) => (off === 8192 ? new AspenError('EIO', `${op} failed`) : off === 12288 ? new AspenError('ENOSPC', 'pool full') : undefined) });
    const f = await start({ rw });
    const c = await attached(f);
    const r = await roundTrip(c, { type: NBD_CMD_READ, cookie: 1n, offset: 8192n, length: 512 });
    expect(r.kind === 'structured' && r.chunks[0]!.type).toBe(NBD_REPLY_TYPE_ERROR);
    expect(r.kind === 'structured' && codec.decodeErrorPayload(r.chunks[0]!.payload)).toEqual({ error: NBD_EIO, message: 'EIO: read failed' });
    expect(RawClient.errorOf(await roundTrip(c, { type: NBD_CMD_WRITE, cookie: 2n, offset: 12288n }, new Uint8Array(16)))).toBe(NBD_ENOSPC);
    const simple = await attached(f, 'rbd/vm', { structured: false });
    expect(await roundTrip(simple, { type: NBD_CMD_READ, cookie: 3n, offset: 8192n, length: 512 })).toEqual({ kind: 'simple', cookie: 3n, error: NBD_EIO, data: undefined });
    expect(RawClient.errorOf(await roundTrip(simple, { type: NBD_CMD_READ, cookie: 4n, length: 512 }))).toBe(0);
  });

  it('pipelined requests complete out of order, each answered by its cookie', async () => {
    let releaseSlow!: () => void;
    const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
    const rw = new MemoryDevice({ sizeBytes: 4 * MiB, delay: (op, off) => (op === 'read' && off === 0 ? slow : Promise.resolve()) });
    const f = await start({ rw });
    const c = await attached(f, 'rbd/vm', { structured: false });
    c.request({ type: NBD_CMD_READ, cookie: 100n, offset: 0n, length: 512 });
    c.request({ type: NBD_CMD_READ, cookie: 200n, offset: 4096n, length: 512 });
    c.request({ type: NBD_CMD_WRITE, cookie: 300n, offset: 8192n }, new Uint8Array(512).fill(7));
    const first = [await c.reply(), await c.reply()].map((r) => r.cookie).sort();
    expect(first).toEqual([200n, 300n]);
    releaseSlow();
    expect((await c.reply()).cookie).toBe(100n);
  });

  it('stops reading when the in-flight limit is reached and resumes as replies go out', async () => {
    const gates: (() => void)[] = [];
    const rw = new MemoryDevice({ sizeBytes: 4 * MiB, delay: (op) => (op === 'read' ? new Promise<void>((resolve) => gates.push(resolve)) : Promise.resolve()) });
    const f = await start({ rw, limits: { optionDataMaxBytes: 65536, inflightRequestsMax: 2, inflightBytesMax: 1 * MiB } });
    const c = await attached(f, 'rbd/vm', { structured: false });
    for (let i = 0; i < 5; i++) c.request({ type: NBD_CMD_READ, cookie: BigInt(i), offset: BigInt(i * 4096), length: 4096 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(gates.length).toBe(2);
    const seen: bigint[] = [];
    while (seen.length < 5) {
      gates.shift()?.();
      seen.push((await c.reply()).cookie);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(gates.length).toBeLessThanOrEqual(2);
    }
    expect(seen.sort()).toEqual([0n, 1n, 2n, 3n, 4n]);
  });

  it('a client dropping mid-write loses nothing acknowledged and the half-sent write is never applied', async () => {
    const f = await start();
    const c = await attached(f);
    for (let i = 0; i < 10; i++) c.request({ type: NBD_CMD_WRITE, cookie: BigInt(i), offset: BigInt(i * 65536) }, new Uint8Array(65536).fill(i + 1));
    const acked = new Set<bigint>();
    for (let i = 0; i < 10; i++) {
      const r = await c.reply();
      expect(RawClient.errorOf(r)).toBe(0);
      acked.add(r.cookie);
    }
    c.send(codec.encodeRequestHeader({ flags: 0, type: NBD_CMD_WRITE, cookie: 99n, offset: 0n, length: 65536 }));
    c.send(new Uint8Array(30000).fill(0xee));
    await new Promise((resolve) => setTimeout(resolve, 50));
    c.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(acked.size).toBe(10);
    for (let i = 0; i < 10; i++) expect(f.rw.readNow(i * 65536, 65536).every((b) => b === i + 1), `write ${i}`).toBe(true);
    expect(f.rw.writeLog.length).toBe(10);
    expect(server!.connectionCount()).toBe(0);
    expect(f.resolver.releases).toBe(f.resolver.opens);
  });

  it('a bad request magic or an oversized WRITE closes the connection with a logged reason and touches no data', async () => {
    const f = await start();
    const a = await attached(f);
    a.send(new Uint8Array(28).fill(0x55));
    expect(await a.closedByServer()).toBe(true);
    const b = await attached(f);
    b.send(codec.encodeRequestHeader({ flags: 0, type: NBD_CMD_WRITE, cookie: 1n, offset: 0n, length: 0xffffffff }));
    b.send(new Uint8Array(4096));
    expect(await b.closedByServer()).toBe(true);
    expect(f.warnings.join('\n')).toMatch(/bad magic 0x55555555[\s\S]*WRITE of 4294967295 bytes above/);
    expect(f.rw.counts.write).toBe(0);
    const c = await attached(f);
    expect(RawClient.errorOf(await roundTrip(c, { type: NBD_CMD_READ, cookie: 2n, length: 512 }))).toBe(0);
  });

  it('garbage after the hello or after GO never crashes the server or reaches the device (fast-check)', async () => {
    const f = await start();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), async (garbage, afterGo) => {
        const c = await client(f.port);
        if (afterGo) await c.attach('rbd/vm@snap');
        else await c.hello();
        c.send(garbage);
        await new Promise((resolve) => setTimeout(resolve, 5));
        c.close();
      }),
      { numRuns: 60 },
    );
    expect(f.ro.counts.write + f.ro.counts.trim + f.ro.counts.writeZeroes).toBe(0);
    const c = await attached(f);
    expect(RawClient.errorOf(await roundTrip(c, { type: NBD_CMD_READ, cookie: 1n, length: 512 }))).toBe(0);
    expect(f.warnings.filter((w) => w.startsWith('ERROR'))).toEqual([]);
  });

  it('NBD_CMD_DISC finishes in-flight requests before closing; server close answers in-flight work first', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const rw = new MemoryDevice({ sizeBytes: 4 * MiB, delay: (op) => (op === 'write' ? gate : Promise.resolve()) });
    const f = await start({ rw });
    const c = await attached(f, 'rbd/vm', { structured: false });
    c.request({ type: NBD_CMD_WRITE, cookie: 1n }, new Uint8Array(512).fill(3));
    c.request({ type: NBD_CMD_DISC, cookie: 2n });
    setTimeout(release, 50);
    expect((await c.reply()).cookie).toBe(1n);
    expect(await c.closedByServer()).toBe(true);
    expect(f.rw.readNow(0, 1)[0]).toBe(3);

    let release2!: () => void;
    const gate2 = new Promise<void>((resolve) => (release2 = resolve));
    const rw2 = new MemoryDevice({ sizeBytes: 4 * MiB, delay: (op) => (op === 'write' ? gate2 : Promise.resolve()) });
    await server!.close();
    const f2 = await start({ rw: rw2 });
    const d = await attached(f2, 'rbd/vm', { structured: false });
    d.request({ type: NBD_CMD_WRITE, cookie: 7n }, new Uint8Array(512).fill(9));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const closing = server!.close();
    setTimeout(release2, 50);
    expect(await d.reply()).toMatchObject({ cookie: 7n, error: 0 });
    await closing;
    server = undefined;
    expect(f2.resolver.releases).toBe(1);
  });
});

describe('nbd server limits', () => {
  it('drops a connection that never finishes the handshake', async () => {
    const f = await start();
    await server!.close();
    const resolver = f.resolver;
    server = await startNbdServer({ resolver, port: 0, handshakeTimeoutMs: 100 });
    const socket = net.connect(server.port, '127.0.0.1');
    socket.resume();
    const closed = await new Promise<boolean>((resolve) => socket.on('close', () => resolve(true)));
    expect(closed).toBe(true);
    expect(server.connectionCount()).toBe(0);
  });
});
