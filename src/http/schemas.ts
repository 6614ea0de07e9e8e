import { number, string } from 'yup';

/** Shared field rules of SPEC §3. */
export const KEY_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,99}$/;

export const keyField = () =>
  string().matches(KEY_PATTERN, '${path} must match ^[a-z0-9][a-z0-9_.-]{0,99}$: lower-case letters, digits, "_", "." or "-", starting with a letter or digit, at most 100 characters');

/** At most `max` characters as a reader counts them (code points): an emoji is one, not two UTF-16 units. */
export const textField = (max: number) =>
  string().test('max', `\${path} must be at most ${max} characters`, (value) => value === undefined || value === null || value.length <= max || [...value].length <= max);

/** A name shows on cards, in messages and to screen readers: one of only spaces or invisible characters would show as nothing. */
export const nameField = () =>
  textField(100)
    .min(1, '${path} must not be empty')
    .test('blank', '${path} must not be blank (only spaces or invisible characters)', (value) => !value || /[^\s\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]/u.test(value));

/** Ids are PostgreSQL `integer`s: a larger one names nothing, and is refused by name rather than failing the query. */
export const MAX_ID = 2_147_483_647;
export const idField = () => number().integer('${path} must be a whole number').positive().max(MAX_ID, '${path} must be at most ' + MAX_ID);
