//! Classical lung segmentation, so lesions are counted inside the lungs and involvement can be
//! expressed as a share of lung.
//!
//! HU input: threshold at −320 HU; drop air connected to the edge of each slice (outside the
//! body); keep the one or two largest 3-D components (left and right lung, or both joined at the
//! carina); assign left/right from the volume's orientation; then per slice and side close small
//! gaps (vessels at the hilum, lesions at the pleura) and fill holes (vessels and lesions inside).
//!
//! 8-bit input has no HU: the same steps run on an Otsu threshold of the image and the result is
//! labelled approximate.
//!
//! Known limits: the trachea and main bronchi stay in the mask (a few tens of mL); lungs cut by
//! the edge of a cropped field of view lose the cut part.

use serde::Serialize;

use crate::volume::{CtVolume, IntensityScale};

/// −320 HU separates aerated lung (about −900…−500) from soft tissue (about −100…+100) with a
/// margin for ground glass (about −700…−300), which must stay inside the lung.
pub const LUNG_THRESHOLD_HU: f32 = -320.0;

/// Pure air, HU.
const PURE_AIR_HU: f32 = -950.0;
/// Components with more than this share of pure-air voxels are gas, not lung.
const GAS_FRACTION: f64 = 0.6;

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

/// Segment the lungs of `vol`.
pub fn lung_mask(vol: &CtVolume) -> LungMask {
    let (threshold, approximate, method) = match vol.scale {
        IntensityScale::Hounsfield => (LUNG_THRESHOLD_HU, false, LungMethod::HuThreshold),
        IntensityScale::Display8Bit => (otsu(&vol.voxels), true, LungMethod::ApproximateOtsu),
    };
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    // 1 = dark (air or lung), 0 = tissue.
    let mut m: Vec<u8> = vol
        .voxels
        .iter()
        .map(|&v| u8::from(v < threshold))
        .collect();
    // Outside air: dark regions reached from the slice edge that are mostly pure air (air
    // outside the body is ≤ −950 HU give or take noise; lung is about −850 HU). A lung cut by the
    // edge of a cropped field of view touches the edge too but is not pure air, so it stays.
    let pure = match vol.scale {
        IntensityScale::Hounsfield => PURE_AIR_HU,
        IntensityScale::Display8Bit => threshold * 0.25,
    };
    let mut region = Vec::new();
    for z in 0..nz {
        remove_outside_air(
            &mut m[z * n2..(z + 1) * n2],
            vol.slice(z),
            nx,
            ny,
            pure,
            &mut region,
        );
    }

    // Components (6-connected): pass 1 marks each as 2 and records a seed, size and mean value.
    let mut comps: Vec<(usize, usize)> = Vec::new();
    let mut stack = Vec::new();
    for i in 0..m.len() {
        if m[i] == 1 {
            let (size, pure_air) = flood3d(&mut m, vol.dims, i, 1, 2, &mut stack, &vol.voxels);
            // Mostly pure air (≤ −950 HU) is gas in the stomach or bowel, or the trachea alone:
            // aerated lung has tissue in every voxel (about −850 HU). Even severe emphysema
            // rarely has more than half its lung below −950 HU (the LAA-950 index).
            let gas = !approximate && pure_air as f64 > GAS_FRACTION * size as f64;
            if !gas {
                comps.push((i, size));
            }
        }
    }
    comps.sort_by_key(|c| std::cmp::Reverse(c.1));
    // A lung is at least 1 % of a slice's area per slice it spans, and at least 10 % of the
    // largest candidate (bowel gas and the trachea alone are smaller).
    let min_size = (n2 / 100).max(1) * nz.clamp(1, 3);
    let largest = comps.first().map_or(0, |c| c.1);
    let kept: Vec<(usize, usize)> = comps
        .iter()
        .take(2)
        .filter(|c| c.1 >= min_size && c.1 * 10 >= largest)
        .copied()
        .collect();
    let mut labels = vec![0u8; m.len()];
    if kept.is_empty() {
        return LungMask {
            labels,
            approximate,
            method,
        };
    }
    // Pass 2: mark the kept components 10, 11.
    for (k, &(seed, _)) in kept.iter().enumerate() {
        flood3d(
            &mut m,
            vol.dims,
            seed,
            2,
            10 + k as u8,
            &mut stack,
            &vol.voxels,
        );
    }
    let patient_x = |i: usize| -> f64 {
        let (x, y, z) = (i % nx, (i / nx) % ny, i / n2);
        let a = &vol.affine[0];
        a[0] * x as f64 + a[1] * y as f64 + a[2] * z as f64 + a[3]
    };
    // LPS: larger x is the patient's left.
    if kept.len() == 2 {
        let mean_x = |tag: u8| -> f64 {
            let (s, c) = m
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == tag)
                .fold((0.0, 0usize), |(s, c), (i, _)| (s + patient_x(i), c + 1));
            s / c.max(1) as f64
        };
        let (x0, x1) = (mean_x(10), mean_x(11));
        let (l0, l1) = if x0 > x1 {
            (LEFT, RIGHT)
        } else {
            (RIGHT, LEFT)
        };
        for (lab, v) in labels.iter_mut().zip(&m) {
            *lab = match *v {
                10 => l0,
                11 => l1,
                _ => 0,
            };
        }
    } else {
        // One component (lungs joined at the carina or by a bridge): split at its mean x.
        let (s, c) = m
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == 10)
            .fold((0.0, 0usize), |(s, c), (i, _)| (s + patient_x(i), c + 1));
        let mid = s / c.max(1) as f64;
        for (i, (lab, v)) in labels.iter_mut().zip(&m).enumerate() {
            if *v == 10 {
                *lab = if patient_x(i) > mid { LEFT } else { RIGHT };
            }
        }
    }
    drop(m);

    // Per slice and side: close gaps of about 5 mm, then fill holes.
    let r = (5.0 / vol.spacing_mm[0].max(0.1)).round().clamp(1.0, 15.0) as usize;
    let r = if vol.spacing_known {
        r
    } else {
        (nx / 100).max(2)
    };
    let mut side = vec![0u8; n2];
    let mut scratch = vec![0u8; n2];
    for z in 0..nz {
        let sl = &mut labels[z * n2..(z + 1) * n2];
        for lab in [RIGHT, LEFT] {
            let mut any = false;
            for (s, &v) in side.iter_mut().zip(sl.iter()) {
                *s = u8::from(v == lab);
                any |= *s == 1;
            }
            if !any {
                continue;
            }
            close(&mut side, &mut scratch, nx, ny, r);
            fill_holes(&mut side, nx, ny);
            for (v, &s) in sl.iter_mut().zip(side.iter()) {
                // Never steal the other side's voxels.
                if s == 1 && *v == 0 {
                    *v = lab;
                }
            }
        }
    }
    LungMask {
        labels,
        approximate,
        method,
    }
}

/// Flood the `from`-valued component containing `seed` with `to` (6-connectivity). Returns its
/// size and how many of its `values` are pure air. `stack` is reused between calls.
fn flood3d(
    m: &mut [u8],
    dims: [usize; 3],
    seed: usize,
    from: u8,
    to: u8,
    stack: &mut Vec<usize>,
    values: &[f32],
) -> (usize, usize) {
    let [nx, ny, nz] = dims;
    let n2 = nx * ny;
    stack.clear();
    m[seed] = to;
    stack.push(seed);
    let mut size = 0;
    let mut air = 0usize;
    while let Some(i) = stack.pop() {
        size += 1;
        air += usize::from(values[i] <= PURE_AIR_HU);
        let (x, y, z) = (i % nx, (i / nx) % ny, i / n2);
        let mut visit = |j: usize, m: &mut [u8]| {
            if m[j] == from {
                m[j] = to;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1, m);
        }
        if x + 1 < nx {
            visit(i + 1, m);
        }
        if y > 0 {
            visit(i - nx, m);
        }
        if y + 1 < ny {
            visit(i + nx, m);
        }
        if z > 0 {
            visit(i - n2, m);
        }
        if z + 1 < nz {
            visit(i + n2, m);
        }
    }
    (size, air)
}

/// Remove the edge-connected dark regions of one slice that are mostly pure air (more than a
/// third of their pixels at or below `pure`); keep the others.
fn remove_outside_air(
    s: &mut [u8],
    vals: &[f32],
    nx: usize,
    ny: usize,
    pure: f32,
    region: &mut Vec<usize>,
) {
    clear_edge_regions(s, nx, ny, region, |r| {
        r.iter().filter(|&&i| vals[i] <= pure).count() * 3 > r.len()
    });
}

/// Set to 0 every 1-pixel 4-connected to the slice's edge.
fn remove_border_connected(s: &mut [u8], nx: usize, ny: usize) {
    clear_edge_regions(s, nx, ny, &mut Vec::new(), |_| true);
}

/// For each 4-connected region of 1-pixels touching the slice's edge, set it to 0 when
/// `remove(pixels)` says so, else leave it 1. `region` is reused between calls.
fn clear_edge_regions(
    s: &mut [u8],
    nx: usize,
    ny: usize,
    region: &mut Vec<usize>,
    mut remove: impl FnMut(&[usize]) -> bool,
) {
    const SEEN: u8 = 3;
    const KEPT: u8 = 4;
    let mut stack = Vec::new();
    let border: Vec<usize> = (0..nx)
        .flat_map(|x| [x, (ny - 1) * nx + x])
        .chain((0..ny).flat_map(|y| [y * nx, y * nx + nx - 1]))
        .collect();
    for seed in border {
        if s[seed] != 1 {
            continue;
        }
        region.clear();
        s[seed] = SEEN;
        stack.push(seed);
        while let Some(i) = stack.pop() {
            region.push(i);
            let (x, y) = (i % nx, i / nx);
            for (ok, j) in [
                (x > 0, i.wrapping_sub(1)),
                (x + 1 < nx, i + 1),
                (y > 0, i.wrapping_sub(nx)),
                (y + 1 < ny, i + nx),
            ] {
                if ok && s[j] == 1 {
                    s[j] = SEEN;
                    stack.push(j);
                }
            }
        }
        let mark = if remove(region) { 0 } else { KEPT };
        for &i in region.iter() {
            s[i] = mark;
        }
    }
    for v in s.iter_mut() {
        if *v == KEPT {
            *v = 1;
        }
    }
}

/// Fill 0-regions not 4-connected to the slice's edge.
fn fill_holes(s: &mut [u8], nx: usize, ny: usize) {
    // Mark outside-reachable zeros as 2 by flipping roles, then restore.
    for v in s.iter_mut() {
        *v = if *v == 0 { 1 } else { 3 };
    }
    remove_border_connected(s, nx, ny); // reachable zeros (now 1) become 0
    for v in s.iter_mut() {
        *v = u8::from(*v != 0);
    }
}

/// Morphological closing with a (2r+1)² square: dilation then erosion, each as two separable
/// running-count passes, so the cost does not grow with `r`.
fn close(s: &mut [u8], scratch: &mut [u8], nx: usize, ny: usize, r: usize) {
    box_max(s, scratch, nx, ny, r, 0);
    // Erosion of m = complement of the dilation of the complement; outside the slice counts as
    // foreground so the edge does not erode.
    for v in s.iter_mut() {
        *v = 1 - *v;
    }
    box_max(s, scratch, nx, ny, r, 0);
    for v in s.iter_mut() {
        *v = 1 - *v;
    }
}

/// In place: each pixel becomes 1 if any pixel of its (2r+1)² box is 1. Outside the slice is
/// `outside`.
fn box_max(s: &mut [u8], tmp: &mut [u8], nx: usize, ny: usize, r: usize, outside: u8) {
    let ri = r as isize;
    // Rows → tmp.
    for y in 0..ny {
        let row = &s[y * nx..(y + 1) * nx];
        let at = |x: isize| -> usize {
            if x < 0 || x >= nx as isize {
                outside as usize
            } else {
                row[x as usize] as usize
            }
        };
        let mut count: usize = (-ri..=ri).map(at).sum();
        for x in 0..nx as isize {
            tmp[y * nx + x as usize] = u8::from(count > 0);
            count = count + at(x + ri + 1) - at(x - ri);
        }
    }
    // Columns → s.
    for x in 0..nx {
        let at = |y: isize| -> usize {
            if y < 0 || y >= ny as isize {
                outside as usize
            } else {
                tmp[y as usize * nx + x] as usize
            }
        };
        let mut count: usize = (-ri..=ri).map(at).sum();
        for y in 0..ny as isize {
            s[y as usize * nx + x] = u8::from(count > 0);
            count = count + at(y + ri + 1) - at(y - ri);
        }
    }
}

/// Otsu's threshold of 0–255 values (between the two modes: air/lung vs tissue).
fn otsu(values: &[f32]) -> f32 {
    let mut hist = [0u64; 256];
    for &v in values {
        hist[v.round().clamp(0.0, 255.0) as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0u64, 0.0f64, -1.0f64, 128usize);
    for (t, &c) in hist.iter().enumerate() {
        w0 += c;
        if w0 == 0 || w0 == total {
            continue;
        }
        sum0 += t as f64 * c as f64;
        let w1 = total - w0;
        let m0 = sum0 / w0 as f64;
        let m1 = (sum - sum0) / w1 as f64;
        let between = w0 as f64 * w1 as f64 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    best_t as f32 + 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::InputKind;

    /// A synthetic chest: a soft-tissue ellipse body in air, two lung ellipses at −850 HU with
    /// a vessel (+40 HU) inside each.
    pub(crate) fn chest(dims: [usize; 3], x_flip: bool) -> CtVolume {
        let [nx, ny, nz] = dims;
        let mut v = vec![-1000.0f32; nx * ny * nz];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let (fx, fy) = (x as f32 / nx as f32 - 0.5, y as f32 / ny as f32 - 0.5);
                    let i = x + nx * (y + ny * z);
                    if (fx / 0.45).powi(2) + (fy / 0.35).powi(2) < 1.0 {
                        v[i] = 40.0;
                    }
                    for cx in [-0.2f32, 0.2] {
                        let d = (((fx - cx) / 0.15).powi(2) + (fy / 0.25).powi(2)).sqrt();
                        if d < 1.0 {
                            v[i] = if d < 0.15 { 40.0 } else { -850.0 };
                        }
                    }
                }
            }
        }
        let sx = if x_flip { -0.7 } else { 0.7 };
        let affine = [
            [sx, 0.0, 0.0, 0.0],
            [0.0, 0.7, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
        ];
        CtVolume::new(
            v,
            dims,
            [0.7, 0.7, 2.0],
            affine,
            IntensityScale::Hounsfield,
            InputKind::Nifti,
        )
    }

    #[test]
    fn two_lungs_found_with_vessels_filled_and_sides_from_orientation() {
        let vol = chest([96, 80, 4], false);
        let m = lung_mask(&vol);
        assert!(!m.approximate);
        let (r, l) = (m.count(RIGHT), m.count(LEFT));
        assert!(r > 0 && l > 0);
        assert!((r as f64 / l as f64 - 1.0).abs() < 0.05, "{r} vs {l}");
        // The vessel at the centre of the image-left lung is inside the mask (filled).
        let centre = (0.3 * 96.0) as usize + 96 * 40;
        assert_ne!(m.labels[centre], 0);
        // Image-left (small x) is the patient's right when x points to the patient's left.
        assert_eq!(m.labels[centre], RIGHT);
        // Body and outside air are not lung.
        assert_eq!(m.labels[0], 0);
        assert_eq!(m.labels[48 + 96 * 10], 0);

        // Flip the x axis in the affine: the same voxels now belong to the other side.
        let flipped = lung_mask(&chest([96, 80, 4], true));
        assert_eq!(flipped.labels[centre], LEFT);
    }

    #[test]
    fn eight_bit_input_gets_an_approximate_mask() {
        let mut vol = chest([64, 64, 1], false);
        for v in &mut vol.voxels {
            *v = crate::preprocess::LUNG_WINDOW.to_u8(*v) as f32;
        }
        vol.scale = IntensityScale::Display8Bit;
        vol.spacing_known = false;
        let m = lung_mask(&vol);
        assert!(m.approximate);
        assert!(m.count(RIGHT) > 100 && m.count(LEFT) > 100);
    }

    #[test]
    fn no_air_no_lung() {
        let mut vol = chest([32, 32, 2], false);
        vol.voxels.iter_mut().for_each(|v| *v = 30.0);
        let m = lung_mask(&vol);
        assert_eq!(m.count(RIGHT) + m.count(LEFT), 0);
    }
}
