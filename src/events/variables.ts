/**
 * The values a body template can use (SPEC §5). A job carries them, so a worker
 * never re-reads the event row.
 */
export interface EventVariables {
  action: string;
  resourceType: string;
  resourceId: number;
  resourceName: string;
  details: string;
  projectId: number;
  user: { id: number; name: string; email: string };
  /** ISO 8601 in UTC, e.g. 2026-11-27T10:00:00.000Z */
  timestamp: string;
}

/** Every variable name a template may reference, as written after `events.`. */
export const TEMPLATE_VARIABLES = [
  'action',
  'resourceType',
  'resourceId',
  'resourceName',
  'details',
  'projectId',
  'user.id',
  'user.name',
  'user.email',
  'timestamp',
] as const;

export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

export function variableValue(vars: EventVariables, name: TemplateVariable): string | number {
  switch (name) {
    case 'user.id':
      return vars.user.id;
    case 'user.name':
      return vars.user.name;
    case 'user.email':
      return vars.user.email;
    default:
      return vars[name];
  }
}
