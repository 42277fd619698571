/**
 * `aspen-rados`: object access from the shell, like Ceph's `rados`:
 *
 *   aspen-rados -p POOL put OBJ FILE|-        aspen-rados -p POOL get OBJ FILE|-
 *   aspen-rados -p POOL rm OBJ…               aspen-rados -p POOL ls
 *   aspen-rados -p POOL stat OBJ
 *   aspen-rados -p POOL listxattr|getxattr|setxattr|rmxattr OBJ [NAME [VALUE]]
 *   aspen-rados -p POOL listomapkeys|listomapvals OBJ
 *   aspen-rados -p POOL getomapval OBJ KEY [FILE]   aspen-rados -p POOL setomapval OBJ KEY VALUE
 *   aspen-rados -p POOL bench SECONDS write|seq [-t CONCURRENCY] [-b BYTES] [--no-cleanup]
 *
 * Monitors come from `-m`, `$ASPEN_MON_HOST` or aspen.conf. Exit status: 0, or the errno of
 * the error (ENOENT 2, …), as `rados` does.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { AspenError, type ErrorCode } from '../errors.ts';
import { resolveMonAddrs } from '../io/config.ts';
import { RadosClient, type IoCtx } from '../io/rados.ts';

const ERRNO: Partial<Record<ErrorCode, number>> = { EPERM: 1, ENOENT: 2, EIO: 5, EEXIST: 17, EINVAL: 22, ENOSPC: 28, ECANCELED: 125, ETIMEDOUT: 110, EAGAIN_NO_QUORUM: 11 };

interface GlobalOpts { mon?: string; conf?: string; pool?: string }

const program = new Command('aspen-rados')
  .description('object access from the shell (like rados)')
  .option('-m, --mon <addrs>', 'monitor addresses HOST:PORT[,…]')
  .option('-c, --conf <file>', 'aspen.conf to read mon_host from')
  .option('-p, --pool <pool>', 'pool')
  .showHelpAfterError();

async function withPool(fn: (io: IoCtx, client: RadosClient) => Promise<void>): Promise<void> {
  const g = program.opts<GlobalOpts>();
  if (!g.pool) throw new AspenError('EINVAL', 'a pool is required: -p POOL');
  const client = await RadosClient.connect({ monAddrs: resolveMonAddrs(g.mon, g.conf) });
  try {
    await fn(client.ioctx(g.pool), client);
  } finally {
    await client.close();
  }
}

const out = (s: string): void => { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); };
const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s);
const textOf = (b: Uint8Array): string => new TextDecoder().decode(b);

program.command('put').argument('<obj>').argument('<file>', 'a file, or - for stdin').description('write an object from a file (write_full)')
  .action((obj: string, file: string) => withPool(async (io) => io.writeFull(obj, readFileSync(file === '-' ? 0 : file))));
program.command('get').argument('<obj>').argument('<file>', 'a file, or - for stdout').description('read an object into a file')
  .action((obj: string, file: string) => withPool(async (io) => {
    const data = await io.read(obj);
    if (file === '-') process.stdout.write(data);
    else writeFileSync(file, data);
  }));
program.command('rm').argument('<objs...>').description('remove objects').action((objs: string[]) => withPool(async (io) => { for (const o of objs) await io.remove(o); }));
program.command('ls').description('list the objects of the pool').action(() => withPool(async (io) => { for (const o of (await io.listObjects()).sort()) out(o); }));
program.command('stat').argument('<obj>').description('size and mtime').action((obj: string) => withPool(async (io) => {
  const st = await io.stat(obj);
  out(`${program.opts<GlobalOpts>().pool}/${obj} mtime ${new Date(st.mtimeMs).toISOString()}, size ${st.sizeBytes}`);
}));
program.command('listxattr').argument('<obj>').action((obj: string) => withPool(async (io) => { for (const k of (await io.getxattrs(obj)).keys()) out(k); }));
program.command('getxattr').argument('<obj>').argument('<name>').action((obj: string, name: string) => withPool(async (io) => out(textOf(await io.getxattr(obj, name)))));
program.command('setxattr').argument('<obj>').argument('<name>').argument('<value>').action((obj: string, name: string, value: string) => withPool(async (io) => io.setxattr(obj, name, bytesOf(value))));
program.command('rmxattr').argument('<obj>').argument('<name>').action((obj: string, name: string) => withPool(async (io) => {
  await io.operate(obj, [{ op: 'rmxattr', name }]).then((r) => { if (r.code !== 0) throw new AspenError(r.code as ErrorCode, r.message); });
}));
async function allOmap(io: IoCtx, obj: string): Promise<[string, Uint8Array][]> {
  const all: [string, Uint8Array][] = [];
  let after = '';
  for (;;) {
    const page = await io.omapGetVals(obj, after, 1000);
    all.push(...page.entries);
    if (!page.more || page.entries.length === 0) return all;
    after = page.entries.at(-1)![0];
  }
}
program.command('listomapkeys').argument('<obj>').action((obj: string) => withPool(async (io) => { for (const [k] of await allOmap(io, obj)) out(k); }));
program.command('listomapvals').argument('<obj>').action((obj: string) => withPool(async (io) => { for (const [k, v] of await allOmap(io, obj)) out(`${k}\n  ${textOf(v)}`); }));
program.command('getomapval').argument('<obj>').argument('<key>').argument('[file]').action((obj: string, key: string, file?: string) => withPool(async (io) => {
  const r = await io.operate(obj, [{ op: 'omap_get_vals_by_keys', keys: [key] }]);
  const res = r.results[0];
  const v = res?.kind === 'omap' ? res.entries.find(([k]) => k === key)?.[1] : undefined;
  if (r.code !== 0 || v === undefined) throw new AspenError('ENOENT', `no omap key ${key} on ${obj}`);
  if (file) writeFileSync(file, v);
  else out(textOf(v));
}));
program.command('setomapval').argument('<obj>').argument('<key>').argument('<value>').action((obj: string, key: string, value: string) => withPool(async (io) => io.omapSet(obj, new Map([[key, bytesOf(value)]]))));

program.command('bench').argument('<seconds>').argument('<mode>', 'write | seq').option('-t, --concurrent-ios <n>', 'ops in flight', '16').option('-b, --block-size <bytes>', 'object size', String(4 << 20))
  .option('--no-cleanup', 'keep the benchmark objects (needed before `seq`)')
  .description('write or sequentially read objects for SECONDS, printing per-second progress (like rados bench)')
  .action((secondsArg: string, mode: string, o: { concurrentIos: string; blockSize: string; cleanup: boolean }) => withPool(async (io) => {
    const seconds = Number(secondsArg);
    const conc = Number(o.concurrentIos);
    const size = Number(o.blockSize);
    if (!(seconds > 0) || !(conc > 0) || !(size > 0) || (mode !== 'write' && mode !== 'seq')) throw new AspenError('EINVAL', 'usage: bench SECONDS write|seq [-t N] [-b BYTES]');
    const prefix = 'benchmark_data_obj_';
    const payload = randomBytes(size);
    const lat: number[] = [];
    let ops = 0;
    let next = 0;
    // Listing is not part of the timed window (rados bench reads its metadata object first too).
    const objects = mode === 'seq' ? (await io.listObjects()).filter((n) => n.startsWith(prefix)).sort() : [];
    if (mode === 'seq' && objects.length === 0) throw new AspenError('ENOENT', 'no benchmark objects: run `bench N write --no-cleanup` first');
    // Printed as the timed window starts (as rados bench does): benchmarks measure from this line.
    out(`Maintaining ${conc} concurrent ${mode === 'write' ? 'writes' : 'reads'} of ${size} bytes for up to ${seconds} seconds${mode === 'seq' ? ` over ${objects.length} objects` : ''}`);
    const start = Date.now();
    const end = start + seconds * 1000;
    let lastOps = 0;
    const ticker = setInterval(() => {
      const s = Math.round((Date.now() - start) / 1000);
      out(`${String(s).padStart(4)} s: ${ops} ops, ${((ops - lastOps) * size / (1 << 20)).toFixed(1)} MiB/s`);
      lastOps = ops;
    }, 1000);
    const worker = async (): Promise<void> => {
      while (Date.now() < end) {
        const i = next++;
        const t0 = performance.now();
        if (mode === 'write') await io.writeFull(`${prefix}${i}`, payload);
        else await io.read(objects[i % objects.length]!);
        lat.push(performance.now() - t0);
        ops++;
      }
    };
    try {
      await Promise.all(Array.from({ length: conc }, worker));
    } finally {
      clearInterval(ticker);
    }
    const elapsed = (Date.now() - start) / 1000;
    lat.sort((a, b) => a - b);
    out(`Total time run: ${elapsed.toFixed(2)} s\nTotal ops: ${ops}\nBandwidth (MiB/s): ${(ops * size / (1 << 20) / elapsed).toFixed(2)}\nAverage IOPS: ${Math.round(ops / elapsed)}\nAverage latency (ms): ${(lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)).toFixed(2)}\np99 latency (ms): ${(lat[Math.floor(lat.length * 0.99)] ?? 0).toFixed(2)}`);
    if (mode === 'write' && o.cleanup) for (let i = 0; i < next; i++) await io.remove(`${prefix}${i}`).catch(() => undefined);
  }));

program.parseAsync().catch((err: unknown) => {
  if (err instanceof AspenError) {
    process.stderr.write(`error ${err.code}: ${err.message.replace(/^[A-Z_]+: /, '')}\n`);
    process.exit(ERRNO[err.code] ?? 1);
  }
  process.stderr.write(`aspen-rados: ${String(err)}\n`);
  process.exit(1);
});
