//! Airway removal: the trachea and main bronchi are air inside the body but not lung.

use super::morph::flood2d;
use super::params::{
    AIRWAY_HU, AIRWAY_MAX_AREA_MM2, AIRWAY_MAX_LENGTH_MM, AIRWAY_MIDLINE_MM, AIRWAY_MIN_AREA_MM2,
    AIRWAY_START_MM, LUNG_THRESHOLD_HU,
};
use super::planes::PlaneBits;
use super::superior_is_up;
use crate::volume::CtVolume;

/// Remove the trachea and main bronchi from the dark voxels `m`: starting near the top of the
/// volume from a small, round, midline region of air, follow the airway down slice by slice
/// while its cross-section stays airway-sized and mostly air; stop where it merges into the
/// lung. The lumen and a one-voxel rim (its partial-volume wall) are cleared, so the lungs no
/// longer join through the carina.
pub(super) fn remove_airways(m: &mut PlaneBits, vol: &CtVolume) {
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    let px_mm2 = vol.spacing_mm[0] * vol.spacing_mm[1];
    let max_px = (AIRWAY_MAX_AREA_MM2 / px_mm2) as usize;
    let min_px = ((AIRWAY_MIN_AREA_MM2 / px_mm2) as usize).max(2);
    let dz = vol.spacing_mm[2].max(0.1);
    let order: Vec<usize> = if superior_is_up(vol) {
        (0..nz).rev().collect()
    } else {
        (0..nz).collect()
    };
    let start_slices = ((AIRWAY_START_MM / dz).ceil() as usize).max(1);
    let max_slices = (AIRWAY_MAX_LENGTH_MM / dz).ceil() as usize;
    let mut prev = vec![0u8; n2];
    let mut cur = vec![0u8; n2];
    let mut lumen = vec![0u8; n2];
    let mut sl = vec![0u8; n2];
    let mut comp = Vec::new();
    let mut stack = Vec::new();
    let mut started_at: Option<usize> = None;
    for (step, &z) in order.iter().enumerate() {
        if started_at.is_none() && step >= start_slices {
            return;
        }
        if let Some(s) = started_at
            && step - s > max_slices
        {
            return;
        }
        m.unpack(z, &mut sl);
        let vals = vol.slice(z);
        for ((l, &d), &v) in lumen.iter_mut().zip(sl.iter()).zip(vals) {
            *l = u8::from(d == 1 && f32::from(v) < AIRWAY_HU);
        }
        // Midline of the body on this slice: mean x of its tissue.
        let (mut tx, mut tn) = (0usize, 0usize);
        for (i, &v) in vals.iter().enumerate() {
            if f32::from(v) >= LUNG_THRESHOLD_HU {
                tx += i % nx;
                tn += 1;
            }
        }
        let mid_x = if tn > 0 {
            tx as f64 / tn as f64
        } else {
            nx as f64 / 2.0
        };
        cur.iter_mut().for_each(|v| *v = 0);
        let mut found = false;
        for seed in 0..n2 {
            if lumen[seed] != 1 {
                continue;
            }
            flood2d(&mut lumen, nx, ny, seed, (1, 2), &mut stack, &mut comp);
            if comp.len() < min_px || comp.len() > max_px {
                continue;
            }
            let is_airway = if started_at.is_some() {
                comp.iter().any(|&i| prev[i] == 1)
            } else {
                let (mut x0, mut x1, mut y0, mut y1) = (nx, 0, ny, 0);
                let mut cx = 0usize;
                for &i in &comp {
                    let (x, y) = (i % nx, i / nx);
                    (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
                    cx += x;
                }
                let cx = cx as f64 / comp.len() as f64;
                let bbox = (x1 - x0 + 1) * (y1 - y0 + 1);
                // Round (fills over half its box) and within 25 mm of the midline.
                comp.len() * 2 > bbox && (cx - mid_x).abs() * vol.spacing_mm[0] < AIRWAY_MIDLINE_MM
            };
            if is_airway {
                found = true;
                for &i in &comp {
                    cur[i] = 1;
                }
            }
        }
        if !found {
            if started_at.is_some() {
                return;
            }
            continue;
        }
        started_at.get_or_insert(step);
        // Clear the lumen and a one-voxel rim of dark voxels around it.
        for (i, _) in cur.iter().enumerate().filter(|(_, c)| **c == 1) {
            let (x, y) = (i % nx, i / nx);
            for yy in y.saturating_sub(1)..(y + 2).min(ny) {
                for xx in x.saturating_sub(1)..(x + 2).min(nx) {
                    sl[yy * nx + xx] = 0;
                }
            }
        }
        m.pack(z, &sl);
        std::mem::swap(&mut prev, &mut cur);
    }
}
