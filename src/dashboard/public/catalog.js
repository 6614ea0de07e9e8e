/**
 * What the form offers: the event codes of SPEC §5 grouped by resource, and the
 * body-template variables. test/dashboard checks both against src/events.
 */
export const EVENT_GROUPS = [
  ['flag', ['flag.created', 'flag.updated', 'flag.archived', 'flag.unarchived', 'flag.deleted']],
  ['segment', ['segment.created', 'segment.updated', 'segment.deleted']],
  ['strategy', ['strategy.updated']],
  ['apikey', ['apikey.created', 'apikey.updated', 'apikey.deleted']],
  ['environment', ['environment.created', 'environment.updated', 'environment.deleted']],
  ['project', ['project.updated']],
];

export const VARIABLES = [
  ['events.action', 'e.g. flag.created'],
  ['events.resourceType', 'flag, segment, …'],
  ['events.resourceId', 'number'],
  ['events.resourceName', 'key or name'],
  ['events.details', 'what changed'],
  ['events.projectId', 'number'],
  ['events.user.id', 'who: id'],
  ['events.user.name', 'who: name'],
  ['events.user.email', 'who: email'],
  ['events.timestamp', 'ISO 8601, UTC'],
];

/** The dashboard writes the curly form, as the product page does for the body template. */
export function placeholder(variable) {
  return `{{${variable}}}`;
}
