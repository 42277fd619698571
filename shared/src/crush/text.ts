/**
 * Ceph's text CRUSH map format, as `crushtool -d` writes it and `crushtool -c` reads it
 * (src/crush/CrushCompiler.cc, grammar.h). {@link formatCrushText} reproduces crushtool's
 * output byte for byte; {@link parseCrushText} follows CrushCompiler's semantics: legacy
 * tunables unless stated, item weights `(unsigned)(strtof(w) * (float)0x10000)`, a missing
 * item weight is 1.0 for a device and the child's total for a bucket, bucket ids from the
 * text (or the lowest unused), per-class shadow ids from `id -N class C`, shadow trees
 * rebuilt as `populate_classes` does; `choose_args` sets (weight sets and ids) after the
 * rules, checked against the buckets (shadow ones included) as CrushCompiler does.
 *
 * Every malformed input throws `AspenError('EINVAL')` whose message starts with
 * `line N:` (and whose `details.line` is N), never another kind of error.
 */
import { AspenError } from '../errors.ts';
import { CrushDraft, bucketSum, type DraftBucket } from './draft.ts';
import {
  CRUSH_BUCKET_ALGS,
  CRUSH_SET_OPS,
  CRUSH_TUNABLES_LEGACY,
  crushBucketWeight,
  type CrushBucketAlg,
  type CrushChooseArg,
  type CrushChooseArgMap,
  type CrushDevice,
  type CrushMap,
  type CrushRule,
  type CrushRuleStep,
  type CrushRuleType,
  type CrushSetOp,
  type CrushTunables,
  type CrushTypeDef,
} from './types.ts';
import { emptyCrushMap } from './builder.ts';

interface Token {
  readonly text: string;
  readonly line: number;
}

const TUNABLE_NAMES: Readonly<Record<string, keyof CrushTunables>> = {
  choose_local_tries: 'chooseLocalTries',
  choose_local_fallback_tries: 'chooseLocalFallbackTries',
  choose_total_tries: 'chooseTotalTries',
  chooseleaf_descend_once: 'chooseleafDescendOnce',
  chooseleaf_vary_r: 'chooseleafVaryR',
  chooseleaf_stable: 'chooseleafStable',
  straw_calc_version: 'strawCalcVersion',
  allowed_bucket_algs: 'allowedBucketAlgs',
};
const NAME_RE = /^[A-Za-z0-9_.-]+$/;
const INT_RE = /^[+-]?\d{1,10}$/;
const REAL_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    const hash = line.indexOf('#');
    if (hash >= 0) line = line.slice(0, hash);
    for (const t of line.replace(/([{}[\]])/g, ' $1 ').split(/\s+/)) if (t) tokens.push({ text: t, line: i + 1 });
  }
  return tokens;
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  fail(message: string, tok: Token | undefined = this.tokens[this.pos]): never {
    const line = tok?.line ?? (this.tokens[this.tokens.length - 1]?.line ?? 0);
    throw new AspenError('EINVAL', `line ${line}: ${message}`, { line });
  }
  atEnd(): boolean {
    return this.pos >= this.tokens.length;
  }
  peek(): string | undefined {
    return this.tokens[this.pos]?.text;
  }
  tok(): Token {
    const t = this.tokens[this.pos];
    if (!t) this.fail('unexpected end of input');
    return t;
  }
  next(what: string): Token {
    const t = this.tokens[this.pos];
    if (!t) this.fail(`unexpected end of input, expected ${what}`);
    this.pos++;
    return t;
  }
  expect(text: string): Token {
    const t = this.next(`'${text}'`);
    if (t.text !== text) this.fail(`expected '${text}', got '${t.text}'`, t);
    return t;
  }
  name(what: string): string {
    const t = this.next(what);
    if (!NAME_RE.test(t.text)) this.fail(`invalid ${what} '${t.text}'`, t);
    return t.text;
  }
  int(what: string, min = -0x80000000, max = 0x7fffffff): number {
    const t = this.next(what);
    const v = INT_RE.test(t.text) ? Number(t.text) : NaN;
    if (!Number.isInteger(v) || v < min || v > max) this.fail(`invalid ${what} '${t.text}' (an integer in [${min}, ${max}])`, t);
    return v;
  }
  /** A weight as Ceph stores it: `(unsigned)(strtof(s) * (float)0x10000)`. */
  weight(what: string): number {
    const t = this.next(what);
    const f = REAL_RE.test(t.text) ? Math.fround(Number(t.text)) : NaN;
    const w = Math.trunc(Math.fround(f * 0x10000));
    if (!Number.isFinite(f) || f < 0 || w > 0xffffffff) this.fail(`invalid ${what} '${t.text}'`, t);
    return w;
  }
}

interface ParsedBucket {
  line: number;
  typeId: number;
  name: string;
  id: number | undefined;
  classIds: Map<string, number>;
  alg: CrushBucketAlg;
  items: { name: string; weight: number | undefined; pos: number | undefined; line: number }[];
}

/**
 * Parses Ceph's text CRUSH map format into a {@link CrushMap}.
 * @throws AspenError EINVAL (`line N: …`) for any syntax or semantic error;
 *   E_UNSUPPORTED (`line N: …`) for `choose_args`.
 */
export function parseCrushText(text: string): CrushMap {
  const p = new Parser(tokenize(text));
  const tunables: Record<string, number> = { ...CRUSH_TUNABLES_LEGACY };
  const devices = new Map<number, CrushDevice>();
  const types: CrushTypeDef[] = [];
  const buckets: ParsedBucket[] = [];
  const rules: { line: number; rule: Omit<CrushRule, 'steps'>; steps: { line: number; words: Token[] }[] }[] = [];
  const classes: string[] = [];
  const chooseArgs: ParsedChooseArgs[] = [];
  const names = new Set<string>();
  const addClass = (c: string): void => {
    if (!classes.includes(c)) classes.push(c);
  };
  while (!p.atEnd()) {
    const head = p.tok();
    const kw = p.next('a declaration').text;
    if (kw === 'tunable') {
      const nameTok = p.tok();
      const name = p.name('tunable name');
      const key = Object.hasOwn(TUNABLE_NAMES, name) ? TUNABLE_NAMES[name] : undefined;
      if (key === undefined) p.fail(`tunable ${name} not recognized`, nameTok);
      tunables[key as string] = p.int(`value of tunable ${name}`, 0, 0x7fffffff);
    } else if (kw === 'device') {
      const id = p.int('device id', 0, 0x7ffffff0);
      const name = p.name('device name');
      if (names.has(name) || devices.has(id)) p.fail(`device ${name} (${id}) defined twice`, head);
      names.add(name);
      let deviceClass: string | undefined;
      if (p.peek() === 'class') {
        p.next('class');
        deviceClass = p.name('device class');
        addClass(deviceClass);
      }
      devices.set(id, deviceClass === undefined ? { id, name } : { id, name, deviceClass });
    } else if (kw === 'type') {
      const id = p.int('type id', 0, 0xffff);
      const name = p.name('type name');
      if (types.some((t) => t.id === id || t.name === name)) p.fail(`type ${id} ${name} defined twice`, head);
      types.push({ id, name });
    } else if (kw === 'rule') {
      const line = head.line;
      let name = '';
      if (p.peek() !== '{') name = p.name('rule name');
      p.expect('{');
      const idKw = p.next("'id'");
      if (idKw.text !== 'id' && idKw.text !== 'ruleset') p.fail(`expected 'id', got '${idKw.text}'`, idKw);
      const id = p.int('rule id', 0, 255);
      p.expect('type');
      const typeTok = p.next('rule type');
      if (typeTok.text !== 'replicated' && typeTok.text !== 'erasure') p.fail(`unknown rule type '${typeTok.text}'`, typeTok);
      let minSize = 1;
      let maxSize = 10;
      if (p.peek() === 'min_size') {
        p.next('min_size');
        minSize = p.int('min_size', 0, 255);
      }
      if (p.peek() === 'max_size') {
        p.next('max_size');
        maxSize = p.int('max_size', 0, 255);
      }
      const steps: { line: number; words: Token[] }[] = [];
      while (p.peek() !== '}') {
        const st = p.expect('step');
        const words: Token[] = [];
        while (!p.atEnd() && p.peek() !== 'step' && p.peek() !== '}') words.push(p.next('step'));
        if (words.length === 0) p.fail('empty step', st);
        steps.push({ line: st.line, words });
      }
      p.expect('}');
      if (rules.some((r) => r.rule.id === id)) p.fail(`rule ${id} already exists`, head);
      if (name && rules.some((r) => r.rule.name === name)) p.fail(`rule name '${name}' already defined`, head);
      const type: CrushRuleType = typeTok.text === 'replicated' ? 'replicated' : 'erasure';
      rules.push({ line, rule: { id, name: name || `rule${id}`, type, minSize, maxSize }, steps });
    } else if (kw === 'choose_args') {
      chooseArgs.push(parseChooseArgs(p, head));
    } else {
      const type = types.find((t) => t.name === kw);
      if (type === undefined) return p.fail(`bucket type '${kw}' is not defined`, head);
      const name = p.name('bucket name');
      if (names.has(name)) p.fail(`bucket or device '${name}' is already defined`, head);
      names.add(name);
      p.expect('{');
      const b: ParsedBucket = { line: head.line, typeId: type.id, name, id: undefined, classIds: new Map(), alg: 'straw2', items: [] };
      let sawAlg = false;
      while (p.peek() !== '}') {
        const tagTok = p.next("a bucket field or '}'");
        switch (tagTok.text) {
          case 'id': {
            const id = p.int('bucket id', -0x7fffffff, -1);
            if (p.peek() === 'class') {
              p.next('class');
              const c = p.name('class name');
              if (b.classIds.has(c)) p.fail(`duplicate device class ${c} for bucket ${name}`, tagTok);
              addClass(c);
              b.classIds.set(c, id);
            } else {
              b.id = id;
            }
            break;
          }
          case 'alg': {
            const a = p.next('bucket alg');
            if (!(CRUSH_BUCKET_ALGS as readonly string[]).includes(a.text)) p.fail(`unknown bucket alg '${a.text}'`, a);
            b.alg = a.text as CrushBucketAlg;
            sawAlg = true;
            break;
          }
          case 'hash': {
            const h = p.next('bucket hash');
            if (h.text !== 'rjenkins1' && h.text !== '0') p.fail(`unknown bucket hash '${h.text}'`, h);
            break;
          }
          case 'item': {
            const it = { name: p.name('item name'), weight: undefined as number | undefined, pos: undefined as number | undefined, line: tagTok.line };
            for (;;) {
              if (p.peek() === 'weight') {
                p.next('weight');
                it.weight = p.weight('item weight');
              } else if (p.peek() === 'pos') {
                p.next('pos');
                it.pos = p.int('item pos', 0, 0xffff);
              } else break;
            }
            b.items.push(it);
            break;
          }
          default:
            p.fail(`unexpected '${tagTok.text}' in bucket ${name}`, tagTok);
        }
      }
      p.expect('}');
      if (!sawAlg) p.fail(`bucket ${name} has no alg`, head);
      buckets.push(b);
    }
  }
  const map = assemble(p, tunables as unknown as CrushTunables, devices, types, buckets, rules, classes);
  return chooseArgs.length > 0 ? attachChooseArgs(p, map, chooseArgs) : map;
}

interface ParsedChooseArgs {
  line: number;
  index: number;
  args: { line: number; bucketId: number; weightSet?: number[][]; ids?: number[] }[];
}

/** `choose_args <index> { { bucket_id N [weight_set [ [w …] … ]] [ids [i …]] } … }`. */
function parseChooseArgs(p: Parser, head: Token): ParsedChooseArgs {
  const idxTok = p.next('choose_args index');
  // crushtool prints the default set (-1) as an unsigned 64-bit number.
  const index = idxTok.text === '18446744073709551615' ? -1 : INT_RE.test(idxTok.text) ? Number(idxTok.text) : NaN;
  if (!Number.isInteger(index) || index < -1 || index > 0x7fffffff) p.fail(`invalid choose_args index '${idxTok.text}'`, idxTok);
  const out: ParsedChooseArgs = { line: head.line, index, args: [] };
  p.expect('{');
  while (p.peek() !== '}') {
    const open = p.expect('{');
    p.expect('bucket_id');
    const arg: ParsedChooseArgs['args'][number] = { line: open.line, bucketId: p.int('bucket_id', -0x7fffffff, -1) };
    while (p.peek() !== '}') {
      const tag = p.next("'weight_set', 'ids' or '}'");
      if (tag.text === 'weight_set' && !arg.weightSet) {
        p.expect('[');
        arg.weightSet = [];
        while (p.peek() !== ']') {
          p.expect('[');
          const ws: number[] = [];
          while (p.peek() !== ']') ws.push(p.weight('weight_set weight'));
          p.expect(']');
          arg.weightSet.push(ws);
        }
        p.expect(']');
      } else if (tag.text === 'ids' && !arg.ids) {
        p.expect('[');
        arg.ids = [];
        while (p.peek() !== ']') arg.ids.push(p.int('choose_args id'));
        p.expect(']');
      } else {
        p.fail(`unexpected '${tag.text}' in choose_args`, tag);
      }
    }
    p.expect('}');
    out.args.push(arg);
  }
  p.expect('}');
  return out;
}

function attachChooseArgs(p: Parser, map: CrushMap, sets: ParsedChooseArgs[]): CrushMap {
  const byId = new Map(map.buckets.map((b) => [b.id, b]));
  const out: CrushChooseArgMap[] = [];
  for (const set of sets) {
    if (out.some((o) => o.index === set.index)) p.fail(`choose_args ${set.index} duplicated`, { text: '', line: set.line });
    const args: CrushChooseArg[] = [];
    for (const a of set.args) {
      const at = { text: '', line: a.line };
      const b = byId.get(a.bucketId);
      if (!b) p.fail(`choose_args bucket ${a.bucketId} does not exist`, at);
      if (args.some((x) => x.bucketId === a.bucketId)) p.fail(`choose_args bucket ${a.bucketId} appears twice`, at);
      if (a.weightSet?.some((ws) => ws.length !== b.items.length)) p.fail(`${a.bucketId} needs exactly ${b.items.length} weights`, at);
      if (a.ids && a.ids.length !== b.items.length) p.fail(`${a.bucketId} needs exactly ${b.items.length} ids`, at);
      if ((a.weightSet?.length ?? 0) === 0 && !a.ids?.length) continue;
      args.push({
        bucketId: a.bucketId,
        ...(a.weightSet && a.weightSet.length > 0 ? { weightSet: a.weightSet } : {}),
        ...(a.ids && a.ids.length > 0 ? { ids: a.ids } : {}),
      });
    }
    out.push({ index: set.index, args: args.sort((x, y) => y.bucketId - x.bucketId) });
  }
  return Object.freeze({ ...map, chooseArgs: Object.freeze(out.sort((x, y) => x.index - y.index)) });
}

function assemble(
  p: Parser,
  tunables: CrushTunables,
  devices: Map<number, CrushDevice>,
  types: CrushTypeDef[],
  parsed: ParsedBucket[],
  rules: { line: number; rule: Omit<CrushRule, 'steps'>; steps: { line: number; words: Token[] }[] }[],
  classes: string[],
): CrushMap {
  const d = new CrushDraft(emptyCrushMap(types, tunables));
  for (const dev of devices.values()) d.devices.set(dev.id, dev);
  d.classes = classes;
  // Ids: explicit first (find_used_bucket_ids), then the lowest unused for the rest.
  const usedIds = new Set<number>();
  for (const b of parsed) {
    if (b.id === undefined) continue;
    if (usedIds.has(b.id)) p.fail(`duplicate bucket id ${b.id}`, { text: '', line: b.line });
    usedIds.add(b.id);
  }
  for (const b of parsed) {
    if (b.id !== undefined) continue;
    let id = -1;
    while (usedIds.has(id)) id--;
    b.id = id;
    usedIds.add(id);
  }
  const byName = new Map(parsed.map((b) => [b.name, b]));
  const deviceByName = new Map([...devices.values()].map((x) => [x.name, x]));
  const built = new Map<string, DraftBucket>();
  const inProgress = new Set<string>();
  const build = (b: ParsedBucket): DraftBucket => {
    const done = built.get(b.name);
    if (done) return done;
    if (inProgress.has(b.name)) p.fail(`bucket ${b.name} contains itself`, { text: '', line: b.line });
    inProgress.add(b.name);
    const slots: ({ id: number; weight: number } | undefined)[] = new Array(b.items.length);
    const pending: { id: number; weight: number }[] = [];
    for (const it of b.items) {
      const dev = deviceByName.get(it.name);
      const child = byName.get(it.name);
      if (!dev && !child) p.fail(`item '${it.name}' in bucket '${b.name}' is not defined`, { text: '', line: it.line });
      const id = dev ? dev.id : build(child!).id;
      const weight = it.weight ?? (dev ? 0x10000 : bucketSum(built.get(it.name)!));
      if (it.pos !== undefined) {
        if (it.pos >= slots.length || slots[it.pos]) p.fail(`item '${it.name}' has pos ${it.pos}, which is occupied or out of range`, { text: '', line: it.line });
        slots[it.pos] = { id, weight };
      } else pending.push({ id, weight });
    }
    for (let i = 0; i < slots.length; i++) if (!slots[i]) slots[i] = pending.shift();
    const items = slots as { id: number; weight: number }[];
    if (b.alg === 'uniform' && items.some((it) => it.weight !== items[0]!.weight)) {
      p.fail(`uniform bucket '${b.name}' items must all have identical weights`, { text: '', line: b.line });
    }
    const seen = new Set<number>();
    for (const it of items) {
      if (seen.has(it.id)) p.fail(`item ${it.id} appears twice in bucket '${b.name}'`, { text: '', line: b.line });
      seen.add(it.id);
    }
    if (bucketSum({ items }) > 0xffffffff) p.fail(`bucket '${b.name}' weight overflows`, { text: '', line: b.line });
    const db = d.addBucket({ id: b.id!, name: b.name, typeId: b.typeId, alg: b.alg, items, classIds: new Map(b.classIds) });
    built.set(b.name, db);
    inProgress.delete(b.name);
    return db;
  };
  for (const b of parsed) build(b);
  const classIdsSeen = new Set<number>();
  for (const b of parsed) {
    for (const id of b.classIds.values()) {
      if (d.buckets.has(id)) p.fail(`class bucket id ${id} of '${b.name}' collides with bucket '${d.buckets.get(id)!.name}'`, { text: '', line: b.line });
      if (classIdsSeen.has(id)) p.fail(`class bucket id ${id} of '${b.name}' is used twice`, { text: '', line: b.line });
      classIdsSeen.add(id);
    }
  }
  for (const r of rules) d.rules.set(r.rule.id, { ...r.rule, steps: r.steps.map((s) => parseStep(p, d, s)) });
  d.rebuildShadowTrees(true);
  return d.finish();
}

function parseStep(p: Parser, d: CrushDraft, s: { line: number; words: Token[] }): CrushRuleStep {
  const w = s.words.map((t) => t.text);
  const at = { text: '', line: s.line };
  const op = w[0]!;
  const intArg = (txt: string | undefined): number => {
    if (txt === undefined || !INT_RE.test(txt) || Math.abs(Number(txt)) > 0x7fffffff) p.fail(`step ${op}: bad number '${txt ?? ''}'`, at);
    return Number(txt);
  };
  if (op === 'take') {
    if (w.length !== 2 && !(w.length === 4 && w[2] === 'class')) p.fail(`bad step take`, at);
    const item = d.itemId(w[1]!);
    if (item === undefined) p.fail(`item '${w[1]}' not defined`, at);
    if (w.length === 2) return { op, item };
    const cls = w[3]!;
    if (!d.classes.includes(cls)) p.fail(`class '${cls}' does not exist`, at);
    if (item >= 0) p.fail(`step take ${w[1]} has no class information`, at);
    return { op, item, deviceClass: cls };
  }
  if (op === 'emit' || op === 'noop') {
    if (w.length !== 1) p.fail(`bad step ${op}`, at);
    return { op };
  }
  if ((CRUSH_SET_OPS as readonly string[]).includes(op)) {
    if (w.length !== 2) p.fail(`bad step ${op}`, at);
    return { op: op as CrushSetOp, value: intArg(w[1]) };
  }
  if (op === 'choose' || op === 'chooseleaf') {
    if (w.length !== 5 || (w[1] !== 'firstn' && w[1] !== 'indep') || w[3] !== 'type') p.fail(`bad step ${op}: expected '${op} firstn|indep N type T'`, at);
    const typeId = d.typeId(w[4]!);
    if (typeId === undefined) p.fail(`type '${w[4]}' not defined`, at);
    return { op: `${op}_${w[1]}` as 'choose_firstn', num: intArg(w[2]), typeId };
  }
  p.fail(`unknown step '${op}'`, at);
}

/** `%.3f` of `(float)w / (float)0x10000` with glibc's round-half-even on exact ties. */
export function formatCrushWeight(weight16: number): string {
  const f = Math.fround(weight16);
  const scaled = f * 1000; // exact: f < 2^32, so f * 1000 < 2^42
  let q = Math.floor(scaled / 65536);
  const rem = scaled - q * 65536;
  if (rem * 2 > 65536 || (rem * 2 === 65536 && q % 2 === 1)) q++;
  const whole = Math.floor(q / 1000);
  return `${whole}.${String(q % 1000).padStart(3, '0')}`;
}

/** Writes `map` exactly as `crushtool -d` would (shadow buckets omitted). */
export function formatCrushText(map: CrushMap): string {
  const out: string[] = ['# begin crush map\n'];
  const t = map.tunables;
  const legacy = CRUSH_TUNABLES_LEGACY;
  for (const [name, key] of Object.entries(TUNABLE_NAMES)) {
    if (t[key] !== legacy[key]) out.push(`tunable ${name} ${t[key]}\n`);
  }
  out.push('\n# devices\n');
  for (const dev of map.devices) out.push(`device ${dev.id} ${dev.name}${dev.deviceClass !== undefined ? ` class ${dev.deviceClass}` : ''}\n`);
  out.push('\n# types\n');
  if (!map.types.some((ty) => ty.id === 0)) out.push('type 0 osd\n');
  for (const ty of map.types) out.push(`type ${ty.id} ${ty.name}\n`);
  out.push('\n# buckets\n');
  const byId = new Map(map.buckets.map((b) => [b.id, b]));
  const typeName = (id: number): string => map.types.find((ty) => ty.id === id)?.name ?? (id === 0 ? 'device' : `type${id}`);
  const itemName = (id: number): string =>
    id >= 0 ? (map.devices.find((x) => x.id === id)?.name ?? `device${id}`) : (byId.get(id)?.name ?? `bucket${-1 - id}`);
  const done = new Set<number>();
  const visit = (id: number): void => {
    const b = byId.get(id);
    if (!b || done.has(id) || b.shadowOf) return;
    done.add(id);
    for (const it of b.items) if (it.id < 0) visit(it.id);
    out.push(`${typeName(b.typeId)} ${b.name} {\n\tid ${b.id}\t\t# do not change unnecessarily\n`);
    const classIds = b.classIds ?? {};
    for (const c of map.classes) if (classIds[c] !== undefined) out.push(`\tid ${classIds[c]} class ${c}\t\t# do not change unnecessarily\n`);
    out.push(`\t# weight ${formatCrushWeight(crushBucketWeight(b))}\n\talg ${b.alg}`);
    if (b.alg === 'uniform') out.push(`\t# do not change bucket size (${b.items.length}) unnecessarily`);
    else if (b.alg === 'list') out.push('\t# add new items at the end; do not change order unnecessarily');
    else if (b.alg === 'tree') out.push('\t# do not change pos for existing items unnecessarily');
    out.push('\n\thash 0\t# rjenkins1\n');
    const dopos = b.alg === 'uniform' || b.alg === 'tree';
    b.items.forEach((it, j) => out.push(`\titem ${itemName(it.id)} weight ${formatCrushWeight(it.weight)}${dopos ? ` pos ${j}` : ''}\n`));
    out.push('}\n');
  };
  const minId = map.buckets.reduce((m, b) => Math.min(m, b.id), 0);
  for (let id = -1; id >= minId; id--) visit(id);
  out.push('\n# rules\n');
  for (const r of map.rules) {
    out.push(`rule ${r.name} {\n\tid ${r.id}\n\ttype ${r.type}\n\tmin_size ${r.minSize}\n\tmax_size ${r.maxSize}\n`);
    for (const s of r.steps) {
      switch (s.op) {
        case 'take':
          out.push(`\tstep take ${itemName(s.item)}${s.deviceClass !== undefined ? ` class ${s.deviceClass}` : ''}\n`);
          break;
        case 'emit':
        case 'noop':
          out.push(`\tstep ${s.op}\n`);
          break;
        case 'choose_firstn':
        case 'choose_indep':
        case 'chooseleaf_firstn':
        case 'chooseleaf_indep': {
          const [verb, mode] = s.op.split('_');
          out.push(`\tstep ${verb} ${mode} ${s.num} type ${typeName(s.typeId)}\n`);
          break;
        }
        default:
          out.push(`\tstep ${s.op} ${s.value}\n`);
      }
    }
    out.push('}\n');
  }
  if (map.chooseArgs && map.chooseArgs.length > 0) {
    out.push('\n# choose_args\n');
    for (const set of map.chooseArgs) {
      const index = set.index < 0 ? (2n ** 64n + BigInt(set.index)).toString() : String(set.index);
      out.push(`choose_args ${index} {\n`);
      for (const a of set.args) {
        out.push(`  {\n    bucket_id ${a.bucketId}\n`);
        if (a.weightSet && a.weightSet.length > 0) {
          out.push('    weight_set [\n');
          for (const ws of a.weightSet) out.push(`      [ ${ws.map((w) => `${formatCrushWeight(w)} `).join('')}]\n`);
          out.push('    ]\n');
        }
        if (a.ids && a.ids.length > 0) out.push(`    ids [ ${a.ids.map((id) => `${id} `).join('')}]\n`);
        out.push('  }\n');
      }
      out.push('}\n');
    }
  }
  out.push('\n# end crush map\n');
  return out.join('');
}
