// Pure helpers for the order of work (no DOM, no wasm): unit-tested with node --test.

/**
 * The order slices are analysed in: every 8th first, then the slices halfway between, and so on,
 * so the strip, the patient-level estimate and the severity appear early and sharpen.
 * @param {number} nz
 * @returns {number[][]} passes of slice indices, each pass halving the gaps
 */
export function coarseToFine(nz, step = 8) {
  const seen = new Uint8Array(nz);
  const passes = [];
  for (let s = step; s >= 1; s = Math.floor(s / 2)) {
    const pass = [];
    for (let z = 0; z < nz; z += s) if (!seen[z]) { seen[z] = 1; pass.push(z); }
    if (pass.length) passes.push(pass);
  }
  return passes;
}

/**
 * The first pass's step: about 10 slices in the first pass whatever the length (a power of
 * two, so every pass halves it), so the first estimate comes within seconds on long series too.
 * @param {number} nz
 */
export function firstStep(nz) {
  let s = 1;
  while (s < 64 && nz / s > 10) s *= 2;
  return s;
}
