import type { Context } from 'koa';
import { AppError } from './errors.js';

export const BODY_LIMIT_BYTES = 1024 * 1024;

declare module 'koa' {
  interface Request {
    /** The parsed JSON body; undefined when the request had none. */
    body?: unknown;
  }
}

/**
 * The body's text, at most 1 MiB: `413 payload_too_large` beyond, `400 invalid_json` when it is
 * compressed or not UTF-8. Undefined for methods that take no body (GET, HEAD, DELETE).
 */
export async function readJsonText(ctx: Context): Promise<string | undefined> {
  if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.method === 'DELETE') return undefined;
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > BODY_LIMIT_BYTES) throw tooLarge();
  const encoding = ctx.get('content-encoding').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    ctx.set('Connection', 'close'); // the body is left unread
    throw new AppError('invalid_json', `the request body is sent with Content-Encoding: ${ctx.get('content-encoding')}, which is not accepted: send the JSON uncompressed`);
  }
  return utf8(await readBody(ctx));
}

/** Parses what `readJsonText` read into `ctx.request.body` (left undefined for an empty body); `400 invalid_json` when it does not parse. */
export function parseJsonBody(ctx: Context, raw: string | undefined): void {
  if (raw === undefined || raw.trim() === '') return;
  try {
    ctx.request.body = JSON.parse(raw);
  } catch (err) {
    throw new AppError('invalid_json', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The body as text. JSON is UTF-8 (RFC 8259), whatever charset a Content-Type names: bytes that
 * are not UTF-8 are refused rather than read as U+FFFD, which would store a changed text. A
 * leading byte order mark is dropped.
 */
function utf8(body: Buffer): string {
  try {
    return strictUtf8.decode(body);
  } catch {
    throw new AppError('invalid_json', 'the request body is not valid UTF-8 (JSON is always sent as UTF-8)');
  }
}

async function readBody(ctx: Context): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > BODY_LIMIT_BYTES) {
        // Stop reading; Koa closes the connection after answering when the request was not drained.
        ctx.req.unpipe();
        ctx.set('Connection', 'close');
        throw tooLarge();
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    // The client closed the connection before the whole body came ("aborted", ECONNRESET): its
    // request, not a system error of ours, which would be taken for PostgreSQL going away.
    throw new AppError('invalid_json', 'the request body ended early: the connection closed before all of it arrived');
  }
  return Buffer.concat(chunks);
}

const tooLarge = (): AppError => new AppError('payload_too_large', `the request body exceeds ${BODY_LIMIT_BYTES} bytes`);
