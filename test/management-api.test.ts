import { once } from 'node:events';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/logger.js';
import { insertEvent } from '../src/events/store.js';
import { integrationStore } from '../src/integrations/store.js';
import { lockProject } from '../src/projects/store.js';
import { environmentStore } from '../src/environments/store.js';
import { keysScopedTo } from '../src/apikeys/store.js';
import { startTestApi, type TestApi } from './support/api.js';
import { eventually } from './support/delivery.js';
import { eventsDuring } from './support/events.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());

/** The one event a change wrote, checked against every template variable of SPEC §5. */
function expectOneEvent(rows: any[], p: { projectId: number; userId: number }, expected: { action: string; resourceType: string; resourceId: number; resourceName: string; details?: string | RegExp }) {
  expect(rows).toHaveLength(1);
  const row = rows[0];
  expect(row).toMatchObject({
    project_id: p.projectId,
    action: expected.action,
    resource_type: expected.resourceType,
    resource_id: expected.resourceId,
    resource_name: expected.resourceName,
    user_id: p.userId,
  });
  expect(row.user_email).toMatch(/@example\.com$/);
  expect(row.user_name).toMatch(/^User \d+$/);
  expect(row.created_at).toBeInstanceOf(Date);
  if (typeof expected.details === 'string') expect(row.details).toBe(expected.details);
  else if (expected.details) expect(row.details).toMatch(expected.details);
}

describe('project', () => {
  it('reads and renames the project; a rename to the same name fires nothing', async () => {
    const p = await api.project();
    const got = await p.get('/api/v1/project');
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: p.projectId, name: expect.any(String), plan: 'free' });

    let answer: any;
    const rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.put('/api/v1/project', { name: 'Checkout team' });
    });
    expect(answer.status).toBe(200);
    expect(answer.body.name).toBe('Checkout team');
    expectOneEvent(rows, p, {
      action: 'project.updated',
      resourceType: 'project',
      resourceId: p.projectId,
      resourceName: 'Checkout team',
      details: `name: "${got.body.name}" → "Checkout team"`,
    });
    expect(await eventsDuring(api, p.projectId, () => p.put('/api/v1/project', { name: 'Checkout team' }))).toEqual([]);
  });

  it('refuses an empty or missing name', async () => {
    const p = await api.project();
    for (const body of [{}, { name: '' }, { name: 'x'.repeat(101) }, { name: 42 }]) {
      const answer = await p.put('/api/v1/project', body);
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe('validation_failed');
      expect(answer.body.error.details[0].path).toBe('name');
    }
  });
});

describe('environments', () => {
  it('create, read, list, update, delete — one event each, no-op none', async () => {
    const p = await api.project();
    let created: any;
    let rows = await eventsDuring(api, p.projectId, async () => {
      created = await p.post('/api/v1/environments', { key: 'production', name: 'Production' });
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.any(Number), key: 'production', name: 'Production' });
    const id = created.body.id;
    expectOneEvent(rows, p, { action: 'environment.created', resourceType: 'environment', resourceId: id, resourceName: 'production', details: 'created environment "production" (name: "Production")' });

    expect((await p.get(`/api/v1/environments/${id}`)).body).toEqual(created.body);
    expect((await p.get('/api/v1/environments')).body).toEqual([created.body]);

    rows = await eventsDuring(api, p.projectId, () => p.put(`/api/v1/environments/${id}`, { key: 'production', name: 'Prod' }));
    expectOneEvent(rows, p, { action: 'environment.updated', resourceType: 'environment', resourceId: id, resourceName: 'production', details: 'name: "Production" → "Prod"' });
    expect(await eventsDuring(api, p.projectId, () => p.put(`/api/v1/environments/${id}`, { name: 'Prod' }))).toEqual([]);

    rows = await eventsDuring(api, p.projectId, async () => expect((await p.delete(`/api/v1/environments/${id}`)).status).toBe(204));
    expectOneEvent(rows, p, { action: 'environment.deleted', resourceType: 'environment', resourceId: id, resourceName: 'production' });
    expect((await p.get(`/api/v1/environments/${id}`)).status).toBe(404);
  });

  it('keeps the key fixed: another key is 400 and changes nothing', async () => {
    const p = await api.project();
    const env = (await p.post('/api/v1/environments', { key: 'staging', name: 'Staging' })).body;
    const rows = await eventsDuring(api, p.projectId, async () => {
      const answer = await p.put(`/api/v1/environments/${env.id}`, { key: 'stage', name: 'Renamed' });
      expect(answer.status).toBe(400);
      expect(answer.body.error.details).toEqual([{ path: 'key', message: 'key cannot change after creation (it is "staging")' }]);
    });
    expect(rows).toEqual([]);
    expect((await p.get(`/api/v1/environments/${env.id}`)).body.name).toBe('Staging');
  });

  it('validates: missing fields, key pattern; a duplicate key is 409 and writes no event', async () => {
    const p = await api.project();
    const missing = await p.post('/api/v1/environments', {});
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.map((d: any) => d.path).sort()).toEqual(['key', 'name']);
    for (const key of ['Prod', '-prod', 'pro d', '', 'a'.repeat(101), 'é']) {
      const bad = await p.post('/api/v1/environments', { key, name: 'x' });
      expect(bad.status, key).toBe(400);
      expect(bad.body.error.details[0].path).toBe('key');
    }
    expect((await p.post('/api/v1/environments', { key: 'a'.repeat(100), name: 'long key' })).status).toBe(201);
    expect((await p.post('/api/v1/environments', { key: 'dev', name: 'Dev' })).status).toBe(201);
    const rows = await eventsDuring(api, p.projectId, async () => {
      const dup = await p.post('/api/v1/environments', { key: 'dev', name: 'Dev again' });
      expect(dup.status).toBe(409);
      expect(dup.body.error).toEqual({ code: 'conflict', message: 'an environment with key "dev" already exists in this project' });
    });
    expect(rows).toEqual([]);
    expect((await p.put('/api/v1/environments/424242', { name: 'x' })).status).toBe(404);
    expect((await p.delete('/api/v1/environments/424242')).status).toBe(404);
  });
});

describe('flags', () => {
  it('create, update, archive, unarchive, delete — one event each with words for what changed', async () => {
    const p = await api.project();
    let answer: any;
    let rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.post('/api/v1/flags', { key: 'new-checkout', name: 'New checkout', description: 'Faster' });
    });
    expect(answer.status).toBe(201);
    const id = answer.body.id;
    expect(answer.body).toMatchObject({ key: 'new-checkout', name: 'New checkout', description: 'Faster', archived: false, archivedAt: null });
    expectOneEvent(rows, p, { action: 'flag.created', resourceType: 'flag', resourceId: id, resourceName: 'new-checkout', details: 'created flag "new-checkout" (name: "New checkout", description: "Faster")' });

    rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.put(`/api/v1/flags/${id}`, { key: 'new-checkout', name: 'Newer checkout', description: 'Faster' });
    });
    expect(answer.body.name).toBe('Newer checkout');
    expectOneEvent(rows, p, { action: 'flag.updated', resourceType: 'flag', resourceId: id, resourceName: 'new-checkout', details: 'name: "New checkout" → "Newer checkout"' });
    expect(await eventsDuring(api, p.projectId, () => p.put(`/api/v1/flags/${id}`, { key: 'new-checkout', name: 'Newer checkout' }))).toEqual([]);

    rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.put(`/api/v1/flags/${id}`, { key: 'checkout-v2', name: 'Newer checkout', description: '' });
    });
    expectOneEvent(rows, p, { action: 'flag.updated', resourceType: 'flag', resourceId: id, resourceName: 'checkout-v2', details: 'key: "new-checkout" → "checkout-v2"; description: "Faster" → ""' });

    rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.post(`/api/v1/flags/${id}/archive`);
    });
    expect(answer.body).toMatchObject({ archived: true, archivedAt: expect.any(String) });
    expectOneEvent(rows, p, { action: 'flag.archived', resourceType: 'flag', resourceId: id, resourceName: 'checkout-v2', details: 'archived flag "checkout-v2"' });
    expect(await eventsDuring(api, p.projectId, () => p.post(`/api/v1/flags/${id}/archive`))).toEqual([]);
    expect((await p.get('/api/v1/flags')).body).toEqual([]);
    expect((await p.get('/api/v1/flags?archived=true')).body.map((f: any) => f.id)).toEqual([id]);

    rows = await eventsDuring(api, p.projectId, () => p.post(`/api/v1/flags/${id}/unarchive`));
    expectOneEvent(rows, p, { action: 'flag.unarchived', resourceType: 'flag', resourceId: id, resourceName: 'checkout-v2', details: 'restored flag "checkout-v2"' });
    expect(await eventsDuring(api, p.projectId, () => p.post(`/api/v1/flags/${id}/unarchive`))).toEqual([]);
    expect((await p.get('/api/v1/flags')).body.map((f: any) => f.id)).toEqual([id]);

    rows = await eventsDuring(api, p.projectId, async () => expect((await p.delete(`/api/v1/flags/${id}`)).status).toBe(204));
    expectOneEvent(rows, p, { action: 'flag.deleted', resourceType: 'flag', resourceId: id, resourceName: 'checkout-v2', details: 'deleted flag "checkout-v2"' });
    expect((await p.get(`/api/v1/flags/${id}`)).status).toBe(404);
    expect((await p.post(`/api/v1/flags/${id}/archive`)).status).toBe(404);
  });

  it('validates fields and answers 409 for a duplicate key, creating nothing', async () => {
    const p = await api.project();
    const bad = await p.post('/api/v1/flags', { key: 'Bad Key', name: '', description: 5 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((d: any) => d.path).sort()).toEqual(['description', 'key', 'name']);
    const notObject = await p.post('/api/v1/flags', ['a']);
    expect(notObject.status).toBe(400);
    expect(notObject.body.error.code).toBe('validation_failed');

    const first = await p.post('/api/v1/flags', { key: 'dark-mode', name: 'Dark mode' });
    const other = await p.post('/api/v1/flags', { key: 'light-mode', name: 'Light mode' });
    const rows = await eventsDuring(api, p.projectId, async () => {
      expect((await p.post('/api/v1/flags', { key: 'dark-mode', name: 'Again' })).status).toBe(409);
      const rename = await p.put(`/api/v1/flags/${other.body.id}`, { key: 'dark-mode', name: 'Light mode' });
      expect(rename.status).toBe(409);
      expect(rename.body.error.message).toBe('a flag with key "dark-mode" already exists in this project');
    });
    expect(rows).toEqual([]);
    expect((await p.get('/api/v1/flags')).body.map((f: any) => f.key)).toEqual(['dark-mode', 'light-mode']);
    expect(first.status).toBe(201);
  });

  it('allows the same key in two projects', async () => {
    const [a, b] = [await api.project(), await api.project()];
    expect((await a.post('/api/v1/flags', { key: 'shared', name: 'A' })).status).toBe(201);
    expect((await b.post('/api/v1/flags', { key: 'shared', name: 'B' })).status).toBe(201);
  });
});

describe('segments', () => {
  const conditions = [{ attribute: 'country', operator: 'in', values: ['DE', 'AT'] }];

  it('create, update, delete with events; no-op none; a segment in use cannot be deleted', async () => {
    const p = await api.project();
    let answer: any;
    let rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.post('/api/v1/segments', { key: 'dach', name: 'DACH', conditions });
    });
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({ key: 'dach', name: 'DACH', conditions });
    const id = answer.body.id;
    expectOneEvent(rows, p, { action: 'segment.created', resourceType: 'segment', resourceId: id, resourceName: 'dach', details: /^created segment "dach" \(name: "DACH", conditions: \[/ });

    const wider = [{ attribute: 'country', operator: 'in', values: ['DE', 'AT', 'CH'] }];
    rows = await eventsDuring(api, p.projectId, () => p.put(`/api/v1/segments/${id}`, { key: 'dach', name: 'DACH', conditions: wider }));
    expectOneEvent(rows, p, { action: 'segment.updated', resourceType: 'segment', resourceId: id, resourceName: 'dach', details: /^conditions: \[.*"AT"\]\}\] → \[.*"CH"\]\}\]$/ });
    expect(await eventsDuring(api, p.projectId, () => p.put(`/api/v1/segments/${id}`, { name: 'DACH', conditions: wider }))).toEqual([]);

    const flag = (await p.post('/api/v1/flags', { key: 'f', name: 'F' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'prod', name: 'Prod' })).body;
    expect((await p.put(`/api/v1/flags/${flag.id}/strategies/${env.id}`, { enabled: true, rolloutPercentage: 50, segmentIds: [id] })).status).toBe(200);
    rows = await eventsDuring(api, p.projectId, async () => {
      const inUse = await p.delete(`/api/v1/segments/${id}`);
      expect(inUse.status).toBe(409);
      expect(inUse.body.error.message).toBe('segment "dach" is used by the strategies of f/prod; remove it from them first');
    });
    expect(rows).toEqual([]);
    await p.put(`/api/v1/flags/${flag.id}/strategies/${env.id}`, { enabled: true, rolloutPercentage: 50, segmentIds: [] });

    rows = await eventsDuring(api, p.projectId, async () => expect((await p.delete(`/api/v1/segments/${id}`)).status).toBe(204));
    expectOneEvent(rows, p, { action: 'segment.deleted', resourceType: 'segment', resourceId: id, resourceName: 'dach', details: 'deleted segment "dach"' });
  });

  it('validates conditions by path', async () => {
    const p = await api.project();
    const answer = await p.post('/api/v1/segments', {
      key: 'bad',
      name: 'Bad',
      conditions: [{ attribute: 'country', operator: 'in', values: ['DE'] }, { attribute: '', operator: 'like', values: 'DE' }],
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.details.map((d: any) => d.path).sort()).toEqual(['conditions[1].attribute', 'conditions[1].operator', 'conditions[1].values']);
    expect((await p.post('/api/v1/segments', { key: 'nocond', name: 'x' })).body.error.details).toEqual([{ path: 'conditions', message: 'conditions is required' }]);
    expect((await p.get('/api/v1/segments')).body).toEqual([]);
    await p.post('/api/v1/segments', { key: 'one', name: 'One', conditions: [] });
    expect((await p.post('/api/v1/segments', { key: 'one', name: 'One', conditions: [] })).status).toBe(409);
  });
});

describe('strategies', () => {
  it('reads the default, saves, fires strategy.updated with flag/env as the name, no-op none', async () => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'search', name: 'Search' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'prod', name: 'Prod' })).body;
    const seg = (await p.post('/api/v1/segments', { key: 'beta', name: 'Beta', conditions: [] })).body;
    const path = `/api/v1/flags/${flag.id}/strategies/${env.id}`;

    const initial = await p.get(path);
    expect(initial.body).toEqual({ id: null, flagId: flag.id, environmentId: env.id, enabled: false, rolloutPercentage: 100, segmentIds: [], updatedAt: null });
    expect(await eventsDuring(api, p.projectId, () => p.put(path, { enabled: false, rolloutPercentage: 100 }))).toEqual([]);

    let answer: any;
    let rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.put(path, { enabled: true, rolloutPercentage: 25, segmentIds: [seg.id] });
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: expect.any(Number), enabled: true, rolloutPercentage: 25, segmentIds: [seg.id] });
    expectOneEvent(rows, p, {
      action: 'strategy.updated',
      resourceType: 'strategy',
      resourceId: answer.body.id,
      resourceName: 'search/prod',
      details: `enabled: false → true; rolloutPercentage: 100 → 25; segmentIds: [] → [${seg.id}]`,
    });
    expect((await p.get(path)).body).toEqual(answer.body);
    expect(await eventsDuring(api, p.projectId, () => p.put(path, { enabled: true, rolloutPercentage: 25, segmentIds: [seg.id] }))).toEqual([]);

    rows = await eventsDuring(api, p.projectId, () => p.put(path, { enabled: true, rolloutPercentage: 30, segmentIds: [seg.id] }));
    expect(rows.map((r) => r.details)).toEqual(['rolloutPercentage: 25 → 30']);
  });

  it('validates the body and refers only to this project\'s flag, environment and segments', async () => {
    const p = await api.project();
    const other = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'f', name: 'F' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'e', name: 'E' })).body;
    const foreignSeg = (await other.post('/api/v1/segments', { key: 's', name: 'S', conditions: [] })).body;
    const path = `/api/v1/flags/${flag.id}/strategies/${env.id}`;

    const bad = await p.put(path, { enabled: 'yes', rolloutPercentage: 101, segmentIds: [1, 1] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((d: any) => d.path).sort()).toEqual(['enabled', 'rolloutPercentage', 'segmentIds']);
    expect((await p.put(path, { enabled: true, rolloutPercentage: 2.5 })).body.error.details[0].path).toBe('rolloutPercentage');

    const foreign = await p.put(path, { enabled: true, rolloutPercentage: 5, segmentIds: [foreignSeg.id] });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details).toEqual([{ path: 'segmentIds[0]', message: `segment ${foreignSeg.id} does not exist in this project` }]);

    expect((await p.get(`/api/v1/flags/999999/strategies/${env.id}`)).status).toBe(404);
    expect((await p.put(`/api/v1/flags/${flag.id}/strategies/999999`, { enabled: true, rolloutPercentage: 5 })).status).toBe(404);
    expect((await p.get(path)).body.id).toBeNull();
  });
});

describe('API keys', () => {
  it('shows the token once, never lists it, and fires events without it', async () => {
    const p = await api.project();
    let answer: any;
    let rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.post('/api/v1/apikeys', { name: 'deploy bot' });
    });
    expect(answer.status).toBe(201);
    expect(answer.body.token).toMatch(/^mzk_[A-Za-z0-9_-]{43}$/);
    expect(answer.body.token.startsWith(answer.body.tokenPrefix)).toBe(true);
    const id = answer.body.id;
    expectOneEvent(rows, p, { action: 'apikey.created', resourceType: 'apikey', resourceId: id, resourceName: 'deploy bot' });
    expect(JSON.stringify(rows)).not.toContain(answer.body.token);

    const listed = await p.get('/api/v1/apikeys');
    expect(listed.body).toHaveLength(2);
    expect(JSON.stringify(listed.body)).not.toContain(answer.body.token);
    expect(listed.body.every((k: any) => !('token' in k) && !('secretHash' in k))).toBe(true);
    const stored = await api.server.db('api_keys').where('id', id).first();
    expect(JSON.stringify(stored)).not.toContain(answer.body.token);

    rows = await eventsDuring(api, p.projectId, () => p.put(`/api/v1/apikeys/${id}`, { name: 'deploy', enabled: false }));
    expectOneEvent(rows, p, { action: 'apikey.updated', resourceType: 'apikey', resourceId: id, resourceName: 'deploy', details: 'name: "deploy bot" → "deploy"; enabled: true → false' });
    expect(await eventsDuring(api, p.projectId, () => p.put(`/api/v1/apikeys/${id}`, { name: 'deploy', enabled: false }))).toEqual([]);

    rows = await eventsDuring(api, p.projectId, () => p.delete(`/api/v1/apikeys/${id}`));
    expectOneEvent(rows, p, { action: 'apikey.deleted', resourceType: 'apikey', resourceId: id, resourceName: 'deploy', details: 'deleted API key "deploy"' });
  });

  it('quotes a key name in details as every other event does: a quote, a backslash or a line break is escaped', async () => {
    const p = await api.project();
    const name = 'k "q" \\ nl\nx';
    let answer: any;
    let rows = await eventsDuring(api, p.projectId, async () => {
      answer = await p.post('/api/v1/apikeys', { name });
    });
    expect(rows[0].details).toBe('created API key "k \\"q\\" \\\\ nl\\nx" (enabled: true, for all environments)');
    rows = await eventsDuring(api, p.projectId, () => p.delete(`/api/v1/apikeys/${answer.body.id}`));
    expect(rows[0].details).toBe('deleted API key "k \\"q\\" \\\\ nl\\nx"');
    expect(rows[0].details).not.toContain('\n');
  });

  it('scopes a key to an environment of the project only', async () => {
    const p = await api.project();
    const other = await api.project();
    const env = (await p.post('/api/v1/environments', { key: 'prod', name: 'Prod' })).body;
    const foreignEnv = (await other.post('/api/v1/environments', { key: 'prod', name: 'Prod' })).body;
    expect((await p.post('/api/v1/apikeys', { name: 'scoped', environmentId: env.id })).body.environmentId).toBe(env.id);
    const bad = await p.post('/api/v1/apikeys', { name: 'x', environmentId: foreignEnv.id });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toEqual([{ path: 'environmentId', message: `environment ${foreignEnv.id} does not exist in this project` }]);
    expect((await p.post('/api/v1/apikeys', {})).body.error.details[0].path).toBe('name');
    expect((await p.put(`/api/v1/apikeys/${env.id}`, { name: 'x' })).body.error.details[0].path).toBe('enabled');
  });

  it('an environment with keys scoped to it is not deleted (409 naming them) until they are', async () => {
    const p = await api.project();
    const env = (await p.post('/api/v1/environments', { key: 'staging', name: 'Staging' })).body;
    const key = (await p.post('/api/v1/apikeys', { name: 'staging deployer', environmentId: env.id })).body;
    const rows = await eventsDuring(api, p.projectId, async () => {
      const refused = await p.delete(`/api/v1/environments/${env.id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.error).toEqual({ code: 'conflict', message: 'environment "staging" has API keys scoped to it ("staging deployer"); delete them first' });
    });
    expect(rows).toEqual([]);
    expect((await p.get(`/api/v1/apikeys/${key.id}`)).body.environmentId).toBe(env.id);
    expect((await p.delete(`/api/v1/apikeys/${key.id}`)).status).toBe(204);
    expect((await p.delete(`/api/v1/environments/${env.id}`)).status).toBe(204);
  });

  it('keeps one enabled key: disabling or deleting the last one is 409', async () => {
    const p = await api.project();
    const rows = await eventsDuring(api, p.projectId, async () => {
      const disable = await p.put(`/api/v1/apikeys/${p.apiKeyId}`, { name: 'bootstrap', enabled: false });
      expect(disable.status).toBe(409);
      expect(disable.body.error.message).toMatch(/last enabled API key/);
      expect((await p.delete(`/api/v1/apikeys/${p.apiKeyId}`)).status).toBe(409);
    });
    expect(rows).toEqual([]);
    expect((await p.get('/api/v1/project')).status).toBe(200);
  });

  it('two keys deleted at once cannot leave the project without one', async () => {
    const p = await api.project();
    const second = (await p.post('/api/v1/apikeys', { name: 'second' })).body;
    const viaSecond = api.client(`Bearer ${second.token}`);
    const answers = await Promise.all([p.delete(`/api/v1/apikeys/${second.id}`), viaSecond.delete(`/api/v1/apikeys/${p.apiKeyId}`)]);
    // One delete wins. The other is refused: 409 if it checked the count after the first committed, or 401
    // if its own key was the one deleted before it authenticated. Either way one enabled key remains.
    const [won, lost] = answers.map((a) => a.status).sort();
    expect(won).toBe(204);
    expect([401, 409]).toContain(lost);
    const enabled = await api.server.db('api_keys').where({ project_id: p.projectId, enabled: true }).count({ n: '*' }).first();
    expect(enabled!.n).toBe(1);
  });
});

describe('events list', () => {
  it('lists newest first with every variable, pages with before and limit', async () => {
    const p = await api.project();
    for (const key of ['a', 'b', 'c']) await p.post('/api/v1/flags', { key, name: key.toUpperCase() });
    const all = await p.get('/api/v1/events');
    expect(all.status).toBe(200);
    expect(all.body.map((e: any) => e.resourceName)).toEqual(['c', 'b', 'a']);
    expect(all.body[0]).toEqual({
      id: expect.any(Number),
      action: 'flag.created',
      resourceType: 'flag',
      resourceId: expect.any(Number),
      resourceName: 'c',
      details: 'created flag "c" (name: "C")',
      projectId: p.projectId,
      user: { id: p.userId, name: expect.any(String), email: expect.stringMatching(/@example\.com$/) },
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      queued: expect.any(Boolean),
      queuedAt: all.body[0].queued ? expect.any(String) : null,
    });
    const page = await p.get(`/api/v1/events?limit=1&before=${all.body[0].id}`);
    expect(page.body.map((e: any) => e.resourceName)).toEqual(['b']);
    for (const query of ['limit=0', 'limit=501', 'limit=x', 'before=-1']) {
      const bad = await p.get(`/api/v1/events?${query}`);
      expect(bad.status, query).toBe(400);
      expect(bad.body.error.details[0].path).toBe(query.split('=')[0]);
    }
  });
});

describe('events list size', () => {
  it('answers 50 events by default and up to 500 with limit (SPEC §3)', async () => {
    const p = await api.project();
    // 55 flag.created events, written straight as the API's transactions would, to keep the test quick.
    await api.server.db('events').insert(
      Array.from({ length: 55 }, (_, i) => ({
        project_id: p.projectId,
        action: 'flag.created',
        resource_type: 'flag',
        resource_id: i + 1,
        resource_name: `f${i}`,
        details: `created flag "f${i}"`,
        user_id: p.userId,
        user_name: 'Sizer',
        user_email: 'sizer@example.com',
      })),
    );
    const first = await p.get('/api/v1/events');
    expect(first.body).toHaveLength(50);
    expect(first.body[0].resourceName).toBe('f54');
    expect((await p.get('/api/v1/events?limit=500')).body).toHaveLength(55);
    expect((await p.get('/api/v1/events?limit=7')).body).toHaveLength(7);
  });
});

describe('project isolation', () => {
  it('answers 404 for every resource of another project and changes nothing there', async () => {
    const owner = await api.project();
    const stranger = await api.project();
    const flag = (await owner.post('/api/v1/flags', { key: 'secret-flag', name: 'S' })).body;
    const env = (await owner.post('/api/v1/environments', { key: 'prod', name: 'P' })).body;
    const seg = (await owner.post('/api/v1/segments', { key: 's', name: 'S', conditions: [] })).body;
    const probes: Array<[string, string, unknown?]> = [
      ['GET', `/api/v1/flags/${flag.id}`],
      ['PUT', `/api/v1/flags/${flag.id}`, { key: 'x', name: 'x' }],
      ['DELETE', `/api/v1/flags/${flag.id}`],
      ['POST', `/api/v1/flags/${flag.id}/archive`],
      ['POST', `/api/v1/flags/${flag.id}/unarchive`],
      ['GET', `/api/v1/flags/${flag.id}/strategies/${env.id}`],
      ['PUT', `/api/v1/flags/${flag.id}/strategies/${env.id}`, { enabled: true, rolloutPercentage: 1 }],
      ['GET', `/api/v1/environments/${env.id}`],
      ['PUT', `/api/v1/environments/${env.id}`, { name: 'x' }],
      ['DELETE', `/api/v1/environments/${env.id}`],
      ['GET', `/api/v1/segments/${seg.id}`],
      ['PUT', `/api/v1/segments/${seg.id}`, { name: 'x', conditions: [] }],
      ['DELETE', `/api/v1/segments/${seg.id}`],
      ['GET', `/api/v1/apikeys/${owner.apiKeyId}`],
      ['PUT', `/api/v1/apikeys/${owner.apiKeyId}`, { name: 'x', enabled: false }],
      ['DELETE', `/api/v1/apikeys/${owner.apiKeyId}`],
    ];
    const rows = await eventsDuring(api, owner.projectId, async () => {
      for (const [method, path, body] of probes) {
        const answer = body === undefined ? await stranger.send(method, path, '') : await stranger.send(method, path, JSON.stringify(body));
        expect(answer.status, `${method} ${path}`).toBe(404);
        expect(answer.body.error.code).toBe('not_found');
      }
    });
    expect(rows).toEqual([]);
    expect((await stranger.get('/api/v1/flags')).body).toEqual([]);
    expect((await stranger.get('/api/v1/events')).body).toEqual([]);
    expect((await owner.get(`/api/v1/flags/${flag.id}`)).body.name).toBe('S');
  });
});

describe('fields a body may not set', () => {
  it('ignores every key a schema does not name: no moving a key, a segment or a plan into place through the body', async () => {
    const owner = await api.project();
    const victim = await api.project();
    const key = (await owner.post('/api/v1/apikeys', { name: 'mine' })).body;
    const stolen = await owner.put(`/api/v1/apikeys/${key.id}`, { name: 'mine', enabled: true, projectId: victim.projectId, userId: victim.userId, secretHash: 'x', id: 1 });
    expect(stolen.status).toBe(200);
    expect(stolen.body).toMatchObject({ id: key.id, name: 'mine', enabled: true });
    const row = await api.server.db('api_keys').where('id', key.id).first();
    expect(row).toMatchObject({ project_id: owner.projectId, user_id: owner.userId });
    expect(row.secret_hash).not.toBe('x');
    // The token still works in its own project, and not in the other.
    const mine = api.client(`Bearer ${key.token}`);
    expect((await mine.get('/api/v1/project')).body.id).toBe(owner.projectId);

    const seg = await owner.post('/api/v1/segments', { key: 'planted', name: 'P', conditions: [{ attribute: 'a', operator: 'in', values: ['x'], extra: 1 }], projectId: victim.projectId, id: 424242 });
    expect(seg.status).toBe(201);
    expect(seg.body.id).not.toBe(424242);
    expect((await api.server.db('segments').where('id', seg.body.id).first()).project_id).toBe(owner.projectId);
    expect((await victim.get('/api/v1/segments')).body).toEqual([]);
    expect(JSON.stringify(seg.body.conditions)).not.toContain('extra');

    const name = (await owner.get('/api/v1/project')).body.name;
    expect(await eventsDuring(api, owner.projectId, () => owner.put('/api/v1/project', { name, plan: 'enterprise' }))).toEqual([]);
    expect((await owner.get('/api/v1/project')).body.plan).toBe('free');
  });

  it('takes a resource back as it was read: PUT of a GET body works and changes nothing', async () => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'round-trip', name: 'Round trip' })).body;
    const key = (await p.get(`/api/v1/apikeys/${p.apiKeyId}`)).body;
    const env = (await p.post('/api/v1/environments', { key: 'staging', name: 'Staging' })).body;
    const rows = await eventsDuring(api, p.projectId, async () => {
      for (const [path, body] of [[`/api/v1/flags/${flag.id}`, flag], [`/api/v1/apikeys/${p.apiKeyId}`, key], [`/api/v1/environments/${env.id}`, env]] as const) {
        const answer = await p.put(path, body);
        expect(answer.status, path).toBe(200);
      }
    });
    expect(rows).toEqual([]);
  });
});

describe('values PostgreSQL cannot take', () => {
  it('refuses the NUL character by field, storing nothing', async () => {
    const p = await api.project();
    const flag = await p.post('/api/v1/flags', { key: 'nul', name: 'a\u0000b' });
    expect(flag.status).toBe(400);
    expect(flag.body.error).toMatchObject({ code: 'validation_failed', details: [{ path: 'name', message: 'name must not contain the NUL character (\\u0000)' }] });
    const seg = await p.post('/api/v1/segments', { key: 's', name: 'S', conditions: [{ attribute: 'a', operator: 'in', values: ['ok', 'x\u0000'] }] });
    expect(seg.status).toBe(400);
    expect(seg.body.error.details.map((d: any) => d.path)).toEqual(['conditions[0].values[1]']);
    expect((await p.get('/api/v1/flags')).body).toEqual([]);
    expect((await p.get('/api/v1/segments')).body).toEqual([]);
  });

  it('refuses unpaired surrogates by field: jsonb failed with a 500, text stored U+FFFD and every resend fired an event', async () => {
    const p = await api.project();
    const seg = await p.post('/api/v1/segments', { key: 's', name: 'S', conditions: [{ attribute: '\ud800', operator: 'in', values: ['ok', 'x\udfff'] }] });
    expect(seg.status).toBe(400);
    expect(seg.body.error.details).toEqual([
      { path: 'conditions[0].attribute', message: 'conditions[0].attribute must not contain an unpaired surrogate (\\ud800–\\udfff): it is not Unicode text' },
      { path: 'conditions[0].values[1]', message: expect.stringContaining('unpaired surrogate') },
    ]);
    const flag = await p.post('/api/v1/flags', { key: 'lone', name: 'half \ud83d' });
    expect(flag.status).toBe(400);
    expect(flag.body.error.details.map((d: any) => d.path)).toEqual(['name']);
    expect((await p.put('/api/v1/project', { name: 'p\ud800' })).status).toBe(400);
    const integration = await p.post('/api/v1/integrations', { name: 'i', configJson: { url: 'https://hooks.example.com/x', headers: { 'X-Token': 'a\udc00' } }, eventSubscriptionsJson: ['flag.created'] });
    expect(integration.status).toBe(400);
    expect(integration.body.error.details.map((d: any) => d.path)).toContain('configJson.headers.X-Token');
    // configJson sent as text is stored as sent: a repeated key must not hide a surrogate from the check.
    const hidden = await p.post('/api/v1/integrations', { name: 'i', configJson: '{"url":"https://hooks.example.com/x","body":"a\ud800","body":"{}"}', eventSubscriptionsJson: ['flag.created'] });
    expect(hidden.status).toBe(400);
    expect(hidden.body.error.details.map((d: any) => d.path)).toEqual(['configJson']);
    // A pair is one emoji, as ever.
    expect((await p.post('/api/v1/flags', { key: 'whole', name: 'whole \ud83d\ude00' })).status).toBe(201);
    expect((await p.get('/api/v1/segments')).body).toEqual([]);
    expect((await p.get('/api/v1/events')).body.map((e: any) => e.action)).toEqual(['flag.created']);
  });

  it('refuses ids beyond PostgreSQL integers by field, not with a 500', async () => {
    const p = await api.project();
    const key = await p.post('/api/v1/apikeys', { name: 'k', environmentId: 3_000_000_000 });
    expect(key.status).toBe(400);
    expect(key.body.error.details).toEqual([{ path: 'environmentId', message: 'environmentId must be at most 2147483647' }]);
    const flag = (await p.post('/api/v1/flags', { key: 'f', name: 'F' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'e', name: 'E' })).body;
    const strategy = await p.put(`/api/v1/flags/${flag.id}/strategies/${env.id}`, { enabled: true, rolloutPercentage: 5, segmentIds: [3_000_000_000] });
    expect(strategy.status).toBe(400);
    expect(strategy.body.error.details[0].path).toBe('segmentIds[0]');
    expect((await p.get('/api/v1/events?before=10000000000000000000')).status).toBe(400);
    // Not a whole number, or given twice: said so, by name.
    for (const [query, message] of [
      ['limit=2.5', 'limit must be a whole number'],
      ['limit=abc', 'limit must be a whole number'],
      ['limit=1&limit=2', 'limit must be given once'],
      ['limit=0', 'limit must be greater than or equal to 1'],
    ]) {
      const answer = await p.get(`/api/v1/events?${query}`);
      expect([answer.status, answer.body.error.details], query).toEqual([400, [{ path: 'limit', message }]]);
    }
  });
});

describe('lengths, typed condition values and the archive query', () => {
  it('counts description, attribute and value lengths in characters, as names are', async () => {
    const p = await api.project();
    const emoji = '\u{1F600}';
    expect((await p.post('/api/v1/flags', { key: 'long', name: 'L', description: emoji.repeat(1500) })).status).toBe(201);
    const tooLong = await p.post('/api/v1/flags', { key: 'longer', name: 'L', description: 'x'.repeat(2001) });
    expect(tooLong.body.error.details).toEqual([{ path: 'description', message: 'description must be at most 2000 characters' }]);
    const seg = await p.post('/api/v1/segments', { key: 'emoji', name: 'E', conditions: [{ attribute: emoji.repeat(60), operator: 'in', values: [emoji.repeat(600)] }] });
    expect(seg.status).toBe(201);
  });

  it('a change holding its project\'s or an integration\'s lock holds up neither the project\'s other changes nor the records of that integration', async () => {
    const p = await api.project();
    const integration = (await p.post('/api/v1/integrations', { name: 'locked', configJson: { url: 'https://hooks.example.com/x' }, eventSubscriptionsJson: ['flag.created'] })).body;
    const holder = await api.server.db.transaction();
    try {
      // As an integration's create (the plan limit) and its update hold them, until they commit.
      await lockProject(holder, p.projectId);
      await integrationStore.lock(holder, p.projectId, integration.id);
      // A flag's change writes its event, whose foreign key takes a key-share lock of the project row;
      // an outcome batch takes one of its integrations'. Neither waits for the holder.
      // (Held up, the flag's change would give up after the api's 5 s lock_timeout: 503.)
      expect((await p.post('/api/v1/flags', { key: 'not-held-up', name: 'Not held up' })).status).toBe(201);
      await api.server.db.transaction(async (trx) => {
        await trx.raw(`SET LOCAL lock_timeout = '1s'`);
        await trx('integrations').where('id', integration.id).forKeyShare().first();
      });
    } finally {
      await holder.rollback();
    }
  });

  it('a delete holds off rows being made to refer to what it deletes: a key scoped to an environment being deleted is refused, never left unscoped', async () => {
    const p = await api.project();
    const env = (await p.post('/api/v1/environments', { key: 'doomed', name: 'Doomed' })).body;
    const deleting = await api.server.db.transaction();
    let created: Promise<{ status: number; body: any }> | undefined;
    try {
      // As the environment's delete does: lock it, find no key scoped to it, delete it.
      const row = await environmentStore.lockForDelete(deleting, p.projectId, env.id);
      expect(await keysScopedTo(deleting, env.id)).toEqual([]);
      const { rows } = (await deleting.raw('SELECT pg_backend_pid() AS pid')) as { rows: Array<{ pid: number }> };
      created = p.post('/api/v1/apikeys', { name: 'racing', environmentId: env.id });
      // The key's insert has read the environment and waits on the delete's lock (its foreign-key check).
      await eventually(async () => {
        const { rows: waiting } = (await api.server.db.raw('SELECT 1 FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))', [rows[0]!.pid])) as { rows: unknown[] };
        return waiting.length > 0;
      });
      await environmentStore.delete(deleting, row!);
      await deleting.commit();
    } catch (err) {
      await deleting.rollback();
      throw err;
    }
    const answer = await created!;
    expect(answer.status).toBe(409);
    expect((await p.get('/api/v1/apikeys')).body.map((k: any) => k.name)).not.toContain('racing');
  });

  it('refuses a name of only spaces or invisible characters, for every named resource', async () => {
    const p = await api.project();
    for (const [path, body] of [
      ['/api/v1/flags', { key: 'blank', name: ' \t ' }],
      ['/api/v1/segments', { key: 'blank', name: '\u200b', conditions: [] }],
      ['/api/v1/environments', { key: 'blank', name: '\u00a0' }],
      ['/api/v1/apikeys', { name: '  ' }],
    ] as const) {
      const answer = await p.post(path, body);
      expect([answer.status, answer.body.error?.details], path).toEqual([400, [{ path: 'name', message: 'name must not be blank (only spaces or invisible characters)' }]]);
    }
    expect((await p.put('/api/v1/project', { name: ' ' })).status).toBe(400);
    expect((await p.post('/api/v1/flags', { key: 'spaced', name: ' Spaced out ' })).status).toBe(201);
  });

  it('refuses condition values their operator can never match, by value, and a condition without values', async () => {
    const p = await api.project();
    const cases: Array<[string, string[], string]> = [
      ['num_gt', ['1', 'abc'], 'conditions[0].values[1] must be a number for num_gt'],
      ['num_eq', [' '], 'conditions[0].values[0] must be a number for num_eq'],
      ['num_lt', ['5', ' 5'], 'conditions[0].values[1] must be a number for num_lt'],
      ['num_lt', ['0x10'], 'conditions[0].values[0] must be a number for num_lt'],
      ['num_lte', ['.5'], 'conditions[0].values[0] must be a number for num_lte'],
      ['num_gte', ['Infinity'], 'conditions[0].values[0] must be a number for num_gte'],
      ['semver_eq', ['1.2.3-01'], 'conditions[0].values[0] must be a semantic version (1.2.3, 1.2.3-beta.1) for semver_eq'],
      ['semver_eq', ['01.2.3'], 'conditions[0].values[0] must be a semantic version (1.2.3, 1.2.3-beta.1) for semver_eq'],
      ['date_after', ['not a date'], 'conditions[0].values[0] must be a date in ISO 8601 (2026-01-31 or 2026-01-31T12:00:00Z) for date_after'],
      ['date_before', ['2026-02-30'], 'conditions[0].values[0] must be a date in ISO 8601 (2026-01-31 or 2026-01-31T12:00:00Z) for date_before'],
      ['date_after', ['2026-13-05'], 'conditions[0].values[0] must be a date in ISO 8601 (2026-01-31 or 2026-01-31T12:00:00Z) for date_after'],
      ['semver_gt', ['x.y'], 'conditions[0].values[0] must be a semantic version (1.2.3, 1.2.3-beta.1) for semver_gt'],
      ['in', [], 'conditions[0].values must have at least one value'],
    ];
    for (const [operator, values, message] of cases) {
      const answer = await p.post('/api/v1/segments', { key: `s-${operator}`, name: 'S', conditions: [{ attribute: 'a', operator, values }] });
      expect(answer.status, operator).toBe(400);
      expect(answer.body.error.details, operator).toEqual([{ path: message.split(' ')[0], message }]);
    }
    // Every bad value is named, not only the first.
    const several = await p.post('/api/v1/segments', { key: 's-several', name: 'S', conditions: [{ attribute: 'a', operator: 'num_gt', values: ['x', '1', 'y', 'z'] }] });
    expect(several.body.error.details.map((d: { path: string }) => d.path)).toEqual(['conditions[0].values[0]', 'conditions[0].values[2]', 'conditions[0].values[3]']);
    const good = await p.post('/api/v1/segments', {
      key: 'typed',
      name: 'Typed',
      conditions: [
        { attribute: 'age', operator: 'num_gte', values: ['18', '-2.5', '1e3'] },
        { attribute: 'signup', operator: 'date_after', values: ['2026-01-31', '2026-01-31T12:00:00Z', '2026-01-31T12:00:00.5+02:00'] },
        { attribute: 'app', operator: 'semver_lt', values: ['1.2.3', '2.0.0-beta.1+build.5'] },
        { attribute: 'plan', operator: 'str_contains', values: ['anything at all'] },
      ],
    });
    expect(good.status).toBe(201);
    expect((await p.get('/api/v1/segments')).body.map((s: any) => s.key)).toEqual(['typed']);
  });

  it('answers 400 for an archived query that is neither true nor false, instead of listing active flags', async () => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'old', name: 'Old' })).body;
    await p.post(`/api/v1/flags/${flag.id}/archive`, {});
    expect((await p.get('/api/v1/flags?archived=true')).body.map((f: any) => f.key)).toEqual(['old']);
    expect((await p.get('/api/v1/flags?archived=false')).body).toEqual([]);
    for (const query of ['archived=1', 'archived=TRUE', 'archived=yes', 'archived=true&archived=true']) {
      const answer = await p.get(`/api/v1/flags?${query}`);
      expect(answer.status, query).toBe(400);
      expect(answer.body.error.details, query).toEqual([{ path: 'archived', message: 'archived must be true or false' }]);
    }
  });
});

describe('deleting a whole project (an operator\'s clean-up; the API has no such call)', () => {
  it('deletes everything it holds, segments in use by strategies too, and nothing of another project', async () => {
    const p = await api.project();
    const other = await api.project();
    for (const q of [p, other]) {
      const flag = (await q.post('/api/v1/flags', { key: 'f', name: 'F' })).body;
      const env = (await q.post('/api/v1/environments', { key: 'prod', name: 'Prod' })).body;
      const segment = (await q.post('/api/v1/segments', { key: 's', name: 'S', conditions: [] })).body;
      expect((await q.put(`/api/v1/flags/${flag.id}/strategies/${env.id}`, { enabled: true, rolloutPercentage: 5, segmentIds: [segment.id] })).status).toBe(200);
    }
    await api.server.db('projects').where('id', p.projectId).delete();
    for (const table of ['flags', 'segments', 'environments', 'events', 'api_keys']) {
      expect(await api.server.db(table).where('project_id', p.projectId).count({ n: '*' }).first()).toEqual({ n: 0 });
      expect(((await api.server.db(table).where('project_id', other.projectId).count({ n: '*' }).first()) as { n: number }).n).toBeGreaterThan(0);
    }
    // A segment in use still cannot be deleted by itself.
    const segment = (await other.get('/api/v1/segments')).body[0];
    expect((await other.delete(`/api/v1/segments/${segment.id}`)).status).toBe(409);
    await expect(api.server.db('segments').where('id', segment.id).delete()).rejects.toMatchObject({ code: '23503' });
  });

  it('finds what an environment holds through indexes, not by reading every project\'s strategies and keys', async () => {
    const indexed = await api.server.db('pg_indexes').whereIn('tablename', ['strategies', 'api_keys']).pluck('indexdef');
    expect(indexed).toEqual(expect.arrayContaining([expect.stringMatching(/ON public\.strategies USING btree \(environment_id\)$/), expect.stringMatching(/ON public\.api_keys USING btree \(environment_id\)$/)]));
  });
});

describe('updatedAt', () => {
  it('is dated by the database, as createdAt is, not by an api host whose clock runs behind', async () => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'clock', name: 'Clock' })).body;
    const key = (await p.get('/api/v1/apikeys')).body[0];
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2001-01-01T00:00:00Z') });
    try {
      const changes = [
        await p.put(`/api/v1/flags/${flag.id}`, { key: 'clock', name: 'Clock 2' }),
        await p.put('/api/v1/project', { name: 'Renamed' }),
        await p.put(`/api/v1/apikeys/${key.id}`, { name: 'renamed key', enabled: true }),
        await p.post(`/api/v1/flags/${flag.id}/archive`),
      ];
      for (const { status, body } of changes) {
        expect(status).toBe(200);
        expect(Date.parse(body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(body.createdAt));
      }
      expect(Date.parse(changes[3]!.body.archivedAt)).toBeGreaterThanOrEqual(Date.parse(changes[3]!.body.createdAt));
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('strategy PUT of a saved strategy', () => {
  it('updates its row without taking a number of the shared id sequence', async () => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'seq', name: 'Seq' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'seq', name: 'Seq' })).body;
    const path = `/api/v1/flags/${flag.id}/strategies/${env.id}`;
    const first = (await p.put(path, { enabled: true, rolloutPercentage: 1 })).body;
    const sequence = async () => Number((await api.server.db.raw('SELECT last_value FROM strategies_id_seq')).rows[0].last_value);
    const before = await sequence();
    for (const rolloutPercentage of [2, 3, 4]) {
      const saved = await p.put(path, { enabled: true, rolloutPercentage });
      expect(saved.status).toBe(200);
      expect(saved.body).toMatchObject({ id: first.id, rolloutPercentage });
    }
    expect(await sequence()).toBe(before);
  });
});

describe('strategy PUT without segmentIds', () => {
  it('keeps the segments in force, like every PUT keeps the fields left out', async () => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'keep', name: 'Keep' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'prod', name: 'Prod' })).body;
    const seg = (await p.post('/api/v1/segments', { key: 'beta', name: 'Beta', conditions: [] })).body;
    const path = `/api/v1/flags/${flag.id}/strategies/${env.id}`;
    await p.put(path, { enabled: true, rolloutPercentage: 10, segmentIds: [seg.id] });
    const rows = await eventsDuring(api, p.projectId, () => p.put(path, { enabled: true, rolloutPercentage: 20 }));
    expect(rows.map((r) => r.details)).toEqual(['rolloutPercentage: 10 → 20']);
    expect((await p.get(path)).body.segmentIds).toEqual([seg.id]);
    // An empty list is how segments are taken off.
    await p.put(path, { enabled: true, rolloutPercentage: 20, segmentIds: [] });
    expect((await p.get(path)).body.segmentIds).toEqual([]);
  });
});

describe('bodies nested without end', () => {
  it('answers 400 naming the depth, not 500, however deep', async () => {
    const p = await api.project();
    // Written out: JSON.stringify itself cannot go this deep.
    const raw = `{"key":"deep","name":"Deep","description":${'['.repeat(5000)}"x"${']'.repeat(5000)}}`;
    const answer = await p.send('POST', '/api/v1/flags', raw, { 'content-type': 'application/json' });
    expect(answer.status).toBe(400);
    expect(answer.body.error.details).toEqual([{ path: '', message: 'the request body nests arrays and objects more than 32 levels deep' }]);
    expect((await p.get('/api/v1/flags')).body).toEqual([]);
  });

  it('answers 400 naming the field to a very wide array (too many items to spread into one call)', async () => {
    const p = await api.project();
    const answer = await p.post('/api/v1/flags', { key: 'wide', name: 'Wide', description: new Array(400_000).fill(0) });
    expect(answer.status).toBe(400);
    expect(answer.body.error.details.map((d: any) => d.path)).toEqual(['description']);
  });
});

describe('a client that goes away mid-upload', () => {
  it('is answered 400 invalid_json and logged as that, not as the database being unreachable (503)', async () => {
    const lines: string[] = [];
    const destination = new PassThrough().on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const own = await startTestApi({}, { log: createLogger('info', { destination }) });
    try {
      const p = await own.project();
      const { port } = new URL(own.server.url);
      const socket = connect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      socket.write(`POST /api/v1/flags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${p.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"key":`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      socket.destroy();
      const logged = await eventually(() => lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'request' && entry.path === '/api/v1/flags'));
      expect(logged.status).toBe(400);
      expect(lines.join('\n')).not.toContain('PostgreSQL unreachable');
      expect((await p.get('/api/v1/flags')).body).toEqual([]);
    } finally {
      await own.close();
    }
  });
});

describe('a change racing a delete', () => {
  it.each([
    ['other values than in force', { enabled: true, rolloutPercentage: 5 }],
    ['the values of the default', { enabled: false, rolloutPercentage: 100 }],
  ])('a strategy saved with %s for an environment deleted meanwhile is 404, neither 500 nor a silent 200', async (_, values) => {
    const p = await api.project();
    const flag = (await p.post('/api/v1/flags', { key: 'race', name: 'Race' })).body;
    const env = (await p.post('/api/v1/environments', { key: 'doomed', name: 'Doomed' })).body;
    await p.put(`/api/v1/flags/${flag.id}/strategies/${env.id}`, { enabled: true, rolloutPercentage: 50 });
    // The delete has not committed when the PUT reads the environment; the PUT waits for it.
    const trx = await api.server.db.transaction();
    await trx('environments').where('id', env.id).delete();
    const put = p.put(`/api/v1/flags/${flag.id}/strategies/${env.id}`, values);
    await eventually(async () => {
      const { rows } = await api.server.db.raw(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      return rows.length > 0 || undefined;
    });
    await trx.commit();
    const answer = await put;
    expect(answer.status).toBe(404);
    expect(answer.body.error).toEqual({ code: 'not_found', message: 'environment not found' });
    const actions = ((await p.get('/api/v1/events')).body as Array<{ action: string }>).map((e) => e.action);
    expect(actions.filter((a) => a === 'strategy.updated')).toHaveLength(1);
  });
});

describe('event rows', () => {
  it('cut long details between characters, never inside an emoji', async () => {
    const p = await api.project();
    for (const [i, pad] of ['', 'a'].entries()) {
      const description = pad + '😀'.repeat(1999);
      await p.post('/api/v1/flags', { key: `emoji-${i}`, name: 'E', description });
    }
    const rows = (await p.get('/api/v1/events')).body as Array<{ details: string }>;
    expect(rows).toHaveLength(2);
    for (const { details } of rows) {
      expect(details.endsWith('😀…')).toBe(true);
      expect([...details]).toHaveLength(2000);
      expect(details).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
    }
  });

  it('count details in characters, as the API counts text: 1000 emoji are not cut', async () => {
    const p = await api.project();
    const description = '😀'.repeat(1000); // 2000 UTF-16 units; with the rest of the details, more
    await p.post('/api/v1/flags', { key: 'emoji', name: 'E', description });
    const [row] = (await p.get('/api/v1/events')).body as Array<{ details: string }>;
    expect(row?.details.length).toBeGreaterThan(2000);
    expect(row?.details).toContain(description);
    expect(row?.details.endsWith('…')).toBe(false);
  });

  it('are timed when written, not when their transaction began', async () => {
    const p = await api.project();
    const actor = { projectId: p.projectId, apiKeyId: p.apiKeyId, user: { id: p.userId, name: 'Ada', email: 'ada@example.com' } };
    const { began, id } = await api.server.db.transaction(async (trx) => {
      const { rows } = await trx.raw('SELECT now() AS began');
      await trx.raw('SELECT pg_sleep(0.3)');
      return { began: rows[0].began as Date, id: await insertEvent(trx, actor, { action: 'flag.updated', resourceType: 'flag', resourceId: 1, resourceName: 'f', details: 'd' }) };
    });
    const row = await api.server.db('events').where('id', id).first();
    expect(row.created_at.getTime() - began.getTime()).toBeGreaterThanOrEqual(250);
  });
});
