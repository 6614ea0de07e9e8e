import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { inject } from 'vitest';

/** One request as the sink received it. */
export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
  receivedAt: number;
  /** The sink address the client connected to (which of several local addresses). */
  localAddress: string;
  /** The TLS server name (SNI) the client sent, or null. */
  servername: string | null;
}

/** Answers one request; the request body has been read already and is in `recorded`. Any return value (or promise) is ignored. */
export type SinkHandler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => unknown;

export interface Sink {
  /** https://<host>:<port>, no trailing slash. */
  url: string;
  host: string;
  port: number;
  requests: RecordedRequest[];
  /** TCP connections accepted since the start or the last reset. */
  readonly connections: number;
  /** Replaces the handler; the default answers 200 "ok". */
  respond(handler: SinkHandler): void;
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Forgets requests and connection counts and restores the default handler. */
  reset(): void;
  /** Stops listening and destroys open sockets, so hanging handlers cannot hold a test. */
  close(): Promise<void>;
}

export interface SinkOptions {
  /** 'untrusted': a self-signed certificate the test CA did not issue. Default 'server'. */
  cert?: 'server' | 'untrusted';
  /** Default 127.0.0.1. */
  host?: string;
  /** Default: any free port. */
  port?: number;
}

/** Directory of this run's test CA and certificates (made by global-setup.ts). */
export function tlsDir(): string {
  return inject('tlsDir');
}

/** PEM of the run's test CA: the `ca` of a WebhookClient. */
export function testCa(): string {
  return readFileSync(testCaFile(), 'utf8');
}

/** Path of the run's test CA, for WEBHOOK_CA_FILE. */
export function testCaFile(): string {
  return join(tlsDir(), 'ca.pem');
}

const defaultHandler: SinkHandler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
};

/** A local HTTPS endpoint that records what it receives and answers as told. */
export async function startSink(options: SinkOptions = {}): Promise<Sink> {
  const certName = options.cert ?? 'server';
  const host = options.host ?? '127.0.0.1';
  const server = createServer({
    cert: readFileSync(join(tlsDir(), `${certName}.pem`)),
    key: readFileSync(join(tlsDir(), `${certName}.key`)),
  });
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();
  let handler = defaultHandler;
  let connections = 0;

  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // A client that gives up mid-handshake is expected in these tests, not a failure.
  server.on('tlsClientError', () => {});

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => {});
    req.on('end', () => {
      const socket = req.socket as TLSSocket;
      const servername = (socket as TLSSocket & { servername?: string | false }).servername;
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: flattenHeaders(req),
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
        localAddress: socket.localAddress ?? '',
        servername: typeof servername === 'string' ? servername : null,
      };
      requests.push(recorded);
      for (const wake of waiters) wake();
      Promise.resolve()
        .then(() => handler(req, res, recorded))
        .catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(500).end(`sink handler failed: ${String(err)}`);
          else res.destroy();
        });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `https://${urlHost}:${port}`,
    host,
    port,
    requests,
    get connections() {
      return connections;
    },
    respond(next) {
      handler = next;
    },
    waitForRequests(n, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (requests.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(requests.slice(0, n));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sink received ${requests.length} of ${n} requests within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    reset() {
      requests.length = 0;
      connections = 0;
      handler = defaultHandler;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}
