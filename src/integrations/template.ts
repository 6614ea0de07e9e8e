import { TEMPLATE_VARIABLES, variableValue } from '../events/variables.js';
import type { EventVariables, TemplateVariable } from '../events/variables.js';

/**
 * A body template split once into static text and variable references.
 * Invariant: `parts.length === variables.length + 1`; the rendered body is
 * parts[0] + value(variables[0]) + parts[1] + … + parts[n].
 */
export interface CompiledTemplate {
  readonly parts: readonly string[];
  readonly variables: readonly TemplateVariable[];
}

export interface TemplateProblem {
  message: string;
  /** The variable as written in the template, e.g. `events.nope`. */
  variable?: string;
}

/** SPEC §4: `configJson.body` is at most 64 KiB, counted in UTF-8 bytes. */
export const MAX_TEMPLATE_BYTES = 65_536;

/**
 * Bounds the rendered body: 64 KiB of `[[events.details]]` would render to megabytes per
 * delivery, and a worker renders hundreds at once. 100 placeholders of the longest values
 * (details of 2 000 characters, escaped) stay near 1 MiB.
 */
export const MAX_PLACEHOLDERS = 100;

const VARIABLE_PREFIX = 'events.';
const KNOWN_VARIABLES: ReadonlySet<string> = new Set(TEMPLATE_VARIABLES);

// Bare JSON literals stay text, so `[[true]]` or `[[null]]` in a JSON body is an array, not a placeholder.
const JSON_LITERALS: ReadonlySet<string> = new Set(['true', 'false', 'null']);

const PATH = String.raw`[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*`;
// Any white space, as JavaScript's \s knows it (a no-break space typed by an editor too).
const SPACE = String.raw`\s*`;
// Either `{{ path }}` or `[[ path ]]`; the closing pair must match the opening one.
const PLACEHOLDER = new RegExp(String.raw`\{\{${SPACE}(${PATH})${SPACE}\}\}|\[\[${SPACE}(${PATH})${SPACE}\]\]`, 'g');

/**
 * Splits a template into parts. Anything shaped like a placeholder (see
 * PLACEHOLDER) that is not a known `events.*` variable is a problem, except a
 * bare `true`/`false`/`null`; unknown placeholders are kept as literal text.
 * Each unknown variable is reported once, in order of first appearance; then
 * each distinct malformed `{{events.…` / `[[events.…` that is no placeholder at all.
 */
export function compileTemplate(text: string): { template: CompiledTemplate; problems: TemplateProblem[] } {
  const parts: string[] = [];
  const variables: TemplateVariable[] = [];
  const unknown = new Set<string>();
  const malformed = new Set<string>();
  let literal = '';
  let position = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    const path = match[1] ?? match[2] ?? '';
    const gap = text.slice(position, match.index);
    for (const slip of findMalformedPlaceholders(gap)) malformed.add(slip);
    literal += gap;
    position = match.index + match[0].length;
    const variable = knownVariable(path);
    if (variable !== undefined) {
      parts.push(literal);
      variables.push(variable);
      literal = '';
    } else {
      literal += match[0];
      if (!JSON_LITERALS.has(path)) unknown.add(path);
    }
  }
  const tail = text.slice(position);
  for (const slip of findMalformedPlaceholders(tail)) malformed.add(slip);
  parts.push(literal + tail);
  const problems = [...[...unknown].map(unknownVariableProblem), ...[...malformed].map(malformedProblem)];
  return { template: { parts, variables }, problems };
}

// Outside any placeholder, these are slips that would reach the receiver unexpanded: an opening
// pair before `events.` (`{{events.user-name}}`, `[[events.action}}`, `{{events .action}}`), or a
// single opening brace or bracket before a closing pair (`{events.action}}`).
const MALFORMED_START = new RegExp(String.raw`(?:\{\{|\[\[)\s*events\s*\.|(?<![{[])[{[]\s*events\s*\.[\w.]*\s*(?:\}\}|\]\])`, 'g');
// And a variable's name in brackets, its `events.` written in another letter case, as `event`,
// with an invisible character (a zero-width space, a soft hyphen: Unicode's format characters)
// or with `:` or `/` for the dot. Only then: text that merely mentions events
// (`[[Events/Launch plan]]`, `[[events:changelog]]`) stays text.
const VARIABLE_NAMES = [...TEMPLATE_VARIABLES].sort((a, b) => b.length - a.length).map((name) => name.replace('.', String.raw`\.`)).join('|');
const MALFORMED_VARIANT = new RegExp(
  String.raw`(?:\{\{|\[\[)[\s\p{Cf}]*events?[\s\p{Cf}]*[.:/][\s\p{Cf}]*(?:${VARIABLE_NAMES})[\s\p{Cf}]*(?:\}\}|\]\])`,
  'giu',
);
const EXCERPT_LENGTH = 40;

function findMalformedPlaceholders(literalText: string): string[] {
  const starts = new Set([...literalText.matchAll(MALFORMED_START), ...literalText.matchAll(MALFORMED_VARIANT)].map((match) => match.index));
  return [...starts].sort((x, y) => x - y).map((start) => excerpt(literalText, start));
}

/** From `start` up to and including the first closing pair, at most EXCERPT_LENGTH characters. */
function excerpt(text: string, start: number): string {
  const window = text.slice(start, start + EXCERPT_LENGTH + 1);
  const closings = [window.indexOf('}}'), window.indexOf(']]')].filter((index) => index >= 0);
  const end = closings.length > 0 ? Math.min(...closings) + 2 : window.length;
  return end <= EXCERPT_LENGTH ? window.slice(0, end) : `${window.slice(0, EXCERPT_LENGTH)}…`;
}

function malformedProblem(placeholderText: string): TemplateProblem {
  return { message: `malformed placeholder "${placeholderText}"` };
}

function knownVariable(path: string): TemplateVariable | undefined {
  if (!path.startsWith(VARIABLE_PREFIX)) return undefined;
  const name = path.slice(VARIABLE_PREFIX.length);
  return KNOWN_VARIABLES.has(name) ? (name as TemplateVariable) : undefined;
}

function unknownVariableProblem(path: string): TemplateProblem {
  const suggestion = suggestVariable(path);
  const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
  const shown = path.length <= EXCERPT_LENGTH ? path : `${path.slice(0, EXCERPT_LENGTH)}…`;
  return { message: `unknown variable "${shown}"${hint}`, variable: path };
}

/** Catches the likely slips: `action`, `event.action`, `events.resourcename`. */
function suggestVariable(path: string): string | undefined {
  const withoutFirstSegment = path.slice(path.indexOf('.') + 1);
  for (const candidate of [path, withoutFirstSegment]) {
    const lower = candidate.toLowerCase();
    const known = TEMPLATE_VARIABLES.find((name) => name.toLowerCase() === lower);
    if (known !== undefined) return VARIABLE_PREFIX + known;
  }
  return undefined;
}

/**
 * Single pass: a substituted value is never scanned for placeholders again.
 * Numbers are inserted as digits, so `{"id": {{events.resourceId}}}` is JSON.
 */
export function renderTemplate(template: CompiledTemplate, vars: EventVariables, jsonEscape: boolean): string {
  const { parts, variables } = template;
  let body = parts[0] ?? '';
  for (let i = 0; i < variables.length; i++) {
    body += formatValue(variableValue(vars, variables[i] as TemplateVariable), jsonEscape);
    body += parts[i + 1] ?? '';
  }
  return body;
}

function formatValue(value: string | number, jsonEscape: boolean): string {
  if (typeof value === 'number') return String(value);
  return jsonEscape ? JSON.stringify(value).slice(1, -1) : value;
}

const JSON_MEDIA_TYPE = /^(?:application\/(?:[!#$%&'*.^_`|~0-9a-z-]+\+)?json|text\/json)$/;

/** `application/json`, `application/*+json` or `text/json`, any case, parameters ignored. */
export function isJsonContentType(contentType: string): boolean {
  const mediaType = contentType.split(';', 1)[0] ?? '';
  return JSON_MEDIA_TYPE.test(mediaType.trim().toLowerCase());
}

/** Realistic values for previews and tests. */
export const SAMPLE_VARIABLES: EventVariables = Object.freeze({
  action: 'flag.updated',
  resourceType: 'flag',
  resourceId: 42,
  resourceName: 'new-checkout',
  details: 'name: "Old checkout" → "New checkout"',
  projectId: 7,
  user: Object.freeze({ id: 3, name: 'Ada Lovelace', email: 'ada@example.com' }),
  timestamp: '2026-11-27T10:00:00.000Z',
});

const EMPTY_VARIABLES: EventVariables = Object.freeze({
  action: '',
  resourceType: '',
  resourceId: 0,
  resourceName: '',
  details: '',
  projectId: 0,
  user: Object.freeze({ id: 0, name: '', email: '' }),
  timestamp: '',
});

// Every string holds what breaks naive substitution: quotes, backslashes, control characters, a placeholder.
const HOSTILE_TEXT = 'say "hi"\\ \n\r\t\u0001\u001f </script> {{events.action}} [[events.details]] Ünïcødé ✓ 🚀 \u2028\u2029 \ud800';

const HOSTILE_VARIABLES: EventVariables = Object.freeze({
  action: `flag.created ${HOSTILE_TEXT}`,
  resourceType: `"}]${HOSTILE_TEXT}`,
  resourceId: Number.MAX_SAFE_INTEGER,
  resourceName: `\\"${HOSTILE_TEXT}\\`,
  details: `name: "a" → "b" ${HOSTILE_TEXT}`,
  projectId: Number.MAX_SAFE_INTEGER,
  user: Object.freeze({ id: Number.MAX_SAFE_INTEGER, name: `O'Brien ${HOSTILE_TEXT}`, email: `"@${HOSTILE_TEXT}` }),
  timestamp: `2026-11-27T10:00:00.000Z${HOSTILE_TEXT}`,
});

const JSON_SAMPLES: ReadonlyArray<{ label: string; vars: EventVariables }> = [
  { label: 'sample values', vars: SAMPLE_VARIABLES },
  { label: 'empty sample values', vars: EMPTY_VARIABLES },
  { label: 'hostile sample values', vars: HOSTILE_VARIABLES },
];

/**
 * Save-time check of `configJson.body`. Empty or missing → no problems
 * (body-less POST). The JSON check is skipped while unknown variables remain,
 * since the result would depend on what the user meant by them.
 */
export function checkTemplate(text: string | undefined, contentType: string): TemplateProblem[] {
  if (text === undefined || text === '') return [];
  // Past the limit nothing else is looked at: the text is refused anyway, and parsing a
  // megabyte would block the API and answer with a detail per slip in it.
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_TEMPLATE_BYTES) {
    return [{ message: `template is ${bytes} bytes; the limit is ${MAX_TEMPLATE_BYTES} bytes (64 KiB)` }];
  }
  const { template, problems: variableProblems } = compileTemplate(text);
  // The placeholder limit first: a problem of its own kind, never among the "…and N more".
  const problems: TemplateProblem[] = [];
  if (template.variables.length > MAX_PLACEHOLDERS) {
    problems.push({ message: `template uses ${template.variables.length} placeholders; the limit is ${MAX_PLACEHOLDERS}` });
  }
  problems.push(...firstProblems(variableProblems));
  if (variableProblems.length === 0 && isJsonContentType(contentType)) {
    const jsonProblem = afterBackslash(template) ?? checkRendersToJson(template);
    if (jsonProblem !== undefined) problems.push(jsonProblem);
  }
  return problems;
}

/** Enough to fix a template by; 64 KiB of slips would otherwise answer with thousands of details. */
const MAX_REPORTED_PROBLEMS = 10;

function firstProblems(problems: TemplateProblem[]): TemplateProblem[] {
  if (problems.length <= MAX_REPORTED_PROBLEMS) return problems;
  const more = problems.length - MAX_REPORTED_PROBLEMS;
  return [...problems.slice(0, MAX_REPORTED_PROBLEMS), { message: `…and ${more} more problems like these` }];
}

/**
 * `"\[[events.action]]"` makes the value's first character an escape: valid JSON for
 * `flag.…` (`\f`), invalid for `segment.…`; so does `"\u00[[events.action]]"`, whose escape
 * takes the value's first characters as its hex digits. The samples cannot tell, so both are
 * refused by shape: an odd run of backslashes, then nothing or `u` and up to 3 hex digits.
 */
const ENDS_IN_OPEN_ESCAPE = /(?<!\\)(?:\\\\)*\\(?:u[0-9A-Fa-f]{0,3})?$/;

function afterBackslash(template: CompiledTemplate): TemplateProblem | undefined {
  const index = template.variables.findIndex((_, i) => ENDS_IN_OPEN_ESCAPE.test(template.parts[i] ?? ''));
  if (index < 0) return undefined;
  return { message: `placeholder events.${template.variables[index]} follows a backslash (or an unfinished \\u escape), which would turn the value's first characters into part of an escape` };
}

/** Reports only the first failing sample: the others would usually repeat it. */
function checkRendersToJson(template: CompiledTemplate): TemplateProblem | undefined {
  for (const { label, vars } of JSON_SAMPLES) {
    try {
      JSON.parse(renderTemplate(template, vars, true));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { message: `renders to invalid JSON: ${reason} (with ${label}; a position counts in that rendering, not in the template)` };
    }
  }
  return undefined;
}
