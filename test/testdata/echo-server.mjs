// A tiny TCP line-echo daemon for the harness tests.
// usage: node echo-server.mjs --port N [--fork-child] [--fail]
// Prints "listening <port>" (and "child <pid>" with --fork-child). Answers each line with
// "<pid> <line>". Exits 0 on SIGTERM after closing its server. --fail exits 3 at once.
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1]);
if (args.includes('--fail')) {
  console.error('failing on purpose');
  process.exit(3);
}
if (args.includes('--fork-child')) {
  // A grandchild in the same process group, as a daemon's helper would be.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  console.log(`child ${child.pid}`);
}
const server = createServer((socket) => {
  let buf = '';
  socket.on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      socket.write(`${process.pid} ${buf.slice(0, nl)}\n`);
      buf = buf.slice(nl + 1);
    }
  });
  socket.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
process.on('SIGTERM', () => {
  console.log('SIGTERM: shutting down');
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 500).unref();
});
