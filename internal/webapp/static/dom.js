// The only way this app builds DOM: elements and text nodes, never HTML
// strings. Filenames, messages and URLs come from users and the API, so
// nothing here parses markup (no innerHTML, no insertAdjacentHTML).

// h returns an element: h('a', {href: '#/x', class: 'y'}, 'text', child).
// Attributes starting with "on" are event listeners; null and false ones
// are left out; children are nodes or strings (as text).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'style') {
      for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
    } else if (k in el && typeof v !== 'string') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace empties el and puts children in it.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// safeURL returns u if it is an http(s) URL (or a path of this site), and
// null otherwise: URLs from the API go into src and href attributes, and a
// javascript: URL there would run.
export function safeURL(u) {
  if (typeof u !== 'string') return null;
  try {
    const parsed = new URL(u, location.href);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

// bytes says n bytes as a person reads it.
export function bytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

// when says an RFC 3339 time in the reader's locale.
export function when(s) {
  const d = new Date(s);
  return isNaN(d) ? '' : d.toLocaleString();
}
