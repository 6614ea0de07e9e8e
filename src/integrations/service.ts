import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { raw } from 'objection';
import type { Config } from '../config.js';
import { listDeliveries, type DeliveryRecord } from '../delivery/deliveries-store.js';
import { JOB_OPTIONS, testJobId, testWebhookId, type DeliveryJobData } from '../delivery/queue.js';
import { TEST_ACTION } from '../events/codes.js';
import { formatValue } from '../events/details.js';
import type { Db } from '../db/knex.js';
import { transact } from '../db/transaction.js';
import type { Actor } from '../events/actor.js';
import { AppError, notFound, validationFailed } from '../http/errors.js';
import { lockProject } from '../projects/store.js';
import type { IntegrationModel } from './model.js';
import { countIntegrations, integrationStore as store } from './store.js';
import { nothingToKeep, type IntegrationInput } from './validation.js';
import { generateSecret } from '../delivery/signature.js';

/** A conditional PUT whose If-Match is not the stored version's tag. */
export class StaleIntegration extends AppError {
  constructor(readonly version: number) {
    super('precondition_failed', 'the integration changed since it was read (If-Match names another version): read it again, and save your changes over that');
  }
}

/** How long a rotated-out secret goes on signing beside the new one (as Svix and Standard Webhooks do: a day). */
export const PREVIOUS_SECRET_TTL_MS = 24 * 60 * 60 * 1000;

export class IntegrationService {
  constructor(
    private readonly db: Db,
    private readonly planLimits: Config['planLimits'],
    private readonly queue: Queue<DeliveryJobData>,
    /** False while the queue's connection is down: a test send is refused rather than left waiting. */
    private readonly queueReachable: () => boolean = () => true,
  ) {}

  list(actor: Actor): Promise<IntegrationModel[]> {
    return store.list(this.db, actor.projectId);
  }

  async get(actor: Actor, id: number): Promise<IntegrationModel> {
    return (await store.get(this.db, actor.projectId, id)) ?? notFoundError();
  }

  /** The project row lock makes the limit hold when two creates race for the last slot. */
  async create(actor: Actor, input: IntegrationInput): Promise<IntegrationModel> {
    return transact(this.db, async ({ trx }) => {
      const project = await lockProject(trx, actor.projectId);
      const limit = this.planLimits[project.plan];
      if ((await countIntegrations(trx, actor.projectId)) >= limit) {
        throw new AppError('integration_limit_reached', `the ${project.plan} plan allows ${limit} integration${limit === 1 ? '' : 's'}; delete one or upgrade the plan`);
      }
      const created = await store.insert(trx, { projectId: actor.projectId, ...columns(input), secret: input.secret.kind === 'set' ? input.secret.secret : null });
      return (await store.get(trx, actor.projectId, created.id))!;
    });
  }

  /**
   * The body is the whole integration, as in the seed; a secret sent back as "********" keeps the
   * stored one. `expected`, from an `If-Match`: whether the version now stored is the one the
   * client read (else `412`, nothing saved), so that a copy read earlier cannot undo a save made since.
   */
  async update(actor: Actor, id: number, input: IntegrationInput, expected?: (version: number) => boolean): Promise<IntegrationModel> {
    return transact(this.db, async ({ trx }) => {
      const current = (await store.lock(trx, actor.projectId, id)) ?? notFoundError();
      if (expected && !expected(current.version)) throw new StaleIntegration(current.version);
      if (input.secret.kind === 'keep' && current.secret === null) throw validationFailed([nothingToKeep('this integration')]);
      // A secret kept keeps a rotation's previous one signing too; one set or removed ends it at once.
      const secrets =
        input.secret.kind === 'keep'
          ? {}
          : { secret: input.secret.kind === 'set' ? input.secret.secret : null, previousSecret: null, previousSecretExpiresAt: null };
      await store.patch(trx, current, { ...columns(input), ...secrets, version: raw('version + 1') });
      return (await store.get(trx, actor.projectId, current.id))!;
    });
  }

  /**
   * Replaces the signing secret with `body.secret`, or a new random one, and keeps the one replaced
   * signing beside it for PREVIOUS_SECRET_TTL_MS: deliveries carry both signatures meanwhile, so a
   * receiver verifies with either while it switches over. A second rotation within that time drops
   * the older one. Answers the new secret, the one time it is shown.
   */
  async rotateSecret(actor: Actor, id: number, requested: string | null): Promise<{ secret: string; previousSecretExpiresAt: string }> {
    return transact(this.db, async ({ trx }) => {
      const current = (await store.lock(trx, actor.projectId, id)) ?? notFoundError();
      if (current.secret === null) {
        throw validationFailed([{ path: 'secret', message: 'this integration has no secret to rotate: set one with PUT (configJson.secret)' }]);
      }
      if (requested === current.secret) throw validationFailed([{ path: 'secret', message: 'secret is the one the integration signs with already' }]);
      const previousSecretExpiresAt = new Date(Date.now() + PREVIOUS_SECRET_TTL_MS);
      const secret = requested ?? generateSecret();
      await store.patch(trx, current, { secret, previousSecret: current.secret, previousSecretExpiresAt, version: raw('version + 1') });
      return { secret, previousSecretExpiresAt: previousSecretExpiresAt.toISOString() };
    });
  }

  async remove(actor: Actor, id: number): Promise<void> {
    await transact(this.db, async ({ trx }) => {
      const current = (await store.lockForDelete(trx, actor.projectId, id)) ?? notFoundError();
      await store.delete(trx, current);
    });
  }

  /**
   * Queues a synthetic `integration.test` event for this integration alone, through
   * the same queue, worker and guard as every delivery. Answered 202: it is sent
   * asynchronously and shows up in the delivery log.
   */
  async sendTest(actor: Actor, id: number): Promise<{ webhookId: string }> {
    const integration = await this.get(actor, id);
    const nonce = randomUUID().replaceAll('-', '');
    const data: DeliveryJobData = {
      integrationId: integration.id,
      integrationVersion: integration.version,
      eventId: null,
      webhookId: testWebhookId(nonce),
      vars: {
        action: TEST_ACTION,
        resourceType: 'integration',
        resourceId: integration.id,
        resourceName: integration.name,
        details: `test delivery to integration ${formatValue(integration.name)}`,
        projectId: actor.projectId,
        user: actor.user,
        timestamp: new Date().toISOString(),
      },
      committedAt: Date.now(),
    };
    const unavailable = new AppError('unavailable', 'the delivery queue is unreachable right now; try again shortly');
    if (!this.queueReachable()) throw unavailable;
    try {
      await this.queue.add(TEST_ACTION, data, { ...JOB_OPTIONS, jobId: testJobId(integration.id, nonce) });
    } catch {
      throw unavailable;
    }
    return { webhookId: data.webhookId };
  }

  async deliveries(actor: Actor, id: number, limit: number): Promise<DeliveryRecord[]> {
    const integration = await this.get(actor, id);
    return listDeliveries(this.db, integration.id, limit);
  }
}

function columns(input: IntegrationInput) {
  return {
    name: input.name,
    enabled: input.enabled,
    type: input.type,
    configJson: input.configJson,
    eventSubscriptionsJson: input.eventSubscriptionsJson,
    url: input.url,
    headers: input.headers,
    bodyTemplate: input.body,
    events: input.events,
  };
}

function notFoundError(): never {
  throw notFound('integration');
}
