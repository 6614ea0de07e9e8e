/* global document */

/** Bidirectional marks, overrides, embeddings and isolates: in text a user or an endpoint wrote, they could reverse the page's own words around it. */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

/** Text as shown: each bidirectional control written out (⟨U+202E⟩), so none can reorder what the page says. */
export function shown(text) {
  return String(text).replace(BIDI_CONTROLS, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`);
}

/**
 * Creates an element. Strings among the children become text nodes (shown as `shown` writes
 * them) and attribute values are set with setAttribute, so user data is never parsed as HTML.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : shown(value));
  }
  const nodes = children.flat().filter((child) => child !== undefined && child !== null && child !== false);
  element.append(...nodes.map((child) => (typeof child === 'string' ? shown(child) : child)));
  return element;
}

/** Sets an element's text, as `shown` writes it. */
export function setText(element, text) {
  element.textContent = shown(text);
}

export function $(selector) {
  const element = document.querySelector(selector);
  if (!element) throw new Error(`missing ${selector}`);
  return element;
}

/** A <time> with the local date and time and its zone, the ISO instant as its machine value. */
export function time(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', {}, String(iso));
  return h('time', { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString(undefined, { timeZoneName: 'short' }));
}
