/**
 * The monitor's network edge: one gRPC server carrying the Raft peer service and the
 * client API (`aspen.MonClient`, see shared/src/io/mon-api.ts), plus the leader's OSD
 * liveness duties. Thin by design (CONVENTIONS.md item 5): requests are parsed and
 * validated here, then handed to the node and the pure views.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AspenError } from '@aspen/shared';
import { incrementalToBytes, osdMapToBytes } from '@aspen/shared/osdmap/codec.ts';
import type { OsdMapIncremental } from '@aspen/shared/osdmap/types.ts';
import { monClientService, type CommandReply, type CommandRequest, type MapUpdate, type SubscribeRequest } from '@aspen/shared/io/mon-api.ts';
import { INTERNAL_PREFIXES, isReadPrefix, parseCommand, type CommandResult } from '../core/command.ts';
import { DEFAULT_LIVENESS_OPTIONS, OsdLiveness, type LivenessOptions } from '../core/liveness.ts';
import type { MonState } from '../core/state.ts';
import { encodeConfChangeContext } from '../core/state-machine.ts';
import { executeRead } from '../core/read-commands.ts';
import type { MonNode } from './mon-node.ts';
import type { MonMetrics } from './metrics.ts';

/** Subscribers one monitor serves at most. */
export const SUBSCRIBERS_MAX = 10_000;

/** Read commands that need the leader's live quorum view; followers redirect them. */
const LEADER_READS = new Set(['status', 'health', 'mon stat']);

/** Options of {@link MonServer}. */
export interface MonServerOptions {
  id: string;
  fsid: string;
  node: MonNode;
  logger: Logger;
  metrics: MonMetrics;
  /** Initial members, for `mon init` by the first leader. */
  initialMons: { name: string; addr: string }[];
  clock: () => number;
}

function secondsOption(state: MonState, name: string, dfltMs: number): number {
  const v = state.config.get('mon')?.get(name) ?? state.config.get('global')?.get(name);
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n * 1000 : dfltMs;
}

/** Liveness options from the replicated config (Ceph option names, in seconds). */
export function livenessOptions(state: MonState): LivenessOptions {
  const d = DEFAULT_LIVENESS_OPTIONS;
  const reporters = Number(state.config.get('mon')?.get('mon_osd_min_down_reporters') ?? state.config.get('global')?.get('mon_osd_min_down_reporters'));
  return {
    minDownReporters: Number.isInteger(reporters) && reporters > 0 ? reporters : d.minDownReporters,
    reportTimeoutMs: secondsOption(state, 'mon_osd_report_timeout', d.reportTimeoutMs),
    downOutIntervalMs: secondsOption(state, 'mon_osd_down_out_interval', d.downOutIntervalMs),
    failureReportTtlMs: d.failureReportTtlMs,
  };
}

/** The gRPC-facing monitor. */
export class MonServer {
  private readonly liveness = new OsdLiveness(DEFAULT_LIVENESS_OPTIONS);
  private readonly subscribers = new Set<(incs: OsdMapIncremental[], full: boolean) => void>();
  private livenessTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: MonServerOptions) {
    o.node.onLeaderChange((isLeader) => {
      if (isLeader && o.node.sm) this.liveness.reset(o.clock(), o.node.sm.state.osdMap);
      if (isLeader && !o.node.sm) o.node.proposeInternal({ prefix: 'mon init', fsid: o.fsid, mons: o.initialMons }, o.clock());
    });
    o.node.onApply((e) => {
      // A boot committed through any monitor restarts the OSD's grace on the leader.
      if (o.node.isLeader) for (const inc of e.incrementals) for (const up of inc.newUp) this.liveness.onBoot(up.id, o.clock());
      if (e.incrementals.length > 0 || e.monMapChanged) {
        for (const s of this.subscribers) s(e.incrementals, e.incrementals.length === 0);
      }
    });
  }

  /** Registers the client API on `server`. */
  attach(server: grpc.Server): void {
    server.addService(monClientService, {
      command: (call: grpc.ServerUnaryCall<CommandRequest, CommandReply>, cb: grpc.sendUnaryData<CommandReply>) => {
        const started = this.o.clock();
        this.handleCommand(call.request).then(
          (rep) => {
            this.o.metrics.observeCommand(String(call.request.command?.prefix ?? '?'), rep.code, this.o.clock() - started);
            cb(null, rep);
          },
          (err: unknown) => cb(null, this.errorReply(err)),
        );
      },
      subscribe: (call: grpc.ServerWritableStream<SubscribeRequest, MapUpdate>) => this.handleSubscribe(call),
    });
  }

  /** Starts the leader's periodic duties (liveness, `mon init` retries). */
  start(): void {
    this.livenessTimer = setInterval(() => this.leaderTick(), 1000);
  }

  stop(): void {
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.subscribers.clear();
  }

  private leaderTick(): void {
    const node = this.o.node;
    this.o.metrics.updateRaft(node);
    if (!node.isLeader) return;
    if (!node.sm) {
      node.proposeInternal({ prefix: 'mon init', fsid: this.o.fsid, mons: this.o.initialMons }, this.o.clock());
      return;
    }
    this.liveness.setOptions(livenessOptions(node.sm.state));
    for (const cmd of this.liveness.tick(this.o.clock(), node.sm.state.osdMap)) {
      this.o.logger.info({ command: cmd }, 'liveness decision');
      node.proposeInternal(cmd, this.o.clock());
    }
  }

  private errorReply(err: unknown): CommandReply {
    if (err instanceof AspenError) {
      const hint = this.leaderHint();
      return { code: err.code, message: err.message, data: err.details, leaderHint: err.code === 'ENOT_LEADER' || err.code === 'EAGAIN_NO_QUORUM' ? hint : undefined };
    }
    this.o.logger.error({ err: String(err), stack: (err as Error)?.stack }, 'command failed unexpectedly');
    return { code: 'EIO', message: `internal error: ${String(err)}`, data: null };
  }

  private leaderHint(): { name: string; addr: string } | undefined {
    const leader = this.o.node.leader;
    if (leader === null || leader === this.o.id) return undefined;
    const addr = this.o.node.addrOf(leader);
    return addr === undefined ? undefined : { name: leader, addr };
  }

  private notLeader(): CommandReply {
    return { code: 'ENOT_LEADER', message: `mon.${this.o.id} is not the leader`, data: null, leaderHint: this.leaderHint() };
  }

  private async handleCommand(req: CommandRequest): Promise<CommandReply> {
    if (typeof req !== 'object' || req === null || typeof req.command !== 'object' || req.command === null) {
      throw new AspenError('EINVAL', 'request must carry a command object');
    }
    if (req.fsid && req.fsid !== this.o.fsid) throw new AspenError('E_WRONG_CLUSTER', `this monitor is in cluster ${this.o.fsid}, not ${req.fsid}`);
    const prefix = String(req.command.prefix ?? '');
    const node = this.o.node;
    const now = this.o.clock();
    if (prefix === 'osd beacon' || prefix === 'osd failure') return this.handleLiveness(req.command, now);
    if (prefix === 'mon add' || prefix === 'mon remove' || prefix === 'mon transfer-leader') return this.handleMembership(req.command);
    if (isReadPrefix(prefix)) {
      if (LEADER_READS.has(prefix) && !node.isLeader) {
        if (node.leader === null) throw new AspenError('EAGAIN_NO_QUORUM', 'no leader elected (no quorum)');
        return this.notLeader();
      }
      await node.linearizableRead();
      const sm = node.sm;
      if (!sm) throw new AspenError('EAGAIN_NO_QUORUM', 'cluster maps not initialized yet');
      const r = executeRead(sm.state, req.command, node.quorumInfo());
      return { code: 0, message: r.message, data: r.data };
    }
    if (INTERNAL_PREFIXES.has(prefix)) throw new AspenError('EPERM', `'${prefix}' is internal to the monitors`);
    const cmd = parseCommand(req.command);
    if (typeof req.clientId !== 'string' || req.clientId === '' || !Number.isSafeInteger(req.seq) || req.seq < 1) {
      throw new AspenError('EINVAL', 'state-changing commands need a clientId and a positive seq');
    }
    let result: CommandResult;
    try {
      result = await node.submit(cmd, req.clientId, req.seq, now);
    } catch (err) {
      if (err instanceof AspenError && err.code === 'ENOT_LEADER') return this.notLeader();
      throw err;
    }
    // Point the client at the leader: its next writes then skip the forwarding hop.
    return { code: result.code, message: result.message, data: result.data, leaderHint: node.isLeader ? undefined : this.leaderHint() };
  }

  private handleLiveness(command: Record<string, unknown>, now: number): CommandReply {
    if (!this.o.node.isLeader) {
      if (this.o.node.leader === null) throw new AspenError('EAGAIN_NO_QUORUM', 'no leader elected (no quorum)');
      return this.notLeader();
    }
    const id = Number(command.id);
    if (!Number.isInteger(id) || id < 0) throw new AspenError('EINVAL', 'id must be an OSD id');
    if (command.prefix === 'osd beacon') {
      this.liveness.onBeacon(id, now);
      // Optional store state (Ceph MOSDFull): proposed as `osd full` only when it changes.
      const { full, nearfull } = command;
      if ((full !== undefined && typeof full !== 'boolean') || (nearfull !== undefined && typeof nearfull !== 'boolean')) {
        throw new AspenError('EINVAL', 'full and nearfull must be booleans');
      }
      const map = this.o.node.sm?.state.osdMap;
      if (typeof full === 'boolean' && map !== undefined) {
        const cmd = this.liveness.onFullReport(id, { full, nearfull: nearfull === true }, now, map);
        if (cmd !== null) {
          this.o.logger.info({ command: cmd }, 'osd full state changed');
          this.o.node.proposeInternal(cmd, now);
        }
      }
      return { code: 0, message: '', data: { epoch: this.o.node.sm?.state.osdMap.epoch ?? 0 } };
    }
    const target = Number(command.target);
    if (!Number.isInteger(target) || target < 0) throw new AspenError('EINVAL', 'target must be an OSD id');
    if (command.cancel === true) this.liveness.onFailureCancel(target, id);
    else this.liveness.onFailureReport(target, id, now);
    return { code: 0, message: '', data: {} };
  }

  private async handleMembership(command: Record<string, unknown>): Promise<CommandReply> {
    const node = this.o.node;
    if (!node.isLeader) {
      if (node.leader === null) throw new AspenError('EAGAIN_NO_QUORUM', 'no leader elected (no quorum)');
      return this.notLeader();
    }
    const name = String(command.name ?? '');
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new AspenError('EINVAL', `invalid mon name '${name}'`);
    const members = node.members;
    if (command.prefix === 'mon transfer-leader') {
      if (!members.voters.includes(name)) throw new AspenError('ENOENT', `mon.${name} is not a voting member`);
      node.transferLeadership(name);
      return { code: 0, message: `transferring leadership to mon.${name}`, data: {} };
    }
    if (command.prefix === 'mon add') {
      const addr = String(command.addr ?? '');
      if (!/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/.test(addr)) throw new AspenError('EINVAL', `invalid address '${addr}' (expected host:port)`);
      if (members.voters.includes(name)) return { code: 0, message: `mon.${name} at ${addr} already exists`, data: {} };
      await node.changeMembership({ type: 'add_voter', nodeId: name, context: encodeConfChangeContext({ addr, stampMs: this.o.clock() }) });
      return { code: 0, message: `adding mon.${name} at ${addr}`, data: {} };
    }
    if (!members.voters.includes(name) && !members.learners.includes(name)) throw new AspenError('ENOENT', `mon.${name} does not exist`);
    if (name === this.o.id) {
      // A leader removing itself: hand leadership away first, then the new leader removes us.
      const other = members.voters.find((v) => v !== name);
      if (other === undefined) throw new AspenError('EINVAL', 'cannot remove the last monitor');
      node.transferLeadership(other);
      throw new AspenError('ENOT_LEADER', `mon.${name} is handing leadership to mon.${other}; retry`);
    }
    await node.changeMembership({ type: 'remove_node', nodeId: name, context: encodeConfChangeContext({ addr: '', stampMs: this.o.clock() }) });
    return { code: 0, message: `removing mon.${name}`, data: {} };
  }

  private handleSubscribe(call: grpc.ServerWritableStream<SubscribeRequest, MapUpdate>): void {
    const node = this.o.node;
    if (this.subscribers.size >= SUBSCRIBERS_MAX) {
      call.destroy(Object.assign(new Error('too many subscribers'), { code: grpc.status.RESOURCE_EXHAUSTED }));
      return;
    }
    if (call.request.fsid && call.request.fsid !== this.o.fsid) {
      call.destroy(Object.assign(new Error(`cluster ${this.o.fsid}, not ${call.request.fsid}`), { code: grpc.status.FAILED_PRECONDITION }));
      return;
    }
    let have = Number(call.request.haveEpoch) || 0;
    const sendFull = (): void => {
      const map = node.sm!.state.osdMap;
      call.write({ kind: 'full', epoch: map.epoch, bytesBase64: Buffer.from(osdMapToBytes(map)).toString('base64') });
      have = map.epoch;
    };
    const catchUp = (): void => {
      const sm = node.sm;
      if (!sm) return;
      const map = sm.state.osdMap;
      if (have >= map.epoch) return;
      const incs = sm.state.incrementals;
      const oldest = incs[0]?.epoch ?? Infinity;
      if (have === 0 || have + 1 < oldest) {
        sendFull();
        return;
      }
      for (const inc of incs) {
        if (inc.epoch <= have) continue;
        call.write({ kind: 'incremental', epoch: inc.epoch, bytesBase64: Buffer.from(incrementalToBytes(inc)).toString('base64') });
        have = inc.epoch;
      }
    };
    const listener = (): void => catchUp();
    this.subscribers.add(listener);
    const done = (): void => { this.subscribers.delete(listener); };
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
    catchUp();
  }
}
