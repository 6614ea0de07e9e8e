import Router from '@koa/router';
import { within } from './deadline.js';

export type Check = () => Promise<unknown>;

/** A check's answer that the service is there but not ready to serve: its message is shown as it is. */
export class NotReady extends Error {}

const CHECK_TIMEOUT_MS = 2_000;

/**
 * /healthz: the process answers. /readyz: every check passes too (PostgreSQL and Redis answer, the
 * schema is migrated); 503 names the one that does not. `?optional=redis` (a comma list of check
 * names) still reports those checks but answers 200 without them: the api's readiness probe, as
 * the api takes changes while Redis is down (its relay queues them later), and a probe failing on
 * a dependency every pod shares would take every pod out of service at once.
 */
export function healthRoutes(checks: Record<string, Check>): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const results = await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await probe(check)] as const));
    const optional = new Set(String(ctx.query.optional ?? '').split(',').map((name) => name.trim()));
    const ready = results.every(([name, result]) => result === 'ok' || optional.has(name));
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable', ...Object.fromEntries(results) };
  });
  return router;
}

async function probe(check: Check): Promise<string> {
  try {
    await within(check(), CHECK_TIMEOUT_MS);
    return 'ok';
  } catch (err) {
    if (err instanceof NotReady) return err.message;
    const code = (err as { code?: string }).code;
    return `unreachable: ${code ?? (err as Error).message}`;
  }
}
