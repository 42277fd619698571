/** RBD images: layout, header records, the Image handle and pool-level operations. */
export * from './layout.ts';
export * from './header.ts';
export * from './meta.ts';
export * from './image.ts';
export * from './admin.ts';
export * from './children.ts';
export * from './clone.ts';
export * from './diff-format.ts';
export * from './diff.ts';
export * from './sparse.ts';
export * from './parallel.ts';
