import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IpcChannel } from './ipc.js';

/** The repository root: children run from it, as `npm run …` would. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const TAIL_LINES = 40;

export interface ChildOptions {
  /** What the child is, for the summary of what children logged: 'api', 'worker', 'sink'… */
  kind?: string;
  /** The whole environment of the child. */
  env: Record<string, string | undefined>;
  /** Extra node flags, before `--import tsx` (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

/**
 * A TypeScript entry point run as `node --import tsx <entry>`, with an IPC channel:
 * the product's entry points stop when that channel closes (lifecycle.ts), so the
 * children go away even when the bench itself is killed.
 */
export class Child {
  readonly process: ChildProcess;
  readonly ipc: IpcChannel;
  readonly exited: Promise<number | null>;
  private readonly tail: string[] = [];
  private partial = '';
  private stopping = false;
  private readonly kind: string;

  constructor(
    readonly name: string,
    entry: string,
    options: ChildOptions,
  ) {
    this.process = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', entry], {
      cwd: REPO_ROOT,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // A process group of its own: Ctrl-C reaches only the bench, which stops the children in order
      // (api and workers before the sink they deliver to) and then cleans up.
      detached: true,
    });
    this.kind = options.kind ?? name;
    this.ipc = new IpcChannel(this.process, name);
    for (const stream of [this.process.stdout, this.process.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => this.keep(text));
    }
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        running.delete(this);
        if (!this.stopping) reportUnexpectedExit(this, code ?? signal);
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** The last lines the child printed, for error messages. */
  output(): string {
    return this.tail.join('');
  }

  /** Waits for the child's `{type: 'ready'}` message; fails if it exits first. */
  async ready<T extends object>(timeoutMs = 60_000): Promise<T> {
    const message = new Promise<T>((resolve) => {
      const onMessage = (m: { type?: string }) => {
        if (m?.type !== 'ready') return;
        this.process.off('message', onMessage);
        resolve(m as T);
      };
      this.process.on('message', onMessage);
    });
    return Promise.race([message, this.exited.then(() => Promise.reject(this.failure('exited before it was ready'))), timeout<T>(timeoutMs, `${this.name} not ready`)]);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  failure(what: string): Error {
    return new Error(`${this.name} ${what}; its last output:\n${this.output() || '(nothing)'}`);
  }

  private keep(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      this.tail.push(`${line}\n`);
      noteLogLine(this.kind, line);
    }
    if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
  }
}

export interface LoggedProblem {
  /** e.g. `worker error: could not save 12 delivery outcome(s)` */
  what: string;
  count: number;
  /** The error text of the first one, when the line had one. */
  example: string | null;
}

const problems = new Map<string, LoggedProblem>();

/** pino lines at warn level or above (the level the bench runs the product with), grouped by process kind and message. */
function noteLogLine(kind: string, line: string): void {
  if (!line.startsWith('{')) {
    if (line.trim() !== '') record(`${kind} printed: ${line.slice(0, 200)}`, null);
    return;
  }
  let entry: { level?: number; msg?: string; err?: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  if ((entry.level ?? 0) < 40) return;
  const err = entry.err;
  const text = typeof err === 'string' ? err : typeof err === 'object' && err !== null && 'message' in err ? String((err as { message: unknown }).message) : null;
  // Counts in messages ("could not save 12 …") would make every line its own kind.
  const message = (entry.msg ?? '(no message)').replace(/\d+/g, 'N');
  record(`${kind} ${entry.level! >= 50 ? 'error' : 'warning'}: ${message}`, text === null ? null : errorGist(text));
}

/** knex puts the whole SQL before the cause (`UPDATE … - deadlock detected`): keep the cause. */
function errorGist(text: string): string {
  const cause = text.lastIndexOf(' - ');
  return (cause === -1 ? text : text.slice(cause + 3)).replace(/\s+/g, ' ').trim();
}

function record(what: string, example: string | null): void {
  const known = problems.get(what);
  if (known) known.count += 1;
  else problems.set(what, { what, count: 1, example: example?.slice(0, 300) ?? null });
}

/** What the children logged at warn level or above during the run. */
export function loggedProblems(): LoggedProblem[] {
  return [...problems.values()];
}

const running = new Set<Child>();
let crashed: (err: Error) => void = () => undefined;
/** Rejects as soon as any child exits without being asked to; every long wait races against it. */
const crash = new Promise<never>((_resolve, reject) => (crashed = reject));
crash.catch(() => undefined);

function reportUnexpectedExit(child: Child, how: number | string | null): void {
  crashed(child.failure(`exited unexpectedly (${how})`));
}

/** `work`, unless a child crashes first. */
export function unlessAChildCrashes<T>(work: Promise<T>): Promise<T> {
  return Promise.race([work, crash]);
}

/** Stops every child still running (cleanup on success, failure or Ctrl-C). */
export async function stopAllChildren(graceMs = 5_000): Promise<void> {
  await Promise.all([...running].map((child) => child.stop(graceMs)));
}

export function timeout<T>(ms: number, what: string): Promise<T> {
  return new Promise<T>((_resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} within ${Math.round(ms / 1000)} s`)), ms);
    timer.unref();
  });
}
