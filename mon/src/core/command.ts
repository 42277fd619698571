/**
 * Monitor commands. As in Ceph (MMonCommand), an admin command is a JSON object whose
 * `prefix` names it (`{"prefix":"osd pool create","pool":"rbd","pg_num":32}`); daemons'
 * messages (OSD boot, failure reports, PG stats) use the same shape. Commands that change
 * state travel through Raft inside a {@link CommandEnvelope}; read-only commands are served
 * after a ReadIndex.
 */
import { AspenError, Decoder, Encoder } from '@aspen/shared';
import { z } from 'zod';
import { fsMutatingSchemas, fsReadSchemas } from './fs-schema.ts';

const ENVELOPE_V = 1;

/**
 * What a Raft entry carries: a command, the client session that sent it (for exactly-once
 * application, Raft thesis §6.3) and the leader's clock when it was proposed, so that
 * applying is deterministic on every member.
 */
export interface CommandEnvelope {
  /** Client session id; '' for commands the monitors generate themselves (no dedup). */
  clientId: string;
  /** Per-session sequence number, increasing by one per new request. */
  seq: number;
  /** Leader's wall clock at proposal, ms since the Unix epoch. */
  stampMs: number;
  /** The command, JSON with a `prefix`. */
  command: MonCommand;
}

/** Encodes a command envelope for a Raft entry. */
export function encodeEnvelope(env: CommandEnvelope): Uint8Array {
  return new Encoder(128 + 64)
    .struct(ENVELOPE_V, 1, (e) => e.string(env.clientId).u53(env.seq).u53(env.stampMs).string(JSON.stringify(env.command)))
    .finish();
}

/**
 * Decodes a command envelope.
 * @throws AspenError E_DECODE on malformed bytes; EINVAL on a command that fails validation.
 */
export function decodeEnvelope(bytes: Uint8Array): CommandEnvelope {
  const d = new Decoder(bytes);
  const env = d.struct(ENVELOPE_V, 'command envelope', () => {
    const clientId = d.string();
    const seq = d.u53();
    const stampMs = d.u53();
    const json = d.string();
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch {
      throw new AspenError('E_DECODE', 'command is not valid JSON');
    }
    return { clientId, seq, stampMs, command: parseCommand(raw) };
  });
  d.done('command envelope');
  return env;
}

const name = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'only letters, digits and _ . : -');
const osdIdNum = z.number().int().min(0).max(1_000_000);
const uint = z.number().int().min(0);
const addr = z.string().regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/, 'expected host:port');
const pgidText = z.string().regex(/^\d+\.[0-9a-f]+$/, 'expected POOL.SEEDHEX');
const s3Uid = z.string().min(1).max(64).regex(/^[A-Za-z0-9_.@-]+$/, 'only letters, digits and _ . @ -');
const s3AccessKey = z.string().regex(/^[A-Za-z0-9]{16,128}$/, 'expected 16-128 letters or digits');
const s3SecretKey = z.string().regex(/^[A-Za-z0-9/+=]{16,128}$/, 'expected 16-128 characters of [A-Za-z0-9/+=]');

/** Every state-changing command, validated with zod at the edge and again on apply. */
export const mutatingCommandSchema = z.discriminatedUnion('prefix', [
  // Internal: the first leader creates the maps (Ceph PaxosService::create_initial). Refused from clients.
  z.object({ prefix: z.literal('mon init'), fsid: z.string().uuid(), mons: z.array(z.object({ name, addr })).min(1) }),
  z.object({ prefix: z.literal('osd new'), uuid: z.string().uuid(), id: osdIdNum.optional() }),
  z.object({ prefix: z.literal('osd boot'), id: osdIdNum, uuid: z.string().uuid(), addr, host: name, weight: z.number().min(0).max(1e6).optional() }),
  z.object({ prefix: z.literal('osd down'), ids: z.array(osdIdNum).min(1), reason: z.string().max(256).optional() }),
  z.object({ prefix: z.literal('osd out'), ids: z.array(osdIdNum).min(1), auto: z.boolean().optional() }),
  z.object({ prefix: z.literal('osd in'), ids: z.array(osdIdNum).min(1) }),
  z.object({ prefix: z.literal('osd reweight'), id: osdIdNum, weight: z.number().min(0).max(1) }),
  z.object({ prefix: z.literal('osd crush reweight'), id: osdIdNum, weight: z.number().min(0).max(1e6) }),
  z.object({ prefix: z.literal('osd rm'), ids: z.array(osdIdNum).min(1) }),
  z.object({ prefix: z.literal('osd set'), key: z.enum(['noout', 'noin', 'noup', 'nodown', 'pause', 'norecover', 'nobackfill', 'noscrub', 'nodeep-scrub']) }),
  z.object({ prefix: z.literal('osd unset'), key: z.enum(['noout', 'noin', 'noup', 'nodown', 'pause', 'norecover', 'nobackfill', 'noscrub', 'nodeep-scrub']) }),
  z.object({
    prefix: z.literal('osd pool create'), pool: name, pg_num: uint.min(1).max(65536).optional(), pgp_num: uint.min(1).max(65536).optional(),
    pool_type: z.enum(['replicated', 'erasure']).optional(), erasure_code_profile: name.optional(),
    size: uint.min(1).max(16).optional(), min_size: uint.min(1).max(16).optional(), crush_rule: z.number().int().min(0).optional(),
  }),
  z.object({ prefix: z.literal('osd pool rm'), pool: name, pool2: name.optional(), yes_i_really_really_mean_it: z.boolean().optional() }),
  z.object({ prefix: z.literal('osd pool rename'), srcpool: name, destpool: name }),
  z.object({ prefix: z.literal('osd pool set'), pool: name, var: z.enum(['size', 'min_size', 'pg_num', 'pgp_num', 'crush_rule']), val: z.string().max(64) }),
  z.object({ prefix: z.literal('osd pool application enable'), pool: name, app: name }),
  // librados selfmanaged_snap_create / _remove (Ceph MPoolOp POOL_OP_CREATE_UNMANAGED_SNAP / DELETE_UNMANAGED_SNAP).
  z.object({ prefix: z.literal('osd pool selfmanaged-snap create'), pool: name }),
  z.object({ prefix: z.literal('osd pool selfmanaged-snap rm'), pool: name, snapid: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }),
  // Internal: the leader's record of a change in an OSD's beaconed full state (Ceph MOSDFull → new_state).
  z.object({ prefix: z.literal('osd full'), id: osdIdNum, full: z.boolean(), nearfull: z.boolean() }),
  z.object({ prefix: z.literal('osd erasure-code-profile set'), name, profile: z.array(z.string().max(128)).max(32), force: z.boolean().optional() }),
  z.object({ prefix: z.literal('osd erasure-code-profile rm'), name }),
  z.object({ prefix: z.literal('osd pg-temp'), pgid: pgidText, osds: z.array(z.union([osdIdNum, z.literal(0x7fffffff)])).max(32) }),
  z.object({
    prefix: z.literal('pg stats'), osd: osdIdNum, epoch: uint,
    pgs: z.array(z.object({
      pgid: pgidText, state: z.string().max(256), up: z.array(z.number().int()).max(32), acting: z.array(z.number().int()).max(32),
      num_objects: uint, num_bytes: uint, last_scrub_ms: uint.optional(), last_deep_scrub_ms: uint.optional(),
      recovery_objects_missing: uint.optional(),
    })).max(100_000),
  }),
  z.object({ prefix: z.literal('config set'), who: name, name, value: z.string().max(4096) }),
  z.object({ prefix: z.literal('config rm'), who: name, name }),
  // S3 users and keys (radosgw-admin user/key), see s3-users.ts. Keys are generated by the client.
  z.object({ prefix: z.literal('s3 user create'), uid: s3Uid, display_name: z.string().min(1).max(256), access_key: s3AccessKey, secret_key: s3SecretKey }),
  z.object({ prefix: z.literal('s3 user rm'), uid: s3Uid }),
  z.object({ prefix: z.literal('s3 key create'), uid: s3Uid, access_key: s3AccessKey, secret_key: s3SecretKey }),
  z.object({ prefix: z.literal('s3 key rm'), access_key: s3AccessKey }),
  // Filesystems and their namespaces (fs-schema.ts, fs-commands.ts).
  ...fsMutatingSchemas,
]);

/** A state-changing command. */
export type MutatingCommand = z.infer<typeof mutatingCommandSchema>;

/** Read-only commands (served from applied state after ReadIndex). */
export const readCommandSchema = z.discriminatedUnion('prefix', [
  z.object({ prefix: z.literal('status') }),
  z.object({ prefix: z.literal('health'), detail: z.boolean().optional() }),
  z.object({ prefix: z.literal('mon stat') }),
  z.object({ prefix: z.literal('mon dump') }),
  z.object({ prefix: z.literal('osd tree') }),
  z.object({ prefix: z.literal('osd dump') }),
  z.object({ prefix: z.literal('osd stat') }),
  z.object({ prefix: z.literal('osd pool ls'), detail: z.boolean().optional() }),
  z.object({ prefix: z.literal('osd pool get'), pool: name, var: z.string().max(64) }),
  z.object({ prefix: z.literal('osd erasure-code-profile ls') }),
  z.object({ prefix: z.literal('osd erasure-code-profile get'), name }),
  z.object({ prefix: z.literal('osd crush dump') }),
  z.object({ prefix: z.literal('pg dump') }),
  z.object({ prefix: z.literal('pg map'), pgid: pgidText }),
  z.object({ prefix: z.literal('osd map'), pool: name, object: z.string().min(1).max(4096) }),
  z.object({ prefix: z.literal('config get'), who: name, name: name.optional() }),
  z.object({ prefix: z.literal('config dump') }),
  z.object({ prefix: z.literal('s3 user ls') }),
  z.object({ prefix: z.literal('s3 user info'), uid: s3Uid }),
  z.object({ prefix: z.literal('s3 key get'), access_key: s3AccessKey }),
  ...fsReadSchemas,
]);

/** A read-only command. */
export type ReadCommand = z.infer<typeof readCommandSchema>;

/** Any monitor command. */
export type MonCommand = MutatingCommand;

/** Prefixes that only the monitors themselves may propose. */
export const INTERNAL_PREFIXES: ReadonlySet<string> = new Set(['mon init', 'osd full']);

/** Whether `prefix` names a read-only command. */
export function isReadPrefix(prefix: string): boolean {
  return readCommandSchema.options.some((o) => o.shape.prefix.value === prefix);
}

function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(command)'}: ${i.message}`).join('; ');
}

/**
 * Validates a state-changing command.
 * @throws AspenError EINVAL naming the bad field, or an unknown prefix.
 */
export function parseCommand(raw: unknown): MutatingCommand {
  const r = mutatingCommandSchema.safeParse(raw);
  if (!r.success) throw new AspenError('EINVAL', `invalid command: ${zodMessage(r.error)}`);
  return r.data;
}

/**
 * Validates a read-only command.
 * @throws AspenError EINVAL naming the bad field, or an unknown prefix.
 */
export function parseReadCommand(raw: unknown): ReadCommand {
  const r = readCommandSchema.safeParse(raw);
  if (!r.success) throw new AspenError('EINVAL', `invalid command: ${zodMessage(r.error)}`);
  return r.data;
}

/** The outcome of a command, as Ceph's (retval, outs, outbl): code 0 on success. */
export interface CommandResult {
  /** 0 on success, else the AspenError code. */
  code: 0 | string;
  /** Human-readable status line (Ceph's `outs`). */
  message: string;
  /** Structured result for `-f json`. */
  data: unknown;
}
