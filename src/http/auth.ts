import type { Context } from 'koa';
import type { Actor } from '../events/actor.js';
import { AppError } from './errors.js';

export type Authenticate = (token: string) => Promise<Actor | undefined>;

const unauthorized = (message: string) => new AppError('unauthorized', message);

/** The request's Bearer token: missing, repeated or malformed → 401. */
export function bearerToken(ctx: Context): string {
  const header = soleAuthorization(ctx);
  if (header === null) throw unauthorized('more than one Authorization header: send exactly one, "Authorization: Bearer <token>"');
  if (!header) throw unauthorized('missing Authorization header: send "Authorization: Bearer <token>"');
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
  return match[1]!;
}

/** The actor behind an enabled API key: unknown, disabled or deleted → 401. */
export async function actorFor(authenticate: Authenticate, token: string): Promise<Actor> {
  const actor = await authenticate(token);
  if (!actor) throw unauthorized('unknown, disabled or deleted API key');
  return actor;
}

/**
 * The request's Authorization header, '' when there is none, or null when it came more than once:
 * Node keeps only the first, and a proxy in front may have judged the request by another.
 */
export function soleAuthorization(ctx: Context): string | null {
  const raw = ctx.req.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 13 && raw[i]!.toLowerCase() === 'authorization') seen++;
  return seen > 1 ? null : ctx.get('authorization');
}

/** The authenticated actor of a request under /api/v1. */
export function actorOf(ctx: Context): Actor {
  const actor = ctx.state.actor as Actor | undefined;
  if (!actor) throw new Error('route mounted outside the authenticated /api/v1');
  return actor;
}
