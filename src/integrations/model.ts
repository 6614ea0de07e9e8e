import type { Pojo } from 'objection';
import { BaseModel } from '../db/model.js';
import type { EventCode } from '../events/codes.js';

export class IntegrationModel extends BaseModel {
  static override tableName = 'integrations';
  static override jsonAttributes = ['headers'];
  id!: number;
  projectId!: number;
  name!: string;
  enabled!: boolean;
  version!: number;
  type!: 'custom_webhook';
  configJson!: string;
  eventSubscriptionsJson!: string;
  url!: string;
  headers!: Record<string, string>;
  bodyTemplate!: string | null;
  secret!: string | null;
  /** The secret a rotation replaced, still signing beside `secret` until it expires. */
  previousSecret!: string | null;
  previousSecretExpiresAt!: Date | null;
  events!: EventCode[];
  lastError!: string | null;
  lastErrorAt!: Date | null;
  lastDeliveryAt!: Date | null;
  lastDeliveryStatus!: 'success' | 'failure' | null;
  createdAt!: Date;
  updatedAt!: Date;

  /** The secret stays in the database and the worker; nothing that serialises a model can leak it. */
  override $formatJson(json: Pojo): Pojo {
    const formatted = super.$formatJson(json);
    delete formatted.secret;
    delete formatted.previousSecret;
    return formatted;
  }
}
