import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AspenError, ERROR_CODES } from '@aspen/shared/errors.ts';
import * as codec from '../../src/nbd/codec.ts';
import { NBD_ERRNO_BY_CODE, nbdFailureFrom } from '../../src/nbd/device.ts';
import {
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOMEM,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_ERROR,
} from '../../src/nbd/protocol.ts';

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
const nbdString = fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0'));

/** Decoders of peer bytes, each with the structure's fixed size when it has one. */
const DECODERS: [string, (b: Uint8Array) => unknown][] = [
  ['hello', codec.decodeHello],
  ['clientFlags', codec.decodeClientFlags],
  ['optionHeader', codec.decodeOptionHeader],
  ['optionReplyHeader', codec.decodeOptionReplyHeader],
  ['infoRequest', codec.decodeInfoRequest],
  ['metaContextRequest', codec.decodeMetaContextRequest],
  ['repServer', codec.decodeRepServer],
  ['repMetaContext', codec.decodeRepMetaContext],
  ['info', codec.decodeInfo],
  ['requestHeader', codec.decodeRequestHeader],
  ['simpleReply', codec.decodeSimpleReply],
  ['chunkHeader', codec.decodeChunkHeader],
  ['blockStatus', codec.decodeBlockStatus],
  ['errorPayload', codec.decodeErrorPayload],
  ['string', codec.decodeString],
];

function decodesCleanly(decode: (b: Uint8Array) => unknown, bytes: Uint8Array): boolean {
  try {
    decode(bytes);
    return true;
  } catch (err) {
    return err instanceof AspenError && err.code === 'E_DECODE';
  }
}

describe('nbd codec', () => {
  it('round-trips request headers (every field survives encode → decode)', () => {
    fc.assert(
      fc.property(u16, u16, u64, u64, u32, (flags, type, cookie, offset, length) => {
        const req = { flags, type, cookie, offset, length };
        expect(codec.decodeRequestHeader(codec.encodeRequestHeader(req))).toEqual(req);
      }),
    );
  });

  it('round-trips replies, option headers and option data', () => {
    fc.assert(
      fc.property(u32, u64, u16, u16, u32, (error, cookie, flags, type, lengthBytes) => {
        expect(codec.decodeSimpleReply(codec.encodeSimpleReply({ error, cookie }))).toEqual({ error, cookie });
        expect(codec.decodeChunkHeader(codec.encodeChunkHeader({ flags, type, cookie, lengthBytes }))).toEqual({ flags, type, cookie, lengthBytes });
        expect(codec.decodeOptionHeader(codec.encodeOption(error).subarray(0, 16))).toEqual({ option: error, lengthBytes: 0 });
        expect(codec.decodeOptionReplyHeader(codec.encodeOptionReply(error, lengthBytes).subarray(0, 20))).toEqual({ option: error, replyType: lengthBytes, lengthBytes: 0 });
      }),
    );
    fc.assert(
      fc.property(nbdString, fc.array(u16, { maxLength: 8 }), fc.array(nbdString, { maxLength: 5 }), (exportName, infoRequests, queries) => {
        expect(codec.decodeInfoRequest(codec.encodeInfoRequest({ exportName, infoRequests }))).toEqual({ exportName, infoRequests });
        expect(codec.decodeMetaContextRequest(codec.encodeMetaContextRequest({ exportName, queries }))).toEqual({ exportName, queries });
        expect(codec.decodeRepServer(codec.encodeRepServer(exportName, queries.join(',')))).toEqual({ exportName, description: queries.join(',') });
      }),
    );
  });

  it('round-trips info payloads, block status and error chunks', () => {
    fc.assert(
      fc.property(u64, u16, fc.array(fc.record({ lengthBytes: fc.integer({ min: 1, max: 0xffffffff }), flags: u32 }), { minLength: 1, maxLength: 10 }), (size, flags, descriptors) => {
        expect(codec.decodeInfo(codec.encodeInfoExport(size, flags))).toEqual({ kind: 'export', sizeBytes: size, transmissionFlags: flags });
        const chunk = codec.encodeBlockStatus(7n, true, 1, descriptors);
        const header = codec.decodeChunkHeader(chunk.subarray(0, 20));
        expect(header.lengthBytes).toBe(chunk.length - 20);
        expect(codec.decodeBlockStatus(chunk.subarray(20))).toEqual({ contextId: 1, descriptors });
      }),
    );
    const err = codec.encodeErrorChunk(9n, NBD_EIO, 'disk on fire');
    expect(codec.decodeChunkHeader(err.subarray(0, 20))).toEqual({ flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_ERROR, cookie: 9n, lengthBytes: err.length - 20 });
    expect(codec.decodeErrorPayload(err.subarray(20))).toEqual({ error: NBD_EIO, message: 'disk on fire' });
  });

  it('random bytes given to any decoder decode or fail with E_DECODE, never another exception', () => {
    fc.assert(
      fc.property(fc.constantFrom(...DECODERS), fc.uint8Array({ maxLength: 64 }), ([, decode], bytes) => decodesCleanly(decode, bytes)),
      { numRuns: 3000 },
    );
  });

  it('truncated and bit-flipped valid encodings decode or fail with E_DECODE', () => {
    const samples: [(b: Uint8Array) => unknown, Uint8Array][] = [
      [codec.decodeInfoRequest, codec.encodeInfoRequest({ exportName: 'rbd/vm1', infoRequests: [0, 1, 3] })],
      [codec.decodeMetaContextRequest, codec.encodeMetaContextRequest({ exportName: 'rbd/vm1', queries: ['base:allocation', 'qemu:dirty-bitmap:x'] })],
      [codec.decodeRequestHeader, codec.encodeRequestHeader({ flags: 1, type: 1, cookie: 5n, offset: 4096n, length: 512 })],
      [codec.decodeBlockStatus, codec.encodeBlockStatus(1n, true, 1, [{ lengthBytes: 512, flags: 3 }]).subarray(20)],
      [codec.decodeErrorPayload, codec.encodeErrorChunk(1n, NBD_EINVAL, 'bad').subarray(20)],
      [codec.decodeRepServer, codec.encodeRepServer('a/b', 'desc')],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.nat(), fc.nat(), fc.boolean(), ([decode, bytes], cut, bit, truncate) => {
        const mutated = truncate ? bytes.slice(0, cut % (bytes.length + 1)) : bytes.slice();
        if (!truncate && mutated.length > 0) mutated[(bit >> 3) % mutated.length]! ^= 1 << (bit & 7);
        return decodesCleanly(decode, mutated);
      }),
      { numRuns: 3000 },
    );
  });

  it('rejects strings the spec forbids (NUL, invalid UTF-8, longer than 4096 bytes)', () => {
    for (const bad of [new Uint8Array([0x61, 0]), new Uint8Array([0xff, 0xfe]), new Uint8Array(4097).fill(0x61)]) {
      expect(() => codec.decodeString(bad)).toThrow(/E_DECODE/);
    }
    expect(codec.clipMessage('é'.repeat(300)).length).toBeLessThanOrEqual(256);
  });

  it('a hostile meta-context query count cannot make the decoder loop: it is bounded by the data', () => {
    const data = new Uint8Array(12);
    new DataView(data.buffer).setUint32(4, 0xffffffff);
    expect(() => codec.decodeMetaContextRequest(data)).toThrow(/query count/);
  });
});

describe('nbd error mapping', () => {
  const allowed = new Set([NBD_EPERM, NBD_EIO, NBD_ENOMEM, NBD_EINVAL, NBD_ENOSPC, NBD_EOVERFLOW, NBD_ENOTSUP, NBD_ESHUTDOWN]);
  it('maps every Aspen error code to an error value the NBD spec allows', () => {
    for (const code of ERROR_CODES) expect(allowed.has(NBD_ERRNO_BY_CODE[code]), code).toBe(true);
    expect(Object.keys(NBD_ERRNO_BY_CODE).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('maps device failures: AspenError by code, anything else to EIO marked unexpected', () => {
    expect(nbdFailureFrom(new AspenError('ENOSPC', 'full'))).toMatchObject({ errno: NBD_ENOSPC, unexpected: false });
    expect(nbdFailureFrom(new AspenError('EPERM', 'ro'))).toMatchObject({ errno: NBD_EPERM, unexpected: false });
    expect(nbdFailureFrom(new TypeError('oops'))).toMatchObject({ errno: NBD_EIO, unexpected: true });
  });
});
