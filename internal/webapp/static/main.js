// The app's entry: the routes (#/, #/image/{id}, #/webhooks, #/login,
// #/signup), the session and the event stream that feeds the pages.

import {replace, h} from './dom.js';
import {onSession, loggedIn, logout, email, explain} from './api.js';
import {follow} from './events.js';
import {Home} from './home.js';
import {showImage} from './image.js';
import {showWebhooks} from './webhooks.js';
import {showAuth} from './auth.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const notice = document.getElementById('notice');
let home = null;
let stopEvents = null;

// The live state, for people (the header) and for the browser tests.
function setLive(state, err) {
  if (!loggedIn()) return; // the stream is ending with the session
  document.body.dataset.stream = state;
  if (state === 'reconnecting' && err) {
    notice.hidden = false;
    replace(notice, `Live updates interrupted: ${explain(err)} Reconnecting…`);
  } else if (state === 'live') {
    notice.hidden = true;
  }
}

onSession((on) => {
  nav.hidden = !on;
  replace(document.getElementById('who'), on ? email() : '');
  if (on && !stopEvents) {
    home = new Home();
    let received = 0;
    stopEvents = follow((type, img) => {
      document.body.dataset.events = String(++received);
      if (img && img.id) home.update(img);
    }, setLive);
    go(location.hash.startsWith('#/image/') || location.hash === '#/webhooks' ? location.hash : '#/');
  } else if (!on) {
    if (stopEvents) stopEvents();
    stopEvents = null;
    home = null;
    delete document.body.dataset.stream;
    notice.hidden = true;
    go('#/login');
  }
});

// go shows the page of hash: through the hashchange event when the hash
// changes (routing here too would build the page twice, and a person
// typing in the first one would lose it), at once when it does not.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  const hash = location.hash || '#/';
  if (!loggedIn()) {
    showAuth(main, hash === '#/signup' ? 'signup' : 'login');
    return;
  }
  const m = hash.match(/^#\/image\/([\w-]+)$/);
  if (m) {
    showImage(main, decodeURIComponent(m[1]), {
      onDeleted: (id) => home.remove(id),
      onChanged: (img) => home.update(img),
    });
  } else if (hash === '#/webhooks') {
    showWebhooks(main);
  } else {
    home.show(main);
  }
  main.focus({preventScroll: true});
}

addEventListener('hashchange', route);
// A file dropped beside the upload area would make the browser open it,
// leaving the page and, with it, the session (kept in memory only).
addEventListener('dragover', (e) => e.preventDefault());
addEventListener('drop', (e) => e.preventDefault());
// Leaving while files upload loses them: the browser asks first.
addEventListener('beforeunload', (e) => {
  if (home && home.busy()) e.preventDefault();
});
document.getElementById('logout').addEventListener('click', () => logout());

// Never a blank page: an error nothing caught is said in words.
function fatal(err) {
  notice.hidden = false;
  replace(notice, explain(err), ' ', h('button', {type: 'button', onclick: () => { notice.hidden = true; }}, 'Dismiss'));
}
addEventListener('unhandledrejection', (e) => fatal(e.reason));
addEventListener('error', (e) => fatal(e.error || e.message));

route();
