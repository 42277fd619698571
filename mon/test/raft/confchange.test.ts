import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AspenError } from '@aspen/shared';
import { applyConfChangeToConfState, decodeConfChange, encodeConfChange } from '../../src/raft/confchange.ts';
import type { ConfChange, ConfState } from '../../src/raft/types.ts';

// Saved sample bytes of v1: later versions must still decode them.
const SAMPLE_V1_HEX = '01010c00000001010000006402000000cafe';
const SAMPLE_V1: ConfChange = { type: 'add_voter', nodeId: 'd', context: new Uint8Array([0xca, 0xfe]) };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('ConfChange codec', () => {
  it('decodes the saved v1 sample bytes', () => {
    expect(hex(encodeConfChange(SAMPLE_V1))).toBe(SAMPLE_V1_HEX);
    expect(decodeConfChange(new Uint8Array(Buffer.from(SAMPLE_V1_HEX, 'hex')))).toEqual(SAMPLE_V1);
  });

  it('property: decode(encode(cc)) = cc', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<ConfChange['type']>('add_voter', 'add_learner', 'remove_node'),
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.uint8Array({ maxLength: 64 }),
        (type, nodeId, context) => {
          const cc = { type, nodeId, context };
          expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
        },
      ),
    );
  });

  it('property: every truncation fails with E_DECODE, never a bad read', () => {
    const bytes = encodeConfChange(SAMPLE_V1);
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decodeConfChange(bytes.subarray(0, n))).toThrow(AspenError);
    }
    const bad = bytes.slice();
    bad[6] = 9; // unknown type code
    expect(() => decodeConfChange(bad)).toThrow(/unknown conf change type/);
  });

  it('applies changes by setting each node’s role absolutely (idempotent replay)', () => {
    let cs: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
    const changes: ConfChange[] = [
      { type: 'add_learner', nodeId: 'd', context: new Uint8Array() },
      { type: 'add_voter', nodeId: 'd', context: new Uint8Array() },
      { type: 'remove_node', nodeId: 'a', context: new Uint8Array() },
    ];
    for (const c of changes) cs = applyConfChangeToConfState(cs, c);
    expect(cs).toEqual({ voters: ['b', 'c', 'd'], learners: [] });
    let again = cs;
    for (const c of changes) again = applyConfChangeToConfState(again, c);
    expect(again).toEqual(cs);
    expect(applyConfChangeToConfState({ voters: ['a'], learners: [] }, { type: 'remove_node', nodeId: 'a', context: new Uint8Array() })).toEqual({
      voters: ['a'],
      learners: [],
    });
  });
});
