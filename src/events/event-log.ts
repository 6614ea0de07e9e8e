import type { Tx } from '../db/transaction.js';
import type { Actor } from './actor.js';
import { insertEvent, type NewEvent } from './store.js';

/**
 * Writes event rows inside the caller's transaction and, once it commits,
 * tells the relay (EventRelay) that there is something to queue.
 */
export class EventLog {
  constructor(private readonly onCommitted: () => void = () => undefined) {}

  async record(tx: Tx, actor: Actor, event: NewEvent): Promise<number> {
    const id = await insertEvent(tx.trx, actor, { ...event, details: clip(event.details) });
    tx.afterCommit(this.onCommitted);
    return id;
  }
}

const MAX_DETAILS = 2000;

/**
 * Details of a huge change (a segment with a thousand values) are cut, so one event cannot bloat
 * every delivery. Counted in characters (code points), as the API counts text, so an emoji is
 * one and is never split.
 */
function clip(details: string): string {
  if (details.length <= MAX_DETAILS) return details; // UTF-16 units: never fewer than characters
  let characters = 0;
  let cut = 0; // end of the first MAX_DETAILS - 1 characters, which the `…` joins
  for (const character of details) {
    characters += 1;
    if (characters > MAX_DETAILS) return `${details.slice(0, cut)}…`;
    if (characters < MAX_DETAILS) cut += character.length;
  }
  return details;
}
