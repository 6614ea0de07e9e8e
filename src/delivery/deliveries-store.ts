import type { Db } from '../db/knex.js';

export interface DeliveryRecord {
  id: number;
  eventId: number | null;
  webhookId: string;
  action: string;
  status: 'success' | 'failure';
  errorCode: string | null;
  httpStatus: number | null;
  address: string | null;
  durationMs: number;
  error: string | null;
  requestBody: string | null;
  responseExcerpt: string | null;
  createdAt: string;
}

/** The delivery log of one integration, newest first. */
export async function listDeliveries(db: Db, integrationId: number, limit: number): Promise<DeliveryRecord[]> {
  const rows = await db('deliveries')
    .where('integration_id', integrationId)
    .orderBy('id', 'desc')
    .limit(limit)
    .select(
      'id',
      'event_id as eventId',
      'webhook_id as webhookId',
      'action',
      'status',
      'error_code as errorCode',
      'http_status as httpStatus',
      'address',
      'duration_ms as durationMs',
      'error',
      'request_body as requestBody',
      'response_excerpt as responseExcerpt',
      'created_at as createdAt',
    );
  return rows.map((row: DeliveryRecord & { createdAt: Date | string }) => ({ ...row, createdAt: new Date(row.createdAt).toISOString() }));
}
