import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Where an error carries the values of a row or statement, none of them is logged: PostgreSQL's
 * `detail` ("Failing row contains (…)", which lists an integration's secret and header values
 * as stored), and the bindings some drivers attach. The code, constraint and message stay.
 */
const ROW_DATA = new Set(['detail', 'parameters', 'bindings']);

/** A copy without ROW_DATA keys, a few levels deep (the serialized error may share objects with the original). */
function withoutRowData(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((item) => withoutRowData(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) if (!ROW_DATA.has(key)) copy[key] = withoutRowData(item, depth + 1);
  return copy;
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
      serializers: { err: (err: unknown) => withoutRowData(pino.stdSerializers.err(err as Error)) },
      redact: {
        paths: ['token', 'secret', 'authorization', 'headers', '*.token', '*.secret', '*.authorization', '*.headers'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ fd: options.stream === 'stderr' ? 2 : 1, sync: false }),
  );
}
