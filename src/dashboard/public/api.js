/* global fetch, sessionStorage, AbortSignal */

// sessionStorage only: the token dies with the tab and is never written to localStorage or a URL.
const TOKEN_KEY = 'mozhno.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer of SPEC §9 (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A request still unanswered after this is shown as failed, rather than leaving its button doing nothing. */
const REQUEST_TIMEOUT_MS = 20_000;

/** Calls /api/v1 with the stored token; resolves to the parsed answer, rejects with an ApiError. */
export async function request(method, path, body) {
  return (await tagged(method, path, body)).data;
}

/**
 * The same, answering `{ data, etag }`; `ifMatch`: the ETag of the copy the change was made to, so
 * that the server refuses it (412) when the resource was saved elsewhere since.
 */
export async function tagged(method, path, body, ifMatch) {
  const headers = { authorization: `Bearer ${token.get() ?? ''}` };
  if (ifMatch) headers['if-match'] = ifMatch;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  let text;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    text = await response.text();
  } catch (err) {
    if (err instanceof Error && err.name === 'TimeoutError') {
      // It may still do what was asked: a retry could, say, connect a second integration.
      throw new ApiError(0, 'timeout', `The server did not answer within ${REQUEST_TIMEOUT_MS / 1000} s, and may still do what was asked: refresh to see whether it did before trying again.`, []);
    }
    throw new ApiError(0, 'network', 'The server could not be reached; check the connection and try again.', []);
  }
  let data = null;
  try {
    data = text === '' ? null : JSON.parse(text);
  } catch {
    data = null; // not JSON: judged by the status alone
  }
  if (response.ok) return { data, etag: response.headers.get('etag') };
  const error = data !== null && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : {};
  throw new ApiError(
    response.status,
    typeof error.code === 'string' ? error.code : `http_${response.status}`,
    typeof error.message === 'string' ? error.message : `HTTP ${response.status} ${response.statusText}`.trim(),
    Array.isArray(error.details) ? error.details : [],
  );
}
