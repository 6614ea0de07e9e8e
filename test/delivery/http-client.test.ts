import { pbkdf2 } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createTcpServer } from 'node:net';
import type { ServerResponse } from 'node:http';
import type { AddressInfo, Server as TcpServer, Socket } from 'node:net';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AddressPolicy, parseCidrList } from '../../src/delivery/address-rules.js';
import { createHostResolver, utf8Excerpt, WebhookClient } from '../../src/delivery/http-client.js';
import type { DeliveryResult, HostResolver, ResolvedAddress, WebhookClientOptions } from '../../src/delivery/http-client.js';
import { startSink, testCa, testCaFile, tlsDir } from '../support/sink.js';
import type { Sink, SinkHandler } from '../support/sink.js';
import { freePort } from '../support/ports.js';

async function canListen(host: string): Promise<boolean> {
  const server = createTcpServer();
  const ok = await new Promise<boolean>((resolve) => server.once('error', () => resolve(false)).listen(0, host, () => resolve(true)));
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}

// Linux routes all of 127/8 to lo; macOS only 127.0.0.1, and some containers have no IPv6.
const SECOND_LOOPBACK = await canListen('127.0.0.2');
const IPV6_LOOPBACK = await canListen('::1');

const LOOPBACK_ALLOWED = new AddressPolicy(parseCidrList('127.0.0.0/8'));
const STRICT = new AddressPolicy([]);
const USER_AGENT = 'mozhno-webhooks/test';
/**
 * How late past a deadline a test still counts it as kept: the point is "at the deadline, not at
 * the endpoint's pace", and a loaded 2-core CI machine can hold a timer back by a second.
 */
const SLACK_MS = 2_000;

let sink: Sink;
const clients: WebhookClient[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  sink = await startSink();
});

afterAll(async () => {
  await sink.close();
});

beforeEach(() => {
  sink.reset();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

function makeClient(overrides: Partial<WebhookClientOptions> = {}): WebhookClient {
  const client = new WebhookClient({ timeoutMs: 1500, policy: LOOPBACK_ALLOWED, ca: testCa(), userAgent: USER_AGENT, ...overrides });
  clients.push(client);
  return client;
}

/** A resolver answering from a table (a function gives a new answer per call) and counting calls. */
function fakeResolver(table: Record<string, string[] | ((call: number) => string[])>) {
  const calls: string[] = [];
  const lookup = async (hostname: string): Promise<ResolvedAddress[]> => {
    calls.push(hostname);
    const entry = table[hostname];
    if (entry === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    const answers = typeof entry === 'function' ? entry(calls.filter((name) => name === hostname).length) : entry;
    return answers.map((address) => ({ address, family: isIP(address) === 6 ? 6 : 4 }));
  };
  return { lookup, calls };
}

/** A plain TCP listener that only counts connections: proof that nothing connected. */
async function startTcpCounter(host: string, port = 0): Promise<{ port: number; readonly connections: number; server: TcpServer }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    server,
  };
}

/** A TLS endpoint with the sink's certificate that writes its answer straight onto the socket when a request arrives. */
async function startRawEndpoint(answer: (socket: TLSSocket) => void): Promise<{ url: string }> {
  const sockets = new Set<TLSSocket>();
  const server = createTlsServer({ cert: readFileSync(join(tlsDir(), 'server.pem')), key: readFileSync(join(tlsDir(), 'server.key')) }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => answer(socket));
    socket.resume(); // reading is what lets it see the client's close
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A list of addresses (empty: the name has none of this family), or a failure. */
/** `slow`: answered only once `afterMs` have passed since the question was first asked (every copy of it then). */
type NameAnswer = readonly string[] | 'nxdomain' | 'servfail' | 'silent' | { slow: readonly string[]; afterMs: number };

/** A nameserver on a loopback UDP port answering A and AAAA questions as told; `questions` holds "A name" entries. */
async function startNameserver(answer: (name: string, type: 'A' | 'AAAA') => NameAnswer): Promise<{ server: string; questions: string[] }> {
  const socket = createSocket('udp4');
  const questions: string[] = [];
  const firstAsked = new Map<string, number>();
  socket.on('message', (query, peer) => {
    const { name, type, end } = readQuestion(query);
    questions.push(`${type} ${name}`);
    const reply = answer(name, type);
    if (reply === 'silent') return;
    if (typeof reply === 'object' && 'slow' in reply) {
      const first = firstAsked.get(`${type} ${name}`) ?? Date.now();
      firstAsked.set(`${type} ${name}`, first);
      const send = () => socket.send(dnsReply(query, end, type, reply.slow), peer.port, peer.address);
      setTimeout(send, Math.max(0, first + reply.afterMs - Date.now()));
      return;
    }
    socket.send(dnsReply(query, end, type, reply), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => socket.close(() => resolve())));
  return { server: `127.0.0.1:${socket.address().port}`, questions };
}

function readQuestion(query: Buffer): { name: string; type: 'A' | 'AAAA'; end: number } {
  const labels: string[] = [];
  let offset = 12; // past the header
  while (query[offset] !== 0) {
    const length = query[offset]!;
    labels.push(query.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  return { name: labels.join('.').toLowerCase(), type: query.readUInt16BE(offset + 1) === 28 ? 'AAAA' : 'A', end: offset + 5 };
}

function dnsReply(query: Buffer, questionEnd: number, type: 'A' | 'AAAA', answer: readonly string[] | 'nxdomain' | 'servfail'): Buffer {
  const records = (typeof answer === 'string' ? [] : answer).map((address) => {
    const data = type === 'A' ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
    const record = Buffer.alloc(12);
    record.writeUInt16BE(0xc00c, 0); // the question's name
    record.writeUInt16BE(type === 'A' ? 1 : 28, 2);
    record.writeUInt16BE(1, 4); // class IN
    record.writeUInt32BE(0, 6); // TTL 0: nothing is cached from one test to the next
    record.writeUInt16BE(data.length, 10);
    return Buffer.concat([record, data]);
  });
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // the query's id
  header.writeUInt16BE(0x8180 | (answer === 'nxdomain' ? 3 : answer === 'servfail' ? 2 : 0), 2); // a recursive answer, and its rcode
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...records]);
}

/** Hex groups only, "::" allowed. */
function ipv6Bytes(address: string): Buffer {
  const [head = '', tail] = address.split('::');
  const groups = (text: string) => (text === '' ? [] : text.split(':'));
  const all = tail === undefined ? groups(head) : [...groups(head), ...Array<string>(8 - groups(head).length - groups(tail).length).fill('0'), ...groups(tail)];
  return Buffer.from(all.flatMap((group) => [parseInt(group, 16) >> 8, parseInt(group, 16) & 0xff]));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function expectOneLine(result: DeliveryResult): void {
  expect(result.error).not.toBeNull();
  expect(result.error).not.toMatch(/[\r\n\u2028\u2029]/);
  expect(result.error!.length).toBeLessThanOrEqual(500);
}

function expectValidExcerpt(excerpt: string | null): void {
  expect(excerpt).not.toBeNull();
  const bytes = Buffer.from(excerpt!, 'utf8');
  expect(bytes.length).toBeLessThanOrEqual(1024);
  // Lone surrogates would not survive the round trip.
  expect(bytes.toString('utf8')).toBe(excerpt);
  expect(excerpt).not.toContain('\u0000');
}

/** Records when the sink's side of the connection closes. */
function watchClose(res: ServerResponse, stats: { closedAt: number | null }): void {
  res.socket?.once('close', () => {
    stats.closedAt = Date.now();
  });
}

describe('WebhookClient: successful deliveries', () => {
  it('POSTs the headers and body exactly, reports 2xx as ok with the connected address', async () => {
    const client = makeClient();
    const body = JSON.stringify({ action: 'flag.created', name: 'Übergröße "x" 🚀' });
    const result = await client.send({
      url: `${sink.url}/hooks/a?x=1&y=%20`,
      headers: { 'Content-Type': 'application/json', 'X-Token': 'abc def', 'webhook-id': 'msg_1' },
      body,
    });

    expect(result).toMatchObject({ ok: true, httpStatus: 200, errorCode: null, error: null, address: '127.0.0.1', responseExcerpt: 'ok' });
    expect(result.durationMs).toEqual(expect.any(Number));
    expect(sink.requests).toHaveLength(1);
    const [received] = sink.requests;
    expect(received).toMatchObject({ method: 'POST', path: '/hooks/a?x=1&y=%20', body });
    expect(received!.headers).toMatchObject({
      'content-type': 'application/json',
      'x-token': 'abc def',
      'webhook-id': 'msg_1',
      'user-agent': USER_AGENT,
      'content-length': String(Buffer.byteLength(body)),
    });
    expect(received!.headers).not.toHaveProperty('accept-encoding');
    expect(received!.headers).not.toHaveProperty('transfer-encoding');
  });

  it('never sends Accept-Encoding, even when the configured headers ask for it, and keeps a configured User-Agent', async () => {
    sink.respond((_req, res) => {
      // A server that compresses anyway: the bytes are taken as they are, never decompressed.
      res.writeHead(200, { 'content-encoding': 'gzip' }).end('not really gzip');
    });
    const client = makeClient();
    const result = await client.send({
      url: sink.url,
      headers: { 'Accept-Encoding': 'gzip, br', 'User-Agent': 'custom-agent/1', 'Proxy-Authorization': 'x', Connection: 'close' },
      body: '{}',
    });
    expect(result.ok).toBe(true);
    expect(result.responseExcerpt).toBe('not really gzip');
    const headers = sink.requests[0]!.headers;
    expect(headers).not.toHaveProperty('accept-encoding');
    expect(headers).not.toHaveProperty('proxy-authorization');
    expect(headers['user-agent']).toBe('custom-agent/1');
  });

  it('sends one value per header name when names differ only in case, the later entry winning', async () => {
    const client = makeClient();
    await client.send({ url: sink.url, headers: { 'User-Agent': 'configured/1', 'X-Tag': 'a', 'user-agent': 'mozhno-webhooks/9', 'x-tag': 'b' }, body: null });
    const [received] = sink.requests;
    expect(received!.headers['user-agent']).toBe('mozhno-webhooks/9');
    expect(received!.headers['x-tag']).toBe('b');
  });

  it.each([null, ''])('sends a body-less POST when the body is %j', async (body) => {
    const client = makeClient();
    const result = await client.send({ url: `${sink.url}/empty`, headers: {}, body });
    expect(result.ok).toBe(true);
    const [received] = sink.requests;
    expect(received!.method).toBe('POST');
    expect(received!.body).toBe('');
    expect(received!.headers['content-length'] ?? '0').toBe('0');
    expect(received!.headers).not.toHaveProperty('transfer-encoding');
  });

  it('treats every 2xx as success and reads the excerpt of its body', async () => {
    sink.respond((_req, res) => res.writeHead(204).end());
    const client = makeClient();
    expect(await client.send({ url: sink.url, headers: {}, body: 'x' })).toMatchObject({ ok: true, httpStatus: 204, responseExcerpt: '' });
    sink.respond((_req, res) => res.writeHead(299).end('fine'));
    expect(await client.send({ url: sink.url, headers: {}, body: 'x' })).toMatchObject({ ok: true, httpStatus: 299, responseExcerpt: 'fine' });
  });

  it('ignores 1xx informational answers before the real one', async () => {
    sink.respond((_req, res) => {
      res.writeEarlyHints({ link: '</x>; rel=preload' });
      res.writeHead(202).end('accepted');
    });
    const result = await makeClient().send({ url: sink.url, headers: {}, body: 'x' });
    expect(result).toMatchObject({ ok: true, httpStatus: 202, responseExcerpt: 'accepted' });
  });
});

describe('WebhookClient: connection reuse', () => {
  it('reuses keep-alive connections for back-to-back deliveries, each reporting the address', async () => {
    const client = makeClient();
    for (let i = 0; i < 20; i++) {
      const result = await client.send({ url: `${sink.url}/seq`, headers: {}, body: String(i) });
      expect(result).toMatchObject({ ok: true, address: '127.0.0.1' });
    }
    expect(sink.requests).toHaveLength(20);
    // undici waits an event-loop turn before reusing a socket that just finished a response,
    // so a send made at once takes a second connection; the two then alternate.
    expect(sink.connections).toBeLessThanOrEqual(2);
  });

  it('reuses one idle connection, also after a response body of moderate size', async () => {
    sink.respond((_req, res) => res.writeHead(200).end('y'.repeat(20_000)));
    const client = makeClient();
    for (let i = 0; i < 5; i++) {
      expect((await client.send({ url: sink.url, headers: {}, body: String(i) })).ok).toBe(true);
      await sleep(5);
    }
    expect(sink.connections).toBe(1);
  });

  it('opens connections for concurrent deliveries and reuses them afterwards', async () => {
    sink.respond(async (_req, res) => {
      await sleep(100);
      res.writeHead(200).end('ok');
    });
    const client = makeClient();
    const send = (i: number) => client.send({ url: sink.url, headers: {}, body: String(i) });
    const first = await Promise.all(Array.from({ length: 10 }, (_, i) => send(i)));
    expect(first.every((result) => result.ok)).toBe(true);
    const opened = sink.connections;
    expect(opened).toBeGreaterThan(1);
    expect(opened).toBeLessThanOrEqual(10);
    await sleep(5);
    const second = await Promise.all(Array.from({ length: 10 }, (_, i) => send(i + 10)));
    expect(second.every((result) => result.ok)).toBe(true);
    expect(sink.connections).toBe(opened);
  });

  it.skipIf(!SECOND_LOOPBACK)('reports, for each request, the address of the connection that carried it, also on reused connections', async () => {
    // A second listener on 127.0.0.2 with the same port: one origin, two addresses.
    const sink2 = await startSink({ host: '127.0.0.2', port: sink.port });
    cleanups.push(() => sink2.close());
    const handler: SinkHandler = async (_req, res) => {
      await sleep(80);
      res.writeHead(200).end('ok');
    };
    sink.respond(handler);
    sink2.respond(handler);
    // Each new connection gets the next address in turn.
    const { lookup } = fakeResolver({ 'rr.sink.test': (call) => [call % 2 === 1 ? '127.0.0.1' : '127.0.0.2'] });
    const client = makeClient({ lookup });
    const url = `https://rr.sink.test:${sink.port}/rr`;

    const results: Array<{ body: string; result: DeliveryResult }> = [];
    for (let round = 0; round < 3; round++) {
      const batch = await Promise.all(
        Array.from({ length: 4 }, async (_, i) => {
          const body = `${round}-${i}`;
          return { body, result: await client.send({ url, headers: {}, body }) };
        }),
      );
      results.push(...batch);
    }

    const served = new Map([...sink.requests, ...sink2.requests].map((request) => [request.body, request.localAddress]));
    expect(served.size).toBe(12);
    for (const { body, result } of results) {
      expect(result.ok).toBe(true);
      expect(result.address).toBe(served.get(body));
    }
    // Both addresses were really used, and connections were reused across rounds.
    expect(new Set(results.map(({ result }) => result.address))).toEqual(new Set(['127.0.0.1', '127.0.0.2']));
    expect(sink.connections + sink2.connections).toBeLessThanOrEqual(8);
  });

  it('closes an idle connection after 4 s even when the endpoint asks for 10 minutes', async () => {
    let closedAt: number | null = null;
    const endpoint = await startRawEndpoint((socket) => {
      socket.once('close', () => {
        closedAt = Date.now();
      });
      // The endpoint itself never closes.
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=600\r\n\r\nok');
    });
    const result = await makeClient().send({ url: endpoint.url, headers: {}, body: null });
    const answeredAt = Date.now();
    expect(result.ok).toBe(true);
    await expect.poll(() => closedAt, { timeout: 4000 + SLACK_MS + 1000, interval: 100 }).not.toBeNull();
    expect(closedAt! - answeredAt).toBeLessThan(4000 + SLACK_MS);
  });

  it('close() closes the pooled connections, and a later send reports an error instead of throwing', async () => {
    const stats = { closedAt: null as number | null };
    sink.respond((_req, res) => {
      watchClose(res, stats);
      res.writeHead(200).end('ok');
    });
    const client = new WebhookClient({ timeoutMs: 1000, policy: LOOPBACK_ALLOWED, ca: testCa() });
    expect((await client.send({ url: sink.url, headers: {}, body: 'x' })).ok).toBe(true);
    await client.close();
    await expect.poll(() => stats.closedAt, { timeout: SLACK_MS + 1000 }).not.toBeNull();
    const after = await client.send({ url: sink.url, headers: {}, body: 'x' });
    expect(after).toMatchObject({ ok: false, errorCode: 'E_CONNECT' });
    expect(sink.requests).toHaveLength(1);
  });
});

describe('WebhookClient: failed answers', () => {
  it('reports a 500 with the status phrase and a one-line excerpt of the body', async () => {
    sink.respond((_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('database\r\n  exploded\tbadly\n'));
    const result = await makeClient().send({ url: sink.url, headers: {}, body: '{}' });
    expect(result).toMatchObject({
      ok: false,
      httpStatus: 500,
      errorCode: 'E_HTTP',
      error: 'HTTP 500 Internal Server Error: database exploded badly',
      address: '127.0.0.1',
      responseExcerpt: 'database\r\n  exploded\tbadly\n',
    });
  });

  it("uses the server's reason phrase when it sends one, and no excerpt part for an empty body", async () => {
    sink.respond((_req, res) => res.writeHead(503, 'Down For Maintenance').end('back soon'));
    const client = makeClient();
    expect((await client.send({ url: sink.url, headers: {}, body: null })).error).toBe('HTTP 503 Down For Maintenance: back soon');
    sink.respond((_req, res) => res.writeHead(404).end());
    expect(await client.send({ url: sink.url, headers: {}, body: null })).toMatchObject({
      errorCode: 'E_HTTP',
      httpStatus: 404,
      error: 'HTTP 404 Not Found',
      responseExcerpt: '',
    });
  });

  it('does not follow a redirect and names its Location', async () => {
    sink.respond((_req, res) => res.writeHead(302, { location: 'https://elsewhere.example/next?a=1' }).end('moved'));
    const result = await makeClient().send({ url: `${sink.url}/old`, headers: {}, body: '{}' });
    expect(result).toMatchObject({
      ok: false,
      httpStatus: 302,
      errorCode: 'E_REDIRECT',
      error: 'redirect to https://elsewhere.example/next?a=1 not followed',
    });
    await sleep(100);
    expect(sink.requests.map((request) => request.path)).toEqual(['/old']);
  });

  it('reports a redirect without Location, and a 307 to the same origin is not followed either', async () => {
    sink.respond((_req, res) => res.writeHead(301).end());
    const client = makeClient();
    expect(await client.send({ url: sink.url, headers: {}, body: null })).toMatchObject({
      errorCode: 'E_REDIRECT',
      error: 'redirect (HTTP 301) without a Location header not followed',
    });
    sink.respond((_req, res) => res.writeHead(307, { location: '/again' }).end());
    expect(await client.send({ url: `${sink.url}/first`, headers: {}, body: null })).toMatchObject({
      errorCode: 'E_REDIRECT',
      error: 'redirect to /again not followed',
    });
    expect(sink.requests.map((request) => request.path)).toEqual(['/', '/first']);
  });

  it('keeps error texts to one line of at most 500 characters', async () => {
    sink.respond((_req, res) => res.writeHead(500).end(`line one\nline two\u2028\u0007${'z'.repeat(5000)}`));
    const client = makeClient();
    const result = await client.send({ url: sink.url, headers: {}, body: null });
    expectOneLine(result);
    expect(result.error).toMatch(/^HTTP 500 Internal Server Error: line one line two z+…$/);
    expect(result.error).toHaveLength(500);

    sink.respond((_req, res) => res.writeHead(308, { location: `https://x.example/${'p'.repeat(3000)}` }).end());
    const redirect = await client.send({ url: sink.url, headers: {}, body: null });
    expect(redirect.errorCode).toBe('E_REDIRECT');
    expectOneLine(redirect);
  });

  it('never puts a request header value into the error text or the response excerpt', async () => {
    const token = 'Bearer sk_live_0123456789abcdef';
    sink.respond((req, res) => res.writeHead(401).end(`bad token ${req.headers.authorization} for ${req.headers['x-api-key']}`));
    const result = await makeClient().send({
      url: sink.url,
      headers: { Authorization: token, 'X-Api-Key': 'key-98765' },
      body: null,
    });
    expect(result.errorCode).toBe('E_HTTP');
    expect(result.error).toBe('HTTP 401 Unauthorized: bad token *** for ***');
    expect(result.error).not.toContain('sk_live');
    // The excerpt keeps the answer's lines, but not the values the endpoint echoed.
    expect(result.responseExcerpt).toBe('bad token *** for ***');

    sink.respond((req, res) => res.writeHead(200).end(`{\n  "authorization": "${req.headers.authorization}"\n}`));
    const echoed = await makeClient().send({ url: sink.url, headers: { Authorization: token }, body: null });
    expect(echoed.ok).toBe(true);
    expect(echoed.responseExcerpt).toBe('{\n  "authorization": "***"\n}');

    // The credentials echoed without their scheme, a signature without its `v1,`: masked all the same.
    sink.respond((req, res) => res.writeHead(401).end(`token ${String(req.headers.authorization).slice(7)} invalid; sig ${String(req.headers['webhook-signature']).slice(3)}`));
    const parts = await makeClient().send({ url: sink.url, headers: { Authorization: token, 'webhook-signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=' }, body: null });
    expect(parts.error).toBe('HTTP 401 Unauthorized: token *** invalid; sig ***');
    expect(parts.responseExcerpt).toBe('token *** invalid; sig ***');
  });

  it('masks a header value echoed in another letter case', async () => {
    sink.respond((req, res) => res.writeHead(500).end(`NO SUCH TOKEN: ${req.headers.authorization!.toUpperCase()}, key ${String(req.headers['x-api-key']).toLowerCase()}`));
    const result = await makeClient().send({ url: sink.url, headers: { Authorization: 'Bearer sk_live_0123456789abcdef', 'X-Api-Key': 'Key-ABCDEF' }, body: null });
    expect(result.error).toBe('HTTP 500 Internal Server Error: NO SUCH TOKEN: ***, key ***');

    // İ is the one character whose lower case is longer: it must not shift what is matched after it.
    sink.respond((req, res) => res.writeHead(500).end(`İSTANBUL: ${req.headers.authorization!.toUpperCase()} rejected, İ ${req.headers.authorization!.toUpperCase().slice(0, 12)}`));
    const turkish = await makeClient().send({ url: sink.url, headers: { Authorization: 'Bearer sk_live_0123456789abcdef' }, body: null });
    expect(turkish.error).toBe('HTTP 500 Internal Server Error: İSTANBUL: *** rejected, İ BEARER SK_LI');
  });

  it('masks the start of a header value that the response excerpt or a cut Location ends in', async () => {
    const token = 'sk_live_0123456789abcdef';
    // Newlines collapse to one space: the excerpt's last 14 bytes, the start of the echo, end the error text.
    sink.respond((_req, res) => res.writeHead(500).end(`${'\n'.repeat(1010)}${token.toUpperCase()} was refused`));
    const client = makeClient();
    const cut = await client.send({ url: sink.url, headers: { 'X-Token': token }, body: null });
    expect(cut.responseExcerpt).toBe(`${'\n'.repeat(1010)}***`);
    expect(cut.error).toBe('HTTP 500 Internal Server Error: ***');

    // An İ before the cut start of a value does not hide it.
    sink.respond((_req, res) => res.writeHead(500).end(`İ${'\n'.repeat(1009)}${token.toUpperCase()} was refused`));
    expect((await client.send({ url: sink.url, headers: { 'X-Token': token }, body: null })).error).toBe('HTTP 500 Internal Server Error: İ ***');

    // The Location is cut at 400 characters, here 6 characters into the value.
    const location = `https://x.example/${'p'.repeat(375)}${token}`;
    sink.respond((_req, res) => res.writeHead(302, { location }).end());
    const redirect = await client.send({ url: sink.url, headers: { 'X-Token': token }, body: null });
    expect(redirect.error).toBe(`redirect to https://x.example/${'p'.repeat(375)}*** not followed`);
  });

  it('masks the start of a value the excerpt ends in when invalid bytes, not the body\'s length, made it cut', async () => {
    const token = `Bearer ${'S'.repeat(60)}TOPSECRETTOKENVALUE0123456789${'a'.repeat(100)}`;
    // 300 invalid bytes become 900 bytes of U+FFFD: a 500-byte body whose excerpt stops inside the echo.
    sink.respond((req, res) => res.writeHead(401).end(Buffer.concat([Buffer.alloc(300, 0xff), Buffer.from(` auth=${req.headers.authorization}`)])));
    const result = await makeClient().send({ url: sink.url, headers: { Authorization: token }, body: null });
    expect(result.error).toMatch(/ auth=\*\*\*$/);
    expect(result.error).not.toContain('SSSS');
  });

  it('masks a value with Latin-1 characters as the endpoint echoes its bytes back (read as UTF-8)', async () => {
    sink.respond((req, res) => res.writeHead(401).end(Buffer.concat([Buffer.from('token '), Buffer.from(String(req.headers['x-token']), 'latin1'), Buffer.from(' refused')])));
    const result = await makeClient().send({ url: sink.url, headers: { 'X-Token': 'sécret-valüe' }, body: null });
    expect(result.error).toBe('HTTP 401 Unauthorized: token *** refused');
  });
});

describe('WebhookClient: malformed answers', () => {
  it.each([
    ['a garbage status line', 'HTTQ/1.1 200 OK\r\n\r\n', 'invalid response: Response does not match the HTTP/1.1 protocol (Expected HTTP/, RTSP/ or ICE/)'],
    ['an invalid header line', 'HTTP/1.1 200 OK\r\nX Bad: y\r\n\r\n', 'invalid response: Response does not match the HTTP/1.1 protocol (Invalid header token)'],
    ['a final 100 Continue', 'HTTP/1.1 100 Continue\r\n\r\n', 'invalid response: unexpected status (bad response)'],
  ])('reports %s as E_HTTP, not as a connection failure', async (_label, answer, error) => {
    const endpoint = await startRawEndpoint((socket) => socket.end(answer));
    const result = await makeClient().send({ url: endpoint.url, headers: {}, body: '{}' });
    expect(result).toMatchObject({ ok: false, errorCode: 'E_HTTP', httpStatus: null, error, address: '127.0.0.1', responseExcerpt: null });
  });

  it('reports an answer whose body breaks off as E_HTTP with its status and what came of the body', async () => {
    const endpoint = await startRawEndpoint((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
      setTimeout(() => socket.end(), 50);
    });
    const result = await makeClient().send({ url: endpoint.url, headers: {}, body: '{}' });
    expect(result).toMatchObject({
      ok: false,
      errorCode: 'E_HTTP',
      httpStatus: 200,
      error: 'invalid response: other side closed',
      address: '127.0.0.1',
      responseExcerpt: '0123456789',
    });
  });
});

describe('WebhookClient: deadline and response size', () => {
  it('times out on an endpoint that never answers and closes the connection', async () => {
    const stats = { closedAt: null as number | null };
    sink.respond((_req, res) => watchClose(res, stats));
    const result = await makeClient({ timeoutMs: 500 }).send({ url: sink.url, headers: {}, body: '{}' });
    const finishedAt = Date.now();
    expect(result).toMatchObject({ ok: false, httpStatus: null, errorCode: 'E_TIMEOUT', error: 'timeout after 500 ms', address: '127.0.0.1' });
    expect(result.durationMs).toBeGreaterThanOrEqual(490);
    expect(result.durationMs).toBeLessThan(SLACK_MS + 500);
    await expect.poll(() => stats.closedAt, { timeout: SLACK_MS + 1000 }).not.toBeNull();
    expect(stats.closedAt! - finishedAt).toBeLessThan(SLACK_MS);
  });

  it('cuts a body trickling one byte every 200 ms at the deadline', async () => {
    const stats = { closedAt: null as number | null, written: 0 };
    sink.respond((_req, res) => {
      watchClose(res, stats);
      res.writeHead(200, { 'content-length': '1000' });
      const timer = setInterval(() => {
        if (res.destroyed) return clearInterval(timer);
        res.write('x');
        stats.written++;
      }, 200);
      res.once('close', () => clearInterval(timer));
    });
    const result = await makeClient({ timeoutMs: 1000 }).send({ url: sink.url, headers: {}, body: '{}' });
    const finishedAt = Date.now();
    expect(result).toMatchObject({ ok: false, httpStatus: 200, errorCode: 'E_TIMEOUT', error: 'timeout after 1000 ms' });
    expect(result.durationMs).toBeGreaterThanOrEqual(990);
    expect(result.durationMs).toBeLessThan(SLACK_MS + 1000);
    expect(result.responseExcerpt).toMatch(/^x{1,6}$/); // what trickled in by the deadline
    await expect.poll(() => stats.closedAt, { timeout: SLACK_MS + 1000 }).not.toBeNull();
    expect(stats.closedAt! - finishedAt).toBeLessThan(SLACK_MS);
    const writtenAtClose = stats.written;
    await sleep(450);
    expect(stats.written).toBe(writtenAtClose);
  });

  it('bounds DNS by the deadline and sends nothing when the answer comes late', async () => {
    const LOOKUP_MS = SLACK_MS + 1_000; // answers after the deadline plus its slack
    const resolver = {
      lookup: async (): Promise<ResolvedAddress[]> => {
        await sleep(LOOKUP_MS);
        return [{ address: '127.0.0.1', family: 4 }];
      },
    };
    const result = await makeClient({ timeoutMs: 300, lookup: resolver.lookup }).send({ url: `https://slow.sink.test:${sink.port}/`, headers: {}, body: 'late' });
    expect(result).toMatchObject({ errorCode: 'E_TIMEOUT', error: 'timeout after 300 ms', httpStatus: null });
    expect(result.durationMs).toBeLessThan(SLACK_MS + 300);
    await sleep(LOOKUP_MS - result.durationMs + 300);
    expect(sink.requests).toHaveLength(0);
  });

  it('bounds a TLS handshake that never completes', async () => {
    const silent = await startTcpCounter('127.0.0.1');
    const result = await makeClient({ timeoutMs: 400 }).send({ url: `https://127.0.0.1:${silent.port}/`, headers: {}, body: '{}' });
    expect(result).toMatchObject({ errorCode: 'E_TIMEOUT', error: 'timeout after 400 ms' });
    expect(result.durationMs).toBeLessThan(SLACK_MS + 400);
    expect(silent.connections).toBe(1);
  });

  it.each([200, 500])('reads at most 64 KiB of an endless %i body, then drops the connection', async (status) => {
    const stats = { closedAt: null as number | null, written: 0 };
    sink.respond((_req, res) => {
      watchClose(res, stats);
      res.writeHead(status, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 'a');
      const pump = (): void => {
        while (!res.destroyed) {
          stats.written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    const result = await makeClient({ timeoutMs: 1500 }).send({ url: sink.url, headers: {}, body: '{}' });
    const finishedAt = Date.now();
    expect(result.ok).toBe(status === 200);
    expect(result.httpStatus).toBe(status);
    expect(result.errorCode).toBe(status === 200 ? null : 'E_HTTP'); // not E_TIMEOUT: the cap ended it
    expect(result.responseExcerpt).toBe('a'.repeat(1024));
    await expect.poll(() => stats.closedAt, { timeout: SLACK_MS + 1000 }).not.toBeNull();
    expect(stats.closedAt! - finishedAt).toBeLessThan(SLACK_MS);
    // What the server got rid of is bounded by socket buffers, not by the body: nothing kept reading.
    expect(stats.written).toBeLessThan(1024 * 1024);
  });

  it('honours a smaller maxResponseBytes', async () => {
    const stats = { closedAt: null as number | null };
    sink.respond((_req, res) => {
      watchClose(res, stats);
      res.writeHead(200, { 'content-length': '100000' });
      res.write('b'.repeat(2000));
      // The rest never comes: only the cap can end this response before the deadline.
    });
    const result = await makeClient({ timeoutMs: 1500, maxResponseBytes: 1500 }).send({ url: sink.url, headers: {}, body: null });
    expect(result).toMatchObject({ ok: true, httpStatus: 200, responseExcerpt: 'b'.repeat(1024) }); // ok: the cap ended it, not the deadline
    await expect.poll(() => stats.closedAt, { timeout: SLACK_MS + 1000 }).not.toBeNull();
  });
});

describe('WebhookClient: response excerpt', () => {
  async function excerptOf(body: Buffer): Promise<DeliveryResult> {
    sink.respond((_req, res) => res.writeHead(500).end(body));
    return makeClient().send({ url: sink.url, headers: {}, body: null });
  }

  it('never cuts a multibyte character at the 1 KiB boundary', async () => {
    const result = await excerptOf(Buffer.from(`${'a'.repeat(1023)}€${'b'.repeat(100)}`));
    expect(result.responseExcerpt).toBe('a'.repeat(1023));
    expectValidExcerpt(result.responseExcerpt);
    expectOneLine(result);

    const emoji = await excerptOf(Buffer.from(`${'a'.repeat(1021)}🚀tail`));
    expect(emoji.responseExcerpt).toBe('a'.repeat(1021));

    const fits = await excerptOf(Buffer.from(`${'a'.repeat(1020)}🚀tail`));
    expect(fits.responseExcerpt).toBe(`${'a'.repeat(1020)}🚀`);
  });

  it('replaces invalid UTF-8 and NUL and stays within 1 KiB', async () => {
    const result = await excerptOf(Buffer.concat([Buffer.from('ok '), Buffer.alloc(2000, 0xff)]));
    expectValidExcerpt(result.responseExcerpt);
    expect(result.responseExcerpt!.startsWith('ok \uFFFD')).toBe(true);
    expectOneLine(result);

    const nul = await excerptOf(Buffer.from('a\u0000b'));
    expect(nul.responseExcerpt).toBe('a\uFFFDb');
  });

  it.each([
    ['short ASCII', Buffer.from('hello'), 'hello'],
    ['exactly the limit', Buffer.from('x'.repeat(1024)), 'x'.repeat(1024)],
    ['2-byte character straddling', Buffer.from(`${'x'.repeat(1023)}é`), 'x'.repeat(1023)],
    ['3-byte character straddling', Buffer.from(`${'x'.repeat(1022)}€`), 'x'.repeat(1022)],
    ['4-byte character straddling', Buffer.from(`${'x'.repeat(1023)}🚀`), 'x'.repeat(1023)],
    ['4-byte character ending at the limit', Buffer.from(`${'x'.repeat(1020)}🚀!`), `${'x'.repeat(1020)}🚀`],
    ['a truncated character at the end of a short body', Buffer.from([0x61, 0xe2, 0x82]), 'a\uFFFD'],
    ['lone continuation bytes at the limit', Buffer.concat([Buffer.from('x'.repeat(1020)), Buffer.alloc(10, 0x80)]), `${'x'.repeat(1020)}\uFFFD`],
  ])('utf8Excerpt: %s', (_label, input, expected) => {
    const excerpt = utf8Excerpt(input, 1024);
    expect(excerpt).toBe(expected);
    expectValidExcerpt(excerpt);
  });

  it('utf8Excerpt: replacement characters cannot push the excerpt past the limit', () => {
    const excerpt = utf8Excerpt(Buffer.alloc(5000, 0xfe), 1024);
    expectValidExcerpt(excerpt);
    expect(excerpt).toBe('\uFFFD'.repeat(341));
  });
});

describe('WebhookClient: TLS and connection failures', () => {
  it('reports a certificate from an untrusted issuer as E_TLS and sends nothing', async () => {
    const untrusted = await startSink({ cert: 'untrusted' });
    cleanups.push(() => untrusted.close());
    const result = await makeClient().send({ url: untrusted.url, headers: {}, body: '{}' });
    expect(result).toMatchObject({ ok: false, errorCode: 'E_TLS', httpStatus: null, address: '127.0.0.1', responseExcerpt: null });
    expect(result.error).toMatch(/^TLS: .*self[- ]signed/i);
    expectOneLine(result);
    expect(untrusted.requests).toHaveLength(0);
  });

  it('checks certificates even where NODE_TLS_REJECT_UNAUTHORIZED=0 turns Node\'s own default off', async () => {
    const untrusted = await startSink({ cert: 'untrusted' });
    cleanups.push(() => untrusted.close());
    const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      const result = await makeClient().send({ url: untrusted.url, headers: {}, body: '{}' });
      expect(result.errorCode).toBe('E_TLS');
      expect(untrusted.requests).toHaveLength(0);
    } finally {
      if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before;
    }
  });

  it('does not trust the test CA unless it is configured (system roots only)', async () => {
    const result = await makeClient({ ca: null }).send({ url: sink.url, headers: {}, body: '{}' });
    expect(result.errorCode).toBe('E_TLS');
    expect(result.error).toMatch(/^TLS: /);
    expect(sink.requests).toHaveLength(0);
  });

  it('keeps trusting NODE_EXTRA_CA_CERTS beside a configured CA, as Node does without one', async () => {
    const unrelated = readFileSync(join(tlsDir(), 'untrusted.pem'), 'utf8'); // trusts nothing the sink has
    const saved = process.env.NODE_EXTRA_CA_CERTS;
    try {
      delete process.env.NODE_EXTRA_CA_CERTS;
      expect((await makeClient({ ca: unrelated }).send({ url: sink.url, headers: {}, body: '{}' })).errorCode).toBe('E_TLS');
      process.env.NODE_EXTRA_CA_CERTS = testCaFile();
      expect(await makeClient({ ca: unrelated }).send({ url: sink.url, headers: {}, body: '{}' })).toMatchObject({ ok: true, httpStatus: 200 });
    } finally {
      if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = saved;
    }
  });

  it('reports a plain-TCP endpoint that breaks the handshake as E_TLS', async () => {
    // resume(): without reading, the server socket would never see the client's close.
    const plain = createTcpServer((socket) => socket.on('error', () => {}).resume().end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => plain.close(() => resolve())));
    const result = await makeClient().send({ url: `https://127.0.0.1:${(plain.address() as AddressInfo).port}/`, headers: {}, body: null });
    expect(result).toMatchObject({ errorCode: 'E_TLS', error: 'TLS: wrong version number', address: '127.0.0.1' });
  });

  it('reports a refused connection as E_CONNECT with the address', async () => {
    const port = await freePort();
    const result = await makeClient().send({ url: `https://127.0.0.1:${port}/`, headers: {}, body: '{}' });
    expect(result).toMatchObject({
      ok: false,
      errorCode: 'E_CONNECT',
      error: `connect: connection refused by 127.0.0.1:${port} (ECONNREFUSED)`,
      address: '127.0.0.1',
      httpStatus: null,
    });
  });

  it('reports a connection that closes after taking the request, before any answer, as E_CONNECT "no answer"', async () => {
    sink.respond((req) => {
      req.socket.destroy();
    });
    const result = await makeClient().send({ url: sink.url, headers: {}, body: '{}' });
    // Not "connect: …": the connection was made, and the request may well have arrived.
    expect(result).toMatchObject({ ok: false, errorCode: 'E_CONNECT', error: 'no answer: other side closed', address: '127.0.0.1', httpStatus: null });
    expectOneLine(result);
  });

  it.each([
    ['accepts and never speaks', (socket: Socket) => void socket, 'E_TIMEOUT', /^timeout after 500 ms$/],
    ['accepts and resets at once', (socket: Socket) => void socket.resetAndDestroy(), 'E_CONNECT', /^connect: /],
  ])('names the address TCP reached when a TLS endpoint %s', async (_label, onConnection, code, error) => {
    const server = createTcpServer((socket) => onConnection(socket.on('error', () => {})));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
    const sockets: Socket[] = [];
    server.on('connection', (socket) => sockets.push(socket));
    cleanups.push(async () => sockets.forEach((socket) => socket.destroy()));
    const result = await makeClient({ timeoutMs: 500 }).send({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`, headers: {}, body: '{}' });
    expect(result).toMatchObject({ ok: false, errorCode: code, address: '127.0.0.1', httpStatus: null });
    expect(result.error).toMatch(error);
  });

  it('checks the certificate against the host name, not the address (SNI included)', async () => {
    const { lookup } = fakeResolver({ 'sink.test': ['127.0.0.1'], 'sink.test.': ['127.0.0.1'], 'other.example': ['127.0.0.1'] });
    const client = makeClient({ lookup });

    const good = await client.send({ url: `https://sink.test:${sink.port}/named`, headers: {}, body: '{}' });
    expect(good).toMatchObject({ ok: true, address: '127.0.0.1' });
    expect(sink.requests[0]).toMatchObject({ servername: 'sink.test', path: '/named' });
    expect(sink.requests[0]!.headers.host).toBe(`sink.test:${sink.port}`);

    const wildcard = await client.send({ url: `https://SINK.test.:${sink.port}/dot`, headers: {}, body: '{}' });
    expect(wildcard.ok).toBe(true);
    expect(sink.requests[1]!.servername).toBe('sink.test');

    const mismatch = await client.send({ url: `https://other.example:${sink.port}/`, headers: {}, body: '{}' });
    expect(mismatch).toMatchObject({ ok: false, errorCode: 'E_TLS', address: '127.0.0.1' });
    expect(mismatch.error).toMatch(/^TLS: .*other\.example/);
    expect(sink.requests).toHaveLength(2);
  });

  it('reports a resolver failure as E_DNS', async () => {
    const { lookup, calls } = fakeResolver({ 'empty.test': [] });
    const client = makeClient({ lookup });
    expect(await client.send({ url: 'https://nope.test/', headers: {}, body: '{}' })).toMatchObject({
      ok: false,
      errorCode: 'E_DNS',
      error: 'DNS: nope.test not found (ENOTFOUND)',
      address: null,
      httpStatus: null,
    });
    expect(await client.send({ url: 'https://empty.test/', headers: {}, body: '{}' })).toMatchObject({
      errorCode: 'E_DNS',
      error: 'DNS: empty.test has no addresses',
    });
    expect(calls).toEqual(['nope.test', 'empty.test']);

    const odd = makeClient({ lookup: () => Promise.reject(new Error('resolver exploded')) });
    expect(await odd.send({ url: 'https://x.test/', headers: {}, body: null })).toMatchObject({
      errorCode: 'E_DNS',
      error: 'DNS: cannot resolve x.test (resolver exploded)',
    });
  });

  it.each([
    ['ENODATA', 'DNS: x.test not found (ENODATA)'],
    ['ETIMEOUT', 'DNS: timeout resolving x.test (ETIMEOUT)'],
    ['ESERVFAIL', 'DNS: nameserver failure resolving x.test (ESERVFAIL)'],
    ['EREFUSED', 'DNS: nameserver refused to resolve x.test (EREFUSED)'],
    ['ECONNREFUSED', 'DNS: no nameserver reachable to resolve x.test (ECONNREFUSED)'],
    ['EAI_AGAIN', 'DNS: temporary failure resolving x.test (EAI_AGAIN)'],
  ])('reports the resolver code %s as E_DNS in words', async (code, error) => {
    const lookup = () => Promise.reject(Object.assign(new Error(`query ${code} x.test`), { code }));
    expect(await makeClient({ lookup }).send({ url: 'https://x.test/', headers: {}, body: null })).toMatchObject({ errorCode: 'E_DNS', error, address: null });
  });
});

describe('WebhookClient: SSRF guard', () => {
  it('refuses a name that resolves to a forbidden address, without connecting', async () => {
    const { lookup, calls } = fakeResolver({ 'evil.test': ['127.0.0.1'], 'evil6.test': ['::ffff:127.0.0.1'] });
    const client = makeClient({ policy: STRICT, lookup });
    const result = await client.send({ url: `https://evil.test:${sink.port}/`, headers: {}, body: '{}' });
    expect(result).toMatchObject({
      ok: false,
      errorCode: 'E_BLOCKED',
      error: 'blocked: resolves to 127.0.0.1, which is a loopback address',
      address: null,
      httpStatus: null,
    });
    const mapped = await client.send({ url: `https://evil6.test:${sink.port}/`, headers: {}, body: '{}' });
    expect(mapped.errorCode).toBe('E_BLOCKED');
    expect(mapped.error).toMatch(/^blocked: resolves to ::ffff:127\.0\.0\.1, which embeds 127\.0\.0\.1, a loopback address$/);
    expect(calls).toEqual(['evil.test', 'evil6.test']);
    await sleep(50);
    expect(sink.connections).toBe(0);
    expect(sink.requests).toHaveLength(0);
  });

  it.each([
    ['public first', ['93.184.216.34', '127.0.0.1'], '127.0.0.1'],
    ['forbidden first', ['127.0.0.1', '93.184.216.34'], '127.0.0.1'],
    ['IPv6 loopback among public', ['2606:4700::1111', '::1', '93.184.216.34'], '::1'],
  ])('refuses mixed answers when any address is forbidden (%s)', async (_label, answers, blocked) => {
    const { lookup } = fakeResolver({ 'mixed.test': answers });
    const result = await makeClient({ policy: STRICT, lookup }).send({ url: `https://mixed.test:${sink.port}/`, headers: {}, body: '{}' });
    expect(result).toMatchObject({ errorCode: 'E_BLOCKED', address: null }); // nothing was connected to (SPEC §6: the address connected to)
    expect(result.error).toContain(`resolves to ${blocked}`);
    expect(sink.connections).toBe(0);
  });

  it('refuses mixed answers even when the first address is allowed and could be connected to', async () => {
    const { lookup } = fakeResolver({ 'half.test': ['127.0.0.1', '10.0.0.1'] });
    const result = await makeClient({ lookup }).send({ url: `https://half.test:${sink.port}/`, headers: {}, body: '{}' });
    expect(result).toMatchObject({ errorCode: 'E_BLOCKED', error: 'blocked: resolves to 10.0.0.1, which is a private address', address: null });
    expect(sink.connections).toBe(0);
  });

  it.skipIf(!SECOND_LOOPBACK)('resolves once per new connection: a rebinding answer is checked and nothing connects to it', async () => {
    const onlyFirstLoopback = new AddressPolicy(parseCidrList('127.0.0.1/32'));
    // Same port on 127.0.0.2: if the guard let the rebinding through, this listener would see it.
    const rebound = await startTcpCounter('127.0.0.2', sink.port);
    sink.respond((_req, res) => res.writeHead(200, { connection: 'close' }).end('ok'));
    const { lookup, calls } = fakeResolver({ 'rebind.sink.test': (call) => (call === 1 ? ['127.0.0.1'] : ['127.0.0.2']) });
    const client = makeClient({ policy: onlyFirstLoopback, lookup });
    const url = `https://rebind.sink.test:${sink.port}/`;

    expect(await client.send({ url, headers: {}, body: '1' })).toMatchObject({ ok: true, address: '127.0.0.1' });
    const second = await client.send({ url, headers: {}, body: '2' });
    expect(second).toMatchObject({ ok: false, errorCode: 'E_BLOCKED', address: null });
    expect(second.error).toBe('blocked: resolves to 127.0.0.2, which is a loopback address');
    expect(calls).toEqual(['rebind.sink.test', 'rebind.sink.test']);
    expect(rebound.connections).toBe(0);
    expect(sink.requests.map((request) => request.body)).toEqual(['1']);
  });

  it('does not look the name up again for requests on a pooled connection', async () => {
    const { lookup, calls } = fakeResolver({ 'pooled.sink.test': ['127.0.0.1'] });
    const client = makeClient({ lookup });
    for (let i = 0; i < 5; i++) {
      expect((await client.send({ url: `https://pooled.sink.test:${sink.port}/`, headers: {}, body: String(i) })).ok).toBe(true);
      await sleep(5);
    }
    expect(calls).toEqual(['pooled.sink.test']);
    expect(sink.connections).toBe(1);
    // Back-to-back sends may open a second connection (see above): still one lookup per connection.
    await Promise.all([1, 2, 3].map((i) => client.send({ url: `https://pooled.sink.test:${sink.port}/`, headers: {}, body: `c${i}` })));
    expect(calls.length).toBe(sink.connections);
    expect(sink.connections).toBeGreaterThan(1);
  });

  it.each([
    ['private IPv4', 'https://10.0.0.1/', '10.0.0.1', 'blocked: 10.0.0.1 is a private address'],
    ['metadata', 'https://169.254.169.254/latest', '169.254.169.254', 'blocked: 169.254.169.254 is a cloud metadata address'],
    ['bracketed IPv6 loopback', 'https://[::1]:PORT/', '::1', 'blocked: ::1 is a loopback address'],
  ])('refuses an IP-literal URL (%s) before connecting', async (_label, template, address, error) => {
    // Without IPv6 nothing could connect to ::1 anyway; the IPv4 listener then only stands in.
    const counter = await startTcpCounter(address === '::1' && IPV6_LOOPBACK ? '::1' : '127.0.0.1');
    const { lookup, calls } = fakeResolver({});
    const result = await makeClient({ lookup }).send({ url: template.replace('PORT', String(counter.port)), headers: {}, body: '{}' });
    expect(result).toMatchObject({ ok: false, errorCode: 'E_BLOCKED', address: null, error, httpStatus: null });
    expect(calls).toHaveLength(0);
    expect(counter.connections).toBe(0);
  });

  it.each([
    ['hex', 'https://0x7f000001:PORT/'],
    ['decimal', 'https://2130706433:PORT/'],
    ['short', 'https://127.1:PORT/'],
    ['octal', 'https://0177.0.0.1:PORT/'],
    ['dotted', 'https://127.0.0.1:PORT/'],
    ['IPv4-mapped IPv6', 'https://[::ffff:127.0.0.1]:PORT/'],
    ['NAT64', 'https://[64:ff9b::7f00:1]:PORT/'],
  ])('refuses loopback spelled %s when 127/8 is not allowed, without a connection', async (_label, template) => {
    const counter = await startTcpCounter('127.0.0.1');
    const result = await makeClient({ policy: STRICT }).send({ url: template.replace('PORT', String(counter.port)), headers: {}, body: '{}' });
    expect(result.errorCode).toBe('E_BLOCKED');
    expect(result.error).toMatch(/^blocked: .*127\.0\.0\.1/);
    expect(counter.connections).toBe(0);
  });

  it('refuses localhost names even when loopback addresses are allowed, without a lookup', async () => {
    const { lookup, calls } = fakeResolver({ localhost: ['127.0.0.1'], 'a.localhost': ['127.0.0.1'] });
    const client = makeClient({ lookup });
    for (const host of ['localhost', 'a.localhost', 'LOCALHOST.']) {
      const result = await client.send({ url: `https://${host}:${sink.port}/`, headers: {}, body: null });
      expect(result.errorCode).toBe('E_BLOCKED');
      expect(result.error).toMatch(/^blocked: localhost names are not allowed/);
    }
    expect(calls).toHaveLength(0);
    expect(sink.connections).toBe(0);
  });

  it.each([
    ['not a URL', 'not a url', 'blocked: not a valid URL'],
    ['plain http', 'http://example.com/', 'blocked: only https:// URLs are delivered to'],
    ['credentials', 'https://user:pw@example.com/', 'blocked: URLs with a user name or password are refused'],
  ])('refuses %s without throwing', async (_label, url, error) => {
    const result = await makeClient().send({ url, headers: {}, body: null });
    expect(result).toMatchObject({ ok: false, errorCode: 'E_BLOCKED', error, address: null });
  });
});

describe('WebhookClient: name resolution', () => {
  const pbkdf2Async = promisify(pbkdf2);

  it('resolves off the libuv threadpool: 50 names a nameserver never answers end by the deadline and hold up no other work', async () => {
    const nameserver = await startNameserver(() => 'silent');
    const client = makeClient({ timeoutMs: 1500, dnsServers: [nameserver.server] });
    const finished: string[] = [];
    const sends = Array.from({ length: 50 }, (_, i) =>
      client.send({ url: `https://n${i}.silent.test:${sink.port}/`, headers: {}, body: null }).then((result) => {
        finished.push('send');
        return result;
      }),
    );
    await sleep(200); // every lookup is under way: getaddrinfo would hold each of the pool's threads (4 here) now
    const threadpoolWork = Promise.all([...Array.from({ length: 8 }, () => pbkdf2Async('x', 'salt', 1000, 32, 'sha256')), readFile(testCaFile())]).then(() => {
      finished.push('threadpool');
    });
    const results = await Promise.all(sends);
    await threadpoolWork;

    expect(finished[0]).toBe('threadpool');
    for (const result of results) {
      expect(['E_DNS', 'E_TIMEOUT']).toContain(result.errorCode);
      expect(result.durationMs).toBeLessThan(1500 + SLACK_MS);
    }
    for (let i = 0; i < 50; i++) expect(nameserver.questions).toContain(`A n${i}.silent.test`);
    expect(sink.connections).toBe(0);
  });

  it('gives up on a nameserver that never answers before the deadline (E_DNS), and delivers at once when only AAAA goes unanswered', async () => {
    const nameserver = await startNameserver((name, type) => (name === 'v4.sink.test' && type === 'A' ? ['127.0.0.1'] : 'silent'));
    const client = makeClient({ timeoutMs: 6000, dnsServers: [nameserver.server] });
    const [silent, v4] = await Promise.all([
      client.send({ url: `https://quiet.silent.test:${sink.port}/`, headers: {}, body: null }),
      client.send({ url: `https://v4.sink.test:${sink.port}/`, headers: {}, body: 'v4' }),
    ]);
    expect(silent).toMatchObject({ ok: false, errorCode: 'E_DNS', error: 'DNS: timeout resolving quiet.silent.test (ETIMEOUT)', address: null });
    expect(silent.durationMs).toBeLessThan(6000);
    expect(v4).toMatchObject({ ok: true, address: '127.0.0.1' });
    // Not c-ares's every try for AAAA (1 + 2 + 4 s, past the deadline): 300 ms once A has answered.
    expect(v4.durationMs).toBeLessThan(3000);
    expect(nameserver.questions).toContain('AAAA v4.sink.test');
  });

  it('asks again, thread-free, a nameserver that answers a cold name only after c-ares gave up on it (within half the deadline)', async () => {
    const nameserver = await startNameserver((name) => (name === 'slow.test' ? { slow: ['192.0.2.44'], afterMs: 3500 } : name.startsWith('warm') ? ['192.0.2.1'] : 'nxdomain'));
    const resolve = createHostResolver({ timeoutMs: 30_000, servers: [nameserver.server], fallback: async () => [] });
    // A worker that has resolved names before: c-ares now waits 5× the latency it measured, ~3 s in all.
    for (let i = 0; i < 5; i++) await resolve(`warm${i}.test`);
    expect(await resolve('slow.test')).toEqual([{ address: '192.0.2.44', family: 4 }]);
    expect(nameserver.questions.filter((q) => q === 'A slow.test').length).toBeGreaterThan(1);
  });

  it("delivers to the nameserver's addresses, checking both families and the certificate against the name", async () => {
    const answers: Record<string, { A: NameAnswer; AAAA: NameAnswer }> = {
      'dns.sink.test': { A: ['127.0.0.1'], AAAA: [] },
      'v6-failed.sink.test': { A: ['127.0.0.1'], AAAA: 'servfail' },
      'v6-loopback.sink.test': { A: ['127.0.0.1'], AAAA: ['::1'] },
      'v4-failed.sink.test': { A: 'servfail', AAAA: ['fd00::5'] },
      'both-failed.sink.test': { A: 'servfail', AAAA: 'servfail' },
    };
    const nameserver = await startNameserver((name, type) => answers[name]?.[type] ?? 'nxdomain');
    const client = makeClient({ dnsServers: [nameserver.server] });
    const send = (host: string) => client.send({ url: `https://${host}:${sink.port}/`, headers: {}, body: host });

    expect(await send('dns.sink.test')).toMatchObject({ ok: true, address: '127.0.0.1' });
    expect(sink.requests[0]).toMatchObject({ servername: 'dns.sink.test', body: 'dns.sink.test' });
    expect(nameserver.questions).toEqual(expect.arrayContaining(['A dns.sink.test', 'AAAA dns.sink.test']));
    // A family that failed is not connected to; the one that answered is, after its check.
    expect(await send('v6-failed.sink.test')).toMatchObject({ ok: true, address: '127.0.0.1' });
    // Any blocked address of either family blocks (the policy allows 127/8 only).
    expect(await send('v6-loopback.sink.test')).toMatchObject({ errorCode: 'E_BLOCKED', error: 'blocked: resolves to ::1, which is a loopback address', address: null });
    const v6Private = await send('v4-failed.sink.test');
    expect(v6Private).toMatchObject({ errorCode: 'E_BLOCKED', address: null });
    expect(v6Private.error).toMatch(/^blocked: resolves to fd00::5, /);
    expect(await send('both-failed.sink.test')).toMatchObject({ errorCode: 'E_DNS', error: 'DNS: nameserver failure resolving both-failed.sink.test (ESERVFAIL)' });
    expect(sink.requests.map((request) => request.body)).toEqual(['dns.sink.test', 'v6-failed.sink.test']);
  });

  /** A system lookup stand-in whose answers the test releases; it counts the lookups running at once. */
  function heldFallback() {
    const calls: string[] = [];
    const held: Array<() => void> = [];
    let running = 0;
    let mostRunning = 0;
    const fallback: HostResolver = (hostname) => {
      calls.push(hostname);
      mostRunning = Math.max(mostRunning, ++running);
      return new Promise((resolve) => {
        held.push(() => {
          running--;
          resolve([{ address: '192.0.2.7', family: 4 }]);
        });
      });
    };
    const releaseAll = (): void => {
      for (const release of held.splice(0)) release();
    };
    cleanups.push(async () => releaseAll()); // the slots are the process's: free them for the next test
    return { fallback, calls, releaseAll, get running() { return running; }, get mostRunning() { return mostRunning; } };
  }

  it('asks the system resolver only about names the nameservers know no address of', async () => {
    const answers: Record<string, { A: NameAnswer; AAAA: NameAnswer }> = {
      'empty.test': { A: [], AAAA: [] },
      'half.test': { A: 'nxdomain', AAAA: [] },
      'listed.test': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
      'broken.test': { A: 'servfail', AAAA: 'servfail' },
    };
    const nameserver = await startNameserver((name, type) => answers[name]?.[type] ?? 'nxdomain');
    const calls: string[] = [];
    const resolve = createHostResolver({
      timeoutMs: 1500,
      servers: [nameserver.server],
      fallback: async (hostname) => {
        calls.push(hostname);
        return [{ address: '192.0.2.9', family: 4 }];
      },
    });
    for (const name of ['gone.test', 'empty.test', 'half.test']) expect(await resolve(name)).toEqual([{ address: '192.0.2.9', family: 4 }]);
    expect(await resolve('listed.test')).toEqual([
      { address: '192.0.2.1', family: 4 },
      { address: '2001:db8::1', family: 6 },
    ]);
    await expect(resolve('broken.test')).rejects.toMatchObject({ code: 'ESERVFAIL' });
    expect(calls).toEqual(['gone.test', 'empty.test', 'half.test']);

    // By default that is getaddrinfo, which reads /etc/hosts.
    const system = await createHostResolver({ timeoutMs: 1500, servers: [nameserver.server] })('localhost');
    expect(system.length).toBeGreaterThan(0);
    for (const { address } of system) expect(['127.0.0.1', '::1']).toContain(address);
  });

  it('asks the system resolver when no nameserver can be reached (a machine that knows its targets from /etc/hosts only)', async () => {
    const closed = createSocket('udp4');
    await new Promise<void>((resolve) => closed.bind(0, '127.0.0.1', resolve));
    const port = closed.address().port;
    await new Promise<void>((resolve) => closed.close(() => resolve())); // nothing listens there now: ECONNREFUSED
    const calls: string[] = [];
    const resolve = createHostResolver({
      timeoutMs: 5000,
      servers: [`127.0.0.1:${port}`],
      fallback: async (hostname) => {
        calls.push(hostname);
        return [{ address: '192.0.2.10', family: 4 }];
      },
    });
    expect(await resolve('on-premise.internal')).toEqual([{ address: '192.0.2.10', family: 4 }]);
    expect(calls).toEqual(['on-premise.internal']);
  });

  it('shares one system lookup among requests for a name, and runs at most 8 at once', async () => {
    const nameserver = await startNameserver(() => 'nxdomain');
    const system = heldFallback();
    const resolve = createHostResolver({ timeoutMs: 5000, servers: [nameserver.server], fallback: system.fallback });

    const same = Array.from({ length: 20 }, () => resolve('same.test'));
    await expect.poll(() => system.calls.length).toBe(1);
    await expect.poll(() => nameserver.questions.length).toBe(40); // every request has had its answers
    await sleep(100);
    system.releaseAll();
    for (const answer of await Promise.all(same)) expect(answer).toEqual([{ address: '192.0.2.7', family: 4 }]);
    expect(system.calls).toEqual(['same.test']);

    const distinct = Array.from({ length: 12 }, (_, i) => resolve(`d${i}.test`));
    await expect.poll(() => system.running).toBe(8);
    await sleep(100);
    expect(system.calls).toHaveLength(1 + 8);
    system.releaseAll(); // the four waiting get their turn
    await expect.poll(() => system.running).toBe(4);
    system.releaseAll();
    expect(await Promise.all(distinct)).toHaveLength(12);
    expect(system.calls).toHaveLength(1 + 12);
    expect(system.mostRunning).toBe(8);
  });

  it('a name waiting for a system lookup gives up after the deadline and is never looked up', async () => {
    const nameserver = await startNameserver(() => 'nxdomain');
    const system = heldFallback();
    const resolve = createHostResolver({ timeoutMs: 300, servers: [nameserver.server], fallback: system.fallback });
    const busy = Array.from({ length: 8 }, (_, i) => resolve(`busy${i}.test`));
    await expect.poll(() => system.running).toBe(8);

    const started = Date.now();
    await expect(resolve('late.test')).rejects.toMatchObject({ code: 'ELOOKUPSBUSY' });
    expect(Date.now() - started).toBeLessThan(300 + SLACK_MS);
    system.releaseAll();
    await Promise.all(busy);
    await sleep(50);
    expect(system.calls).not.toContain('late.test');
  });
});
