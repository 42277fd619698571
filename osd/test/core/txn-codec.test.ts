import { describe, expect, it } from 'vitest';
import { toPlain } from '@aspen/test/plain.ts';
import fc from 'fast-check';
import { AspenError } from '@aspen/shared';
import { decodeTransaction, encodeTransaction } from '../../src/store/txn-codec.ts';
import { Transaction } from '../../src/store/transaction.ts';

const name = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('\0'));
const coll = fc.constantFrom('1.0_head', '2.1f_head', '3.4s1_head');
const oid = fc.record({ name, namespace: fc.constantFrom('', 'ns'), snap: fc.constantFrom<'head' | bigint>('head', 3n) });
const bytes = fc.uint8Array({ maxLength: 64 });

/** A random valid transaction, built through the builder. */
const txArb = fc.array(fc.oneof(
  fc.tuple(fc.constant('createCollection'), coll),
  fc.tuple(fc.constant('touch'), coll, oid),
  fc.tuple(fc.constant('write'), coll, oid, fc.nat({ max: 1 << 20 }), bytes),
  fc.tuple(fc.constant('zero'), coll, oid, fc.nat({ max: 1 << 20 }), fc.nat({ max: 1 << 16 })),
  fc.tuple(fc.constant('truncate'), coll, oid, fc.nat({ max: 1 << 20 })),
  fc.tuple(fc.constant('remove'), coll, oid),
  fc.tuple(fc.constant('setattr'), coll, oid, name, bytes),
  fc.tuple(fc.constant('omapSetKeys'), coll, oid, fc.array(fc.tuple(fc.string(), bytes), { maxLength: 3 })),
  fc.tuple(fc.constant('omapSetHeader'), coll, oid, bytes),
  fc.tuple(fc.constant('clone'), coll, oid, name),
), { maxLength: 8 }).map((steps) => {
  const tx = new Transaction();
  for (const s of steps) {
    switch (s[0]) {
      case 'createCollection': tx.createCollection(s[1]); break;
      case 'touch': tx.touch(s[1], s[2]); break;
      case 'write': tx.write(s[1], s[2], s[3], s[4]); break;
      case 'zero': tx.zero(s[1], s[2], s[3], s[4]); break;
      case 'truncate': tx.truncate(s[1], s[2], s[3]); break;
      case 'remove': tx.remove(s[1], s[2]); break;
      case 'setattr': tx.setattr(s[1], s[2], s[3], s[4]); break;
      case 'omapSetKeys': tx.omapSetKeys(s[1], s[2], new Map(s[3])); break;
      case 'omapSetHeader': tx.omapSetHeader(s[1], s[2], s[3]); break;
      case 'clone': tx.clone(s[1], s[2], { name: `${s[2].name}.clone-${s[3]}` }); break;
    }
  }
  return tx;
});

const norm = toPlain;

describe('transaction wire codec', () => {
  it('property: decode(encode(tx)) has the same ops', () => {
    fc.assert(fc.property(txArb, (tx) => {
      const m = encodeTransaction(tx);
      expect(norm(decodeTransaction(m.meta, m.data).ops)).toEqual(norm(tx.ops));
    }));
  });

  it('property: truncated or garbage input fails with E_DECODE/EINVAL/E_UNSUPPORTED only', () => {
    fc.assert(fc.property(txArb, fc.nat(), fc.uint8Array({ maxLength: 100 }), (tx, cut, garbage) => {
      const m = encodeTransaction(tx);
      for (const [meta, data] of [[m.meta.subarray(0, cut % (m.meta.length + 1)), m.data], [garbage, m.data], [m.meta, garbage]] as const) {
        try {
          decodeTransaction(meta, data);
        } catch (err) {
          expect(err).toBeInstanceOf(AspenError);
          expect(['E_DECODE', 'EINVAL', 'E_UNSUPPORTED']).toContain((err as AspenError).code);
        }
      }
    }));
  });
});
