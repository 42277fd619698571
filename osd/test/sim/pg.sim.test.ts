/**
 * The PG deterministic simulation (CONVENTIONS item 12; issue 4 "Peering and recovery under
 * simulation"). Each seed derives a cluster (3–6 OSDs, size 2–3, min_size 1–2, 2–8 PGs),
 * fault rates and limits, then plays a safety phase with faults and a liveness phase that
 * heals (./cluster.ts). A failure prints its seed:
 *   reproduce: ASPEN_SEED=<n> npx vitest run osd/test/sim   (ASPEN_TRACE=1 for the trace)
 *
 * Runs ASPEN_SIM_SEEDS seeds (default 1,000) drawn by fast-check.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatFailure, runSeed } from './cluster.ts';

const RUNS = Number(process.env['ASPEN_SIM_SEEDS'] ?? 1_000);
const REPLAY = process.env['ASPEN_SEED'];

const PROPERTY =
  'no acknowledged write is lost, reads see every acknowledged write, no version has two contents and resent ops keep ' +
  'their first result under drops, duplicates, delays, reordering, partitions, crashes losing unsynced writes, ' +
  'down/out remaps and pg_temp; once healed every PG is active+clean with size identical copies';

function checkSeed(seed: number): void {
  const r = runSeed(seed);
  if (r.violations.length > 0) {
    const report = formatFailure(r);
    console.error(report);
    throw new Error(report);
  }
}

if (REPLAY !== undefined) {
  describe('pg simulation (replay)', () => {
    it(`seed ${REPLAY}: ${PROPERTY}`, () => {
      const seed = Number(REPLAY);
      expect(Number.isSafeInteger(seed) && seed >= 0).toBe(true);
      const r = runSeed(seed, { trace: process.env['ASPEN_TRACE'] === '1' });
      if (process.env['ASPEN_TRACE'] === '1') console.log(r.trace.join('\n'));
      if (r.violations.length > 0) throw new Error(formatFailure(r));
      console.log(`seed ${seed} passed: ${JSON.stringify(r.stats)}`);
    });
  });
} else {
  describe('pg simulation', () => {
    it(`property (${RUNS} seeds): ${PROPERTY}`, () => {
      // noBias: uniform seeds (fast-check otherwise favours small and extreme integers, repeating schedules).
      fc.assert(fc.property(fc.noBias(fc.integer({ min: 0, max: 2 ** 31 - 1 })), (seed) => checkSeed(seed)), {
        numRuns: RUNS,
        endOnFailure: true,
      });
    });
  });
}
