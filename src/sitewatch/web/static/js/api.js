// The JSON API of `sitewatch serve` (docs/web.md), from the browser.
//
// Reads are open.  Every write carries `Authorization: Bearer <token>`: the token the server
// printed on first start, which the analyst pastes once per tab (kept in sessionStorage, so
// it goes away with the tab and is never sent anywhere but this server).

const TOKEN_KEY = 'sitewatch-token';

/** An answer that was not 2xx: `status`, `code` and the server's `message`. */
export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || 'error';
    this.path = path;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_e) {  // storage disabled
    return '';
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, String(token).trim());
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_e) { /* storage disabled: writes will be refused with the server's message */ }
}

async function answer(resp, path) {
  if (resp.ok) {
    if (resp.status === 204) return null;
    const type = resp.headers.get('content-type') || '';
    return type.includes('json') ? resp.json() : resp.text();
  }
  let status = resp.status;
  let code = 'error';
  let message = `${resp.status} ${resp.statusText || ''}`.trim();
  try {
    const body = await resp.json();
    if (body && body.error) {
      status = body.error.status || status;
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (_e) { /* not JSON: keep the status line */ }
  throw new ApiError(status, code, message, path);
}

async function request(path, init) {
  let resp;
  try {
    resp = await fetch(path, { credentials: 'same-origin', ...init });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the server (${e.message})`, path);
  }
  return answer(resp, path);
}

/** GET a JSON answer; throws ApiError with the server's message on failure. */
export function getJSON(path) {
  return request(path, { headers: { Accept: 'application/json' } });
}

/** A write (POST, PUT, DELETE) with a JSON body and the token. */
export function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return request(path, init);
}

/** `/api/sites/{site}` + the rest, each segment encoded. */
export function sitePath(siteId, ...rest) {
  return ['/api/sites', siteId, ...rest].map((s, i) => (i ? encodeURIComponent(s) : s)).join('/');
}

export const api = { getJSON, send, getToken, setToken, sitePath, ApiError };
export default api;
