import Koa, { type Middleware } from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logger.js';
import { requireApiKey, type Authenticate } from './auth.js';
import { jsonBody } from './body.js';
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

export function createApp(parts: AppParts): Koa {
  const app = new Koa({ proxy: false });
  app.silent = true; // errorAnswers logs what matters; Koa's default stderr dump would print stacks.
  app.use(async (ctx, next) => {
    // Every answer is what its Content-Type says (an error repeats the path it was asked for).
    ctx.set('X-Content-Type-Options', 'nosniff');
    // API answers are per token and can hold one (a new API key's): never kept by a cache.
    if (ctx.path.startsWith('/api/')) ctx.set('Cache-Control', 'no-store');
    await next();
  });
  app.use(requestLog(parts.log, parts.onRequest));
  app.use(errorAnswers(parts.log));
  for (const middleware of parts.middleware ?? []) app.use(middleware);

  const api = new Router({ prefix: '/api/v1' });
  api.use(requireApiKey(parts.authenticate));
  api.use(jsonBody);
  for (const router of parts.apiRouters) api.use(router.routes(), router.allowedMethods({ throw: true }));
  app.use(api.routes());
  app.use(api.allowedMethods({ throw: true }));

  for (const router of parts.publicRouters ?? []) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  return app;
}
