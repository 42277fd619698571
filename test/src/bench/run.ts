/**
 * The benchmark runner: `npm run bench [-- NAME …]` (DESIGN.md "Benchmarks"; not a test, it never
 * asserts on timing).
 *
 * Every `test/src/bench/<name>.ts` other than this file is a benchmark. A module that exports
 * `async function run(): Promise<string>` is imported and run in this process; its result is a
 * markdown section. A module without such an export is a standalone script: it is run as
 * `node --import tsx test/src/bench/<name>.ts` and its stdout becomes the section (fenced as text
 * unless it already starts with a markdown heading). With no names, every benchmark runs, in name
 * order; otherwise the named ones, in the order given.
 *
 * Each section is written into BENCHMARKS.md at the repository root between
 * `<!-- bench:<name>:start -->` and `<!-- bench:<name>:end -->`, replacing what was there (or
 * appended at the end). Everything outside those markers — the header, hand-written sections — is
 * kept. A missing file is created with a header naming the machine. A benchmark that fails leaves
 * its old section untouched and makes the runner exit with status 1.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(BENCH_DIR, '..', '..', '..');
const BENCHMARKS_MD = join(REPO_ROOT, 'BENCHMARKS.md');
/** Files in BENCH_DIR that are not benchmarks (this runner; helpers start with `_`). */
const NOT_BENCHMARKS = new Set(['run.ts']);
/** A module that exports a `run()` (the in-process protocol), recognised without importing it. */
const EXPORTS_RUN = /^export\s+(async\s+)?function\s+run\s*\(|^export\s+const\s+run\s*=|^export\s*\{[^}]*\brun\b[^}]*\}/m;

/** Benchmark names available in BENCH_DIR, sorted. */
function availableBenchmarks(): string[] {
  return readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('_') && !NOT_BENCHMARKS.has(f))
    .map((f) => basename(f, '.ts'))
    .sort();
}

/** One line describing this machine: the figures below are only comparable on the same one. */
export function machineLine(): string {
  let nproc = String(availableParallelism());
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // no coreutils nproc: the Node figure stands
  }
  const memGiB = (totalmem() / 2 ** 30).toFixed(1);
  const model = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  return `nproc ${nproc} (${model}), ${memGiB} GiB RAM, Linux ${release()}, Node ${process.version}`;
}

function header(): string {
  return [
    '# Aspen benchmarks',
    '',
    'Written by `npm run bench` (test/src/bench/run.ts); each `<!-- bench:NAME -->` section is replaced',
    'when `npm run bench -- NAME` runs again, and everything outside those markers is kept. Figures are',
    'from a shared, noisy machine: compare ratios against the anchors measured in the same run.',
    '',
    `File created ${new Date().toISOString()} on: ${machineLine()}.`,
    '',
  ].join('\n');
}

/** Replaces (or appends) section `name` in the markdown text `doc`. */
export function spliceSection(doc: string, name: string, body: string): string {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  const i = doc.indexOf(start);
  const j = i < 0 ? -1 : doc.indexOf(end, i);
  if (i >= 0 && j >= 0) return doc.slice(0, i) + block + doc.slice(j + end.length);
  if (i >= 0 || doc.includes(end)) throw new Error(`BENCHMARKS.md has an unbalanced marker for section '${name}'; fix it by hand`);
  return `${doc.replace(/\s*$/, '')}\n\n${block}\n`;
}

function writeSection(name: string, body: string): void {
  const doc = existsSync(BENCHMARKS_MD) ? readFileSync(BENCHMARKS_MD, 'utf8') : header();
  const tmp = `${BENCHMARKS_MD}.tmp-${process.pid}`;
  writeFileSync(tmp, spliceSection(doc, name, body));
  renameSync(tmp, BENCHMARKS_MD);
}

/** Runs a standalone benchmark script and returns its stdout (stderr passes through). */
function runStandalone(file: string): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      process.stdout.write(c);
    });
    child.once('error', rej);
    child.once('exit', (code, signal) => {
      if (code === 0) res(Buffer.concat(chunks).toString('utf8'));
      else rej(new Error(`${file} exited with ${code === null ? `signal ${signal}` : `status ${code}`}`));
    });
  });
}

async function runOne(name: string): Promise<string> {
  const file = join(BENCH_DIR, `${name}.ts`);
  const started = new Date().toISOString();
  let body: string;
  if (EXPORTS_RUN.test(readFileSync(file, 'utf8'))) {
    const mod = (await import(pathToFileURL(file).href)) as { run?: unknown };
    if (typeof mod.run !== 'function') throw new Error(`${file} does not export a run() function`);
    body = String(await (mod.run as () => Promise<unknown>)());
  } else {
    const out = (await runStandalone(file)).trim();
    body = out.startsWith('#') ? out : `## ${name}\n\n\`\`\`text\n${out}\n\`\`\``;
  }
  const stamp = `_Run ${started} with \`npm run bench -- ${name}\` on: ${machineLine()}._`;
  // The stamp goes right under the section's first heading (or on top when there is none).
  const nl = body.indexOf('\n');
  return body.startsWith('#') && nl > 0 ? `${body.slice(0, nl)}\n\n${stamp}\n\n${body.slice(nl).trimStart()}` : `${stamp}\n\n${body}`;
}

async function main(): Promise<void> {
  const available = availableBenchmarks();
  const wanted = process.argv.slice(2).filter((a) => a !== '--');
  const unknown = wanted.filter((w) => !available.includes(w));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; available: ${available.join(', ') || '(none)'}\n`);
    process.exit(2);
  }
  const names = wanted.length > 0 ? wanted : available;
  let failed = 0;
  for (const name of names) {
    process.stderr.write(`bench ${name}: running…\n`);
    try {
      const body = await runOne(name);
      writeSection(name, body);
      process.stderr.write(`bench ${name}: written to ${BENCHMARKS_MD}\n`);
    } catch (err) {
      failed++;
      process.stderr.write(`bench ${name} FAILED (its section is unchanged): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
  }
  process.exit(failed > 0 ? 1 : 0);
}

// Only when run as the entry point (the helpers above are importable without side effects).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main();
