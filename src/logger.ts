import { pino, type Logger } from 'pino';

export type { Logger };

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
      redact: {
        paths: ['token', 'secret', 'authorization', 'headers', '*.token', '*.secret', '*.authorization', '*.headers'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ fd: options.stream === 'stderr' ? 2 : 1, sync: false }),
  );
}
