// The API client: the session (tokens in memory only) and requests that
// turn API errors into sentences a person understands.
//
// Tokens live in this module's variables and nowhere else: not in
// localStorage or sessionStorage (any script on the origin reads those),
// not in cookies. The cost: a reload or a new tab starts logged out.

let session = null; // {access, refresh, email, expiresAt, timer}
const listeners = new Set();

// onSession registers f(loggedIn) to be told when the session starts or ends.
export function onSession(f) { listeners.add(f); }

function tell() { for (const f of listeners) f(!!session); }

export function loggedIn() { return !!session; }
export function email() { return session ? session.email : ''; }

// ApiError is an answer other than 2xx, or no answer at all (status 0).
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, or null
  }
}

const maxUpload = Number(document.querySelector('meta[name="imagesvc-max-upload-bytes"]')?.content) || 0;

// maxUploadBytes is the largest file the server accepts (0: not known).
export function maxUploadBytes() { return maxUpload; }

function mb(n) { return `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`; }

// explain is the sentence shown for an error.
export function explain(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err && err.message ? err.message : err}`;
  const wait = err.retryAfter ? ` Try again in ${err.retryAfter} second${err.retryAfter === 1 ? '' : 's'}.` : ' Try again in a moment.';
  switch (err.code) {
    case 'network': return 'The server could not be reached. Check your connection and try again.';
    case 'file_too_large': return maxUpload ? `The file is too large: the limit is ${mb(maxUpload)}.` : 'The file is too large.';
    case 'unsupported_type': return 'This file is not an image type the service accepts (JPEG, PNG, WebP, GIF, HEIF or AVIF).';
    case 'too_many_pixels': return 'The image has more pixels than the service accepts.';
    case 'file_empty': return 'The file is empty.';
    case 'quota_exceeded': return 'Your storage quota is used up: delete some images first.';
    case 'rate_limited': return `Too many requests.${wait}`;
    case 'too_many_waiting': return `Too many open live streams for this account (other tabs?).${wait}`;
    case 'uploads_saturated': return `The server is busy with other uploads.${wait}`;
    case 'auth_busy': return `The server is busy with other sign-ins.${wait}`;
    case 'invalid_credentials': return 'Email or password is incorrect.';
    case 'email_taken': return 'An account with this email already exists. Log in instead.';
    case 'weak_password': return 'The password must be at least 8 characters.';
    case 'invalid_email': return 'That does not look like an email address.';
    case 'invalid_token':
    case 'invalid_refresh_token': return 'Your session has ended. Please log in again.';
    case 'not_found': return 'It is not there any more (deleted?).';
    case 'not_reprocessable': return 'Only failed images can be reprocessed.';
  }
  if (err.status === 429) return `Too many requests.${wait}`;
  if (err.status === 503) return `The service is temporarily unavailable.${wait}`;
  if (err.status >= 500) return 'The server had a problem. Try again later.';
  return err.message || `The request failed (HTTP ${err.status}).`;
}

// toError reads an error answer: the API's {"error":{"code","message"}},
// or whatever a proxy in between sent.
function toError(status, text, retryAfterHeader) {
  let code = '';
  let message = '';
  try {
    const body = JSON.parse(text);
    code = body?.error?.code || '';
    message = body?.error?.message || '';
  } catch { /* not JSON: a proxy's page */ }
  if (!code && status === 413) code = 'file_too_large';
  if (!code && status === 429) code = 'rate_limited';
  const ra = Number.parseInt(retryAfterHeader || '', 10);
  return new ApiError(status, code, message, Number.isFinite(ra) && ra >= 0 ? ra : null);
}

async function raw(method, path, {json, token, signal} = {}) {
  const headers = {};
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: json === undefined ? undefined : JSON.stringify(json),
      signal, credentials: 'omit', cache: 'no-store'});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', e.message, null);
  }
  const text = await resp.text();
  if (!resp.ok) throw toError(resp.status, text, resp.headers.get('Retry-After'));
  return text ? JSON.parse(text) : null;
}

// call is an authenticated request; an expired access token is refreshed
// once and the request made again.
export async function call(method, path, json, signal) {
  if (!session) throw new ApiError(401, 'invalid_token', '', null);
  try {
    return await raw(method, path, {json, token: session.access, signal});
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && session) {
      await refresh();
      return raw(method, path, {json, token: session.access, signal});
    }
    throw e;
  }
}

export function signup(emailAddr, password) {
  return raw('POST', '/v1/auth/signup', {json: {email: emailAddr, password}});
}

export async function login(emailAddr, password) {
  const t = await raw('POST', '/v1/auth/login', {json: {email: emailAddr, password}});
  start(t, emailAddr);
}

function start(t, emailAddr) {
  if (session) clearTimeout(session.timer);
  session = {access: t.access_token, refresh: t.refresh_token, email: emailAddr,
    expiresAt: Date.now() + t.expires_in * 1000, timer: 0};
  // Refresh a minute before expiry (or at half the lifetime if shorter),
  // so that requests and the event stream never carry an expired token.
  const ahead = Math.min(60, t.expires_in / 2) * 1000;
  session.timer = setTimeout(() => refresh().then(() => {
    // Counted where the browser test (and a curious developer) sees it.
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  }, () => {}), Math.max(1000, t.expires_in * 1000 - ahead));
  tell();
}

let refreshing = null;

// refresh trades the refresh token for new tokens (the old one stops
// working); concurrent callers share one exchange. A refused refresh ends
// the session.
export function refresh() {
  if (refreshing) return refreshing;
  if (!session) return Promise.reject(new ApiError(401, 'invalid_refresh_token', '', null));
  const s = session;
  refreshing = raw('POST', '/v1/auth/refresh', {json: {refresh_token: s.refresh}})
    .then((t) => { if (session === s) start(t, s.email); })
    .catch((e) => {
      if (e instanceof ApiError && e.status === 401 && session === s) end();
      throw e;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

// accessToken is the current access token, for the event stream.
export function accessToken() { return session ? session.access : ''; }

export async function logout() {
  const s = session;
  end();
  if (s) {
    try { await raw('POST', '/v1/auth/logout', {json: {refresh_token: s.refresh}, token: s.access}); } catch { /* ended here anyway */ }
  }
}

function end() {
  if (session) clearTimeout(session.timer);
  session = null;
  tell();
}

// upload sends one file as POST /v1/images (multipart, field "file"),
// reporting bytes sent through onProgress(sent, total). It resolves with
// the image object (status queued). XMLHttpRequest, not fetch: only it
// reports upload progress.
export function upload(file, onProgress) {
  const send = () => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/images');
    xhr.setRequestHeader('Authorization', `Bearer ${session.access}`);
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { resolve(JSON.parse(xhr.responseText)); } catch (e) { reject(new ApiError(xhr.status, '', 'unreadable answer', null)); }
      } else {
        reject(toError(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')));
      }
    });
    // The server closes the connection on a body over the limit; the
    // browser may then see no answer at all.
    xhr.addEventListener('error', () => reject(new ApiError(0, file.size > maxUpload && maxUpload ? 'file_too_large' : 'network', 'no answer', null)));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
  if (!session) return Promise.reject(new ApiError(401, 'invalid_token', '', null));
  if (maxUpload && file.size > maxUpload) return Promise.reject(new ApiError(413, 'file_too_large', '', null));
  return send().catch(async (e) => {
    if (e instanceof ApiError && e.status === 401 && session) {
      await refresh();
      return send();
    }
    throw e;
  });
}
