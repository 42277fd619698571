/** CRUSH: Ceph's placement algorithm and map (see shared/ARCHITECTURE.md, "CRUSH and placement"). */
export * from './types.ts';
export * from './builder.ts';
export * from './codec.ts';
export * from './hash.ts';
export * from './ln.ts';
export * from './mapper.ts';
export * from './text.ts';
export * from './tester.ts';
