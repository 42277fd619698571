/** @aspen/test: shared helpers for process-level tests (see harness.ts). */
export * from './harness.ts';
export * from './mon-cluster.ts';
export * from './plain.ts';
export * from './prng.ts';
export * from './osd-cluster.ts';
