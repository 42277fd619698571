/**
 * A messenger echo server in its own process, for the two-process test (messenger.test.ts).
 * Prints `listening <port>` once bound; exits when its stdin closes (the parent died or is done)
 * or on SIGTERM. Message type 1 echoes meta and data; type 2 replies with the data's length only.
 */
import { MsgrServer } from '../../src/io/msgr-server.ts';

const fsid = process.argv[2] ?? 'test-fsid';
const server = new MsgrServer({
  fsid,
  entity: 'osd.0',
  handler: (_conn, msg) => {
    if (msg.type === 2) return { meta: Uint8Array.of(msg.data.length & 0xff, (msg.data.length >>> 8) & 0xff, (msg.data.length >>> 16) & 0xff, msg.data.length >>> 24) };
    return { meta: msg.meta, data: msg.data };
  },
});
const { port } = await server.listen(0, '127.0.0.1');
process.stdout.write(`listening ${port}\n`);
const stop = (): void => void server.close(1_000).then(() => process.exit(0));
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
