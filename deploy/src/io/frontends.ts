/**
 * The front-ends of a local cluster: the S3 gateway (`aspen-s3gw`) and the NBD server
 * (`aspen-rbd nbd serve`), the S3 user whose keys the printed aws command line uses, and the
 * image `rbd/vm0` the NBD server exports. Everything is created once, on the first `up`, and
 * reused afterwards: ports in DIR/aspen-dev.json, keys in DIR/s3-user.json (mode 0600).
 * The filesystem front-end (MDS + FUSE) does not exist yet, so nothing here pretends to run it.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runToEnd } from './daemons.ts';

export const ASPEN_CLI = join(ROOT, 'mon', 'bin', 'aspen');
export const S3GW_BIN = join(ROOT, 's3gw', 'bin', 'aspen-s3gw');
export const RBD_BIN = join(ROOT, 'rbd', 'bin', 'aspen-rbd');

export const S3_PORT_DEFAULT = 7480;
export const NBD_PORT_DEFAULT = 10809;
export const S3_UID = 'dev';
export const RBD_IMAGE = 'rbd/vm0';
export const RBD_IMAGE_SIZE = '1G';

/** What `up` remembers between runs (DIR/aspen-dev.json, JSON with a version). */
export interface DevSettings { v: 1; s3_port: number; nbd_port: number }

/** The S3 credentials `up` created (DIR/s3-user.json). */
export interface S3Credentials { uid: string; access_key: string; secret_key: string }

const settingsPath = (data: string): string => join(data, 'aspen-dev.json');
export const credentialsPath = (data: string): string => join(data, 's3-user.json');

/**
 * Ports for this run: a flag wins (and is remembered), then what the last `up` used, then
 * the defaults (DESIGN's :7480 and :10809).
 */
export function resolveSettings(data: string, flags: { s3Port?: number | undefined; nbdPort?: number | undefined }): DevSettings {
  const f = settingsPath(data);
  const saved = existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Partial<DevSettings>) : {};
  const s: DevSettings = {
    v: 1,
    s3_port: flags.s3Port ?? saved.s3_port ?? S3_PORT_DEFAULT,
    nbd_port: flags.nbdPort ?? saved.nbd_port ?? NBD_PORT_DEFAULT,
  };
  for (const p of [s.s3_port, s.nbd_port]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad port ${p}`);
  }
  if (s.s3_port === s.nbd_port) throw new Error(`the S3 and NBD ports must differ (both ${s.s3_port})`);
  writeFileSync(f, `${JSON.stringify(s, null, 2)}\n`);
  return s;
}

/** The remembered settings, or the defaults when `up` never ran here. */
export function savedSettings(data: string): DevSettings {
  const f = settingsPath(data);
  const saved = existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Partial<DevSettings>) : {};
  return { v: 1, s3_port: saved.s3_port ?? S3_PORT_DEFAULT, nbd_port: saved.nbd_port ?? NBD_PORT_DEFAULT };
}

interface UserView { user_id: string; keys: { access_key: string; secret_key: string }[] }

function lastKey(json: string): S3Credentials {
  const u = JSON.parse(json) as UserView;
  const k = u.keys[u.keys.length - 1];
  if (k === undefined) throw new Error(`user ${u.user_id} has no keys`);
  return { uid: u.user_id, access_key: k.access_key, secret_key: k.secret_key };
}

/**
 * The S3 user of this cluster: read from DIR/s3-user.json, or created with
 * `aspen s3 user create` (a new key pair with `aspen s3 key create` when the user exists but
 * the file was lost) and saved with mode 0600.
 */
export async function ensureS3User(data: string, confPath: string): Promise<S3Credentials> {
  const f = credentialsPath(data);
  if (existsSync(f)) return JSON.parse(readFileSync(f, 'utf8')) as S3Credentials;
  const cli = [ASPEN_CLI, '-c', confPath, '--connect-timeout', '30', '-f', 'json', 's3'];
  let json: string;
  try {
    json = await runToEnd(process.execPath, [...cli, 'user', 'create', '--uid', S3_UID, '--display-name', 'Aspen dev user']);
  } catch (err) {
    if (!/EEXIST/.test((err as Error).message)) throw err;
    json = await runToEnd(process.execPath, [...cli, 'key', 'create', '--uid', S3_UID]);
  }
  const creds = lastKey(json);
  writeFileSync(f, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  chmodSync(f, 0o600);
  return creds;
}

/** Creates the image `rbd/vm0` (thin, 1 GiB) unless the pool already has it. */
export async function ensureImage(confPath: string): Promise<boolean> {
  const [pool, image] = RBD_IMAGE.split('/') as [string, string];
  const images = JSON.parse(await runToEnd(process.execPath, [RBD_BIN, '-c', confPath, '-f', 'json', 'ls', pool])) as string[];
  if (images.includes(image)) return false;
  await runToEnd(process.execPath, [RBD_BIN, '-c', confPath, '--no-progress', 'create', RBD_IMAGE, '--size', RBD_IMAGE_SIZE]);
  return true;
}

export const s3gwArgs = (confPath: string, port: number): string[] => [S3GW_BIN, '-c', confPath, '--listen', `127.0.0.1:${port}`];
export const nbdArgs = (confPath: string, port: number): string[] => [RBD_BIN, '-c', confPath, 'nbd', 'serve', '--bind', '127.0.0.1', '--port', String(port)];

/** How to use each front-end, as printed by `up`. */
export function usageText(data: string, s: DevSettings, creds: S3Credentials): string[] {
  const nbd = `nbd://127.0.0.1:${s.nbd_port}/${RBD_IMAGE}`;
  return [
    `  S3 (aspen-s3gw on http://127.0.0.1:${s.s3_port}, user '${creds.uid}', keys in ${credentialsPath(data)}):`,
    `    AWS_ACCESS_KEY_ID=${creds.access_key} AWS_SECRET_ACCESS_KEY=${creds.secret_key} AWS_DEFAULT_REGION=us-east-1 aws --endpoint-url http://127.0.0.1:${s.s3_port} s3 ls`,
    '    (then e.g. `… s3 mb s3://bucket`, `… s3 cp FILE s3://bucket/`)',
    `  block (aspen-rbd nbd serve on 127.0.0.1:${s.nbd_port}, image ${RBD_IMAGE}, ${RBD_IMAGE_SIZE}):`,
    `    qemu-img info ${nbd}`,
    `    nbdinfo ${nbd}`,
    `    qemu-io -f raw -c 'write -P 0x5a 0 1M' ${nbd}`,
    '    more images: ./rbd/bin/aspen-rbd create rbd/NAME --size 10G  (exported as nbd://…/rbd/NAME at once)',
    '  filesystem: not available yet — the MDS and the FUSE client are not written (issue 8), so',
    '    there is no mount command; aspen-dev starts no MDS.',
  ];
}
