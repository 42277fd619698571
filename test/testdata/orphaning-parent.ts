// Uses the harness, starts a daemon, prints its pid and exits WITHOUT teardown:
// the harness's process.on('exit') safety net must kill the daemon.
import { join } from 'node:path';
import { ProcessHarness, REPO_ROOT, freePort, tcpConnectable } from '../src/harness.ts';

const port = await freePort();
const h = new ProcessHarness({ keepDir: true });
const d = h.spawn({ name: 'echo', args: [join(REPO_ROOT, 'test', 'testdata', 'echo-server.mjs'), '--port', String(port)] });
await h.waitReady('echo', tcpConnectable(port));
console.log(`daemon ${d.pid} dir ${h.dir}`);
process.exit(0);
