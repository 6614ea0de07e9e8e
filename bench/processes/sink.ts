import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { now } from '../support/clock.js';
import { announceReady, answerRequests, exitWithParent } from '../support/ipc.js';

/**
 * The benchmark's webhook endpoint, in a process of its own so that answering
 * thousands of requests a second does not compete with the bench's own timing.
 * A bare node:https server with keep-alive: it reads the body, answers 200 "ok",
 * and counts arrivals per group — the first path segment (`/tp-3/i17` → `tp-3`).
 *
 * - groups starting with `hang` are never answered (an endpoint that hangs);
 * - groups starting with `lat` also remember when each body's `"marker"` arrived.
 */
const tlsDir = process.env.BENCH_TLS_DIR;
if (!tlsDir) throw new Error('BENCH_TLS_DIR is not set');

const server = createServer({ cert: readFileSync(join(tlsDir, 'server.pem')), key: readFileSync(join(tlsDir, 'server.key')) });
// Longer than any client keeps an idle connection, so the sink never closes one under a client.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.on('tlsClientError', () => undefined);

const OK_HEADERS = { 'content-type': 'text/plain', 'content-length': '2' };
const MARKER = /"marker":"([^"]*)"/;

const counts = new Map<string, number>();
interface Watch {
  target: number;
  /** The first arrival after the watch was armed: when the work started to show. */
  first: number | null;
  resolve(at: number, first: number): void;
}

const watches = new Map<string, Watch[]>();
const markers: Array<[marker: string, at: number]> = [];
const hanging = new Set<ServerResponse>();

server.on('request', (req: IncomingMessage, res: ServerResponse) => {
  const group = groupOf(req.url ?? '/');
  const record = group.startsWith('lat');
  const chunks: Buffer[] = [];
  if (record) req.on('data', (chunk: Buffer) => chunks.push(chunk));
  else req.resume();
  req.once('end', () => {
    const at = now();
    if (group.startsWith('hang')) {
      hanging.add(res);
      res.once('close', () => hanging.delete(res));
    } else {
      res.writeHead(200, OK_HEADERS).end('ok');
    }
    if (record) {
      const match = MARKER.exec(Buffer.concat(chunks).toString('utf8'));
      if (match) markers.push([match[1]!, at]);
    }
    arrived(group, at);
  });
});

function groupOf(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

function arrived(group: string, at: number): void {
  const count = (counts.get(group) ?? 0) + 1;
  counts.set(group, count);
  const waiting = watches.get(group);
  if (!waiting) return;
  const still = waiting.filter((watch) => {
    watch.first ??= at;
    if (count < watch.target) return true;
    watch.resolve(at, watch.first);
    return false;
  });
  if (still.length > 0) watches.set(group, still);
  else watches.delete(group);
}

answerRequests((request) => {
  switch (request.type) {
    case 'counts':
      return { counts: Object.fromEntries(counts), hanging: hanging.size };
    case 'watch': {
      // Answers when the group's count reaches `target`, with the times of the first and of that arrival.
      const group = String(request.group);
      const target = Number(request.target);
      if ((counts.get(group) ?? 0) >= target) return { at: now(), first: now() };
      return new Promise((resolve) => {
        const list = watches.get(group) ?? [];
        list.push({ target, first: null, resolve: (at, first) => resolve({ at, first }) });
        watches.set(group, list);
      });
    }
    case 'markers':
      return { markers: markers.splice(0) };
    default:
      throw new Error(`unknown request "${request.type}"`);
  }
});

exitWithParent(() => {
  server.close();
  server.closeAllConnections();
});

server.listen(0, '127.0.0.1', () => announceReady({ port: (server.address() as AddressInfo).port }));
