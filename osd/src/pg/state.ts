/**
 * Derived PG state (Ceph `PG::get_state_string`, `PeeringState::purge_strays`): the state
 * string, stray purging once clean, and expiry of client ops that waited too long.
 */
import { assert, assertNever } from '@aspen/shared';
import { sameOsds } from './peering.ts';
import type { PgCore } from './pg.ts';

/** Once clean, strays (members of old intervals that reported in) delete their copies. */
export function purgeStrays(pg: PgCore): void {
  assert(pg.role === 'primary' && pg.phase === 'active', 'only an active primary purges strays');
  const m = pg.mapping!;
  for (const o of pg.peerMetas.keys()) {
    if (o === pg.whoami || m.acting.includes(o) || m.up.includes(o) || pg.purged.has(o)) continue;
    pg.purged.add(o);
    pg.send(o, { kind: 'purge' });
  }
}

/** Fails queued client ops whose deadline passed: E_PG_INCOMPLETE below min_size, else ETIMEDOUT. */
export function expireWaiting(pg: PgCore): void {
  if (pg.waitingOps.length === 0) return;
  const keep: typeof pg.waitingOps = [];
  const m = pg.mapping;
  const undersized = m !== undefined && m.acting.length < m.minSize;
  for (const w of pg.waitingOps) {
    if (w.deadlineMs > pg.nowMs) {
      keep.push(w);
      continue;
    }
    const incomplete = undersized || pg.phase === 'down' || pg.phase === 'incomplete';
    pg.out.replies.push(incomplete
      ? { reqid: w.op.reqid, ok: false, code: 'E_PG_INCOMPLETE', message: `pg ${pg.pgid} is ${pgStateString(pg)}: fewer than min_size members can serve` }
      : { reqid: w.op.reqid, ok: false, code: 'ETIMEDOUT', message: `pg ${pg.pgid} could not serve the op in time (${pgStateString(pg)})` });
  }
  pg.waitingOps = keep;
  assert(pg.waitingOps.every((w) => w.deadlineMs > pg.nowMs), 'expired ops were answered');
}

/** The Ceph-style state string of a PG (e.g. `active+undersized+degraded`). */
export function pgStateString(pg: PgCore): string {
  const m = pg.mapping;
  if (m === undefined) return 'unknown';
  if (pg.role !== 'primary') return pg.activated ? 'replica' : 'stray';
  switch (pg.phase) {
    case 'idle': case 'getInfo': return 'peering';
    case 'down': return 'down';
    case 'incomplete': return 'incomplete';
    case 'waitActing': return 'remapped+peering';
    case 'activating': return 'activating';
    case 'active': break;
    default: assertNever(pg.phase, 'peering phase');
  }
  const parts = [pg.isPeered() ? 'peered' : 'active'];
  let missingAny = pg.missing.size > 0;
  for (const pm of pg.peerMissing.values()) if (pm.size > 0) missingAny = true;
  const undersized = m.acting.length < m.size;
  const remapped = !sameOsds(m.acting, m.up);
  const backfilling = [...pg.backfill.values()].some((b) => b.phase !== 'done');
  if (missingAny) parts.push(pg.unfound.size > 0 ? 'recovery_unfound' : pg.recovering.size > 0 ? 'recovering' : 'recovery_wait');
  if (backfilling) parts.push(pg.reserved ? 'backfilling' : 'backfill_wait');
  if (undersized) parts.push('undersized');
  if (missingAny || undersized) parts.push('degraded');
  if (remapped) parts.push('remapped');
  if (!missingAny && !undersized && !remapped && !backfilling) parts.push('clean');
  if (pg.scrub !== undefined) parts.push(pg.scrub.deep ? 'scrubbing+deep' : 'scrubbing');
  if (pg.inconsistent.size > 0) parts.push('inconsistent');
  assert(parts.length >= 2, 'an active PG reports at least one qualifier');
  return parts.join('+');
}
