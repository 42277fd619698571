import { describe, expect, it } from 'vitest';
import { toPlain } from '@aspen/test/plain.ts';
import fc from 'fast-check';
import { AspenError } from '../../src/errors.ts';
import { SNAP_HEAD, decodeOsdReply, decodeOsdRequest, encodeOsdReply, encodeOsdRequest, isMutation, type OsdOp, type OsdReply, type OsdRequest } from '../../src/client/ops.ts';

const bytes = fc.uint8Array({ maxLength: 64 });
const cmp = fc.constantFrom('eq', 'ne', 'gt', 'gte', 'lt', 'lte' as const);
const u = fc.nat({ max: 2 ** 40 });
const opArb: fc.Arbitrary<OsdOp> = fc.oneof(
  fc.constant({ op: 'assert_exists' as const }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((version) => ({ op: 'assert_version' as const, version })),
  fc.record({ op: fc.constant('cmpxattr' as const), name: fc.string(), cmp, value: bytes }),
  fc.record({ op: fc.constant('omap_cmp' as const), key: fc.string(), cmp, value: bytes }),
  fc.record({ op: fc.constant('create' as const), exclusive: fc.boolean() }),
  fc.record({ op: fc.constant('write' as const), offset: u, data: bytes }),
  fc.record({ op: fc.constant('writefull' as const), data: bytes }),
  fc.record({ op: fc.constant('append' as const), data: bytes }),
  fc.record({ op: fc.constant('truncate' as const), size: u }),
  fc.record({ op: fc.constant('zero' as const), offset: u, length: u }),
  fc.constant({ op: 'remove' as const }),
  fc.record({ op: fc.constant('setxattr' as const), name: fc.string(), value: bytes }),
  fc.record({ op: fc.constant('rmxattr' as const), name: fc.string() }),
  fc.record({ op: fc.constant('omap_set' as const), entries: fc.array(fc.tuple(fc.string(), bytes), { maxLength: 4 }) }),
  fc.record({ op: fc.constant('omap_rm' as const), keys: fc.array(fc.string(), { maxLength: 4 }) }),
  fc.constant({ op: 'omap_clear' as const }),
  fc.record({ op: fc.constant('omap_set_header' as const), data: bytes }),
  fc.record({ op: fc.constant('read' as const), offset: u, length: u }),
  fc.record({ op: fc.constant('sparse_read' as const), offset: u, length: u }),
  fc.constant({ op: 'stat' as const }),
  fc.record({ op: fc.constant('getxattr' as const), name: fc.string() }),
  fc.constant({ op: 'getxattrs' as const }),
  fc.record({ op: fc.constant('omap_get_keys' as const), startAfter: fc.string(), max: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ op: fc.constant('omap_get_vals' as const), startAfter: fc.string(), prefix: fc.string(), max: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ op: fc.constant('omap_get_vals_by_keys' as const), keys: fc.array(fc.string(), { maxLength: 4 }) }),
  fc.constant({ op: 'omap_get_header' as const }),
);

const requestArb: fc.Arbitrary<OsdRequest> = fc.record({
  reqid: fc.record({ client: fc.string(), tid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  epoch: fc.nat(), pool: fc.nat(), pgSeed: fc.nat(), object: fc.string(), namespace: fc.string(),
  snapId: fc.constantFrom(SNAP_HEAD, 1n, 7n),
  snapc: fc.record({ seq: fc.bigInt({ min: 0n, max: 100n }), snaps: fc.array(fc.bigInt({ min: 1n, max: 100n }), { maxLength: 3 }) }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 6 }),
});

const norm = toPlain;

describe('osd request/reply codec', () => {
  it('round-trips every op (property: decode(encode(r)) = r)', () => {
    fc.assert(fc.property(requestArb, (r) => {
      const m = encodeOsdRequest(r);
      expect(norm(decodeOsdRequest(m.meta, m.data))).toEqual(norm(r));
    }));
  });

  it('rejects garbage and truncation with E_DECODE/E_UNSUPPORTED/EINVAL only (property)', () => {
    fc.assert(fc.property(requestArb, fc.nat(), fc.uint8Array({ maxLength: 200 }), (r, cutSeed, garbage) => {
      const good = encodeOsdRequest(r);
      const cases: [Uint8Array, Uint8Array][] = [[good.meta.subarray(0, cutSeed % good.meta.length), good.data], [garbage, good.data], [good.meta, good.data.subarray(0, good.data.length - 1)]];
      for (const [meta, data] of cases) {
        try {
          decodeOsdRequest(meta, data);
        } catch (err) {
          expect(err).toBeInstanceOf(AspenError);
          expect(['E_DECODE', 'E_UNSUPPORTED', 'EINVAL']).toContain((err as AspenError).code);
        }
      }
    }));
  });

  it('round-trips replies of every result kind', () => {
    const reply: OsdReply = {
      code: 0, message: '', version: 42n, epoch: 9,
      results: [
        { code: 0, kind: 'none' }, { code: 0, kind: 'data', data: new Uint8Array([1, 2, 3]) },
        { code: 0, kind: 'extents', extents: [[0, 4096], [8192, 10]], data: new Uint8Array(4106) },
        { code: 0, kind: 'stat', sizeBytes: 5, mtimeMs: 1700000000000 }, { code: 0, kind: 'xattrs', entries: [['a', new Uint8Array([9])]] },
        { code: 0, kind: 'omap', entries: [['k', new Uint8Array([1])]], more: true }, { code: 0, kind: 'keys', keys: ['x', 'y'], more: false },
        { code: 'ENOENT', kind: 'error', message: 'no such xattr' },
      ],
    };
    const m = encodeOsdReply(reply);
    expect(norm(decodeOsdReply(m.meta, m.data))).toEqual(norm(reply));
  });

  it('classifies mutations', () => {
    expect(isMutation({ op: 'write', offset: 0, data: new Uint8Array() })).toBe(true);
    expect(isMutation({ op: 'read', offset: 0, length: 1 })).toBe(false);
    expect(isMutation({ op: 'assert_exists' })).toBe(false);
  });
});
