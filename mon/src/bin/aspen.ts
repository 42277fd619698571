/**
 * `aspen`: the admin CLI (like `ceph`). Every command accepts `-f json` (or
 * `--format json-pretty`) and prints Ceph-shaped JSON; plain output is for people.
 * Monitors come from `-m HOST:PORT[,…]`, else `$ASPEN_MON_HOST`, else `mon_host` in the
 * discovered aspen.conf. A command fails within `--connect-timeout` with "no quorum"
 * when no monitor can answer, never hangs. Exit status: 0, or the errno of the error
 * (ENOENT 2, EINVAL 22, …), as `ceph` does.
 */
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { AspenError, type ErrorCode } from '@aspen/shared';
import { resolveMonAddrs } from '@aspen/shared/io/config.ts';
import { MonClient } from '@aspen/shared/io/monclient.ts';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { renderPlain } from './aspen-render.ts';

/** errno values for exit statuses (Linux). */
const ERRNO: Partial<Record<ErrorCode, number>> = {
  EPERM: 1, ENOENT: 2, EIO: 5, E2BIG: 7, EAGAIN_NO_QUORUM: 11, EBUSY: 16, EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENOSPC: 28,
  EMLINK: 31, ERANGE: 34, ENAMETOOLONG: 36, ENOTEMPTY: 39, ENODATA: 61, ETIMEDOUT: 110, ECONNREFUSED: 111, E_UNSUPPORTED: 95,
};

interface GlobalOpts {
  mon?: string;
  conf?: string;
  format: string;
  connectTimeout: number;
}

const program = new Command('aspen')
  .description('Aspen cluster administration (like `ceph`)')
  .option('-m, --mon <addrs>', 'monitor addresses HOST:PORT[,…]')
  .option('-c, --conf <file>', 'aspen.conf to read mon_host from')
  .option('-f, --format <fmt>', 'output format: plain, json, json-pretty', 'plain')
  .option('--connect-timeout <seconds>', 'give up (no quorum) after this many seconds', (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number of seconds, got '${v}'`);
    return n;
  }, 10)
  .showHelpAfterError();

function monAddrs(g: GlobalOpts): string[] {
  return resolveMonAddrs(g.mon, g.conf);
}

/** Sends `command` and prints the reply in the chosen format; exits with its status. */
async function send(command: Record<string, unknown>): Promise<void> {
  const g = program.opts<GlobalOpts>();
  const client = new MonClient({ monAddrs: monAddrs(g), timeoutMs: Math.max(1, g.connectTimeout) * 1000 });
  try {
    const reply = await client.command(command);
    if (g.format === 'json') process.stdout.write(`${JSON.stringify(reply.data)}\n`);
    else if (g.format === 'json-pretty') process.stdout.write(`${JSON.stringify(reply.data, null, 2)}\n`);
    else {
      const text = renderPlain(String(command.prefix), reply.data, reply.message);
      if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
  } finally {
    client.close();
  }
}

const ids = (vals: string[]): number[] => vals.map((v) => {
  const n = Number(v.replace(/^osd\./, ''));
  if (!Number.isInteger(n) || n < 0) throw new AspenError('EINVAL', `invalid OSD id '${v}'`);
  return n;
});

const action = <A extends unknown[]>(fn: (...args: A) => Record<string, unknown>) => async (...args: A): Promise<void> => send(fn(...args));

program.command('status').alias('-s').description('cluster status (like ceph -s)').action(action(() => ({ prefix: 'status' })));
program.command('health').argument('[detail]', '"detail" for details').description('cluster health').action(action((d?: string) => ({ prefix: 'health', detail: d === 'detail' })));

const mon = program.command('mon').description('monitor commands');
mon.command('stat').description('monitor quorum summary').action(action(() => ({ prefix: 'mon stat' })));
mon.command('dump').description('the MonMap').action(action(() => ({ prefix: 'mon dump' })));
mon.command('add').argument('<name>').argument('<addr>', 'HOST:PORT').description('add a monitor (start it with --mkfs --join first)')
  .action(action((name: string, addr: string) => ({ prefix: 'mon add', name, addr })));
mon.command('remove').alias('rm').argument('<name>').description('remove a monitor').action(action((name: string) => ({ prefix: 'mon remove', name })));
mon.command('transfer-leader').argument('<name>').description('hand Raft leadership to a monitor').action(action((name: string) => ({ prefix: 'mon transfer-leader', name })));

const osd = program.command('osd').description('OSD commands');
osd.command('tree').description('CRUSH hierarchy with OSD states').action(action(() => ({ prefix: 'osd tree' })));
osd.command('dump').description('the OSDMap').action(action(() => ({ prefix: 'osd dump' })));
osd.command('stat').description('OSD counts').action(action(() => ({ prefix: 'osd stat' })));
osd.command('new').argument('<uuid>').argument('[id]').description('allocate an OSD id').action(action((uuid: string, id?: string) => ({ prefix: 'osd new', uuid, ...(id === undefined ? {} : { id: ids([id])[0] }) })));
osd.command('down').argument('<ids...>').description('mark OSDs down').action(action((v: string[]) => ({ prefix: 'osd down', ids: ids(v) })));
osd.command('out').argument('<ids...>').description('mark OSDs out').action(action((v: string[]) => ({ prefix: 'osd out', ids: ids(v) })));
osd.command('in').argument('<ids...>').description('mark OSDs in').action(action((v: string[]) => ({ prefix: 'osd in', ids: ids(v) })));
osd.command('rm').argument('<ids...>').description('remove OSDs (must be down)').action(action((v: string[]) => ({ prefix: 'osd rm', ids: ids(v) })));
osd.command('reweight').argument('<id>').argument('<weight>', '0.0–1.0').description('set an OSD reweight').action(action((id: string, w: string) => ({ prefix: 'osd reweight', id: ids([id])[0], weight: Number(w) })));
osd.command('set').argument('<flag>').description('set a cluster flag (noout, noup, …)').action(action((key: string) => ({ prefix: 'osd set', key })));
osd.command('unset').argument('<flag>').description('unset a cluster flag').action(action((key: string) => ({ prefix: 'osd unset', key })));
osd.command('map').argument('<pool>').argument('<object>').description('where an object is placed').action(action((pool: string, object: string) => ({ prefix: 'osd map', pool, object })));
const crush = osd.command('crush').description('CRUSH map commands');
crush.command('reweight').argument('<name>', 'osd.N').argument('<weight>').description('set an OSD CRUSH weight').action(action((name: string, w: string) => ({ prefix: 'osd crush reweight', id: ids([name])[0], weight: Number(w) })));
crush.command('dump').description('the CRUSH map').action(action(() => ({ prefix: 'osd crush dump' })));

const pool = osd.command('pool').description('pool commands');
pool.command('create').argument('<pool>').argument('[args...]', '[pg_num [pgp_num]] [replicated|erasure [profile]]')
  .option('--size <n>', 'replicas (replicated pools)').option('--min-size <n>', 'min_size')
  .description('create a pool (Ceph argument order)')
  .action(async (name: string, args: string[], o: { size?: string; minSize?: string }) => {
    const cmd: Record<string, unknown> = { prefix: 'osd pool create', pool: name };
    const nums: number[] = [];
    let i = 0;
    while (i < args.length && /^\d+$/.test(args[i]!)) nums.push(Number(args[i++]));
    if (nums.length > 2) throw new AspenError('EINVAL', 'at most pg_num and pgp_num may be given');
    if (nums[0] !== undefined) cmd.pg_num = nums[0];
    if (nums[1] !== undefined) cmd.pgp_num = nums[1];
    if (args[i] !== undefined) {
      if (args[i] !== 'replicated' && args[i] !== 'erasure') throw new AspenError('EINVAL', `pool type must be replicated or erasure, got '${args[i]}'`);
      cmd.pool_type = args[i++];
    }
    if (args[i] !== undefined) {
      if (cmd.pool_type === 'erasure') cmd.erasure_code_profile = args[i++];
      else cmd.crush_rule = Number(args[i++]);
    }
    if (i < args.length) throw new AspenError('EINVAL', `unexpected argument '${args[i]}'`);
    if (o.size !== undefined) cmd.size = Number(o.size);
    if (o.minSize !== undefined) cmd.min_size = Number(o.minSize);
    await send(cmd);
  });
pool.command('ls').argument('[detail]').description('list pools').action(action((d?: string) => ({ prefix: 'osd pool ls', detail: d === 'detail' })));
pool.command('get').argument('<pool>').argument('<var>', 'size|min_size|pg_num|pgp_num|crush_rule|all').description('get a pool setting').action(action((p: string, v: string) => ({ prefix: 'osd pool get', pool: p, var: v })));
pool.command('set').argument('<pool>').argument('<var>').argument('<val>').description('change a pool setting').action(action((p: string, v: string, val: string) => ({ prefix: 'osd pool set', pool: p, var: v, val })));
pool.command('rm').alias('delete').argument('<pool>').argument('[pool2]').option('--yes-i-really-really-mean-it', 'confirm').description('delete a pool (name twice + confirmation, and mon_allow_pool_delete=true)')
  .action(action((p: string, p2: string | undefined, o: { yesIReallyReallyMeanIt?: boolean }) => ({ prefix: 'osd pool rm', pool: p, ...(p2 === undefined ? {} : { pool2: p2 }), yes_i_really_really_mean_it: o.yesIReallyReallyMeanIt === true })));
pool.command('rename').argument('<src>').argument('<dst>').description('rename a pool').action(action((s: string, d: string) => ({ prefix: 'osd pool rename', srcpool: s, destpool: d })));
pool.command('application').argument('<verb>', 'enable').argument('<pool>').argument('<app>').description('tag a pool with an application')
  .action(action((verb: string, p: string, app: string) => {
    if (verb !== 'enable') throw new AspenError('EINVAL', `only 'enable' is supported, got '${verb}'`);
    return { prefix: 'osd pool application enable', pool: p, app };
  }));

const ecp = osd.command('erasure-code-profile').description('erasure-code profiles');
ecp.command('set').argument('<name>').argument('[kv...]', 'k=K m=M [stripe_unit=B] [crush-failure-domain=T]').option('--force', 'override an unused profile').description('create a profile')
  .action(action((name: string, kv: string[], o: { force?: boolean }) => ({ prefix: 'osd erasure-code-profile set', name, profile: kv, force: o.force === true })));
ecp.command('get').argument('<name>').description('show a profile').action(action((name: string) => ({ prefix: 'osd erasure-code-profile get', name })));
ecp.command('ls').description('list profiles').action(action(() => ({ prefix: 'osd erasure-code-profile ls' })));
ecp.command('rm').argument('<name>').description('remove an unused profile').action(action((name: string) => ({ prefix: 'osd erasure-code-profile rm', name })));

const pg = program.command('pg').description('placement group commands');
pg.command('dump').argument('[what]', 'pgs (default)').description('every PG with state and mapping').action(action(() => ({ prefix: 'pg dump' })));
pg.command('map').argument('<pgid>').description('up and acting sets of a PG').action(action((pgid: string) => ({ prefix: 'pg map', pgid })));
for (const verb of ['scrub', 'deep-scrub', 'repair'] as const) {
  pg.command(verb).argument('<pgid>').description(`instruct the PG's primary to ${verb} it (as ceph pg ${verb})`).action(async (pgid: string) => {
    const g = program.opts<GlobalOpts>();
    const client = await RadosClient.connect({ monAddrs: monAddrs(g), opTimeoutMs: Math.max(1, g.connectTimeout) * 1000 });
    try {
      const r = await client.pgCommand(`pg ${verb}`, pgid);
      process.stdout.write(g.format.startsWith('json') ? `${JSON.stringify(r)}\n` : `${r.message}\n`);
    } finally {
      await client.close();
    }
  });
}

const config = program.command('config').description('centralized configuration');
config.command('set').argument('<who>').argument('<name>').argument('<value>').description('set an option').action(action((who: string, name: string, value: string) => ({ prefix: 'config set', who, name, value })));
config.command('rm').argument('<who>').argument('<name>').description('remove an option').action(action((who: string, name: string) => ({ prefix: 'config rm', who, name })));
config.command('get').argument('<who>').argument('[name]').description('show options').action(action((who: string, name?: string) => ({ prefix: 'config get', who, ...(name ? { name } : {}) })));
config.command('dump').description('every option').action(action(() => ({ prefix: 'config dump' })));

// S3 users and keys (radosgw-admin user/key). Keys are generated here, as radosgw-admin does:
// a 20-character access key of A-Z0-9 and a 40-character secret of base64 characters.
const ALNUM_UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const newAccessKey = (): string => Array.from(randomBytes(20), (b) => ALNUM_UPPER[b % ALNUM_UPPER.length]).join('');
const newSecretKey = (): string => randomBytes(30).toString('base64');
const s3 = program.command('s3').description('S3 gateway users and keys (like radosgw-admin)');
const s3user = s3.command('user').description('S3 users');
s3user.command('create').requiredOption('--uid <uid>').requiredOption('--display-name <name>').option('--access-key <key>').option('--secret-key <key>')
  .description('create a user with one key pair (printed as JSON)')
  .action(action((o: { uid: string; displayName: string; accessKey?: string; secretKey?: string }) => ({
    prefix: 's3 user create', uid: o.uid, display_name: o.displayName, access_key: o.accessKey ?? newAccessKey(), secret_key: o.secretKey ?? newSecretKey(),
  })));
s3user.command('ls').alias('list').description('list user ids').action(action(() => ({ prefix: 's3 user ls' })));
s3user.command('info').requiredOption('--uid <uid>').description('a user and its keys').action(action((o: { uid: string }) => ({ prefix: 's3 user info', uid: o.uid })));
s3user.command('rm').requiredOption('--uid <uid>').description('remove a user').action(action((o: { uid: string }) => ({ prefix: 's3 user rm', uid: o.uid })));
const s3key = s3.command('key').description('S3 access keys');
s3key.command('create').requiredOption('--uid <uid>').option('--access-key <key>').option('--secret-key <key>').description('add a key pair to a user')
  .action(action((o: { uid: string; accessKey?: string; secretKey?: string }) => ({ prefix: 's3 key create', uid: o.uid, access_key: o.accessKey ?? newAccessKey(), secret_key: o.secretKey ?? newSecretKey() })));
s3key.command('rm').requiredOption('--access-key <key>').description('remove a key pair').action(action((o: { accessKey: string }) => ({ prefix: 's3 key rm', access_key: o.accessKey })));

// Filesystems (as `ceph fs`); the namespace operations are the MDS's, not the CLI's.
const fsCmd = program.command('fs').description('filesystems (like ceph fs): the namespace lives in the monitors');
fsCmd.command('new').argument('<fs_name>').argument('<data_pool>').option('--object-size <bytes>', 'object size of new files (power of two, 4 KiB–64 MiB)')
  .description('create a filesystem whose file data goes to DATA_POOL')
  .action(action((name: string, pool: string, o: { objectSize?: string }) => ({ prefix: 'fs new', fs_name: name, data_pool: pool, ...(o.objectSize === undefined ? {} : { object_size: Number(o.objectSize) }) })));
fsCmd.command('ls').description('list filesystems').action(action(() => ({ prefix: 'fs ls' })));
fsCmd.command('get').argument('<fs_name>').description('a filesystem and its namespace counts').action(action((name: string) => ({ prefix: 'fs get', fs_name: name })));
fsCmd.command('rm').argument('<fs_name>').option('--yes-i-really-mean-it', 'confirm').option('--force', 'even if the namespace is not empty (data objects stay in the pool)')
  .description('remove a filesystem (refused while it has files unless --force)')
  .action(action((name: string, o: { yesIReallyMeanIt?: boolean; force?: boolean }) => ({ prefix: 'fs rm', fs_name: name, yes_i_really_mean_it: o.yesIReallyMeanIt === true, force: o.force === true })));

async function main(): Promise<void> {
  // `aspen -s` is `aspen status`, as `ceph -s`.
  const argv = process.argv.map((a, i) => (i >= 2 && a === '-s' ? 'status' : a));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof AspenError) {
      process.stderr.write(`Error ${err.code}: ${err.message.replace(/^[A-Z_]+: /, '')}\n`);
      process.exit(ERRNO[err.code] ?? 1);
    }
    throw err;
  }
}

void main();
