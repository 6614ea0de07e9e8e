import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { listenRefused } from '../lifecycle.js';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** A worker's own small HTTP server: /metrics for Prometheus, /healthz for liveness probes (503 once stopping, or unable to work: see DeliveryWorker.healthy). */
export async function startMetricsServer(port: number, registry: Registry, alive: () => boolean): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (req.method === 'GET' && path === '/healthz') {
      const ok = alive();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: 'not found' } }));
    }
  });
  server.listen(port);
  try {
    await once(server, 'listening');
  } catch (err) {
    throw listenRefused('WORKER_METRICS_PORT', port, err, 'give each worker process its own port, or 0 to turn its metrics off');
  }
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
