import { Child, unlessAChildCrashes } from './children.js';
import { now, sleep } from './clock.js';

export interface Arrivals {
  /** Whether all `n` arrived before the deadline. */
  complete: boolean;
  /** How many of the `n` arrived. */
  arrived: number;
  /** Sink time of the last counted arrival (or of the deadline when incomplete). */
  at: number;
  /** Sink time of the first arrival, when complete. */
  first: number | null;
  /** Incomplete because nothing more arrived for STALL_MS (the work had stopped), not because the deadline passed. */
  stalled: boolean;
}

/** An incomplete wait gives up this long after the last arrival, instead of sitting out its whole deadline. */
export const STALL_MS = 30_000;

/** The bench's handle on the sink process (processes/sink.ts). */
export class Sink {
  private constructor(
    private readonly child: Child,
    readonly url: string,
  ) {}

  static async start(env: Record<string, string | undefined>): Promise<Sink> {
    const child = new Child('sink', 'bench/processes/sink.ts', { env });
    const { port } = await child.ready<{ port: number }>();
    return new Sink(child, `https://127.0.0.1:${port}`);
  }

  get pid(): number {
    return this.child.pid;
  }

  async count(group: string): Promise<number> {
    const { counts } = await this.child.ipc.request<{ counts: Record<string, number> }>({ type: 'counts' });
    return counts[group] ?? 0;
  }

  /**
   * Arms a watch for `n` more arrivals in `group` (counted from now) and returns a
   * function that waits for them, up to `timeoutMs` after it is called. Arm before
   * starting the work.
   */
  async expect(group: string, n: number): Promise<(timeoutMs: number) => Promise<Arrivals>> {
    const base = await this.count(group);
    const watch = this.child.ipc.request<{ at: number; first: number }>({ type: 'watch', group, target: base + n }, 24 * 3600_000);
    watch.catch(() => undefined);
    return async (timeoutMs) => {
      const stop = { done: false };
      const outcome = await unlessAChildCrashes(
        Promise.race([watch.then((reached) => ({ reached })), this.giveUp(group, now() + timeoutMs, stop).then((stalled) => ({ stalled }))]),
      ).finally(() => (stop.done = true));
      if ('reached' in outcome) return { complete: true, arrived: n, at: outcome.reached.at, first: outcome.reached.first, stalled: false };
      return { complete: false, arrived: (await this.count(group)) - base, at: now(), first: null, stalled: outcome.stalled };
    };
  }

  /**
   * Resolves at the deadline (false), or sooner once the group's count has not moved for
   * STALL_MS (true); stops looking once `stop.done`.
   */
  private async giveUp(group: string, deadline: number, stop: { done: boolean }): Promise<boolean> {
    let count = -1;
    let movedAt = now();
    for (;;) {
      const left = deadline - now();
      if (left <= 0) return false;
      await sleep(Math.min(1_000, left));
      if (stop.done) return false;
      const latest = await this.count(group).catch(() => count);
      if (latest !== count) {
        count = latest;
        movedAt = now();
      } else if (now() - movedAt >= STALL_MS) {
        return true;
      }
    }
  }

  /** Markers (resourceName values) seen in `lat*` groups since the last call, with their arrival times. */
  async takeMarkers(): Promise<Map<string, number>> {
    const { markers } = await this.child.ipc.request<{ markers: Array<[string, number]> }>({ type: 'markers' });
    return new Map(markers);
  }

  stop(): Promise<void> {
    return this.child.stop(2_000);
  }
}
