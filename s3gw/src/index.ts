/** @aspen/s3gw: the S3 gateway (api/, auth/, core/, store/, io/server.ts). */
export { S3Store } from './store/store.ts';
export { startGateway } from './io/server.ts';
