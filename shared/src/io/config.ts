/**
 * `aspen.conf`: one TOML file for every daemon and client (DESIGN.md "Daemons"), with Ceph's
 * section precedence: `[global]` < `[<type>]` < `[<type>.<id>]` (e.g. `[mon]`, `[mon.a]`).
 * Keys use Ceph's option names with units (`mon_host`, `heartbeat_interval_ms`).
 *
 * Discovery (as `ceph` finds /etc/ceph/ceph.conf): `--conf`, else `$ASPEN_CONF`, else
 * `./aspen-data/aspen.conf`, else `/etc/aspen/aspen.conf`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { AspenError } from '../errors.ts';

/** A flat option map for one entity after section precedence. */
export type ConfigValues = Readonly<Record<string, string | number | boolean>>;

/**
 * Reads `path` and merges the sections that apply to `entityType`/`entityId`.
 * @throws AspenError EINVAL on a TOML syntax error (with the position) or a non-table section;
 *   ENOENT when the file does not exist.
 */
export function loadConfig(path: string, entityType: string, entityId?: string): ConfigValues {
  if (!existsSync(path)) throw new AspenError('ENOENT', `config file ${path} does not exist`);
  let doc: Record<string, unknown>;
  try {
    doc = parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new AspenError('EINVAL', `config file ${path}: ${(err as Error).message}`);
  }
  const out: Record<string, string | number | boolean> = {};
  const sections = ['global', entityType, ...(entityId === undefined ? [] : [`${entityType}.${entityId}`])];
  for (const name of sections) {
    // TOML reads `[mon.a]` as a nested table mon → a.
    const parts = name.split('.');
    let table: unknown = doc;
    for (const p of parts) table = (table as Record<string, unknown> | undefined)?.[p];
    if (table === undefined) continue;
    if (typeof table !== 'object' || table === null || Array.isArray(table)) throw new AspenError('EINVAL', `config file ${path}: [${name}] must be a table`);
    for (const [k, v] of Object.entries(table)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    }
  }
  return out;
}

/** Finds the config file as described above; undefined when none exists. */
export function discoverConfigPath(explicit?: string): string | undefined {
  if (explicit) return explicit;
  const env = process.env.ASPEN_CONF;
  if (env) return env;
  for (const p of ['./aspen-data/aspen.conf', '/etc/aspen/aspen.conf']) if (existsSync(p)) return p;
  return undefined;
}

/**
 * Monitor addresses for a client: `explicit` (`-m HOST:PORT[,…]`), else `$ASPEN_MON_HOST`, else
 * `mon_host` of the discovered aspen.conf (as `ceph`/`rados` find theirs).
 * @throws AspenError EINVAL when none is found.
 */
export function resolveMonAddrs(explicit?: string, confPath?: string): string[] {
  const fromFlag = explicit ?? process.env.ASPEN_MON_HOST;
  if (fromFlag) return fromFlag.split(',').map((s) => s.trim()).filter(Boolean);
  const path = discoverConfigPath(confPath);
  if (path) {
    const v = loadConfig(path, 'client').mon_host;
    if (typeof v === 'string' && v) return v.split(',').map((s) => s.trim());
  }
  throw new AspenError('EINVAL', 'no monitors known: pass -m HOST:PORT[,…], set ASPEN_MON_HOST, or create aspen-data/aspen.conf with mon_host');
}
