/** Bounded parallelism for per-object work (no timers: pure promise plumbing). */
import { assert } from '@aspen/shared';

/**
 * Runs `fn` on every item with at most `limit` calls in flight; resolves when all are done.
 * The first failure is thrown after the calls already in flight settle (no new ones start).
 * @throws whatever `fn` throws first.
 */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  assert(Number.isInteger(limit) && limit >= 1, `limit ${limit} must be a positive integer`);
  let next = 0;
  let failed: { err: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== null) throw (failed as { err: unknown }).err;
}
