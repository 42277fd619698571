/**
 * The monitors' client API over gRPC (DESIGN.md "Transport": the control plane speaks
 * gRPC). Messages are JSON (as Ceph's mon commands are), framed by gRPC; service
 * definitions are built in code so no .proto files are needed.
 *
 * Service `aspen.MonClient`:
 * - `Command(CommandRequest) → CommandReply`: any mon command (`{"prefix": …}`).
 *   State-changing commands are committed through Raft (exactly once per
 *   `clientId`/`seq`); read commands are answered after a ReadIndex (linearizable).
 * - `Subscribe(SubscribeRequest) → stream MapUpdate`: OSDMap incrementals from the
 *   epoch the subscriber has (a full map when it is too far behind), then every new one.
 */
import * as grpc from '@grpc/grpc-js';

/** A command to the monitors. */
export interface CommandRequest {
  /** The command: JSON object with a `prefix`. */
  command: Record<string, unknown>;
  /** Client session id for exactly-once application ('' for read commands and daemons' reports). */
  clientId: string;
  /** Per-session sequence number (reuse the same seq when retrying the same request). */
  seq: number;
  /** Cluster fsid the client expects ('' = any). */
  fsid: string;
}

/** The reply: Ceph's (retval, outs, outbl) as (code, message, data). */
export interface CommandReply {
  /** 0 or an AspenError code. */
  code: 0 | string;
  message: string;
  data: unknown;
  /** On ENOT_LEADER: the leader's name and address, if known. */
  leaderHint?: { name: string; addr: string } | undefined;
}

/** A subscription to the OSDMap (Ceph MMonSubscribe "osdmap" with a start epoch). */
export interface SubscribeRequest {
  /** Epoch the subscriber has (0 = none: send the full map). */
  haveEpoch: number;
  fsid: string;
}

/** One step of a subscription stream: a full map or one incremental, base64 of the binary codec. */
export interface MapUpdate {
  kind: 'full' | 'incremental';
  epoch: number;
  /** Base64 of `osdMapToBytes` (full) or `incrementalToBytes` (incremental). */
  bytesBase64: string;
}

const json = <T>() => ({
  serialize: (v: T): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): T => JSON.parse(b.toString('utf8')) as T,
});

/** The gRPC service definition, shared by server and clients. */
export const monClientService = {
  command: {
    path: '/aspen.MonClient/Command',
    requestStream: false,
    responseStream: false,
    requestSerialize: json<CommandRequest>().serialize,
    requestDeserialize: json<CommandRequest>().deserialize,
    responseSerialize: json<CommandReply>().serialize,
    responseDeserialize: json<CommandReply>().deserialize,
  },
  subscribe: {
    path: '/aspen.MonClient/Subscribe',
    requestStream: false,
    responseStream: true,
    requestSerialize: json<SubscribeRequest>().serialize,
    requestDeserialize: json<SubscribeRequest>().deserialize,
    responseSerialize: json<MapUpdate>().serialize,
    responseDeserialize: json<MapUpdate>().deserialize,
  },
} satisfies grpc.ServiceDefinition;

/** Client constructor for {@link monClientService}. */
export const MonClientStub = grpc.makeGenericClientConstructor(monClientService, 'MonClient');

/** Channel options used by every mon client: fail fast instead of queueing forever. */
export const MON_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.max_receive_message_length': 256 << 20,
  'grpc.max_send_message_length': 256 << 20,
};
