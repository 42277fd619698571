/**
 * `aspen-rbd`: block images from the shell, like Ceph's `rbd` (format 2 images):
 *
 *   aspen-rbd [-p POOL] create IMG --size 20G [--object-size 4M] [--data-pool POOL]
 *   aspen-rbd [-p POOL] ls [-l]          aspen-rbd info IMG[@SNAP]      aspen-rbd du [IMG]
 *   aspen-rbd resize IMG --size S [--allow-shrink]      aspen-rbd rm IMG
 *   aspen-rbd rename SRC DST
 *   aspen-rbd snap create|rm|rollback|protect|unprotect [POOL/]IMG@SNAP     aspen-rbd snap ls IMG
 *   aspen-rbd export IMG[@SNAP] FILE|-   aspen-rbd import FILE|- [IMG] [--object-size S] [--data-pool POOL]
 *   aspen-rbd bench IMG --io-type write|read [--io-size 4K] [--io-threads 16] [--io-total 1G] [--io-pattern seq|rand]
 *   aspen-rbd clone [POOL/]IMG@SNAP [POOL/]CHILD [--data-pool POOL]      aspen-rbd children IMG@SNAP      aspen-rbd flatten CHILD
 *   aspen-rbd export-diff [--from-snap S1] IMG[@S2] FILE|-      aspen-rbd import-diff FILE|- IMG
 *   aspen-rbd lock ls IMG                aspen-rbd lock break IMG [LOCKER]
 *   aspen-rbd nbd serve [--bind 127.0.0.1] [--port 10809] [--pool rbd]…   (exports POOL/IMG and POOL/IMG@SNAP)
 *   aspen-rbd nbd map|device map [POOL/]IMG[@SNAP]   aspen-rbd nbd unmap|device unmap /dev/nbdX   aspen-rbd device list
 *
 * Images are named `[POOL/]IMG[@SNAP]`; the pool defaults to `-p POOL`, then `rbd` (Ceph's
 * default). `-f json` prints JSON. Monitors come from `-m`, `$ASPEN_MON_HOST` or aspen.conf.
 * `--data-pool POOL` keeps the header in the image's pool and the data objects in POOL.
 * Exit status: 0, or the errno of the error (ENOENT 2, EBUSY 16, …), as `rbd` does.
 */
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { AspenError, type ErrorCode } from '@aspen/shared';
import { resolveMonAddrs } from '@aspen/shared/io/config.ts';
import { RadosClient } from '@aspen/shared/io/rados.ts';
import { breakImageLock, createImage, diskUsage, imageHeader, listImages, removeImage, renameImage, type DiskUsage } from '../image/admin.ts';
import { ioctxOfPoolId } from '../image/children.ts';
import { FEATURE_NAMES, type ImageHeader } from '../image/header.ts';
import { Image } from '../image/image.ts';
import { formatSize, objectCount, parseImageSpec, parseSize } from '../image/layout.ts';
import { Progress, benchImage, exportDiffTo, exportImage, importDiffFrom, importImage } from './transfer.ts';
import { cloneImage, describeParent, flattenImage, imageChildren } from '../image/clone.ts';
import { NBD_DEFAULT_PORT, startNbdServer } from '../io/nbd-server.ts';
import { ImageExportResolver } from '../image/nbd-export.ts';
import { kernelNbdDevices, kernelNbdMissingReason, mapKernelNbd, unmapKernelNbd } from '../io/nbd-kernel.ts';
import { pino } from 'pino';

const ERRNO: Partial<Record<ErrorCode, number>> = {
  EPERM: 1, ENOENT: 2, EIO: 5, EAGAIN: 11, EBUSY: 16, EEXIST: 17, EINVAL: 22, ENOSPC: 28, ENOTEMPTY: 39, ETIMEDOUT: 110, ECANCELED: 125, EAGAIN_NO_QUORUM: 11,
};

interface GlobalOpts { mon?: string; conf?: string; pool?: string; format: string; progress: boolean }

const program = new Command('aspen-rbd')
  .description('block images (like rbd)')
  .option('-m, --mon <addrs>', 'monitor addresses HOST:PORT[,…]')
  .option('-c, --conf <file>', 'aspen.conf to read mon_host from')
  .option('-p, --pool <pool>', 'pool (default rbd)')
  .option('-f, --format <format>', 'output format: plain or json', 'plain')
  .option('--no-progress', 'do not print progress')
  .showHelpAfterError();

const g = (): GlobalOpts => program.opts<GlobalOpts>();
const out = (s: string): void => { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); };
const json = (): boolean => g().format === 'json';
const newId = (): string => randomBytes(6).toString('hex');

/** A spec resolved against `-p` (then `rbd`). */
function spec(s: string, snap: 'none' | 'optional' | 'required' = 'none'): { pool: string; image: string; snap: string | undefined } {
  const p = parseImageSpec(s);
  if (snap === 'none' && p.snap !== undefined) throw new AspenError('EINVAL', `'${s}': a snapshot is not allowed here`);
  if (snap === 'required' && p.snap === undefined) throw new AspenError('EINVAL', `'${s}': a snapshot name is required (IMG@SNAP)`);
  return { pool: p.pool ?? g().pool ?? 'rbd', image: p.image, snap: p.snap };
}

async function withClient<T>(fn: (client: RadosClient) => Promise<T>): Promise<T> {
  const client = await RadosClient.connect({ monAddrs: resolveMonAddrs(g().mon, g().conf) });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

function infoObject(name: string, h: ImageHeader, dataPool: string | null, snapSize?: number): Record<string, unknown> {
  const size = snapSize ?? h.sizeBytes;
  return {
    ...(dataPool === null ? {} : { data_pool: dataPool }),
    name, id: h.id, size, objects: objectCount(size, 2 ** h.order), order: h.order, object_size: 2 ** h.order, snapshot_count: h.snaps.length,
    block_name_prefix: h.objectPrefix, format: 2, features: FEATURE_NAMES.filter(([bit]) => (h.features & bit) !== 0n).map(([, n]) => n),
    ...(h.createTimestampMs > 0 ? { create_timestamp: new Date(h.createTimestampMs).toUTCString() } : {}),
    ...(h.lock === null ? {} : { lock_owner: h.lock.owner }),
  };
}

const DATA_POOL_HELP = 'keep the data objects in this pool (the header stays in the image\'s pool)';
const dataPoolOpt = (dataPool: string | undefined): { dataPool?: string } => (dataPool === undefined ? {} : { dataPool });

program.command('create').argument('<image>').requiredOption('-s, --size <size>', 'size (M by default; K/M/G/T suffixes)').option('--object-size <size>', 'object size (bytes; K/M suffixes)', '4M')
  .option('--data-pool <pool>', DATA_POOL_HELP)
  .description('create an empty (thin) image')
  .action((image: string, o: { size: string; objectSize: string; dataPool?: string }) => withClient(async (client) => {
    const s = spec(image);
    await createImage(client, s.pool, s.image, { sizeBytes: parseSize(o.size, 'M'), objectSizeBytes: parseSize(o.objectSize), id: newId(), createTimestampMs: Date.now(), ...dataPoolOpt(o.dataPool) });
  }));

program.command('ls').alias('list').argument('[pool]').option('-l, --long', 'sizes and locks too').description('list the images of a pool')
  .action((poolArg: string | undefined, o: { long?: boolean }) => withClient(async (client) => {
    const pool = poolArg ?? g().pool ?? 'rbd';
    const images = await listImages(client, pool);
    if (!o.long) {
      if (json()) out(JSON.stringify(images.map((i) => i.name)));
      else for (const i of images) out(i.name);
      return;
    }
    const rows = [];
    for (const i of images) {
      const h = await imageHeader(client, pool, i.name);
      rows.push({ image: i.name, id: i.id, size: h.sizeBytes, format: 2, lock_type: h.lock === null ? undefined : 'exclusive' });
      for (const sn of [...h.snaps].reverse()) rows.push({ image: i.name, snapshot: sn.name, id: i.id, size: sn.sizeBytes, format: 2, protected: sn.protected });
    }
    if (json()) return out(JSON.stringify(rows));
    out(`${'NAME'.padEnd(24)} ${'SIZE'.padStart(10)}  FMT  PROT  LOCK`);
    for (const r of rows) out(`${('snapshot' in r ? `${r.image}@${r.snapshot}` : r.image).padEnd(24)} ${formatSize(r.size).padStart(10)}  ${r.format}    ${'protected' in r && r.protected ? 'yes ' : '    '}  ${'lock_type' in r && r.lock_type ? 'excl' : ''}`);
  }));

program.command('info').argument('<image>', '[POOL/]IMG[@SNAP]').description('show an image\'s header')
  .action((image: string) => withClient(async (client) => {
    const s = spec(image, 'optional');
    const h = await imageHeader(client, s.pool, s.image);
    const snap = s.snap === undefined ? undefined : h.snaps.find((x) => x.name === s.snap);
    if (s.snap !== undefined && snap === undefined) throw new AspenError('ENOENT', `image '${s.image}' has no snapshot '${s.snap}'`);
    const dataPool = h.dataPoolId === null ? null : ioctxOfPoolId(client, h.dataPoolId).poolName;
    const info = infoObject(s.image, h, dataPool, snap?.sizeBytes);
    if (snap !== undefined) Object.assign(info, { snapshot: snap.name, snap_id: Number(snap.id), protected: snap.protected });
    // The overlap of the head, or of the snapshot asked about (a flattened clone keeps its parent for its snapshots only).
    const overlapBytes = h.parent === null ? 0 : (snap?.parentOverlapBytes ?? h.parent.overlapBytes);
    const parent = h.parent === null || overlapBytes === 0 ? null : await describeParent(client, { ...h.parent, overlapBytes });
    if (parent !== null) Object.assign(info, { parent: { pool: parent.pool, image: parent.image, snapshot: parent.snapshot, overlap: parent.overlapBytes } });
    if (json()) return out(JSON.stringify(info));
    out(`rbd image '${s.image}':\n\tsize ${formatSize(info['size'] as number)} in ${info['objects'] as number} objects\n\torder ${h.order} (${formatSize(2 ** h.order)} objects)\n\tsnapshot_count: ${h.snaps.length}\n\tid: ${h.id}${dataPool !== null ? `\n\tdata_pool: ${dataPool}` : ''}\n\tblock_name_prefix: ${h.objectPrefix}\n\tformat: 2\n\tfeatures: ${(info['features'] as string[]).join(', ')}${h.createTimestampMs > 0 ? `\n\tcreate_timestamp: ${String(info['create_timestamp'])}` : ''}${snap !== undefined ? `\n\tprotected: ${snap.protected ? 'True' : 'False'}` : ''}${h.lock !== null ? `\n\tlocked by: ${h.lock.owner}` : ''}${parent !== null ? `\n\tparent: ${parent.pool}/${parent.image}@${parent.snapshot}\n\toverlap: ${formatSize(parent.overlapBytes)}` : ''}`);
  }));

program.command('du').alias('disk-usage').argument('[image]').description('provisioned and used space')
  .action((image: string | undefined) => withClient(async (client) => {
    const pool = image === undefined ? g().pool ?? 'rbd' : spec(image).pool;
    const names = image === undefined ? (await listImages(client, pool)).map((i) => i.name) : [spec(image).image];
    const rows: DiskUsage[] = [];
    for (const n of names) rows.push(await diskUsage(client, pool, n));
    if (json()) return out(JSON.stringify({ images: rows.map((r) => ({ name: r.name, provisioned_size: r.provisionedBytes, used_size: r.usedBytes })), total_provisioned_size: rows.reduce((a, r) => a + r.provisionedBytes, 0), total_used_size: rows.reduce((a, r) => a + r.usedBytes, 0) }));
    out(`${'NAME'.padEnd(24)} ${'PROVISIONED'.padStart(12)} ${'USED'.padStart(12)}`);
    for (const r of rows) out(`${r.name.padEnd(24)} ${formatSize(r.provisionedBytes).padStart(12)} ${formatSize(r.usedBytes).padStart(12)}`);
    if (rows.length > 1) out(`${'<TOTAL>'.padEnd(24)} ${formatSize(rows.reduce((a, r) => a + r.provisionedBytes, 0)).padStart(12)} ${formatSize(rows.reduce((a, r) => a + r.usedBytes, 0)).padStart(12)}`);
  }));

program.command('resize').argument('<image>').requiredOption('-s, --size <size>', 'new size (M by default)').option('--allow-shrink', 'permit shrinking (discards data past the new end)')
  .description('grow or shrink an image; open handles (NBD exports) see it at once')
  .action((image: string, o: { size: string; allowShrink?: boolean }) => withClient(async (client) => {
    const s = spec(image);
    const img = await Image.open(client, s.pool, s.image, { exclusive: false });
    try {
      await img.resize(parseSize(o.size, 'M'), { allowShrink: o.allowShrink === true });
      if (g().progress) process.stderr.write('Resizing image: 100% complete...done.\n');
    } finally {
      await img.close();
    }
  }));

program.command('rm').alias('remove').argument('<image>').description('remove an image (refused with snapshots or watchers)')
  .action((image: string) => withClient(async (client) => {
    const s = spec(image);
    const p = new Progress('Removing image', g().progress);
    await removeImage(client, s.pool, s.image, (d, t) => p.update(d, t));
    p.done();
  }));

program.command('rename').alias('mv').argument('<src>').argument('<dst>').description('rename an image within its pool')
  .action((src: string, dst: string) => withClient(async (client) => {
    const a = spec(src);
    const b = spec(dst);
    if (a.pool !== b.pool) throw new AspenError('EINVAL', 'rename cannot move an image between pools');
    await renameImage(client, a.pool, a.image, b.image);
  }));

const snap = program.command('snap').description('snapshots');
/** Runs `fn` on the image named by `s` opened without the lock (header changes only). */
const onImage = (specText: string, need: 'none' | 'required', fn: (img: Image, snapName: string) => Promise<void>, exclusive = false, breakLock = false): Promise<void> => withClient(async (client) => {
  const s = spec(specText, need);
  const img = await Image.open(client, s.pool, s.image, { exclusive, breakLock });
  try {
    await fn(img, s.snap ?? '');
  } finally {
    await img.close();
  }
});
snap.command('create').alias('add').argument('<snap-spec>', '[POOL/]IMG@SNAP').description('take a snapshot')
  .action((sp: string) => onImage(sp, 'required', async (img, name) => { await img.snapCreate(name, Date.now()); }));
snap.command('ls').alias('list').argument('<image>').description('list snapshots')
  .action((sp: string) => onImage(sp, 'none', async (img) => {
    const snaps = [...img.snapList()].reverse();
    if (json()) return out(JSON.stringify(snaps.map((x) => ({ id: Number(x.id), name: x.name, size: x.sizeBytes, protected: String(x.protected), timestamp: x.timestampMs > 0 ? new Date(x.timestampMs).toUTCString() : '' }))));
    if (snaps.length === 0) return;
    out(`${'SNAPID'.padStart(6)}  ${'NAME'.padEnd(20)} ${'SIZE'.padStart(10)}  PROTECTED  TIMESTAMP`);
    for (const x of snaps) out(`${String(x.id).padStart(6)}  ${x.name.padEnd(20)} ${formatSize(x.sizeBytes).padStart(10)}  ${(x.protected ? 'yes' : '').padEnd(9)}  ${x.timestampMs > 0 ? new Date(x.timestampMs).toUTCString() : ''}`);
  }));
snap.command('rm').alias('remove').argument('<snap-spec>').description('remove a snapshot (refused while protected)')
  .action((sp: string) => onImage(sp, 'required', async (img, name) => {
    await img.snapRemove(name);
    if (g().progress) process.stderr.write('Removing snap: 100% complete...done.\n');
  }));
snap.command('protect').argument('<snap-spec>').description('protect a snapshot from removal')
  .action((sp: string) => onImage(sp, 'required', (img, name) => img.snapSetProtected(name, true)));
snap.command('unprotect').argument('<snap-spec>').description('allow a snapshot to be removed')
  .action((sp: string) => onImage(sp, 'required', (img, name) => img.snapSetProtected(name, false)));
snap.command('rollback').alias('revert').argument('<snap-spec>').option('--break-lock', 'break another client\'s exclusive lock first')
  .description('roll the image back to a snapshot (needs the exclusive lock)')
  .action((sp: string, o: { breakLock?: boolean }) => onImage(sp, 'required', async (img, name) => {
    const p = new Progress('Rolling back to snapshot', g().progress);
    await img.snapRollback(name, (d, t) => p.update(d, t));
    p.done();
  }, true, o.breakLock === true));

program.command('export').argument('<image>', '[POOL/]IMG[@SNAP]').argument('<file>', 'a file, or - for stdout').description('write an image to a file (sparse) or stdout')
  .action((image: string, file: string) => withClient(async (client) => {
    const s = spec(image, 'optional');
    await exportImage(client, s.pool, s.image, s.snap, file, new Progress('Exporting image', g().progress));
  }));

program.command('import').argument('<file>', 'a file, or - for stdin').argument('[image]', 'destination (default: the file name)').option('--object-size <size>', 'object size (bytes; K/M suffixes)')
  .option('--data-pool <pool>', DATA_POOL_HELP)
  .description('create an image from a file, writing only non-zero blocks')
  .action((file: string, image: string | undefined, o: { objectSize?: string; dataPool?: string }) => withClient(async (client) => {
    const dest = image ?? (file === '-' ? undefined : file.split('/').at(-1));
    if (dest === undefined) throw new AspenError('EINVAL', 'importing from stdin needs a destination image name');
    const s = spec(dest);
    await importImage(client, s.pool, file, s.image, { id: newId(), nowMs: Date.now(), ...(o.objectSize === undefined ? {} : { objectSizeBytes: parseSize(o.objectSize) }), ...dataPoolOpt(o.dataPool) }, new Progress('Importing image', g().progress));
  }));

program.command('bench').argument('<image>').requiredOption('--io-type <type>', 'write or read').option('--io-size <size>', 'bytes per op', '4K').option('--io-threads <n>', 'ops in flight', '16')
  .option('--io-total <size>', 'bytes in all', '1G').option('--io-pattern <pattern>', 'seq or rand', 'seq').option('--break-lock', 'break another client\'s exclusive lock first')
  .description('I/O benchmark on an image (like rbd bench)')
  .action((image: string, o: { ioType: string; ioSize: string; ioThreads: string; ioTotal: string; ioPattern: string; breakLock?: boolean }) => withClient(async (client) => {
    if (o.ioType !== 'write' && o.ioType !== 'read') throw new AspenError('EINVAL', '--io-type must be write or read');
    if (o.ioPattern !== 'seq' && o.ioPattern !== 'rand') throw new AspenError('EINVAL', '--io-pattern must be seq or rand');
    const s = spec(image);
    const r = await benchImage(client, s.pool, s.image, {
      ioType: o.ioType, ioSizeBytes: parseSize(o.ioSize), ioThreads: Number(o.ioThreads), ioTotalBytes: parseSize(o.ioTotal), pattern: o.ioPattern, breakLock: o.breakLock === true,
    }, json() ? () => undefined : out);
    if (json()) out(JSON.stringify({ elapsed_sec: r.elapsedSec, ops: r.ops, ops_per_sec: r.opsPerSec, bytes_per_sec: r.bytesPerSec }));
  }));

program.command('clone').argument('<parent>', '[POOL/]IMG@SNAP (a protected snapshot)').argument('<child>', '[POOL/]CHILD').option('--data-pool <pool>', DATA_POOL_HELP)
  .description('clone a protected snapshot (reads fall through to it until written)')
  .action((parentSpec: string, childSpec: string, o: { dataPool?: string }) => withClient(async (client) => {
    const p = spec(parentSpec, 'required');
    const c = spec(childSpec);
    await cloneImage(client, { parentPool: p.pool, parentImage: p.image, parentSnap: p.snap!, childPool: c.pool, childImage: c.image, childId: newId(), createTimestampMs: Date.now(), ...dataPoolOpt(o.dataPool) });
  }));

program.command('children').argument('<snap-spec>', '[POOL/]IMG@SNAP').description('list the clones of a snapshot')
  .action((sp: string) => withClient(async (client) => {
    const s = spec(sp, 'required');
    const kids = await imageChildren(client, s.pool, s.image, s.snap!);
    if (json()) return out(JSON.stringify(kids.map((k) => ({ pool: k.pool, pool_namespace: '', image: k.image, id: k.id }))));
    for (const k of kids) out(`${k.pool}/${k.image}`);
  }));

program.command('flatten').argument('<image>', '[POOL/]CHILD').option('--break-lock', 'break another client\'s exclusive lock first')
  .description('copy the parent\'s data into a clone and detach it from the parent')
  .action((image: string, o: { breakLock?: boolean }) => withClient(async (client) => {
    const s = spec(image);
    const p = new Progress('Image flatten', g().progress);
    await flattenImage(client, s.pool, s.image, { breakLock: o.breakLock === true, onProgress: (d, t) => p.update(d, t) });
    p.done();
  }));

program.command('export-diff').argument('<image>', '[POOL/]IMG[@SNAP]').argument('<file>', 'a file, or - for stdout').option('--from-snap <snap>', 'only changes since this snapshot')
  .description('write the changes between two snapshots (or a snapshot and the head) in rbd diff v1 format')
  .action((image: string, file: string, o: { fromSnap?: string }) => withClient(async (client) => {
    const s = spec(image, 'optional');
    await exportDiffTo(client, s.pool, s.image, { ...(o.fromSnap === undefined ? {} : { fromSnap: o.fromSnap }), ...(s.snap === undefined ? {} : { toSnap: s.snap }) }, file, new Progress('Exporting image', g().progress));
  }));

program.command('import-diff').argument('<file>', 'a file, or - for stdin').argument('<image>', '[POOL/]IMG').option('--break-lock', 'break another client\'s exclusive lock first')
  .description('apply an rbd diff v1 stream to an image (creating its end snapshot)')
  .action((file: string, image: string, o: { breakLock?: boolean }) => withClient(async (client) => {
    const s = spec(image);
    await importDiffFrom(client, s.pool, s.image, file, { nowMs: Date.now(), breakLock: o.breakLock === true });
    if (g().progress) process.stderr.write('Importing image diff: 100% complete...done.\n');
  }));

const nbd = program.command('nbd').description('serve images over NBD (like rbd-nbd)');
nbd.command('serve').option('--bind <host>', 'address to listen on', '127.0.0.1').option('--port <port>', 'TCP port (0: any free port)', String(NBD_DEFAULT_PORT))
  .option('--pool <pool...>', 'pools whose images NBD_OPT_LIST shows (default: -p, then rbd)').option('--break-lock', 'break another client\'s exclusive lock when an export opens')
  .description('export every image as nbd://HOST:PORT/POOL/IMAGE (and POOL/IMAGE@SNAP read-only) until SIGTERM')
  .action(async (o: { bind: string; port: string; pool?: string[]; breakLock?: boolean }) => {
    const port = Number(o.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new AspenError('EINVAL', `bad port '${o.port}'`);
    const log = pino({ base: { daemon: 'rbd-nbd' } });
    const client = await RadosClient.connect({ monAddrs: resolveMonAddrs(g().mon, g().conf) });
    const resolver = new ImageExportResolver({ client, pools: o.pool ?? [g().pool ?? 'rbd'], breakLock: o.breakLock === true });
    const server = await startNbdServer({ resolver, host: o.bind, port, log });
    log.info({ host: server.host, port: server.port }, `serving nbd://${server.host}:${server.port}/POOL/IMAGE`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        log.info({ signal }, 'stopping: finishing in-flight requests');
        // In-flight requests finish, every open image is closed (its lock released), then exit
        // (a lingering client timer must not keep a stopped server alive).
        void server.close().then(() => resolver.close()).then(() => client.close()).finally(() => {
          log.info('stopped');
          resolve();
          process.exit(0);
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  });

/** `map`: serve the image on a private port and attach /dev/nbdX to it with nbd-client, in the foreground (as rbd-nbd map). */
async function mapAction(image: string, o: { device?: string }): Promise<void> {
  const missing = kernelNbdMissingReason();
  if (missing !== null) throw new AspenError('E_UNSUPPORTED', `cannot map ${image}: ${missing}; use 'aspen-rbd nbd serve' and a userspace client (qemu -drive file=nbd://HOST:${NBD_DEFAULT_PORT}/POOL/IMAGE, nbdfuse, nbdcopy)`);
  const s = spec(image, 'optional');
  const name = `${s.pool}/${s.image}${s.snap === undefined ? '' : `@${s.snap}`}`;
  const client = await RadosClient.connect({ monAddrs: resolveMonAddrs(g().mon, g().conf) });
  const resolver = new ImageExportResolver({ client, pools: [s.pool] });
  const server = await startNbdServer({ resolver, host: '127.0.0.1', port: 0, log: pino({ base: { daemon: 'rbd-nbd' } }) });
  try {
    const dev = await mapKernelNbd(name, server.port, o.device);
    out(dev);
    await new Promise<void>((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
    await unmapKernelNbd(dev).catch(() => undefined);
  } finally {
    await server.close();
    await resolver.close();
    await client.close();
  }
}
const unmapAction = async (device: string): Promise<void> => {
  const missing = kernelNbdMissingReason();
  if (missing !== null) throw new AspenError('E_UNSUPPORTED', `cannot unmap ${device}: ${missing}`);
  await unmapKernelNbd(device);
};
const listAction = (): void => {
  const devs = kernelNbdDevices();
  if (json()) return out(JSON.stringify(devs));
  if (devs.length === 0) return;
  out(`${'id'.padEnd(4)}${'pid'.padEnd(9)}device`);
  devs.forEach((d, i) => out(`${String(i).padEnd(4)}${String(d.pid).padEnd(9)}${d.device}`));
};
nbd.command('map').argument('<image>', '[POOL/]IMG[@SNAP]').option('--device <dev>', '/dev/nbdX to use (default: the first free one)').description('attach an image as /dev/nbdX (needs the kernel nbd module and nbd-client)').action(mapAction);
nbd.command('unmap').argument('<device>').description('detach /dev/nbdX').action(unmapAction);
nbd.command('list').alias('ls').description('attached /dev/nbdX devices').action(listAction);
const device = program.command('device').description('kernel block devices (as rbd device)');
device.command('map').argument('<image>', '[POOL/]IMG[@SNAP]').option('--device <dev>', '/dev/nbdX to use').description('same as nbd map').action(mapAction);
device.command('unmap').argument('<device>').description('same as nbd unmap').action(unmapAction);
device.command('list').alias('ls').description('attached devices').action(listAction);

const lock = program.command('lock').description('the exclusive lock');
lock.command('ls').alias('list').argument('<image>').description('show the lock holder')
  .action((image: string) => withClient(async (client) => {
    const s = spec(image);
    const h = await imageHeader(client, s.pool, s.image);
    if (json()) return out(JSON.stringify(h.lock === null ? [] : [{ locker: h.lock.owner, id: h.lock.cookie }]));
    if (h.lock === null) return;
    out(`There is 1 exclusive lock on this image.\n${'Locker'.padEnd(28)} ID`);
    out(`${h.lock.owner.padEnd(28)} ${h.lock.cookie}`);
  }));
lock.command('break').argument('<image>').argument('[locker]', 'only if this client still holds it').description('break the exclusive lock (only if its holder is dead)')
  .action((image: string, locker: string | undefined) => withClient(async (client) => {
    const s = spec(image);
    let expected;
    if (locker !== undefined) {
      const h = await imageHeader(client, s.pool, s.image);
      if (h.lock === null || h.lock.owner !== locker) throw new AspenError('ENOENT', `image '${s.image}' is not locked by ${locker}`);
      expected = h.lock;
    }
    const broken = await breakImageLock(client, s.pool, s.image, expected);
    if (broken === null) throw new AspenError('ENOENT', `image '${s.image}' is not locked`);
  }));

program.parseAsync().then(() => process.exit(0), (err: unknown) => {
  if (err instanceof AspenError) {
    process.stderr.write(`aspen-rbd: error ${err.code}: ${err.message.replace(/^[A-Z_]+: /, '')}\n`);
    process.exit(ERRNO[err.code] ?? 1);
  }
  process.stderr.write(`aspen-rbd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
