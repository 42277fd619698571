export * from './assert.ts';
export * from './errors.ts';
export * from './ids.ts';
export * from './codec.ts';
export * from './checksum.ts';
export * from './crush/index.ts';
export * from './osdmap/placement.ts';
