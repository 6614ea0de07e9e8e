/** Event codes of SPEC §5, grouped by the resource that fires them. */
export const EVENT_CODES_BY_RESOURCE = {
  flag: ['flag.created', 'flag.updated', 'flag.archived', 'flag.unarchived', 'flag.deleted'],
  segment: ['segment.created', 'segment.updated', 'segment.deleted'],
  strategy: ['strategy.updated'],
  apikey: ['apikey.created', 'apikey.updated', 'apikey.deleted'],
  environment: ['environment.created', 'environment.updated', 'environment.deleted'],
  project: ['project.updated'],
} as const;

export type ResourceType = keyof typeof EVENT_CODES_BY_RESOURCE;
export type EventCode = (typeof EVENT_CODES_BY_RESOURCE)[ResourceType][number];

export const EVENT_CODES: readonly EventCode[] = Object.values(EVENT_CODES_BY_RESOURCE).flat();

/** The synthetic action of `POST /integrations/:id/test`; never stored as an event, never subscribable. */
export const TEST_ACTION = 'integration.test';

export function isEventCode(value: unknown): value is EventCode {
  return typeof value === 'string' && (EVENT_CODES as readonly string[]).includes(value);
}
