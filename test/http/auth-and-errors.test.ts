import { once } from 'node:events';
import { createConnection } from 'node:net';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { startTestApi, type TestApi } from '../support/api.js';
import { rawHttp } from '../support/raw-http.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());

describe('authentication', () => {
  it.each([
    ['missing', undefined],
    ['malformed', 'Token abc'],
    ['empty bearer', 'Bearer '],
    ['unknown', 'Bearer mzk_doesnotexist'],
  ])('answers 401 unauthorized for a %s key', async (_case, header) => {
    const answer = await api.client(header).get('/api/v1/flags');
    expect(answer.status).toBe(401);
    expect(answer.body.error.code).toBe('unauthorized');
    expect(answer.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('answers 401 for a disabled key and for a deleted key, and 200 again for a live one', async () => {
    const p = await api.project();
    const second = await p.post('/api/v1/apikeys', { name: 'ci' });
    expect(second.status).toBe(201);
    const ci = api.client(`Bearer ${second.body.token}`);
    expect((await ci.get('/api/v1/flags')).status).toBe(200);

    expect((await p.put(`/api/v1/apikeys/${second.body.id}`, { name: 'ci', enabled: false })).status).toBe(200);
    expect((await ci.get('/api/v1/flags')).status).toBe(401);

    expect((await p.put(`/api/v1/apikeys/${second.body.id}`, { name: 'ci', enabled: true })).status).toBe(200);
    expect((await ci.get('/api/v1/flags')).status).toBe(200);

    expect((await p.delete(`/api/v1/apikeys/${second.body.id}`)).status).toBe(204);
    const after = await ci.get('/api/v1/flags');
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('unauthorized');
  });

  it('refuses a request whose key was disabled or deleted while its body was still arriving, nothing stored', async () => {
    const p = await api.project();
    for (const revoke of ['disable', 'delete'] as const) {
      const second = await p.post('/api/v1/apikeys', { name: `slow-${revoke}` });
      expect(second.status).toBe(201);
      const body = Buffer.from(JSON.stringify({ key: `after-${revoke}`, name: 'Written after the revoke' }));
      // Headers and the first byte of the body now; the rest once the key is revoked.
      const { hostname, port } = new URL(api.server.url);
      const socket = createConnection({ host: hostname, port: Number(port) });
      await once(socket, 'connect');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      const head = [`POST /api/v1/flags HTTP/1.1`, `Host: ${hostname}:${port}`, 'Connection: close', 'Content-Type: application/json', `Content-Length: ${body.length}`, `Authorization: Bearer ${second.body.token}`];
      socket.write(`${head.join('\r\n')}\r\n\r\n`);
      socket.write(body.subarray(0, 1));
      await new Promise((resolve) => setTimeout(resolve, 200)); // the key is looked up on the headers meanwhile
      const revoked = revoke === 'disable' ? await p.put(`/api/v1/apikeys/${second.body.id}`, { name: `slow-${revoke}`, enabled: false }) : await p.delete(`/api/v1/apikeys/${second.body.id}`);
      expect(revoked.status).toBe(revoke === 'disable' ? 200 : 204);
      socket.write(body.subarray(1)); // the server closes after its answer (Connection: close)
      await once(socket, 'close');
      const answer = Buffer.concat(chunks).toString('utf8');
      expect(answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(answer).toContain('"code":"unauthorized"');
      expect((await p.get('/api/v1/flags')).body.map((flag: { key: string }) => flag.key)).not.toContain(`after-${revoke}`);
    }
  });

  it.each([
    ['an unknown route', 'GET', '/api/v1/nope'],
    ['a method the route does not have', 'PATCH', '/api/v1/flags'],
    ['the bare prefix', 'GET', '/api/v1'],
    ['the prefix in capitals', 'GET', '/API/v1/project'],
    ['the version in capitals', 'DELETE', '/api/V1/integrations/1'],
    ['a mixed-case prefix with a body', 'POST', '/Api/v1/flags'],
  ])('answers 401 without a key for %s, before any routing', async (_case, method, path) => {
    const client = api.client(undefined);
    const answer = method === 'GET' ? await client.get(path) : await client.send(method, path, JSON.stringify({ key: 'sneaky', name: 'Sneaky' }));
    expect(answer.status).toBe(401);
    expect(answer.body.error.code).toBe('unauthorized');
    expect(answer.headers.get('cache-control')).toBe('no-store');
  });

  it('serves the prefix in any letter case as the router matches it, with the key checked and the body read', async () => {
    const p = await api.project();
    const created = await api.client(`Bearer ${p.token}`).send('POST', '/API/V1/flags', JSON.stringify({ key: 'upper', name: 'Upper' }));
    expect(created.status).toBe(201);
    expect(created.body.key).toBe('upper');
    const project = await api.client(`Bearer ${p.token}`).get('/Api/v1/project');
    expect(project.status).toBe(200);
    expect(project.headers.get('cache-control')).toBe('no-store');
  });

  it('answers 404 and 405 for unknown routes and methods once the key is good', async () => {
    const p = await api.project();
    expect((await p.get('/api/v1/nope')).body.error.code).toBe('not_found');
    expect((await p.send('PATCH', '/api/v1/flags', '{}')).body.error.code).toBe('method_not_allowed');
  });

  it('answers 401 when Authorization comes twice, whichever of the two is good', async () => {
    const p = await api.project();
    const other = await api.project();
    expect((await rawHttp(api.server.url, 'GET', '/api/v1/project', [['Authorization', `Bearer ${p.token}`]])).status).toBe(200);
    for (const pair of [
      [p.token, other.token],
      [p.token, 'mzk_junk'],
      ['mzk_junk', p.token],
    ]) {
      const answer = await rawHttp(api.server.url, 'GET', '/api/v1/project', pair.map((token) => ['authorization', `Bearer ${token}`] as [string, string]));
      expect(answer.status, pair.join(' then ')).toBe(401);
      expect(JSON.parse(answer.body).error).toMatchObject({ code: 'unauthorized', message: expect.stringContaining('more than one Authorization header') });
    }
  });

  it('accepts the scheme in any case', async () => {
    const p = await api.project();
    expect((await api.client(`bearer ${p.token}`).get('/api/v1/project')).status).toBe(200);
  });
});

describe('projects sharing one api', () => {
  it('answers another project while one project\'s requests pile up waiting for a row lock', async () => {
    const a = await api.project();
    const b = await api.project();
    const conditions = [{ attribute: 'country', operator: 'in', values: ['DE'] }];
    const segment = await a.post('/api/v1/segments', { key: 'hot', name: 'Hot', conditions });
    expect(segment.status).toBe(201);
    const second = await a.post('/api/v1/apikeys', { name: 'queued' });
    expect(second.status).toBe(201);
    // The segment's row is held, so every PUT of it waits for the lock, on a connection of the pool.
    const holder = await api.server.db.transaction();
    try {
      await holder('segments').where({ id: segment.body.id }).forUpdate();
      const settled: number[] = [];
      const puts = Array.from({ length: 20 }, (_, i) => a.put(`/api/v1/segments/${segment.body.id}`, { name: `Hot ${i}`, conditions }).then((answer) => (settled.push(i), answer)));
      await new Promise((resolve) => setTimeout(resolve, 300)); // the PUTs reach the lock, or their turn
      // Without a cap per project the 20 PUTs took every connection, and this waited 10 s for one, then failed 503.
      const other = await b.get('/api/v1/flags');
      expect(other.status).toBe(200);
      expect(settled).toEqual([]); // the pile-up was still there

      // A change waiting for its project's turn whose key is disabled meanwhile (by another api process, say) is refused.
      const queued = api.client(`Bearer ${second.body.token}`).post('/api/v1/flags', { key: 'after-revoke', name: 'After revoke' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await api.server.db('api_keys').where({ id: second.body.id }).update({ enabled: false });
      await holder.rollback();
      const answers = await Promise.all(puts);
      expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(200));
      expect((await queued).status).toBe(401);
      expect((await a.get('/api/v1/flags')).body).toEqual([]);
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
  });
});

describe('a change waiting for a row another holds', () => {
  it('gives up after 5 s with 503 unavailable, nothing stored, its connection free for others', async () => {
    const p = await api.project();
    const flag = await p.post('/api/v1/flags', { key: 'held', name: 'Held' });
    const holder = await api.server.db.transaction();
    try {
      await holder('flags').where({ id: flag.body.id }).forUpdate();
      const waited = await p.put(`/api/v1/flags/${flag.body.id}`, { name: 'Changed while held' });
      expect(waited.status).toBe(503);
      expect(waited.body.error).toEqual({ code: 'unavailable', message: 'another change holds what this one changes, for over 5 s; try again shortly' });
      expect(waited.headers.get('retry-after')).toBe('1');
    } finally {
      await holder.rollback();
    }
    expect((await p.get(`/api/v1/flags/${flag.body.id}`)).body.name).toBe('Held');
    expect((await p.put(`/api/v1/flags/${flag.body.id}`, { name: 'Changed after' })).status).toBe(200);
  }, 20_000);
});

describe('error answers (SPEC §9)', () => {
  it('answers a body with a great many faults with its first 20 details, and arrays beyond their limit by their length alone', async () => {
    const p = await api.project();
    // 100 conditions of 1000 values each is within the limits; every value a number where text is due.
    const wrong = { key: 'many', name: 'Many', conditions: Array.from({ length: 100 }, () => ({ attribute: 'a', operator: 'in', values: Array(1000).fill(1) })) };
    const answer = await p.post('/api/v1/segments', wrong);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('validation_failed');
    expect(answer.body.error.details).toHaveLength(20);
    expect(answer.body.error.details[0]).toEqual({ path: 'conditions[0].values[0]', message: 'conditions[0].values[0] must be a string' });
    expect(answer.body.error.message).toMatch(/^invalid request: conditions\[0\]\.values\[0\], .* and 80 more; arrays longer than 10 were judged by their first 10 elements$/);

    // Far beyond a limit: the length is the fault, its elements are not looked at one by one.
    const long = await p.post('/api/v1/segments', { key: 'long', name: 'Long', conditions: [{ attribute: 'a', operator: 'in', values: Array(200_000).fill('x') }] });
    expect(long.status).toBe(400);
    expect(long.body.error.details).toEqual([{ path: 'conditions[0].values', message: 'conditions[0].values must have at most 1000 values' }]);
    const ids = await p.post('/api/v1/segments', { key: 'k', name: 'K', conditions: Array(5000).fill({ attribute: 'a', operator: 'in', values: ['x'] }) });
    expect(ids.body.error.details).toEqual([{ path: 'conditions', message: 'conditions must have at most 100 conditions' }]);
    // The rest of such a body is still judged: the other faults are named too.
    const more = await p.post('/api/v1/segments', { key: 'Not A Key', conditions: [{ attribute: 'a', operator: 'in', values: Array(300_000).fill(1) }] });
    expect(more.body.error.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(['conditions[0].values', 'key', 'name', 'conditions[0].values[0]']));
    const events = await p.post('/api/v1/integrations', { name: 'n', configJson: { url: 'https://hooks.example.com/' }, eventSubscriptionsJson: Array(120_000).fill('nope') });
    expect(events.status).toBe(400);
    expect(events.body.error.details).toEqual([{ path: 'eventSubscriptionsJson', message: expect.stringMatching(/^eventSubscriptionsJson may name at most \d+ events$/) }]);
    // Too many headers is that one fault, and a plain-text body under its Content-Type is still no fault.
    const headers = Object.fromEntries([['Content-Type', 'text/plain'], ...Array.from({ length: 40 }, (_, i) => [`X-H${i}`, 'v'])]);
    const many = await p.post('/api/v1/integrations', { name: 'n', configJson: { url: 'https://hooks.example.com/', headers, body: 'flag [[events.resourceName]] changed' }, eventSubscriptionsJson: ['flag.created'] });
    expect(many.body.error.details).toEqual([{ path: 'configJson.headers', message: 'configJson.headers may hold at most 30 headers' }]);
    expect((await p.get('/api/v1/segments')).body).toEqual([]);
  });

  it('400 invalid_json for a body that is not JSON, nothing stored', async () => {
    const p = await api.project();
    const answer = await p.send('POST', '/api/v1/flags', '{"key": "a",');
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('invalid_json');
    expect((await p.get('/api/v1/flags')).body).toEqual([]);
  });

  it.each([
    ['POST', '/api/v1/flags', ''],
    ['POST', '/api/v1/integrations', ' \n'],
    ['PUT', '/api/v1/project', ''],
  ])('400 invalid_json for an empty body where one is needed (%s %s), nothing stored', async (method, path, raw) => {
    const p = await api.project();
    const answer = await p.send(method, path, raw);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toEqual({ code: 'invalid_json', message: 'the request body is empty: send a JSON object' });
    expect((await p.get('/api/v1/flags')).body).toEqual([]);
    expect((await p.get('/api/v1/integrations')).body).toEqual([]);
  });

  it('takes an empty body where none is needed (archive)', async () => {
    const p = await api.project();
    const flag = await p.post('/api/v1/flags', { key: 'f', name: 'F' });
    expect((await p.send('POST', `/api/v1/flags/${flag.body.id}/archive`, '')).status).toBe(200);
  });

  it('400 invalid_json for bytes that are not UTF-8, whatever charset is named, nothing stored', async () => {
    const p = await api.project();
    const before = (await p.get('/api/v1/events')).body.length;
    const auth: [string, string] = ['Authorization', `Bearer ${p.token}`];
    for (const [contentType, bytes] of [
      ['application/json', Buffer.from('{"name":"caf\xe9"}', 'latin1')],
      ['application/json; charset=iso-8859-1', Buffer.from('{"name":"caf\xe9 \xff\xfe"}', 'latin1')],
      ['application/json', Buffer.from([...Buffer.from('{"name":"'), 0xc3, 0x28, ...Buffer.from('"}')])], // a lead byte without its continuation
    ] as const) {
      const answer = await rawHttp(api.server.url, 'PUT', '/api/v1/project', [auth, ['Content-Type', contentType]], bytes);
      expect(answer.status, contentType).toBe(400);
      expect(JSON.parse(answer.body).error).toEqual({ code: 'invalid_json', message: 'the request body is not valid UTF-8 (JSON is always sent as UTF-8)' });
    }
    expect((await p.get('/api/v1/project')).body.name).not.toMatch(/caf/);
    expect((await p.get('/api/v1/events')).body).toHaveLength(before);

    // The same text in UTF-8 goes in as sent, and a byte order mark before it is dropped.
    const utf8 = await rawHttp(api.server.url, 'PUT', '/api/v1/project', [auth, ['Content-Type', 'application/json']], Buffer.from('\ufeff{"name":"café ☕"}', 'utf8'));
    expect(utf8.status).toBe(200);
    expect(JSON.parse(utf8.body).name).toBe('café ☕');
  });

  it('400 invalid_json for a compressed body, which is never taken for its bytes', async () => {
    const p = await api.project();
    const gzipped = gzipSync(JSON.stringify({ key: 'zipped', name: 'Zipped' }));
    for (const encoding of ['gzip', 'br', 'GZIP, identity']) {
      const answer = await rawHttp(api.server.url, 'POST', '/api/v1/flags', [['Authorization', `Bearer ${p.token}`], ['Content-Type', 'application/json'], ['Content-Encoding', encoding]], gzipped);
      expect(answer.status, encoding).toBe(400);
      expect(JSON.parse(answer.body).error).toEqual({ code: 'invalid_json', message: `the request body is sent with Content-Encoding: ${encoding}, which is not accepted: send the JSON uncompressed` });
    }
    const identity = await rawHttp(api.server.url, 'POST', '/api/v1/flags', [['Authorization', `Bearer ${p.token}`], ['Content-Encoding', 'identity']], Buffer.from(JSON.stringify({ key: 'plain', name: 'Plain' })));
    expect(identity.status).toBe(201);
    expect((await p.get('/api/v1/flags')).body.map((f: { key: string }) => f.key)).toEqual(['plain']);
  });

  it('413 payload_too_large above 1 MiB, with or without a Content-Length', async () => {
    const p = await api.project();
    const big = JSON.stringify({ key: 'big', name: 'x'.repeat(1024 * 1024) });
    const answer = await p.send('POST', '/api/v1/flags', big);
    expect(answer.status).toBe(413);
    expect(answer.body.error.code).toBe('payload_too_large');

    const chunked = await fetch(`${api.server.url}/api/v1/flags`, {
      method: 'POST',
      headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as any).error.code).toBe('payload_too_large');
  });

  it('accepts a body just under 1 MiB (then validates it)', async () => {
    const p = await api.project();
    const body = JSON.stringify({ key: 'big', name: 'x'.repeat(1024 * 1024 - 100) });
    const answer = await p.send('POST', '/api/v1/flags', body);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('validation_failed');
    expect(answer.body.error.details).toEqual([{ path: 'name', message: 'name must be at most 100 characters' }]);
  });

  it('404 not_found for unknown routes and ids, 405 for a wrong method', async () => {
    const p = await api.project();
    expect((await p.get('/api/v1/nothing-here')).body.error.code).toBe('not_found');
    expect((await p.get('/api/v1/flags/999999')).status).toBe(404);
    expect((await p.get('/api/v1/flags/abc')).status).toBe(404);
    const wrong = await p.send('PATCH', '/api/v1/flags', '{}');
    expect(wrong.status).toBe(405);
    // RFC 9110: a 405 lists the methods the route has, in the header and in words.
    expect(wrong.headers.get('allow')).toBe('HEAD, GET, POST');
    expect(wrong.body.error.message).toBe('PATCH is not allowed here; /api/v1/flags allows HEAD, GET, POST');
    const project = await p.send('DELETE', '/api/v1/project', '');
    expect([project.status, project.headers.get('allow')]).toEqual([405, 'HEAD, GET, PUT']);
    // A method nothing has (501 from the router) is the same answer.
    const unknown = await p.send('PROPFIND', '/api/v1/flags', '');
    expect([unknown.status, unknown.body.error.code, unknown.headers.get('allow')]).toEqual([405, 'method_not_allowed', 'HEAD, GET, POST']);
  });

  it('every answer says nosniff; API answers, a new key\'s token among them, are never cached', async () => {
    const p = await api.project();
    const created = await p.post('/api/v1/apikeys', { name: 'cached?' });
    expect(created.body.token).toMatch(/^mzk_/);
    for (const answer of [created, await p.get('/api/v1/flags'), await api.client().get('/api/v1/flags'), await p.get('/api/v1/nothing-here')]) {
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
    const outside = await fetch(`${api.server.url}/no-such-page`);
    expect(outside.status).toBe(404);
    expect(outside.headers.get('x-content-type-options')).toBe('nosniff');
    expect((await fetch(`${api.server.url}/healthz`)).headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('500 internal hides SQL and stacks', async () => {
    const p = await api.project();
    // Break the schema under the running server: the error must not leak what failed.
    await api.server.db.raw('ALTER TABLE segments RENAME TO segments_gone');
    try {
      const answer = await p.get('/api/v1/segments');
      expect(answer.status).toBe(500);
      expect(answer.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
    } finally {
      await api.server.db.raw('ALTER TABLE segments_gone RENAME TO segments');
    }
  });
});

describe('the log of an unexpected database error', () => {
  it('is written whatever the error holds: a getter that throws, a Date, a Buffer, a detail nested deep', () => {
    const lines: string[] = [];
    const log = createLogger('error', { destination: new PassThrough().on('data', (chunk: Buffer) => lines.push(chunk.toString())) });
    const at = new Date('2026-11-28T00:00:00Z');
    const rowError = () => Object.assign(new Error('check violation'), { code: '23514', detail: 'Failing row contains (secret)' });
    const err = Object.assign(new Error('odd'), {
      nested: { get boom(): never { throw new Error('getter'); }, at, bytes: Buffer.from('ab') },
      l1: { l2: { l3: { l4: { l5: { detail: 'Failing row contains (secret)' } } } } },
      context: { query: rowError() },
      failures: [rowError()],
    });
    expect(() => log.error({ err }, 'odd error')).not.toThrow();
    // A getter of the error itself that throws: still one line, not a throw from the log call.
    const hostile = Object.defineProperty(new Error('hostile'), 'boom', { enumerable: true, get: () => { throw new Error('getter'); } });
    expect(() => log.error({ err: hostile }, 'hostile error')).not.toThrow();
    log.flush();
    return vi.waitFor(() => {
      const entry = JSON.parse(lines.join('').split('\n')[0]!) as { err: { message: string; nested: { boom: string; at: string; bytes: unknown } } };
      expect(JSON.parse(lines.join('').split('\n')[1]!).err.message).toBe('hostile');
      expect(entry.err.message).toBe('odd');
      expect(entry.err.nested.boom).toBe('[unreadable]');
      expect(entry.err.nested.at).toBe(at.toISOString());
      expect(entry.err.nested.bytes).toEqual({ type: 'Buffer', data: [97, 98] });
      expect(lines.join('')).not.toContain('Failing row');
    });
  });

  it('names the constraint but holds none of the row PostgreSQL quotes back: no secret, no header value', async () => {
    const lines: string[] = [];
    const destination = new PassThrough().on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const own = await startTestApi({}, { log: createLogger('error', { destination }) });
    try {
      // Schema drift an operator might make: every insert of this name now fails with the row in its detail.
      await own.server.db.raw(`ALTER TABLE integrations ADD CONSTRAINT drifted_check CHECK (name <> 'boom') NOT VALID`);
      const p = await own.project();
      const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
      const answer = await p.post('/api/v1/integrations', {
        name: 'boom',
        configJson: { url: 'https://hooks.example.com/x', headers: { 'X-Api-Key': 'CANARY-HEADER-VALUE' }, secret },
        eventSubscriptionsJson: ['flag.created'],
      });
      expect(answer.status).toBe(500);
      const logged = await vi.waitFor(() => {
        const entry = lines.map((line) => JSON.parse(line)).find((e) => e.msg === 'request failed');
        if (!entry) throw new Error('not logged yet');
        return entry;
      });
      expect(JSON.stringify(logged)).toContain('drifted_check');
      expect(lines.join('\n')).not.toContain('CANARY-HEADER-VALUE');
      expect(lines.join('\n')).not.toContain(secret.slice(6, 20));
    } finally {
      await own.close();
    }
  });
});
