// Pure canvas helpers.

/** Lesion colours (RGBA) by class: 1 ground-glass (yellow), 2 consolidation (red). */
export const CLASS_COLOURS = { 1: [255, 224, 0], 2: [255, 48, 48] };

/**
 * Grey image plus a lesion overlay into RGBA pixels.
 * @param {Uint8Array} grey row-major grey pixels
 * @param {Uint8Array|null} classes per-pixel class (0 none), same size, or null for no overlay
 * @param {number} opacity 0..1
 * @returns {Uint8ClampedArray}
 */
export function composeRgba(grey, classes, opacity) {
  const out = new Uint8ClampedArray(grey.length * 4);
  for (let i = 0; i < grey.length; i++) {
    let r = grey[i], g = grey[i], b = grey[i];
    const c = classes ? classes[i] : 0;
    const col = CLASS_COLOURS[c];
    if (col) {
      r = r * (1 - opacity) + col[0] * opacity;
      g = g * (1 - opacity) + col[1] * opacity;
      b = b * (1 - opacity) + col[2] * opacity;
    }
    out[4 * i] = r; out[4 * i + 1] = g; out[4 * i + 2] = b; out[4 * i + 3] = 255;
  }
  return out;
}

/** Draw RGBA pixels of width×height onto a canvas, resizing it. */
export function drawRgba(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
}
