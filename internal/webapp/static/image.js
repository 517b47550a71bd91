// The image page: the picture, its variants (sizes, bytes, formats), and
// reprocess and delete.

import {h, replace, bytes, when, safeURL} from './dom.js';
import {call, explain} from './api.js';
import {frame} from './picture.js';

// showImage renders image id into main; onDeleted(id) is called after a
// delete, onChanged(img) after a reprocess.
export async function showImage(main, id, {onDeleted, onChanged}) {
  replace(main, h('p', {class: 'loading'}, 'Loading…'));
  let img;
  try {
    img = await call('GET', `/v1/images/${encodeURIComponent(id)}`);
  } catch (e) {
    if (location.hash === `#/image/${id}`) {
      replace(main, h('p', {class: 'error', role: 'alert'}, explain(e)), h('p', {}, h('a', {href: '#/'}, 'Back to the gallery')));
    }
    return;
  }
  if (location.hash !== `#/image/${id}`) return; // the reader went elsewhere meanwhile
  const message = h('p', {class: 'message', role: 'status'});
  const status = h('dd', {class: `status ${img.status}`}, img.status);
  const why = img.error ? [h('dt', {}, 'Why'), h('dd', {}, img.error.message)] : [];
  const fail = (e) => { message.className = 'message error'; replace(message, explain(e)); };

  const reprocess = h('button', {type: 'button', id: 'reprocess', onclick: async () => {
    reprocess.disabled = true;
    try {
      const again = await call('POST', `/v1/images/${encodeURIComponent(id)}/reprocess`);
      onChanged(again);
      status.className = `status ${again.status}`;
      replace(status, again.status);
      if (again.status !== 'failed') for (const el of why) el.remove();
      message.className = 'message';
      replace(message, 'Queued for processing again.');
    } catch (e) { fail(e); } finally { reprocess.disabled = false; }
  }}, 'Reprocess');

  const confirmBox = h('div', {class: 'confirm', hidden: true},
    h('p', {}, 'Delete this image and every variant? This cannot be undone.'),
    h('button', {type: 'button', class: 'danger', id: 'confirm-delete', onclick: async (e) => {
      e.target.disabled = true;
      try {
        await call('DELETE', `/v1/images/${encodeURIComponent(id)}`);
        onDeleted(id);
        location.hash = '#/';
      } catch (err) { e.target.disabled = false; fail(err); }
    }}, 'Delete for good'),
    h('button', {type: 'button', onclick: () => { confirmBox.hidden = true; del.focus(); }}, 'Cancel'));
  const del = h('button', {type: 'button', class: 'danger', id: 'delete', onclick: () => {
    confirmBox.hidden = false;
    confirmBox.querySelector('button').focus();
  }}, 'Delete');

  // Smallest first; variants of one size (a small source is never
  // enlarged) in the configured names' usual order.
  const rank = (v) => ['small', 'medium', 'large'].indexOf(v.name);
  const variants = [...(img.variants || [])].sort((a, b) => a.width * a.height - b.width * b.height || rank(a) - rank(b));
  const rows = variants.map((v) => h('tr', {},
    h('th', {scope: 'row'}, v.name),
    h('td', {}, `${v.width} × ${v.height}`),
    h('td', {}, (v.formats && v.formats.length ? v.formats : [v]).map((f) => h('div', {},
      link(f.url, shortType(f.content_type)), ` ${bytes(f.bytes)}`)))));

  replace(main, h('article', {class: 'image-page'},
    h('p', {}, h('a', {href: '#/'}, '← Gallery')),
    h('h1', {}, img.filename || 'untitled'),
    img.variants && img.variants.length ? frame(img, '(max-width: 1024px) 100vw, 1024px', img.filename || '', {eager: true, aspect: true}) : null,
    h('dl', {class: 'facts'},
      h('dt', {}, 'Status'), status,
      why,
      h('dt', {}, 'Original'), h('dd', {}, `${shortType(img.content_type)}, ${bytes(img.bytes)}`,
        img.width ? `, ${img.width} × ${img.height}` : ''),
      h('dt', {}, 'Uploaded'), h('dd', {}, when(img.created_at))),
    rows.length ? h('table', {class: 'variants'},
      h('caption', {}, 'Variants'),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Name'), h('th', {scope: 'col'}, 'Size'), h('th', {scope: 'col'}, 'Formats'))),
      h('tbody', {}, rows)) : h('p', {}, img.status === 'failed' ? 'No variants: processing failed.' : 'Variants appear when processing is done.'),
    h('div', {class: 'actions'}, reprocess, del),
    confirmBox,
    message));
}

function shortType(t) {
  return typeof t === 'string' ? t.replace(/^image\//, '').toUpperCase() : '';
}

function link(url, text) {
  const u = safeURL(url);
  return u ? h('a', {href: u, rel: 'noopener noreferrer', target: '_blank'}, text) : text;
}
