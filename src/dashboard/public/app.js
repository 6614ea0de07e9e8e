/* global document, window, location, history, setTimeout, clearTimeout, crypto, btoa, URL, TextEncoder */
import { ApiError, request, tagged, token } from './api.js';
import { EVENT_GROUPS, VARIABLES, placeholder } from './catalog.js';
import { $, h, setText, shown, time } from './dom.js';

const VIEWS = ['token', 'list', 'form', 'deliveries'];
const SECRET_MASK = '********';
const DEFAULT_HEADERS = '{"Content-Type": "application/json"}';
const ALL_EVENTS = EVENT_GROUPS.flatMap(([, codes]) => codes);
const UNAUTHORIZED = 'The API answered 401 unauthorized: this token is unknown, disabled or deleted. Paste a valid token.';

/** The form's fields: their control, error paragraph and the label used in messages. */
const FIELDS = {
  name: { control: '#f-name', error: '#f-name-error', label: 'Name' },
  url: { control: '#f-url', error: '#f-url-error', label: 'URL' },
  headers: { control: '#f-headers', error: '#f-headers-error', label: 'Headers' },
  body: { control: '#f-body', error: '#f-body-error', label: 'Body' },
  events: { control: '#f-events', error: '#f-events-error', label: 'Events' },
  secret: { control: '#f-secret', error: '#f-secret-error', label: 'Secret' },
};

const state = {
  project: null,
  integrations: [],
  /** The integration the form edits; null while connecting a new one. */
  editing: null,
  /** The ETag of the copy the form was filled from. */
  editingTag: null,
  /** The integration whose delivery log is shown. */
  viewing: null,
  /** Bumped on every navigation, so answers that arrive for a view already left are dropped. */
  navigation: 0,
  pendingTest: null,
  pollTimer: undefined,
  /** Actions under way ('open', 'save', 'test'): each ignores a second click of its own, not the others'. */
  busy: new Set(),
  /** List loads under way; the list is marked aria-busy while there are any. */
  listLoads: 0,
  /** What the form held when a 401 ended the session: put back when a new token opens the same form. */
  draft: null,
};

// ---------------------------------------------------------------- navigation

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  if (hash === 'connect') return { view: 'form' };
  const edit = /^edit\/(\d+)$/.exec(hash);
  if (edit) return { view: 'form', id: Number(edit[1]) };
  const deliveries = /^deliveries\/(\d+)$/.exec(hash);
  if (deliveries) return { view: 'deliveries', id: Number(deliveries[1]) };
  return { view: 'list' };
}

function navigate(hash) {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

async function route() {
  const navigation = ++state.navigation;
  clearTimeout(state.pollTimer);
  if (!token.get()) {
    showView('token');
    return;
  }
  const target = parseRoute();
  // Until the view's data is read, the page says it is loading (dimmed, aria-busy), not the old view alone.
  const main = $('#main');
  main.setAttribute('aria-busy', 'true');
  try {
    if (target.view === 'form') await openForm(target.id, navigation);
    else if (target.view === 'deliveries') await openDeliveries(target.id, navigation);
    else {
      showView('list');
      await loadList(navigation);
    }
  } finally {
    if (isCurrent(navigation)) main.removeAttribute('aria-busy');
  }
}

function showView(name) {
  for (const view of VIEWS) $(`#view-${view}`).hidden = view !== name;
  // Whenever a token is stored, it can be forgotten: also when the project could not be read.
  $('#session').hidden = name === 'token' || !token.get();
  // Move focus to the new view, so keyboard and screen-reader users start where the content changed.
  if (name === 'token') $('#token').focus();
  else $(`#view-${name} h1`).focus();
}

const isCurrent = (navigation) => navigation === state.navigation;

// ---------------------------------------------------------------- messages

let announceTimer;
function announce(text) {
  const status = $('#status');
  setText(status, text);
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    status.textContent = '';
  }, 8000);
}

/** `from` names the action that showed it, so that action alone may take it away (see toggleEnabled). */
function showMessage(selector, content, kind = 'error', from = '') {
  const element = $(selector);
  element.replaceChildren(...[content].flat().map((part) => (typeof part === 'string' ? shown(part) : part)));
  element.className = `message ${kind}`;
  element.dataset.from = from;
  element.hidden = false;
}

function hideMessage(selector) {
  const element = $(selector);
  element.hidden = true;
  element.dataset.from = '';
  element.replaceChildren();
}

function describe(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err instanceof Error ? err.message : String(err)}`;
  if (err.code === 'integration_limit_reached') return `Integration limit reached: ${err.message}.`;
  if (err.code === 'not_found') return 'That integration no longer exists; it may have been deleted elsewhere.';
  // Outside the form (the list's switch) nothing shows the details by field: say them here.
  const details = (err.details ?? []).filter((d) => d?.message).map((d) => humanize(String(d.path ?? ''), String(d.message)));
  if (err.code === 'validation_failed' && details.length > 0) return `${details.join('; ')}. Open Edit to fix it.`;
  return sentence(err.message);
}

/** The API's messages start in lower case and end without a stop: "the request body exceeds …" reads "The request body exceeds ….". */
function sentence(text) {
  const trimmed = String(text).trim();
  if (trimmed === '') return trimmed;
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?…:]$/.test(capital) ? capital : `${capital}.`;
}

/** A 401 anywhere ends the session; any other failure is shown in the view's message area. */
function fail(err, selector, from = '') {
  if (err instanceof ApiError && err.status === 401) signOut(UNAUTHORIZED);
  else showMessage(selector, describe(err), 'error', from);
}

// ---------------------------------------------------------------- session

async function refreshProject() {
  state.project = await request('GET', '/project');
  renderProject();
}

function renderProject() {
  const project = state.project;
  if (!project) return;
  setText($('#project-name'), `Project: ${project.name}`);
  $('#session').hidden = false;
  const { used, limit } = project.integrations;
  const usage = $('#usage');
  usage.replaceChildren(h('strong', {}, `${used} of ${limit} used`), ` on the ${project.plan} plan`);
  usage.classList.toggle('full', used >= limit);
  if (used >= limit) usage.append(h('span', { class: 'limit-note' }, 'Limit reached: delete an integration or upgrade the plan to connect another.'));
}

async function submitToken(event) {
  event.preventDefault();
  const input = $('#token');
  const value = input.value.trim().replace(/^Bearer\s+/i, '');
  setTokenError(null);
  if (value === '') return setTokenError('Paste an API token.');
  if (!/^[\x21-\x7e]+$/.test(value)) return setTokenError('A token is one word of printable ASCII characters; check what was pasted.');
  if (state.busy.has('open')) return;
  state.busy.add('open');
  token.set(value);
  try {
    await refreshProject();
    input.value = '';
    announce(`Opened project “${state.project.name}”.`);
    await route();
  } catch (err) {
    token.clear();
    setTokenError(err instanceof ApiError && err.status === 401 ? 'This token was not accepted (401 unauthorized): it is unknown, disabled or deleted.' : describe(err));
  } finally {
    state.busy.delete('open');
  }
}

function setTokenError(text) {
  const input = $('#token');
  const error = $('#token-error');
  setText(error, text ?? '');
  error.hidden = text === null;
  if (text === null) input.removeAttribute('aria-invalid');
  else {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

function signOut(message) {
  token.clear();
  state.navigation++;
  clearTimeout(state.pollTimer);
  state.project = null;
  state.integrations = [];
  state.editing = null;
  state.editingTag = null;
  state.viewing = null;
  $('#integrations').replaceChildren();
  $('#deliveries').replaceChildren();
  // A load the sign-out cut short leaves nothing loading: the token form is not dimmed or busy.
  $('#main').removeAttribute('aria-busy');
  showView('token');
  setTokenError(message ?? null);
}

// ---------------------------------------------------------------- list

async function loadList(navigation) {
  const list = $('#integrations');
  state.listLoads++;
  list.setAttribute('aria-busy', 'true');
  try {
    const [project, integrations] = await Promise.all([request('GET', '/project'), request('GET', '/integrations')]);
    if (!isCurrent(navigation)) return;
    state.project = project;
    state.integrations = integrations;
    hideMessage('#list-message');
    renderProject();
    renderList();
  } catch (err) {
    if (isCurrent(navigation)) fail(err, '#list-message');
  } finally {
    if (--state.listLoads === 0) list.removeAttribute('aria-busy');
  }
}

function renderList() {
  $('#integrations').replaceChildren(...state.integrations.map(card));
  $('#list-empty').hidden = state.integrations.length > 0;
}

function parseJson(text, fallback) {
  try {
    return typeof text === 'string' ? JSON.parse(text) : (text ?? fallback);
  } catch {
    return fallback;
  }
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return typeof url === 'string' ? url : '—';
  }
}

function fact(term, ...value) {
  return h('div', {}, h('dt', {}, term), h('dd', {}, ...value));
}

function badge(status) {
  return h('span', { class: `badge ${status === 'success' ? 'success' : 'failure'}` }, status);
}

/** Visible text plus the integration's name for assistive technology, so "Edit" buttons of different cards differ. */
function named(text, integration) {
  return [text, h('span', { class: 'visually-hidden' }, ` “${integration.name}”`)];
}

function card(integration) {
  const config = parseJson(integration.configJson, {});
  const events = parseJson(integration.eventSubscriptionsJson, []);
  const titleId = `integration-${integration.id}`;
  const toggle = h('input', { type: 'checkbox', role: 'switch', id: `enabled-${integration.id}` });
  toggle.checked = integration.enabled;
  toggle.addEventListener('change', () => toggleEnabled(integration, toggle));
  const item = h(
    'li',
    { class: integration.enabled ? 'card' : 'card off', 'aria-labelledby': titleId, 'data-id': integration.id },
    h('div', { class: 'card-head' },
      h('h2', { id: titleId }, integration.name),
      h('div', { class: 'switch' }, toggle, h('label', { for: toggle.id }, ...named('Enabled', integration)))),
    h('dl', { class: 'facts' },
      fact('URL host', hostOf(config.url)),
      fact('Events', Array.isArray(events) && events.length === ALL_EVENTS.length ? `all ${ALL_EVENTS.length} events` : [events].flat().join(', ')),
      fact('Last delivery', ...(integration.lastDeliveryAt ? [time(integration.lastDeliveryAt), ' ', badge(integration.lastDeliveryStatus)] : ['never'])),
      fact('Last error', ...(integration.lastError ? [time(integration.lastErrorAt), h('span', { class: 'error-text', title: integration.lastError }, integration.lastError)] : ['none']))),
    h('div', { class: 'actions' },
      h('a', { class: 'button', href: `#edit/${integration.id}` }, ...named('Edit', integration)),
      h('button', { type: 'button', onclick: () => sendTestFromList(integration) }, ...named('Send test', integration)),
      h('a', { class: 'button', href: `#deliveries/${integration.id}` }, ...named('Deliveries', integration)),
      h('button', { type: 'button', class: 'danger', onclick: () => removeIntegration(integration) }, ...named('Delete', integration))),
  );
  return item;
}

/** PUT takes the whole integration; configJson goes back as read, so a masked secret stays stored. */
function wholeIntegration(integration, changes) {
  const { name, enabled, type, configJson, eventSubscriptionsJson } = integration;
  return { name, enabled, type, configJson, eventSubscriptionsJson, ...changes };
}

async function toggleEnabled(integration, input) {
  const enabled = input.checked;
  // Not `disabled`: that would throw keyboard focus off the switch. Changes while saving are undone instead.
  if (input.dataset.busy) {
    input.checked = !enabled;
    return;
  }
  input.dataset.busy = 'true';
  input.setAttribute('aria-busy', 'true');
  const navigation = state.navigation;
  try {
    // Read it again first: the list may be an hour old, and the PUT takes the whole integration,
    // so sending the copy shown would undo a change made elsewhere since. If-Match closes the gap
    // between the read and the save: a save elsewhere in between is refused, and read again.
    let updated;
    for (let tries = 1; !updated; tries++) {
      const current = await tagged('GET', `/integrations/${integration.id}`);
      try {
        updated = (await tagged('PUT', `/integrations/${integration.id}`, wholeIntegration(current.data, { enabled }), current.etag)).data;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'precondition_failed') || tries === 3) throw err;
      }
    }
    Object.assign(integration, updated);
    // The card is drawn again from the answer: whatever else changed elsewhere (a new name, a last
    // error) shows too. Focus stays on its switch.
    const fresh = card(integration);
    input.closest('li')?.replaceWith(fresh);
    fresh.querySelector('input[role="switch"]')?.focus();
    // An earlier toggle's failure no longer applies; another action's message still does.
    if ($('#list-message').dataset.from === 'toggle') hideMessage('#list-message');
    announce(`“${updated.name}” is ${updated.enabled ? 'enabled' : 'disabled'}.`);
  } catch (err) {
    input.checked = !enabled;
    // Answered after the user went elsewhere (another view, another token): nothing to show, no one to sign out.
    if (!isCurrent(navigation)) return;
    if (err instanceof ApiError && err.status === 404) {
      // Deleted elsewhere: its card goes (focus to the list's heading), and the usage shown was one too high.
      state.integrations = state.integrations.filter((shownOne) => shownOne.id !== integration.id);
      input.closest('li')?.remove();
      $('#list-empty').hidden = state.integrations.length > 0;
      $('#list-title').focus();
      refreshProject().catch(() => {});
    }
    fail(err, '#list-message', 'toggle');
    if (!$('#list-message').hidden) $('#list-message').scrollIntoView({ block: 'nearest' }); // above the cards, maybe far off
  } finally {
    delete input.dataset.busy;
    input.removeAttribute('aria-busy');
  }
}

async function removeIntegration(integration) {
  const question = `Delete the webhook “${shown(integration.name)}”?\n\nIts settings and delivery log are removed. This cannot be undone.`;
  if (!window.confirm(question)) return;
  const navigation = state.navigation;
  try {
    await request('DELETE', `/integrations/${integration.id}`);
    announce(`Deleted “${integration.name}”.`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) return fail(err, '#list-message');
  }
  await loadList(navigation);
  // The card with the focused button is gone; continue from the list's heading.
  if (isCurrent(navigation)) $('#list-title').focus();
}

function sendTestFromList(integration) {
  state.pendingTest = integration.id;
  navigate(`#deliveries/${integration.id}`);
}

// ---------------------------------------------------------------- form

function buildForm() {
  const groups = EVENT_GROUPS.map(([resource, codes]) =>
    h('fieldset', { class: 'event-group' },
      h('legend', {}, resource),
      ...codes.map((code) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'events', value: code }), ` ${code}`))));
  $('#event-groups').replaceChildren(...groups);

  $('#variables').replaceChildren(...VARIABLES.map(([variable, meaning]) =>
    h('li', {},
      h('button', { type: 'button', class: 'variable', 'data-variable': variable, onclick: () => insertVariable(variable) }, variable),
      h('span', { class: 'muted' }, meaning))));
}

function eventBoxes() {
  return [...document.querySelectorAll('#event-groups input[name="events"]')];
}

function insertVariable(variable) {
  const body = $('#f-body');
  const text = placeholder(variable);
  // The textarea keeps its selection while the button has focus: replace it, and put the cursor after the placeholder.
  body.setRangeText(text, body.selectionStart, body.selectionEnd, 'end');
  body.focus();
}

function formatHeaders(headers) {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return JSON.stringify(headers);
  const entries = Object.entries(headers).map(([name, value]) => `${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  return `{${entries.join(', ')}}`;
}

function readDraft() {
  const value = (selector) => $(selector).value;
  return {
    hash: location.hash,
    projectId: state.project?.id ?? null,
    fields: { '#f-name': value('#f-name'), '#f-url': value('#f-url'), '#f-headers': value('#f-headers'), '#f-body': value('#f-body'), '#f-secret': value('#f-secret') },
    events: eventBoxes().filter((box) => box.checked).map((box) => box.value),
    enabled: $('#f-enabled').checked,
  };
}

/** Puts back what was typed before a 401, if this is the form, and the project, it was typed into. */
function restoreDraft() {
  const draft = state.draft;
  state.draft = null;
  if (!draft || draft.hash !== location.hash || draft.projectId === null || draft.projectId !== state.project?.id) return;
  for (const [selector, value] of Object.entries(draft.fields)) $(selector).value = value;
  $('#f-secret-kept').hidden = draft.fields['#f-secret'] !== SECRET_MASK;
  for (const box of eventBoxes()) box.checked = draft.events.includes(box.value);
  $('#f-enabled').checked = draft.enabled;
  $('#advanced').open = draft.fields['#f-secret'] !== '';
  showMessage('#form-message', 'What you typed before the token stopped working is back; nothing was saved yet.', 'info');
}

function fillForm(integration) {
  const config = integration ? parseJson(integration.configJson, {}) : {};
  const events = integration ? [parseJson(integration.eventSubscriptionsJson, [])].flat() : [];
  $('#f-name').value = integration?.name ?? '';
  $('#f-url').value = typeof config.url === 'string' ? config.url : '';
  $('#f-headers').value = !integration ? DEFAULT_HEADERS : config.headers === undefined || config.headers === null ? '' : formatHeaders(config.headers);
  $('#f-body').value = typeof config.body === 'string' ? config.body : '';
  for (const box of eventBoxes()) box.checked = events.includes(box.value);
  $('#f-enabled').checked = integration ? integration.enabled : true;
  $('#f-secret').value = typeof config.secret === 'string' ? config.secret : '';
  $('#f-secret-kept').hidden = config.secret !== SECRET_MASK;
  // Rotation needs a stored secret (and an integration: a new one has nothing to rotate yet).
  $('#rotate-secret').hidden = !integration || config.secret !== SECRET_MASK;
  $('#f-secret-rotated').hidden = true;
  $('#advanced').open = $('#f-secret').value !== '';
  setText($('#form-title'), integration ? `Edit “${integration.name}”` : 'Connect a webhook');
  $('#form-crumb').textContent = integration ? 'Edit' : 'Connect';
  $('#form-submit').textContent = integration ? 'Save' : 'Connect';
}

async function openForm(id, navigation) {
  clearFormErrors();
  if (id === undefined) {
    state.editing = null;
    state.editingTag = null;
    fillForm(null);
    showView('form');
    // The draft goes back only into the project it was typed for: known once the project is read.
    (state.project ? Promise.resolve() : refreshProject())
      .then(() => isCurrent(navigation) && restoreDraft())
      .catch((err) => fail(err, '#form-message'));
    return;
  }
  try {
    const { data: integration, etag } = await tagged('GET', `/integrations/${id}`);
    if (!isCurrent(navigation)) return;
    state.editing = integration;
    state.editingTag = etag; // Save goes over this version only: see changedElsewhere
    fillForm(integration);
    showView('form');
    if (!state.project) await refreshProject();
    if (isCurrent(navigation)) restoreDraft();
  } catch (err) {
    if (isCurrent(navigation)) await showListInstead(err, navigation);
  }
}

/** A view that cannot open (its integration is gone, say): the list, with the reason. */
async function showListInstead(err, navigation) {
  if (err instanceof ApiError && err.status === 401) return signOut(UNAUTHORIZED);
  history.replaceState(null, '', '#');
  showView('list');
  await loadList(navigation);
  if (isCurrent(navigation)) showMessage('#list-message', describe(err));
}

function clearFormErrors() {
  hideMessage('#form-message');
  for (const field of Object.values(FIELDS)) {
    const error = $(field.error);
    error.hidden = true;
    error.replaceChildren();
  }
  for (const control of document.querySelectorAll('#integration-form [aria-invalid]')) control.removeAttribute('aria-invalid');
}

function addFieldError(key, text) {
  const field = FIELDS[key];
  const error = $(field.error);
  if (error.childNodes.length > 0) error.append(h('br'));
  error.append(shown(text));
  error.hidden = false;
  // aria-invalid belongs on form controls; for the Events group it goes on each checkbox.
  const controls = key === 'events' ? eventBoxes() : [$(field.control)];
  for (const control of controls) control.setAttribute('aria-invalid', 'true');
  if (key === 'secret') $('#advanced').open = true;
}

/** Which form field an API error path names (SPEC §4 paths), or null for the general message. */
function fieldOf(path) {
  if (path === 'name') return 'name';
  if (path === 'configJson.url') return 'url';
  if (path === 'configJson.headers' || path.startsWith('configJson.headers.') || path.startsWith('configJson.headers[')) return 'headers';
  if (path === 'configJson.body') return 'body';
  if (path === 'configJson.secret') return 'secret';
  if (path === 'eventSubscriptionsJson' || path.startsWith('eventSubscriptionsJson[') || path.startsWith('eventSubscriptionsJson.')) return 'events';
  return null;
}

/** "configJson.url must use https" reads "URL must use https" in the form. */
function humanize(path, message) {
  const key = fieldOf(path);
  if (!key || !message.startsWith(path)) return message;
  const header = /^configJson\.headers\.(.+)$/.exec(path);
  const label = header ? `Header “${header[1]}”` : FIELDS[key].label;
  return `${label}${message.slice(path.length)}`;
}

function focusFirstInvalid(keys) {
  const first = Object.keys(FIELDS).find((key) => keys.includes(key));
  if (!first) return;
  const control = first === 'events' ? eventBoxes()[0] : $(FIELDS[first].control);
  control?.focus();
}

function readHeaders() {
  const text = $('#f-headers').value.trim();
  if (text === '') return { value: undefined };
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { error: `Headers are not valid JSON (${err.message}). Write an object, e.g. ${DEFAULT_HEADERS}.` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { error: `Headers must be a JSON object, e.g. ${DEFAULT_HEADERS}.` };
  }
  return { value: parsed };
}

async function submitForm(event) {
  event.preventDefault();
  if (state.busy.has('save')) return;
  clearFormErrors();
  const headers = readHeaders();
  if (headers.error) {
    addFieldError('headers', headers.error);
    showMessage('#form-message', 'Nothing was saved: correct the field marked below.');
    focusFirstInvalid(['headers']);
    return;
  }
  const config = { url: $('#f-url').value.trim() };
  if (headers.value !== undefined) config.headers = headers.value;
  const body = $('#f-body').value;
  if (body !== '') config.body = body;
  const secret = $('#f-secret').value.trim();
  if (secret !== '') config.secret = secret;
  const payload = {
    name: $('#f-name').value,
    enabled: $('#f-enabled').checked,
    type: state.editing?.type ?? 'custom_webhook',
    configJson: JSON.stringify(config),
    eventSubscriptionsJson: JSON.stringify(eventBoxes().filter((box) => box.checked).map((box) => box.value)),
  };

  const editing = state.editing;
  const navigation = state.navigation;
  const submit = $('#form-submit');
  state.busy.add('save');
  submit.setAttribute('aria-busy', 'true');
  try {
    const saved = editing
      ? (await tagged('PUT', `/integrations/${editing.id}`, payload, state.editingTag)).data
      : await request('POST', '/integrations', payload);
    announce(editing ? `Saved “${saved.name}”.` : `Connected “${saved.name}”.`);
    if (isCurrent(navigation)) navigate('');
    // Cancelled while it saved: the list shown meanwhile was read before the save.
    else if (parseRoute().view === 'list') await loadList(state.navigation);
  } catch (err) {
    if (!isCurrent(navigation)) return;
    if (editing && err instanceof ApiError && err.code === 'precondition_failed') await changedElsewhere(editing.id, navigation);
    else showSaveErrors(err);
  } finally {
    state.busy.delete('save');
    submit.removeAttribute('aria-busy');
  }
}

/**
 * The integration was saved elsewhere after this form was opened: nothing was saved. The form keeps
 * what was typed; a second Save puts it in place of the other change, knowingly.
 */
async function changedElsewhere(id, navigation) {
  try {
    const { data, etag } = await tagged('GET', `/integrations/${id}`);
    if (!isCurrent(navigation)) return;
    state.editingTag = etag;
    showMessage('#form-message', `Nothing was saved: “${data.name}” was changed elsewhere after you opened it. Save again to put your version in its place, or go back to the list to see the other change.`);
    $('#form-message').scrollIntoView({ block: 'nearest' });
  } catch (err) {
    if (isCurrent(navigation)) showSaveErrors(err);
  }
}

function showSaveErrors(err) {
  if (!(err instanceof ApiError)) return showMessage('#form-message', describe(err));
  if (err.status === 401) {
    state.draft = readDraft(); // the token stopped working, not the user's typing
    return signOut(UNAUTHORIZED);
  }
  const general = [];
  const marked = [];
  for (const detail of err.details) {
    const path = String(detail?.path ?? '');
    const text = humanize(path, String(detail?.message ?? 'is invalid'));
    const key = fieldOf(path);
    if (key) {
      addFieldError(key, text);
      marked.push(key);
    } else general.push(text);
  }
  let summary;
  if (err.code === 'validation_failed') summary = marked.length > 0 ? 'Nothing was saved: correct the fields marked below.' : 'Nothing was saved:';
  else if (err.code === 'timeout') summary = describe(err); // it may have been saved after all
  else summary = `Nothing was saved. ${describe(err)}`;
  showMessage('#form-message', [h('p', {}, summary), general.length > 0 ? h('ul', {}, ...general.map((text) => h('li', {}, text))) : null].filter(Boolean));
  if (err.code === 'integration_limit_reached' || err.code === 'not_found') {
    refreshProject().catch(() => {}); // the usage shown is stale
  }
  if (marked.length > 0) focusFirstInvalid(marked);
  else $('#form-message').scrollIntoView({ block: 'nearest' });
}

function generateSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const secret = $('#f-secret');
  secret.value = `whsec_${btoa(String.fromCharCode(...bytes))}`;
  $('#f-secret-kept').hidden = true;
  secret.focus();
  secret.select();
  announce('New secret generated. Give it to your receiver to verify signatures; it is shown only here.');
}

/**
 * Rotates the stored secret: the API makes a new one and keeps the old one signing beside it for a
 * day, so the receiver can switch over without refusing deliveries. The new one is shown this once.
 * The form's other fields stay as typed; its version tag is read again, since the rotation saved one.
 */
async function rotateSecret() {
  const integration = state.editing;
  const navigation = state.navigation;
  if (!integration || state.busy.has('rotate')) return;
  const question = `Rotate the secret of “${shown(integration.name)}”?\n\nA new secret is made and shown once. For 24 hours deliveries carry signatures with both, so your receiver keeps verifying while you give it the new one.`;
  if (!window.confirm(question)) return;
  state.busy.add('rotate');
  const button = $('#rotate-secret');
  button.setAttribute('aria-busy', 'true');
  try {
    const rotated = await request('POST', `/integrations/${integration.id}/secret/rotate`);
    const { etag } = await tagged('GET', `/integrations/${integration.id}`);
    if (!isCurrent(navigation)) return;
    state.editingTag = etag;
    setText($('#f-secret-new'), rotated.secret);
    setText($('#f-secret-overlap'), `Give it to your receiver; until ${time(rotated.previousSecretExpiresAt).textContent} deliveries are signed with the old secret too.`);
    $('#f-secret-rotated').hidden = false;
    announce('Secret rotated. The new secret is shown below the field, only now.');
  } catch (err) {
    if (isCurrent(navigation)) showSaveErrors(err);
  } finally {
    state.busy.delete('rotate');
    button.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------- deliveries

async function openDeliveries(id, navigation) {
  try {
    const [integration, deliveries] = await Promise.all([
      request('GET', `/integrations/${id}`),
      request('GET', `/integrations/${id}/deliveries`),
    ]);
    if (!isCurrent(navigation)) return;
    state.viewing = integration;
    hideMessage('#deliveries-message');
    setText($('#deliveries-title'), `Deliveries of “${integration.name}”`);
    setText($('#deliveries-target'), `${hostOf(parseJson(integration.configJson, {}).url)} · ${integration.enabled ? 'enabled' : 'disabled'}`);
    $('#deliveries-edit').setAttribute('href', `#edit/${integration.id}`);
    renderDeliveries(deliveries);
    showView('deliveries');
    if (!state.project) await refreshProject();
    if (state.pendingTest === id) {
      state.pendingTest = null;
      await sendTest();
    }
  } catch (err) {
    state.pendingTest = null;
    if (isCurrent(navigation)) await showListInstead(err, navigation);
  }
}

function renderDeliveries(deliveries) {
  $('#deliveries').replaceChildren(...deliveries.map((delivery, i) => deliveryItem(delivery, i === 0)));
  $('#deliveries-empty').hidden = deliveries.length > 0;
}

function deliveryItem(delivery, newest) {
  const error = delivery.error ? [delivery.errorCode ? h('code', {}, delivery.errorCode) : null, ' ', delivery.error] : ['—'];
  return h('li', { class: 'card delivery' },
    h('div', { class: 'card-head' },
      badge(delivery.status),
      h('strong', { class: 'action' }, delivery.action),
      time(delivery.createdAt)),
    h('dl', { class: 'facts' },
      fact('HTTP status', delivery.httpStatus === null ? '—' : String(delivery.httpStatus)),
      fact('Duration', `${delivery.durationMs} ms`),
      fact('Error', ...error)),
    requestBodyOf(delivery, newest),
    delivery.responseExcerpt ? h('details', {}, h('summary', {}, 'Response excerpt'), h('pre', { tabindex: 0 }, delivery.responseExcerpt)) : null);
}

/** Attempts that never wrote the request: refused, unresolved, no connection, no TLS, no place in line. */
function notSent(delivery) {
  const code = delivery.errorCode;
  return code === 'E_BLOCKED' || code === 'E_DNS' || code === 'E_BACKLOG' || code === 'E_TLS' || (code === 'E_CONNECT' && String(delivery.error ?? '').startsWith('connect:'));
}

/** The log keeps the first 8 KiB (8192 bytes) of a body; one that long was most likely cut. */
const KEPT_BODY_BYTES = 8192;

function requestBodyOf(delivery, newest) {
  const body = delivery.requestBody;
  const unsent = notSent(delivery);
  if (body === null || body === '') return h('p', { class: 'muted' }, unsent ? 'Not sent (it had no body).' : 'Sent without a body.');
  const cut = new TextEncoder().encode(body).length > KEPT_BODY_BYTES - 4;
  const summary = `${unsent ? 'Request body (not sent)' : 'Request body'}${cut ? ': its first 8 KiB, the rest is not kept' : ''}`;
  return h('details', { open: newest }, h('summary', {}, summary), h('pre', { tabindex: 0 }, body));
}

/** Draws the log read again; false when it could not be read (the reason is shown). */
async function refreshDeliveries() {
  const navigation = state.navigation;
  const integration = state.viewing;
  if (!integration) return false;
  try {
    const deliveries = await request('GET', `/integrations/${integration.id}/deliveries`);
    if (isCurrent(navigation)) renderDeliveries(deliveries);
    return true;
  } catch (err) {
    if (isCurrent(navigation)) fail(err, '#deliveries-message');
    return false;
  }
}

async function sendTest() {
  const integration = state.viewing;
  const navigation = state.navigation;
  if (!integration || state.busy.has('test')) return;
  state.busy.add('test');
  showMessage('#deliveries-message', 'Sending a test delivery…', 'info');
  try {
    const { webhookId } = await request('POST', `/integrations/${integration.id}/test`);
    if (!isCurrent(navigation)) return;
    showMessage('#deliveries-message', 'Test delivery queued; waiting for its outcome…', 'info');
    waitForDelivery(integration.id, webhookId, navigation, Date.now() + 45_000);
  } catch (err) {
    if (isCurrent(navigation)) fail(err, '#deliveries-message');
  } finally {
    state.busy.delete('test');
  }
}

/** Records a poll for a test's outcome reads: the test is among the newest unless the endpoint is very busy. */
const TEST_POLL_RECORDS = 20;

/**
 * Polls the newest records until the test's delivery is recorded (a delivery takes at most
 * WEBHOOK_TIMEOUT_MS, 30 s by default), then draws the log once: the log being read meanwhile
 * keeps its open sections and focus, and a poll fetches a page, not the whole log.
 */
function waitForDelivery(id, webhookId, navigation, deadline) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(async () => {
    if (!isCurrent(navigation)) return;
    let newest;
    try {
      newest = await request('GET', `/integrations/${id}/deliveries?limit=${TEST_POLL_RECORDS}`);
    } catch (err) {
      if (isCurrent(navigation)) fail(err, '#deliveries-message');
      return;
    }
    if (!isCurrent(navigation)) return;
    const delivery = newest.find((d) => d.webhookId === webhookId);
    if (!delivery && Date.now() <= deadline) return waitForDelivery(id, webhookId, navigation, deadline);
    // The log could not be read: its reason stays shown, not replaced by the outcome.
    if (!(await refreshDeliveries()) || !isCurrent(navigation)) return;
    if (delivery?.status === 'success') showMessage('#deliveries-message', `Test delivered: HTTP ${delivery.httpStatus} in ${delivery.durationMs} ms.`, 'success');
    else if (delivery) showMessage('#deliveries-message', `Test failed: ${delivery.error ?? delivery.status}`, 'error');
    else showMessage('#deliveries-message', 'The test has not been delivered yet; use Refresh to look again.', 'info');
  }, 400);
}

// ---------------------------------------------------------------- start

function start() {
  buildForm();
  $('#token-form').addEventListener('submit', submitToken);
  $('#sign-out').addEventListener('click', () => {
    state.draft = null; // forgotten on purpose: nothing typed comes back either
    signOut(null);
    // Nor does it stay in the page: headers can hold a receiver's credentials.
    fillForm(null);
    clearFormErrors();
    $('#project-name').textContent = '';
    announce('Token forgotten.');
  });
  $('#refresh-list').addEventListener('click', () => loadList(state.navigation));
  $('#integration-form').addEventListener('submit', submitForm);
  $('#events-all').addEventListener('click', () => eventBoxes().forEach((box) => (box.checked = true)));
  $('#events-none').addEventListener('click', () => eventBoxes().forEach((box) => (box.checked = false)));
  $('#generate-secret').addEventListener('click', generateSecret);
  $('#rotate-secret').addEventListener('click', rotateSecret);
  $('#send-test').addEventListener('click', () => sendTest());
  $('#refresh-deliveries').addEventListener('click', refreshDeliveries);
  window.addEventListener('hashchange', () => void route());
  void route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
