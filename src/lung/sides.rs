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
    let (mut tx, mut tn) = (0.0f64, 0usize);
    for (i, &v) in vol.voxels.iter().enumerate() {
        if f32::from(v) >= threshold {
            tx += (i % nx) as f64;
            tn += 1;
        }
    }
    let centre = if tn > 0 {
        tx / tn as f64
    } else {
        nx as f64 / 2.0
    }
    .round() as isize;
    let half = (nx / 10).max(1) as isize;
    let mut cols = vec![0usize; nx];
    for tag in (10..).take(pieces) {
        for z in 0..nz {
            let sl = &labels[z * n2..(z + 1) * n2];
            cols.iter_mut().for_each(|v| *v = 0);
            let mut any = false;
            for (i, &v) in sl.iter().enumerate() {
                if v == tag {
                    cols[i % nx] += 1;
                    any = true;
                }
            }
            if !any {
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
            let split_x = patient_x(z * n2 + (ny / 2) * nx + split);
            for j in 0..n2 {
                let i = z * n2 + j;
                if labels[i] == tag {
                    // LPS: larger x is the patient's left. In place: the side labels (1, 2)
                    // are never a tag (10, 11, …), so later tags read only their own voxels.
                    labels[i] = if patient_x(i) > split_x { LEFT } else { RIGHT };
                }
            }
        }
    }
}
