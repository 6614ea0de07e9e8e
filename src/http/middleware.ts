import type { Context, Next } from 'koa';
import { ValidationError } from 'yup';
import type { Actor } from '../events/actor.js';
import type { Logger } from '../logger.js';
import { isConnectionError, PG_CHARACTER_NOT_IN_REPERTOIRE, PG_FOREIGN_KEY_VIOLATION, PG_LOCK_NOT_AVAILABLE, pgErrorCode } from '../db/errors.js';
import { AppError, validationFailed } from './errors.js';
import { detailsOf } from './validation.js';

export type RequestObserver = (request: { method: string; route: string; status: number; seconds: number }) => void;

/**
 * One JSON log line per request: method, path, status, ms, and for a request whose key was
 * accepted its project and key ids (which key made a change: events name only the key's user).
 * Never headers, query strings or bodies.
 */
export function requestLog(log: Logger, observe?: RequestObserver) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = performance.now() - started;
      const actor = ctx.state.actor as Actor | undefined;
      const who = actor ? { projectId: actor.projectId, apiKeyId: actor.apiKeyId } : {};
      const line = { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10, ...who };
      // Probes and scrapes come every few seconds from the platform, not from users: at debug.
      if (PROBE_PATHS.has(ctx.path) && ctx.status < 500) log.debug(line, 'request');
      else log.info(line, 'request');
      // The route pattern (/api/v1/flags/:id), not the path, so ids do not explode the label set. A
      // request refused before routing (its key, its project's turn, its body) is still an API one.
      const matched = (ctx as Context & { _matchedRoute?: string })._matchedRoute;
      const route = matched ?? (API_V1_PREFIX.test(ctx.path) ? '/api/v1/*' : 'unmatched');
      observe?.({ method: ctx.method, route, status: ctx.status, seconds: ms / 1000 });
    }
  };
}

const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
const API_V1_PREFIX = /^\/api\/v1(?:\/|$)/i;

/** How long an api statement waits for a lock (PostgreSQL's lock_timeout on the api's connections). */
export const CHANGE_LOCK_WAIT_MS = 5_000;

/** Turns every error into SPEC §9's JSON; unknown errors become `internal` and are logged, never shown. */
export function errorAnswers(log: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AppError('not_found', `no route for ${ctx.method} ${ctx.path}`);
    } catch (err) {
      const answer = toAppError(err);
      if (answer.code === 'internal') log.error({ err, method: ctx.method, path: ctx.path }, 'request failed');
      else if (answer.code === 'unavailable' && !(err instanceof AppError)) {
        log.warn({ err: (err as Error).message, method: ctx.method, path: ctx.path }, 'request failed: PostgreSQL unreachable');
      }
      ctx.status = answer.status;
      ctx.body = answer.toJSON();
      if (answer.status === 401) ctx.set('WWW-Authenticate', 'Bearer');
      // Every 503 is worth trying again soon (a failover, a busy row, a project's turn): say when.
      if (answer.status === 503) ctx.set('Retry-After', '1');
    }
  };
}

function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof ValidationError) return new AppError('validation_failed', 'invalid request', detailsOf(err));
  const status = (err as { status?: number }).status;
  // PostgreSQL unreachable (a restart, a failover): the request may be tried again, as /readyz says.
  if (status === undefined && isConnectionError(err)) return new AppError('unavailable', 'the database cannot be reached; try again shortly');
  // A row or table this change needs stayed locked by another past the api's lock_timeout: a pile-up
  // of changes to one row, which would otherwise hold a connection each for as long as it lasted.
  if (pgErrorCode(err) === PG_LOCK_NOT_AVAILABLE) {
    return new AppError('unavailable', `another change holds what this one changes, for over ${CHANGE_LOCK_WAIT_MS / 1000} s; try again shortly`);
  }
  // A row this change refers to (an environment, a segment) was deleted by a request that committed first.
  if (pgErrorCode(err) === PG_FOREIGN_KEY_VIOLATION) {
    return new AppError('conflict', 'something this request refers to was deleted meanwhile; read it again and retry');
  }
  // Text PostgreSQL cannot store; the schemas refuse it by field first, this catches what they miss.
  if (pgErrorCode(err) === PG_CHARACTER_NOT_IN_REPERTOIRE) {
    return validationFailed([{ path: '', message: 'a text value holds the NUL character (\\u0000), which cannot be stored' }]);
  }
  // Errors Koa or the router raise on purpose (405, 501, a client that went away) carry an HTTP status.
  if (status === 404) return new AppError('not_found', 'not found');
  if (status === 405 || status === 501) return new AppError('method_not_allowed', (err as Error).message);
  return new AppError('internal', 'internal error');
}
