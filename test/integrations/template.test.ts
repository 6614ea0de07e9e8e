import { describe, expect, it } from 'vitest';
import { TEMPLATE_VARIABLES } from '../../src/events/variables.js';
import type { EventVariables, TemplateVariable } from '../../src/events/variables.js';
import {
  MAX_PLACEHOLDERS,
  MAX_TEMPLATE_BYTES,
  SAMPLE_VARIABLES,
  checkTemplate,
  compileTemplate,
  isJsonContentType,
  renderTemplate,
} from '../../src/integrations/template.js';

// Every value distinct, so a variable wired to the wrong field shows up.
const VARS: EventVariables = {
  action: 'flag.created',
  resourceType: 'flag',
  resourceId: 101,
  resourceName: 'new-checkout',
  details: 'name: "Old" → "New"',
  projectId: 202,
  user: { id: 303, name: 'Ada Lovelace', email: 'ada@example.com' },
  timestamp: '2026-11-27T10:00:00.000Z',
};

const EXPECTED: Record<TemplateVariable, string> = {
  action: 'flag.created',
  resourceType: 'flag',
  resourceId: '101',
  resourceName: 'new-checkout',
  details: 'name: "Old" → "New"',
  projectId: '202',
  'user.id': '303',
  'user.name': 'Ada Lovelace',
  'user.email': 'ada@example.com',
  timestamp: '2026-11-27T10:00:00.000Z',
};

const FORMS = [
  (name: string) => `{{events.${name}}}`,
  (name: string) => `[[events.${name}]]`,
  (name: string) => `{{ events.${name} }}`,
  (name: string) => `[[  events.${name}\t]]`,
  (name: string) => `{{\n  events.${name}\n}}`,
];

const SEED_TEMPLATE = '{ "event": "[[events.action]]", "resource": "[[events.resourceName]]" }';

function render(text: string, vars: EventVariables = VARS, jsonEscape = false): string {
  const { template, problems } = compileTemplate(text);
  expect(problems).toEqual([]);
  return renderTemplate(template, vars, jsonEscape);
}

function withName(resourceName: string): EventVariables {
  return { ...VARS, resourceName };
}

function problemMessages(text: string, contentType = 'application/json'): string[] {
  return checkTemplate(text, contentType).map((problem) => problem.message);
}

describe('compileTemplate and renderTemplate', () => {
  const cases = TEMPLATE_VARIABLES.flatMap((name) => FORMS.map((form) => [name, form(name)] as const));

  it.each(cases)('renders events.%s written as %j', (name, placeholder) => {
    expect(render(`<${placeholder}>`)).toBe(`<${EXPECTED[name]}>`);
  });

  it('covers every variable the events module declares', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual([...TEMPLATE_VARIABLES].sort());
  });

  it('splits the template once into static parts and variables', () => {
    const { template } = compileTemplate('a {{events.action}} b [[ events.user.id ]] c');
    expect(template).toEqual({ parts: ['a ', ' b ', ' c'], variables: ['action', 'user.id'] });
  });

  it('keeps the text around, between and next to placeholders', () => {
    expect(render('start {{events.action}}[[events.resourceType]]{{ events.resourceId }} end')).toBe(
      'start flag.createdflag101 end',
    );
    expect(render('{{{events.action}}}')).toBe('{flag.created}');
    expect(render('[[[events.resourceId]]]')).toBe('[101]');
  });

  it('takes any white space inside the brackets, a no-break space or a form feed too', () => {
    expect(render('<{{\u00a0events.action\u00a0}}|[[\fevents.resourceId\v]]>')).toBe('<flag.created|101>');
    expect(checkTemplate('{"a":"{{\u00a0events.nope}}"}', 'application/json')).toEqual([
      { message: 'unknown variable "events.nope"', variable: 'events.nope' },
    ]);
  });

  it('renders a template without placeholders unchanged, in both modes', () => {
    const text = '{"static": "text with é and 🚀"}';
    expect(render(text, VARS, true)).toBe(text);
    expect(render(text, VARS, false)).toBe(text);
  });

  it.each([true, false])('inserts numbers as digits, never quoted or escaped (jsonEscape %s)', (jsonEscape) => {
    const text = '{"id": {{events.resourceId}}, "project": [[events.projectId]], "user": {{ events.user.id }}}';
    const parsed: unknown = JSON.parse(render(text, VARS, jsonEscape));
    expect(parsed).toEqual({ id: 101, project: 202, user: 303 });
  });

  it('renders large numbers as plain digits', () => {
    const vars = { ...VARS, resourceId: 9_007_199_254_740_991 };
    expect(render('{{events.resourceId}}', vars, true)).toBe('9007199254740991');
  });

  it('does not expand placeholders that appear inside values', () => {
    const vars = { ...VARS, resourceName: '{{events.action}}', details: '[[events.user.email]]' };
    expect(render('[[events.resourceName]] {{events.details}}', vars, false)).toBe(
      '{{events.action}} [[events.user.email]]',
    );
    expect(render('"[[events.resourceName]]"', vars, true)).toBe('"{{events.action}}"');
  });

  it('inserts values containing replacement patterns literally', () => {
    expect(render('<{{events.resourceName}}>', withName("$& $1 $$ $` $'"))).toBe("<$& $1 $$ $` $'>");
  });
});

describe('JSON escaping', () => {
  const hostile = [
    ['double quotes', 'say "hi"'],
    ['a backslash', 'C:\\temp\\'],
    ['the seed example', 'say "hi"\\'],
    ['newline, carriage return and tab', 'line1\nline2\r\n\tindented'],
    ['control characters', '\u0000\u0001\u001f\u007f'],
    ['a closing script tag', '</script><script>alert(1)</script>'],
    ['unicode', 'Ünïcødé ✓ 🚀 кириллица'],
    ['line and paragraph separators', 'a\u2028b\u2029c'],
    ['a lone surrogate', 'x\ud800y'],
    ['a JSON fragment', '", "admin": true, "x": "'],
    ['an empty string', ''],
  ] as const;

  it.each(hostile)('a value with %s parses back to exactly itself', (_label, value) => {
    const body = render('{"name": "[[events.resourceName]]", "raw": "{{ events.resourceName }}"}', withName(value), true);
    expect(JSON.parse(body)).toEqual({ name: value, raw: value });
  });

  it('renders the seed example template to JSON with the exact values', () => {
    const body = render(SEED_TEMPLATE, withName('say "hi"\\'), true);
    expect(JSON.parse(body)).toEqual({ event: 'flag.created', resource: 'say "hi"\\' });
  });

  it('renders the body of the seed curl example (configJson as sent) to valid JSON', () => {
    const configJson =
      '{"url":"https://my-server.example.com/hooks","headers":{"Content-Type":"application/json"},"body":"{ \\"event\\": \\"[[events.action]]\\", \\"resource\\": \\"[[events.resourceName]]\\" }"}';
    const config = JSON.parse(configJson) as { body: string; headers: Record<string, string> };
    expect(config.body).toBe(SEED_TEMPLATE);
    const jsonEscape = isJsonContentType(config.headers['Content-Type'] ?? '');
    expect(JSON.parse(render(config.body, withName('a\n"b"'), jsonEscape))).toEqual({
      event: 'flag.created',
      resource: 'a\n"b"',
    });
  });

  it('escapes every string variable, not only some', () => {
    const value = 'q"b\\n\n';
    const vars: EventVariables = {
      ...VARS,
      action: value,
      resourceType: value,
      resourceName: value,
      details: value,
      timestamp: value,
      user: { id: 1, name: value, email: value },
    };
    const names = ['action', 'resourceType', 'resourceName', 'details', 'timestamp', 'user.name', 'user.email'];
    const text = `[${names.map((name) => `"[[events.${name}]]"`).join(',')}]`;
    expect(JSON.parse(render(text, vars, true))).toEqual(names.map(() => value));
  });

  it('inserts values as they are for a non-JSON content type', () => {
    const value = 'say "hi"\\\nnext line\t</script> 🚀';
    const jsonEscape = isJsonContentType('text/plain');
    expect(render('name=[[events.resourceName]];', withName(value), jsonEscape)).toBe(`name=${value};`);
  });
});

describe('unknown variables', () => {
  it('names each unknown variable as written, once, in order of appearance', () => {
    const { problems } = compileTemplate(
      '{{events.nope}} [[events.user]] {{ foo.bar }} {{events.nope}} [[events.user.name.first]]',
    );
    expect(problems).toEqual([
      { message: 'unknown variable "events.nope"', variable: 'events.nope' },
      { message: 'unknown variable "events.user"', variable: 'events.user' },
      { message: 'unknown variable "foo.bar"', variable: 'foo.bar' },
      { message: 'unknown variable "events.user.name.first"', variable: 'events.user.name.first' },
    ]);
  });

  it.each([
    ['{{event.action}}', 'event.action', 'events.action'],
    ['{{ action }}', 'action', 'events.action'],
    ['{{ foobar.action }}', 'foobar.action', 'events.action'],
    ['[[user.email]]', 'user.email', 'events.user.email'],
    ['[[events.resourcename]]', 'events.resourcename', 'events.resourceName'],
    ['{{Events.Action}}', 'Events.Action', 'events.action'],
  ])('refuses %s and suggests the intended variable', (text, variable, suggestion) => {
    expect(compileTemplate(text).problems).toEqual([
      { message: `unknown variable "${variable}" (did you mean "${suggestion}"?)`, variable },
    ]);
  });

  it.each(['events.constructor', 'events.__proto__', 'events.toString', 'events.hasOwnProperty'])(
    'treats the object property %s as unknown',
    (variable) => {
      expect(compileTemplate(`{{${variable}}}`).problems).toEqual([{ message: `unknown variable "${variable}"`, variable }]);
    },
  );

  it('keeps unknown placeholders as literal text and still renders the known ones', () => {
    const { template } = compileTemplate('{{events.nope}} {{events.action}}');
    expect(renderTemplate(template, VARS, true)).toBe('{{events.nope}} flag.created');
  });

  it.each([
    ['{{events.user-name}}', '{{events.user-name}}'],
    ['{{events.}}', '{{events.}}'],
    ['{{events..action}}', '{{events..action}}'],
    ['[[events.action}}', '[[events.action}}'],
    ['{{ events.action ]]', '{{ events.action ]]'],
    ['"{{events.action" and more', '{{events.action" and more'],
    [`{{events.${'x'.repeat(60)}`, `{{events.${'x'.repeat(31)}…`],
    ['{"a":"{{events .action}}"}', '{{events .action}}'],
    ['{"a":"{{ events . action }}"}', '{{ events . action }}'],
    ['{"a":"{events.action}}"}', '{events.action}}'],
    ['{"a":"[events.action]]"}', '[events.action]]'],
    ['{"a":"{ events.user.name }}"}', '{ events.user.name }}'],
  ])('reports the malformed placeholder in %j', (text, excerpt) => {
    expect(compileTemplate(text).problems).toEqual([{ message: `malformed placeholder "${excerpt}"` }]);
  });

  it('reports a slip written many times once', () => {
    expect(compileTemplate('{{events.user-name}} and {{events.user-name}}').problems).toEqual([
      { message: 'malformed placeholder "{{events.user-name}}"' },
    ]);
  });
});

describe('text that only looks like a placeholder stays literal', () => {
  it.each([
    '{"a":{"b":1}}',
    '{"a":{"b":{"c":[[1,2],[3]]}}}',
    '[[1,2]]',
    '[[true]]',
    '[[ false ]]',
    '{"x": [[null]]}',
    '{{true}}',
    '{{',
    '}} ]] {{ [[',
    '{{ }}',
    '[[]]',
    '{{"a":1}}',
    '[["events.action"]]',
    '{{1abc}}',
    '{{ .Name }}',
    '{% if x %}{{- x -}}{% endif %}',
  ])('%j', (text) => {
    const { template, problems } = compileTemplate(text);
    expect(problems).toEqual([]);
    expect(template.variables).toEqual([]);
    expect(renderTemplate(template, VARS, true)).toBe(text);
  });

  it('keeps JSON arrays literal next to real placeholders', () => {
    const body = render('{"matrix": [[1,2],[3]], "ok": [[true]], "id": [[events.resourceId]]}', VARS, true);
    expect(JSON.parse(body)).toEqual({ matrix: [[1, 2], [3]], ok: [[true]], id: 101 });
  });
});

describe('checkTemplate', () => {
  it.each([undefined, ''])('accepts a missing or empty template (%j) as a body-less POST', (text) => {
    expect(checkTemplate(text, 'application/json')).toEqual([]);
  });

  it.each([
    SEED_TEMPLATE,
    '{"id": {{events.resourceId}}}',
    '{"ids": [[[events.resourceId]], {{events.projectId}}, [[events.user.id]]]}',
    `{${TEMPLATE_VARIABLES.map((name) => `"${name}": "{{ events.${name} }}"`).join(', ')}}`,
    '{"text": "[[events.user.name]] changed [[events.resourceType]] [[events.resourceName]]: [[events.details]]"}',
    '"[[events.details]]"',
    '[[true]]',
    '{"literal": "{{true}} and [[1,2]]"}',
  ])('accepts the JSON template %j', (text) => {
    expect(checkTemplate(text, 'application/json')).toEqual([]);
  });

  it.each([
    ['an unquoted string variable', '{"a": [[events.resourceName]]}'],
    ['an unquoted string variable in the curly form', '{"a": {{ events.details }}}'],
    ['broken JSON', '{"a": }'],
    ['plain text', 'flag [[events.resourceName]] changed'],
    ['a trailing comma', '{"a": "[[events.action]]",}'],
    ['whitespace only', '  \n'],
  ])('refuses %s for a JSON content type', (_label, text) => {
    const messages = problemMessages(text);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/^renders to invalid JSON: .+ \(with (?:\w+ )?sample values; a position counts in that rendering, not in the template\)$/);
  });

  it('refuses a string placeholder right after a backslash or inside an unfinished \\u escape, which the sample values cannot catch', () => {
    const refusal = "placeholder events.action follows a backslash (or an unfinished \\u escape), which would turn the value's first characters into part of an escape";
    // `\f` + "lag.updated" is valid JSON; `\s` + "egment.created" is not.
    expect(problemMessages('{"a":"\\[[events.action]]\\[[events.action]]"}')).toEqual([refusal]);
    // `\u000` + "f…" is an escape for flag events, and broken for segment.created ("s" is no hex digit).
    for (const open of ['\\u', '\\u0', '\\u00', '\\u000', '\\uABC']) expect(problemMessages(`{"a":"${open}{{events.action}}"}`), open).toEqual([refusal]);
    expect(problemMessages('{"a":"\\\\[[events.action]]"}')).toEqual([]); // an escaped backslash, then the value
    expect(problemMessages('{"a":"\\u0041[[events.action]]"}')).toEqual([]); // a finished escape, then the value
    expect(problemMessages('{"a":"\\\\u00[[events.action]]"}')).toEqual([]); // an escaped backslash, then text "u00"
  });

  it.each([
    ['a wiki link', 'See [[Events/Launch plan]] for {{events.action}}', 'text/plain'],
    ['a label in brackets', '{"text":"[[EVENT: {{events.action}}]] by [[events.user.name]]"}', 'application/json'],
    ['a link to a changelog', 'Docs: [[events:changelog]] after {{events.action}}', 'text/plain'],
    ['a path', 'see /docs/[[events/]] for {{events.action}}', 'text/plain'],
  ])('keeps text that merely mentions events in brackets: %s', (_label, text, contentType) => {
    expect(problemMessages(text, contentType)).toEqual([]);
  });

  it('names an unknown variable in at most 40 characters, however long it is', () => {
    const [message] = problemMessages(`{"a":"{{events.${'a'.repeat(65_000)}}}"}`);
    expect(message).toBe(`unknown variable "events.${'a'.repeat(33)}…"`);
  });

  it.each([
    ['a zero-width space before the dot', '{{events\u200b.action}}'],
    ['a zero-width space first', '{{\u200bevents.action}}'],
    ['a soft hyphen', '{{events\u00ad.action}}'],
    ['a word joiner', '[[\u2060events.action]]'],
    ['a colon for the dot', '{{events:action}}'],
    ['a slash for the dot', '{{events/action}}'],
    ['capitals and spaces', '{{ Events .action }}'],
    ['the singular, spaced', '{{ event .action }}'],
  ])('refuses a placeholder broken by %s, which would reach the receiver unexpanded', (_label, placeholder) => {
    const messages = problemMessages(`{"a":"${placeholder}"}`);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/^malformed placeholder "/);
  });

  it('allows at most MAX_PLACEHOLDERS placeholders, so a rendered body stays near 1 MiB', () => {
    expect(problemMessages(JSON.stringify({ a: '[[events.details]]'.repeat(MAX_PLACEHOLDERS) }))).toEqual([]);
    expect(problemMessages(JSON.stringify({ a: '[[events.details]]'.repeat(MAX_PLACEHOLDERS + 1) }))).toEqual([
      `template uses ${MAX_PLACEHOLDERS + 1} placeholders; the limit is ${MAX_PLACEHOLDERS}`,
    ]);
  });

  it('renders with empty sample values too, not only realistic ones', () => {
    // With a realistic id this is 420; with 0 it is "00", which JSON refuses.
    expect(problemMessages('{"a": [[events.resourceId]]0}')).toEqual([
      expect.stringMatching(/^renders to invalid JSON: .+ \(with empty sample values; a position counts in that rendering, not in the template\)$/),
    ]);
  });

  it('uses the headers Content-Type with parameters to decide on the JSON check', () => {
    expect(problemMessages('{"a": }', 'application/json; charset=utf-8')).toHaveLength(1);
    expect(problemMessages('{"a": }', 'application/vnd.api+json')).toHaveLength(1);
    expect(problemMessages('{"a": }', 'text/plain')).toEqual([]);
  });

  it('does not check JSON for other content types, but still refuses unknown variables', () => {
    expect(checkTemplate('name=[[events.resourceName]] {oops', 'text/plain')).toEqual([]);
    expect(checkTemplate('name={{events.nope}}', 'application/x-www-form-urlencoded')).toEqual([
      { message: 'unknown variable "events.nope"', variable: 'events.nope' },
    ]);
  });

  it('reports several unknown variables at once, without a JSON verdict on them', () => {
    expect(checkTemplate('{"a": {{events.nope}}, "b": "[[events.user]]", "c": "{{foo.bar}}"}', 'application/json')).toEqual([
      { message: 'unknown variable "events.nope"', variable: 'events.nope' },
      { message: 'unknown variable "events.user"', variable: 'events.user' },
      { message: 'unknown variable "foo.bar"', variable: 'foo.bar' },
    ]);
  });

  it('reports the first ten problems and how many more there are', () => {
    const text = JSON.stringify(Array.from({ length: 15 }, (_, i) => `{{events.nope${i}}}`));
    const messages = problemMessages(text);
    expect(messages).toHaveLength(11);
    expect(messages.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `unknown variable "events.nope${i}"`));
    expect(messages[10]).toBe('…and 5 more problems like these');
  });

  it('puts the placeholder limit first, never among the "…and N more"', () => {
    const text = `${Array.from({ length: 12 }, (_, i) => `{{events.nope${i}}}`).join(' ')} ${'[[events.action]]'.repeat(101)}`;
    const messages = problemMessages(text, 'text/plain');
    expect(messages).toHaveLength(12);
    expect(messages[0]).toBe('template uses 101 placeholders; the limit is 100');
    expect(messages[11]).toBe('…and 2 more problems like these');
  });

  describe('size limit', () => {
    const jsonOfBytes = (bytes: number): string => `"${'a'.repeat(bytes - 2)}"`;

    it('accepts exactly 64 KiB', () => {
      expect(MAX_TEMPLATE_BYTES).toBe(65_536);
      expect(checkTemplate(jsonOfBytes(65_536), 'application/json')).toEqual([]);
    });

    it('refuses one byte more', () => {
      expect(problemMessages(jsonOfBytes(65_537))).toEqual([
        'template is 65537 bytes; the limit is 65536 bytes (64 KiB)',
      ]);
    });

    it('reports only the size of a template past the limit, without parsing it', () => {
      const text = '{{events.'.repeat(115_000); // a megabyte of distinct-looking slips
      expect(problemMessages(text)).toEqual(['template is 1035000 bytes; the limit is 65536 bytes (64 KiB)']);
    });

    it('counts UTF-8 bytes, not characters', () => {
      const text = 'é'.repeat(32_769); // 32769 characters, 65538 bytes
      expect(problemMessages(text, 'text/plain')).toEqual([
        'template is 65538 bytes; the limit is 65536 bytes (64 KiB)',
      ]);
    });
  });
});

describe('isJsonContentType', () => {
  it.each([
    'application/json',
    'APPLICATION/JSON',
    'Application/Json',
    'application/json; charset=utf-8',
    ' application/json ;charset=UTF-8',
    'application/vnd.api+json',
    'application/merge-patch+json',
    'application/cloudevents+json; charset=utf-8',
    'text/json',
    'Text/JSON',
  ])('%j is JSON', (contentType) => {
    expect(isJsonContentType(contentType)).toBe(true);
  });

  it.each([
    'text/plain',
    'text/html; charset=json',
    'application/x-www-form-urlencoded',
    'application/xml',
    'application/javascript',
    'application/jsonl',
    'application/json-seq',
    'application/+json',
    'application/json+xml',
    'json',
    'text/json5',
    '',
  ])('%j is not JSON', (contentType) => {
    expect(isJsonContentType(contentType)).toBe(false);
  });
});

describe('SAMPLE_VARIABLES', () => {
  it('gives a realistic preview of the seed template', () => {
    const body = render(SEED_TEMPLATE, SAMPLE_VARIABLES, true);
    expect(JSON.parse(body)).toEqual({ event: SAMPLE_VARIABLES.action, resource: SAMPLE_VARIABLES.resourceName });
    expect(SAMPLE_VARIABLES.action).toMatch(/^[a-z]+\.[a-z]+$/);
    expect(Number.isInteger(SAMPLE_VARIABLES.resourceId)).toBe(true);
    expect(SAMPLE_VARIABLES.timestamp).toBe(new Date(SAMPLE_VARIABLES.timestamp).toISOString());
  });

  it('cannot be changed by a caller', () => {
    expect(Object.isFrozen(SAMPLE_VARIABLES)).toBe(true);
    expect(Object.isFrozen(SAMPLE_VARIABLES.user)).toBe(true);
  });
});
