import type { Context, Next } from 'koa';
import { AppError } from './errors.js';

export const BODY_LIMIT_BYTES = 1024 * 1024;

declare module 'koa' {
  interface Request {
    /** The parsed JSON body; undefined when the request had none. */
    body?: unknown;
  }
}

/** Reads a JSON body of at most 1 MiB; `413 payload_too_large` beyond, `400 invalid_json` when it does not parse. */
export async function jsonBody(ctx: Context, next: Next): Promise<void> {
  if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.method === 'DELETE') return next();
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > BODY_LIMIT_BYTES) throw tooLarge();
  const raw = await readBody(ctx);
  if (raw.trim() !== '') {
    try {
      ctx.request.body = JSON.parse(raw);
    } catch (err) {
      throw new AppError('invalid_json', `the request body is not valid JSON: ${(err as Error).message}`);
    }
  }
  return next();
}

async function readBody(ctx: Context): Promise<string> {
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
  return Buffer.concat(chunks).toString('utf8');
}

const tooLarge = (): AppError => new AppError('payload_too_large', `the request body exceeds ${BODY_LIMIT_BYTES} bytes`);
