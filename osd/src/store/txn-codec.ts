/**
 * Wire codec of a store {@link Transaction}, so the primary ships the transaction it planned
 * to the replicas (as Ceph's ReplicatedBackend ships an ObjectStore::Transaction in
 * MOSDRepOp). Bulk data (writes, omap headers) goes to the messenger's data segment; the
 * decoder rebuilds the transaction through the validating builder, so a malformed or hostile
 * message is refused (E_DECODE / EINVAL) and can never produce an invalid store op.
 */
import { AspenError, Decoder, Encoder, assertNever } from '@aspen/shared';
import type { FullObjectId } from './oid.ts';
import { Transaction, type TxOp, type TxOpName } from './transaction.ts';

const TXN_V = 1;
const OPS: readonly TxOpName[] = [
  'createCollection', 'removeCollection', 'touch', 'write', 'zero', 'truncate', 'remove', 'setattrs', 'rmattr', 'omapSetKeys',
  'omapRmKeys', 'omapRmKeyRange', 'omapClear', 'omapSetHeader', 'clone', 'cloneRange', 'collectionMoveRename',
];
const OP_CODE = new Map(OPS.map((o, i) => [o, i] as const));

function encOid(e: Encoder, o: FullObjectId): void {
  e.string(o.name).string(o.namespace).u64(o.snap === 'head' ? 0xffffffffffffffffn : o.snap).u64(o.generation).i32(o.shard);
}
function decOid(d: Decoder): FullObjectId {
  const name = d.string();
  const namespace = d.string();
  const snapRaw = d.u64();
  return { name, namespace, snap: snapRaw === 0xffffffffffffffffn ? 'head' : snapRaw, generation: d.u64(), shard: d.i32() };
}

/** Encodes `tx` into metadata and a data segment (write payloads, concatenated). */
export function encodeTransaction(tx: Transaction): { meta: Uint8Array; data: Uint8Array } {
  const blobs: Uint8Array[] = [];
  const e = new Encoder(256);
  e.struct(TXN_V, 1, () => {
    e.array(tx.ops, (ee, op: TxOp) => {
      ee.u8(OP_CODE.get(op.op)!);
      switch (op.op) {
        case 'createCollection': case 'removeCollection': ee.string(op.coll); break;
        case 'touch': case 'remove': case 'omapClear': ee.string(op.coll); encOid(ee, op.oid); break;
        case 'write': ee.string(op.coll); encOid(ee, op.oid); ee.u53(op.offsetBytes).u53(op.data.length); blobs.push(op.data); break;
        case 'zero': ee.string(op.coll); encOid(ee, op.oid); ee.u53(op.offsetBytes).u53(op.lengthBytes); break;
        case 'truncate': ee.string(op.coll); encOid(ee, op.oid); ee.u53(op.sizeBytes); break;
        case 'setattrs': case 'omapSetKeys': {
          ee.string(op.coll); encOid(ee, op.oid);
          const m = op.op === 'setattrs' ? op.attrs : op.entries;
          ee.array([...m], (e3, [k, v]) => e3.string(k).bytes(v));
          break;
        }
        case 'rmattr': ee.string(op.coll); encOid(ee, op.oid); ee.string(op.name); break;
        case 'omapRmKeys': ee.string(op.coll); encOid(ee, op.oid); ee.array(op.keys, (e3, k) => e3.string(k)); break;
        case 'omapRmKeyRange': ee.string(op.coll); encOid(ee, op.oid); ee.string(op.first).string(op.last); break;
        case 'omapSetHeader': ee.string(op.coll); encOid(ee, op.oid); ee.u53(op.header.length); blobs.push(op.header); break;
        case 'clone': ee.string(op.coll); encOid(ee, op.src); encOid(ee, op.dst); break;
        case 'cloneRange': ee.string(op.coll); encOid(ee, op.src); encOid(ee, op.dst); ee.u53(op.srcOffsetBytes).u53(op.lengthBytes).u53(op.dstOffsetBytes); break;
        case 'collectionMoveRename': ee.string(op.srcColl); encOid(ee, op.src); ee.string(op.dstColl); encOid(ee, op.dst); break;
        default: assertNever(op, 'transaction op');
      }
    });
  });
  const data = blobs.length === 0 ? new Uint8Array(0) : blobs.length === 1 ? blobs[0]! : Buffer.concat(blobs);
  return { meta: e.finish(), data };
}

/**
 * Decodes a transaction shipped by {@link encodeTransaction}.
 * @throws AspenError E_DECODE on malformed bytes or a data segment of the wrong length;
 *   EINVAL when an op's arguments are invalid (the builder's validation).
 */
export function decodeTransaction(meta: Uint8Array, data: Uint8Array): Transaction {
  const d = new Decoder(meta);
  const tx = new Transaction();
  let off = 0;
  const take = (n: number): Uint8Array => {
    if (off + n > data.length) throw new AspenError('E_DECODE', `transaction data segment too short (${data.length} bytes)`);
    const b = data.subarray(off, off + n);
    off += n;
    return b;
  };
  d.struct(TXN_V, 'transaction', () => {
    const n = d.u32();
    if (n > d.remainingBytes) throw new AspenError('E_DECODE', `transaction op count ${n} exceeds the message`);
    for (let i = 0; i < n; i++) {
      const code = d.u8();
      const op = OPS[code];
      if (op === undefined) throw new AspenError('E_DECODE', `unknown transaction op ${code}`);
      switch (op) {
        case 'createCollection': tx.createCollection(d.string()); break;
        case 'removeCollection': tx.removeCollection(d.string()); break;
        case 'touch': tx.touch(d.string(), decOid(d)); break;
        case 'remove': tx.remove(d.string(), decOid(d)); break;
        case 'omapClear': tx.omapClear(d.string(), decOid(d)); break;
        case 'write': { const c = d.string(); const o = decOid(d); const at = d.u53(); tx.write(c, o, at, take(d.u53())); break; }
        case 'zero': { const c = d.string(); const o = decOid(d); tx.zero(c, o, d.u53(), d.u53()); break; }
        case 'truncate': { const c = d.string(); const o = decOid(d); tx.truncate(c, o, d.u53()); break; }
        case 'setattrs': { const c = d.string(); const o = decOid(d); tx.setattrs(c, o, new Map(d.array((dd) => [dd.string(), dd.bytes()] as [string, Uint8Array]))); break; }
        case 'omapSetKeys': { const c = d.string(); const o = decOid(d); tx.omapSetKeys(c, o, new Map(d.array((dd) => [dd.string(), dd.bytes()] as [string, Uint8Array]))); break; }
        case 'rmattr': { const c = d.string(); const o = decOid(d); tx.rmattr(c, o, d.string()); break; }
        case 'omapRmKeys': { const c = d.string(); const o = decOid(d); tx.omapRmKeys(c, o, d.array((dd) => dd.string())); break; }
        case 'omapRmKeyRange': { const c = d.string(); const o = decOid(d); tx.omapRmKeyRange(c, o, d.string(), d.string()); break; }
        case 'omapSetHeader': { const c = d.string(); const o = decOid(d); tx.omapSetHeader(c, o, take(d.u53())); break; }
        case 'clone': { const c = d.string(); const s = decOid(d); tx.clone(c, s, decOid(d)); break; }
        case 'cloneRange': { const c = d.string(); const s = decOid(d); const t = decOid(d); tx.cloneRange(c, s, t, d.u53(), d.u53(), d.u53()); break; }
        case 'collectionMoveRename': { const sc = d.string(); const s = decOid(d); const dc = d.string(); tx.collectionMoveRename(sc, s, dc, decOid(d)); break; }
        default: assertNever(op, 'transaction op');
      }
    }
  });
  d.done('transaction');
  if (off !== data.length) throw new AspenError('E_DECODE', `${data.length - off} unreferenced bytes in the transaction data segment`);
  return tx;
}
