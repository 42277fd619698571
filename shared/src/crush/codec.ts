/**
 * Aspen's binary encoding of a {@link CrushMap} (not Ceph's: exactness is about mappings).
 * A versioned struct (shared/src/codec.ts, Ceph ENCODE_START style); sample bytes of each
 * version live in shared/testdata/crush/ and later versions must keep reading them.
 *
 * v1 layout: tunables (8 × u32), devices, types, buckets (real and shadow), rules, classes,
 * maxDevices. v2 (compat 1: v1 readers skip it) appends the choose_args sets; a map without
 * choose_args is written as v1, byte for byte as before v2 existed (embedding structures'
 * sample bytes stay valid).
 * Integers little-endian; ids are i32, weights u32 (16.16).
 */
import { AspenError } from '../errors.ts';
import { Decoder, Encoder } from '../codec.ts';
import { assertNever } from '../assert.ts';
import {
  CRUSH_BUCKET_ALGS,
  CRUSH_BUCKET_ALG_IDS,
  CRUSH_SET_OPS,
  type CrushBucket,
  type CrushChooseArg,
  type CrushChooseArgMap,
  type CrushDevice,
  type CrushMap,
  type CrushRule,
  type CrushRuleStep,
  type CrushTunables,
} from './types.ts';

/** Current encoding version of a CRUSH map. */
export const CRUSH_MAP_ENCODING_VERSION = 2;

const STEP_OPS = [
  'noop',
  'take',
  'choose_firstn',
  'choose_indep',
  'emit',
  'chooseleaf_firstn',
  'chooseleaf_indep',
  ...CRUSH_SET_OPS,
] as const;
type StepOp = (typeof STEP_OPS)[number];

function encodeStep(e: Encoder, s: CrushRuleStep): void {
  e.u8(STEP_OPS.indexOf(s.op));
  switch (s.op) {
    case 'take':
      e.i32(s.item).optional(s.deviceClass, (e2, c) => e2.string(c));
      return;
    case 'choose_firstn':
    case 'choose_indep':
    case 'chooseleaf_firstn':
    case 'chooseleaf_indep':
      e.i32(s.num).u32(s.typeId);
      return;
    case 'emit':
    case 'noop':
      return;
    case 'set_choose_tries':
    case 'set_chooseleaf_tries':
    case 'set_choose_local_tries':
    case 'set_choose_local_fallback_tries':
    case 'set_chooseleaf_vary_r':
    case 'set_chooseleaf_stable':
      e.i32(s.value);
      return;
    default:
      assertNever(s, 'rule step');
  }
}

function decodeStep(d: Decoder): CrushRuleStep {
  const code = d.u8();
  const op: StepOp | undefined = STEP_OPS[code];
  if (op === undefined) throw new AspenError('E_DECODE', `unknown CRUSH rule step op ${code}`);
  switch (op) {
    case 'take': {
      const item = d.i32();
      const deviceClass = d.optional((d2) => d2.string());
      return deviceClass === undefined ? { op, item } : { op, item, deviceClass };
    }
    case 'choose_firstn':
    case 'choose_indep':
    case 'chooseleaf_firstn':
    case 'chooseleaf_indep':
      return { op, num: d.i32(), typeId: d.u32() };
    case 'emit':
    case 'noop':
      return { op };
    default:
      return { op, value: d.i32() };
  }
}

const TUNABLE_KEYS: readonly (keyof CrushTunables)[] = [
  'chooseLocalTries',
  'chooseLocalFallbackTries',
  'chooseTotalTries',
  'chooseleafDescendOnce',
  'chooseleafVaryR',
  'chooseleafStable',
  'strawCalcVersion',
  'allowedBucketAlgs',
];

/** Appends `map` to `e` as a versioned struct. */
export function encodeCrushMap(e: Encoder, map: CrushMap): Encoder {
  const hasChooseArgs = map.chooseArgs !== undefined && map.chooseArgs.length > 0;
  return e.struct(hasChooseArgs ? CRUSH_MAP_ENCODING_VERSION : 1, 1, (e) => {
    for (const k of TUNABLE_KEYS) e.u32(map.tunables[k]);
    e.array(map.devices, (e, dev) => {
      e.i32(dev.id).string(dev.name).optional(dev.deviceClass, (e2, c) => e2.string(c));
    });
    e.array(map.types, (e, t) => e.u32(t.id).string(t.name));
    e.array(map.buckets, (e, b) => {
      e.i32(b.id).string(b.name).u32(b.typeId).u8(CRUSH_BUCKET_ALG_IDS[b.alg]).u8(0);
      e.array(b.items, (e2, it) => e2.i32(it.id).u32(it.weight));
      e.array(Object.entries(b.classIds ?? {}), (e2, [c, id]) => e2.string(c).i32(id));
      e.optional(b.shadowOf, (e2, s) => e2.i32(s.id).string(s.deviceClass));
    });
    e.array(map.rules, (e, r) => {
      e.u32(r.id).string(r.name).u8(r.type === 'replicated' ? 1 : 3).u32(r.minSize).u32(r.maxSize);
      e.array(r.steps, encodeStep);
    });
    e.array(map.classes, (e, c) => e.string(c));
    e.u32(map.maxDevices);
    if (!hasChooseArgs) return;
    // v2
    e.array(map.chooseArgs ?? [], (e, set) => {
      e.i32(set.index);
      e.array(set.args, (e2, a) => {
        e2.i32(a.bucketId);
        e2.optional(a.weightSet, (e3, ws) => e3.array(ws, (e4, w) => e4.array(w, (e5, v) => e5.u32(v))));
        e2.optional(a.ids, (e3, ids) => e3.array(ids, (e4, id) => e4.i32(id)));
      });
    });
  });
}

/**
 * Reads a map written by {@link encodeCrushMap}.
 * @throws AspenError E_DECODE on malformed bytes; E_UNSUPPORTED for a newer incompatible version.
 */
export function decodeCrushMap(d: Decoder): CrushMap {
  return d.struct(CRUSH_MAP_ENCODING_VERSION, 'CrushMap', (d, version) => {
    const t: Record<string, number> = {};
    for (const k of TUNABLE_KEYS) t[k] = d.u32();
    const tunables = Object.freeze(t) as unknown as CrushTunables;
    const devices = d.array((d): CrushDevice => {
      const id = d.i32();
      if (id < 0) throw new AspenError('E_DECODE', `negative device id ${id}`);
      const name = d.string();
      const deviceClass = d.optional((d2) => d2.string());
      return Object.freeze(deviceClass === undefined ? { id, name } : { id, name, deviceClass });
    });
    const types = d.array((d) => Object.freeze({ id: d.u32(), name: d.string() }));
    const buckets = d.array((d): CrushBucket => {
      const id = d.i32();
      if (id >= 0) throw new AspenError('E_DECODE', `bucket id ${id} is not negative`);
      const name = d.string();
      const typeId = d.u32();
      const algId = d.u8();
      const alg = CRUSH_BUCKET_ALGS[algId - 1];
      if (alg === undefined) throw new AspenError('E_DECODE', `unknown bucket alg ${algId}`);
      const hash = d.u8();
      if (hash !== 0) throw new AspenError('E_DECODE', `unknown bucket hash ${hash}`);
      const items = Object.freeze(d.array((d2) => Object.freeze({ id: d2.i32(), weight: d2.u32() })));
      const classIds = d.array((d2) => [d2.string(), d2.i32()] as const);
      const shadowOf = d.optional((d2) => Object.freeze({ id: d2.i32(), deviceClass: d2.string() }));
      return Object.freeze({
        id,
        name,
        typeId,
        alg,
        hash: 'rjenkins1' as const,
        items,
        ...(classIds.length ? { classIds: Object.freeze(Object.fromEntries(classIds)) } : {}),
        ...(shadowOf ? { shadowOf } : {}),
      });
    });
    const rules = d.array((d): CrushRule => {
      const id = d.u32();
      const name = d.string();
      const typeCode = d.u8();
      if (typeCode !== 1 && typeCode !== 3) throw new AspenError('E_DECODE', `unknown rule type ${typeCode}`);
      const minSize = d.u32();
      const maxSize = d.u32();
      const steps = Object.freeze(d.array(decodeStep));
      return Object.freeze({ id, name, type: typeCode === 1 ? 'replicated' : 'erasure', minSize, maxSize, steps });
    });
    const classes = d.array((d) => d.string());
    const maxDevices = d.u32();
    const chooseArgs: CrushChooseArgMap[] =
      version >= 2
        ? d.array((d) => {
            const index = d.i32();
            const args = d.array((d2): CrushChooseArg => {
              const bucketId = d2.i32();
              const weightSet = d2.optional((d3) => Object.freeze(d3.array((d4) => Object.freeze(d4.array((d5) => d5.u32())))));
              const ids = d2.optional((d3) => Object.freeze(d3.array((d4) => d4.i32())));
              return Object.freeze({ bucketId, ...(weightSet ? { weightSet } : {}), ...(ids ? { ids } : {}) });
            });
            return Object.freeze({ index, args: Object.freeze(args) });
          })
        : [];
    return Object.freeze({
      tunables,
      devices: Object.freeze(devices),
      types: Object.freeze(types),
      buckets: Object.freeze(buckets),
      rules: Object.freeze(rules),
      classes: Object.freeze(classes),
      maxDevices,
      ...(chooseArgs.length > 0 ? { chooseArgs: Object.freeze(chooseArgs) } : {}),
    });
  });
}

/** Encodes a map into a standalone buffer. */
export function crushMapToBytes(map: CrushMap): Uint8Array {
  return encodeCrushMap(new Encoder(1024), map).finish();
}

/** Decodes a standalone buffer. @throws AspenError E_DECODE (also on trailing bytes). */
export function crushMapFromBytes(bytes: Uint8Array): CrushMap {
  const d = new Decoder(bytes);
  const map = decodeCrushMap(d);
  d.done('CrushMap');
  return map;
}
