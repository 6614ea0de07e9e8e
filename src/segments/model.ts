import type { Pojo } from 'objection';
import { BaseModel } from '../db/model.js';

export const CONDITION_OPERATORS = [
  'in',
  'not_in',
  'str_contains',
  'str_starts_with',
  'str_ends_with',
  'num_eq',
  'num_gt',
  'num_gte',
  'num_lt',
  'num_lte',
  'date_after',
  'date_before',
  'semver_eq',
  'semver_gt',
  'semver_lt',
] as const;

export interface Condition {
  attribute: string;
  operator: (typeof CONDITION_OPERATORS)[number];
  values: string[];
}

export class SegmentModel extends BaseModel {
  static override tableName = 'segments';
  static override jsonAttributes = ['conditions'];
  id!: number;
  projectId!: number;
  key!: string;
  name!: string;
  conditions!: Condition[];
  createdAt!: Date;
  updatedAt!: Date;

  /** jsonb keeps keys in its own order; answers and change summaries show them as the API takes them. */
  override $parseDatabaseJson(json: Pojo): Pojo {
    const parsed = super.$parseDatabaseJson(json);
    if (Array.isArray(parsed.conditions)) parsed.conditions = (parsed.conditions as Condition[]).map(orderCondition);
    return parsed;
  }
}

export function orderCondition({ attribute, operator, values }: Condition): Condition {
  return { attribute, operator, values };
}
