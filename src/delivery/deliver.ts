import { TEST_ACTION } from '../events/codes.js';
import { compileTemplate, isJsonContentType, renderTemplate, type CompiledTemplate } from '../integrations/template.js';
import { contentTypeHeader, DEFAULT_CONTENT_TYPE } from '../integrations/validation.js';
import type { Logger } from '../logger.js';
import type { WorkerMetrics } from '../ops/metrics.js';
import { VERSION } from '../version.js';
import { attemptResult, type DeliveryResult, type WebhookClient } from './http-client.js';
import type { DeliveryTarget, IntegrationLoader } from './integration-loader.js';
import type { OutcomeRecorder } from './outcome-recorder.js';
import type { DeliveryJobData } from './queue.js';
import { signPayload } from './signature.js';

export const USER_AGENT = `mozhno-webhooks/${VERSION}`;

export interface DeliverDeps {
  loader: IntegrationLoader;
  client: WebhookClient;
  recorder: OutcomeRecorder;
  log: Logger;
  metrics: WorkerMetrics;
}

/** 16 Mi UTF-16 units (32 MiB) of templates at most: 256 of the largest, thousands of usual ones. */
const MAX_CACHED_TEMPLATE_CHARS = 16 * 1024 * 1024;

/** One delivery: re-read the integration, render, sign, POST, record the outcome. */
export class Deliverer {
  private readonly templates = new Map<number, { text: string; compiled: CompiledTemplate }>();
  /** UTF-16 units of template text the cache holds (its parts keep the whole text alive). */
  private templateChars = 0;

  constructor(private readonly deps: DeliverDeps) {}

  /** Whether the job should go out now: a delete, disable or unsubscribe after queueing drops it (SPEC §6). */
  async target(data: DeliveryJobData): Promise<DeliveryTarget | { dropped: string }> {
    const target = await this.deps.loader.load(data.integrationId, data.integrationVersion);
    if (!target) {
      this.forgetTemplate(data.integrationId);
      return { dropped: 'integration deleted' };
    }
    const isTest = data.vars.action === TEST_ACTION;
    // A test send is asked for on purpose, so it goes out even to a disabled integration.
    if (!target.enabled && !isTest) return { dropped: 'integration disabled' };
    if (!isTest && !target.events.includes(data.vars.action)) return { dropped: 'integration no longer subscribed' };
    return target;
  }

  async deliver(data: DeliveryJobData, target: DeliveryTarget): Promise<DeliveryResult> {
    const request = this.buildRequest(data, target);
    const result = await this.deps.client.send(request);
    this.deps.metrics.latency.observe(Math.max(0, Date.now() - data.committedAt) / 1000);
    await this.finish(data, request.body, result);
    return result;
  }

  /**
   * A job refused unsent: `ahead` deliveries of its integration already wait for a slot
   * (WEBHOOK_MAX_BACKLOG). Recorded as a failed attempt, so lastError says why.
   */
  async refuseBacklog(data: DeliveryJobData, ahead: number, max: number): Promise<DeliveryResult> {
    const result = attemptResult('E_BACKLOG', `backlog: ${ahead} deliveries already wait for this endpoint (WEBHOOK_MAX_BACKLOG ${max}); not sent`, null, null, 0, null);
    await this.finish(data, null, result, false);
    return result;
  }

  /**
   * A job BullMQ failed without running it: the workers that took it stopped twice (killed, or cut
   * off from Redis) before its outcome was saved, so it may or may not have been sent, and is not
   * sent again (SPEC §6: at most one more time). Recorded, so lastError says so.
   */
  async recordStalled(data: DeliveryJobData): Promise<void> {
    const result = attemptResult('E_STALLED', 'stalled: the workers delivering it stopped twice before its outcome was saved; it may have been sent, and is not sent again', null, null, 0, null);
    await this.finish(data, null, result, false);
  }

  /** Counts, records and logs one attempt's outcome; `sent`: whether there is a duration to observe. */
  private async finish(data: DeliveryJobData, requestBody: string | null, result: DeliveryResult, sent = true): Promise<void> {
    const status = result.ok ? 'success' : 'failure';
    this.deps.metrics.delivered(status, result.errorCode ?? 'none', sent ? result.durationMs / 1000 : null);
    const at = new Date();
    // One line per delivery, before its record is saved: an attempt made is logged even if its
    // record cannot be (PostgreSQL gone for good). Never header values or bodies.
    this.deps.log.info(
      {
        integrationId: data.integrationId,
        eventId: data.eventId,
        action: data.vars.action,
        status,
        httpStatus: result.httpStatus,
        code: result.errorCode,
        ms: Math.round(result.durationMs),
      },
      'delivery',
    );
    await this.deps.recorder.record({
      integrationId: data.integrationId,
      eventId: data.eventId,
      webhookId: data.webhookId,
      action: data.vars.action,
      requestBody,
      result,
      at,
    });
  }

  buildRequest(data: DeliveryJobData, target: DeliveryTarget): { url: string; headers: Record<string, string>; body: string | null } {
    // Copied key by key: V8 (Node 20) gives an object made by spread a new hidden class for every
    // property added to it afterwards, which made this copy cost ~2 µs per delivery instead of ~0.1.
    const headers: Record<string, string> = {};
    for (const name of Object.keys(target.headers)) headers[name] = target.headers[name]!;
    const configured = contentTypeHeader(headers);
    if (!configured) headers['content-type'] = DEFAULT_CONTENT_TYPE;
    const contentType = configured?.[1] ?? DEFAULT_CONTENT_TYPE;

    const template = this.compiled(target);
    const body = template ? renderTemplate(template, data.vars, isJsonContentType(contentType)) : null;
    const timestamp = Math.floor(Date.now() / 1000);
    headers['user-agent'] = USER_AGENT;
    headers['webhook-id'] = data.webhookId;
    headers['webhook-timestamp'] = String(timestamp);
    if (target.secret) {
      const sign = (secret: string) => signPayload(secret, data.webhookId, timestamp, body ?? '');
      // During a rotation, both (Standard Webhooks: space-separated): a receiver verifies with either.
      headers['webhook-signature'] = target.previousSecret ? `${sign(target.secret)} ${sign(target.previousSecret)}` : sign(target.secret);
    }
    return { url: target.url, headers, body };
  }

  /** Compiled once per template text; an edited integration compiles anew. */
  private compiled(target: DeliveryTarget): CompiledTemplate | null {
    if (!target.bodyTemplate) return null;
    const cached = this.templates.get(target.id);
    if (cached?.text === target.bodyTemplate) return cached.compiled;
    const { template } = compileTemplate(target.bodyTemplate);
    this.forgetTemplate(target.id);
    // Bounded like the loader's cache: a worker sees every project's integrations over time.
    if (this.templateChars + target.bodyTemplate.length > MAX_CACHED_TEMPLATE_CHARS) {
      this.templates.clear();
      this.templateChars = 0;
    }
    this.templates.set(target.id, { text: target.bodyTemplate, compiled: template });
    this.templateChars += target.bodyTemplate.length;
    return template;
  }

  private forgetTemplate(id: number): void {
    const cached = this.templates.get(id);
    if (cached === undefined) return;
    this.templates.delete(id);
    this.templateChars -= cached.text.length;
  }
}
