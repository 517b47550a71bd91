// An image's <picture>: one <source> per extra format (AVIF, WebP) with
// every variant in its srcset, and an <img> whose src is the small
// variant's stable URL (which negotiates the format from Accept). The
// browser picks the size from sizes and the format from the types it
// decodes. The placeholder (BlurHash, else the dominant colour) shows
// behind it until the bytes arrive.

import {h, safeURL} from './dom.js';
import {canvas} from './blurhash.js';

const colour = /^#[0-9a-fA-F]{6}$/;

// placeholder returns the element that stands for img until it loads.
export function placeholder(img) {
  const box = h('div', {class: 'placeholder', 'aria-hidden': 'true'});
  if (typeof img.dominant_color === 'string' && colour.test(img.dominant_color)) {
    box.style.setProperty('background-color', img.dominant_color);
  }
  const c = img.placeholder ? canvas(img.placeholder) : null;
  if (c) box.append(c);
  return box;
}

// picture returns a <picture> of a done image, or null when it has no
// variants. sizes is the sizes attribute (the width it is shown at).
export function picture(img, sizes, alt, {eager = false} = {}) {
  const variants = (img.variants || []).filter((v) => safeURL(v.url)).sort((a, b) => a.width - b.width);
  if (!variants.length) return null;
  const base = variants[0].content_type;
  const byType = new Map();
  for (const v of variants) {
    for (const f of v.formats || []) {
      const url = safeURL(f.url);
      if (!url || f.content_type === base || !/^image\/[a-z0-9.+-]+$/.test(f.content_type)) continue;
      if (!byType.has(f.content_type)) byType.set(f.content_type, []);
      byType.get(f.content_type).push(`${url} ${v.width}w`);
    }
  }
  const order = (t) => (t === 'image/avif' ? 0 : t === 'image/webp' ? 1 : 2);
  const sources = [...byType.entries()].sort((a, b) => order(a[0]) - order(b[0]))
    .map(([type, set]) => h('source', {type, srcset: set.join(', '), sizes}));
  const small = variants[0];
  const el = h('img', {
    src: safeURL(small.url),
    srcset: variants.map((v) => `${safeURL(v.url)} ${v.width}w`).join(', '),
    sizes, alt, width: small.width, height: small.height,
    loading: eager ? 'eager' : 'lazy', decoding: 'async',
  });
  const pic = h('picture', {}, sources, el);
  el.addEventListener('load', () => pic.closest('.frame')?.classList.add('loaded'));
  return pic;
}

// frame is the placeholder with the picture over it.
// With aspect, the frame takes the image's proportions (the gallery's
// are square, the image cropped to fit).
export function frame(img, sizes, alt, opts = {}) {
  const f = h('div', {class: 'frame'}, placeholder(img));
  const pic = picture(img, sizes, alt, opts);
  if (pic) f.append(pic);
  if (opts.aspect && img.width && img.height) f.style.setProperty('aspect-ratio', `${img.width} / ${img.height}`);
  return f;
}
