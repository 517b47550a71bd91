// The home page: the upload area (drag and drop, or the file picker; one
// progress bar per file, then its status live from the event stream) over
// the gallery (newest first, more loaded as the end scrolls into view).

import {h, replace, bytes} from './dom.js';
import {call, upload, explain, maxUploadBytes} from './api.js';
import {frame} from './picture.js';

const statusWords = {waiting: 'Waiting', uploading: 'Uploading', queued: 'Queued', processing: 'Processing', done: 'Done', failed: 'Failed'};
const gallerySizes = '(max-width: 480px) 46vw, 200px';
const pageSize = 24;

// Slots lets n callers through at a time; the others wait their turn.
class Slots {
  constructor(n) { this.free = n; this.waiting = []; }
  take() {
    if (this.free > 0) { this.free--; return Promise.resolve(); }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  give() {
    const next = this.waiting.shift();
    if (next) next(); else this.free++;
  }
}

// Home is the page's state; it lives as long as the session, so that
// uploads in flight and their statuses survive a visit to another page.
export class Home {
  constructor() {
    this.cards = new Map(); // image id -> <li>
    this.uploads = new Map(); // image id -> upload row
    this.cursor = undefined; // undefined: not loaded; null: the end
    this.loading = false;
    this.slots = new Slots(3);
    this.grid = h('ul', {class: 'grid', id: 'gallery', 'aria-label': 'Your images'});
    this.more = h('p', {class: 'more', 'aria-live': 'polite'});
    this.list = h('ul', {class: 'uploads', id: 'uploads', 'aria-label': 'Uploads'});
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.loadMore();
    }, {rootMargin: '400px'});
    this.el = this.build();
  }

  build() {
    const input = h('input', {type: 'file', id: 'file', multiple: true, accept: 'image/*', class: 'visually-hidden',
      onchange: () => { this.send([...input.files]); input.value = ''; }});
    const limit = maxUploadBytes() ? ` (up to ${bytes(maxUploadBytes())} each)` : '';
    const drop = h('div', {class: 'drop', id: 'drop'},
      h('p', {}, 'Drop photos here', limit, ', or'),
      h('label', {for: 'file', class: 'button'}, 'Choose files…'),
      input);
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      this.send([...e.dataTransfer.files]);
    });
    return h('div', {class: 'home'},
      h('section', {'aria-labelledby': 'upload-title'}, h('h1', {id: 'upload-title'}, 'Upload'), drop, this.list),
      h('section', {'aria-labelledby': 'gallery-title'}, h('h2', {id: 'gallery-title'}, 'Your images'), this.grid, this.more));
  }

  // show puts the page in main and loads the first page if need be.
  show(main) {
    replace(main, this.el);
    this.observer.observe(this.more);
    if (this.cursor === undefined) this.loadMore();
  }

  async loadMore() {
    if (this.loading || this.cursor === null) return;
    this.loading = true;
    replace(this.more, 'Loading…');
    try {
      const q = new URLSearchParams({limit: String(pageSize)});
      if (this.cursor) q.set('cursor', this.cursor);
      const page = await call('GET', `/v1/images?${q}`);
      for (const img of page.items) {
        if (!this.cards.has(img.id)) this.grid.append(this.card(img));
      }
      this.cursor = page.next_cursor || null;
      this.sayEmpty();
    } catch (e) {
      replace(this.more, explain(e), ' ', h('button', {type: 'button', onclick: () => this.loadMore()}, 'Retry'));
    } finally {
      this.loading = false;
    }
    // A tall screen may still show the end: load on until it does not.
    if (this.cursor && this.more.isConnected && this.more.getBoundingClientRect().top < innerHeight + 400) this.loadMore();
  }

  // sayEmpty says so under the gallery when it has been read to its end
  // and holds nothing.
  sayEmpty() {
    if (this.loading) return;
    replace(this.more, this.cursor === null && !this.cards.size ? 'No images yet: upload some above.' : '');
  }

  card(img) {
    const status = h('span', {class: `status ${img.status}`}, statusWords[img.status] || img.status);
    const li = h('li', {class: 'card', dataset: {id: img.id, status: img.status}},
      h('a', {href: `#/image/${encodeURIComponent(img.id)}`},
        frame(img, gallerySizes, img.filename),
        h('span', {class: 'name'}, img.filename || 'untitled'),
        status,
        img.status === 'failed' && img.error ? h('span', {class: 'reason'}, img.error.message) : null));
    const old = this.cards.get(img.id);
    this.cards.set(img.id, li);
    if (old) old.replaceWith(li);
    return li;
  }

  // update shows an image's new state wherever it is on the page.
  // An image the page has not seen (uploaded from elsewhere: the CLI,
  // another tab) goes first in the gallery.
  update(img) {
    if (this.cards.has(img.id)) this.card(img);
    else if (this.cursor !== undefined) { this.grid.prepend(this.card(img)); this.sayEmpty(); }
    const row = this.uploads.get(img.id);
    if (row) row.set(img.status, img.error ? img.error.message : '');
  }

  // remove takes a deleted image off the page.
  remove(id) {
    this.cards.get(id)?.remove();
    this.cards.delete(id);
    this.uploads.get(id)?.el.remove();
    this.uploads.delete(id);
    this.sayEmpty();
  }

  // busy says whether files are uploading or waiting to.
  busy() {
    return [...this.list.children].some((r) => r.dataset.state === 'uploading' || r.dataset.state === 'waiting');
  }

  send(files) {
    for (const file of files) this.sendOne(file);
  }

  async sendOne(file) {
    const bar = h('progress', {max: file.size || 1, value: 0, 'aria-label': `Upload of ${file.name}`});
    const state = h('span', {class: 'state'}, 'Waiting');
    const detail = h('span', {class: 'detail', role: 'status'}, `0 of ${bytes(file.size)}`);
    const row = h('li', {class: 'upload', dataset: {state: 'waiting'}},
      h('span', {class: 'name'}, file.name), bar, state, detail);
    this.list.prepend(row);
    const set = (s, text) => {
      row.dataset.state = s;
      replace(state, statusWords[s] || s);
      replace(detail, text || '');
      if (s !== 'uploading') bar.hidden = true;
    };
    // A few at a time: the API bounds one user's uploads in flight (and
    // answers 429 beyond), and the bandwidth is shared anyway.
    await this.slots.take();
    row.dataset.state = 'uploading';
    replace(state, 'Uploading');
    try {
      const img = await upload(file, (sent, total) => {
        bar.max = total;
        bar.value = sent;
        replace(detail, `${bytes(sent)} of ${bytes(total)}`);
      });
      row.dataset.id = img.id;
      this.uploads.set(img.id, {el: row, set});
      // An event may have overtaken the answer; otherwise it comes later.
      const seen = this.cards.get(img.id)?.dataset.status;
      set(seen === 'done' || seen === 'failed' ? seen : img.status);
      if (!this.cards.has(img.id)) this.grid.prepend(this.card(img));
      if (this.cursor === null) this.sayEmpty();
      this.checkProcessing(img.id);
    } catch (e) {
      set('error', explain(e));
      replace(state, 'Not uploaded');
    } finally {
      this.slots.give();
    }
  }

  // checkProcessing reads a queued image once, a little later: the event
  // stream announces only the end (done or failed), so "processing" comes
  // from the image itself. The end is left to the stream, which carries
  // the same image.
  checkProcessing(id) {
    setTimeout(async () => {
      const row = this.uploads.get(id);
      if (!row || row.el.dataset.state !== 'queued') return;
      try {
        const img = await call('GET', `/v1/images/${encodeURIComponent(id)}`);
        if (img.status === 'processing' && row.el.dataset.state === 'queued') this.update(img);
      } catch { /* the stream tells the end anyway */ }
    }, 1500);
  }
}
