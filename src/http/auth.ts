import type { Context, Next } from 'koa';
import type { Actor } from '../events/actor.js';
import { AppError } from './errors.js';

export type Authenticate = (token: string) => Promise<Actor | undefined>;

const unauthorized = (message: string) => new AppError('unauthorized', message);

/** Bearer authentication by API key: missing, malformed, unknown, disabled or deleted → 401. */
export function requireApiKey(authenticate: Authenticate) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const header = soleAuthorization(ctx);
    if (header === null) throw unauthorized('more than one Authorization header: send exactly one, "Authorization: Bearer <token>"');
    if (!header) throw unauthorized('missing Authorization header: send "Authorization: Bearer <token>"');
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (!match) throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
    const actor = await authenticate(match[1]!);
    if (!actor) throw unauthorized('unknown, disabled or deleted API key');
    ctx.state.actor = actor;
    return next();
  };
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

/** The authenticated actor of a request that passed `requireApiKey`. */
export function actorOf(ctx: Context): Actor {
  const actor = ctx.state.actor as Actor | undefined;
  if (!actor) throw new Error('route mounted without requireApiKey');
  return actor;
}
