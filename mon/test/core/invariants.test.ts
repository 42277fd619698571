/**
 * Whatever clients send, the replicated state stays well-formed: random command sequences
 * (mostly refused, some accepted) never trip an assertion, a refusal never changes the maps,
 * and the OSDMap invariants hold after every entry.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AssertionFailure } from '@aspen/shared';
import { osdMapToBytes } from '@aspen/shared/osdmap/codec.ts';
import { mapPg } from '@aspen/shared/osdmap/map-placement.ts';
import { removedSnapsWellFormed } from '@aspen/shared/osdmap/snaps.ts';
import { decodeMonState, encodeMonState } from '../../src/core/snapshot.ts';
import type { MonState } from '../../src/core/state.ts';
import { namespaceErrors } from '../../src/core/fs-namespace.ts';
import { Driver } from './helpers.ts';
import { cmdArb } from './gen.ts';

function checkInvariants(s: MonState): void {
  const m = s.osdMap;
  const names = new Set<string>();
  for (const [id, p] of m.pools) {
    expect(p.id).toBe(id);
    expect(names.has(p.name), `duplicate pool name ${p.name}`).toBe(false);
    names.add(p.name);
    expect(id).toBeLessThanOrEqual(m.poolMax);
    expect(p.minSize).toBeGreaterThanOrEqual(1);
    expect(p.minSize, `pool ${p.name} min_size <= size`).toBeLessThanOrEqual(p.size);
    expect(p.pgpNum, `pool ${p.name} pgp_num <= pg_num`).toBeLessThanOrEqual(p.pgNum);
    expect(removedSnapsWellFormed(p.removedSnaps, p.snapSeq), `pool ${p.name} removed_snaps ${JSON.stringify(p.removedSnaps)} within snap_seq ${p.snapSeq}`).toBe(true);
    const rule = m.crush.rules.find((r) => r.id === p.crushRule);
    expect(rule, `pool ${p.name} rule ${p.crushRule} exists`).toBeDefined();
    expect(rule!.type, `pool ${p.name} (${p.type}) uses a rule of its type (${rule!.name})`).toBe(p.type);
    if (p.type === 'erasure') {
      const prof = m.ecProfiles.get(p.erasureCodeProfile);
      expect(prof, `EC pool ${p.name}'s profile exists`).toBeDefined();
      expect(p.size).toBe(prof!.k + prof!.m);
      expect(p.minSize).toBeGreaterThanOrEqual(prof!.k);
    }
  }
  for (const [id, o] of m.osds) {
    expect(o.id).toBe(id);
    expect(id).toBeLessThan(m.maxOsd);
    expect(o.weight).toBeGreaterThanOrEqual(0);
    expect(o.weight).toBeLessThanOrEqual(0x10000);
    if (o.up) expect(m.crush.devices.some((dv) => dv.id === id), `up osd.${id} is in CRUSH`).toBe(true);
  }
  for (const pgid of m.pgTemp.keys()) expect(m.pools.has(Number(pgid.split('.')[0])), `pg_temp ${pgid} of a live pool`).toBe(true);
  for (const pgid of s.pgStats.keys()) {
    const pool = m.pools.get(Number(pgid.split('.')[0]));
    expect(pool, `pg stats ${pgid} of a live pool`).toBeDefined();
  }
  for (const fs of s.fsMap.filesystems.values()) {
    expect(m.pools.has(fs.dataPoolId), `filesystem ${fs.name}'s data pool exists`).toBe(true);
    expect(namespaceErrors(fs), `filesystem ${fs.name}'s namespace`).toEqual([]);
  }
  if (s.incrementals.length > 0) {
    expect(s.incrementals.at(-1)!.epoch).toBe(m.epoch);
    s.incrementals.forEach((inc, i) => { if (i > 0) expect(inc.epoch).toBe(s.incrementals[i - 1]!.epoch + 1); });
  }
  // Every PG maps (no throw, no duplicates among real OSDs).
  for (const p of m.pools.values()) {
    for (let seed = 0; seed < p.pgNum; seed++) {
      const up = mapPg(m, `${p.id}.${seed.toString(16)}`).up.filter((o) => o !== 0x7fffffff);
      expect(new Set(up).size).toBe(up.length);
    }
  }
}

describe('state machine invariants', () => {
  it('random command sequences never assert, refusals change nothing, and the OSDMap stays well-formed (property)', () => {
    fc.assert(fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 80 }), (cmds) => {
      const d = new Driver();
      for (let i = 0; i < 3; i++) d.addOsd(i, `host${i}`); // a small live cluster the commands act on
      let seq = 0;
      for (const cmd of cmds) {
        const before = osdMapToBytes(d.map);
        const fsBefore = structuredClone(d.state.fsMap);
        let out;
        try {
          out = d.apply(cmd, { seq: ++seq });
        } catch (err) {
          if (err instanceof AssertionFailure) throw new Error(`assertion on ${JSON.stringify(cmd)}: ${err.message}`, { cause: err });
          throw err;
        }
        if (out.result.code !== 0) {
          expect(Buffer.from(osdMapToBytes(d.map)).equals(Buffer.from(before)), `refused ${JSON.stringify(cmd)} changed the map`).toBe(true);
          expect(d.state.fsMap, `refused ${JSON.stringify(cmd)} changed the filesystems`).toEqual(fsBefore);
        }
        else expect(out.effects.incrementals.length).toBeLessThanOrEqual(1);
        checkInvariants(d.state);
        expect(() => decodeMonState(encodeMonState(d.state))).not.toThrow(); // every member must be able to snapshot it
      }
    }), { numRuns: Number(process.env.ASPEN_RUNS ?? 300) });
  });
});
