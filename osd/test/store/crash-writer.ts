/**
 * Child process of the crash test (crash.test.ts): mounts the store at argv[2] and queues the
 * deterministic workload of seed argv[3] (crash-workload.ts) forever, with up to argv[4]
 * transactions in flight so they share group commits. Prints, synchronously (stdout is a pipe:
 * synchronous on Linux):
 *   `ready`            once mounted (journal replayed),
 *   `issued <i>`       before transaction i is queued,
 *   `ack <i>`          after its promise resolved (it is durable),
 *   `error <i> <msg>`  if one fails (the parent fails the test).
 * The parent kill -9s it at a random moment.
 */
import { SqliteObjectStore } from '../../src/io/store-object-store.ts';
import { crashTransaction } from './crash-workload.ts';

const path = process.argv[2];
const seed = Number(process.argv[3] ?? '1');
const inflightMax = Number(process.argv[4] ?? '8');
if (path === undefined) throw new Error('usage: crash-writer.ts STORE_DIR SEED [INFLIGHT]');

const store = new SqliteObjectStore({ path, deferredTrimRows: 64, reserveBytes: 1 << 20 });
await store.mount();
process.stdout.write('ready\n');

let next = 0;
let inflight = 0;
await new Promise<void>(() => {
  const pump = (): void => {
    while (inflight < inflightMax) {
      const i = next++;
      const tx = crashTransaction(seed, i);
      process.stdout.write(`issued ${i}\n`);
      inflight++;
      store.queueTransaction(tx).then(
        () => {
          inflight--;
          process.stdout.write(`ack ${i}\n`);
          pump();
        },
        (err: unknown) => {
          process.stdout.write(`error ${i} ${String(err).replace(/\n/g, ' ')}\n`);
          process.exit(3);
        },
      );
    }
  };
  pump();
});
