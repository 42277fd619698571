/**
 * Messenger benchmark (`npm run bench -- msgr`, or standalone `node --import tsx test/src/bench/msgr.ts`;
 * docs/adr/0005-messenger.md): throughput of Aspen's messenger against a plain length-prefixed
 * `net` protocol measured in the same run, client (this process) and server (a child process)
 * on loopback.
 *
 * Workloads: "write 4 MiB" (4 MiB request, empty reply) with 1 and 8 in flight, "read 4 MiB"
 * (empty request, 4 MiB reply) with 8 in flight, and "4 KiB" (4 KiB request, empty reply) with
 * 32 in flight. Systems: the messenger with payload crc32c (the default), without it, and the
 * baseline: frames of `u32 length, u32 id, u32 reply length` + payload on a bare socket, parsed
 * with the same care (payloads inside one chunk are views, others are copied once).
 *
 * Each measurement is a warm-up then a fixed window; runs alternate the order of the systems and
 * the table shows the median over runs. Server CPU from /proc/<pid>/stat, client CPU from
 * process.cpuUsage(). Knobs: ASPEN_BENCH_SECONDS (3), ASPEN_BENCH_WARMUP_SECONDS (0.5),
 * ASPEN_BENCH_RUNS (3), ASPEN_BENCH_ONLY (a substring of the workload names to run). Not a test: nothing asserts on timing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MsgrClient } from '@aspen/shared/io/msgr-client.ts';
import { MsgrServer } from '@aspen/shared/io/msgr-server.ts';

const SELF = fileURLToPath(import.meta.url);
const FSID = 'bench-msgr';
const MIB = 1 << 20;
const env = (k: string, d: string): number => Number(process.env[k] ?? d);
const WINDOW_S = env('ASPEN_BENCH_SECONDS', '3');
const WARMUP_S = env('ASPEN_BENCH_WARMUP_SECONDS', '0.5');
const RUNS = env('ASPEN_BENCH_RUNS', '3');
const CLK_TCK = 100;
const REPLY_POOL = new Uint8Array(4 * MIB).fill(0x5a);
const log = (s: string): void => void process.stderr.write(`[bench msgr] ${s}\n`);

// ---------------------------------------------------------------------------------------------
// The baseline: plain length-prefixed frames on a bare socket.

const PLAIN_HEADER_BYTES = 12;

/** Incremental parser of `u32 len, u32 id, u32 replyLen, payload` frames. */
class PlainParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  constructor(private readonly onFrame: (id: number, replyLen: number, payload: Buffer) => void) {}
  push(chunk: Buffer): void {
    if (this.buffered === 0) {
      // Fast path: whole frames inside this chunk are views.
      let off = 0;
      while (chunk.length - off >= PLAIN_HEADER_BYTES) {
        const len = chunk.readUInt32LE(off);
        if (chunk.length - off < PLAIN_HEADER_BYTES + len) break;
        this.onFrame(chunk.readUInt32LE(off + 4), chunk.readUInt32LE(off + 8), chunk.subarray(off + PLAIN_HEADER_BYTES, off + PLAIN_HEADER_BYTES + len));
        off += PLAIN_HEADER_BYTES + len;
      }
      if (off === chunk.length) return;
      chunk = chunk.subarray(off);
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < PLAIN_HEADER_BYTES) return;
      if (this.chunks[0]!.length < PLAIN_HEADER_BYTES) this.chunks = [Buffer.concat(this.chunks)];
      const head = this.chunks[0]!;
      const len = head.readUInt32LE(0);
      if (this.buffered < PLAIN_HEADER_BYTES + len) return;
      const all = this.chunks.length === 1 ? head : Buffer.concat(this.chunks, this.buffered); // one copy
      this.onFrame(all.readUInt32LE(4), all.readUInt32LE(8), all.subarray(PLAIN_HEADER_BYTES, PLAIN_HEADER_BYTES + len));
      const rest = all.subarray(PLAIN_HEADER_BYTES + len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
  }
}

function plainWrite(socket: Socket, id: number, replyLen: number, payload: Uint8Array): void {
  const head = Buffer.allocUnsafe(PLAIN_HEADER_BYTES);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(id, 4);
  head.writeUInt32LE(replyLen, 8);
  if (payload.length <= 16 * 1024) {
    socket.write(Buffer.concat([head, payload]));
    return;
  }
  socket.cork();
  socket.write(head);
  socket.write(payload);
  socket.uncork();
}

/** A pipelined client of the plain protocol. */
class PlainClient {
  private nextId = 1;
  private readonly waiting = new Map<number, (n: number) => void>();
  private constructor(private readonly socket: Socket) {
    const parser = new PlainParser((id, _r, payload) => {
      const w = this.waiting.get(id);
      this.waiting.delete(id);
      w?.(payload.length);
    });
    socket.on('data', (c: Buffer) => parser.push(c));
  }
  static open(port: number): Promise<PlainClient> {
    return new Promise((res, rej) => {
      const s = connect({ port, host: '127.0.0.1' }, () => res(new PlainClient(s)));
      s.setNoDelay(true);
      s.once('error', rej);
    });
  }
  request(payload: Uint8Array, replyLen: number): Promise<number> {
    const id = this.nextId++;
    return new Promise((res) => {
      this.waiting.set(id, res);
      plainWrite(this.socket, id, replyLen, payload);
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Server mode (the child process)

async function serve(kind: string): Promise<void> {
  let port: number;
  if (kind === 'plain') {
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      const parser = new PlainParser((id, replyLen) => plainWrite(socket, id, 0, REPLY_POOL.subarray(0, replyLen)));
      socket.on('data', (c: Buffer) => parser.push(c));
      socket.on('error', () => {});
    });
    port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
  } else {
    const server = new MsgrServer({
      fsid: FSID,
      entity: 'osd.0',
      payloadCrc: kind === 'msgr',
      handler: (_c, msg) => ({ data: REPLY_POOL.subarray(0, new DataView(msg.meta.buffer, msg.meta.byteOffset, 4).getUint32(0, true)) }),
    });
    port = (await server.listen(0)).port;
  }
  process.stdout.write(`listening ${port}\n`);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------
// Client side (this process)

/** Which server: the messenger with or without payload crc, or the plain-socket baseline. */
export type System = 'msgr' | 'msgr-nocrc' | 'plain';
const SYSTEMS: readonly System[] = ['msgr', 'msgr-nocrc', 'plain'];

/** A load shape. */
export interface Workload {
  readonly name: string;
  readonly requestBytes: number;
  readonly replyBytes: number;
  readonly inflight: number;
  /** Report MB/s (payload bytes moved) rather than ops/s. */
  readonly bandwidth: boolean;
}
/** Every workload, in table order. */
export const ALL_WORKLOADS: readonly Workload[] = [
  { name: 'write 4 MiB, 1 in flight', requestBytes: 4 * MIB, replyBytes: 0, inflight: 1, bandwidth: true },
  { name: 'write 4 MiB, 8 in flight', requestBytes: 4 * MIB, replyBytes: 0, inflight: 8, bandwidth: true },
  { name: 'read 4 MiB, 8 in flight', requestBytes: 0, replyBytes: 4 * MIB, inflight: 8, bandwidth: true },
  { name: 'write 4 KiB, 32 in flight', requestBytes: 4096, replyBytes: 0, inflight: 32, bandwidth: false },
];
/** ASPEN_BENCH_ONLY=substring keeps the workloads whose name contains it (e.g. "4 KiB"). */
const WORKLOADS = ALL_WORKLOADS.filter((w) => w.name.includes(process.env['ASPEN_BENCH_ONLY'] ?? ''));

/** One measurement. */
export interface Sample {
  opsPerS: number;
  mbPerS: number;
  /** CPU seconds (client + server) per GiB moved, or per 1,000 ops. */
  cpuS: number;
  /** The client's and the server's share of `cpuS`. */
  clientCpuS: number;
  serverCpuS: number;
}

/** A benchmark server process. */
export interface Child {
  readonly proc: ChildProcess;
  readonly port: number;
}

/** Starts a benchmark server of `kind` in a child process. */
export async function startChild(kind: System): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', SELF, '--serve', kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    proc.once('exit', (code) => rej(new Error(`bench server ${kind} exited with ${code}`)));
  });
  return { proc, port };
}

function procCpuS(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}

/** Measures one workload against one server (warm-up, then a window). */
export async function measure(system: System, child: Child, w: Workload): Promise<Sample> {
  const payload = new Uint8Array(w.requestBytes).fill(0xa5);
  let op: () => Promise<unknown>;
  let close: () => Promise<void> | void;
  if (system === 'plain') {
    const c = await PlainClient.open(child.port);
    op = () => c.request(payload, w.replyBytes);
    close = () => c.close();
  } else {
    const c = new MsgrClient({ fsid: FSID, entity: 'client.bench', host: '127.0.0.1', port: child.port, payloadCrc: system === 'msgr', inflightRequestsMax: w.inflight });
    const meta = new Uint8Array(4);
    new DataView(meta.buffer).setUint32(0, w.replyBytes, true);
    op = () => c.request(1, meta, payload);
    close = () => c.close();
  }
  let counting = false;
  let ops = 0;
  let stop = false;
  const workers = Array.from({ length: w.inflight }, async () => {
    while (!stop) {
      await op();
      if (counting) ops++;
    }
  });
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const cpu0 = process.cpuUsage();
  const srv0 = procCpuS(child.proc.pid!);
  const t0 = process.hrtime.bigint();
  counting = true;
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  counting = false;
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const clientS = (cpu.user + cpu.system) / 1e6;
  const serverS = procCpuS(child.proc.pid!) - srv0;
  stop = true;
  await Promise.all(workers);
  await close();
  const bytes = ops * (w.requestBytes + w.replyBytes);
  const per = w.bandwidth ? bytes / 2 ** 30 : ops / 1000;
  return { opsPerS: ops / elapsedS, mbPerS: bytes / 1e6 / elapsedS, cpuS: (clientS + serverS) / per, clientCpuS: clientS / per, serverCpuS: serverS / per };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Runs the benchmark and returns its markdown section. */
export async function run(): Promise<string> {
  const children = new Map<System, Child>();
  try {
    for (const s of SYSTEMS) children.set(s, await startChild(s));
    const samples = new Map<string, Sample[]>();
    for (let r = 0; r < RUNS; r++) {
      for (const w of WORKLOADS) {
        const order = r % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
        for (const s of order) {
          const x = await measure(s, children.get(s)!, w);
          log(`run ${r + 1}/${RUNS} ${w.name} ${s}: ${w.bandwidth ? `${fmt(x.mbPerS)} MB/s` : `${fmt(x.opsPerS)} ops/s`}`);
          const key = `${w.name}|${s}`;
          samples.set(key, [...(samples.get(key) ?? []), x]);
        }
      }
    }
    const lines = [
      '## Messenger (data-plane transport)',
      '',
      `Client in the bench process, server in a child process, loopback; ${RUNS} runs of ${WINDOW_S} s after ${WARMUP_S} s warm-up, medians.`,
      'Baseline: plain length-prefixed frames on a bare `net` socket in the same run. MB/s counts payload bytes',
      '(10^6). The machine is shared: CPU per unit of work is the steadier comparison.',
      '',
      '| workload | messenger (crc32c) | messenger (no crc) | plain socket | messenger / plain | CPU (client + server): msgr / no crc / plain |',
      '|---|---:|---:|---:|---:|---:|',
    ];
    for (const w of WORKLOADS) {
      const get = (s: System): { v: number; cpu: number } => {
        const xs = samples.get(`${w.name}|${s}`) ?? [];
        return { v: median(xs.map((x) => (w.bandwidth ? x.mbPerS : x.opsPerS))), cpu: median(xs.map((x) => x.cpuS)) };
      };
      const [m, n, p] = [get('msgr'), get('msgr-nocrc'), get('plain')];
      const unit = w.bandwidth ? ' MB/s' : ' ops/s';
      const cpu = w.bandwidth ? `${fmt(m.cpu, 2)} / ${fmt(n.cpu, 2)} / ${fmt(p.cpu, 2)} s per GiB` : `${fmt(m.cpu * 1000)} / ${fmt(n.cpu * 1000)} / ${fmt(p.cpu * 1000)} ms per 1,000 ops`;
      lines.push(`| ${w.name} | ${fmt(m.v)}${unit} | ${fmt(n.v)}${unit} | ${fmt(p.v)}${unit} | ${fmt(m.v / p.v, 2)} | ${cpu} |`);
    }
    lines.push('', 'Reproduce: `npm run bench -- msgr` or `node --import tsx test/src/bench/msgr.ts`.');
    return lines.join('\n');
  } finally {
    for (const c of children.values()) {
      c.proc.stdin?.end();
      if (c.proc.exitCode === null && c.proc.pid !== undefined) {
        try {
          process.kill(c.proc.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    }
  }
}

const entry = process.argv[1] !== undefined && resolve(process.argv[1]) === SELF;
if (entry) {
  const i = process.argv.indexOf('--serve');
  if (i >= 0) void serve(process.argv[i + 1] ?? 'msgr');
  else {
    run().then(
      (md) => {
        process.stdout.write(`${md}\n`);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
      },
    );
  }
}
