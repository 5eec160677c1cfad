//! Classical lung segmentation, so lesions are counted inside the lungs and involvement can be
//! expressed as a share of lung.
//!
//! HU input, as named steps of [`lung_mask`]: air candidates below −320 HU; the body outline
//! (air outside the patient goes); airway removal (trachea, main bronchi); an opening that cuts
//! thin air bridges; 3-D components, with gas (stomach, bowel) rejected by its share of pure
//! air; the lungs selected by size and position; the opening grown back and shaved-off pockets
//! reclaimed unless they are gas; left/right split at the junction line; per slice and side,
//! closing and hole filling (vessels at the hilum, lesions inside).
//!
//! 8-bit input has no HU: the same steps run on an Otsu threshold of the image and the result is
//! labelled approximate.
//!
//! Known limits: lungs cut by the edge of a cropped field of view lose the cut part.
//!
//! Modules: [`params`] (every threshold and size, with its reason), `body`, `airway`, `sides`
//! (the steps with rules of their own), `morph` (morphology and components), `envelope` (the
//! lesion rule's envelope, [`lesions_in_lung`]).

mod airway;
mod body;
mod coarse;
mod envelope;
mod morph;
pub mod params;
mod planes;
mod sides;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::volume::{CtVolume, IntensityScale};
use morph::{
    Component, box_max, box_of, close, crop_label, erode, fill_holes, flood3d, otsu, widen,
};
use params::*;
use planes::PlaneBits;

pub use coarse::{COARSE_FACTOR, coarse_lung_mask};
pub use envelope::lesions_in_lung;
pub use params::{ENVELOPE_MM, LUNG_THRESHOLD_HU};

/// Voxel labels of a [`LungMask`].
pub const RIGHT: u8 = 1;
pub const LEFT: u8 = 2;

/// Per-voxel lung labels (0 outside, [`RIGHT`], [`LEFT`]) in the volume's canonical order.
#[derive(Debug, Clone)]
pub struct LungMask {
    pub labels: Vec<u8>,
    /// True for 8-bit input, where the threshold is a guess rather than HU.
    pub approximate: bool,
    pub method: LungMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LungMethod {
    /// −320 HU threshold with connected components, closing and hole filling.
    HuThreshold,
    /// Otsu threshold on an 8-bit image: approximate.
    ApproximateOtsu,
}

impl LungMask {
    pub fn count(&self, label: u8) -> usize {
        self.labels.iter().filter(|&&l| l == label).count()
    }

    pub fn slice(&self, vol: &CtVolume, z: usize) -> &[u8] {
        let n = vol.slice_len();
        &self.labels[z * n..(z + 1) * n]
    }
}

/// Segment the lungs of `vol` (3-D on HU volumes; each slice alone is the fallback for a single
/// slice and the approximate path for 8-bit images).
pub fn lung_mask(vol: &CtVolume) -> LungMask {
    let mut job = LungJob::new(vol);
    loop {
        if let Some(mask) = job.step(vol) {
            return mask;
        }
    }
}

/// [`lung_mask`] a step at a time (each a fraction of the whole), so that a caller can do other
/// work between steps: the page's owning worker answers its model workers and sends the first
/// estimate while the mask of a long series (seconds in a browser) is being made. The same
/// steps in the same order as one call: the same mask, byte for byte.
pub struct LungJob {
    threshold: f32,
    approximate: bool,
    method: LungMethod,
    r_open: usize,
    state: Step,
}

/// What the steps have made so far.
enum Step {
    Start,
    /// The dark voxels in the body.
    Dark(PlaneBits),
    /// … without the airways.
    Airless(PlaneBits),
    /// … and their opened core.
    Core(PlaneBits, Vec<u8>),
    /// … with the lung components chosen.
    Kept(PlaneBits, Vec<u8>, Vec<Component>),
    /// The lungs grown back and reclaimed, before the left/right split.
    Grown(Vec<u8>, usize),
    /// Split into sides, before the per-side closing and hole filling.
    Sides(Vec<u8>),
    /// Handed out (a step after it starts over).
    Done,
}

impl LungJob {
    pub fn new(vol: &CtVolume) -> Self {
        let (threshold, approximate, method) = match vol.scale {
            IntensityScale::Hounsfield => (LUNG_THRESHOLD_HU, false, LungMethod::HuThreshold),
            IntensityScale::Display8Bit => (otsu(&vol.voxels), true, LungMethod::ApproximateOtsu),
        };
        LungJob {
            threshold,
            approximate,
            method,
            r_open: opening_radius(vol),
            state: Step::Start,
        }
    }

    /// Run the next step on `vol` (the volume given to [`new`](Self::new)); the mask once the
    /// last step is done. A job that handed out its mask starts over.
    pub fn step(&mut self, vol: &CtVolume) -> Option<LungMask> {
        let hu = !self.approximate;
        let mask = |labels| LungMask {
            labels,
            approximate: self.approximate,
            method: self.method,
        };
        let (next, out) = match std::mem::replace(&mut self.state, Step::Done) {
            Step::Start | Step::Done => (Step::Dark(dark_in_body(vol, self.threshold, hu)), None),
            Step::Dark(mut dark) => {
                if hu && vol.spacing_known && vol.dims[2] >= 3 {
                    airway::remove_airways(&mut dark, vol);
                }
                (Step::Airless(dark), None)
            }
            Step::Airless(dark) => {
                let core = opened_core(&dark, vol, self.r_open);
                (Step::Core(dark, core), None)
            }
            Step::Core(dark, mut core) => {
                let comps = components_without_gas(&mut core, vol, hu);
                let kept = select_lungs(&comps, vol);
                if kept.is_empty() {
                    (Step::Done, Some(mask(vec![0u8; vol.voxels.len()])))
                } else {
                    (Step::Kept(dark, core, kept), None)
                }
            }
            Step::Kept(dark, core, kept) => {
                // One volume-sized buffer goes from core to grown lungs to side labels, in
                // place, beside the dark voxels at a bit each: about a byte a voxel beside the
                // volume (a 512²×1500 series in a browser tab is what this is for).
                let mut labels = grow_back(core, &dark, vol, &kept, self.r_open);
                reclaim_shaved_lung(&mut labels, &dark, vol, hu);
                (Step::Grown(labels, kept.len()), None)
            }
            Step::Grown(mut labels, pieces) => {
                sides::split_at_junction(&mut labels, vol, self.threshold, pieces, &|i| {
                    patient_x(vol, i)
                });
                (Step::Sides(labels), None)
            }
            Step::Sides(mut labels) => {
                close_and_fill_sides(&mut labels, vol);
                (Step::Done, Some(mask(labels)))
            }
        };
        self.state = next;
        out
    }
}

/// The dark voxels inside the body, slice by slice: 1 where darker than `threshold` (air or
/// lung), then the dark voxels outside the body (outside air, the table, the air between arms,
/// blankets) cleared; see `body::remove_outside_body` for the rule.
fn dark_in_body(vol: &CtVolume, threshold: f32, hu: bool) -> PlaneBits {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    // 8-bit: outside air is black; a quarter of the Otsu threshold when that is darker still.
    let pure = if hu {
        PURE_AIR_HU
    } else {
        (threshold * 0.25).min(PURE_AIR_8BIT)
    };
    let mut dark = PlaneBits::new(n2, nz);
    let mut region = Vec::new();
    let mut body = vec![0u8; n2];
    let mut sl = vec![0u8; n2];
    for z in 0..nz {
        for (d, &v) in sl.iter_mut().zip(vol.slice(z)) {
            *d = u8::from(f32::from(v) < threshold);
        }
        body::remove_outside_body(
            &mut sl,
            vol.slice(z),
            nx,
            ny,
            (pure, hu),
            &mut body,
            &mut region,
        );
        dark.pack(z, &sl);
    }
    dark
}

/// The opening radius in pixels: [`OPENING_MM`], or none on a single slice (no bridges through
/// z to cut).
fn opening_radius(vol: &CtVolume) -> usize {
    if vol.dims[2] < 3 {
        0
    } else if vol.spacing_known {
        (OPENING_MM / vol.spacing_mm[0].max(0.1))
            .round()
            .clamp(1.0, 4.0) as usize
    } else {
        1
    }
}

/// The opened core of the dark voxels, per slice (a (2r+1)² square): thin bridges between the
/// lungs and gas under the diaphragm or in skin folds break before components are counted. A
/// single slice is closed first ([`CLOSING_MM`]): aerated lung broken up by reticulation or
/// patchy consolidation becomes one piece, so diffusely diseased lung is not dropped as specks.
fn opened_core(dark: &PlaneBits, vol: &CtVolume, r_open: usize) -> Vec<u8> {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let mut core = vec![0u8; n2 * nz];
    let mut scratch = vec![0u8; n2];
    let r_close = if vol.spacing_known {
        (CLOSING_MM / vol.spacing_mm[0].max(0.1))
            .round()
            .clamp(1.0, 6.0) as usize
    } else {
        2
    };
    let mut part = Vec::with_capacity(n2);
    for z in 0..nz {
        let sl = &mut core[z * n2..(z + 1) * n2];
        dark.unpack(z, sl);
        if nz < 3 {
            close(sl, &mut scratch, nx, ny, r_close);
        }
        if r_open == 0 {
            continue;
        }
        // Eroded inside the dark voxels' box widened by the radius: outside it everything is
        // 0 and stays 0, and inside it no pixel's square reaches past it (the slice's edge
        // counts as foreground on both ways).
        let Some(b) = box_of(sl, nx, 1) else {
            continue;
        };
        let [x0, y0, x1, y1] = widen(b, r_open, nx, ny);
        let (w, h) = (x1 - x0, y1 - y0);
        crop_label(sl, nx, [x0, y0, x1, y1], 1, &mut part);
        erode(&mut part, &mut scratch[..w * h], w, h, r_open);
        for (y, row) in (y0..y1).zip(part.chunks_exact(w)) {
            sl[y * nx + x0..y * nx + x1].copy_from_slice(row);
        }
    }
    core
}

/// The 6-connected components of the core (each marked 2 in `core`), bowel and stomach gas
/// rejected: a component with more than [`GAS_FRACTION`] pure air is gas, not lung (HU only).
/// Sorted largest first.
fn components_without_gas(core: &mut [u8], vol: &CtVolume, hu: bool) -> Vec<Component> {
    let mut comps: Vec<Component> = Vec::new();
    let mut stack = Vec::new();
    for i in 0..core.len() {
        if core[i] == 1 {
            let c = flood3d(core, vol.dims, i, 1, 2, &mut stack, &vol.voxels);
            let gas = hu && c.pure_air as f64 > GAS_FRACTION * c.size as f64;
            if !gas {
                comps.push(c);
            }
        }
    }
    comps.sort_by_key(|c| std::cmp::Reverse(c.size));
    comps
}

/// The lungs among the components (largest first): a lung is at least 1 % of a slice's area per
/// slice it spans and at least a tenth of the largest candidate, and lies beside the largest —
/// a component that ends below the middle of the largest one is gas under the diaphragm.
/// Diseased lungs come in pieces (aerated lung cut by consolidation): up to [`MAX_PIECES`].
fn select_lungs(comps: &[Component], vol: &CtVolume) -> Vec<Component> {
    let [nx, ny, nz] = vol.dims;
    let min_size = (nx * ny / MIN_LUNG_AREA_DIVISOR).max(1) * nz.clamp(1, 3);
    match comps.first() {
        None => Vec::new(),
        Some(first) if first.size < min_size => Vec::new(),
        Some(first) => {
            let up = superior_is_up(vol);
            let mid = first.z_sum as f64 / first.size as f64;
            comps
                .iter()
                .filter(|c| {
                    let top = if up { c.z_max as f64 } else { c.z_min as f64 };
                    let beside = nz < 3 || if up { top >= mid } else { top <= mid };
                    c.size >= min_size
                        && c.size * MIN_PIECE_SHARE_OF_LARGEST >= first.size
                        && beside
                })
                .take(MAX_PIECES)
                .copied()
                .collect()
        }
    }
}

/// The kept cores tagged 10, 11, … and grown back by the opening radius inside the dark voxels
/// (the opening's dilation, restricted to the kept components). 0 elsewhere. Takes `core`'s
/// buffer for the result.
fn grow_back(
    mut core: Vec<u8>,
    dark: &PlaneBits,
    vol: &CtVolume,
    kept: &[Component],
    r_open: usize,
) -> Vec<u8> {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let mut stack = Vec::new();
    for (k, c) in kept.iter().enumerate() {
        flood3d(
            &mut core,
            vol.dims,
            c.seed,
            2,
            10 + k as u8,
            &mut stack,
            &vol.voxels,
        );
    }
    // In place, slice by slice: the slice's core is copied out and the slice cleared, then
    // each tag grows into it (the growth is in-plane, so no other slice is read). Earlier tags
    // win where two meet.
    // Each tag grows inside its box widened by the radius (the dilation reaches no further):
    // the same result as on the whole slice, at a fraction of the pixels.
    let mut grown = core;
    let mut core_sl = vec![0u8; n2];
    let mut dark_sl = vec![0u8; n2];
    let mut side = Vec::with_capacity(n2);
    let mut scratch = vec![0u8; n2];
    let mut boxes = vec![(nx, ny, 0, 0); kept.len()];
    for z in 0..nz {
        let sl = z * n2..(z + 1) * n2;
        core_sl.copy_from_slice(&grown[sl.clone()]);
        grown[sl.clone()].fill(0);
        dark.unpack(z, &mut dark_sl);
        boxes.iter_mut().for_each(|b| *b = (nx, ny, 0, 0));
        for (y, row) in core_sl.chunks_exact(nx).enumerate() {
            for (x, &c) in row.iter().enumerate() {
                if let Some(b) = c
                    .checked_sub(10)
                    .and_then(|k| boxes.get_mut(usize::from(k)))
                {
                    *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), y + 1);
                }
            }
        }
        let g_sl = &mut grown[sl];
        for (k, &(x0, y0, x1, y1)) in boxes.iter().enumerate() {
            if x1 <= x0 {
                continue;
            }
            let tag = 10 + k as u8;
            let [x0, y0, x1, y1] = widen([x0, y0, x1, y1], r_open, nx, ny);
            let (w, h) = (x1 - x0, y1 - y0);
            crop_label(&core_sl, nx, [x0, y0, x1, y1], tag, &mut side);
            if r_open > 0 {
                box_max(&mut side, &mut scratch[..w * h], w, h, r_open, 0);
            }
            for (y, row) in (y0..y1).zip(side.chunks_exact(w)) {
                let at = y * nx + x0..y * nx + x1;
                for ((g, &s), &d) in g_sl[at.clone()].iter_mut().zip(row).zip(&dark_sl[at]) {
                    if s == 1 && d == 1 && *g == 0 {
                        *g = tag;
                    }
                }
            }
        }
    }
    grown
}

/// What the opening shaved off and is joined in-plane to a kept lung comes back (aerated pockets
/// between dense reticulation, thin lung at the pleura), slice by slice, so nothing is joined
/// again through z — unless the piece is more than [`RECLAIM_GAS_FRACTION`] pure air: that is
/// gas (the stomach under a lung base, in a thick slice), not lung.
fn reclaim_shaved_lung(grown: &mut [u8], dark: &PlaneBits, vol: &CtVolume, hu: bool) {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let mut dark_sl = vec![0u8; n2];
    let mut seen = vec![false; n2];
    let mut piece = Vec::new();
    let mut stack = Vec::new();
    for z in 0..nz {
        let sl = z * n2;
        let vals = vol.slice(z);
        dark.unpack(z, &mut dark_sl);
        seen.iter_mut().for_each(|v| *v = false);
        for seed in 0..n2 {
            if seen[seed] || dark_sl[seed] != 1 || grown[sl + seed] != 0 {
                continue;
            }
            piece.clear();
            seen[seed] = true;
            stack.clear();
            stack.push(seed);
            let mut tag = 0u8;
            while let Some(j) = stack.pop() {
                piece.push(j);
                let (x, y) = (j % nx, j / nx);
                for (ok, k) in [
                    (x > 0, j.wrapping_sub(1)),
                    (x + 1 < nx, j + 1),
                    (y > 0, j.wrapping_sub(nx)),
                    (y + 1 < ny, j + nx),
                ] {
                    if !ok || dark_sl[k] != 1 {
                        continue;
                    }
                    if grown[sl + k] != 0 {
                        tag = grown[sl + k];
                    } else if !seen[k] {
                        seen[k] = true;
                        stack.push(k);
                    }
                }
            }
            let pure_air = piece
                .iter()
                .filter(|&&j| f32::from(vals[j]) <= PURE_AIR_HU)
                .count();
            if tag != 0 && !(hu && pure_air as f64 > RECLAIM_GAS_FRACTION * piece.len() as f64) {
                for &j in &piece {
                    grown[sl + j] = tag;
                }
            }
        }
    }
}

/// Per slice and side: close gaps of about [`FINAL_CLOSING_MM`], then fill holes (vessels and
/// lesions inside the lung), never taking the other side's voxels.
fn close_and_fill_sides(labels: &mut [u8], vol: &CtVolume) {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let r = if vol.spacing_known {
        (FINAL_CLOSING_MM / vol.spacing_mm[0].max(0.1))
            .round()
            .clamp(1.0, 15.0) as usize
    } else {
        (nx / 100).max(2)
    };
    // Each side is closed and filled inside its bounding box widened by 2r + 1 (clamped to the
    // slice), not on the whole slice: the same result, since the dilation reaches r past the
    // side, the erosion of a pixel the dilation set reads r further, everything beyond is 0
    // and joined to the slice's edge around the box. A lung side covers a quarter of the
    // slice or less: this step took a third of the mask's time on the whole slice.
    let m = 2 * r + 1;
    let mut side = Vec::with_capacity(n2);
    let mut scratch = vec![0u8; n2];
    for z in 0..nz {
        let sl = &mut labels[z * n2..(z + 1) * n2];
        for lab in [RIGHT, LEFT] {
            let Some(b) = box_of(sl, nx, lab) else {
                continue;
            };
            let [x0, y0, x1, y1] = widen(b, m, nx, ny);
            let (w, h) = (x1 - x0, y1 - y0);
            crop_label(sl, nx, [x0, y0, x1, y1], lab, &mut side);
            close(&mut side, &mut scratch[..w * h], w, h, r);
            fill_holes(&mut side, w, h);
            for (y, row) in (y0..y1).zip(side.chunks_exact(w)) {
                for (v, &s) in sl[y * nx + x0..y * nx + x1].iter_mut().zip(row) {
                    if s == 1 && *v == 0 {
                        *v = lab;
                    }
                }
            }
        }
    }
}

/// The patient x (LPS: larger is the patient's left) of voxel `i`.
fn patient_x(vol: &CtVolume, i: usize) -> f64 {
    let [nx, ny, _] = vol.dims;
    let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
    let a = &vol.affine[0];
    a[0] * x as f64 + a[1] * y as f64 + a[2] * z as f64 + a[3]
}

/// Whether increasing z points to the patient's head (+S in LPS).
fn superior_is_up(vol: &CtVolume) -> bool {
    vol.affine[2][2] >= 0.0
}
