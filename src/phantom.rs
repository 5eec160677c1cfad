//! A synthetic chest-like CT phantom in HU: the demo without data (no real scan is ever shipped)
//! and the benchmark's large input. Clearly labelled synthetic wherever it is shown.

use crate::rng::Rng;
use crate::volume::{CtVolume, InputKind, IntensityScale, VolumeMeta};

/// Shown wherever the phantom appears.
pub const SYNTHETIC_LABEL: &str = "SYNTHETIC PHANTOM: generated, not a patient";

/// A chest phantom of `nx`×`ny`×`nz` voxels (0.7 mm in-plane, 1.25 mm slices): air around an
/// elliptic body (soft tissue with a fat rim), a spine, two lungs narrowing towards the apex,
/// vessels, and a few ground-glass and consolidation blobs in the lower, outer lungs.
pub fn chest_phantom(nx: usize, ny: usize, nz: usize, seed: u64) -> CtVolume {
    let mut rng = Rng::new(seed);
    let mut v = vec![-1000.0f32; nx * ny * nz];
    // Lesions: (centre x, y, z in unit coordinates, radius, HU).
    let lesions: Vec<(f32, f32, f32, f32, f32)> = (0..6)
        .map(|k| {
            let side = if k % 2 == 0 { -1.0 } else { 1.0 };
            (
                side * (0.27 + 0.06 * rng.uniform()),
                0.05 + 0.15 * rng.uniform(),
                0.2 + 0.4 * rng.uniform(),
                0.04 + 0.04 * rng.uniform(),
                if k < 4 { -550.0 } else { -50.0 },
            )
        })
        .collect();
    let vessels: Vec<(f32, f32)> = (0..40)
        .map(|_| {
            let side = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            (
                side * (0.1 + 0.25 * rng.uniform()),
                -0.2 + 0.4 * rng.uniform(),
            )
        })
        .collect();
    for z in 0..nz {
        let fz = (z as f32 + 0.5) / nz as f32; // 0 at the bottom, 1 at the apex
        // Narrow at the apex and, over the lowest 15 %, at the bases (the domes of the
        // diaphragm): a whole chest, whose lung the report does not take for cut by the scan.
        let base = 0.3 + 0.7 * (fz / 0.15).min(1.0);
        let lung_scale = (1.0 - fz * fz).max(0.0).sqrt().max(0.25) * base;
        let row = z * nx * ny;
        for y in 0..ny {
            let fy = (y as f32 + 0.5) / ny as f32 - 0.5;
            for x in 0..nx {
                let fx = (x as f32 + 0.5) / nx as f32 - 0.5;
                let body = (fx / 0.46).powi(2) + (fy / 0.34).powi(2);
                if body >= 1.0 {
                    continue;
                }
                let mut hu = if body > 0.85 { -100.0 } else { 40.0 };
                // Spine, posterior midline.
                if (fx / 0.05).powi(2) + ((fy - 0.22) / 0.05).powi(2) < 1.0 {
                    hu = 700.0;
                }
                for cx in [-0.2f32, 0.2] {
                    let d = ((fx - cx) / (0.15 * lung_scale)).powi(2)
                        + (fy / (0.24 * lung_scale)).powi(2);
                    if d < 1.0 {
                        hu = -860.0;
                        for &(vx, vy) in &vessels {
                            if (fx - vx).powi(2) + (fy - vy).powi(2) < 0.006f32.powi(2) {
                                hu = 30.0;
                            }
                        }
                        for &(lx, ly, lz, r, lhu) in &lesions {
                            let dd = ((fx - lx).powi(2) + (fy - ly).powi(2) + (fz - lz).powi(2))
                                / (r * r);
                            if dd < 1.0 {
                                hu = lhu;
                            }
                        }
                    }
                }
                v[row + y * nx + x] = hu + 15.0 * (rng.uniform() - 0.5);
            }
        }
    }
    let dims = [nx, ny, nz];
    let spacing = [0.7, 0.7, 1.25];
    let affine = [
        [spacing[0], 0.0, 0.0, -0.35 * nx as f64],
        [0.0, spacing[1], 0.0, -0.35 * ny as f64],
        [0.0, 0.0, spacing[2], 0.0],
    ];
    let mut vol = CtVolume::new(
        v.into_iter().map(crate::volume::quantise).collect(),
        dims,
        spacing,
        affine,
        IntensityScale::Hounsfield,
        InputKind::Synthetic,
    );
    vol.meta = VolumeMeta {
        modality: Some("CT".into()),
        series_description: Some(SYNTHETIC_LABEL.into()),
        warnings: vec![SYNTHETIC_LABEL.into()],
        ..Default::default()
    };
    vol
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_has_air_tissue_and_two_lungs() {
        let vol = chest_phantom(96, 96, 12, 7);
        let mid = vol.slice(3);
        assert!(mid[0] < -900, "air outside");
        assert!(
            (0..100).contains(&mid[48 * 96 + 48]),
            "soft tissue at the centre"
        );
        let lung = crate::lung::lung_mask(&vol);
        assert!(lung.count(crate::lung::LEFT) > 1000 && lung.count(crate::lung::RIGHT) > 1000);
    }
}
