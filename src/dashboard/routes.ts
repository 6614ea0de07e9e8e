import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** The static files live beside this module under tsx, and under src/ when running compiled from dist/. */
function publicDir(): string {
  const here = fileURLToPath(new URL('./public/', import.meta.url));
  return existsSync(here) ? here : fileURLToPath(new URL('../../../src/dashboard/public/', import.meta.url));
}

/** The dashboard: a static page that talks to /api/v1 with the token the user pastes. */
export function dashboardRoutes(): Router {
  const root = publicDir();
  const router = new Router();
  router.get(['/', '/dashboard/:file'], async (ctx) => {
    const file = ctx.params.file ?? 'index.html';
    const path = normalize(join(root, file));
    if (!path.startsWith(root) || !(extname(path) in TYPES)) return;
    try {
      ctx.body = await readFile(path);
    } catch {
      return; // 404 via the error middleware
    }
    ctx.type = TYPES[extname(path)]!;
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  });
  return router;
}
