//! One analysed slice: what the model said ([`SliceResult`]), the lesion rule that decides which
//! lesion pixels count and which pixels are lung ([`slice_in_lung`]), and the per-slice counts
//! ([`SliceCounts`]). Below both the pipeline (which makes slice results) and the report (which
//! sums them), so neither imports the other.

use crate::lung::{LEFT, LungMask, RIGHT, lesions_in_lung};
use crate::volume::CtVolume;

/// A slice shows lung when the lung covers at least this share of its area.
pub const MIN_LUNG_SHARE: f64 = 0.01;

/// What the model said about one slice, on the slice's own grid.
#[derive(Debug, Clone)]
pub struct SliceResult {
    pub z: usize,
    pub p_covid: f32,
    /// Per-pixel class on the slice grid: 0 background, 1 GGO, 2 consolidation.
    pub classes: Vec<u8>,
    pub recon_mse: Option<f32>,
    pub ood: Option<bool>,
    /// The slice's lung and lesion pixel counts under the lesion rule, when already worked
    /// out (the browser does it per slice for the viewer); the report computes them if not.
    pub counts: Option<SliceCounts>,
}

/// Pixels of one slice by lung side and lesion type, after the lesion rule
/// ([`slice_in_lung`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SliceCounts {
    /// Lung pixels (any side label), and those labelled left / right.
    pub lung: usize,
    pub lung_left: usize,
    pub lung_right: usize,
    pub ggo: usize,
    pub consolidation: usize,
    /// Lesion pixels in the left lung and in the rest of the lung.
    pub lesion_left: usize,
    pub lesion_right: usize,
}

impl SliceCounts {
    /// Count a slice's lung labels and its classes (both on the slice grid).
    pub fn of(lung_slice: &[u8], classes: &[u8]) -> Self {
        let mut c = Self::default();
        for (&side, &class) in lung_slice.iter().zip(classes) {
            if side == 0 {
                continue;
            }
            c.lung += 1;
            let is_left = side == LEFT;
            if is_left {
                c.lung_left += 1;
            } else if side == RIGHT {
                c.lung_right += 1;
            }
            match class {
                0 => continue,
                1 => c.ggo += 1,
                _ => c.consolidation += 1,
            }
            if is_left {
                c.lesion_left += 1;
            } else {
                c.lesion_right += 1;
            }
        }
        c
    }

    pub fn lesion(&self) -> usize {
        self.ggo + self.consolidation
    }

    /// Whether the slice shows lung: at least [`MIN_LUNG_SHARE`] of its `slice_len` pixels.
    pub fn has_lung(&self, slice_len: usize) -> bool {
        self.lung > 0 && self.lung as f64 >= MIN_LUNG_SHARE * slice_len as f64
    }
}

/// One analysed slice after the lesion rule ([`crate::lung::lesions_in_lung`]): the slice's
/// lung labels with the lesions it absorbed, and the lesion classes that count. The report, the
/// overlay and every export go through this one function.
pub fn slice_in_lung(vol: &CtVolume, lung: &LungMask, s: &SliceResult) -> (Vec<u8>, Vec<u8>) {
    let [nx, ny, _] = vol.dims;
    lesions_in_lung(
        lung.slice(vol, s.z),
        &s.classes,
        nx,
        ny,
        vol.spacing_known.then_some(vol.spacing_mm[0]),
    )
}

/// The lesion label map of the whole volume (1 GGO, 2 consolidation, by the lesion rule of
/// [`slice_in_lung`]), in canonical order; slices not analysed stay 0.
pub fn lesion_labels(vol: &CtVolume, lung: &LungMask, slices: &[SliceResult]) -> Vec<u8> {
    let n2 = vol.slice_len();
    let mut labels = vec![0u8; vol.voxels.len()];
    for s in slices {
        let (_, classes) = slice_in_lung(vol, lung, s);
        labels[s.z * n2..(s.z + 1) * n2].copy_from_slice(&classes);
    }
    labels
}
