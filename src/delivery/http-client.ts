import type { LookupAddress, LookupOptions } from 'node:dns';
import { readFileSync } from 'node:fs';
import { getServers, lookup as lookupWithGetaddrinfo, Resolver } from 'node:dns/promises';
import { STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as connectTls, createSecureContext, rootCertificates } from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { Agent, Client, Pool } from 'undici';
import type { Dispatcher, buildConnector } from 'undici';
import { parseIpLiteral } from './address-rules.js';
import type { AddressPolicy } from './address-rules.js';

// E_BACKLOG and E_STALLED are the worker's: nothing was sent, or nobody knows (see worker.ts).
export type DeliveryErrorCode = 'E_HTTP' | 'E_TIMEOUT' | 'E_DNS' | 'E_CONNECT' | 'E_TLS' | 'E_BLOCKED' | 'E_REDIRECT' | 'E_BACKLOG' | 'E_STALLED';

export interface WebhookRequest {
  /** Absolute https:// URL. */
  url: string;
  /**
   * Sent as given, except the hop-by-hop and encoding headers this client owns (see
   * DROPPED_HEADERS); names differing only in case are one header, the later entry winning.
   */
  headers: Readonly<Record<string, string>>;
  /** null or '' → a body-less POST. */
  body: string | null;
}

export interface DeliveryResult {
  /** A 2xx answer whose body was read to its end or to the cap. */
  ok: boolean;
  httpStatus: number | null;
  errorCode: DeliveryErrorCode | null;
  /** One line, at most 500 characters, never holding a request header value. */
  error: string | null;
  /** The IP connected to, or the one that was refused. */
  address: string | null;
  durationMs: number;
  /** The first bytes (at most 1 KiB) of the response body as valid UTF-8 without NUL; null when no answer came. */
  responseExcerpt: string | null;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface WebhookClientOptions {
  /** Bounds a whole attempt: DNS, connect, TLS, request, response head and the body read. */
  timeoutMs: number;
  policy: AddressPolicy;
  /** Extra trusted CA certificates (PEM); the default roots stay trusted. */
  ca: string | null;
  /** Resolves a host name to all its addresses; default createHostResolver's (c-ares, then getaddrinfo when the nameservers give no address). */
  lookup?: HostResolver;
  /** Nameservers (`address` or `address:port`) the default resolver asks instead of the system's; for tests. */
  dnsServers?: readonly string[];
  /** At most this many response body bytes are read, default 65536. */
  maxResponseBytes?: number;
  /** Sent when the request headers name no User-Agent; default none. */
  userAgent?: string;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;
export const RESPONSE_EXCERPT_BYTES = 1024;
export const ERROR_TEXT_MAX_CHARS = 500;

// The client decides these: no compression is negotiated (nothing is decompressed), and
// framing and connection management belong to undici. Validation refuses most at save time.
const DROPPED_HEADERS = new Set(['accept-encoding', 'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'upgrade', 'expect']);

// Header values that are not secrets, so error texts may keep them.
const PUBLIC_HEADERS = new Set(['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp']);

const MAX_CACHED_TLS_SESSIONS = 1000;
const MAX_CACHED_URLS = 10_000;

// ---------------------------------------------------------------- failures raised by the guard

/**
 * The guard refused an address; nothing was sent, nor connected to: the record has no address
 * (SPEC §6: the address connected to), the error names the refused one.
 */
class BlockedAddressError extends Error {
  readonly code = 'E_BLOCKED';
  constructor(readonly reason: string) {
    super(`blocked: ${reason}`);
    this.name = 'BlockedAddressError';
  }
}

class DnsError extends Error {
  readonly code = 'E_DNS';
  constructor(message: string) {
    super(message);
    this.name = 'DnsError';
  }
}

class ConnectTimeoutError extends Error {
  readonly code = 'E_CONNECT_TIMEOUT';
  constructor() {
    super('connect timeout');
    this.name = 'ConnectTimeoutError';
  }
}

/** Reason given to undici when this client stops a request itself; never reported. */
class AttemptStopped extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'AttemptStopped';
  }
}

interface ConnectFailure {
  /** The address TCP was connected to, when it got that far. */
  address: string | null;
  /** 'tls': TCP was up and the handshake failed, whatever the error says. */
  phase: 'tcp' | 'tls';
}

const connectFailures = new WeakMap<Error, ConnectFailure>();

// ---------------------------------------------------------------- per-connection address tracking

/** The address the current socket of one undici Client is connected to. */
interface ConnectionInfo {
  address: string | null;
}

const kAttempt = Symbol('mozhno.deliveryAttempt');
/** Handed to the connector with its options: called with the address once TCP is up, before TLS. */
const kTcpConnected = Symbol('mozhno.tcpConnected');

type TrackedConnectOptions = buildConnector.Options & { [kTcpConnected]?: (address: string | null) => void };

type AttemptDispatchOptions = Dispatcher.DispatchOptions & { [kAttempt]?: DeliveryAttempt };

/**
 * An undici Client owns one socket at a time and writes a request only to it, so the
 * address its connector reported is the address of every request it writes until it
 * reconnects. The pool hands each request to a client through `dispatch`; that is where
 * the request learns which client (and so which connection) carries it.
 */
class AddressTrackingClient extends Client {
  private readonly connection: ConnectionInfo;

  constructor(origin: string | URL, options: Client.Options, connect: buildConnector.connector) {
    const connection: ConnectionInfo = { address: null };
    super(origin, {
      ...options,
      connect: (connectOptions, callback) => {
        // A new socket: until TCP is up, no address is this connection's (a deadline then names none).
        connection.address = null;
        const tracked: TrackedConnectOptions = { ...connectOptions, [kTcpConnected]: (address) => (connection.address = address) };
        connect(tracked, (err, socket) => {
          if (err) {
            callback(err, null);
          } else {
            connection.address = socket.remoteAddress ?? null;
            callback(null, socket);
          }
        });
      },
    });
    this.connection = connection;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const attempt = (options as AttemptDispatchOptions)[kAttempt];
    if (attempt) attempt.connection = this.connection;
    return super.dispatch(options, handler);
  }
}

// ---------------------------------------------------------------- one attempt

type Outcome = { kind: 'response' } | { kind: 'timeout' } | { kind: 'error'; error: Error };

/** The undici handler of one POST: keeps the status, the first bytes of the body and the connection. */
class DeliveryAttempt implements Dispatcher.DispatchHandler {
  connection: ConnectionInfo | null = null;
  address: string | null = null;
  status: number | null = null;
  statusText = '';
  location: string | null = null;
  bodyBytes = 0;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private controller: Dispatcher.DispatchController | null = null;
  private finished = false;

  constructor(
    private readonly maxResponseBytes: number,
    private readonly onFinish: (outcome: Outcome) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.finished) {
      // The deadline passed while the connection was being made: send nothing.
      controller.abort(new AttemptStopped('deadline passed before the request was written'));
      return;
    }
    this.controller = controller;
    this.address = this.connection?.address ?? null;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode < 200) return; // 1xx informational; the real answer follows
    this.status = statusCode;
    this.statusText = statusMessage ?? '';
    const location = headers.location;
    this.location = (Array.isArray(location) ? location[0] : location) ?? null;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.finished) return;
    this.bodyBytes += chunk.length;
    // A few bytes past the excerpt tell whether its last character is complete.
    if (this.headBytes < RESPONSE_EXCERPT_BYTES + 4) {
      this.head.push(chunk.subarray(0, RESPONSE_EXCERPT_BYTES + 4 - this.headBytes));
      this.headBytes += Math.min(chunk.length, RESPONSE_EXCERPT_BYTES + 4 - this.headBytes);
    }
    if (this.bodyBytes >= this.maxResponseBytes) {
      // The rest is never read: destroying the socket is cheaper than draining a hostile body.
      this.finish({ kind: 'response' });
      controller.abort(new AttemptStopped('response body cap reached'));
    }
  }

  onResponseEnd(): void {
    this.finish({ kind: 'response' });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.finish({ kind: 'error', error });
  }

  /** The deadline: report a timeout, then destroy the socket if the request holds one. */
  expire(): void {
    if (this.finished) return;
    this.finish({ kind: 'timeout' });
    this.controller?.abort(new AttemptStopped('deadline passed'));
  }

  responseHead(): Buffer {
    return Buffer.concat(this.head);
  }

  private finish(outcome: Outcome): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinish(outcome);
  }
}

// ---------------------------------------------------------------- the client

/**
 * Delivers webhook POSTs over pooled HTTP/1.1 keep-alive connections (one pool per origin).
 * Every new connection resolves its host once, refuses it if any address breaks the
 * address policy, and connects to the checked addresses only; TLS SNI and certificate
 * checks use the host name. `send` never throws for network or HTTP problems.
 */
export class WebhookClient {
  private readonly timeoutMs: number;
  private readonly policy: AddressPolicy;
  private readonly resolve: HostResolver;
  private readonly ownResolver: ClosableHostResolver | null = null;
  private readonly maxResponseBytes: number;
  private readonly userAgent: string | null;
  private readonly secureContext: SecureContext | undefined;
  private readonly tlsSessions = new Map<string, Buffer>();
  private readonly urlVerdicts = new Map<string, URL | string>();
  private readonly agent: Agent;

  constructor(options: WebhookClientOptions) {
    this.timeoutMs = options.timeoutMs;
    this.policy = options.policy;
    if (options.lookup) {
      this.resolve = options.lookup;
    } else {
      this.ownResolver = createHostResolver({ timeoutMs: this.timeoutMs, servers: options.dnsServers });
      this.resolve = this.ownResolver;
    }
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.userAgent = options.userAgent ?? null;
    // One context for every connection: building it per connection would parse the whole root store each time.
    this.secureContext = options.ca === null ? undefined : createSecureContext({ ca: trustedCas(options.ca) });
    const connect = this.connectGuarded;
    this.agent = new Agent({
      connect,
      // undici's own timers only back up the deadline of `send`.
      headersTimeout: this.timeoutMs + 1000,
      bodyTimeout: this.timeoutMs + 1000,
      keepAliveTimeout: 4000,
      // Else an endpoint's `Keep-Alive: timeout=600` would hold each idle socket of it for 10 minutes.
      keepAliveMaxTimeout: 4000,
      factory: (origin, agentOptions) =>
        new Pool(origin, {
          ...(agentOptions as Pool.Options),
          connect,
          factory: (clientOrigin, clientOptions) => new AddressTrackingClient(clientOrigin, clientOptions as Client.Options, connect),
        }),
    });
  }

  async send(request: WebhookRequest): Promise<DeliveryResult> {
    const started = performance.now();
    const target = this.checkUrl(request.url);
    if (typeof target === 'string') {
      return attemptResult('E_BLOCKED', toErrorText(`blocked: ${target}`, secretValues(request.headers)), null, null, Math.round(performance.now() - started), null);
    }
    return new Promise<DeliveryResult>((resolve) => {
      const attempt: DeliveryAttempt = new DeliveryAttempt(this.maxResponseBytes, (outcome) => {
        clearTimeout(deadline);
        resolve(this.describe(outcome, attempt, started, request.headers));
      });
      const deadline = setTimeout(() => attempt.expire(), this.timeoutMs);
      const options: AttemptDispatchOptions = {
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        headers: this.buildHeaders(request.headers),
        body: request.body ? Buffer.from(request.body, 'utf8') : null,
        [kAttempt]: attempt,
      };
      try {
        this.agent.dispatch(options, attempt);
      } catch (err) {
        attempt.onResponseError(undefined, err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Closes idle connections; requests in flight end by their deadline. */
  async close(): Promise<void> {
    this.ownResolver?.close(); // queries under way would keep the process alive a while
    await this.agent.close();
  }

  /** The URL, or why it is refused before any lookup or connection. */
  private checkUrl(text: string): URL | string {
    // The verdict on a URL never changes for this client; integrations send to few URLs many times.
    let verdict = this.urlVerdicts.get(text);
    if (verdict === undefined) {
      if (this.urlVerdicts.size >= MAX_CACHED_URLS) this.urlVerdicts.clear();
      verdict = this.judgeUrl(text);
      this.urlVerdicts.set(text, verdict);
    }
    return verdict;
  }

  private judgeUrl(text: string): URL | string {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return 'not a valid URL';
    }
    if (url.protocol !== 'https:') return 'only https:// URLs are delivered to';
    if (url.username !== '' || url.password !== '') return 'URLs with a user name or password are refused';
    // Catches IP literals in every spelling and localhost names; other names are checked per connection.
    const verdict = this.policy.checkHost(url.hostname);
    return verdict.allowed ? url : verdict.reason;
  }

  /**
   * One value per header name, compared case-insensitively: a later entry replaces an earlier
   * one. Flat name/value pairs, as undici takes them.
   */
  private buildHeaders(headers: Readonly<Record<string, string>>): string[] {
    const pairs: string[] = [];
    const lowerNames: string[] = [];
    for (const name of Object.keys(headers)) {
      const lower = name.toLowerCase();
      if (DROPPED_HEADERS.has(lower) || lower.startsWith('proxy-')) continue;
      const earlier = lowerNames.indexOf(lower);
      if (earlier >= 0) {
        lowerNames.splice(earlier, 1);
        pairs.splice(2 * earlier, 2);
      }
      lowerNames.push(lower);
      pairs.push(name, headers[name]!);
    }
    if (this.userAgent !== null && !lowerNames.includes('user-agent')) pairs.push('user-agent', this.userAgent);
    return pairs;
  }

  private describe(outcome: Outcome, attempt: DeliveryAttempt, started: number, headers: Readonly<Record<string, string>>): DeliveryResult {
    const durationMs = Math.round(performance.now() - started);
    let responseExcerpt: string | null = null;
    let excerptCut = false;
    if (attempt.status !== null) {
      responseExcerpt = utf8Excerpt(attempt.responseHead(), RESPONSE_EXCERPT_BYTES);
      // The body went on past its excerpt, which may end in the first part of a value: longer than
      // the excerpt, or invalid bytes (U+FFFD, three bytes for one) made the excerpt cut it sooner.
      excerptCut = attempt.bodyBytes > RESPONSE_EXCERPT_BYTES || responseExcerpt.includes('\uFFFD');
      // Endpoints echo request headers back (debugging receivers, error pages): their values are
      // masked here as in the error text, the excerpt's lines kept. No value, nor start of one, that
      // is masked is under 4 characters: a shorter answer ("ok") needs no look.
      if (responseExcerpt.length >= 4) responseExcerpt = maskSecrets(responseExcerpt, secretValues(headers), excerptCut);
    }
    const { code, error, address } = this.verdict(outcome, attempt, responseExcerpt, excerptCut, headers);
    return attemptResult(code, error, attempt.status, address, durationMs, responseExcerpt);
  }

  /**
   * What went wrong, if anything. The header values are looked for in an error text only when
   * there is one. (No closures here: under tsx every closure made per delivery costs a
   * `defineProperty` for its name.)
   */
  private verdict(
    outcome: Outcome,
    attempt: DeliveryAttempt,
    responseExcerpt: string | null,
    excerptCut: boolean,
    headers: Readonly<Record<string, string>>,
  ): { code: DeliveryErrorCode | null; error: string | null; address: string | null } {
    if (outcome.kind === 'timeout') {
      // Cut before the request was written (TLS not done yet): the address TCP reached, if it got that far.
      return { code: 'E_TIMEOUT', error: `timeout after ${this.timeoutMs} ms`, address: attempt.address ?? attempt.connection?.address ?? null };
    }
    if (outcome.kind === 'error') {
      const failure = this.classifyError(outcome.error, attempt.status, attempt.address !== null);
      return { code: failure.code, error: toErrorText(failure.message, secretValues(headers)), address: attempt.address ?? failure.address };
    }

    const status = attempt.status ?? 0;
    if (status >= 200 && status < 300) return { code: null, error: null, address: attempt.address };
    const secrets = secretValues(headers);
    let text: string;
    let code: DeliveryErrorCode;
    let cutAtEnd = false;
    // The endpoint's texts are masked before they are cut, so that no part of a value survives a cut.
    if (status >= 300 && status < 400) {
      code = 'E_REDIRECT';
      text =
        attempt.location === null
          ? `redirect (HTTP ${status}) without a Location header not followed`
          : `redirect to ${cutChars(maskSecrets(oneLine(attempt.location), secrets, false), 400)} not followed`;
    } else {
      code = 'E_HTTP';
      const phrase = maskSecrets(oneLine(attempt.statusText), secrets, false) || STATUS_CODES[status] || '';
      const head = `HTTP ${status}${phrase ? ` ${cutChars(phrase, 100)}` : ''}`;
      const excerpt = oneLine(responseExcerpt ?? '');
      text = excerpt ? `${head}: ${excerpt}` : head;
      cutAtEnd = excerpt !== '' && excerptCut;
    }
    return { code, error: toErrorText(text, secrets, cutAtEnd), address: attempt.address };
  }

  /** `written`: the request had started on a connection that was up (its TLS done). */
  private classifyError(error: Error, status: number | null, written: boolean): { code: DeliveryErrorCode; message: string; address: string | null } {
    const failure = connectFailures.get(error);
    const code = errorCode(error);
    const address = failure?.address ?? addressOf(error);
    if (error instanceof BlockedAddressError) return { code: 'E_BLOCKED', message: error.message, address: null };
    if (error instanceof DnsError) return { code: 'E_DNS', message: error.message, address: null };
    if (error instanceof ConnectTimeoutError || TIMEOUT_CODES.has(code)) {
      return { code: 'E_TIMEOUT', message: `timeout after ${this.timeoutMs} ms`, address };
    }
    if (failure?.phase === 'tls' || isTlsErrorCode(code)) return { code: 'E_TLS', message: `TLS: ${describeTlsError(error)}`, address };
    // undici's HTTPParserError has no code (llhttp's error numbers are not mapped to names); its name tells.
    if (error.name === 'HTTPParserError' || INVALID_RESPONSE_CODES.has(code)) {
      return { code: 'E_HTTP', message: `invalid response: ${error.message}`, address };
    }
    if (code === 'UND_ERR_INVALID_ARG') return { code: 'E_HTTP', message: `request not sent: ${error.message}`, address };
    // undici's words for a status it did not ask for: a final 100 Continue, a 101 Switching Protocols.
    if (code === 'UND_ERR_SOCKET' && (error.message === 'bad response' || error.message === 'bad upgrade')) {
      return { code: 'E_HTTP', message: `invalid response: unexpected status (${error.message})`, address };
    }
    // The answer had begun, so the connection was up: it broke off mid-response (closed, reset).
    if (status !== null) return { code: 'E_HTTP', message: `invalid response: ${describeConnectError(error, code)}`, address };
    if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
      return { code: 'E_CONNECT', message: 'connect: the delivery client is closed', address };
    }
    // Connected, then closed or reset before any answer: the request may well have arrived.
    if (written) return { code: 'E_CONNECT', message: `no answer: ${describeConnectError(error, code)}`, address };
    return { code: 'E_CONNECT', message: `connect: ${describeConnectError(error, code)}`, address };
  }

  /** Resolves once, refuses if any address is forbidden, and hands Node only the checked addresses. */
  private readonly lookupChecked: LookupFunction = (hostname, options: LookupOptions, callback) => {
    this.resolveChecked(hostname).then(
      (addresses) => {
        const family = options.family === 4 || options.family === 6 ? options.family : null;
        const usable = family === null ? addresses : addresses.filter((entry) => entry.family === family);
        const first = usable[0];
        if (first === undefined) {
          callback(new DnsError(`DNS: ${hostname} has no IPv${family} address`), '', 0);
        } else if (options.all) {
          callback(null, usable);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (err: Error) => callback(err, '', 0),
    );
  };

  private async resolveChecked(hostname: string): Promise<ResolvedAddress[]> {
    let answers: ResolvedAddress[];
    try {
      answers = await this.resolve(hostname);
    } catch (err) {
      throw new DnsError(describeDnsError(hostname, err));
    }
    if (answers.length === 0) throw new DnsError(`DNS: ${hostname} has no addresses`);
    for (const { address } of answers) {
      const verdict = this.policy.checkAddress(address);
      if (!verdict.allowed) throw new BlockedAddressError(describeResolvedBlock(address, verdict.reason));
    }
    return answers.map(({ address }) => ({ address, family: isIP(address) === 6 ? 6 : 4 }));
  }

  /**
   * The connector of every pooled connection. IP literals skip the lookup in
   * net.connect, so they are checked here; names go through `lookupChecked`.
   */
  private readonly connectGuarded: buildConnector.connector = (options, callback) => {
    const { hostname } = options;
    const literal = isIP(hostname) !== 0;
    if (literal) {
      const verdict = this.policy.checkAddress(hostname);
      if (!verdict.allowed) {
        callback(new BlockedAddressError(verdict.reason), null);
        return;
      }
    }
    const port = Number(options.port) || 443;
    // SNI and the certificate check use the name; an IP literal is checked against the certificate's IP entries.
    const servername = literal ? undefined : (options.servername || hostname).replace(/\.$/, '');
    const sessionKey = `${servername ?? hostname}:${port}`;
    const socket: TLSSocket = connectTls({
      host: hostname,
      port,
      ...(servername === undefined ? {} : { servername }),
      ...(literal ? {} : { lookup: this.lookupChecked }),
      ...(this.secureContext === undefined ? {} : { secureContext: this.secureContext }),
      session: this.tlsSessions.get(sessionKey),
      ALPNProtocols: ['http/1.1'],
      // Said outright: left out, Node reads NODE_TLS_REJECT_UNAUTHORIZED, and "0" there would send to anyone.
      rejectUnauthorized: true,
    });

    let settled = false;
    let connectedAddress: string | null = null;
    const timer = setTimeout(() => socket.destroy(new ConnectTimeoutError()), this.timeoutMs);
    const settle = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      if (err === null) {
        callback(null, socket);
      } else {
        // Destroyed already; a late error must not go unhandled.
        socket.on('error', () => {}).destroy();
        callback(err, null);
      }
    };
    const onError = (err: Error): void => {
      if (!(err instanceof BlockedAddressError || err instanceof DnsError)) {
        connectFailures.set(err, { address: connectedAddress, phase: connectedAddress === null ? 'tcp' : 'tls' });
      }
      settle(err);
    };

    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.on('session', (session: Buffer) => this.rememberTlsSession(sessionKey, session));
    socket.once('connect', () => {
      connectedAddress = socket.remoteAddress ?? null;
      (options as TrackedConnectOptions)[kTcpConnected]?.(connectedAddress);
    });
    socket.once('secureConnect', () => settle(null));
    socket.on('error', onError);
  };

  private rememberTlsSession(key: string, session: Buffer): void {
    this.tlsSessions.delete(key);
    if (this.tlsSessions.size >= MAX_CACHED_TLS_SESSIONS) {
      const oldest = this.tlsSessions.keys().next();
      if (!oldest.done) this.tlsSessions.delete(oldest.value);
    }
    this.tlsSessions.set(key, session);
  }
}

// ---------------------------------------------------------------- name resolution

export interface HostResolverOptions {
  /** The delivery deadline: no lookup is started, nor waited for, past it. */
  timeoutMs: number;
  /** Nameservers (`address` or `address:port`) asked instead of the system's. */
  servers?: readonly string[];
  /** Asked for names the nameservers give no address of; default getaddrinfo (dns.lookup). */
  fallback?: HostResolver;
}

/** A HostResolver whose queries under way can be dropped when its client closes. */
export type ClosableHostResolver = HostResolver & { close(): void };

// c-ares asks every nameserver again when none answers, the wait doubling each round (1 + 2 + 4
// units for 3 tries). Once it has measured a nameserver's latency it waits 5× that per try instead
// (250 ms to 5 s: a fast nameserver's query gives up after 2–3 s), which is why a query that timed
// out is asked again while the DNS budget lasts (DNS_BUDGET).
const DNS_TRIES = 3;
const DNS_WAIT_UNITS = 7;
const MIN_DNS_TRY_MS = 250;

// c-ares's codes for "no such name" and "no address of this family".
const NO_ADDRESS_CODES = new Set(['ENOTFOUND', 'ENODATA']);
// No nameserver to ask (none reachable, or refusing): the system resolver may know the name from
// /etc/hosts. A nameserver that fails the name or never answers is not worth a thread.
const ASK_THE_SYSTEM = new Set(['ECONNREFUSED', 'EREFUSED']);
// Of the delivery deadline, what resolving may take: a name that a slow nameserver answers late
// (a cold lookup behind a dead authoritative server) is asked again, thread-free, until then.
const DNS_BUDGET = 0.5;

/**
 * Resolves A and AAAA with c-ares, whose queries wait on sockets of the event loop, not in a
 * thread: getaddrinfo holds a libuv thread until the system resolver gives up (~20 s when a
 * nameserver never answers), so a few dead domains would take the whole pool and stall every
 * other delivery and the PostgreSQL and Redis connections with it.
 *
 * When the nameservers say the name has no address (it is only in /etc/hosts or under a search
 * domain), or no nameserver can be reached, the system resolver is asked as before, a few lookups
 * at a time per process, one per name: what holds those threads is bounded, and names the
 * nameservers answer never wait for it. A nameserver that never answers is given up on, thread-free.
 */
export function createHostResolver(options: HostResolverOptions): ClosableHostResolver {
  // Every try asks every nameserver: all of it takes about half the deadline, so a query that goes
  // unanswered ends on its own, as E_DNS, while the delivery could still have connected.
  const serverCount = Math.max(1, (options.servers ?? getServers()).length);
  const tryMs = Math.max(MIN_DNS_TRY_MS, Math.round(options.timeoutMs / 2 / DNS_WAIT_UNITS / serverCount));
  const resolver = new Resolver({ timeout: tryMs, tries: DNS_TRIES });
  if (options.servers) resolver.setServers(options.servers);
  const fallback = options.fallback ?? lookupWithSystem;
  const systemLookups = new Map<string, Promise<ResolvedAddress[]>>();

  const askSystem = (hostname: string, deadline: number): Promise<ResolvedAddress[]> => {
    let pending = systemLookups.get(hostname);
    if (pending === undefined) {
      pending = systemLookupSlots.run(() => fallback(hostname), deadline);
      systemLookups.set(hostname, pending);
      const forget = (): void => {
        systemLookups.delete(hostname);
      };
      pending.then(forget, forget);
    }
    return pending;
  };

  const resolve = async (hostname: string): Promise<ResolvedAddress[]> => {
    const started = Date.now();
    const deadline = started + options.timeoutMs;
    for (;;) {
      const roundStarted = Date.now();
      const [v4, v6] = await bothFamilies(resolver.resolve4(hostname), resolver.resolve6(hostname));
      const addresses: ResolvedAddress[] = [];
      const failures: Error[] = [];
      // IPv4 first: net.connect tries the first address's family first (then alternates), and many hosts route no IPv6.
      for (const [family, answer] of [[4, v4], [6, v6]] as const) {
        if (answer.status === 'fulfilled') {
          for (const address of answer.value) addresses.push({ address, family });
        } else if (!NO_ADDRESS_CODES.has(errorCode(answer.reason as Error))) {
          failures.push(answer.reason as Error);
        }
      }
      // A family that failed or is late (timeout, SERVFAIL) is never connected to; every address of the other is checked.
      if (addresses.length > 0) return addresses;
      const codes = failures.map(errorCode);
      // Asked again only if a round as long as this one still fits the budget: a cold c-ares's one
      // round already takes about all of it, and a second would run into the delivery's deadline.
      const now = Date.now();
      if (codes.includes('ETIMEOUT') && !closed && now + (now - roundStarted) <= started + options.timeoutMs * DNS_BUDGET) continue;
      if (!codes.every((code) => ASK_THE_SYSTEM.has(code))) throw failures[codes.indexOf('ETIMEOUT')] ?? failures[0];
      if (Date.now() >= deadline) throw Object.assign(new Error('no address in time'), { code: 'ETIMEOUT' });
      return askSystem(hostname, deadline);
    }
  };
  let closed = false;
  return Object.assign(resolve, {
    close: () => {
      closed = true;
      resolver.cancel();
    },
  });
}

// Once one family has answered with addresses, the other is waited for this much longer at most
// (an AAAA query a middlebox drops would otherwise hold the delivery for c-ares's every try).
const OTHER_FAMILY_GRACE_MS = 300;
const LATE: PromiseSettledResult<string[]> = { status: 'rejected', reason: Object.assign(new Error('no answer in time'), { code: 'ETIMEOUT' }) };

/** Both answers, or, once one holds addresses, whatever the other gave within OTHER_FAMILY_GRACE_MS (else LATE). */
function bothFamilies(v4: Promise<string[]>, v6: Promise<string[]>): Promise<[PromiseSettledResult<string[]>, PromiseSettledResult<string[]>]> {
  return new Promise((resolve) => {
    const results: Array<PromiseSettledResult<string[]> | undefined> = [undefined, undefined];
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      resolve([results[0] ?? LATE, results[1] ?? LATE]);
    };
    [v4, v6].forEach((query, i) => {
      void Promise.allSettled([query]).then(([result]) => {
        results[i] = result;
        if (results[0] !== undefined && results[1] !== undefined) finish();
        else if (result!.status === 'fulfilled' && result!.value.length > 0) timer ??= setTimeout(finish, OTHER_FAMILY_GRACE_MS);
      });
    });
  });
}

async function lookupWithSystem(hostname: string): Promise<ResolvedAddress[]> {
  const answers: LookupAddress[] = await lookupWithGetaddrinfo(hostname, { all: true, verbatim: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
}

/**
 * Runs at most `size` tasks at once; the others wait their turn, each until its `deadline`
 * (ms since epoch), so a lookup whose delivery has ended meanwhile never starts.
 */
class TaskSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  run<T>(task: () => Promise<T>, deadline: number): Promise<T> {
    if (this.running < this.size) return this.start(task);
    return new Promise<T>((resolve, reject) => {
      const begin = (): void => {
        clearTimeout(timer);
        this.start(task).then(resolve, reject);
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(begin), 1);
        reject(Object.assign(new Error(`all ${this.size} system lookups are busy`), { code: LOOKUPS_BUSY }));
      }, Math.max(0, deadline - Date.now()));
      this.waiting.push(begin);
    });
  }

  private async start<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

const LOOKUPS_BUSY = 'ELOOKUPSBUSY';

// The libuv pool is the process's, shared with PostgreSQL, Redis, fs and crypto: getaddrinfo gets a few threads of it.
const MAX_SYSTEM_LOOKUPS = 8;
const systemLookupSlots = new TaskSlots(MAX_SYSTEM_LOOKUPS);

// ---------------------------------------------------------------- helpers

/**
 * Node's bundled roots, the certificates of NODE_EXTRA_CA_CERTS, then WEBHOOK_CA_FILE's. Node adds
 * NODE_EXTRA_CA_CERTS to its default store, but a context given its own `ca` list starts from
 * none: without this, setting WEBHOOK_CA_FILE would silently drop them.
 */
function trustedCas(extra: string): string[] {
  const cas = [...rootCertificates];
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (file) {
    try {
      cas.push(readFileSync(file, 'utf8'));
    } catch {
      // Node itself only warns at start about a file it cannot read.
    }
  }
  cas.push(extra);
  return cas;
}

/** "resolves to 10.0.0.5, which is a private address": the policy's reason names the address first. */
function describeResolvedBlock(address: string, reason: string): string {
  const canonical = parseIpLiteral(address) ?? address;
  return reason.startsWith(`${canonical} `) ? `resolves to ${address}, which ${reason.slice(canonical.length + 1)}` : `resolves to ${address}; ${reason}`;
}

/**
 * One result, always built with the same shape: V8 (Node 20) gives an object spread into a
 * literal with more properties a hidden class of its own each time, ~1.5 µs per delivery.
 */
export function attemptResult(
  errorCode: DeliveryErrorCode | null,
  error: string | null,
  httpStatus: number | null,
  address: string | null,
  durationMs: number,
  responseExcerpt: string | null,
): DeliveryResult {
  return { ok: errorCode === null, httpStatus, errorCode, error, address, durationMs, responseExcerpt };
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

const INVALID_RESPONSE_CODES = new Set([
  'UND_ERR_HEADERS_OVERFLOW',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'UND_ERR_INFO',
]);

// OpenSSL's certificate verification results, as Node reports them in `code`.
const CERTIFICATE_ERROR_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

function isTlsErrorCode(code: string): boolean {
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || CERTIFICATE_ERROR_CODES.has(code);
}

/** OpenSSL's own messages carry a code address and source path; its `reason` is the readable part. */
function describeTlsError(error: Error): string {
  const reason = (error as { reason?: unknown }).reason;
  return typeof reason === 'string' && reason !== '' && (error as { library?: unknown }).library !== undefined ? reason : error.message;
}

function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy eyeballs reports an AggregateError of the attempts; the first one speaks for them.
  if (error instanceof AggregateError && error.errors[0] instanceof Error) return errorCode(error.errors[0]);
  return '';
}

function addressOf(error: Error): string | null {
  const address = (error as { address?: unknown }).address;
  if (typeof address === 'string') return address;
  if (error instanceof AggregateError && error.errors[0] instanceof Error) return addressOf(error.errors[0]);
  return null;
}

const CONNECT_ERROR_PHRASES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ECONNABORTED: 'connection aborted',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  ENETDOWN: 'network down',
  ETIMEDOUT: 'connection timed out',
  EADDRNOTAVAIL: 'address not available',
  EPIPE: 'connection closed while sending',
};

function describeConnectError(error: Error, code: string): string {
  const phrase = CONNECT_ERROR_PHRASES[code];
  if (phrase === undefined) return error.message || code || 'connection failed';
  const address = addressOf(error);
  const port = (error as { port?: unknown }).port;
  if (address === null) return `${phrase} (${code})`;
  const where = typeof port === 'number' ? `${address.includes(':') ? `[${address}]` : address}:${port}` : address;
  return `${phrase} by ${where} (${code})`;
}

// getaddrinfo's and c-ares's codes for lookups that may succeed another time.
const DNS_ERROR_PHRASES: Record<string, string> = {
  EAI_AGAIN: 'temporary failure resolving',
  ETIMEOUT: 'timeout resolving',
  ESERVFAIL: 'nameserver failure resolving',
  EREFUSED: 'nameserver refused to resolve',
  ECONNREFUSED: 'no nameserver reachable to resolve',
  [LOOKUPS_BUSY]: 'system lookups all busy, could not resolve',
};

function describeDnsError(hostname: string, err: unknown): string {
  const code = err instanceof Error ? errorCode(err) : '';
  if (code === 'ENOTFOUND' || code === 'ENODATA') return `DNS: ${hostname} not found (${code})`;
  const phrase = DNS_ERROR_PHRASES[code];
  if (phrase !== undefined) return `DNS: ${phrase} ${hostname} (${code})`;
  const detail = code || (err instanceof Error ? err.message : String(err));
  return `DNS: cannot resolve ${hostname} (${detail})`;
}

/**
 * Request header values that could be secrets (tokens, signatures), for scrubbing from error texts:
 * each whole, and each of its words of 8 characters or more, since endpoints echo the credentials of
 * `Bearer <token>` or the signature of `v1,<signature>` without the rest.
 */
function secretValues(headers: Readonly<Record<string, string>>): string[] {
  return Object.entries(headers)
    .filter(([name, value]) => !PUBLIC_HEADERS.has(name.toLowerCase()) && value.trim().length >= 4)
    .flatMap(([, value]) => {
      const whole = value.trim();
      const words = whole.split(/[\s,]+/).filter((word) => word.length >= SECRET_WORD_MIN_CHARS && word !== whole);
      return [whole, ...words].flatMap((sent) => {
        // Sent as Latin-1 bytes; echoed back, they read as UTF-8 (`é` as U+FFFD).
        const echoed = Buffer.from(sent, 'latin1').toString('utf8');
        return echoed === sent ? [sent] : [sent, echoed];
      });
    })
    .sort((a, b) => b.length - a.length);
}

/** The shortest word of a header value masked on its own (see secretValues). */
const SECRET_WORD_MIN_CHARS = 8;

/**
 * One line of at most ERROR_TEXT_MAX_CHARS characters, with request header values masked.
 * `cutAtEnd`: the text was cut short at its end (see maskSecrets).
 */
function toErrorText(text: string, secrets: readonly string[], cutAtEnd = false): string {
  return cutChars(maskSecrets(oneLine(text), secrets, cutAtEnd), ERROR_TEXT_MAX_CHARS);
}

/**
 * Replaces each value with "***" in any letter case (endpoints echo them upper-cased too), also
 * as oneLine collapsed it. `cutAtEnd`: the line stops where its source was cut, so a start of a
 * value (4 characters or more) ending it is masked too.
 */
function maskSecrets(line: string, secrets: readonly string[], cutAtEnd: boolean): string {
  let masked = line;
  for (const secret of secrets) {
    const collapsed = oneLine(secret);
    const spellings = collapsed !== secret && collapsed.length >= 4 ? [secret, collapsed] : [secret];
    for (const value of spellings) {
      masked = maskEvery(masked, value);
      if (cutAtEnd) masked = maskCutStart(masked, value);
    }
  }
  return masked;
}

/**
 * Lower case, one UTF-16 unit for one: U+0130 (İ) is the one character whose lower case is
 * longer (i + a combining dot), which would shift every position after it.
 */
function foldCase(text: string): string {
  return text.replace(/\u0130/g, 'I').toLowerCase();
}

/** Every occurrence of `value` in any letter case masked; a string search, linear in practice. */
function maskEvery(line: string, value: string): string {
  if (value.length > line.length) return line;
  const haystack = foldCase(line);
  const needle = foldCase(value);
  let masked = '';
  let from = 0;
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + needle.length)) {
    masked += `${line.slice(from, at)}***`;
    from = at + needle.length;
  }
  return from === 0 ? line : masked + line.slice(from);
}

/**
 * `line` with its longest ending that is a start (≥ 4 characters, any letter case) of `value`
 * masked. One pass of the prefix function over value + separator + the line's last characters:
 * linear, as both are the endpoint's and the tenant's to make long.
 */
function maskCutStart(line: string, value: string): string {
  const tail = line.slice(-(value.length - 1) || line.length);
  const text = `${foldCase(value)}\u0000${foldCase(tail)}`;
  const border = new Int32Array(text.length);
  for (let i = 1; i < text.length; i++) {
    let k = border[i - 1]!;
    while (k > 0 && text[i] !== text[k]) k = border[k - 1]!;
    if (text[i] === text[k]) k++;
    border[i] = k;
  }
  const matched = border[text.length - 1]!;
  return matched >= 4 ? `${line.slice(0, line.length - matched)}***` : line;
}

// Control characters, and the Unicode line and paragraph separators, end lines in some viewers.
const LINE_BREAKING = /[\s\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g; // eslint-disable-line no-control-regex

function oneLine(text: string): string {
  return text.replace(LINE_BREAKING, ' ').trim();
}

/** At most `max` UTF-16 units, ending in "…" when cut, never splitting a surrogate pair. */
function cutChars(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/**
 * At most `limit` bytes of `bytes` as UTF-8 text: a character straddling the limit is
 * dropped whole, invalid sequences and NUL (refused by PostgreSQL text) become U+FFFD,
 * and the result is cut again if the replacements made it longer than `limit` bytes.
 */
export function utf8Excerpt(bytes: Buffer, limit: number): string {
  const text = bytes.subarray(0, utf8Boundary(bytes, limit)).toString('utf8').replace(/\u0000/g, '\uFFFD'); // eslint-disable-line no-control-regex
  if (Buffer.byteLength(text, 'utf8') <= limit) return text;
  const encoded = Buffer.from(text, 'utf8');
  return encoded.subarray(0, utf8Boundary(encoded, limit)).toString('utf8');
}

/** The largest cut ≤ limit that does not fall inside a well-formed multibyte character. */
function utf8Boundary(bytes: Buffer, limit: number): number {
  if (bytes.length <= limit) return bytes.length;
  let start = limit;
  // Continuation bytes are 10xxxxxx; a character is at most 4 bytes.
  while (start > limit - 3 && start > 0 && ((bytes[start] ?? 0) & 0xc0) === 0x80) start--;
  return ((bytes[start] ?? 0) & 0xc0) === 0x80 ? limit : start;
}
