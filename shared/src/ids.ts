/**
 * Branded identifier types (CONVENTIONS.md item 9): distinct at compile time, plain
 * numbers/strings at run time. Construct them through the helpers so a bare number
 * never silently becomes an id.
 */

declare const brand: unique symbol;
/** `T` tagged with the brand `B`. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** An OSD id (non-negative integer), as Ceph's `osd.N`. */
export type OsdId = Brand<number, 'OsdId'>;
/** A pool id (non-negative integer). */
export type PoolId = Brand<number, 'PoolId'>;
/** A map epoch: starts at 1 and increases by exactly one per committed incremental. */
export type Epoch = Brand<number, 'Epoch'>;
/** A monitor name, e.g. `a`. */
export type MonId = Brand<string, 'MonId'>;

/** @throws RangeError when `n` is not a non-negative safe integer. */
function checkUint(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
}

export const osdId = (n: number): OsdId => (checkUint(n, 'OSD id'), n as OsdId);
export const poolId = (n: number): PoolId => (checkUint(n, 'pool id'), n as PoolId);
export const epoch = (n: number): Epoch => (checkUint(n, 'epoch'), n as Epoch);
export const monId = (s: string): MonId => {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(s)) throw new RangeError(`invalid mon id ${JSON.stringify(s)}`);
  return s as MonId;
};

/** A placement group id: pool and seed (`<pool>.<seed hex>` in text, as Ceph prints it). */
export interface PgId {
  readonly pool: PoolId;
  readonly seed: number;
}

/** Formats a PG id as Ceph does: `1.1f`. */
export function formatPgId(pg: PgId): string {
  return `${pg.pool}.${pg.seed.toString(16)}`;
}

/**
 * Parses `1.1f` into a PG id.
 * @throws RangeError on malformed text.
 */
export function parsePgId(text: string): PgId {
  const m = /^(\d+)\.([0-9a-f]+)$/.exec(text);
  if (!m) throw new RangeError(`invalid PG id ${JSON.stringify(text)} (expected POOL.SEEDHEX, e.g. 1.1f)`);
  return { pool: poolId(Number(m[1])), seed: parseInt(m[2]!, 16) };
}
