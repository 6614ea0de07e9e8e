import type { Tx } from '../db/transaction.js';
import type { Actor } from './actor.js';
import { insertEvent, type NewEvent } from './store.js';

/**
 * Writes event rows inside the caller's transaction and, once it commits,
 * tells the dispatcher that there is something to queue.
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
 * every delivery; never between the two halves of a character such as an emoji.
 */
function clip(details: string): string {
  if (details.length <= MAX_DETAILS) return details;
  let end = MAX_DETAILS - 1;
  const last = details.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // a high surrogate: its low half is past the cut
  return `${details.slice(0, end)}…`;
}
