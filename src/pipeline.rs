//! The one pipeline, shared by the CLI and the web worker:
//! file → [`CtVolume`] → slice preprocessing → model → class maps on the slice grid → lung mask
//! → [`Report`](crate::report::Report).
//!
//! The browser drives the same steps one slice at a time (async readback, progress, cancel);
//! natively [`analyze_volume`] batches them.

use crate::inference::SlicePrediction;
use crate::lung::LungMask;
use crate::preprocess::{GreyImage, LUNG_WINDOW, Letterbox, Window, slice_to_grey, to_model_grid};
use crate::slices::SliceResult;
use crate::volume::{CtVolume, IntensityScale};

/// How every slice of one volume is framed for the model: the same crop box for all slices (so
/// neighbouring slices share a scale) and the HU window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputFrame {
    /// `[x0, y0, x1, y1)` on the slice grid; `None` for the whole slice.
    pub crop: Option<[usize; 4]>,
    pub window: Window,
}

impl InputFrame {
    /// The whole slice through the lung window (8-bit input, and HU without lung).
    pub const WHOLE: InputFrame = InputFrame {
        crop: None,
        window: LUNG_WINDOW,
    };
}

/// HU → 8-bit as the MedSeg segmentation training slices have it (their histogram peaks:
/// aerated lung, about −850 HU, at 24–40; soft tissue, about +40 HU, at about 200): width
/// 1335 HU, level −340 HU. The usual lung window (W1500/L−600) puts lung at 85 and soft tissue
/// at 225, brighter than any segmentation training slice.
pub const THORAX_WINDOW: Window = Window {
    width: 1335.0,
    level: -340.0,
};

/// The frame for `vol`. HU volumes where lung is found: the lungs' bounding box over all
/// slices, widened by [`CROP_MARGIN`] of its size on each side (the segmentation training
/// slices are tight crops around the lungs; a scanner's field of view is not), through
/// [`THORAX_WINDOW`]. Measured with `eval --real` (model card): what is called lesion became
/// denser than the rest of the lung on all 14 real scans (3 were not), mean HU contrast on the
/// COVID-19 scans +128 → +224 HU. HU without lung: the whole slice through the lung window.
/// 8-bit images are already crops and windowed: they pass whole.
pub fn input_frame(vol: &CtVolume, lung: &LungMask) -> InputFrame {
    if vol.scale != IntensityScale::Hounsfield {
        return InputFrame::WHOLE;
    }
    let [nx, ny, _] = vol.dims;
    let (mut x0, mut y0, mut x1, mut y1) = (nx, ny, 0, 0);
    for (i, &l) in lung.labels.iter().enumerate() {
        if l != 0 {
            let (x, y) = (i % nx, (i / nx) % ny);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
    }
    if x1 <= x0 || y1 <= y0 {
        return InputFrame::WHOLE;
    }
    let mx = ((x1 - x0) as f64 * CROP_MARGIN).round() as usize;
    let my = ((y1 - y0) as f64 * CROP_MARGIN).round() as usize;
    InputFrame {
        crop: Some([
            x0.saturating_sub(mx),
            y0.saturating_sub(my),
            (x1 + mx).min(nx),
            (y1 + my).min(ny),
        ]),
        window: THORAX_WINDOW,
    }
}

/// Share of the lungs' bounding box added on each side of the crop (measured: 12 % brought the
/// LIDC slice's false lesions from 37 % back to 70 % of the lung).
pub const CROP_MARGIN: f64 = 0.05;

/// One slice ready for the model.
pub struct SliceInput {
    pub z: usize,
    /// `[size, size]` values in [0, 1].
    pub grid: Vec<f32>,
    /// Maps the (cropped) slice to the model grid.
    pub letterbox: Letterbox,
    pub crop: Option<[usize; 4]>,
    /// The whole slice's `[nx, ny]`.
    pub slice_dims: [usize; 2],
}

/// Window (HU) or pass through (8-bit), crop to the frame, then letterbox to the model grid.
pub fn prepare_slice(vol: &CtVolume, frame: &InputFrame, z: usize, size: usize) -> SliceInput {
    let [nx, ny, _] = vol.dims;
    let grey = match vol.scale {
        IntensityScale::Hounsfield => {
            // Only the framed part is windowed.
            let [x0, y0, x1, y1] = frame.crop.unwrap_or([0, 0, nx, ny]);
            let hu = vol.slice(z);
            GreyImage {
                width: x1 - x0,
                height: y1 - y0,
                pixels: (y0..y1)
                    .flat_map(|y| hu[y * nx + x0..y * nx + x1].iter())
                    .map(|&v| frame.window.to_u8(f32::from(v)))
                    .collect(),
            }
        }
        // 8-bit frames are never cropped (see `input_frame`).
        IntensityScale::Display8Bit => slice_to_grey(vol, z),
    };
    let (grid, letterbox) = to_model_grid(&grey, size);
    SliceInput {
        z,
        grid,
        letterbox,
        crop: frame.crop,
        slice_dims: [nx, ny],
    }
}

/// Map a prediction back to the slice grid and flag it against the OOD threshold.
pub fn finish_slice(
    pred: &SlicePrediction,
    input: &SliceInput,
    ood_threshold: Option<f32>,
) -> SliceResult {
    let on_crop = pred.classes_on(&input.letterbox);
    let classes = match input.crop {
        // Back onto the whole slice; outside the crop there is no lesion.
        Some([x0, y0, x1, _]) => {
            let [nx, ny] = input.slice_dims;
            let w = x1 - x0;
            let mut full = vec![0u8; nx * ny];
            for (r, row) in on_crop.chunks_exact(w).enumerate() {
                let y = y0 + r;
                full[y * nx + x0..y * nx + x1].copy_from_slice(row);
            }
            full
        }
        None => on_crop,
    };
    SliceResult {
        z: input.z,
        p_covid: Some(pred.p_covid()),
        classes: crate::slices::ClassMap::from_dense(&classes),
        recon_mse: pred.recon_mse,
        ood: match (pred.recon_mse, ood_threshold) {
            (Some(e), Some(t)) => Some(e > t),
            _ => None,
        },
        counts: None,
    }
}

/// At most every this many slices the model runs on has its reconstruction computed (the
/// out-of-distribution check). The reconstruction decoder costs about a fifth of the model's
/// time per slice (`ctscreen bench`: 89 → 112 ms natively at batch 1), and what it answers, "does
/// this scan look like the training data?", is a property of the scan that a sample answers.
pub const RECON_EVERY: usize = 4;

/// Below this many checked slices the sample thins no further: a series with up to 31 slices
/// with lung is checked on every slice, then every 2nd, every 3rd, and from 64 every 4th.
pub const RECON_MIN_CHECKED: usize = 16;

/// Which of the slices the model runs on (`n` of them, in the order of
/// [`model_slices`](crate::slices::model_slices)) get their reconstruction checked: every
/// `every`-th from the first, with `every` = [`RECON_EVERY`] unless the series is short
/// (at least [`RECON_MIN_CHECKED`] checked), or as given (1: all). The same rule for the CLI
/// and the page, so both flag the same slices.
pub fn recon_checked(n: usize, every: Option<usize>) -> Vec<bool> {
    let every = every
        .unwrap_or_else(|| (n / RECON_MIN_CHECKED).clamp(1, RECON_EVERY))
        .max(1);
    (0..n).map(|k| k % every == 0).collect()
}

/// Run the model over the slices of `vol` that show lung ([`model_slices`]; native:
/// synchronous readback), `batch` slices at a time; the others get a result without the model.
/// The reconstruction is computed on the slices [`recon_checked`] picks (`recon_every` as
/// there), batched apart from the others so those batches skip the decoder.
/// `progress(done, total)` is called after each batch, over the slices the model runs on.
#[cfg(not(target_family = "wasm"))]
#[allow(clippy::too_many_arguments)]
pub fn analyze_volume(
    model: &crate::model::MultiTaskModel,
    device: &burn::prelude::Device,
    vol: &CtVolume,
    lung: &LungMask,
    frame: &InputFrame,
    size: usize,
    ood_threshold: Option<f32>,
    batch: usize,
    recon_every: Option<usize>,
    mut progress: impl FnMut(usize, usize),
) -> crate::error::Result<Vec<SliceResult>> {
    let nz = vol.dims[2];
    let zs = crate::slices::model_slices(vol, lung);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for (&z, checked) in zs.iter().zip(recon_checked(zs.len(), recon_every)) {
        if checked { &mut with } else { &mut without }.push(z);
    }
    let mut out: Vec<SliceResult> = (0..nz).map(SliceResult::without_model).collect();
    let mut done = 0;
    for (group, with_recon) in [(with, true), (without, false)] {
        for part in group.chunks(batch.max(1)) {
            let inputs: Vec<SliceInput> = part
                .iter()
                .map(|&z| prepare_slice(vol, frame, z, size))
                .collect();
            let grids: Vec<&[f32]> = inputs.iter().map(|i| i.grid.as_slice()).collect();
            let preds = crate::inference::predict(model, &grids, size, with_recon, device)?;
            for (p, i) in preds.iter().zip(&inputs) {
                out[i.z] = finish_slice(p, i, ood_threshold);
            }
            done += part.len();
            progress(done, zs.len());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconstruction_is_checked_on_a_sample_that_thins_only_on_long_series() {
        let count = |n, every| recon_checked(n, every).iter().filter(|&&c| c).count();
        // Short series: every slice; a single slice is always checked.
        assert_eq!(recon_checked(1, None), vec![true]);
        assert_eq!(count(31, None), 31);
        // 32–47 slices: every 2nd, 48–63 every 3rd, from 64 on every 4th; never fewer than 16.
        assert_eq!(count(32, None), 16);
        assert_eq!(count(47, None), 24);
        assert_eq!(count(48, None), 16);
        assert_eq!(count(63, None), 21);
        assert_eq!(count(64, None), 16);
        assert_eq!(count(255, None), 64);
        let plan = recon_checked(255, None);
        assert!(plan[0] && !plan[1] && !plan[3] && plan[4] && plan[252]);
        for n in 1..300 {
            assert!(count(n, None) >= n.min(RECON_MIN_CHECKED), "{n} slices");
        }
        // As asked: all, or every 3rd; 0 reads as all.
        assert_eq!(count(255, Some(1)), 255);
        assert_eq!(count(255, Some(3)), 85);
        assert_eq!(count(10, Some(0)), 10);
    }

    #[test]
    fn hu_slices_are_cropped_to_the_lungs_and_classes_come_back_in_place() {
        let vol = crate::phantom::chest_phantom(96, 80, 6, 3);
        let lung = crate::lung::lung_mask(&vol);
        let frame = input_frame(&vol, &lung);
        let [x0, y0, x1, y1] = frame.crop.expect("a crop around the lungs");
        assert!(x0 > 0 && y0 > 0 && x1 < 96 && y1 < 80, "{:?}", frame.crop);
        assert_eq!(frame.window, THORAX_WINDOW);
        // Every lung voxel is inside the crop.
        for (i, &l) in lung.labels.iter().enumerate() {
            if l != 0 {
                let (x, y) = (i % 96, (i / 96) % 80);
                assert!((x0..x1).contains(&x) && (y0..y1).contains(&y));
            }
        }
        let input = prepare_slice(&vol, &frame, 3, 64);
        assert_eq!(input.grid.len(), 64 * 64);
        assert_eq!(input.letterbox.width, x1 - x0);
        // A prediction of "consolidation everywhere" maps back onto the crop only.
        let mut seg_probs = vec![0.0f32; 3 * 64 * 64];
        seg_probs[2 * 64 * 64..].fill(1.0);
        let pred = crate::inference::SlicePrediction {
            size: 64,
            seg_probs,
            class_probs: vec![0.5, 0.5],
            recon: None,
            recon_mse: None,
        };
        let r = finish_slice(&pred, &input, None);
        assert_eq!(r.classes.len(), 96 * 80);
        for (i, &c) in r.classes.to_dense().iter().enumerate() {
            let (x, y) = (i % 96, i / 96);
            let inside = (x0..x1).contains(&x) && (y0..y1).contains(&y);
            assert_eq!(c, if inside { 2 } else { 0 }, "pixel {x},{y}");
        }
        // No lung: the whole slice through the lung window.
        let mut solid = vol.clone();
        solid.voxels.iter_mut().for_each(|v| *v = 40);
        let none = crate::lung::lung_mask(&solid);
        assert_eq!(input_frame(&solid, &none), InputFrame::WHOLE);
    }
}
