import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Where an error carries the values of a row or statement, none of them is logged: PostgreSQL's
 * `detail` ("Failing row contains (…)", which lists an integration's secret and header values
 * as stored), and the bindings some drivers attach. The code, constraint and message stay.
 */
const ROW_DATA = new Set(['detail', 'parameters', 'bindings']);
/** What pino's error serializer makes its objects from (nested errors, a cause, included). */
const SERIALIZED_ERROR = Object.getPrototypeOf(pino.stdSerializers.err(new Error())) as unknown;

/**
 * A copy without ROW_DATA keys, through plain objects and arrays (a serialized error's nested
 * values may be the original's); anything else (a Date, a Buffer) stays as it is, for pino to
 * write. It never throws: a getter that does leaves its value out.
 */
function withoutRowData(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) return value.map((item) => withoutRowData(item, depth + 1));
  const prototype = Object.getPrototypeOf(value) as unknown;
  // An error pino's serializer did not reach (inside a plain object, an array): serialized here.
  if (value instanceof Error) return withoutRowData(pino.stdSerializers.err(value), depth + 1);
  if (prototype !== Object.prototype && prototype !== null && prototype !== SERIALIZED_ERROR) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (ROW_DATA.has(key)) continue;
    try {
      copy[key] = withoutRowData((value as Record<string, unknown>)[key], depth + 1);
    } catch {
      copy[key] = '[unreadable]';
    }
  }
  return copy;
}

/** An error as logged: pino's form without row data; never a throw (a getter of the error's may throw). */
function serializeError(err: unknown): unknown {
  try {
    return withoutRowData(pino.stdSerializers.err(err as Error));
  } catch {
    const { name, message } = (err ?? {}) as { name?: unknown; message?: unknown };
    return { type: typeof name === 'string' ? name : 'Error', message: typeof message === 'string' ? message : String(err), note: 'could not be serialized whole' };
  }
}

/**
 * JSON lines on stdout (stderr for the CLI, whose stdout is its answer). Whatever
 * a caller passes, these paths never reach the log: tokens, secrets, header values.
 */
export function createLogger(level: string, options: { stream?: 'stdout' | 'stderr'; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level,
      name: options.name,
      base: { pid: process.pid },
      serializers: { err: serializeError },
      redact: {
        paths: ['token', 'secret', 'authorization', 'headers', '*.token', '*.secret', '*.authorization', '*.headers'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ fd: options.stream === 'stderr' ? 2 : 1, sync: false }),
  );
}
