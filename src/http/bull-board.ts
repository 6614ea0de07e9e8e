import { timingSafeEqual, createHash } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Queue } from 'bullmq';
import type { Context, Middleware, Next } from 'koa';
import { soleAuthorization } from './auth.js';

export const BULL_BOARD_PATH = '/admin/queues';

/**
 * Bull Board, read-only, behind HTTP basic auth. Without ADMIN_PASSWORD it does
 * not exist: every path under it answers 404, as if it were never mounted.
 */
export function bullBoard(queue: Queue, admin: { user: string; password: string | null }): Middleware {
  if (admin.password === null) {
    return async (ctx: Context, next: Next) => {
      if (isUnder(ctx.path)) return; // falls through to the 404 answer
      return next();
    };
  }
  const serverAdapter = new KoaAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue, { readOnlyMode: true })],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'mozhno deliveries' } },
  });
  const board = serverAdapter.registerPlugin() as Middleware;
  const expected = digest(`${admin.user}:${admin.password}`);
  return async (ctx: Context, next: Next) => {
    if (!isUnder(ctx.path)) return next();
    if (!authorized(soleAuthorization(ctx), expected)) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Basic realm="mozhno admin", charset="UTF-8"');
      ctx.body = { error: { code: 'unauthorized', message: 'Bull Board needs the ADMIN_USER and ADMIN_PASSWORD credentials' } };
      return;
    }
    await board(ctx, next);
    // Job data names users (their emails): kept in no browser's or proxy's cache.
    ctx.set('Cache-Control', 'no-store');
    // Its page loads only what it serves itself: no other site learns when an operator looks
    // (Bull Board's page asks Google for its fonts; the browser's own fonts stand in), and no
    // other page may frame it.
    ctx.set('Content-Security-Policy', BOARD_CSP);
  };
}

const BOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'none'";

function isUnder(path: string): boolean {
  return path === BULL_BOARD_PATH || path.startsWith(`${BULL_BOARD_PATH}/`);
}

/** Compares fixed-length digests in constant time, so neither the length nor a prefix of the password leaks through timing. */
function authorized(header: string | null, expected: Buffer): boolean {
  if (header === null) return false; // sent twice
  const match = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!match) return false;
  return timingSafeEqual(digest(Buffer.from(match[1]!, 'base64').toString('utf8')), expected);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
