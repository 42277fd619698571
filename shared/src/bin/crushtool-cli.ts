/**
 * The implementation of `aspen-crushtool` (entry point: aspen-crushtool.ts), importable by
 * tests. Ceph's crushtool for Aspen's CRUSH maps, with crushtool's own flags
 * and output formats (src/tools/crushtool.cc):
 *
 *   aspen-crushtool -c map.txt -o map.bin          compile Ceph's text format
 *   aspen-crushtool -d map.bin [-o map.txt]        decompile (byte-identical to crushtool -d)
 *   aspen-crushtool -i map.bin --test [--rule R] [--num-rep N] [--min-x A] [--max-x B] [--x X]
 *       [--pool-id P] [--weight DEV W]... --show-mappings|--show-bad-mappings|
 *       --show-statistics|--show-utilization|--show-utilization-all
 *   aspen-crushtool --build --num-osds N host straw2 3 rack straw2 4 root straw2 0 -o map.bin
 *   aspen-crushtool -i map.bin --add-item ID W NAME --loc TYPE NAME ... | --remove-item NAME |
 *       --reweight-item NAME W   -o out.bin
 *
 * The binary format is Aspen's (shared/src/crush/codec.ts), not Ceph's; `-i` also accepts a
 * text map. Flags may use `_` or `-` (`--num_osds`), as Ceph's argument parser allows.
 * Exit status: 0 on success, 1 on a usage or input error (message on stderr).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import {
  buildCrushMap,
  crushAddOsd,
  crushItemId,
  crushMapFromBytes,
  crushMapToBytes,
  crushRemoveOsd,
  crushReweightOsd,
  crushTest,
  crushTesterWeight,
  formatCrushText,
  parseCrushText,
  CRUSH_BUCKET_ALGS,
  type CrushBucketAlg,
  type CrushBuildLayer,
  type CrushMap,
} from '../crush/index.ts';
import { AspenError } from '../errors.ts';

const CEPH_CRUSH_MAGIC = 0x00010000;

function readMap(path: string): CrushMap {
  const bytes = new Uint8Array(readFileSync(path));
  if (bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) === CEPH_CRUSH_MAGIC) {
    throw new AspenError('EINVAL', `${path} is a Ceph binary CRUSH map: decompile it with 'crushtool -d' and compile the text with 'aspen-crushtool -c'`);
  }
  const text = new TextDecoder().decode(bytes.subarray(0, 64));
  if (/^\s*(#|tunable|device|type)/.test(text)) return parseCrushText(new TextDecoder().decode(bytes));
  return crushMapFromBytes(bytes);
}

function int(v: string, what: string): number {
  if (!/^-?\d+$/.test(v)) throw new AspenError('EINVAL', `${what} must be an integer, got '${v}'`);
  return Number(v);
}

function num(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new AspenError('EINVAL', `${what} must be a number, got '${v}'`);
  return n;
}

/** Parses crushtool's `--build` layers: `name alg size` triples. */
function parseLayers(words: readonly string[]): CrushBuildLayer[] {
  if (words.length === 0 || words.length % 3 !== 0) throw new AspenError('EINVAL', 'layers must be given as triples: <name> <alg> <size>');
  const layers: CrushBuildLayer[] = [];
  for (let i = 0; i < words.length; i += 3) {
    const alg = words[i + 1]!;
    if (!(CRUSH_BUCKET_ALGS as readonly string[]).includes(alg)) throw new AspenError('EINVAL', `unknown bucket alg '${alg}'`);
    layers.push({ name: words[i]!, alg: alg as CrushBucketAlg, size: int(words[i + 2]!, 'layer size') });
  }
  return layers;
}

interface Options {
  compile?: string;
  decompile?: string;
  infn?: string;
  outfn?: string;
  build?: boolean;
  numOsds?: string;
  test?: boolean;
  rule?: string;
  minRule?: string;
  maxRule?: string;
  numRep?: string;
  minX?: string;
  maxX?: string;
  x?: string;
  poolId?: string;
  weight?: string[];
  showMappings?: boolean;
  showBadMappings?: boolean;
  showStatistics?: boolean;
  showUtilization?: boolean;
  showUtilizationAll?: boolean;
  addItem?: string[];
  loc?: string[];
  removeItem?: string;
  reweightItem?: string[];
}

/** Runs aspen-crushtool with `argv` (without node and script); returns the exit status. */
export function main(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): number {
  const normalized = argv.map((a) => (a.startsWith('--') ? `--${a.slice(2).replace(/_/g, '-')}` : a));
  const program = new Command('aspen-crushtool')
    .description("Display, modify and test a CRUSH map (Ceph crushtool's flags and output formats)")
    .option('-c, --compile <map.txt>', 'compile a map from source')
    .option('-d, --decompile <map>', 'decompile a crush map to source')
    .option('-i, --infn <map>', 'read the crush map from infile')
    .option('-o, --outfn <file>', 'output file for (de)compilation or modification')
    .option('--build', "build a new map from layers '<name> <alg> <size>'")
    .option('--num-osds <n>', 'number of OSDs for --build')
    .option('--test', 'test a range of inputs on the map')
    .option('--rule <r>', 'rule to test')
    .option('--min-rule <r>')
    .option('--max-rule <r>')
    .option('--num-rep <n>', 'result size')
    .option('--min-x <x>')
    .option('--max-x <x>')
    .option('--x <x>')
    .option('--pool-id <p>', 'map crush_hash32_2(x, pool) instead of x')
    .option('-w, --weight <devno-weight...>', 'device reweight for --test: <devno> <weight 0..1>')
    .option('--show-mappings', 'show mappings')
    .option('--show-bad-mappings', 'show bad mappings')
    .option('--show-statistics', 'show result-size statistics')
    .option('--show-utilization', 'show OSD usage')
    .option('--show-utilization-all', 'include zero weight items')
    .option('--add-item <id-weight-name...>', 'insert an item: <id> <weight> <name> [--loc type name ...]')
    .option('--loc <type-name...>', 'location for --add-item: <type> <name>')
    .option('--remove-item <name>', 'remove the given item')
    .option('--reweight-item <name-weight...>', 'reweight an item: <name> <weight>')
    .argument('[layers...]', 'layers for --build')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err });
  try {
    program.parse(normalized, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 1;
    throw e;
  }
  const o = program.opts<Options>();
  try {
    return run(o, program.args, out);
  } catch (e) {
    if (e instanceof AspenError) {
      err(`aspen-crushtool: ${e.message}\n`);
      return 1;
    }
    if (e instanceof Error && 'code' in e && (e.code === 'ENOENT' || e.code === 'EACCES')) {
      err(`aspen-crushtool: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

function run(o: Options, layers: string[], out: (s: string) => void): number {
  let map: CrushMap | undefined;
  let modified = false;
  if (o.compile !== undefined) {
    map = parseCrushText(readFileSync(o.compile, 'utf8'));
    modified = true;
  } else if (o.decompile !== undefined) {
    const text = formatCrushText(readMap(o.decompile));
    if (o.outfn !== undefined) writeFileSync(o.outfn, text);
    else out(text);
    return 0;
  } else if (o.build) {
    if (o.numOsds === undefined) throw new AspenError('EINVAL', '--build requires --num-osds N');
    map = buildCrushMap(int(o.numOsds, '--num-osds'), parseLayers(layers));
    modified = true;
  } else if (o.infn !== undefined) {
    map = readMap(o.infn);
  }
  if (!map) throw new AspenError('EINVAL', 'no action specified; -h for help');
  if (o.addItem) {
    const [id, weight, name] = o.addItem;
    if (id === undefined || weight === undefined || name === undefined || o.addItem.length !== 3) {
      throw new AspenError('EINVAL', '--add-item takes <id> <weight> <name>');
    }
    if (name !== `osd.${id}`) throw new AspenError('EINVAL', `only devices named osd.<id> can be added (got ${name})`);
    const loc: Record<string, string> = {};
    const l = o.loc ?? [];
    if (l.length % 2 !== 0) throw new AspenError('EINVAL', '--loc takes <type> <name> pairs');
    for (let i = 0; i < l.length; i += 2) loc[l[i]!] = l[i + 1]!;
    map = crushAddOsd(map, int(id, 'item id'), num(weight, 'weight'), loc);
    modified = true;
  }
  if (o.removeItem !== undefined) {
    const id = crushItemId(map, o.removeItem);
    if (id === undefined || id < 0) throw new AspenError('ENOENT', `device ${o.removeItem} does not exist`);
    map = crushRemoveOsd(map, id);
    modified = true;
  }
  if (o.reweightItem) {
    const [name, weight] = o.reweightItem;
    const id = name === undefined ? undefined : crushItemId(map, name);
    if (id === undefined || id < 0 || weight === undefined) throw new AspenError('EINVAL', '--reweight-item takes <device name> <weight>');
    map = crushReweightOsd(map, id, num(weight, 'weight'));
    modified = true;
  }
  if (o.test) {
    const weights = new Map<number, number>();
    const w = o.weight ?? [];
    if (w.length % 2 !== 0) throw new AspenError('EINVAL', '--weight takes <devno> <weight> pairs');
    for (let i = 0; i < w.length; i += 2) weights.set(int(w[i]!, 'device'), crushTesterWeight(num(w[i + 1]!, 'weight')));
    const rule = o.rule !== undefined ? int(o.rule, '--rule') : undefined;
    const rep = o.numRep !== undefined ? int(o.numRep, '--num-rep') : undefined;
    const x = o.x !== undefined ? int(o.x, '--x') : undefined;
    const lines = crushTest(map, {
      ...(rule !== undefined ? { minRule: rule, maxRule: rule } : {}),
      ...(o.minRule !== undefined ? { minRule: int(o.minRule, '--min-rule') } : {}),
      ...(o.maxRule !== undefined ? { maxRule: int(o.maxRule, '--max-rule') } : {}),
      ...(rep !== undefined ? { minRep: rep, maxRep: rep } : {}),
      ...(x !== undefined ? { minX: x, maxX: x } : {}),
      ...(o.minX !== undefined ? { minX: int(o.minX, '--min-x') } : {}),
      ...(o.maxX !== undefined ? { maxX: int(o.maxX, '--max-x') } : {}),
      ...(o.poolId !== undefined ? { poolId: int(o.poolId, '--pool-id') } : {}),
      deviceWeights: weights,
      showMappings: o.showMappings ?? false,
      showBadMappings: o.showBadMappings ?? false,
      showStatistics: o.showStatistics ?? false,
      showUtilization: o.showUtilization ?? false,
      showUtilizationAll: o.showUtilizationAll ?? false,
    });
    // One write: mapping runs are long.
    if (lines.length) out(lines.join('\n') + '\n');
  }
  if (modified) {
    if (o.outfn !== undefined) writeFileSync(o.outfn, crushMapToBytes(map));
    else if (!o.test) throw new AspenError('EINVAL', 'no -o output file given for the new map');
  }
  return 0;
}
