/**
 * Shared setup of the gateway process tests: a cluster (3 mons + N OSDs), users made with
 * `aspen s3 user create`, and aspen-s3gw as its own process, with S3 clients for it.
 */
import { execFile } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { OsdTestCluster, REPO_ROOT, freePort, tcpConnectable, tsNodeArgs, waitFor } from '@aspen/test';

const ASPEN = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen.ts');
const S3GW = join(REPO_ROOT, 's3gw', 'src', 'bin', 'aspen-s3gw.ts');

export function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
  });
}

export interface Credentials { accessKeyId: string; secretAccessKey: string }

export interface Gateway {
  cluster: OsdTestCluster;
  endpoint: string;
  port: number;
  /** The gateway daemon's pid (node itself: VmHWM in /proc/<pid>/status is its peak RSS). */
  pid: number;
  client(c: Credentials): S3Client;
  user(uid: string): Promise<Credentials>;
}

/** Starts a cluster and a gateway; the caller tears `cluster` down. */
export async function startGateway(o: { osds?: number; gcDelayMs?: number; osdArgs?: string[] } = {}): Promise<Gateway> {
  const cluster = await OsdTestCluster.start({ osds: o.osds ?? 3, pool: '.aspen.s3.data', pgNum: 8, ...(o.osdArgs === undefined ? {} : { osdArgs: o.osdArgs }) });
  try {
    const port = await freePort();
    const gw = cluster.h.spawn({ name: 's3gw', args: tsNodeArgs(S3GW, ['--mon', cluster.monAddrs, '--listen', `127.0.0.1:${port}`, '--pg-num', '8', '--gc-delay-ms', String(o.gcDelayMs ?? 300)]) });
    await waitFor(tcpConnectable(port), { timeoutMs: 30_000, what: 'aspen-s3gw listening' });
    const endpoint = `http://127.0.0.1:${port}`;
    return {
      cluster, endpoint, port, pid: gw.pid,
      client: (c) => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: c }),
      async user(uid) {
        const r = await run(tsNodeArgs(ASPEN, ['-m', cluster.monAddrs, '-f', 'json', 's3', 'user', 'create', '--uid', uid, '--display-name', uid.toUpperCase()]));
        if (r.code !== 0) throw new Error(r.stderr);
        const k = (JSON.parse(r.stdout) as { keys: { access_key: string; secret_key: string }[] }).keys[0]!;
        return { accessKeyId: k.access_key, secretAccessKey: k.secret_key };
      },
    };
  } catch (err) {
    await cluster.teardown();
    throw err;
  }
}

/** Peak resident set of a process, bytes (VmHWM). */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** SHA-256 for @smithy/signature-v4 (HMAC when given a secret). */
export class NodeSha256 {
  private readonly h;
  constructor(secret?: string | Uint8Array) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', secret);
  }
  update(d: Uint8Array): void {
    this.h.update(d);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

/** The S3 error name, status and response headers of a failed call ('ok'/200 when it succeeds). */
export async function errOf(p: Promise<unknown>): Promise<{ name: string; status: number | undefined; headers: Record<string, string> }> {
  try {
    await p;
    return { name: 'ok', status: 200, headers: {} };
  } catch (err) {
    const e = err as { name: string; $metadata?: { httpStatusCode?: number }; $response?: { headers?: Record<string, string> } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, headers: e.$response?.headers ?? {} };
  }
}

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
export const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
export const MiB = 1 << 20;
