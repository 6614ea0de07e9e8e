import { expect, it } from 'vitest';
import { Deliverer, type DeliverDeps } from '../../src/delivery/deliver.js';
import type { DeliveryTarget } from '../../src/delivery/integration-loader.js';
import type { DeliveryJobData } from '../../src/delivery/queue.js';
import { SAMPLE_VARIABLES } from '../../src/integrations/template.js';

// buildRequest renders and signs only: none of the I/O the deliverer's dependencies do is reached.
const deliverer = new Deliverer({} as DeliverDeps);
const cache = deliverer as unknown as { templates: Map<number, unknown>; templateChars: number };

const job = (integrationId: number): DeliveryJobData => ({
  integrationId,
  integrationVersion: 1,
  eventId: 1,
  webhookId: `msg_${integrationId}`,
  vars: SAMPLE_VARIABLES,
  committedAt: Date.now(),
});

const target = (id: number, bodyTemplate: string): DeliveryTarget => ({
  id,
  version: 1,
  enabled: true,
  url: 'https://hooks.example.com/',
  headers: {},
  bodyTemplate,
  secret: null,
  previousSecret: null,
  events: ['flag.updated'],
});

it('keeps compiled templates within a bound however many integrations a worker has served, and renders right after', () => {
  const padding = 'x'.repeat(60_000);
  for (let id = 1; id <= 600; id++) {
    const { body } = deliverer.buildRequest(job(id), target(id, `{"n":${id},"a":"[[events.action]]","pad":"${padding}"}`));
    expect(JSON.parse(body!)).toEqual({ n: id, a: 'flag.updated', pad: padding });
  }
  // 600 × 60 kB = 36 M characters were compiled; far fewer are held.
  expect(cache.templateChars).toBeLessThanOrEqual(16 * 1024 * 1024);
  expect(cache.templates.size).toBeLessThan(600);
  const held = [...cache.templates.values()] as Array<{ text: string }>;
  expect(held.reduce((sum, entry) => sum + entry.text.length, 0)).toBe(cache.templateChars);
});

it('compiles an edited template anew and counts only the newest text of an integration', () => {
  const before = cache.templateChars;
  deliverer.buildRequest(job(9001), target(9001, '{"v":1,"a":"[[events.action]]"}'));
  const { body } = deliverer.buildRequest(job(9001), target(9001, '{"v":2,"r":"[[events.resourceName]]"}'));
  expect(JSON.parse(body!)).toEqual({ v: 2, r: SAMPLE_VARIABLES.resourceName });
  expect(cache.templateChars - before).toBe('{"v":2,"r":"[[events.resourceName]]"}'.length);
});
