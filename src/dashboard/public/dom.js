/* global document */

/**
 * Creates an element. Strings among the children become text nodes and attribute
 * values are set with setAttribute, so user data is never parsed as HTML.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.flat().filter((child) => child !== undefined && child !== null && child !== false));
  return element;
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
