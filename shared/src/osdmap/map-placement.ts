/**
 * Placement over an {@link OsdMap}: adapts the map to placement.ts's interfaces (Ceph's
 * `OSDMap::pg_to_up_acting_osds`, `object_locator_to_pg`). The OSD state arrays are built
 * once per map epoch and cached.
 */
import { AspenError } from '../errors.ts';
import { parsePgId, formatPgId } from '../ids.ts';
import { objectToPg, pgToUpActingOsds, type PgMapping, type PlacementOsds } from './placement.ts';
import type { OsdMap, Pool } from './types.ts';

const cache = new WeakMap<OsdMap, { epoch: number; osds: PlacementOsds }>();

/** The OSD state arrays of `map` (exists, up, reweight), indexed by OSD id. */
export function placementOsds(map: OsdMap): PlacementOsds {
  const hit = cache.get(map);
  if (hit !== undefined && hit.epoch === map.epoch) return hit.osds;
  const exists = new Uint8Array(map.maxOsd);
  const up = new Uint8Array(map.maxOsd);
  const weight = new Uint32Array(map.maxOsd);
  for (const o of map.osds.values()) {
    if (o.id >= map.maxOsd) continue;
    exists[o.id] = o.exists ? 1 : 0;
    up[o.id] = o.up ? 1 : 0;
    weight[o.id] = o.weight;
  }
  const osds: PlacementOsds = { maxOsd: map.maxOsd, exists, up, weight };
  cache.set(map, { epoch: map.epoch, osds });
  return osds;
}

/**
 * Up and acting sets of PG `pgid` (`1.1f`) at the map's epoch, with `pg_temp` applied.
 * @throws AspenError ENOENT when the pool or PG does not exist; EINVAL for malformed text.
 */
export function mapPg(map: OsdMap, pgid: string): PgMapping {
  let pg;
  try {
    pg = parsePgId(pgid);
  } catch (err) {
    throw new AspenError('EINVAL', (err as Error).message);
  }
  const pool = map.pools.get(pg.pool);
  if (pool === undefined || pg.seed >= pool.pgNum) throw new AspenError('ENOENT', `pg ${pgid} does not exist`);
  return pgToUpActingOsds(map.crush, pool, placementOsds(map), pg.seed, {
    pgTemp: (p) => map.pgTemp.get(formatPgId(p)),
  });
}

/** The PG id text (`2.1f`) that object `name` of `pool` maps to. */
export function mapObjectToPg(pool: Pool, name: string): string {
  return formatPgId(objectToPg(pool, name));
}
