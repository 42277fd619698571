/**
 * The CRUSH mapping function, a line-by-line port of Ceph's src/crush/mapper.c
 * (`crush_do_rule`, `crush_choose_firstn`, `crush_choose_indep`, `is_out`, the bucket
 * choose functions and `crush_ln`), producing the same results as Ceph for the same map,
 * rule, input `x`, result size and device weight vector.
 *
 * Hot path design: a map is compiled once ({@link crushMapperFor}, cached per map object)
 * into flat typed arrays indexed by bucket slot (`-1 - id`); a mapping allocates nothing.
 * The per-call permutation state of uniform buckets (Ceph's `crush_work`) is reset lazily
 * with a generation counter instead of clearing every bucket on every call.
 *
 * Legacy `straw` (v1) and `tree` buckets get their straws and node weights from
 * legacy-buckets.ts (Ceph builder.c). choose_args weight sets and ids apply to straw2
 * buckets, by result position, as `get_choose_arg_weights` / `get_choose_arg_ids` do.
 */
import { assert } from '../assert.ts';
import { crushHash32_2, crushHash32_3 } from './hash.ts';
import { straw2Choose } from './straw2.ts';
import { compileChooseArgs, type CompiledChooseArgs } from './choose-args.ts';
import { straw2LnTable } from './ln.ts';
import { crushCalcStraws, crushTreeNodeWeights, listChoose, strawChoose, treeChoose } from './legacy-buckets.ts';
import {
  OP_CHOOSELEAF_FIRSTN,
  OP_CHOOSELEAF_INDEP,
  OP_CHOOSE_FIRSTN,
  OP_CHOOSE_INDEP,
  OP_EMIT,
  OP_SET_CHOOSELEAF_STABLE,
  OP_SET_CHOOSELEAF_TRIES,
  OP_SET_CHOOSELEAF_VARY_R,
  OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES,
  OP_SET_CHOOSE_LOCAL_TRIES,
  OP_SET_CHOOSE_TRIES,
  OP_TAKE,
  stepCode,
} from './rule-code.ts';
import {
  CRUSH_BUCKET_ALG_IDS,
  CRUSH_DEFAULT_CHOOSE_ARGS,
  type CrushChooseArgMap,
  CRUSH_ITEM_NONE,
  CRUSH_ITEM_UNDEF,
  CRUSH_MAX_RESULT,
  type CrushMap,
} from './types.ts';

const ALG_UNIFORM = 1;
const ALG_LIST = 2;
const ALG_TREE = 3;
const ALG_STRAW = 4;
const ALG_STRAW2 = 5;

/**
 * A CRUSH map compiled for fast mapping. Instances hold scratch state and are not
 * re-entrant (JavaScript is single-threaded; do not share across worker threads).
 */
export class CrushMapper {
  readonly maxDevices: number;
  readonly maxBuckets: number;
  private readonly alg: Uint8Array;
  private readonly btype: Int32Array;
  private readonly bid: Int32Array;
  private readonly size: Int32Array;
  private readonly off: Int32Array;
  private readonly items: Int32Array;
  /** Item weights (16.16) as doubles. */
  private readonly iw: Float64Array;
  /** Per item: the running weight sum (list buckets) or the straw length (straw buckets). */
  private readonly sumw: Float64Array;
  /** Tree buckets: node weights at `treeOff[slot]`, `treeNodes[slot]` of them. */
  private readonly treeOff: Int32Array;
  private readonly treeNodes: Int32Array;
  private readonly treeW: Float64Array;
  private readonly ln: Float64Array;
  // Uniform-bucket permutation work (Ceph crush_work_bucket), reset lazily per call.
  private readonly permX: Uint32Array;
  private readonly permN: Uint32Array;
  private readonly permGen: Uint32Array;
  private readonly perm: Uint32Array;
  private gen = 0;
  // Rules: steps flattened to (op, arg1, arg2) triples.
  private readonly ruleStart: Int32Array;
  private readonly ruleLen: Int32Array;
  private readonly steps: Int32Array;
  private readonly tun: {
    chooseLocalTries: number;
    chooseLocalFallbackTries: number;
    chooseTotalTries: number;
    chooseleafDescendOnce: number;
    chooseleafVaryR: number;
    chooseleafStable: number;
  };
  private readonly scratch = new Int32Array(3 * CRUSH_MAX_RESULT);
  /** choose_args sets by index, compiled on first use; `args` is the one of the current call. */
  private readonly chooseArgSets: ReadonlyMap<number, CrushChooseArgMap>;
  private readonly compiledArgs = new Map<number, CompiledChooseArgs>();
  private args: CompiledChooseArgs | null = null;
  // Per-call inputs, kept in fields so the recursive choosers take fewer arguments.
  private weight: ArrayLike<number> = [];
  private weightMax = 0;

  /** Compiles `map`. Cost: linear in the number of bucket items. */
  constructor(map: CrushMap) {
    this.maxDevices = map.maxDevices;
    let maxBuckets = 0;
    let nItems = 0;
    for (const b of map.buckets) {
      maxBuckets = Math.max(maxBuckets, -b.id);
      nItems += b.items.length;
    }
    this.maxBuckets = maxBuckets;
    this.alg = new Uint8Array(maxBuckets);
    this.btype = new Int32Array(maxBuckets);
    this.bid = new Int32Array(maxBuckets);
    this.size = new Int32Array(maxBuckets);
    this.off = new Int32Array(maxBuckets);
    this.items = new Int32Array(nItems);
    this.iw = new Float64Array(nItems);
    this.sumw = new Float64Array(nItems);
    this.perm = new Uint32Array(nItems);
    this.permX = new Uint32Array(maxBuckets);
    this.permN = new Uint32Array(maxBuckets);
    this.permGen = new Uint32Array(maxBuckets);
    this.treeOff = new Int32Array(maxBuckets);
    this.treeNodes = new Int32Array(maxBuckets);
    const trees: Float64Array[] = [];
    let treeTotal = 0;
    let pos = 0;
    for (const b of map.buckets) {
      const slot = -1 - b.id;
      this.alg[slot] = CRUSH_BUCKET_ALG_IDS[b.alg];
      this.btype[slot] = b.typeId;
      this.bid[slot] = b.id;
      this.size[slot] = b.items.length;
      this.off[slot] = pos;
      const straws = b.alg === 'straw' ? crushCalcStraws(b.items.map((it) => it.weight), map.tunables.strawCalcVersion) : undefined;
      if (b.alg === 'tree') {
        const nodes = crushTreeNodeWeights(b.items.map((it) => it.weight));
        this.treeOff[slot] = treeTotal;
        this.treeNodes[slot] = nodes.length;
        treeTotal += nodes.length;
        trees.push(nodes);
      }
      let sum = 0;
      b.items.forEach((it, i) => {
        this.items[pos] = it.id;
        this.iw[pos] = it.weight;
        sum += it.weight;
        this.sumw[pos] = straws ? straws[i]! : sum;
        pos++;
      });
    }
    assert(pos === nItems, 'item count mismatch');
    this.treeW = new Float64Array(treeTotal);
    let tpos = 0;
    for (const t of trees) {
      this.treeW.set(t, tpos);
      tpos += t.length;
    }
    this.ln = straw2LnTable();
    const byId = new Map(map.buckets.map((b) => [b.id, b]));
    const classIdOf = (item: number, cls: string): number | undefined => byId.get(item)?.classIds?.[cls];
    let maxRule = -1;
    for (const r of map.rules) maxRule = Math.max(maxRule, r.id);
    this.ruleStart = new Int32Array(maxRule + 1).fill(-1);
    this.ruleLen = new Int32Array(maxRule + 1);
    const steps: number[] = [];
    for (const r of map.rules) {
      this.ruleStart[r.id] = steps.length / 3;
      this.ruleLen[r.id] = r.steps.length;
      for (const s of r.steps) steps.push(...stepCode(s, classIdOf));
    }
    this.steps = Int32Array.from(steps);
    this.tun = { ...map.tunables };
    this.chooseArgSets = new Map((map.chooseArgs ?? []).map((c) => [c.index, c]));
  }

  /** Ceph `choose_args_get_with_fallback`: the set for `index`, else the default (-1), else none. */
  private chooseArgsFor(index: number): CompiledChooseArgs | null {
    const set = this.chooseArgSets.get(index) ?? this.chooseArgSets.get(CRUSH_DEFAULT_CHOOSE_ARGS);
    if (!set) return null;
    let c = this.compiledArgs.get(set.index);
    if (!c) {
      c = compileChooseArgs(set, this.maxBuckets, (id) => {
        const slot = -1 - id;
        return slot >= 0 && slot < this.maxBuckets && this.alg[slot] !== 0 ? this.size[slot]! : -1;
      });
      this.compiledArgs.set(set.index, c);
    }
    return c;
  }

  /** True when rule `ruleId` exists. */
  hasRule(ruleId: number): boolean {
    return ruleId >= 0 && ruleId < this.ruleStart.length && this.ruleStart[ruleId]! >= 0;
  }

  /**
   * Ceph `crush_do_rule`: maps input `x` (a 32-bit integer, e.g. a PG's placement seed)
   * through rule `ruleId` into `result[0..n)`, returning n <= `resultMax`. Devices are
   * filtered by `weight` (16.16 per device id, Ceph's osd reweight: 0 = out, 0x10000 = in;
   * ids >= `weight.length` are out). Indep rules leave holes as {@link CRUSH_ITEM_NONE}.
   * An unknown rule yields 0 results, as in Ceph. `chooseArgsIndex` picks the choose_args
   * set (the OSDMap passes the pool id; crushtool passes 0), falling back to the default set.
   * @throws AssertionFailure when resultMax is outside [1, CRUSH_MAX_RESULT] or result is too short.
   */
  doRule(ruleId: number, x: number, result: Int32Array, resultMax: number, weight: ArrayLike<number>, chooseArgsIndex = 0): number {
    assert(resultMax >= 1 && resultMax <= CRUSH_MAX_RESULT && result.length >= resultMax, `bad resultMax ${resultMax}`);
    if (!this.hasRule(ruleId)) return 0;
    this.args = this.chooseArgSets.size > 0 ? this.chooseArgsFor(chooseArgsIndex) : null;
    x = x | 0;
    this.weight = weight;
    this.weightMax = weight.length;
    this.gen = (this.gen + 1) >>> 0;
    if (this.gen === 0) {
      this.permGen.fill(0);
      this.gen = 1;
    }
    const sc = this.scratch;
    // a = [0, rmax), b = [rmax, 2 rmax), c = [2 rmax, 3 rmax): Ceph's scratch vectors.
    let w = 0;
    let o = resultMax;
    const c = 2 * resultMax;
    let wsize = 0;
    let resultLen = 0;
    let chooseTries = this.tun.chooseTotalTries + 1;
    let chooseLeafTries = 0;
    let chooseLocalRetries = this.tun.chooseLocalTries;
    let chooseLocalFallbackRetries = this.tun.chooseLocalFallbackTries;
    let varyR = this.tun.chooseleafVaryR;
    let stable = this.tun.chooseleafStable;
    const start = this.ruleStart[ruleId]!;
    const len = this.ruleLen[ruleId]!;
    for (let step = 0; step < len; step++) {
      const op = this.steps[3 * (start + step)]!;
      const arg1 = this.steps[3 * (start + step) + 1]!;
      const arg2 = this.steps[3 * (start + step) + 2]!;
      switch (op) {
        case OP_TAKE:
          if ((arg1 >= 0 && arg1 < this.maxDevices) || (arg1 < 0 && -1 - arg1 < this.maxBuckets && this.alg[-1 - arg1] !== 0)) {
            sc[w] = arg1;
            wsize = 1;
          }
          break;
        case OP_SET_CHOOSE_TRIES:
          if (arg1 > 0) chooseTries = arg1;
          break;
        case OP_SET_CHOOSELEAF_TRIES:
          if (arg1 > 0) chooseLeafTries = arg1;
          break;
        case OP_SET_CHOOSE_LOCAL_TRIES:
          if (arg1 >= 0) chooseLocalRetries = arg1;
          break;
        case OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES:
          if (arg1 >= 0) chooseLocalFallbackRetries = arg1;
          break;
        case OP_SET_CHOOSELEAF_VARY_R:
          if (arg1 >= 0) varyR = arg1;
          break;
        case OP_SET_CHOOSELEAF_STABLE:
          if (arg1 >= 0) stable = arg1;
          break;
        case OP_CHOOSE_FIRSTN:
        case OP_CHOOSELEAF_FIRSTN:
        case OP_CHOOSE_INDEP:
        case OP_CHOOSELEAF_INDEP: {
          if (wsize === 0) break;
          const firstn = op === OP_CHOOSE_FIRSTN || op === OP_CHOOSELEAF_FIRSTN;
          const recurseToLeaf = op === OP_CHOOSELEAF_FIRSTN || op === OP_CHOOSELEAF_INDEP;
          let osize = 0;
          for (let i = 0; i < wsize; i++) {
            let numrep = arg1;
            if (numrep <= 0) {
              numrep += resultMax;
              if (numrep <= 0) continue;
            }
            const bno = -1 - sc[w + i]!;
            if (bno < 0 || bno >= this.maxBuckets || this.alg[bno] === 0) continue;
            if (firstn) {
              const recurseTries = chooseLeafTries ? chooseLeafTries : this.tun.chooseleafDescendOnce ? 1 : chooseTries;
              osize += this.chooseFirstn(
                bno, x, numrep, arg2, o + osize, 0, resultMax - osize, chooseTries, recurseTries,
                chooseLocalRetries, chooseLocalFallbackRetries, recurseToLeaf, varyR, stable, c + osize, 0,
              );
            } else {
              const outSize = numrep < resultMax - osize ? numrep : resultMax - osize;
              this.chooseIndep(
                bno, x, outSize, numrep, arg2, o + osize, 0, chooseTries,
                chooseLeafTries ? chooseLeafTries : 1, recurseToLeaf, c + osize, 0,
              );
              osize += outSize;
            }
          }
          if (recurseToLeaf) sc.copyWithin(o, c, c + osize);
          const tmp = o;
          o = w;
          w = tmp;
          wsize = osize;
          break;
        }
        case OP_EMIT:
          for (let i = 0; i < wsize && resultLen < resultMax; i++) result[resultLen++] = sc[w + i]!;
          wsize = 0;
          break;
        default:
          break;
      }
    }
    assert(resultLen <= resultMax, 'result overflow');
    return resultLen;
  }

  /** Ceph `is_out`: whether device `item` is rejected for input x given its reweight. */
  private isOut(item: number, x: number): boolean {
    if (item >= this.weightMax) return true;
    const w = this.weight[item]!;
    if (w >= 0x10000) return false;
    if (w === 0) return true;
    return (crushHash32_2(x, item) & 0xffff) >= w;
  }

  /** Ceph `crush_bucket_choose`; `position` selects the choose_args weight set. */
  private bucketChoose(slot: number, x: number, r: number, position: number): number {
    const alg = this.alg[slot]!;
    if (alg === ALG_STRAW2) {
      const off = this.off[slot]!;
      const size = this.size[slot]!;
      const ca = this.args;
      if (ca !== null) {
        // get_choose_arg_weights / get_choose_arg_ids
        const sets = ca.wsCount[slot]!;
        const idsOff = ca.idsOff[slot]!;
        if (sets > 0 || idsOff >= 0) {
          const wOff = sets > 0 ? ca.wsOff[slot]! + (position < sets ? position : sets - 1) * size : off;
          const i = straw2Choose(idsOff >= 0 ? ca.ids : this.items, idsOff >= 0 ? idsOff : off, sets > 0 ? ca.ws : this.iw, wOff, size, this.ln, x, r);
          return this.items[off + i]!;
        }
      }
      return this.items[off + straw2Choose(this.items, off, this.iw, off, size, this.ln, x, r)]!;
    }
    const off = this.off[slot]!;
    const size = this.size[slot]!;
    if (alg === ALG_STRAW) return this.items[off + strawChoose(this.items, this.sumw, off, size, x, r)]!;
    if (alg === ALG_LIST) return this.items[off + listChoose(this.items, this.iw, this.sumw, off, size, this.bid[slot]!, x, r)]!;
    if (alg === ALG_TREE) {
      return this.items[off + treeChoose(this.treeW, this.treeOff[slot]!, this.treeNodes[slot]!, this.bid[slot]!, x, r)]!;
    }
    return this.permChoose(slot, x, r);
  }

  /** Ceph `bucket_perm_choose` (uniform buckets and local fallback). */
  private permChoose(slot: number, x: number, r: number): number {
    const size = this.size[slot]!;
    const off = this.off[slot]!;
    const id = this.bid[slot]!;
    const perm = this.perm;
    const pr = r % size;
    const ux = x >>> 0;
    if (this.permGen[slot] !== this.gen) {
      this.permGen[slot] = this.gen;
      this.permX[slot] = 0;
      this.permN[slot] = 0;
    }
    if (this.permX[slot] !== ux || this.permN[slot] === 0) {
      this.permX[slot] = ux;
      if (pr === 0) {
        const s = crushHash32_3(x, id, 0) % size;
        perm[off] = s;
        this.permN[slot] = 0xffff;
        return this.items[off + s]!;
      }
      for (let i = 0; i < size; i++) perm[off + i] = i;
      this.permN[slot] = 0;
    } else if (this.permN[slot] === 0xffff) {
      for (let i = 1; i < size; i++) perm[off + i] = i;
      perm[off + perm[off]!] = 0;
      this.permN[slot] = 1;
    }
    while (this.permN[slot]! <= pr) {
      const p = this.permN[slot]!;
      if (p < size - 1) {
        const i = crushHash32_3(x, id, p) % (size - p);
        if (i) {
          const t = perm[off + p + i]!;
          perm[off + p + i] = perm[off + p]!;
          perm[off + p] = t;
        }
      }
      this.permN[slot] = p + 1;
    }
    return this.items[off + perm[off + pr]!]!;
  }

  /** Type of item: 0 for devices, the bucket's type otherwise; -1 for a missing bucket. */
  private itemType(item: number): number {
    if (item >= 0) return 0;
    const slot = -1 - item;
    if (slot >= this.maxBuckets || this.alg[slot] === 0) return -1;
    return this.btype[slot]!;
  }

  /** Ceph `crush_choose_firstn`; `out`/`out2` are offsets into the scratch array (-1 = NULL). */
  private chooseFirstn(
    bucket: number, x: number, numrep: number, type: number, out: number, outpos: number, outSize: number,
    tries: number, recurseTries: number, localRetries: number, localFallbackRetries: number,
    recurseToLeaf: boolean, varyR: number, stable: number, out2: number, parentR: number,
  ): number {
    const sc = this.scratch;
    let count = outSize;
    let item = 0;
    for (let rep = stable ? 0 : outpos; rep < numrep && count > 0; rep++) {
      let ftotal = 0;
      let skipRep = false;
      let retryDescent: boolean;
      do {
        retryDescent = false;
        let inb = bucket;
        let flocal = 0;
        let retryBucket: boolean;
        do {
          let collide = false;
          let reject = false;
          retryBucket = false;
          const r = rep + parentR + ftotal;
          const inSize = this.size[inb]!;
          if (inSize === 0) {
            reject = true;
          } else {
            if (localFallbackRetries > 0 && flocal >= inSize >> 1 && flocal > localFallbackRetries) {
              item = this.permChoose(inb, x, r);
            } else {
              item = this.bucketChoose(inb, x, r, outpos);
            }
            if (item >= this.maxDevices) {
              skipRep = true;
              break;
            }
            const itemtype = this.itemType(item);
            if (itemtype !== type) {
              if (item >= 0 || itemtype < 0) {
                skipRep = true;
                break;
              }
              inb = -1 - item;
              retryBucket = true;
              continue;
            }
            for (let i = 0; i < outpos; i++) {
              if (sc[out + i] === item) {
                collide = true;
                break;
              }
            }
            if (!collide && recurseToLeaf) {
              if (item < 0) {
                const subR = varyR ? r >> (varyR - 1) : 0;
                const got = this.chooseFirstn(
                  -1 - item, x, stable ? 1 : outpos + 1, 0, out2, outpos, count, recurseTries, 0,
                  localRetries, localFallbackRetries, false, varyR, stable, -1, subR,
                );
                if (got <= outpos) reject = true;
              } else {
                sc[out2 + outpos] = item;
              }
            }
            if (!reject && !collide && itemtype === 0) reject = this.isOut(item, x);
          }
          if (reject || collide) {
            ftotal++;
            flocal++;
            if (collide && flocal <= localRetries) retryBucket = true;
            else if (localFallbackRetries > 0 && flocal <= inSize + localFallbackRetries) retryBucket = true;
            else if (ftotal < tries) retryDescent = true;
            else skipRep = true;
          }
        } while (retryBucket);
      } while (retryDescent);
      if (skipRep) continue;
      sc[out + outpos] = item;
      outpos++;
      count--;
    }
    return outpos;
  }

  /** Ceph `crush_choose_indep`: breadth-first, positionally stable; holes are CRUSH_ITEM_NONE. */
  private chooseIndep(
    bucket: number, x: number, left: number, numrep: number, type: number, out: number, outpos: number,
    tries: number, recurseTries: number, recurseToLeaf: boolean, out2: number, parentR: number,
  ): void {
    const sc = this.scratch;
    const endpos = outpos + left;
    for (let rep = outpos; rep < endpos; rep++) {
      sc[out + rep] = CRUSH_ITEM_UNDEF;
      if (out2 >= 0) sc[out2 + rep] = CRUSH_ITEM_UNDEF;
    }
    for (let ftotal = 0; left > 0 && ftotal < tries; ftotal++) {
      for (let rep = outpos; rep < endpos; rep++) {
        if (sc[out + rep] !== CRUSH_ITEM_UNDEF) continue;
        let inb = bucket;
        for (;;) {
          let r = rep + parentR;
          const inSize = this.size[inb]!;
          if (this.alg[inb] === ALG_UNIFORM && inSize % numrep === 0) r += (numrep + 1) * ftotal;
          else r += numrep * ftotal;
          if (inSize === 0) break;
          const item = this.bucketChoose(inb, x, r, outpos);
          if (item >= this.maxDevices) {
            sc[out + rep] = CRUSH_ITEM_NONE;
            if (out2 >= 0) sc[out2 + rep] = CRUSH_ITEM_NONE;
            left--;
            break;
          }
          const itemtype = this.itemType(item);
          if (itemtype !== type) {
            if (item >= 0 || itemtype < 0) {
              sc[out + rep] = CRUSH_ITEM_NONE;
              if (out2 >= 0) sc[out2 + rep] = CRUSH_ITEM_NONE;
              left--;
              break;
            }
            inb = -1 - item;
            continue;
          }
          let collide = false;
          for (let i = outpos; i < endpos; i++) {
            if (sc[out + i] === item) {
              collide = true;
              break;
            }
          }
          if (collide) break;
          if (recurseToLeaf) {
            if (item < 0) {
              this.chooseIndep(-1 - item, x, 1, numrep, 0, out2, rep, recurseTries, 0, false, -1, r);
              if (sc[out2 + rep] === CRUSH_ITEM_NONE) break;
            } else {
              sc[out2 + rep] = item;
            }
          }
          if (itemtype === 0 && this.isOut(item, x)) break;
          sc[out + rep] = item;
          left--;
          break;
        }
      }
    }
    for (let rep = outpos; rep < endpos; rep++) {
      if (sc[out + rep] === CRUSH_ITEM_UNDEF) sc[out + rep] = CRUSH_ITEM_NONE;
      if (out2 >= 0 && sc[out2 + rep] === CRUSH_ITEM_UNDEF) sc[out2 + rep] = CRUSH_ITEM_NONE;
    }
  }
}

const mappers = new WeakMap<CrushMap, CrushMapper>();

/** The compiled mapper of `map`, built on first use and cached while the map is alive. */
export function crushMapperFor(map: CrushMap): CrushMapper {
  let m = mappers.get(map);
  if (!m) {
    m = new CrushMapper(map);
    mappers.set(map, m);
  }
  return m;
}

/**
 * Convenience form of {@link CrushMapper.doRule}: returns the mapping as a new array.
 * `weight` defaults to every device in (0x10000), as `crushtool --test` does for devices
 * present in the map.
 */
export function crushDoRule(map: CrushMap, ruleId: number, x: number, resultMax: number, weight?: ArrayLike<number>): number[] {
  const mapper = crushMapperFor(map);
  const out = new Int32Array(resultMax);
  const n = mapper.doRule(ruleId, x, out, resultMax, weight ?? crushDefaultWeights(map));
  return Array.from(out.subarray(0, n));
}

/** Ceph CrushTester's default weight vector: 0x10000 for devices in some bucket, 0 otherwise. */
export function crushDefaultWeights(map: CrushMap): Uint32Array {
  const w = new Uint32Array(map.maxDevices);
  for (const b of map.buckets) for (const it of b.items) if (it.id >= 0 && it.id < w.length) w[it.id] = 0x10000;
  return w;
}
