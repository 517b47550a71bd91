// The live status of images: GET /v1/events read with fetch(), not
// EventSource. EventSource cannot send an Authorization header, and the
// API's other way in (?access_token= in the URL) puts the token where
// proxies and server logs keep URLs. fetch() streams the body with the
// header, and this module does the rest of what EventSource would:
// parse the text/event-stream format, remember the last id and resume
// from it after a drop (Last-Event-ID), and reconnect with backoff.

import {accessToken, loggedIn, refresh, ApiError} from './api.js';

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
});

// follow calls onEvent(type, data) for every image event of the user
// from now on, and onState('live' | 'reconnecting', detail) as the
// connection comes and goes. It returns a function that stops it.
export function follow(onEvent, onState) {
  const stop = new AbortController();
  let lastId = '';
  let delay = 1000;

  async function connect() {
    const headers = {Authorization: `Bearer ${accessToken()}`, Accept: 'text/event-stream'};
    if (lastId) headers['Last-Event-ID'] = lastId;
    const resp = await fetch('/v1/events', {headers, signal: stop.signal, cache: 'no-store', credentials: 'omit'});
    if (resp.status === 401) {
      await refresh();
      return;
    }
    if (!resp.ok) {
      const ra = Number.parseInt(resp.headers.get('Retry-After') || '', 10);
      throw new ApiError(resp.status, resp.status === 429 ? 'too_many_waiting' : '', '', Number.isFinite(ra) ? ra : null);
    }
    onState('live');
    delay = 1000;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let block = {id: null, event: '', data: []};
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          // A blank line dispatches the block (an id alone moves the
          // position on without an event).
          if (block.id !== null) lastId = block.id;
          if (block.data.length) dispatch(block.event || 'message', block.data.join('\n'));
          block = {id: null, event: '', data: []};
          continue;
        }
        if (line.startsWith(':')) continue; // a comment: keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'id') block.id = val;
        else if (field === 'event') block.event = val;
        else if (field === 'data') block.data.push(val);
      }
    }
  }

  function dispatch(type, data) {
    if (type === 'token.expired') return; // the stream ends next; the loop reconnects with the new token
    let body;
    try { body = JSON.parse(data); } catch { return; }
    onEvent(type, body.data);
  }

  (async () => {
    while (!stop.signal.aborted && loggedIn()) {
      const started = Date.now();
      try {
        await connect();
        // An orderly end (the token expired, the server is stopping):
        // reconnect at once, unless the stream ends as soon as it starts,
        // which would make this loop spin.
        if (Date.now() - started > 1000) continue;
      } catch (e) {
        if (stop.signal.aborted) return;
        if (e instanceof ApiError && e.retryAfter) delay = Math.max(delay, e.retryAfter * 1000);
        onState('reconnecting', e);
      }
      await sleep(delay, stop.signal);
      delay = Math.min(delay * 2, 30000);
    }
  })();
  return () => stop.abort();
}
