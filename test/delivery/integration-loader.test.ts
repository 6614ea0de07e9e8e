import { afterAll, beforeAll, expect, it } from 'vitest';
import { IntegrationLoader } from '../../src/delivery/integration-loader.js';
import { createLogger } from '../../src/logger.js';
import { startTestApi, type TestApi } from '../support/api.js';
import { eventually } from '../support/delivery.js';

let api: TestApi;
let loader: IntegrationLoader;
let id: number;

beforeAll(async () => {
  api = await startTestApi();
  loader = new IntegrationLoader(api.server.db, api.config.databaseUrl, createLogger('silent'));
  await loader.start();
  const p = await api.project();
  id = (await p.post('/api/v1/integrations', { name: 'cached', configJson: { url: 'https://hooks.example.com/a' }, eventSubscriptionsJson: ['flag.created'] })).body.id;
});
afterAll(async () => {
  await loader.stop();
  await api.close();
});

it('serves a cached copy only while it is at least as new as the job asks for', async () => {
  expect(await loader.load(id, 1)).toMatchObject({ id, version: 1, url: 'https://hooks.example.com/a' });
  // Changed behind the cache's back (no column the eviction trigger watches): the copy stays…
  await api.server.db.raw('UPDATE integrations SET version = 2 WHERE id = ?', [id]);
  expect((await loader.load(id, 1))!.version).toBe(1);
  // …until a job queued against the newer version asks for it.
  expect((await loader.load(id, 2))!.version).toBe(2);
});

it('drops the cached copy when the integration changes or is deleted (NOTIFY on COMMIT)', async () => {
  await loader.load(id, 1);
  await api.server.db('integrations').where('id', id).update({ url: 'https://hooks.example.com/b' });
  await eventually(async () => (await loader.load(id, 1))?.url === 'https://hooks.example.com/b');
  await api.server.db('integrations').where('id', id).delete();
  await eventually(async () => (await loader.load(id, 1)) === undefined || undefined);
});
