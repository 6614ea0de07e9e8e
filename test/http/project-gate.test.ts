import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/http/errors.js';
import { ProjectGate } from '../../src/http/project-gate.js';

/** A piece of work that runs until `finish` is called, noting when it started. */
function held(log: string[], name: string) {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { work: async () => (log.push(name), done), finish: () => finish() };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ProjectGate', () => {
  it('runs at most `limit` of one project at once, the others in the order they came, and other projects freely', async () => {
    const gate = new ProjectGate(2, 10_000);
    const log: string[] = [];
    const works = ['a1', 'a2', 'a3', 'a4'].map((name) => held(log, name));
    const runs = works.map((w) => gate.run(1, w.work));
    const other = held(log, 'b1');
    const otherRun = gate.run(2, other.work);
    await tick();
    expect(log).toEqual(['a1', 'a2', 'b1']);
    works[1]!.finish();
    await tick();
    expect(log).toEqual(['a1', 'a2', 'b1', 'a3']);
    works[0]!.finish();
    await tick();
    expect(log).toEqual(['a1', 'a2', 'b1', 'a3', 'a4']);
    for (const w of [...works, other]) w.finish();
    await Promise.all([...runs, otherRun]);
  });

  it('answers 503 unavailable to a request whose turn does not come in time, and the line goes on without it', async () => {
    const gate = new ProjectGate(1, 50);
    const log: string[] = [];
    const first = held(log, 'first');
    const running = gate.run(1, first.work);
    const late = gate.run(1, async () => log.push('late'));
    await expect(late).rejects.toSatisfy((err: unknown) => err instanceof AppError && err.status === 503 && err.code === 'unavailable');
    const next = held(log, 'next');
    const nextRun = gate.run(1, next.work);
    first.finish();
    await running;
    await tick();
    expect(log).toEqual(['first', 'next']);
    next.finish();
    await nextRun;
  });
});
