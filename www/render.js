// Pure canvas helpers.

/** Lesion colours (RGB) by class: 1 ground-glass (yellow), 2 consolidation (red). */
export const CLASS_COLOURS = { 1: [255, 224, 0], 2: [255, 48, 48] };

/** Lung outline colour (RGB): what was counted as lung. */
export const LUNG_COLOUR = [79, 195, 247];

/** Window presets in HU. */
export const PRESETS = { lung: { width: 1500, level: -600 }, mediastinum: { width: 350, level: 40 } };

/**
 * Window int16 values into 0–255 grey.
 * @param {Int16Array} values one slice
 * @param {{width:number, level:number}} win
 * @returns {Uint8Array}
 */
export function windowSlice(values, win) {
  const out = new Uint8Array(values.length);
  const lo = win.level - win.width / 2;
  const scale = 255 / Math.max(1, win.width);
  for (let i = 0; i < values.length; i++) {
    const v = (values[i] - lo) * scale;
    out[i] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
  }
  return out;
}

/**
 * Grey image plus a lesion overlay (and optionally the lung outline) into RGBA pixels.
 * @param {Uint8Array} grey row-major grey pixels
 * @param {Uint8Array|null} classes per-pixel class (0 none), same size, or null for no overlay
 * @param {number} opacity 0..1
 * @param {Uint8Array|null} [lung] per-pixel lung side (0 none), same size, outlined when given
 * @param {number} [width] row length, needed with `lung`
 * @returns {Uint8ClampedArray}
 */
export function composeRgba(grey, classes, opacity, lung = null, width = 0) {
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
  if (lung && width > 0) {
    // Boundary pixels: lung with a 4-neighbour of another label (or the image edge).
    const n = grey.length;
    for (let i = 0; i < n; i++) {
      const l = lung[i];
      if (!l) continue;
      const x = i % width;
      const edge = x === 0 || x === width - 1 || i < width || i >= n - width
        || lung[i - 1] !== l || lung[i + 1] !== l || lung[i - width] !== l || lung[i + width] !== l;
      if (edge) { out[4 * i] = LUNG_COLOUR[0]; out[4 * i + 1] = LUNG_COLOUR[1]; out[4 * i + 2] = LUNG_COLOUR[2]; }
    }
  }
  return out;
}

/** Draw RGBA pixels of width×height onto a canvas, resizing it. */
export function drawRgba(canvas, rgba, width, height) {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
}

/**
 * Per-slice p(COVID-19) as bars, the current slice marked, OOD slices hatched orange.
 * @param {HTMLCanvasElement} canvas
 * @param {Array<{p_covid:number|null, ood:boolean|null}|undefined>} slices indexed by z (p null:
 *   no lung, the model was not run)
 * @param {number} current
 */
export function drawStrip(canvas, slices, current) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, n = Math.max(1, slices.length);
  ctx.fillStyle = "#222"; ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = "#444"; ctx.fillRect(0, h / 2, w, 1); // p = 0.5
  const bw = w / n;
  for (let z = 0; z < slices.length; z++) {
    const s = slices[z];
    if (!s) continue;
    const bh = Math.max(1, (s.p_covid ?? 0) * (h - 2));
    // Slices without lung take no part in the patient-level estimate: grey.
    ctx.fillStyle = s.has_lung === false ? "#555" : s.ood ? "#ff9800" : s.p_covid > 0.5 ? "#e57373" : "#81c784";
    ctx.fillRect(z * bw, h - bh, Math.max(1, bw - 0.5), bh);
  }
  ctx.fillStyle = "#4fc3f7";
  ctx.fillRect(Math.min(w - 2, current * bw + bw / 2 - 1), 0, 2, h);
}
