/**
 * The Raft deterministic simulation (DESIGN.md testing pyramid, level 2; CONVENTIONS.md 12).
 *
 * fast-check draws the seeds; every parameter of a run (cluster size, fault rates, message
 * size and window limits, schedule length) is derived from its seed, so one number replays a
 * failure exactly:  `ASPEN_SEED=<n> npm run sim`  (add ASPEN_TRACE=1 to print every event).
 * Seeds below 2^30 run short schedules, seeds at or above run long ones.
 *
 * Runs: ASPEN_SIM_SHORT (default 9,700) short + ASPEN_SIM_LONG (default 300) long schedules,
 * 10,000 in all (about 2 minutes on one core here).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LONG_SEED_BASE, formatFailure, runSeed } from './simulator.ts';

const SHORT_RUNS = Number(process.env['ASPEN_SIM_SHORT'] ?? 9_700);
const LONG_RUNS = Number(process.env['ASPEN_SIM_LONG'] ?? 300);
const REPLAY = process.env['ASPEN_SEED'];

function checkSeed(seed: number): void {
  const r = runSeed(seed);
  if (r.violations.length > 0) {
    const report = formatFailure(r);
    console.error(report);
    throw new Error(report);
  }
}

const PROPERTY =
  'election safety, log matching, leader completeness, state-machine safety and linearizable KV histories hold under ' +
  'drops, delays, duplicates, reordering, partitions, crashes, membership changes and transfers; once healed, a leader ' +
  'is elected, every client op completes and all members converge';

if (REPLAY !== undefined) {
  describe('raft simulation (replay)', () => {
    it(`seed ${REPLAY}: ${PROPERTY}`, () => {
      const seed = Number(REPLAY);
      expect(Number.isSafeInteger(seed) && seed >= 0).toBe(true);
      const r = runSeed(seed, { traceAll: process.env['ASPEN_TRACE'] === '1' });
      if (r.violations.length > 0) throw new Error(formatFailure(r));
      console.log(`seed ${seed} passed: ${JSON.stringify(r.stats)}`);
    });
  });
} else {
  describe('raft simulation', () => {
    it(`property (${SHORT_RUNS} short schedules): ${PROPERTY}`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: LONG_SEED_BASE - 1 }), (seed) => checkSeed(seed)),
        // A different seed is a different schedule: shrinking would not simplify anything.
        { numRuns: SHORT_RUNS, endOnFailure: true },
      );
    });

    it(`property (${LONG_RUNS} long schedules): ${PROPERTY}`, () => {
      fc.assert(
        fc.property(fc.integer({ min: LONG_SEED_BASE, max: 2 ** 31 - 1 }), (seed) => checkSeed(seed)),
        { numRuns: LONG_RUNS, endOnFailure: true },
      );
    });
  });
}
