//! One analysed slice: what the model said ([`SliceResult`]), the lesion rule that decides which
//! lesion pixels count and which pixels are lung ([`slice_in_lung`]), and the per-slice counts
//! ([`SliceCounts`]). Below both the pipeline (which makes slice results) and the report (which
//! sums them), so neither imports the other.

use crate::lung::{LEFT, LungMask, RIGHT, lesions_in_lung};
use crate::volume::{CtVolume, IntensityScale};

/// A slice shows lung when the lung covers at least this share of its area.
pub const MIN_LUNG_SHARE: f64 = 0.01;

/// What the model said about one slice, on the slice's own grid.
#[derive(Debug, Clone)]
pub struct SliceResult {
    pub z: usize,
    /// The classifier's p; `None` where the model was not run ([`model_slices`]).
    pub p_covid: Option<f32>,
    /// Per-pixel class on the slice grid: 0 background, 1 GGO, 2 consolidation; empty where
    /// the model was not run.
    pub classes: ClassMap,
    pub recon_mse: Option<f32>,
    pub ood: Option<bool>,
    /// The slice's lung and lesion pixel counts under the lesion rule, when already worked
    /// out (the browser does it per slice for the viewer); the report computes them if not.
    pub counts: Option<SliceCounts>,
}

/// A slice's class map (0 background, 1 GGO, 2 consolidation), kept as the runs of non-zero
/// class: lesions cover a few per cent of a slice, so a kept result is a few KB where the dense
/// map is a byte a pixel (a 512²×1500 series held 250 MB of zeros in the browser's worker).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassMap {
    /// Pixels in the slice (0 where the model was not run).
    len: usize,
    /// `(start, length, class)` of each run of one non-zero class, in order.
    runs: Vec<(u32, u32, u8)>,
}

impl ClassMap {
    pub fn from_dense(classes: &[u8]) -> Self {
        let mut runs: Vec<(u32, u32, u8)> = Vec::new();
        for (i, &c) in classes.iter().enumerate() {
            if c == 0 {
                continue;
            }
            match runs.last_mut() {
                Some((start, len, class)) if *class == c && (*start + *len) as usize == i => {
                    *len += 1
                }
                _ => runs.push((i as u32, 1, c)),
            }
        }
        ClassMap {
            len: classes.len(),
            runs,
        }
    }

    /// The dense map, a byte a pixel.
    pub fn to_dense(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        for &(start, len, class) in &self.runs {
            out[start as usize..(start + len) as usize].fill(class);
        }
        out
    }

    /// Pixels in the slice; 0 where the model was not run.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any pixel has a lesion class.
    pub fn any_lesion(&self) -> bool {
        !self.runs.is_empty()
    }
}

impl SliceResult {
    /// A slice the model is not run on (no lung voxel, see [`model_slices`]): no p, no lesion.
    pub fn without_model(z: usize) -> Self {
        SliceResult {
            z,
            p_covid: None,
            classes: ClassMap::default(),
            recon_mse: None,
            ood: None,
            counts: None,
        }
    }
}

/// The slices the model runs on, ascending: those with any lung voxel. No lesion can count on
/// the others (the lesion rule keeps lesions inside a slice's lung or its envelope, and a slice
/// without lung has neither), so skipping them changes no figure of the report, and on a
/// whole-body CT most slices need no model. A volume without any lung runs every slice: the
/// reconstruction's out-of-distribution check then says what the input looks like.
pub fn model_slices(vol: &CtVolume, lung: &LungMask) -> Vec<usize> {
    let with_lung: Vec<usize> = (0..vol.dims[2])
        .filter(|&z| lung.slice(vol, z).iter().any(|&l| l != 0))
        .collect();
    if with_lung.is_empty() {
        (0..vol.dims[2]).collect()
    } else {
        with_lung
    }
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

/// Ground glass is at least this dense, HU (its usual range is about −750…−300): a pixel called
/// lesion whose neighbourhood is darker is aerated lung. Measured on the shared real series
/// (`scripts/overlay.py`, HU of what is called lesion): the gate takes 43 % of what was called
/// lesion on the normal LungFCP lungs (1.33 → 0.76 % of the lung) and 5–11 % on the COVID-19
/// series (P001 2.18 → 2.07 %, RICORD 8.2 → 7.2 %), whose lesions sit at a median −480 / −550 HU.
pub const LESION_MIN_HU: f32 = -750.0;
/// Half-side of the neighbourhood whose mean HU is compared with [`LESION_MIN_HU`], pixels (a
/// 5×5 mean: noise on a single pixel of real ground glass must not drop it).
const LESION_HU_RADIUS: usize = 2;

/// One analysed slice after the lesion rule ([`crate::lung::lesions_in_lung`]; on HU input also
/// [`LESION_MIN_HU`]): the slice's lung labels with the lesions it absorbed, and the lesion
/// classes that count. The report, the overlay and every export go through this one function.
pub fn slice_in_lung(vol: &CtVolume, lung: &LungMask, s: &SliceResult) -> (Vec<u8>, Vec<u8>) {
    let [nx, ny, _] = vol.dims;
    if s.classes.is_empty() {
        // Not run through the model: its lung as it is, no lesion.
        return (lung.slice(vol, s.z).to_vec(), vec![0; nx * ny]);
    }
    let (lung_slice, mut classes) = lesions_in_lung(
        lung.slice(vol, s.z),
        &s.classes.to_dense(),
        nx,
        ny,
        vol.spacing_known.then_some(vol.spacing_mm[0]),
    );
    if vol.scale == IntensityScale::Hounsfield {
        drop_aerated(&mut classes, vol.slice(s.z), nx, ny);
    }
    (lung_slice, classes)
}

/// Clear the lesion pixels whose 5×5 neighbourhood mean is below [`LESION_MIN_HU`].
fn drop_aerated(classes: &mut [u8], hu: &[i16], nx: usize, ny: usize) {
    if !classes.iter().any(|&c| c != 0) {
        return;
    }
    // Summed-area table, (nx+1)×(ny+1).
    let w = nx + 1;
    let mut sat = vec![0f64; w * (ny + 1)];
    for y in 0..ny {
        let mut row = 0f64;
        for x in 0..nx {
            row += hu[y * nx + x] as f64;
            sat[(y + 1) * w + x + 1] = sat[y * w + x + 1] + row;
        }
    }
    let r = LESION_HU_RADIUS;
    for y in 0..ny {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(ny));
        for x in 0..nx {
            let i = y * nx + x;
            if classes[i] == 0 {
                continue;
            }
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(nx));
            let sum = sat[y1 * w + x1] - sat[y0 * w + x1] - sat[y1 * w + x0] + sat[y0 * w + x0];
            let n = ((y1 - y0) * (x1 - x0)) as f64;
            if sum / n < LESION_MIN_HU as f64 {
                classes[i] = 0;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_maps_round_trip() {
        let dense = [0u8, 1, 1, 2, 2, 0, 0, 1, 0, 2];
        let m = ClassMap::from_dense(&dense);
        assert_eq!(m.to_dense(), dense);
        assert_eq!(m.runs.len(), 4);
        assert!(m.any_lesion() && m.len() == 10);
        assert!(!ClassMap::from_dense(&[0; 5]).any_lesion());
        assert!(ClassMap::default().is_empty());
    }

    #[test]
    fn lesion_pixels_in_aerated_lung_are_dropped_and_ground_glass_kept() {
        let (nx, ny) = (12, 6);
        // Left half aerated lung (−860 HU), right half ground glass (−550 HU).
        let hu: Vec<i16> = (0..nx * ny)
            .map(|i| if i % nx < 6 { -860 } else { -550 })
            .collect();
        let mut classes = vec![1u8; nx * ny];
        drop_aerated(&mut classes, &hu, nx, ny);
        for y in 0..ny {
            assert_eq!(classes[y * nx + 1], 0, "deep in aerated lung: dropped");
            assert_eq!(classes[y * nx + 10], 1, "ground glass: kept");
            // At the border the 5×5 mean mixes both: −860·2/5 − 550·3/5 = −674 ≥ −750.
            assert_eq!(classes[y * nx + 6], 1);
        }
    }
}
