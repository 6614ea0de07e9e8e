import Router from '@koa/router';
import { within } from './deadline.js';

export type Check = () => Promise<unknown>;

/** A check's answer that the service is there but not ready to serve: its message is shown as it is. */
export class NotReady extends Error {}

const CHECK_TIMEOUT_MS = 2_000;

/** /healthz: the process answers. /readyz: every check passes too (PostgreSQL and Redis answer, the schema is migrated); 503 names the one that does not. */
export function healthRoutes(checks: Record<string, Check>): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const results = await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await probe(check)] as const));
    const ready = results.every(([, result]) => result === 'ok');
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
