/**
 * Serves a prom-client registry on `/metrics` (Prometheus text format) for any daemon.
 */
import * as http from 'node:http';
import type { Registry } from 'prom-client';

/**
 * Listens on `host:port` (port 0: any free port) and answers `GET /metrics`.
 * @returns the server and the bound port.
 * @throws Error when the address cannot be bound.
 */
export function serveMetrics(registry: Registry, host: string, port: number): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}
