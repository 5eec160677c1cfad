//! Tests of the lung mask's steps and the lesion rule on synthetic anatomy.

use super::envelope::convex_hull_rows;
use super::morph::box_max;
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
        v.into_iter().map(crate::volume::quantise).collect(),
        dims,
        [0.7, 0.7, 2.0],
        affine,
        IntensityScale::Hounsfield,
        InputKind::Nifti,
    )
}

/// Truth labels of [`anatomy`].
const T_LUNG: u8 = 1;
const T_AIRWAY: u8 = 2;
const T_GAS: u8 = 3;
const T_PATCH: u8 = 4;
const T_TABLE: u8 = 5;

/// A 3-D chest phantom with what the lung mask must handle, and the truth of every voxel:
/// two lungs (−850 HU with noise and vessels) above a domed diaphragm, a trachea (air)
/// from the top of the volume to a carina, main bronchi into both lungs, a gas-filled
/// bowel loop (−800 HU, not pure air) under the left lung base, a consolidation patch
/// (+20 HU) at the lateral pleura of the right lung, and a table under the body.
/// 1.5 mm pixels, 2.5 mm slices, +x = patient left, +z = superior.
fn anatomy() -> (CtVolume, Vec<u8>) {
    let (nx, ny, nz) = (128usize, 112usize, 64usize);
    let (sx, sz) = (1.5f32, 2.5f32);
    let mut v = vec![-1000.0f32; nx * ny * nz];
    let mut truth = vec![0u8; nx * ny * nz];
    let mut rng = crate::rng::Rng::new(3);
    let cx = nx as f32 / 2.0;
    let cy = ny as f32 / 2.0;
    for z in 0..nz {
        let zm = z as f32 * sz; // mm from the bottom
        for y in 0..ny {
            for x in 0..nx {
                let i = x + nx * (y + ny * z);
                let (px, py) = ((x as f32 - cx) * sx, (y as f32 - cy) * sx);
                let noise = 20.0 * (rng.uniform() - 0.5);
                // Table: a slab under the body, with an air gap.
                if py > 66.0 && py < 75.0 {
                    v[i] = 150.0 + noise;
                    truth[i] = T_TABLE;
                    continue;
                }
                if (px / 85.0).powi(2) + (py / 62.0).powi(2) >= 1.0 {
                    v[i] = -1000.0 + noise;
                    continue;
                }
                v[i] = 40.0 + noise;
                // Lungs: half-ellipsoids above a dome; base at 40 mm (centre) .. 30 mm.
                for side in [-1.0f32, 1.0] {
                    let lx = px - side * 40.0;
                    let base = 30.0 + 10.0 * (1.0 - (lx / 30.0).powi(2)).max(0.0);
                    let top = 150.0;
                    if zm < base || zm > top {
                        continue;
                    }
                    let t = (zm - base) / (top - base); // 0 base .. 1 apex
                    let shrink = (1.0 - t * t).max(0.0).sqrt().max(0.2);
                    if (lx / (30.0 * shrink)).powi(2) + (py / (45.0 * shrink)).powi(2) < 1.0 {
                        v[i] = -850.0 + 60.0 * (rng.uniform() - 0.5);
                        truth[i] = T_LUNG;
                        // A vessel.
                        if (lx - 5.0).powi(2) + (py + 10.0).powi(2) < 9.0 {
                            v[i] = 40.0 + noise;
                        }
                        // Consolidation at the lateral pleura of the right lung (−x).
                        if side < 0.0
                            && (70.0..100.0).contains(&zm)
                            && lx < -30.0 * shrink + 14.0
                            && py.abs() < 15.0
                        {
                            v[i] = 20.0 + noise;
                            truth[i] = T_PATCH;
                        }
                    }
                }
                // Trachea from the top down to the carina at 120 mm; main bronchi to 105 mm.
                let airway = if zm >= 120.0 {
                    px.powi(2) + (py + 5.0).powi(2) < 64.0
                } else if zm >= 105.0 {
                    let off = (120.0 - zm) * 1.6;
                    [-1.0f32, 1.0]
                        .iter()
                        .any(|s| (px - s * off).powi(2) + (py + 5.0).powi(2) < 30.0)
                } else {
                    false
                };
                if airway && truth[i] != T_LUNG {
                    v[i] = -1000.0 + noise;
                    truth[i] = T_AIRWAY;
                }
                // Bowel gas under the left lung base, 10 mm of tissue between.
                let (gx, gy, gz) = (px - 40.0, py - 5.0, zm - 12.0);
                if (gx / 28.0).powi(2) + (gy / 30.0).powi(2) + (gz / 9.0).powi(2) < 1.0 {
                    v[i] = -800.0 + 60.0 * (rng.uniform() - 0.5);
                    truth[i] = T_GAS;
                }
            }
        }
    }
    let affine = [
        [sx as f64, 0.0, 0.0, 0.0],
        [0.0, sx as f64, 0.0, 0.0],
        [0.0, 0.0, sz as f64, 0.0],
    ];
    let vol = CtVolume::new(
        v.into_iter().map(crate::volume::quantise).collect(),
        [nx, ny, nz],
        [sx as f64, sx as f64, sz as f64],
        affine,
        IntensityScale::Hounsfield,
        InputKind::Nifti,
    );
    (vol, truth)
}

/// The separable running-count dilation equals the square-window maximum, borders
/// included (`outside` counts as set or not).
#[test]
fn box_max_is_the_square_window_maximum() {
    let (nx, ny) = (23, 17);
    let mut state = 12345u32;
    let img: Vec<u8> = (0..nx * ny)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            u8::from((state >> 16).is_multiple_of(13))
        })
        .collect();
    for r in [1usize, 2, 5] {
        for outside in [0u8, 1] {
            let mut got = img.clone();
            let mut tmp = vec![0u8; nx * ny];
            box_max(&mut got, &mut tmp, nx, ny, r, outside);
            for y in 0..ny as isize {
                for x in 0..nx as isize {
                    let r = r as isize;
                    let want = (-r..=r).any(|dy| {
                        (-r..=r).any(|dx| {
                            let (xx, yy) = (x + dx, y + dy);
                            if xx < 0 || yy < 0 || xx >= nx as isize || yy >= ny as isize {
                                outside == 1
                            } else {
                                img[yy as usize * nx + xx as usize] == 1
                            }
                        })
                    });
                    assert_eq!(
                        got[y as usize * nx + x as usize],
                        u8::from(want),
                        "r {r} outside {outside} at ({x}, {y})"
                    );
                }
            }
        }
    }
}

#[test]
fn phantom_anatomy_trachea_out_gas_out_volume_recovered() {
    let (vol, truth) = anatomy();
    let m = lung_mask(&vol);
    let count = |t: u8| truth.iter().filter(|&&v| v == t).count();
    let in_mask = |t: u8| {
        truth
            .iter()
            .zip(&m.labels)
            .filter(|(tv, l)| **tv == t && **l != 0)
            .count()
    };
    assert!(count(T_AIRWAY) > 500 && count(T_GAS) > 1000);
    // The trachea and main bronchi are not lung (a rim where they meet the lung aside).
    assert!(
        in_mask(T_AIRWAY) * 20 < count(T_AIRWAY),
        "{} of {} airway voxels called lung",
        in_mask(T_AIRWAY),
        count(T_AIRWAY)
    );
    assert_eq!(
        in_mask(T_GAS),
        0,
        "bowel gas under the diaphragm called lung"
    );
    assert_eq!(in_mask(T_TABLE), 0);
    // Aerated lung (vessels inside count as lung): within 5 %.
    let truth_lung = truth
        .iter()
        .zip(&vol.voxels)
        .filter(|(t, _)| **t == T_LUNG)
        .count();
    let ours = m.count(LEFT) + m.count(RIGHT) - in_mask(T_PATCH);
    let rel = ours as f64 / truth_lung as f64 - 1.0;
    eprintln!(
        "phantom: lung {ours} vs {truth_lung} voxels ({:+.1} %); airway {} of {} voxels left",
        100.0 * rel,
        in_mask(T_AIRWAY),
        count(T_AIRWAY)
    );
    assert!(
        rel.abs() < 0.05,
        "lung {ours} vs {truth_lung} voxels ({rel:+.3})"
    );
    // Both sides, right on −x.
    let right_truth = (0..truth.len())
        .filter(|&i| truth[i] == T_LUNG && (i % 128) < 64)
        .count();
    assert!(
        (m.count(RIGHT) as f64 / right_truth as f64 - 1.0).abs() < 0.08,
        "{} vs {right_truth}",
        m.count(RIGHT)
    );
}

#[test]
fn consolidation_at_the_pleura_counts_as_lung_and_lesion_lesions_outside_are_dropped() {
    use crate::report::{ReportContext, build};
    use crate::slices::SliceResult;
    let (vol, truth) = anatomy();
    let m = lung_mask(&vol);
    let [nx, ny, nz] = vol.dims;
    let n2 = nx * ny;
    // The −320 HU threshold leaves most of the dense patch out of the lung mask.
    let patch = truth.iter().filter(|&&t| t == T_PATCH).count();
    let patch_in_mask = (0..truth.len())
        .filter(|&i| truth[i] == T_PATCH && m.labels[i] != 0)
        .count();
    assert!(
        patch > 1000 && patch_in_mask * 2 < patch,
        "{patch_in_mask}/{patch}"
    );
    // A perfect model: consolidation on the patch; plus a false lesion on the table.
    let slices: Vec<SliceResult> = (0..nz)
        .map(|z| SliceResult {
            z,
            p_covid: Some(0.9),
            classes: crate::slices::ClassMap::from_dense(
                &(0..n2)
                    .map(|j| match truth[z * n2 + j] {
                        T_PATCH => 2,
                        T_TABLE => 1,
                        _ => 0,
                    })
                    .collect::<Vec<u8>>(),
            ),
            recon_mse: None,
            ood: None,
            counts: None,
        })
        .collect();
    let ctx = ReportContext {
        input: "anatomy",
        model: "m",
        backend: "cpu",
    };
    let r = build(&ctx, &vol, &m, &slices);
    let voxel = vol.voxel_ml().unwrap();
    let want = patch as f64 * voxel;
    let les = r.lesion_ml.clone().unwrap();
    eprintln!(
        "phantom: consolidation {:.2} mL vs {want:.2} mL; {patch_in_mask} of {patch} patch voxels in the threshold mask",
        les.consolidation
    );
    assert!(
        (les.consolidation / want - 1.0).abs() < 0.05,
        "consolidation {:.1} mL vs {want:.1} mL",
        les.consolidation
    );
    assert_eq!(les.ggo, 0.0, "the lesion on the table must be dropped");
    // The consolidated patch is part of the right lung's volume.
    let lung = r.lung_ml.clone().unwrap();
    let truth_lung = truth.iter().filter(|&&t| t == T_LUNG).count() as f64 * voxel;
    let total = lung.left + lung.right;
    assert!(
        (total / (truth_lung + want) - 1.0).abs() < 0.05,
        "lung {total:.0} mL vs {:.0} mL",
        truth_lung + want
    );
    assert!(r.involvement_pct.right.unwrap() > 0.0 && r.involvement_pct.left == Some(0.0));
    // The exported label map follows the same rule: nothing on the table.
    let labels = crate::slices::lesion_labels(&vol, &m, &slices);
    assert!(
        (0..labels.len()).all(|i| labels[i] == 0 || truth[i] == T_PATCH),
        "exported lesions outside the patch"
    );
}

#[test]
fn convex_hull_fills_a_bay_and_nothing_outside() {
    // A 20×20 square with a 6-pixel-deep bay cut into its right side.
    let (nx, ny) = (30, 30);
    let mut m = vec![0u8; nx * ny];
    for y in 5..25 {
        for x in 5..25 {
            m[y * nx + x] = u8::from(!((10..20).contains(&y) && x >= 19));
        }
    }
    let rows = convex_hull_rows(&m, nx, ny);
    assert_eq!(rows[4], None);
    assert_eq!(rows[25], None);
    for (y, row) in rows.iter().enumerate().take(25).skip(5) {
        assert_eq!(*row, Some((5, 24)), "row {y}");
    }
    // A single pixel and an empty slice.
    let mut one = vec![0u8; 9];
    one[4] = 1;
    assert_eq!(convex_hull_rows(&one, 3, 3)[1], Some((1, 1)));
    assert!(convex_hull_rows(&[0; 9], 3, 3).iter().all(Option::is_none));
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
        *v = i16::from(crate::preprocess::LUNG_WINDOW.to_u8(f32::from(*v)));
    }
    vol.scale = IntensityScale::Display8Bit;
    vol.spacing_known = false;
    let m = lung_mask(&vol);
    assert!(m.approximate);
    assert!(m.count(RIGHT) > 100 && m.count(LEFT) > 100);
}

#[test]
fn eight_bit_crop_with_lungs_cut_by_the_edge_keeps_them() {
    // A MedSeg-like crop: no outside air, lungs (grey 24, MedSeg's darkest) open to the left and right
    // edges, soft tissue (200) between; black (0) only in a corner as outside air.
    let (nx, ny) = (120, 80);
    // Tissue from 60 to 200 across the image, as partial volume and fat spread a real
    // histogram (it puts Otsu's threshold mid-way, as on MedSeg slices).
    let mut v: Vec<f32> = (0..nx * ny)
        .map(|i| 60.0 + 140.0 * (i % nx) as f32 / nx as f32)
        .collect();
    for y in 10..70 {
        for x in 0..50 {
            v[y * nx + x] = 24.0;
            v[y * nx + nx - 1 - x] = 24.0;
        }
    }
    for y in 0..5 {
        for x in 55..65 {
            v[y * nx + x] = 0.0;
        }
    }
    let affine = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ];
    let mut vol = CtVolume::new(
        v.into_iter().map(crate::volume::quantise).collect(),
        [nx, ny, 1],
        [1.0, 1.0, 1.0],
        affine,
        IntensityScale::Display8Bit,
        InputKind::Image,
    );
    vol.spacing_known = false;
    let m = lung_mask(&vol);
    assert!(
        m.count(RIGHT) > 2500 && m.count(LEFT) > 2500,
        "{} {}",
        m.count(RIGHT),
        m.count(LEFT)
    );
}

#[test]
fn no_air_no_lung() {
    let mut vol = chest([32, 32, 2], false);
    vol.voxels.iter_mut().for_each(|v| *v = 30);
    let m = lung_mask(&vol);
    assert_eq!(m.count(RIGHT) + m.count(LEFT), 0);
}

#[test]
fn the_coarse_mask_agrees_with_the_full_one_and_keeps_the_sides() {
    // 2×2 blocks of the 1.5 mm phantom: 3 mm pixels, as the page's 4×4 blocks of a 0.7 mm scan.
    let (vol, truth) = anatomy();
    let full = lung_mask(&vol);
    let coarse = coarse_lung_mask(&vol, 2);
    assert_eq!(coarse.labels.len(), full.labels.len());
    let (mut both, mut n) = (0usize, 0usize);
    for (&a, &b) in full.labels.iter().zip(&coarse.labels) {
        n += usize::from(a != 0) + usize::from(b != 0);
        both += usize::from(a != 0 && a == b);
    }
    let dice = 2.0 * both as f64 / n as f64;
    assert!(dice > 0.9, "Dice (same side) {dice:.3}");
    // The bowel gas stays out at the coarse scale too.
    let gas = truth
        .iter()
        .zip(&coarse.labels)
        .filter(|(t, l)| **t == T_GAS && **l != 0)
        .count();
    assert_eq!(gas, 0, "bowel gas called lung on the coarse grid");
    // The frame the first estimate uses is within a block or two of the full mask's.
    let (fc, ff) = (
        crate::pipeline::input_frame(&vol, &coarse).crop,
        crate::pipeline::input_frame(&vol, &full).crop,
    );
    let (Some(fc), Some(ff)) = (fc, ff) else {
        panic!("no frame: {fc:?} {ff:?}");
    };
    assert!(
        fc.iter().zip(&ff).all(|(a, b)| a.abs_diff(*b) <= 4),
        "{fc:?} vs {ff:?}"
    );
    // Sides come from the block centres' patient coordinates: flipping x flips them.
    let centre = (0.3 * 96.0) as usize + 96 * 40;
    assert_eq!(
        coarse_lung_mask(&chest([96, 80, 4], false), 2).labels[centre],
        RIGHT
    );
    assert_eq!(
        coarse_lung_mask(&chest([96, 80, 4], true), 2).labels[centre],
        LEFT
    );
    // A factor of 1 is the full mask.
    assert_eq!(coarse_lung_mask(&vol, 1).labels, full.labels);
}

#[test]
fn the_mask_a_step_at_a_time_is_the_mask() {
    let (vol, _) = anatomy();
    let whole = lung_mask(&vol);
    let mut job = LungJob::new(&vol);
    let mut steps = 1;
    let stepped = loop {
        if let Some(m) = job.step(&vol) {
            break m;
        }
        steps += 1;
    };
    // Several steps, so the page's worker answers its model workers in between.
    assert!(steps >= 5, "{steps} steps");
    assert_eq!(stepped.labels, whole.labels);
    // A job that handed out its mask starts over and makes it again.
    let again = loop {
        if let Some(m) = job.step(&vol) {
            break m;
        }
    };
    assert_eq!(again.labels, whole.labels);
}
