/** @aspen/rbd: RBD images (image/) and the NBD server (nbd/, io/nbd-server.ts). */
export * from './image/index.ts';
