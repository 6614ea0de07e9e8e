/* global fetch, sessionStorage */

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

/** Calls /api/v1 with the stored token; resolves to the parsed answer, rejects with an ApiError. */
export async function request(method, path, body) {
  const headers = { authorization: `Bearer ${token.get() ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached; check the connection and try again.', []);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text === '' ? null : JSON.parse(text);
  } catch {
    data = null; // not JSON: judged by the status alone
  }
  if (response.ok) return data;
  const error = data !== null && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : {};
  throw new ApiError(
    response.status,
    typeof error.code === 'string' ? error.code : `http_${response.status}`,
    typeof error.message === 'string' ? error.message : `HTTP ${response.status} ${response.statusText}`.trim(),
    Array.isArray(error.details) ? error.details : [],
  );
}
