import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * What every bench integration sends: a JSON body using most template variables
 * (so rendering and JSON escaping do real work), and a Standard Webhooks secret
 * (so every delivery is signed). `marker` carries the resourceName, by which the
 * sink matches arrivals to the changes that caused them.
 */
export const BODY_TEMPLATE =
  '{"event":"[[events.action]]","marker":"[[events.resourceName]]","resourceType":"[[events.resourceType]]","resourceId":{{events.resourceId}},' +
  '"details":"[[events.details]]","projectId":{{events.projectId}},"user":{"id":{{events.user.id}},"name":"[[events.user.name]]","email":"[[events.user.email]]"},"at":"[[events.timestamp]]"}';

export const BENCH_USER = { name: 'Bench User', email: 'bench@example.com' };
const DETAILS = 'name: "Checkout flow" → "Checkout flow (v2)"';

/** The body of BODY_TEMPLATE rendered with typical values: what the baselines POST. */
export function sampleBody(): string {
  return JSON.stringify({
    event: 'flag.updated',
    marker: 'bench-1-12345',
    resourceType: 'flag',
    resourceId: 1,
    details: DETAILS,
    projectId: 1,
    user: { id: 1, name: BENCH_USER.name, email: BENCH_USER.email },
    at: new Date().toISOString(),
  });
}

/** A signature-shaped value: the baselines send the same bytes as the product without computing anything. */
const SAMPLE_SIGNATURE = `v1,${randomBytes(32).toString('base64')}`;

/** Headers like the product's (content type, user agent, the three Standard Webhooks headers), for the baselines. */
export function sampleHeaders(webhookId: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'mozhno-webhooks/bench',
    'webhook-id': webhookId,
    'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
    'webhook-signature': SAMPLE_SIGNATURE,
  };
}

export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** An integration of the bench: POSTs BODY_TEMPLATE, signed, to `url` for `events`. */
export function integrationBody(name: string, url: string, events: string[]) {
  return {
    name,
    enabled: true,
    type: 'custom_webhook',
    configJson: JSON.stringify({ url, headers: { 'Content-Type': 'application/json' }, body: BODY_TEMPLATE, secret: newSecret() }),
    eventSubscriptionsJson: JSON.stringify(events),
  };
}

export interface EventRange {
  first: number;
  last: number;
}

/**
 * Commits `count` flag.updated events of a project in one statement, as the API's
 * transactions would have left them; the events table's trigger NOTIFYs the relay
 * on commit (the explicit NOTIFY only makes sure, should that trigger change).
 */
export async function commitEvents(db: Knex, project: { projectId: number; userId: number }, count: number, tag: string): Promise<EventRange> {
  return db.transaction(async (trx) => {
    const { rows } = (await trx.raw(
      `INSERT INTO events (project_id, action, resource_type, resource_id, resource_name, details, user_id, user_name, user_email)
       SELECT ?, 'flag.updated', 'flag', g, ? || '-' || g, ?, ?, ?, ?
         FROM generate_series(1, ?) AS g
       RETURNING id`,
      [project.projectId, tag, DETAILS, project.userId, BENCH_USER.name, BENCH_USER.email, count],
    )) as { rows: Array<{ id: number | string }> };
    await trx.raw('NOTIFY mozhno_events');
    const ids = rows.map((row) => Number(row.id));
    return { first: Math.min(...ids), last: Math.max(...ids) };
  });
}
