// A BlurHash decoder (the algorithm of https://blurha.sh, written out
// here rather than vendored: it is forty lines). It draws the placeholder
// that shows until an image's bytes arrive.

const chars = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~';

function decode83(s) {
  let v = 0;
  for (const c of s) {
    const i = chars.indexOf(c);
    if (i < 0) throw new Error('not a BlurHash');
    v = v * 83 + i;
  }
  return v;
}

function toLinear(v) {
  const x = v / 255;
  return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
}

function toSRGB(v) {
  const x = Math.max(0, Math.min(1, v));
  return x <= 0.0031308 ? Math.round(x * 12.92 * 255 + 0.5) : Math.round((1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255 + 0.5);
}

const signPow = (v, e) => Math.sign(v) * Math.pow(Math.abs(v), e);

// decode returns width x height RGBA pixels of hash, or null when hash is
// not a valid BlurHash.
export function decode(hash, width, height) {
  try {
    if (typeof hash !== 'string' || hash.length < 6) return null;
    const size = decode83(hash[0]);
    const ny = Math.floor(size / 9) + 1;
    const nx = (size % 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) return null;
    const maxAC = (decode83(hash[1]) + 1) / 166;
    const dc = decode83(hash.slice(2, 6));
    const colors = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
    for (let i = 1; i < nx * ny; i++) {
      const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
      colors.push([Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19].map((q) => signPow((q - 9) / 9, 2) * maxAC));
    }
    const px = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0; let g = 0; let b = 0;
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
            const c = colors[i + j * nx];
            r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
          }
        }
        const o = 4 * (x + y * width);
        px[o] = toSRGB(r); px[o + 1] = toSRGB(g); px[o + 2] = toSRGB(b); px[o + 3] = 255;
      }
    }
    return px;
  } catch {
    return null;
  }
}

// canvas returns a 32x32 canvas painted with hash, or null.
export function canvas(hash) {
  const px = decode(hash, 32, 32);
  if (!px) return null;
  const c = document.createElement('canvas');
  c.width = 32;
  c.height = 32;
  c.getContext('2d').putImageData(new ImageData(px, 32, 32), 0, 0);
  return c;
}
