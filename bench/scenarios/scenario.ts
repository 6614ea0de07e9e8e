import type { Bench } from '../support/bench.js';

/** Named figures one scenario measured, e.g. `{ deliveriesPerSec: 2150 }`. */
export type Figures = Record<string, number>;

export interface Scenario {
  /** What `--only` takes. */
  name: string;
  /** One line on what it measures, printed as it starts. */
  title: string;
  run(bench: Bench): Promise<Figures>;
}

/** Prints progress on stderr: stdout carries only the table and the JSON line. */
export function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

const notes: string[] = [];

/** Something the reader of the figures must know (an incomplete run, a fallback); printed under the table. */
export function note(message: string): void {
  notes.push(message);
  progress(`NOTE: ${message}`);
}

export function allNotes(): string[] {
  return [...notes];
}
