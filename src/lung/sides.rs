//! Left and right: kept lung pieces are split at the junction line around the body's midline.

use super::{LEFT, RIGHT};
use crate::volume::CtVolume;

/// Left or right for each kept piece of lung (`labels` holds tags 10, 11, … on entry, the side
/// labels on return), slice by slice,
/// around the body's midline (mean x of its tissue): a piece on one side of the midline is that
/// side's; a piece holding both lungs (joined at the anterior or posterior junction, or through
/// the carina) is split where the fewest of its voxels cross a column near the midline — the
/// junction line — rather than at one fixed x for the whole volume.
pub(super) fn split_at_junction(
    labels: &mut [u8],
    vol: &CtVolume,
    threshold: f32,
    pieces: usize,
    patient_x: &dyn Fn(usize) -> f64,
) {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    // Integer sums (exact; the mean is the same as summing f64s: far below 2^53).
    let (mut tx, mut tn) = (0u64, 0u64);
    for row in vol.voxels.chunks_exact(nx) {
        for (x, &v) in row.iter().enumerate() {
            if f32::from(v) >= threshold {
                tx += x as u64;
                tn += 1;
            }
        }
    }
    let centre = if tn > 0 {
        tx as f64 / tn as f64
    } else {
        nx as f64 / 2.0
    }
    .round() as isize;
    let half = (nx / 10).max(1) as isize;
    // Per slice, every piece at once: one pass counts each piece's voxels per column, one
    // labels them (each piece reads only its own voxels, so the order does not matter).
    let mut cols = vec![0usize; nx * pieces];
    let mut split_x = vec![None; pieces];
    let piece = |v: u8| (v >= 10 && usize::from(v - 10) < pieces).then(|| usize::from(v - 10));
    for z in 0..nz {
        let sl = &mut labels[z * n2..(z + 1) * n2];
        cols.iter_mut().for_each(|v| *v = 0);
        for row in sl.chunks_exact(nx) {
            for (x, &v) in row.iter().enumerate() {
                if let Some(k) = piece(v) {
                    cols[k * nx + x] += 1;
                }
            }
        }
        for (k, sx) in split_x.iter_mut().enumerate() {
            let cols = &cols[k * nx..(k + 1) * nx];
            *sx = None;
            if cols.iter().all(|&c| c == 0) {
                continue;
            }
            // The fewest voxels in a 3-column window, closest to the midline on ties.
            let lo = (centre - half).max(1);
            let hi = (centre + half).min(nx as isize - 2);
            let mut split = centre.clamp(0, nx as isize - 1) as usize;
            let mut best = usize::MAX;
            for x in lo..=hi {
                let x = x as usize;
                let w = cols[x - 1] + cols[x] + cols[x + 1];
                let d = (x as isize - centre).unsigned_abs();
                let bd = (split as isize - centre).unsigned_abs();
                if w < best || (w == best && d < bd) {
                    best = w;
                    split = x;
                }
            }
            *sx = Some(patient_x(z * n2 + (ny / 2) * nx + split));
        }
        for (j, v) in sl.iter_mut().enumerate() {
            if let Some(k) = piece(*v)
                && let Some(sx) = split_x[k]
            {
                // LPS: larger x is the patient's left.
                *v = if patient_x(z * n2 + j) > sx {
                    LEFT
                } else {
                    RIGHT
                };
            }
        }
    }
}
