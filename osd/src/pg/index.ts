/** The pure PG core (peering, log, write path, recovery, backfill, scrub); see ADR 0006. */
export * from './types.ts';
export * from './pg-log.ts';
export * from './codec.ts';
export * from './peering.ts';
export * from './pg.ts';
export { LocalReserver, type BackfillReserver } from './recovery.ts';
export { compareScrubMaps, type Inconsistency } from './scrub.ts';
