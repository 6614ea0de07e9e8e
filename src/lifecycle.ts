import { ConfigError, loadConfig, redact, type Config } from './config.js';
import { createLogger, type Logger } from './logger.js';

/** A problem at start that the operator can fix; printed as one line, without a stack. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/**
 * A port a server could not listen on, as one line naming the variable that set it
 * (`whenInUse`: what to do about a port another process holds); anything else as it is.
 */
export function listenRefused(variable: string, port: number, err: unknown, whenInUse: string): unknown {
  const code = (err as { code?: string }).code;
  if (code === 'EADDRINUSE') return new StartupError(`${variable} ${port} is already in use (EADDRINUSE): ${whenInUse}`);
  if (code === 'EACCES') return new StartupError(`${variable} ${port} needs privileges this process lacks (EACCES): set ${variable} to 1024 or above`);
  return err;
}

export type Stop = () => Promise<void>;

export interface ProcessOptions {
  logTo?: 'stdout' | 'stderr';
  /**
   * Longest a stop may take: past it the process exits 1 anyway, so a stop waiting on
   * a service that went away (BullMQ's close while Redis is unreachable) ends before
   * the orchestrator's grace period instead of in a SIGKILL.
   */
  stopDeadlineMs?: (config: Readonly<Config>) => number;
}

/**
 * Runs a process: config read once, one-line errors for what an operator can
 * fix, and a clean stop on SIGINT/SIGTERM (a second signal, a second or more after the first, exits at once).
 */
export async function runProcess(name: string, main: (config: Readonly<Config>, log: Logger) => Promise<Stop>, options: ProcessOptions = {}): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig();
  } catch (err) {
    exitOnStartupError(err, 'failed to start');
  }
  const log = createLogger(config.logLevel, { name, stream: options.logTo ?? 'stdout' });
  // Until it has started there is nothing to stop cleanly: a signal, or the end of `npm start`
  // (its parent), ends it at once. Without a handler, PID 1 in a container would ignore SIGTERM.
  const stopEarly = exitOnSignals((signal) => `${name} stopped while starting (${signal})`);
  const parentGone = () => stopEarly('SIGTERM');
  if (process.connected) process.on('disconnect', parentGone);
  let stop: Stop;
  try {
    stop = await main(config, log);
  } catch (err) {
    if (err instanceof StartupError) fail(err.message);
    log.fatal({ err }, `${name} failed to start`);
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    fail(`${name} failed to start: ${(err as Error).message}`);
  }
  const signals = stopSignals();
  const onSignal = (signal: NodeJS.Signals) => {
    const seen = signals();
    if (seen === 'relayed') return; // the same Ctrl-C, relayed
    if (seen === 'again') process.exit(130);
    log.info({ signal }, `${name} stopping`);
    const deadlineMs = options.stopDeadlineMs?.(config);
    if (deadlineMs !== undefined) {
      setTimeout(() => {
        log.error({ deadlineMs }, `${name} did not stop within ${deadlineMs / 1000} s (a service it waits on is unreachable?); exiting`);
        exitAfterFlush(log, 1);
      }, deadlineMs).unref();
    }
    stop().then(
      () => {
        log.info(`${name} stopped`);
        exitAfterFlush(log, 0);
      },
      (err: unknown) => {
        log.error({ err }, `${name} did not stop cleanly`);
        exitAfterFlush(log, 1);
      },
    );
  };
  process.off('SIGINT', stopEarly);
  process.off('SIGTERM', stopEarly);
  process.off('disconnect', parentGone);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Started by `npm start`: when that parent goes away (even by SIGKILL), stop too rather than linger;
  // also when it went away while this process was starting.
  if (process.connected) process.on('disconnect', () => onSignal('SIGTERM'));
  else if (process.send !== undefined) onSignal('SIGTERM');
}

/**
 * One Ctrl-C can reach a process two or three times within moments: from the terminal (to the
 * whole foreground process group) and again from npm and the tsx launcher, which pass signals
 * on to their child. A signal this soon after the first is that same one; only a later one
 * means "stop now, without waiting".
 */
const SAME_SIGNAL_MS = 1_000;

/**
 * Tells each stop signal apart: the first, the same one relayed (within SAME_SIGNAL_MS of the
 * first), or a later one, which asks to stop at once.
 */
export function stopSignals(): () => 'first' | 'relayed' | 'again' {
  let firstAt: number | null = null;
  return () => {
    if (firstAt === null) {
      firstAt = Date.now();
      return 'first';
    }
    return Date.now() - firstAt < SAME_SIGNAL_MS ? 'relayed' : 'again';
  };
}

/**
 * Until a process has something to stop cleanly, SIGINT and SIGTERM end it at once with one line
 * (PID 1 in a container ignores a signal it has no handler for). Answers the handler installed.
 */
export function exitOnSignals(say: (signal: NodeJS.Signals) => string): (signal: NodeJS.Signals) => never {
  const exit = (signal: NodeJS.Signals): never => {
    process.stderr.write(`mozhno: ${say(signal)}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', exit);
  process.on('SIGTERM', exit);
  return exit;
}

function exitAfterFlush(log: Logger, code: number): void {
  log.flush(() => process.exit(code));
}

function fail(message: string): never {
  process.stderr.write(`mozhno: ${message}\n`);
  process.exit(1);
}

/** Exits 1 with one line: the bad variable, the start-up problem, or `<failed>: <message>` for anything else. */
export function exitOnStartupError(err: unknown, failed: string): never {
  if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
  if (err instanceof StartupError) fail(err.message);
  fail(`${failed}: ${(err as Error).message}`);
}

/** One line that says what could not be reached, where, and how to start it; a problem already said in one line stays as it is. */
export function unreachable(service: 'PostgreSQL' | 'Redis', url: string, err: unknown): StartupError {
  if (err instanceof StartupError) return err;
  const reason = (err as { code?: string }).code ?? (err as Error).message;
  const hint =
    service === 'PostgreSQL'
      ? 'start it (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or `systemctl start postgresql`) or set DATABASE_URL'
      : 'start it (e.g. `redis-server --daemonize yes` or `systemctl start redis-server`) or set REDIS_URL';
  return new StartupError(`cannot reach ${service} at ${redact(url)} (${reason}): ${hint}`);
}
