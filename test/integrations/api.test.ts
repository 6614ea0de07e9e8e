import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ PLAN_LIMITS: '{"free":3,"pro":5}' });
});
afterAll(() => api.close());

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

/** The seed's own example (integrations.txt), with a URL the rules accept. */
const seedBody = () => ({
  name: 'My webhook',
  enabled: true,
  type: 'custom_webhook',
  configJson:
    '{"url":"https://my-server.example.com/hooks","headers":{"Content-Type":"application/json"},"body":"{ \\"event\\": \\"[[events.action]]\\", \\"resource\\": \\"[[events.resourceName]]\\" }"}',
  eventSubscriptionsJson: '["flag.created","flag.updated","flag.archived"]',
});

const withConfig = (config: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  ...seedBody(),
  configJson: JSON.stringify({ url: 'https://hooks.example.com/x', ...config }),
  ...extra,
});

async function storedCount(projectId: number): Promise<number> {
  const row = await api.server.db('integrations').where('project_id', projectId).count({ n: '*' }).first();
  return Number(row!.n);
}

describe('CRUD', () => {
  it('creates the seed example and answers the strings as sent', async () => {
    const p = await api.project();
    const created = await p.post('/api/v1/integrations', seedBody());
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(Number),
      name: 'My webhook',
      enabled: true,
      type: 'custom_webhook',
      configJson: seedBody().configJson,
      eventSubscriptionsJson: seedBody().eventSubscriptionsJson,
      lastError: null,
      lastErrorAt: null,
      lastDeliveryAt: null,
      lastDeliveryStatus: null,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect((await p.get(`/api/v1/integrations/${created.body.id}`)).body).toEqual(created.body);
    const list = await p.get('/api/v1/integrations');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([created.body]);
  });

  it('accepts already-parsed configJson and eventSubscriptionsJson, answering them as strings', async () => {
    const p = await api.project();
    const config = { url: 'https://hooks.example.com/a', body: '{"a":"{{ events.action }}"}' };
    const created = await p.post('/api/v1/integrations', { name: 'parsed', configJson: config, eventSubscriptionsJson: ['segment.created'] });
    expect(created.status).toBe(201);
    expect(created.body.configJson).toBe(JSON.stringify(config));
    expect(created.body.eventSubscriptionsJson).toBe('["segment.created"]');
    expect(created.body.enabled).toBe(true);
    expect(created.body.type).toBe('custom_webhook');
  });

  it('updates the whole integration (the seed PUT) and deletes it', async () => {
    const p = await api.project();
    const { id } = (await p.post('/api/v1/integrations', seedBody())).body;
    const update = { ...seedBody(), enabled: false, name: 'Renamed', eventSubscriptionsJson: '["flag.deleted"]' };
    const updated = await p.put(`/api/v1/integrations/${id}`, update);
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ id, enabled: false, name: 'Renamed', eventSubscriptionsJson: '["flag.deleted"]' });
    const row = await api.server.db('integrations').where('id', id).first();
    expect(row.events).toEqual(['flag.deleted']);
    expect(row.enabled).toBe(false);

    expect((await p.delete(`/api/v1/integrations/${id}`)).status).toBe(204);
    expect((await p.get(`/api/v1/integrations/${id}`)).status).toBe(404);
    expect((await p.delete(`/api/v1/integrations/${id}`)).status).toBe(404);
    expect((await p.put(`/api/v1/integrations/${id}`, seedBody())).status).toBe(404);
  });

  it('keeps a secret out of every answer, and a PUT of the mask keeps it', async () => {
    const p = await api.project();
    const body = withConfig({ secret: SECRET });
    const created = await p.post('/api/v1/integrations', body);
    expect(created.status).toBe(201);
    expect(created.body.configJson).toBe(JSON.stringify({ url: 'https://hooks.example.com/x', secret: '********' }));
    for (const answer of [created, await p.get(`/api/v1/integrations/${created.body.id}`), await p.get('/api/v1/integrations')]) {
      expect(JSON.stringify(answer.body)).not.toContain(SECRET.slice(6, 20));
    }
    const id = created.body.id;
    const secretOf = async () => (await api.server.db('integrations').where('id', id).first()).secret;
    expect(await secretOf()).toBe(SECRET);

    // GET → change → PUT back with the mask: the secret stays.
    const roundTrip = { ...created.body, name: 'renamed' };
    expect((await p.put(`/api/v1/integrations/${id}`, roundTrip)).status).toBe(200);
    expect(await secretOf()).toBe(SECRET);
    // A PUT without a secret removes it.
    expect((await p.put(`/api/v1/integrations/${id}`, withConfig({}))).status).toBe(200);
    expect(await secretOf()).toBeNull();
    // The mask on create is refused: there is nothing to keep.
    const masked = await p.post('/api/v1/integrations', withConfig({ secret: '********' }));
    expect(masked.status).toBe(400);
    expect(masked.body.error.details[0].path).toBe('configJson.secret');
  });

  it('answers 400, not 500, to a body nested thousands deep (the depth is checked before anything walks it)', async () => {
    const p = await api.project();
    const raw = `{"name":"deep","configJson":{"url":"https://hooks.example.com/"},"eventSubscriptionsJson":${'['.repeat(5000)}"flag.created"${']'.repeat(5000)}}`;
    const answer = await p.send('POST', '/api/v1/integrations', raw, { 'content-type': 'application/json' });
    expect(answer.status).toBe(400);
    expect(answer.body.error.details).toEqual([{ path: '', message: 'the request body nests arrays and objects more than 32 levels deep' }]);
    expect(await storedCount(p.projectId)).toBe(0);
  });

  it('masks the secret written with escapes while the same text appears plainly elsewhere', async () => {
    const p = await api.project();
    const slashy = `whsec_${Buffer.alloc(32, 0xff).toString('base64')}`; // "whsec_/////…8="
    expect(slashy).toContain('/');
    const configJson = `{"url":"https://hooks.example.com/x","headers":{"X-Key":"${slashy}"},"secret":"${slashy.replaceAll('/', '\\/')}"}`;
    const created = await p.post('/api/v1/integrations', { ...seedBody(), configJson });
    expect(created.status).toBe(201);
    for (const answer of [created, await p.get(`/api/v1/integrations/${created.body.id}`)]) {
      expect(JSON.parse(answer.body.configJson).secret).toBe('********');
    }
    expect((await api.server.db('integrations').where('id', created.body.id).first()).secret).toBe(slashy);
  });

  it('never answers a secret hidden by a repeated member whose last copy is empty, null or the mask', async () => {
    const p = await api.project({ plan: 'pro' });
    const hidden = (last: string) => `{"url":"https://hooks.example.com/x","secret":"${SECRET}","secret":${last}}`;
    for (const last of ['""', 'null']) {
      const created = await p.post('/api/v1/integrations', { ...seedBody(), configJson: hidden(last) });
      expect(created.status, last).toBe(201);
      expect(created.body.configJson).toBe(`{"url":"https://hooks.example.com/x","secret":${last}}`);
      expect(JSON.stringify((await p.get(`/api/v1/integrations/${created.body.id}`)).body)).not.toContain(SECRET.slice(6, 20));
      expect((await api.server.db('integrations').where('id', created.body.id).first()).secret).toBeNull();
    }
    const signed = await p.post('/api/v1/integrations', withConfig({ secret: SECRET }));
    const other = `whsec_${Buffer.alloc(40, 9).toString('base64')}`;
    const kept = await p.put(`/api/v1/integrations/${signed.body.id}`, { ...seedBody(), configJson: `{"url":"https://hooks.example.com/x","secret":"${other}","secret":"********"}` });
    expect(kept.status).toBe(200);
    expect(kept.body.configJson).toBe('{"url":"https://hooks.example.com/x","secret":"********"}');
    expect(JSON.stringify((await p.get('/api/v1/integrations')).body)).not.toContain(other.slice(6, 20));
    expect((await api.server.db('integrations').where('id', signed.body.id).first()).secret).toBe(SECRET);
    // Text that means what it says is kept as sent, its formatting with it.
    const spaced = await p.post('/api/v1/integrations', { ...seedBody(), configJson: '{ "url" : "https://hooks.example.com/x" }' });
    expect(spaced.body.configJson).toBe('{ "url" : "https://hooks.example.com/x" }');
  });

  it('masks a secret repeated thousands of times in one configJson just under 1 MiB, answering as for one', async () => {
    // Each copy once made the masking scan the whole text again: this request took minutes of the api's one thread.
    const p = await api.project({ plan: 'pro' });
    const copies = 12_000;
    const configJson = `{"url":"https://hooks.example.com/x"${`,"secret":"${SECRET}"`.repeat(copies)}}`;
    expect(configJson.length).toBeGreaterThan(600_000);
    const created = await p.post('/api/v1/integrations', { ...seedBody(), configJson });
    expect(created.status).toBe(201);
    expect(created.body.configJson).toBe('{"url":"https://hooks.example.com/x","secret":"********"}');
    expect((await api.server.db('integrations').where('id', created.body.id).first()).secret).toBe(SECRET);
  });

  it('reports integration usage on the project', async () => {
    const p = await api.project({ plan: 'pro' });
    await p.post('/api/v1/integrations', seedBody());
    expect((await p.get('/api/v1/project')).body.integrations).toEqual({ used: 1, limit: 5 });
  });
});

describe('conditional PUT (ETag, If-Match)', () => {
  it('answers an ETag that changes with every save, and a PUT with a stale If-Match is 412, nothing stored', async () => {
    const p = await api.project();
    const created = await p.post('/api/v1/integrations', seedBody());
    const tag = created.headers.get('etag');
    expect(tag).toMatch(/^"\d+"$/);
    const read = await p.get(`/api/v1/integrations/${created.body.id}`);
    expect(read.headers.get('etag')).toBe(tag);

    // Someone else saves meanwhile: the tag moves on.
    const elsewhere = await p.put(`/api/v1/integrations/${created.body.id}`, { ...seedBody(), name: 'Renamed elsewhere' });
    expect(elsewhere.status).toBe(200);
    const newTag = elsewhere.headers.get('etag');
    expect(newTag).not.toBe(tag);

    // The copy read before that must not undo it.
    const stale = await p.send('PUT', `/api/v1/integrations/${created.body.id}`, JSON.stringify({ ...read.body, enabled: false }), { 'if-match': tag! });
    expect(stale.status).toBe(412);
    expect(stale.body.error.code).toBe('precondition_failed');
    expect(stale.body.error.message).toContain('changed since');
    expect(stale.headers.get('etag')).toBe(newTag);
    const now = await p.get(`/api/v1/integrations/${created.body.id}`);
    expect(now.body).toMatchObject({ name: 'Renamed elsewhere', enabled: true });

    // With the current tag (among others, or *) it saves; a weak tag never matches (RFC 9110's strong comparison).
    const fresh = await p.send('PUT', `/api/v1/integrations/${created.body.id}`, JSON.stringify({ ...now.body, enabled: false }), { 'if-match': `"999999", ${newTag}` });
    expect(fresh.status).toBe(200);
    expect(fresh.body.enabled).toBe(false);
    const weak = await p.send('PUT', `/api/v1/integrations/${created.body.id}`, JSON.stringify(fresh.body), { 'if-match': `W/${fresh.headers.get('etag')}` });
    expect(weak.status).toBe(412);
    expect((await p.send('PUT', `/api/v1/integrations/${created.body.id}`, JSON.stringify(fresh.body), { 'if-match': '*' })).status).toBe(200);
    // Without If-Match a PUT saves as it always did.
    expect((await p.put(`/api/v1/integrations/${created.body.id}`, fresh.body)).status).toBe(200);
  });

  it('checks the body before the tag, and the tag only for an integration that exists', async () => {
    const p = await api.project();
    const created = await p.post('/api/v1/integrations', seedBody());
    const bad = await p.send('PUT', `/api/v1/integrations/${created.body.id}`, JSON.stringify({ ...seedBody(), name: '' }), { 'if-match': '"0"' });
    expect(bad.status).toBe(400);
    const missing = await p.send('PUT', '/api/v1/integrations/999999', JSON.stringify(seedBody()), { 'if-match': '"1"' });
    expect(missing.status).toBe(404);
  });
});

describe('validation: every failure is 400 validation_failed naming the field, nothing stored', () => {
  const cases: Array<[string, () => unknown, string[]]> = [
    ['missing everything', () => ({}), ['name', 'configJson', 'eventSubscriptionsJson']],
    ['empty name', () => ({ ...seedBody(), name: '' }), ['name']],
    ['long name', () => ({ ...seedBody(), name: 'n'.repeat(101) }), ['name']],
    ['name with NUL', () => ({ ...seedBody(), name: 'a\u0000b' }), ['name']],
    ['configJson nested without end', () => ({ ...seedBody(), configJson: `{"url":"https://hooks.example.com/","x":${'['.repeat(5000)}${']'.repeat(5000)}}` }), ['configJson']],
    ['url with NUL', () => withConfig({ url: 'https://hooks.example.com/a\u0000' }), ['configJson.url']],
    ['plain-text body with NUL', () => withConfig({ headers: { 'Content-Type': 'text/plain' }, body: 'x\u0000y' }), ['configJson.body']],
    ['enabled not boolean', () => ({ ...seedBody(), enabled: 'yes' }), ['enabled']],
    ['other type', () => ({ ...seedBody(), type: 'slack' }), ['type']],
    ['configJson not JSON', () => ({ ...seedBody(), configJson: '{url:' }), ['configJson']],
    ['configJson an array', () => ({ ...seedBody(), configJson: '[]' }), ['configJson']],
    ['configJson a number', () => ({ ...seedBody(), configJson: 5 }), ['configJson']],
    ['unknown config field', () => withConfig({ method: 'PUT' }), ['configJson.method']],
    ['missing url', () => ({ ...seedBody(), configJson: '{}' }), ['configJson.url']],
    ['http url', () => withConfig({ url: 'http://hooks.example.com/' }), ['configJson.url']],
    ['relative url', () => withConfig({ url: '/hooks' }), ['configJson.url']],
    ['url with credentials', () => withConfig({ url: 'https://user:pass@hooks.example.com/' }), ['configJson.url']],
    ['url with an empty user:password part', () => withConfig({ url: 'https://:@hooks.example.com/' }), ['configJson.url']],
    ['url with an empty user part', () => withConfig({ url: 'https://@hooks.example.com/' }), ['configJson.url']],
    ['url with port 0', () => withConfig({ url: 'https://hooks.example.com:0/' }), ['configJson.url']],
    ['url too long', () => withConfig({ url: `https://hooks.example.com/${'a'.repeat(2030)}` }), ['configJson.url']],
    ['localhost', () => withConfig({ url: 'https://localhost/hook' }), ['configJson.url']],
    ['localhost with dot', () => withConfig({ url: 'https://api.localhost./hook' }), ['configJson.url']],
    ['private address', () => withConfig({ url: 'https://10.1.2.3/hook' }), ['configJson.url']],
    ['metadata address', () => withConfig({ url: 'https://169.254.169.254/latest' }), ['configJson.url']],
    ['hex spelling of a private address', () => withConfig({ url: 'https://0x0a000001/' }), ['configJson.url']],
    ['IPv6 unique local', () => withConfig({ url: 'https://[fd00:ec2::254]/' }), ['configJson.url']],
    ['IPv4-mapped private', () => withConfig({ url: 'https://[::ffff:192.168.0.1]/' }), ['configJson.url']],
    ['headers not an object', () => withConfig({ headers: ['a'] }), ['configJson.headers']],
    ['bad header name', () => withConfig({ headers: { 'X Foo': 'a' } }), ['configJson.headers.X Foo']],
    ['header with CRLF', () => withConfig({ headers: { 'X-Foo': 'a\r\nHost: evil' } }), ['configJson.headers.X-Foo']],
    ['header with NUL', () => withConfig({ headers: { 'X-Foo': 'a\u0000' } }), ['configJson.headers.X-Foo']],
    ['header value not a string', () => withConfig({ headers: { 'X-Foo': 5 } }), ['configJson.headers.X-Foo']],
    ['header value too long', () => withConfig({ headers: { 'X-Foo': 'v'.repeat(4097) } }), ['configJson.headers.X-Foo']],
    ['header name too long', () => withConfig({ headers: { [`X-${'n'.repeat(255)}`]: 'v' } }), [`configJson.headers.X-${'n'.repeat(255)}`]],
    ['reserved Host', () => withConfig({ headers: { host: 'evil.example' } }), ['configJson.headers.host']],
    ['reserved Content-Length', () => withConfig({ headers: { 'Content-Length': '1' } }), ['configJson.headers.Content-Length']],
    ['reserved Transfer-Encoding', () => withConfig({ headers: { 'Transfer-Encoding': 'chunked' } }), ['configJson.headers.Transfer-Encoding']],
    ['reserved Connection', () => withConfig({ headers: { Connection: 'close' } }), ['configJson.headers.Connection']],
    ['reserved Keep-Alive', () => withConfig({ headers: { 'Keep-Alive': '1' } }), ['configJson.headers.Keep-Alive']],
    ['reserved TE', () => withConfig({ headers: { TE: 'trailers' } }), ['configJson.headers.TE']],
    ['reserved Upgrade', () => withConfig({ headers: { Upgrade: 'h2c' } }), ['configJson.headers.Upgrade']],
    ['reserved Proxy-*', () => withConfig({ headers: { 'Proxy-Authorization': 'x' } }), ['configJson.headers.Proxy-Authorization']],
    ['reserved webhook-*', () => withConfig({ headers: { 'Webhook-Signature': 'x' } }), ['configJson.headers.Webhook-Signature']],
    ['case-insensitive duplicate', () => withConfig({ headers: { 'X-A': '1', 'x-a': '2' } }), ['configJson.headers.x-a']],
    ['31 headers', () => withConfig({ headers: Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`X-H${i}`, 'v'])) }), ['configJson.headers']],
    ['body not a string', () => withConfig({ body: { a: 1 } }), ['configJson.body']],
    ['body too large', () => withConfig({ body: `"${'x'.repeat(65536)}"` }), ['configJson.body']],
    ['unknown variable', () => withConfig({ body: '{"a":"{{events.nope}}"}' }), ['configJson.body']],
    ['template not JSON', () => withConfig({ body: '{"a": [[events.resourceName]]}' }), ['configJson.body']],
    ['malformed secret', () => withConfig({ secret: 'hunter2' }), ['configJson.secret']],
    ['short secret', () => withConfig({ secret: `whsec_${Buffer.alloc(8).toString('base64')}` }), ['configJson.secret']],
    ['events not JSON', () => ({ ...seedBody(), eventSubscriptionsJson: '[flag.created' }), ['eventSubscriptionsJson']],
    ['events an object', () => ({ ...seedBody(), eventSubscriptionsJson: '{}' }), ['eventSubscriptionsJson']],
    ['no events', () => ({ ...seedBody(), eventSubscriptionsJson: '[]' }), ['eventSubscriptionsJson']],
    ['unknown event', () => ({ ...seedBody(), eventSubscriptionsJson: '["flag.created","flag.exploded"]' }), ['eventSubscriptionsJson[1]']],
    ['test event not subscribable', () => ({ ...seedBody(), eventSubscriptionsJson: ['integration.test'] }), ['eventSubscriptionsJson[0]']],
    ['duplicate event', () => ({ ...seedBody(), eventSubscriptionsJson: ['flag.created', 'segment.created', 'flag.created'] }), ['eventSubscriptionsJson[2]']],
    ['url with spaces around it', () => withConfig({ url: ' https://hooks.example.com/x ' }), ['configJson.url']],
    ['url with a tab inside', () => withConfig({ url: 'https://hooks.exa\tmple.com/x' }), ['configJson.url']],
    ['url without //', () => withConfig({ url: 'https:hooks.example.com/x' }), ['configJson.url']],
    ['empty url', () => withConfig({ url: '' }), ['configJson.url']],
    ['empty Content-Type', () => withConfig({ headers: { 'Content-Type': ' ' } }), ['configJson.headers.Content-Type']],
    ['Expect', () => withConfig({ headers: { Expect: '100-continue' } }), ['configJson.headers.Expect']],
    ['__proto__ header', () => ({ ...seedBody(), configJson: '{"url":"https://hooks.example.com/x","headers":{"__proto__":"v"}}' }), ['configJson.headers.__proto__']],
    ['C1 control characters in a header value', () => withConfig({ headers: { 'X-C1': 'a\u0085b\u009fc' } }), ['configJson.headers.X-C1']],
    ['Latin-1 header value over 4096 bytes', () => withConfig({ headers: { 'X-Foo': 'é'.repeat(4097) } }), ['configJson.headers.X-Foo']],
    ['placeholder after a backslash', () => withConfig({ body: '{"a":"\\[[events.action]]\\[[events.action]]"}' }), ['configJson.body']],
    ['101 placeholders', () => withConfig({ body: JSON.stringify({ a: '[[events.details]]'.repeat(101) }) }), ['configJson.body']],
    ['name of 101 emoji', () => ({ ...seedBody(), name: '🚀'.repeat(101) }), ['name']],
    ['blank name', () => ({ ...seedBody(), name: '   ' }), ['name']],
    ['name of a zero-width space', () => ({ ...seedBody(), name: '\u200b\u00a0' }), ['name']],
    ['NUL beside other faults', () => withConfig({ url: 'http://hooks.example.com/', body: 'a\u0000', headers: { 'X-A': 'a\r\nb' } }), ['configJson.url', 'configJson.body', 'configJson.headers.X-A']],
    ['several at once', () => ({ name: '', configJson: { url: 'ftp://x', headers: { Host: 'y' } }, eventSubscriptionsJson: ['nope'] }), ['name', 'configJson.url', 'configJson.headers.Host', 'eventSubscriptionsJson[0]']],
  ];

  const expectRefused = (answer: any, paths: string[]) => {
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('validation_failed');
    expect([...new Set(answer.body.error.details.map((d: any) => d.path))].sort()).toEqual([...paths].sort());
    for (const detail of answer.body.error.details) expect(detail.message).toEqual(expect.any(String));
  };

  it.each(cases)('%s', async (_name, body, paths) => {
    const p = await api.project();
    expectRefused(await p.post('/api/v1/integrations', body()), paths);
    expect(await storedCount(p.projectId)).toBe(0);

    const existing = (await p.post('/api/v1/integrations', seedBody())).body;
    expectRefused(await p.put(`/api/v1/integrations/${existing.id}`, body()), paths);
    expect((await p.get('/api/v1/integrations')).body).toEqual([existing]);
  });

  it('gives one detail per fault: an empty url is not also "not an https URL", a body with NUL is not also "not JSON"', async () => {
    const p = await api.project();
    const answer = await p.post('/api/v1/integrations', withConfig({ url: '', body: '{"a":\u0000' }));
    expect(answer.body.error.details).toEqual([
      { path: 'configJson.body', message: 'configJson.body must not contain the NUL character (\\u0000)' },
      { path: 'configJson.url', message: 'configJson.url is required' },
    ]);
  });

  it('names unknown template variables in the message', async () => {
    const p = await api.project();
    const answer = await p.post('/api/v1/integrations', withConfig({ body: 'x {{events.nope}} [[ events.user.phone ]]', headers: { 'Content-Type': 'text/plain' } }));
    expect(answer.body.error.details).toEqual([
      { path: 'configJson.body', message: 'unknown variable "events.nope"' },
      { path: 'configJson.body', message: 'unknown variable "events.user.phone"' },
    ]);
  });

  it('accepts what the rules allow', async () => {
    const p = await api.project({ plan: 'pro' });
    const ok = [
      withConfig({ url: 'https://hooks.example.com:8443/a?b=c#d', headers: { Authorization: 'Bearer x', 'X-Team': 'ü' }, secret: SECRET }),
      withConfig({ headers: { 'Content-Type': 'text/plain' }, body: 'flag [[events.resourceName]] "unquoted" {{events.details}}' }),
      withConfig({ body: '{"id": {{events.resourceId}}, "who": "{{ events.user.email }}", "list": [[1,2]]}' }),
      withConfig({ url: 'https://127.0.0.1:9/allowed-by-WEBHOOK_ALLOWED_CIDRS', body: '' }),
      withConfig({ headers: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`X-H${i}`, 'v'])) }),
    ];
    for (const body of ok) {
      const answer = await p.post('/api/v1/integrations', body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    }
  });
});

describe('round trips and edge cases the rules allow', () => {
  it('masks only the secret member: a header holding the same text keeps its value through GET → PUT', async () => {
    const p = await api.project();
    const created = await p.post('/api/v1/integrations', withConfig({ headers: { Authorization: SECRET }, secret: SECRET }));
    expect(created.status).toBe(201);
    expect(JSON.parse(created.body.configJson)).toEqual({ url: 'https://hooks.example.com/x', headers: { Authorization: SECRET }, secret: '********' });
    const id = created.body.id;
    const read = (await p.get(`/api/v1/integrations/${id}`)).body;
    expect((await p.put(`/api/v1/integrations/${id}`, { ...read, enabled: false })).status).toBe(200);
    const row = await api.server.db('integrations').where('id', id).first();
    expect(row.headers).toEqual({ Authorization: SECRET });
    expect(row.secret).toBe(SECRET);
  });

  it('never stores the secret where a repeated member hides it from the parsed value', async () => {
    const p = await api.project({ plan: 'pro' });
    for (const configJson of [
      `{"url":"https://hooks.example.com/x","secret":"${SECRET}","secret":"${SECRET}"}`,
      `{"url":"https://hooks.example.com/x","headers":{"X-A":"${SECRET}","X-A":"v"},"secret":"${SECRET}"}`,
      `{"url":"https://hooks.example.com/x","secret":"\\u0077${SECRET.slice(1)}","secret":"${SECRET}"}`,
      `{"url":"https://hooks.example.com/x","headers":{"Authorization":"Bearer ${SECRET}","Authorization":"Bearer x"},"secret":"${SECRET}"}`,
    ]) {
      const created = await p.post('/api/v1/integrations', { ...seedBody(), configJson });
      expect(created.status).toBe(201);
      expect(created.body.configJson).not.toContain(SECRET.slice(1));
      const row = await api.server.db('integrations').where('id', created.body.id).first();
      expect(row.config_json).not.toContain(SECRET.slice(1));
      expect(row.secret).toBe(SECRET);
    }
  });

  it('refuses the mask on an integration that has no secret, keeping it as it was', async () => {
    const p = await api.project();
    const created = (await p.post('/api/v1/integrations', withConfig({}))).body;
    const answer = await p.put(`/api/v1/integrations/${created.id}`, withConfig({ secret: '********' }, { name: 'changed' }));
    expect(answer.status).toBe(400);
    expect(answer.body.error.details).toEqual([{ path: 'configJson.secret', message: 'configJson.secret "********" keeps a stored secret, and this integration has none' }]);
    expect((await p.get(`/api/v1/integrations/${created.id}`)).body).toEqual(created);
  });

  it('accepts a header named constructor, 4096 Latin-1 characters, a name of 100 emoji and placeholders spaced with a no-break space', async () => {
    const p = await api.project({ plan: 'pro' });
    const body = withConfig({ headers: { constructor: 'v', 'X-Latin': 'é'.repeat(4096) }, body: '{"a":"{{\u00a0events.action\u00a0}}"}' }, { name: '🚀'.repeat(100) });
    const answer = await p.post('/api/v1/integrations', body);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const row = await api.server.db('integrations').where('id', answer.body.id).first();
    expect(Object.keys(row.headers).sort()).toEqual(['X-Latin', 'constructor']);
  });
});

describe('isolation and limits', () => {
  it('answers 404 for another project\'s integration and changes nothing', async () => {
    const owner = await api.project();
    const stranger = await api.project();
    const { id } = (await owner.post('/api/v1/integrations', seedBody())).body;
    expect((await stranger.get(`/api/v1/integrations/${id}`)).status).toBe(404);
    expect((await stranger.put(`/api/v1/integrations/${id}`, { ...seedBody(), name: 'stolen' })).status).toBe(404);
    expect((await stranger.delete(`/api/v1/integrations/${id}`)).status).toBe(404);
    expect((await stranger.get('/api/v1/integrations')).body).toEqual([]);
    expect((await owner.get(`/api/v1/integrations/${id}`)).body.name).toBe('My webhook');
  });

  it('refuses one more than the plan allows with 403 integration_limit_reached, storing nothing', async () => {
    const p = await api.project();
    for (let i = 0; i < 3; i++) expect((await p.post('/api/v1/integrations', seedBody())).status).toBe(201);
    const fourth = await p.post('/api/v1/integrations', seedBody());
    expect(fourth.status).toBe(403);
    expect(fourth.body.error.code).toBe('integration_limit_reached');
    expect(fourth.body.error.message).toBe('the free plan allows 3 integrations; delete one or upgrade the plan');
    expect(await storedCount(p.projectId)).toBe(3);
  });

  it('lets exactly one of many concurrent creates take the last slot', async () => {
    const p = await api.project({ plan: 'pro' });
    for (let i = 0; i < 4; i++) await p.post('/api/v1/integrations', seedBody());
    const answers = await Promise.all(Array.from({ length: 8 }, () => p.post('/api/v1/integrations', seedBody())));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 403, 403, 403, 403, 403, 403, 403]);
    expect(await storedCount(p.projectId)).toBe(5);
  });
});
