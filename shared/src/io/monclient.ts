/**
 * A client of the monitors (as librados' MonClient): sends commands to any reachable mon,
 * follows leader hints, retries what is safe to retry, and keeps an OSDMap subscription.
 *
 * Exactly-once: every request gets a fresh per-session `seq`; a retry of the same request
 * reuses it, so the monitors apply a state-changing command at most once even when the
 * reply was lost (Raft thesis §6.3). A command fails with `EAGAIN_NO_QUORUM` when no mon
 * can commit it within `timeoutMs`, never hangs.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AspenError, isErrorCode } from '../errors.ts';
import { MON_CHANNEL_OPTIONS, MonClientStub, type CommandReply, type CommandRequest, type MapUpdate, type SubscribeRequest } from './mon-api.ts';

/** Options of a {@link MonClient}. */
export interface MonClientOptions {
  /** Monitor addresses, `host:port`. */
  monAddrs: string[];
  /** Expected cluster fsid ('' = accept any). */
  fsid?: string;
  /** Default overall time for one command, ms. */
  timeoutMs?: number;
  /** Session id; random by default. */
  clientId?: string;
}

/** Codes after which another attempt (same seq) may succeed. */
const RETRYABLE = new Set(['ENOT_LEADER', 'EAGAIN_NO_QUORUM', 'E_PROPOSAL_DROPPED', 'ETIMEDOUT', 'ECONNREFUSED', 'E_CONFIG_CHANGE_PENDING']);

type Stub = grpc.Client & {
  command(req: CommandRequest, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, rep?: CommandReply) => void): void;
  subscribe(req: SubscribeRequest, opts?: grpc.CallOptions): grpc.ClientReadableStream<MapUpdate>;
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A connection to the monitor cluster. Call `close()` when done. */
export class MonClient {
  readonly clientId: string;
  private readonly stubs = new Map<string, Stub>();
  private addrs: string[];
  private preferred = 0;
  private seq = 0;
  private readonly fsid: string;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(opts: MonClientOptions) {
    if (opts.monAddrs.length === 0) throw new AspenError('EINVAL', 'no monitor addresses given');
    this.addrs = [...opts.monAddrs];
    this.fsid = opts.fsid ?? '';
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.clientId = opts.clientId ?? randomUUID();
  }

  private stub(addr: string): Stub {
    let s = this.stubs.get(addr);
    if (s === undefined) {
      s = new MonClientStub(addr, grpc.credentials.createInsecure(), MON_CHANNEL_OPTIONS) as unknown as Stub;
      this.stubs.set(addr, s);
    }
    return s;
  }

  private call(addr: string, req: CommandRequest, deadlineMs: number): Promise<CommandReply> {
    return new Promise((resolve) => {
      this.stub(addr).command(req, { deadline: new Date(deadlineMs) }, (err, rep) => {
        if (err !== null || rep === undefined) {
          const code = err?.code === grpc.status.DEADLINE_EXCEEDED ? 'ETIMEDOUT' : 'ECONNREFUSED';
          resolve({ code, message: `mon ${addr}: ${err?.details ?? 'no reply'}`, data: null });
        } else resolve(rep);
      });
    });
  }

  /**
   * Sends a command and returns its reply data.
   * @param command JSON with a `prefix`, as Ceph's mon commands.
   * @throws AspenError with the command's error code (ENOENT, EINVAL, EPERM …), or
   *   EAGAIN_NO_QUORUM when no monitor answered within `timeoutMs`.
   */
  async command(command: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<{ message: string; data: unknown }> {
    const rep = await this.commandReply(command, opts);
    if (rep.code !== 0) {
      const code = isErrorCode(rep.code) ? rep.code : 'EINVAL';
      throw new AspenError(code, rep.message.replace(/^[A-Z_]+: /, ''), (rep.data ?? {}) as Record<string, unknown>);
    }
    return { message: rep.message, data: rep.data };
  }

  /** As {@link command} but returns a failed reply instead of throwing (except for no quorum). */
  async commandReply(command: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<CommandReply> {
    if (this.closed) throw new AspenError('EINVAL', 'mon client is closed');
    const deadline = Date.now() + (opts.timeoutMs ?? this.timeoutMs);
    const req: CommandRequest = { command, clientId: this.clientId, seq: ++this.seq, fsid: this.fsid };
    let attempt = 0;
    let last = '';
    while (Date.now() < deadline && !this.closed) {
      const addr = this.addrs[this.preferred % this.addrs.length]!;
      const attemptDeadline = Math.min(deadline, Date.now() + Math.max(2_000, (deadline - Date.now()) / 2));
      const rep = await this.call(addr, req, attemptDeadline);
      if (rep.code === 0 && rep.leaderHint?.addr && rep.leaderHint.addr !== addr) {
        // A follower served it; send later requests to the leader directly.
        if (!this.addrs.includes(rep.leaderHint.addr)) this.addrs.push(rep.leaderHint.addr);
        this.preferred = this.addrs.indexOf(rep.leaderHint.addr);
      }
      if (rep.code === 0 || !RETRYABLE.has(rep.code)) return rep;
      last = rep.message;
      const hint = rep.leaderHint?.addr;
      if (rep.code === 'ENOT_LEADER' && hint && hint !== addr) {
        if (!this.addrs.includes(hint)) this.addrs.push(hint);
        this.preferred = this.addrs.indexOf(hint);
      } else {
        this.preferred++;
        attempt++;
        await sleep(Math.min(500, 25 * 2 ** Math.min(attempt, 5)));
      }
    }
    throw new AspenError('EAGAIN_NO_QUORUM', `no quorum: no monitor of ${this.addrs.join(',')} answered within ${opts.timeoutMs ?? this.timeoutMs} ms (last: ${last || 'none'})`);
  }

  /**
   * Subscribes to the OSDMap from `haveEpoch`. `onUpdate` receives a full map or
   * incrementals in order; the subscription reconnects to another mon on failure and
   * resumes from the last epoch `onUpdate` returned. Returns a function that cancels it.
   */
  subscribe(haveEpoch: number, onUpdate: (u: MapUpdate) => number): () => void {
    let have = haveEpoch;
    let stream: grpc.ClientReadableStream<MapUpdate> | null = null;
    let cancelled = false;
    const open = (): void => {
      if (cancelled || this.closed) return;
      const addr = this.addrs[this.preferred % this.addrs.length]!;
      const s = this.stub(addr).subscribe({ haveEpoch: have, fsid: this.fsid });
      stream = s;
      s.on('data', (u: MapUpdate) => { have = onUpdate(u); });
      const retry = (): void => {
        if (stream !== s) return;
        stream = null;
        this.preferred++;
        if (!cancelled) setTimeout(open, 300).unref();
      };
      s.on('error', retry);
      s.on('end', retry);
    };
    open();
    return () => {
      cancelled = true;
      stream?.cancel();
      stream = null;
    };
  }

  /** Closes every channel. */
  close(): void {
    this.closed = true;
    for (const s of this.stubs.values()) s.close();
    this.stubs.clear();
  }
}
