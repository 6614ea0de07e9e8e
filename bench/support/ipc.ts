import type { ChildProcess } from 'node:child_process';

/** A request to a child process; the child answers with an object carrying `replyTo: id`. */
export interface IpcRequest {
  type: string;
  [field: string]: unknown;
}

interface Waiter {
  resolve(reply: unknown): void;
  reject(err: Error): void;
}

/** The parent's side of a child's IPC channel: request/reply over `process.send`. */
export class IpcChannel {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();

  constructor(
    private readonly child: ChildProcess,
    private readonly name: string,
  ) {
    child.on('message', (message: { replyTo?: unknown; error?: unknown }) => {
      if (typeof message?.replyTo !== 'number') return;
      const waiter = this.waiting.get(message.replyTo);
      if (!waiter) return; // the caller gave up waiting
      this.waiting.delete(message.replyTo);
      if (typeof message.error === 'string') waiter.reject(new Error(`${this.name}: ${message.error}`));
      else waiter.resolve(message);
    });
    child.once('exit', () => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`${this.name} exited`));
      this.waiting.clear();
    });
  }

  /** Sends `request`; resolves with the reply, or rejects after `timeoutMs` (the reply is then ignored). */
  request<T>(request: IpcRequest, timeoutMs = 30_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to "${request.type}" within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      timer.unref();
      this.waiting.set(id, {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply as T);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.child.send({ ...request, id });
    });
  }

}

/** The child's side: answers each request with what `handle` returns (or the error it throws). */
export function answerRequests(handle: (request: IpcRequest & { id: number }) => unknown): void {
  process.on('message', (request: IpcRequest & { id: number }) => {
    Promise.resolve()
      .then(() => handle(request))
      .then(
        (reply) => process.send?.({ ...(reply as object), replyTo: request.id }),
        (err: unknown) => process.send?.({ replyTo: request.id, error: err instanceof Error ? err.message : String(err) }),
      );
  });
}

/** Tells the parent this child is up, with whatever it needs to know (a port). */
export function announceReady(details: Record<string, unknown> = {}): void {
  process.send?.({ type: 'ready', ...details });
}

/** A child exits when the bench goes away, even if the bench was killed and could not clean up. */
export function exitWithParent(stop: () => Promise<void> | void = () => undefined): void {
  const exit = () => {
    Promise.resolve()
      .then(stop)
      .finally(() => process.exit(0));
  };
  process.on('disconnect', exit);
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
}
