import Koa, { type Middleware } from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logger.js';
import { actorFor, bearerToken, type Authenticate } from './auth.js';
import { parseJsonBody, readJsonText } from './body.js';
import { ProjectGate } from './project-gate.js';
import { AppError } from './errors.js';
import { errorAnswers, requestLog, type RequestObserver } from './middleware.js';

export interface AppParts {
  log: Logger;
  authenticate: Authenticate;
  /** Routers mounted under /api/v1, behind Bearer authentication. */
  apiRouters: Router[];
  /** Routers outside /api/v1 (dashboard, health, metrics), each guarding itself. */
  publicRouters?: Router[];
  /** Middleware before every route (Bull Board, which guards its own path). */
  middleware?: Middleware[];
  /** Told of every answered request, for metrics. */
  onRequest?: RequestObserver;
}

/** Paths of the API (`/api/…`), and of its authenticated version 1, in any letter case as the router matches them. */
const API_PATH = /^\/api\//i;
const API_V1_PATH = /^\/api\/v1(?:\/|$)/i;

/**
 * Requests of one project handled at once by one api process, well under its 10 database
 * connections (createDb's pool), so that no project's pile-up takes them all (see ProjectGate).
 */
export const PROJECT_REQUESTS_AT_ONCE = 4;
/** How long a request waits for its project's turn: as long as one would for a connection of the pool. */
const PROJECT_TURN_WAIT_MS = 10_000;

export function createApp(parts: AppParts): Koa {
  const app = new Koa({ proxy: false });
  const projects = new ProjectGate(PROJECT_REQUESTS_AT_ONCE, PROJECT_TURN_WAIT_MS);
  app.silent = true; // errorAnswers logs what matters; Koa's default stderr dump would print stacks.
  app.use(async (ctx, next) => {
    // Every answer is what its Content-Type says (an error repeats the path it was asked for).
    ctx.set('X-Content-Type-Options', 'nosniff');
    // API answers are per token and can hold one (a new API key's): never kept by a cache.
    if (API_PATH.test(ctx.path)) ctx.set('Cache-Control', 'no-store');
    await next();
  });
  app.use(requestLog(parts.log, parts.onRequest));
  app.use(errorAnswers(parts.log));
  for (const middleware of parts.middleware ?? []) app.use(middleware);

  // The key is checked before routing, for every path under /api/v1 in any letter case: the router
  // matches routes case-insensitively but its own `use` case-sensitively (`/API/v1/project` reached
  // its handler unauthenticated), and an unknown route or method without a key is 401, not 404/405.
  app.use(async (ctx, next) => {
    if (!API_V1_PATH.test(ctx.path)) return next();
    const token = bearerToken(ctx);
    // Looked up before the body is read: an unknown key gets to send none of its megabyte.
    const actor = await actorFor(parts.authenticate, token);
    const raw = await readJsonText(ctx);
    return projects.run(actor.projectId, async () => {
      // A change looks its key up again once its turn has come: the body can take minutes to arrive,
      // and the turn a while, and a key disabled or deleted meanwhile must not get its change in
      // after the revoke was answered.
      ctx.state.actor = ctx.method === 'GET' || ctx.method === 'HEAD' ? actor : await actorFor(parts.authenticate, token);
      parseJsonBody(ctx, raw);
      return next();
    });
  });
  const api = new Router({ prefix: '/api/v1' });
  for (const router of parts.apiRouters) api.use(router.routes(), allowedMethods(router));
  app.use(api.routes());
  app.use(allowedMethods(api));

  for (const router of parts.publicRouters ?? []) {
    app.use(router.routes());
    app.use(allowedMethods(router));
  }
  return app;
}

/**
 * A method the route does not have: `405 method_not_allowed` naming the methods it has, which the
 * `Allow` header (RFC 9110) lists too; the router's own errors say only "Method Not Allowed".
 */
function allowedMethods(router: Router): Middleware {
  const answer = router.allowedMethods() as Middleware;
  return async (ctx, next) => {
    await answer(ctx, next);
    if (ctx.status !== 405 && ctx.status !== 501) return;
    throw new AppError('method_not_allowed', `${ctx.method} is not allowed here; ${ctx.path} allows ${ctx.response.get('Allow')}`);
  };
}
