import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EVENT_CODES_BY_RESOURCE } from '../../src/events/codes.js';
import { TEMPLATE_VARIABLES } from '../../src/events/variables.js';
import { startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const SECRET = `whsec_${Buffer.from('a dashboard test secret, 32 bytes').toString('base64')}`;
const ADMIN_PASSWORD = 'a dashboard test admin password';

// Callbacks given to page.evaluate run in the browser. tsconfig has no DOM lib (the server code must not
// see one), so those browser globals are declared here, for this file only, untyped.
declare const document: any, window: any, sessionStorage: any, localStorage: any, location: any, getComputedStyle: any;

type Project = Awaited<ReturnType<DeliveryHarness['api']['project']>>;

let h: DeliveryHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Uncaught exceptions and CSP refusals of the current page: each test ends with none. */
let pageErrors: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  h = await startDeliveryHarness({ WEBHOOK_TIMEOUT_MS: '5000', ADMIN_PASSWORD });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await h?.close();
});

beforeEach(async () => {
  h.sink.reset();
  pageErrors = [];
  context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on('console', (message) => {
    // Chromium logs every 4xx answer as "Failed to load resource"; those are expected here. CSP refusals are not.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) pageErrors.push(message.text());
  });
});
afterEach(async () => {
  await context.close();
  expect(pageErrors).toEqual([]);
});

async function seed(p: Project, name = 'Seeded webhook', config: Record<string, unknown> = {}, events: string[] = ['flag.created']) {
  const answer = await p.post('/api/v1/integrations', {
    name,
    configJson: JSON.stringify({ url: `${h.sink.url}/seeded`, body: '{"event": "[[events.action]]", "name": "[[events.resourceName]]"}', ...config }),
    eventSubscriptionsJson: JSON.stringify(events),
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body as { id: number; name: string };
}

async function openDashboard(token: string) {
  await page.goto(h.api.server.url);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Open' }).click();
  await page.getByRole('heading', { level: 1, name: 'Integrations' }).waitFor();
  // Until the list has loaded, its requests are still on their way: a key deleted meanwhile would sign out.
  await page.locator('#integrations:not([aria-busy])').waitFor({ state: 'attached' });
}

const cardOf = (name: string) => page.locator('#integrations > li').filter({ has: page.getByRole('heading', { name, exact: true }) });
const text = (selector: string) => () => page.locator(selector).textContent();
const integrationsOf = async (p: Project) => (await p.get('/api/v1/integrations')).body as any[];

async function fillConnectForm(fields: { name?: string; url?: string; events?: string[] }) {
  if (fields.name !== undefined) await page.getByLabel('Name', { exact: true }).fill(fields.name);
  if (fields.url !== undefined) await page.getByLabel('URL', { exact: true }).fill(fields.url);
  for (const code of fields.events ?? []) await page.getByRole('checkbox', { name: code, exact: true }).check();
}

/** Holds the page's requests to `url` (those of `method`, when given) until the function answered is called. */
async function holdRequests(url: string, method?: string): Promise<() => void> {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route(url, async (route) => {
    if (method === undefined || route.request().method() === method) await held;
    await route.continue();
  });
  return () => release();
}

/** The page fits the viewport: nothing needs horizontal scrolling. */
async function horizontalOverflow() {
  return page.evaluate(() => document.scrollingElement!.scrollWidth - window.innerWidth);
}

describe('token', () => {
  it('pasting a token shows the integrations, keeping the token in sessionStorage only', async () => {
    const p = await h.api.project();
    const hostile = '<img src=x onerror="window.pwned=1"> Billing "hooks"';
    await seed(p, hostile, { url: `${h.sink.url}/billing` }, ['flag.created', 'segment.deleted']);

    await openDashboard(p.token);
    const card = cardOf(hostile);
    await card.waitFor();
    // Rendered as text, never as markup.
    expect(await card.getByRole('heading').textContent()).toBe(hostile);
    expect(await page.locator('#integrations img').count()).toBe(0);
    expect(await page.evaluate(() => (window as any).pwned)).toBeUndefined();
    const facts = await card.locator('dl').innerText();
    expect(facts).toContain(`127.0.0.1:${h.sink.port}`);
    expect(facts).toContain('flag.created, segment.deleted');
    expect(facts).toMatch(/Last delivery\s+never/);
    expect(facts).toMatch(/Last error\s+none/);
    expect(await card.getByRole('switch').isChecked()).toBe(true);
    await expect.poll(text('#usage')).toContain('1 of 3 used');
    await page.screenshot({ path: `${ARTIFACTS}dashboard-list.png`, fullPage: true });

    const storage = await page.evaluate(() => ({ session: sessionStorage.getItem('mozhno.token'), local: localStorage.length, url: location.href }));
    expect(storage.session).toBe(p.token);
    expect(storage.local).toBe(0);
    expect(storage.url).not.toContain(p.token);

    // The token survives a reload of the tab, and "Forget token" removes it.
    await page.reload();
    await cardOf(hostile).waitFor();
    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByLabel('API token').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it('an unknown token is refused next to the token field', async () => {
    await page.goto(h.api.server.url);
    await page.getByLabel('API token').fill('mzk_not_a_real_token');
    await page.getByRole('button', { name: 'Open' }).click();
    await expect.poll(text('#token-error')).toContain('401');
    expect(await page.getByLabel('API token').getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it('a 401 later (the key was deleted) returns to the token form with a message', async () => {
    const p = await h.api.project();
    const key = (await p.post('/api/v1/apikeys', { name: 'dashboard' })).body;
    await openDashboard(key.token);
    expect((await p.delete(`/api/v1/apikeys/${key.id}`)).status).toBe(204);

    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.getByLabel('API token').waitFor();
    expect(await page.locator('#token-error').textContent()).toContain('401');
    expect(await page.locator('#view-list').isHidden()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('mozhno.token'))).toBeNull();

    // Also when the 401 ends a view's load: the token form is not left dimmed and busy.
    const again = (await p.post('/api/v1/apikeys', { name: 'dashboard again' })).body;
    await page.getByLabel('API token').fill(again.token);
    await page.getByRole('button', { name: 'Open' }).click();
    await page.locator('#integrations:not([aria-busy])').waitFor({ state: 'attached' });
    expect((await p.delete(`/api/v1/apikeys/${again.id}`)).status).toBe(204);
    await page.evaluate(() => (location.hash = '#connect'));
    await page.evaluate(() => (location.hash = '#'));
    await page.getByLabel('API token').waitFor();
    expect(await page.locator('#main').getAttribute('aria-busy')).toBeNull();
  });
});

describe('a token that stops working while the form is filled', () => {
  it('keeps what was typed: a new token opens the same form with it, nothing saved in between', async () => {
    const p = await h.api.project();
    const key = (await p.post('/api/v1/apikeys', { name: 'short-lived' })).body;
    await openDashboard(key.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: 'Typed before the 401', url: `${h.sink.url}/typed`, events: ['flag.deleted'] });
    await page.getByLabel('Body').fill('{"typed": "[[events.action]]"}');
    expect((await p.delete(`/api/v1/apikeys/${key.id}`)).status).toBe(204);

    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.getByLabel('API token').waitFor();
    expect(await page.locator('#token-error').textContent()).toContain('401');
    expect(await integrationsOf(p)).toEqual([]);

    await page.getByLabel('API token').fill(p.token);
    await page.getByRole('button', { name: 'Open' }).click();
    await expect.poll(() => page.getByLabel('Name', { exact: true }).inputValue()).toBe('Typed before the 401');
    expect(await page.getByLabel('URL', { exact: true }).inputValue()).toBe(`${h.sink.url}/typed`);
    expect(await page.getByLabel('Body').inputValue()).toBe('{"typed": "[[events.action]]"}');
    expect(await page.getByRole('checkbox', { name: 'flag.deleted', exact: true }).isChecked()).toBe(true);
    expect(await page.locator('#form-message').textContent()).toContain('nothing was saved yet');
  });

  it('never puts it into another project\'s form', async () => {
    const p = await h.api.project();
    const other = await h.api.project();
    const key = (await p.post('/api/v1/apikeys', { name: 'short-lived' })).body;
    await openDashboard(key.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: 'For project one only', url: `${h.sink.url}/one` });
    expect((await p.delete(`/api/v1/apikeys/${key.id}`)).status).toBe(204);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.getByLabel('API token').waitFor();

    await page.getByLabel('API token').fill(other.token);
    await page.getByRole('button', { name: 'Open' }).click();
    const otherName = (await other.get('/api/v1/project')).body.name as string;
    await expect.poll(() => page.locator('#project-name').textContent()).toContain(otherName);
    await page.getByRole('heading', { name: 'Connect a webhook' }).waitFor();
    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('');
    expect(await page.getByLabel('URL', { exact: true }).inputValue()).toBe('');
  });
});

describe('Integrations → Connect', () => {
  it('connects a webhook: it appears in the list and exists in the API', async () => {
    const p = await h.api.project({ email: 'deploys@example.com' });
    await openDashboard(p.token);
    await expect.poll(text('#usage')).toContain('0 of 3 used');
    await page.getByRole('link', { name: 'Connect' }).click();
    await page.getByRole('heading', { level: 1, name: 'Connect a webhook' }).waitFor();

    expect(await page.getByLabel('Headers', { exact: true }).inputValue()).toBe('{"Content-Type": "application/json"}');
    expect(await page.getByLabel('Enabled', { exact: true }).isChecked()).toBe(true);
    await fillConnectForm({ name: 'Deploy notices', url: `${h.sink.url}/deploys`, events: ['flag.created', 'strategy.updated'] });
    await page.getByLabel('Body', { exact: true }).fill('{"text": "{{events.action}} by {{events.user.email}}"}');
    await page.screenshot({ path: `${ARTIFACTS}dashboard-connect-form.png`, fullPage: true });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();

    await cardOf('Deploy notices').waitFor();
    await expect.poll(text('#usage')).toContain('1 of 3 used');
    const [created] = await integrationsOf(p);
    expect(created).toMatchObject({ name: 'Deploy notices', enabled: true, type: 'custom_webhook' });
    expect(JSON.parse(created.configJson)).toEqual({
      url: `${h.sink.url}/deploys`,
      headers: { 'Content-Type': 'application/json' },
      body: '{"text": "{{events.action}} by {{events.user.email}}"}',
    });
    expect(JSON.parse(created.eventSubscriptionsJson)).toEqual(['flag.created', 'strategy.updated']);

    // And it works: a matching change is delivered with the template rendered.
    await p.post('/api/v1/flags', { key: 'dash', name: 'Dash' });
    const [request] = await h.sink.waitForRequests(1, 10_000);
    expect(request!.path).toBe('/deploys');
    expect(JSON.parse(request!.body)).toEqual({ text: 'flag.created by deploys@example.com' });
  });

  it('shows API errors next to the fields they name, and stores nothing', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: '', url: 'http://example.com' });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();

    const url = page.getByLabel('URL', { exact: true });
    await expect.poll(() => url.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#f-url-error').textContent()).toMatch(/^URL must use https/);
    expect((await url.getAttribute('aria-describedby'))!.split(' ')).toContain('f-url-error');
    expect(await page.locator('#f-name-error').textContent()).toMatch(/name/i);
    expect(await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#f-events-error').textContent()).toMatch(/at least one event/);
    expect(await page.getByRole('checkbox', { name: 'flag.created', exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#form-message').textContent()).toContain('Nothing was saved');
    // The first field at fault gets focus.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('f-name');
    // Body and Headers are not at fault.
    expect(await page.locator('#f-body-error').isHidden()).toBe(true);
    expect(await page.getByLabel('Headers', { exact: true }).getAttribute('aria-invalid')).toBeNull();
    await page.screenshot({ path: `${ARTIFACTS}dashboard-errors.png`, fullPage: true });

    // A private address, then a broken template: each error moves to its field, the old ones clear.
    await fillConnectForm({ name: 'Private', url: 'https://10.0.0.1/', events: ['flag.created'] });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(text('#f-url-error')).toMatch(/^URL host is not allowed/);
    expect(await page.locator('#f-name-error').isHidden()).toBe(true);
    expect(await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBeNull();

    await fillConnectForm({ url: `${h.sink.url}/ok` });
    await page.getByLabel('Body', { exact: true }).fill('{"a": {{events.nope}}}');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(text('#f-body-error')).toContain('events.nope');
    expect(await page.locator('#f-url-error').isHidden()).toBe(true);
    expect(await page.getByLabel('Body', { exact: true }).getAttribute('aria-invalid')).toBe('true');

    expect(await integrationsOf(p)).toEqual([]);
  });

  it('refuses invalid Headers JSON before sending anything', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    const posts: string[] = [];
    page.on('request', (request) => {
      if (request.method() !== 'GET') posts.push(request.url());
    });
    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: 'Headers', url: `${h.sink.url}/h`, events: ['flag.created'] });
    const headers = page.getByLabel('Headers', { exact: true });
    await headers.fill('{"X-Team": "core",}');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(text('#f-headers-error')).toContain('Headers are not valid JSON');
    expect(await headers.getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('f-headers');

    await headers.fill('["X-Team", "core"]');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(text('#f-headers-error')).toContain('must be a JSON object');
    expect(posts).toEqual([]);

    // A header the API refuses is shown next to Headers too.
    await headers.fill('{"Host": "evil.example"}');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(text('#f-headers-error')).toContain('Header “Host” is reserved');
    expect(posts).toHaveLength(1);
    expect(await integrationsOf(p)).toEqual([]);
  });

  it('inserts a variable placeholder at the cursor of Body', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    const body = page.getByLabel('Body', { exact: true });
    await body.fill('{"event": ""}');
    await body.evaluate((element) => (element as any).setSelectionRange(11, 11));
    await page.getByRole('button', { name: 'events.action', exact: true }).click();
    expect(await body.inputValue()).toBe('{"event": "{{events.action}}"}');
    // Focus is back in Body, after the placeholder: typing continues there.
    await page.keyboard.type(' by ');
    await page.getByRole('button', { name: 'events.user.name', exact: true }).click();
    expect(await body.inputValue()).toBe('{"event": "{{events.action}} by {{events.user.name}}"}');
  });

  it('offers every event code grouped by resource, and every template variable', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    const groups = await page.locator('#event-groups fieldset').evaluateAll((sets) =>
      Object.fromEntries(sets.map((set) => [set.querySelector('legend')!.textContent, [...set.querySelectorAll('input')].map((input) => input.value)])));
    expect(groups).toEqual(EVENT_CODES_BY_RESOURCE);
    const variables = await page.locator('#variables button').allTextContents();
    expect(variables).toEqual(TEMPLATE_VARIABLES.map((name) => `events.${name}`));
  });

  it('shows the plan limit and the 403 when it is reached', async () => {
    const p = await h.api.project();
    for (const n of [1, 2, 3]) await seed(p, `hook ${n}`);
    await openDashboard(p.token);
    await expect.poll(text('#usage')).toContain('3 of 3 used');
    expect(await page.locator('#usage').textContent()).toContain('Limit reached');

    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: 'One too many', url: `${h.sink.url}/more`, events: ['flag.created'] });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    const message = page.getByRole('alert').filter({ hasText: 'Integration limit reached' });
    await message.waitFor();
    expect(await message.textContent()).toContain('the free plan allows 3 integrations');
    expect(await integrationsOf(p)).toHaveLength(3);
  });

  it('can be done with the keyboard alone, with a visible focus', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    await expect.poll(text('#usage')).toContain('0 of 3 used');

    const tabTo = async (predicate: string, limit = 60) => {
      for (let i = 0; i < limit; i++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate(predicate)) return;
      }
      throw new Error(`Tab never reached ${predicate}`);
    };
    await tabTo("document.activeElement?.id === 'connect-link'");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline).not.toBe('none');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('form-title');

    await tabTo("document.activeElement?.id === 'f-name'");
    await page.keyboard.type('Typed webhook');
    await page.keyboard.press('Tab');
    await page.keyboard.type(`${h.sink.url}/typed`);
    await tabTo("document.activeElement?.value === 'segment.updated'");
    await page.keyboard.press('Space');
    await tabTo("document.activeElement?.id === 'form-submit'");
    await page.keyboard.press('Enter');

    await cardOf('Typed webhook').waitFor();
    const [created] = await integrationsOf(p);
    expect(JSON.parse(created.eventSubscriptionsJson)).toEqual(['segment.updated']);
    expect(JSON.parse(created.configJson).url).toBe(`${h.sink.url}/typed`);
  });

  it('labels every control of the form', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    await page.locator('#advanced summary').click();
    const unlabelled = await page.locator('#view-form').evaluate((view) =>
      [...view.querySelectorAll('input, textarea, select, button, a')]
        .filter((el: any) => (el.matches('input, textarea') ? el.labels.length === 0 && !el.getAttribute('aria-label') : el.textContent.trim() === ''))
        .map((el: any) => el.outerHTML));
    expect(unlabelled).toEqual([]);
  });
});

describe('an integration', () => {
  it('is disabled with its toggle, keeping its secret', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Toggled', { secret: SECRET });
    await openDashboard(p.token);
    const toggle = cardOf('Toggled').getByRole('switch');
    await toggle.click();
    await expect.poll(async () => (await p.get(`/api/v1/integrations/${integration.id}`)).body.enabled).toBe(false);
    expect(JSON.parse((await p.get(`/api/v1/integrations/${integration.id}`)).body.configJson).secret).toBe('********');
    expect(await toggle.isChecked()).toBe(false);
    await expect.poll(text('#status')).toContain('“Toggled” is disabled');

    await toggle.press('Space');
    await expect.poll(async () => (await p.get(`/api/v1/integrations/${integration.id}`)).body.enabled).toBe(true);
  });

  it('its toggle changes only enabled, even when the list shown is older than a change made elsewhere', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Changed elsewhere', { headers: null });
    await openDashboard(p.token);
    // A teammate changes the URL and events after this list was loaded.
    const elsewhere = {
      name: 'Changed elsewhere',
      configJson: JSON.stringify({ url: `${h.sink.url}/moved` }),
      eventSubscriptionsJson: JSON.stringify(['flag.updated']),
    };
    expect((await p.put(`/api/v1/integrations/${integration.id}`, elsewhere)).status).toBe(200);
    await cardOf('Changed elsewhere').getByRole('switch').click();
    await expect.poll(async () => (await p.get(`/api/v1/integrations/${integration.id}`)).body.enabled).toBe(false);
    const after = (await p.get(`/api/v1/integrations/${integration.id}`)).body;
    expect(JSON.parse(after.configJson).url).toBe(`${h.sink.url}/moved`);
    expect(JSON.parse(after.eventSubscriptionsJson)).toEqual(['flag.updated']);
  });

  it('its toggle never undoes a change saved elsewhere between its read and its save', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Raced', { headers: null });
    await openDashboard(p.token);
    // A teammate's save lands just after the switch read the integration, before its own PUT.
    let raced = false;
    await page.route(`**/api/v1/integrations/${integration.id}`, async (route) => {
      if (route.request().method() === 'PUT' && !raced) {
        raced = true;
        const elsewhere = { name: 'Renamed in between', configJson: JSON.stringify({ url: `${h.sink.url}/between` }), eventSubscriptionsJson: JSON.stringify(['flag.created']) };
        expect((await p.put(`/api/v1/integrations/${integration.id}`, elsewhere)).status).toBe(200);
      }
      await route.continue();
    });
    try {
      await cardOf('Raced').getByRole('switch').click();
      await expect.poll(text('#status')).toContain('“Renamed in between” is disabled');
    } finally {
      await page.unroute(`**/api/v1/integrations/${integration.id}`);
    }
    const after = (await p.get(`/api/v1/integrations/${integration.id}`)).body;
    expect(after).toMatchObject({ name: 'Renamed in between', enabled: false });
    expect(JSON.parse(after.configJson).url).toBe(`${h.sink.url}/between`);
  });

  it('a toggle that works takes away the error an earlier one left above the list', async () => {
    const p = await h.api.project();
    const gone = await seed(p, 'Deleted elsewhere');
    await seed(p, 'Still here');
    await openDashboard(p.token);
    expect((await p.delete(`/api/v1/integrations/${gone.id}`)).status).toBe(204);
    await cardOf('Deleted elsewhere').getByRole('switch').click();
    const message = page.locator('#list-message');
    await expect.poll(() => message.textContent()).toContain('no longer exists');
    await cardOf('Still here').getByRole('switch').click();
    await expect.poll(text('#status')).toContain('“Still here” is disabled');
    expect(await message.isHidden()).toBe(true);
  });

  it('saves while a test send is still waiting for its answer', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Slow test');
    await openDashboard(p.token);
    // The test send's answer is held back (a slow network or server), and stays unanswered meanwhile.
    const release = await holdRequests(`**/api/v1/integrations/${integration.id}/test`);
    try {
      await cardOf('Slow test').getByRole('button', { name: /^Send test/ }).click();
      await page.getByRole('heading', { level: 1, name: 'Deliveries of “Slow test”' }).waitFor();
      await page.getByRole('link', { name: 'Integrations' }).click();
      await cardOf('Slow test').getByRole('link', { name: /^Edit/ }).click();
      await page.getByLabel('Name', { exact: true }).fill('Renamed meanwhile');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await cardOf('Renamed meanwhile').waitFor();
      expect((await p.get(`/api/v1/integrations/${integration.id}`)).body.name).toBe('Renamed meanwhile');
    } finally {
      release();
    }
    // Delivered before the next test begins, whose sink would otherwise receive it.
    await expect.poll(async () => (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body.length, { timeout: 10_000 }).toBe(1);
  });

  it('saves no edit over a change made elsewhere after the form was opened, until Save is pressed again', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Opened');
    await openDashboard(p.token);
    await cardOf('Opened').getByRole('link', { name: /^Edit/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Edit “Opened”' }).waitFor();
    const elsewhere = { name: 'Renamed by a teammate', configJson: JSON.stringify({ url: `${h.sink.url}/teammate` }), eventSubscriptionsJson: JSON.stringify(['flag.created']) };
    expect((await p.put(`/api/v1/integrations/${integration.id}`, elsewhere)).status).toBe(200);

    await page.getByLabel('Name', { exact: true }).fill('Mine');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect.poll(text('#form-message')).toContain('“Renamed by a teammate” was changed elsewhere after you opened it');
    expect((await p.get(`/api/v1/integrations/${integration.id}`)).body.name).toBe('Renamed by a teammate');
    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('Mine');

    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await cardOf('Mine').waitFor();
    expect((await p.get(`/api/v1/integrations/${integration.id}`)).body.name).toBe('Mine');
  });

  it('is edited in the same form, filled, and a masked secret stays stored', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Before', { secret: SECRET, headers: { 'X-Team': 'core' } }, ['flag.created', 'project.updated']);
    await openDashboard(p.token);
    await cardOf('Before').getByRole('link', { name: /^Edit/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Edit “Before”' }).waitFor();

    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('Before');
    expect(await page.getByLabel('URL', { exact: true }).inputValue()).toBe(`${h.sink.url}/seeded`);
    expect(await page.getByLabel('Headers', { exact: true }).inputValue()).toBe('{"X-Team": "core"}');
    expect(await page.getByLabel('Body', { exact: true }).inputValue()).toBe('{"event": "[[events.action]]", "name": "[[events.resourceName]]"}');
    const checked = await page.locator('#event-groups input:checked').evaluateAll((boxes) => boxes.map((box: any) => box.value));
    expect(checked).toEqual(['flag.created', 'project.updated']);
    expect(await page.getByLabel('Secret', { exact: true }).inputValue()).toBe('********');

    await page.getByLabel('Name', { exact: true }).fill('After');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await cardOf('After').waitFor();
    const stored = (await p.get(`/api/v1/integrations/${integration.id}`)).body;
    expect(stored.name).toBe('After');
    expect(JSON.parse(stored.configJson)).toMatchObject({ secret: '********', headers: { 'X-Team': 'core' } });

    // The secret is really still there: deliveries are signed.
    expect((await p.post(`/api/v1/integrations/${integration.id}/test`)).status).toBe(202);
    const [request] = await h.sink.waitForRequests(1, 10_000);
    expect(request!.headers['webhook-signature']).toMatch(/^v1,/);
  });

  it('rotates a stored secret from the Edit form: the new one shown once, both signing meanwhile, and Save still saves', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Rotating', { secret: SECRET });
    await seed(p, 'Unsigned');
    await openDashboard(p.token);
    // Nothing to rotate without a stored secret.
    await cardOf('Unsigned').getByRole('link', { name: /^Edit/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Edit “Unsigned”' }).waitFor();
    expect(await page.locator('#rotate-secret').isHidden()).toBe(true);

    await page.getByRole('link', { name: 'Integrations' }).first().click();
    await cardOf('Rotating').getByRole('link', { name: /^Edit/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Edit “Rotating”' }).waitFor();
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Rotate', exact: true }).click();
    await page.locator('#f-secret-rotated').waitFor();
    const secret = await page.locator('#f-secret-new').textContent();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(await page.locator('#f-secret-overlap').textContent()).toMatch(/^Give it to your receiver; until .+ deliveries are signed with the old secret too\.$/);
    expect(await page.getByLabel('Secret', { exact: true }).inputValue()).toBe('********');

    // The form saves over the rotation (its tag was read again), keeping the new secret and the overlap.
    await page.getByLabel('Name', { exact: true }).fill('Rotated');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await cardOf('Rotated').waitFor();
    expect((await p.post(`/api/v1/integrations/${integration.id}/test`)).status).toBe(202);
    const [request] = await h.sink.waitForRequests(1, 10_000);
    expect(request!.headers['webhook-signature']).toMatch(/^v1,\S+ v1,\S+$/);
  });

  it('sends a test and shows it in the delivery log', async () => {
    const p = await h.api.project();
    await seed(p, 'Tested', { url: `${h.sink.url}/tested` });
    await openDashboard(p.token);
    await cardOf('Tested').getByRole('button', { name: /^Send test/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Deliveries of “Tested”' }).waitFor();

    const [request] = await h.sink.waitForRequests(1, 10_000);
    expect(request!.path).toBe('/tested');
    const entry = page.locator('#deliveries > li').first();
    await entry.filter({ hasText: 'integration.test' }).waitFor();
    const shown = await entry.innerText();
    expect(shown).toContain('success');
    expect(shown).toMatch(/HTTP status\s+200/);
    expect(shown).toMatch(/Duration\s+\d+ ms/);
    expect(await entry.locator('details', { hasText: 'Request body' }).locator('pre').textContent()).toBe(request!.body);
    await expect.poll(text('#deliveries-message')).toMatch(/Test delivered: HTTP 200/);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-deliveries.png`, fullPage: true });

    // A failing endpoint: the failure and its error are in the log, newest first, and on the list.
    h.sink.respond((_req, res) => res.writeHead(503).end('down for maintenance'));
    await page.getByRole('button', { name: 'Send test' }).click();
    await expect.poll(text('#deliveries-message')).toMatch(/Test failed: HTTP 503/);
    expect(await page.locator('#deliveries > li').count()).toBe(2);
    const newest = await page.locator('#deliveries > li').first().innerText();
    expect(newest).toContain('failure');
    expect(newest).toMatch(/HTTP status\s+503/);
    expect(newest).toContain('E_HTTP');

    await page.getByRole('link', { name: 'Integrations' }).click();
    const facts = () => cardOf('Tested').locator('dl').innerText();
    await expect.poll(facts).toMatch(/Last delivery\s+.+failure/);
    expect(await facts()).toMatch(/Last error\s+.+\s+HTTP 503/);
  });

  it('is deleted after confirmation, and kept when the confirmation is dismissed', async () => {
    const p = await h.api.project();
    await seed(p, 'Keep me');
    const doomed = await seed(p, 'Delete me');
    await openDashboard(p.token);
    await expect.poll(text('#usage')).toContain('2 of 3 used');
    const remove = cardOf('Delete me').getByRole('button', { name: /^Delete/ });

    page.once('dialog', (dialog) => void dialog.dismiss());
    await remove.click();
    expect((await p.get(`/api/v1/integrations/${doomed.id}`)).status).toBe(200);

    const messages: string[] = [];
    page.once('dialog', (dialog) => {
      messages.push(dialog.message());
      void dialog.accept();
    });
    await remove.click();
    await expect.poll(() => cardOf('Delete me').count()).toBe(0);
    expect(messages[0]).toContain('Delete the webhook “Delete me”?');
    expect((await p.get(`/api/v1/integrations/${doomed.id}`)).status).toBe(404);
    expect(await cardOf('Keep me').count()).toBe(1);
    await expect.poll(text('#usage')).toContain('1 of 3 used');
  });
});

describe('what users and endpoints wrote, shown for what it is', () => {
  it('keeps Forget token within reach when the API cannot be reached as the page loads, and forgets the form too', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: 'Half typed', url: 'https://hooks.example.com/with-credentials' });
    // The API goes away (as when the api process is down), and the tab is reloaded.
    await page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
    await page.reload();
    await expect.poll(text('#form-message')).toContain('could not be reached');
    const forget = page.getByRole('button', { name: 'Forget token' });
    expect(await forget.isVisible()).toBe(true);
    await forget.click();
    await page.getByLabel('API token').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.locator('#f-name').inputValue()).toBe('');
    expect(await page.locator('#f-url').inputValue()).toBe('');
  });

  it('writes out bidirectional controls, so a name cannot reverse the page\'s own words', async () => {
    const p = await h.api.project();
    await seed(p, '\u202Eabc.exe');
    await openDashboard(p.token);
    expect(await page.locator('#integrations h2').textContent()).toBe('⟨U+202E⟩abc.exe');
    await page.getByRole('link', { name: /^Deliveries/ }).click();
    await expect.poll(text('#deliveries-title')).toBe('Deliveries of “⟨U+202E⟩abc.exe”');
    // An endpoint's words in a message too, and a right-to-left mark among them.
    h.sink.respond((_req, res) => res.writeHead(503).end('\u202Egnp.exe\u200F down'));
    await page.getByRole('button', { name: 'Send test' }).click();
    await expect.poll(text('#deliveries-message')).toContain('⟨U+202E⟩gnp.exe⟨U+200F⟩ down');
  });

  it('redraws a card from the toggle\'s answer, with what changed elsewhere, and drops one deleted elsewhere', async () => {
    const p = await h.api.project();
    const renamed = await seed(p, 'Old name');
    const gone = await seed(p, 'Gone soon');
    await openDashboard(p.token);
    const config = JSON.stringify({ url: `${h.sink.url}/seeded` });
    expect((await p.put(`/api/v1/integrations/${renamed.id}`, { name: 'New name', configJson: config, eventSubscriptionsJson: '["flag.created"]' })).status).toBe(200);
    await cardOf('Old name').getByRole('switch').click();
    await cardOf('New name').waitFor();
    expect(await cardOf('Old name').count()).toBe(0);
    expect(await cardOf('New name').getByRole('switch').isChecked()).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.getAttribute('role'))).toBe('switch');

    expect((await p.delete(`/api/v1/integrations/${gone.id}`)).status).toBe(204);
    await expect.poll(text('#usage')).toContain('2 of 3 used');
    await cardOf('Gone soon').getByRole('switch').click();
    await expect.poll(() => cardOf('Gone soon').count()).toBe(0);
    await expect.poll(text('#usage')).toContain('1 of 3 used');
    expect(await page.locator('#list-message').textContent()).toContain('no longer exists');
    // Focus goes to the list's heading, not to the page; the last card going shows the empty list's text.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('list-title');
    expect((await p.delete(`/api/v1/integrations/${renamed.id}`)).status).toBe(204);
    await cardOf('New name').getByRole('switch').click();
    await expect.poll(() => page.locator('#list-empty').isVisible()).toBe(true);
    expect(await page.locator('#integrations > li').count()).toBe(0);
  });

  it('keeps the delivery log as it is while a test waits for its outcome, polling a page of records, then draws it once', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Slow to answer', { url: `${h.sink.url}/slow` });
    // Two records to read while the test waits.
    for (const _ of [1, 2]) expect((await p.post(`/api/v1/integrations/${integration.id}/test`)).status).toBe(202);
    await h.eventually(async () => ((await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body as unknown[]).length === 2);
    await openDashboard(p.token);
    await cardOf('Slow to answer').getByRole('link', { name: /^Deliveries/ }).click();
    await page.locator('#deliveries > li').nth(1).waitFor();

    let answer: () => void = () => undefined;
    h.sink.respond((_req, res) => new Promise<void>((resolve) => (answer = resolve)).then(() => void res.writeHead(200).end('ok')));
    const reads: string[] = [];
    page.on('request', (r) => r.url().includes('/deliveries') && reads.push(new URL(r.url()).search));
    await page.getByRole('button', { name: 'Send test' }).click();
    await h.sink.waitForRequests(3, 10_000);
    // The reader opens a request body in the log and stays there while the test waits.
    const second = page.locator('#deliveries > li').nth(1).locator('details summary').first();
    await second.click();
    await expect.poll(() => reads.length, { timeout: 3_000 }).toBeGreaterThanOrEqual(3);
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('SUMMARY');
    expect(await page.locator('#deliveries > li').nth(1).locator('details').first().getAttribute('open')).toBe('');
    expect(reads.every((search) => search === '?limit=20')).toBe(true);

    answer();
    await expect.poll(text('#deliveries-message')).toMatch(/Test delivered: HTTP 200/);
    expect(await page.locator('#deliveries > li').count()).toBe(3);
    expect(reads.at(-1)).toBe(''); // the whole log, read once the outcome is there
  });

  it('a Connect cancelled while it saves still shows up in the list', async () => {
    const p = await h.api.project();
    await openDashboard(p.token);
    const release = await holdRequests('**/api/v1/integrations', 'POST');
    await page.getByRole('link', { name: 'Connect' }).click();
    await fillConnectForm({ name: 'Cancelled', url: `${h.sink.url}/cancelled`, events: ['flag.created'] });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.getByRole('link', { name: 'Cancel', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Integrations' }).waitFor();
    // The list read on the way back is done (and empty) before the save may commit: only a read after it shows the card.
    await page.locator('#main:not([aria-busy])').waitFor({ state: 'attached' });
    await page.locator('#list-empty').waitFor();
    release();
    await cardOf('Cancelled').waitFor();
    await expect.poll(text('#usage')).toContain('1 of 3 used');
  });

  it('says it is loading while a view\'s data is on its way', async () => {
    const p = await h.api.project();
    const integration = await seed(p, 'Loading');
    await openDashboard(p.token);
    const release = await holdRequests(`**/api/v1/integrations/${integration.id}`);
    await cardOf('Loading').getByRole('link', { name: /^Edit/ }).click();
    await expect.poll(() => page.locator('#main').getAttribute('aria-busy')).toBe('true');
    release();
    await page.getByRole('heading', { level: 1, name: 'Edit “Loading”' }).waitFor();
    await expect.poll(() => page.locator('#main').getAttribute('aria-busy')).toBeNull();
  });

  it('says when an attempt was never sent, and when a kept body is only its first 8 KiB', async () => {
    const p = await h.api.project();
    await seed(p, 'Nowhere', { url: 'https://no-such-host.invalid/hook' });
    await seed(p, 'Long body', { url: `${h.sink.url}/long`, body: `{"long": "${'L'.repeat(9000)}", "action": "[[events.action]]"}` });
    await openDashboard(p.token);

    await cardOf('Nowhere').getByRole('button', { name: /^Send test/ }).click();
    await expect.poll(text('#deliveries-message')).toMatch(/Test failed: DNS/);
    expect(await page.locator('#deliveries > li').first().locator('summary').first().textContent()).toBe('Request body (not sent)');

    await page.getByRole('link', { name: 'Integrations' }).click();
    await cardOf('Long body').getByRole('button', { name: /^Send test/ }).click();
    await expect.poll(text('#deliveries-message')).toMatch(/Test delivered/);
    expect(await page.locator('#deliveries > li').first().locator('summary').first().textContent()).toBe('Request body: its first 8 KiB, the rest is not kept');
  });
});

describe('Bull Board', () => {
  it('renders behind its password, loading nothing from another site and framed by none', async () => {
    const board = await browser.newContext({ httpCredentials: { username: 'admin', password: ADMIN_PASSWORD } });
    try {
      const boardPage = await board.newPage();
      const elsewhere: string[] = [];
      const refusedByPolicy: string[] = [];
      boardPage.on('request', (request) => {
        if (!request.url().startsWith(h.api.server.url)) elsewhere.push(request.url());
      });
      boardPage.on('requestfailed', (request) => {
        if (request.failure()?.errorText === 'csp') refusedByPolicy.push(request.url());
      });
      const answer = await boardPage.goto(`${h.api.server.url}/admin/queues`);
      expect(answer!.status()).toBe(200);
      expect(answer!.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
      await boardPage.getByText('mozhno deliveries').first().waitFor();
      await boardPage.getByText('deliveries', { exact: true }).first().waitFor();
      // Its page asks Google for fonts: the browser refuses by the page's policy, before any connection,
      // so no operator's visit is told to another site.
      expect(elsewhere.length).toBeGreaterThan(0);
      expect(refusedByPolicy).toEqual(elsewhere);
    } finally {
      await board.close();
    }
  });
});

describe('at phone width (360 px)', () => {
  it('renders every view without horizontal scrolling', async () => {
    await context.close();
    context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));

    const p = await h.api.project();
    const long = await seed(p, 'A webhook with a rather long name that has to wrap on a phone screen', {
      url: `${h.sink.url}/a/very/long/path/that/would/overflow/a/narrow/screen/if/it/did/not/wrap/anywhere`,
    }, Object.values(EVENT_CODES_BY_RESOURCE).flat());
    h.sink.respond((_req, res) => res.writeHead(500).end('x'.repeat(300)));
    expect((await p.post(`/api/v1/integrations/${long.id}/test`)).status).toBe(202);
    await h.eventually(async () => (await p.get(`/api/v1/integrations/${long.id}/deliveries`)).body.length === 1);

    await openDashboard(p.token);
    await cardOf('A webhook with a rather long name that has to wrap on a phone screen').waitFor();
    expect(await horizontalOverflow()).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone-list.png`, fullPage: true });

    await page.getByRole('link', { name: 'Connect' }).click();
    await page.getByRole('heading', { level: 1, name: 'Connect a webhook' }).waitFor();
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.locator('#f-url-error').waitFor();
    expect(await horizontalOverflow()).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone-form.png`, fullPage: true });

    await page.goto(`${h.api.server.url}/#deliveries/${long.id}`);
    await page.locator('#deliveries > li').first().waitFor();
    expect(await horizontalOverflow()).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone-deliveries.png`, fullPage: true });
  });
});
