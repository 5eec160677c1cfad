//! The one pipeline, shared by the CLI and the web worker:
//! file → [`CtVolume`] → slice preprocessing → model → class maps on the slice grid → lung mask
//! → [`Report`](crate::report::Report).
//!
//! The browser drives the same steps one slice at a time (async readback, progress, cancel);
//! natively [`analyze_volume`] batches them.

use crate::inference::SlicePrediction;
use crate::preprocess::{Letterbox, slice_to_grey, to_model_grid};
use crate::report::SliceResult;
use crate::volume::CtVolume;

/// One slice ready for the model.
pub struct SliceInput {
    pub z: usize,
    /// `[size, size]` values in [0, 1].
    pub grid: Vec<f32>,
    pub letterbox: Letterbox,
}

/// Window (HU) or pass through (8-bit), then letterbox to the model grid.
pub fn prepare_slice(vol: &CtVolume, z: usize, size: usize) -> SliceInput {
    let grey = slice_to_grey(vol, z);
    let (grid, letterbox) = to_model_grid(&grey, size);
    SliceInput { z, grid, letterbox }
}

/// Map a prediction back to the slice grid and flag it against the OOD threshold.
pub fn finish_slice(
    pred: &SlicePrediction,
    input: &SliceInput,
    ood_threshold: Option<f32>,
) -> SliceResult {
    SliceResult {
        z: input.z,
        p_covid: pred.p_covid(),
        classes: pred.classes_on(&input.letterbox),
        recon_mse: pred.recon_mse,
        ood: match (pred.recon_mse, ood_threshold) {
            (Some(e), Some(t)) => Some(e > t),
            _ => None,
        },
    }
}

/// One analysed slice after the lesion rule ([`crate::lung::lesions_in_lung`]): the slice's
/// lung labels with the lesions it absorbed, and the lesion classes that count. The report, the
/// overlay and every export go through this one function.
pub fn slice_in_lung(
    vol: &CtVolume,
    lung: &crate::lung::LungMask,
    s: &SliceResult,
) -> (Vec<u8>, Vec<u8>) {
    let [nx, ny, _] = vol.dims;
    crate::lung::lesions_in_lung(
        lung.slice(vol, s.z),
        &s.classes,
        nx,
        ny,
        vol.spacing_known.then_some(vol.spacing_mm[0]),
    )
}

/// The lesion label map of the whole volume (1 GGO, 2 consolidation, by the lesion rule of
/// [`slice_in_lung`]), in canonical order; slices not analysed stay 0.
pub fn lesion_labels(
    vol: &CtVolume,
    lung: &crate::lung::LungMask,
    slices: &[SliceResult],
) -> Vec<u8> {
    let n2 = vol.slice_len();
    let mut labels = vec![0u8; vol.voxels.len()];
    for s in slices {
        let (_, classes) = slice_in_lung(vol, lung, s);
        labels[s.z * n2..(s.z + 1) * n2].copy_from_slice(&classes);
    }
    labels
}

/// Run the model over every slice of `vol` (native: synchronous readback), `batch` slices at a
/// time. `progress(done, total)` is called after each batch.
#[cfg(not(target_family = "wasm"))]
pub fn analyze_volume(
    model: &crate::model::MultiTaskModel,
    device: &burn::prelude::Device,
    vol: &CtVolume,
    size: usize,
    ood_threshold: Option<f32>,
    batch: usize,
    mut progress: impl FnMut(usize, usize),
) -> crate::error::Result<Vec<SliceResult>> {
    let nz = vol.dims[2];
    let mut out = Vec::with_capacity(nz);
    let batch = batch.max(1);
    for start in (0..nz).step_by(batch) {
        let inputs: Vec<SliceInput> = (start..(start + batch).min(nz))
            .map(|z| prepare_slice(vol, z, size))
            .collect();
        let grids: Vec<&[f32]> = inputs.iter().map(|i| i.grid.as_slice()).collect();
        let preds = crate::inference::predict(model, &grids, size, true, device)?;
        for (p, i) in preds.iter().zip(&inputs) {
            out.push(finish_slice(p, i, ood_threshold));
        }
        progress(out.len(), nz);
    }
    Ok(out)
}
