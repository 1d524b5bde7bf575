// A VM's screen as the controller's RFB client keeps it: RGBA pixels updated in place by Raw and CopyRect
// rectangles, plus the pure image work screenshots need (crop a region, scale down, encode PNG or JPEG).
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { HangarError } from '../../errors.js';

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel, rows top to bottom. */
  data: Buffer;
}

export class Framebuffer implements Image {
  readonly data: Buffer;
  constructor(readonly width: number, readonly height: number) {
    this.data = Buffer.alloc(width * height * 4);
    for (let i = 3; i < this.data.length; i += 4) this.data[i] = 255;
  }

  /** Raw pixels (R,G,B,X per pixel, our pixel format) into the rectangle; clipped to the screen. */
  putRaw(x: number, y: number, w: number, h: number, px: Buffer): void {
    const cw = Math.min(w, this.width - x);
    if (cw <= 0) return;
    for (let row = 0; row < h && y + row < this.height; row++) {
      const src = row * w * 4;
      const dst = ((y + row) * this.width + x) * 4;
      px.copy(this.data, dst, src, src + cw * 4);
      for (let i = dst + 3, end = dst + cw * 4; i < end; i += 4) this.data[i] = 255;
    }
  }

  /** CopyRect: the w×h rectangle at (sx, sy) to (dx, dy), overlap-safe. */
  copyRect(sx: number, sy: number, dx: number, dy: number, w: number, h: number): void {
    const W = this.width;
    w = Math.min(w, W - sx, W - dx);
    h = Math.min(h, this.height - sy, this.height - dy);
    if (w <= 0 || h <= 0) return;
    const rowBytes = w * 4;
    const down = dy > sy;
    for (let i = 0; i < h; i++) {
      const row = down ? h - 1 - i : i;
      const s = ((sy + row) * W + sx) * 4;
      this.data.copyWithin(((dy + row) * W + dx) * 4, s, s + rowBytes);
    }
  }

  /** Whether every pixel is the same colour. */
  uniform(): boolean {
    const d = this.data;
    const r = d[0], g = d[1], b = d[2];
    for (let i = 4; i < d.length; i += 4) if (d[i] !== r || d[i + 1] !== g || d[i + 2] !== b) return false;
    return true;
  }
}

/** A copy of one region of an image (which must lie inside it). */
export function crop(img: Image, r: Region): Image {
  if (r.x < 0 || r.y < 0 || r.width < 1 || r.height < 1 || r.x + r.width > img.width || r.y + r.height > img.height) {
    throw new HangarError('INVALID_ARGUMENT', `the region ${r.width}x${r.height}+${r.x}+${r.y} is not inside the ${img.width}x${img.height} screen`, { region: r, screen: { width: img.width, height: img.height } });
  }
  if (r.x === 0 && r.y === 0 && r.width === img.width && r.height === img.height) return img;
  const out = Buffer.allocUnsafe(r.width * r.height * 4);
  for (let row = 0; row < r.height; row++) {
    const s = ((r.y + row) * img.width + r.x) * 4;
    img.data.copy(out, row * r.width * 4, s, s + r.width * 4);
  }
  return { width: r.width, height: r.height, data: out };
}

/** Scaled by `factor` (0 < factor ≤ 1), each output pixel the average of the box it covers. */
export function scale(img: Image, factor: number): Image {
  if (!(factor > 0 && factor <= 1)) throw new HangarError('INVALID_ARGUMENT', 'scale must be in (0, 1]', { scale: factor });
  if (factor === 1) return img;
  const w = Math.max(1, Math.round(img.width * factor));
  const h = Math.max(1, Math.round(img.height * factor));
  const out = Buffer.allocUnsafe(w * h * 4);
  const sx = img.width / w;
  const sy = img.height / h;
  for (let y = 0; y < h; y++) {
    const y0 = Math.floor(y * sy);
    const y1 = Math.max(y0 + 1, Math.floor((y + 1) * sy));
    for (let x = 0; x < w; x++) {
      const x0 = Math.floor(x * sx);
      const x1 = Math.max(x0 + 1, Math.floor((x + 1) * sx));
      let r = 0, g = 0, b = 0;
      for (let yy = y0; yy < y1; yy++) {
        let i = (yy * img.width + x0) * 4;
        for (let xx = x0; xx < x1; xx++, i += 4) { r += img.data[i]!; g += img.data[i + 1]!; b += img.data[i + 2]!; }
      }
      const n = (y1 - y0) * (x1 - x0);
      const o = (y * w + x) * 4;
      out[o] = r / n; out[o + 1] = g / n; out[o + 2] = b / n; out[o + 3] = 255;
    }
  }
  return { width: w, height: h, data: out };
}

export type ImageFormat = 'png' | 'jpeg';

/** RGB without alpha (PNG colour type 2: a quarter smaller, and pngjs packs it without a per-pixel conversion). */
function rgb(img: Image): Buffer {
  const n = img.width * img.height;
  const out = Buffer.allocUnsafe(n * 3);
  const d = img.data;
  for (let i = 0, o = 0; i < n * 4; i += 4, o += 3) { out[o] = d[i]!; out[o + 1] = d[i + 1]!; out[o + 2] = d[i + 2]!; }
  return out;
}

/**
 * PNG (lossless; deflate level 1 and the Sub filter: screens are flat colours and text, which compress well even
 * so, and encoding stays a few milliseconds) or JPEG (quality 1–100, default 80).
 */
export function encodeImage(img: Image, format: ImageFormat, quality = 80): Buffer {
  if (format === 'jpeg') return jpeg.encode({ width: img.width, height: img.height, data: img.data }, quality).data;
  return PNG.sync.write({ width: img.width, height: img.height, data: rgb(img) } as PNG,
    { colorType: 2, inputColorType: 2, inputHasAlpha: false, deflateLevel: 1, filterType: 1 });
}
